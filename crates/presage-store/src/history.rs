//! Which version a job served when: what `rollback` goes back to and `versions` marks.
//!
//! Every change of the current version is one [`HistoryEntry`]: a run published and
//! made current, a backfill published without being made current, a rollback (or a
//! promotion) moving the pointer. Rolling back goes to the version served before the
//! current one, skipping versions an operator rolled away from, so a rejected version
//! never comes back by itself. Backends keep the entries (the embedded store in
//! `history.jsonl`); the decisions are made here, once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::VersionId;

/// One change of a job's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The version the change is about.
    pub version: VersionId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub event: HistoryEvent,
}

/// What a [`HistoryEntry`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HistoryEvent {
    /// A run published the version and made it current.
    Published,
    /// A run published the version without making it current (a backfill).
    Backfilled,
    /// The pointer moved to the version from `from` (a rollback, or the promotion of a
    /// backfill).
    RolledBack {
        /// The version served before.
        from: VersionId,
    },
}

/// How a kept version stands, for `versions` and for choosing a rollback target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Served now.
    Current,
    /// Served before, and a fine rollback target.
    Served,
    /// Rolled away from after it was served: rollback skips it, `--to` asks for force.
    RolledBack,
    /// Published by a backfill and never made current.
    Backfill,
}

/// A job's history, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<HistoryEntry>,
}

impl History {
    /// A history of `entries`, oldest first.
    pub fn new(entries: Vec<HistoryEntry>) -> History {
        History { entries }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// True when no change was recorded (a store written before histories were kept).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the history knows `id`: published, backfilled or served. A version on
    /// disk that it does not know was never published (a crash between moving it into
    /// place and swapping the pointer).
    pub fn knows(&self, id: VersionId) -> bool {
        self.entries.iter().any(|e| e.version == id)
    }

    /// The version the last pointer change made current, if any.
    pub fn last_served(&self) -> Option<VersionId> {
        self.entries
            .iter()
            .rev()
            .find(|e| !matches!(e.event, HistoryEvent::Backfilled))
            .map(|e| e.version)
    }

    /// How `id` stands when `current` is served.
    pub fn state(&self, id: VersionId, current: Option<VersionId>) -> VersionState {
        if Some(id) == current {
            return VersionState::Current;
        }
        // The last time the pointer moved to or away from `id` decides.
        let mut state = None;
        for entry in &self.entries {
            match entry.event {
                HistoryEvent::Published | HistoryEvent::RolledBack { .. }
                    if entry.version == id =>
                {
                    state = Some(VersionState::Served)
                }
                HistoryEvent::Backfilled if entry.version == id => {
                    state = state.or(Some(VersionState::Backfill))
                }
                HistoryEvent::RolledBack { from } if from == id => {
                    state = Some(VersionState::RolledBack)
                }
                _ => {}
            }
        }
        // Versions from before histories were kept count as served.
        state.unwrap_or(VersionState::Served)
    }

    /// Where a rollback from `current` goes: the most recently served version before
    /// it that is still kept (`kept`) and was not rolled away from. Without a history,
    /// the newest kept version older than `current`.
    pub fn rollback_target(&self, current: VersionId, kept: &[VersionId]) -> Option<VersionId> {
        let eligible = |id: VersionId| {
            id != current
                && kept.contains(&id)
                && self.state(id, Some(current)) == VersionState::Served
        };
        let served = self.entries.iter().rev().filter(|e| {
            matches!(
                e.event,
                HistoryEvent::Published | HistoryEvent::RolledBack { .. }
            )
        });
        for entry in served {
            if eligible(entry.version) {
                return Some(entry.version);
            }
        }
        // Versions from before histories were kept.
        kept.iter()
            .copied()
            .filter(|&id| id < current && !self.knows(id) && eligible(id))
            .max()
    }

    /// The version a rollback from `current` goes to: `to`, which must be kept and,
    /// when rolled away from before, `force`d; or [`History::rollback_target`].
    pub fn resolve_rollback(
        &self,
        current: VersionId,
        to: Option<VersionId>,
        force: bool,
        kept: &[VersionId],
    ) -> Result<VersionId, RollbackRefusal> {
        match to {
            Some(id) if id == current => Err(RollbackRefusal::AlreadyCurrent(id)),
            Some(id) if !kept.contains(&id) => Err(RollbackRefusal::Unknown(id)),
            Some(id) if !force && self.state(id, Some(current)) == VersionState::RolledBack => {
                Err(RollbackRefusal::RolledBack(id))
            }
            Some(id) => Ok(id),
            None => self
                .rollback_target(current, kept)
                .ok_or(RollbackRefusal::Nothing),
        }
    }
}

/// Why [`History::resolve_rollback`] found no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackRefusal {
    /// The version asked for is the current one.
    AlreadyCurrent(VersionId),
    /// The version asked for is not kept.
    Unknown(VersionId),
    /// The version asked for was rolled away from; it needs force.
    RolledBack(VersionId),
    /// No earlier version to go back to.
    Nothing,
}

