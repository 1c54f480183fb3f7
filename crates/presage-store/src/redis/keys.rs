//! Names of a job's keys in Redis.
//!
//! The keys that change together (pointer, versions, manifests, staging, id counter)
//! carry the job in a hash tag, `presage:{churn}:...`, so Redis Cluster puts them in
//! one slot and a script can update them atomically. Data keys carry no hash tag,
//! `presage:churn:v3:<key>`, so a version spreads over every node.

use super::RedisStoreError;
use crate::VersionId;

/// The key names of one job.
#[derive(Debug, Clone)]
pub(crate) struct JobKeys {
    /// `presage:{churn}:`
    tagged: String,
    /// `presage:churn:v`
    data: String,
}

impl JobKeys {
    /// The keys of `job` under `namespace`, or an error if the job name would break
    /// the layout (a `{` would move the hash tag, a `:` would make prefixes ambiguous).
    pub(crate) fn new(namespace: &str, job: &str) -> Result<JobKeys, RedisStoreError> {
        if crate::job_name_problem(job).is_some() {
            return Err(RedisStoreError::BadJobName {
                job: job.to_owned(),
            });
        }
        Ok(JobKeys {
            tagged: format!("{namespace}:{{{job}}}:"),
            data: format!("{namespace}:{job}:v"),
        })
    }

    /// The pointer: the current version id, as decimal text.
    pub(crate) fn current(&self) -> String {
        format!("{}current", self.tagged)
    }

    /// A sorted set of the published, not yet deleted version ids (score = id).
    pub(crate) fn versions(&self) -> String {
        format!("{}versions", self.tagged)
    }

    /// The counter that hands out version ids.
    pub(crate) fn next_id(&self) -> String {
        format!("{}next_id", self.tagged)
    }

    /// A hash: version id → lease deadline (ms, server clock) of versions being
    /// written, or `0` for versions whose keys are to be deleted.
    pub(crate) fn staging(&self) -> String {
        format!("{}staging", self.tagged)
    }

    /// A hash: version id → the version's completeness record (JSON: its row count
    /// and a sample of its keys), and `since` → the first version published with one.
    pub(crate) fn complete(&self) -> String {
        format!("{}complete", self.tagged)
    }

    /// The last run record (JSON).
    pub(crate) fn history(&self) -> String {
        format!("{}history", self.tagged)
    }

    pub(crate) fn run_lock(&self) -> String {
        format!("{}run_lock", self.tagged)
    }

    pub(crate) fn last_run(&self) -> String {
        format!("{}last_run", self.tagged)
    }

    /// Prefix of the manifest keys; a version's is this followed by its id.
    pub(crate) fn manifest_prefix(&self) -> String {
        format!("{}manifest:", self.tagged)
    }

    /// A version's manifest (JSON).
    pub(crate) fn manifest(&self, id: VersionId) -> String {
        format!("{}manifest:{id}", self.tagged)
    }

    /// The prefix of a version's data keys: `presage:churn:v3:`.
    pub(crate) fn data_prefix(&self, id: VersionId) -> String {
        format!("{}{id}:", self.data)
    }

    /// A `SCAN MATCH` pattern for the data keys of every version of the job.
    pub(crate) fn data_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.data.len() + 1);
        for c in self.data.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// The version id of a data key of this job, or `None` for another key.
    pub(crate) fn data_key_id(&self, key: &[u8]) -> Option<u64> {
        let rest = key.strip_prefix(self.data.as_bytes())?;
        let end = rest.iter().position(|&b| b == b':')?;
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    }
}

/// The set of jobs that ever published (for listing).
pub(crate) fn jobs_key(namespace: &str) -> String {
    format!("{namespace}:jobs")
}

/// Checks a namespace for the characters that would break the layout.
pub(crate) fn check_namespace(namespace: &str) -> Result<(), RedisStoreError> {
    let bad = namespace.is_empty()
        || namespace
            .chars()
            .any(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control());
    if bad {
        return Err(RedisStoreError::BadNamespace {
            namespace: namespace.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let keys = JobKeys::new("presage", "churn").unwrap();
        assert_eq!(keys.current(), "presage:{churn}:current");
        assert_eq!(keys.manifest(VersionId(3)), "presage:{churn}:manifest:3");
        assert_eq!(keys.data_prefix(VersionId(3)), "presage:churn:v3:");
        assert_eq!(keys.data_key_id(b"presage:churn:v3:user:1"), Some(3));
        assert_eq!(keys.data_key_id(b"presage:churnx:v3:a"), None);
        assert_eq!(keys.data_key_id(b"presage:churn:vx:a"), None);
    }

    #[test]
    fn glob_characters_are_escaped() {
        let keys = JobKeys::new("presage", "a*b[1]").unwrap();
        assert_eq!(keys.data_pattern(), r"presage:a\*b\[1\]:v*");
    }

    #[test]
    fn names_that_break_the_layout_are_refused() {
        for job in ["", "a{b", "a}b", "a:b", "a b"] {
            assert!(JobKeys::new("presage", job).is_err(), "{job:?}");
        }
    }
}