impl RollbackRefusal {
    /// The store error for a rollback of `job` from `current`.
    pub fn into_error(self, job: &str, current: VersionId) -> crate::StoreError {
        let job = job.to_owned();
        match self {
            RollbackRefusal::AlreadyCurrent(id) => crate::StoreError::AlreadyCurrent { job, id },
            RollbackRefusal::Unknown(id) => crate::StoreError::UnknownVersion { job, id },
            RollbackRefusal::RolledBack(id) => crate::StoreError::RolledBackVersion { job, id },
            RollbackRefusal::Nothing => crate::StoreError::NothingToRollBackTo { job, current },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, event: HistoryEvent) -> HistoryEntry {
        HistoryEntry {
            version: VersionId(version),
            at: Utc::now(),
            event,
        }
    }

    fn published(version: u64) -> HistoryEntry {
        entry(version, HistoryEvent::Published)
    }

    fn rolled_back(version: u64, from: u64) -> HistoryEntry {
        entry(
            version,
            HistoryEvent::RolledBack {
                from: VersionId(from),
            },
        )
    }

    fn ids(ids: &[u64]) -> Vec<VersionId> {
        ids.iter().copied().map(VersionId).collect()
    }

    #[test]
    fn rollback_goes_to_what_was_served_before_not_to_what_was_rolled_away_from() {
        // v2 rolled back to v1, then v3 published: rollback goes to v1, not v2.
        let history = History::new(vec![
            published(1),
            published(2),
            rolled_back(1, 2),
            published(3),
        ]);
        assert_eq!(
            history.rollback_target(VersionId(3), &ids(&[1, 2, 3])),
            Some(VersionId(1))
        );
        assert_eq!(
            history.state(VersionId(2), Some(VersionId(3))),
            VersionState::RolledBack
        );
        assert_eq!(
            history.state(VersionId(1), Some(VersionId(3))),
            VersionState::Served
        );
    }

    #[test]
    fn a_second_rollback_skips_both_rejected_versions() {
        let history = History::new(vec![
            published(1),
            published(2),
            published(3),
            rolled_back(2, 3),
        ]);
        assert_eq!(
            history.rollback_target(VersionId(2), &ids(&[1, 2, 3])),
            Some(VersionId(1))
        );
    }

    #[test]
    fn a_version_served_again_is_no_longer_rolled_back() {
        let history = History::new(vec![
            published(1),
            published(2),
            rolled_back(1, 2),
            rolled_back(2, 1),
        ]);
        assert_eq!(
            history.state(VersionId(2), Some(VersionId(2))),
            VersionState::Current
        );
        assert_eq!(
            history.state(VersionId(1), Some(VersionId(2))),
            VersionState::RolledBack
        );
        assert_eq!(history.rollback_target(VersionId(2), &ids(&[1, 2])), None);
    }

    #[test]
    fn backfills_are_not_rollback_targets_and_deleted_versions_are_skipped() {
        let history = History::new(vec![
            published(1),
            published(2),
            entry(3, HistoryEvent::Backfilled),
            published(4),
        ]);
        assert_eq!(
            history.state(VersionId(3), Some(VersionId(4))),
            VersionState::Backfill
        );
        assert_eq!(
            history.rollback_target(VersionId(4), &ids(&[1, 3, 4])),
            Some(VersionId(1))
        );
        assert_eq!(history.last_served(), Some(VersionId(4)));
    }

    #[test]
    fn without_a_history_rollback_goes_to_the_newest_older_version() {
        let history = History::default();
        assert_eq!(
            history.rollback_target(VersionId(3), &ids(&[1, 2, 3])),
            Some(VersionId(2))
        );
        assert_eq!(history.rollback_target(VersionId(1), &ids(&[1, 2])), None);
    }

    #[test]
    fn entries_serialise_flat() {
        let json = serde_json::to_string(&rolled_back(1, 2)).unwrap();
        assert!(json.contains(r#""event":"rolled_back""#), "{json}");
        assert!(json.contains(r#""from":2"#), "{json}");
        let back: HistoryEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.event, HistoryEvent::RolledBack { from: VersionId(2) });
    }
}
