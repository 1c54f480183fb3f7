//! Replaying label rows under several ways of computing their features ("cells"),
//! with each distinct feature query run once however many cells share it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::DateTime;
use presage_data::{Cutoffs, PitFeatures, PitProgress, PitRequest, PointInTime};

use crate::labels::Labels;
use crate::{EvalError, EvalProgress};

/// For one cell, each label row's cutoffs: `(as_of, now)` in µs.
pub(crate) type CellCutoffs = Vec<(i64, i64)>;

/// Features for every distinct `(key, as_of, now)` the cells ask for.
pub(crate) struct Replay {
    /// One row per distinct request.
    pub features: PitFeatures,
    /// Per cell, per label row: the row of `features` that answers it.
    pub rows: Vec<Vec<u32>>,
    /// Per cell, the feature queries first needed by it (shared ones count once).
    pub queries: Vec<u64>,
}

struct Progress(Arc<dyn EvalProgress>);

impl PitProgress for Progress {
    fn queries(&self, done: usize, total: usize) {
        self.0.queries(done, total);
    }
}

pub(crate) async fn replay(
    pit: &PointInTime,
    labels: &Labels,
    cells: &[CellCutoffs],
    progress: Arc<dyn EvalProgress>,
) -> Result<Replay, EvalError> {
    let mut index: HashMap<(&str, i64, i64), u32> = HashMap::new();
    let mut requests: Vec<PitRequest> = Vec::new();
    let mut first_cell: HashMap<(i64, i64), usize> = HashMap::new();
    let mut rows = Vec::with_capacity(cells.len());
    for (c, cutoffs) in cells.iter().enumerate() {
        let mut cell_rows = Vec::with_capacity(cutoffs.len());
        for (key, &(as_of, now)) in labels.keys.iter().zip(cutoffs) {
            first_cell.entry((as_of, now)).or_insert(c);
            let next = requests.len() as u32;
            let row = *index.entry((key.as_str(), as_of, now)).or_insert_with(|| {
                requests.push(PitRequest {
                    key: key.clone(),
                    cutoffs: Cutoffs {
                        as_of: DateTime::from_timestamp_micros(as_of)
                            .expect("label times are valid"),
                        now: DateTime::from_timestamp_micros(now).expect("label times are valid"),
                    },
                });
                next
            });
            cell_rows.push(row);
        }
        rows.push(cell_rows);
    }
    let mut queries = vec![0u64; cells.len()];
    for c in first_cell.values() {
        queries[*c] += 1;
    }
    progress.step(&format!(
        "computing features: {} distinct requests, {} point-in-time queries",
        requests.len(),
        first_cell.len()
    ));
    let features = pit
        .compute(&requests, Arc::new(Progress(progress.clone())))
        .await?;
    Ok(Replay {
        features,
        rows,
        queries,
    })
}

/// A cell's scores, one per label row; `None` where the entity had no features at
/// its cutoffs and the job has no default answer.
pub(crate) fn cell_scores(
    replay: &Replay,
    cell: usize,
    scores: &[f64],
    default_score: Option<f64>,
) -> Vec<Option<f64>> {
    replay.rows[cell]
        .iter()
        .map(|&r| {
            if replay.features.found[r as usize] {
                Some(scores[r as usize])
            } else {
                default_score
            }
        })
        .collect()
}

/// The rows every one of `cells` could answer: the rows all cells are measured on,
/// so their metrics compare like with like.
pub(crate) fn answered_by_all(cells: &[&[Option<f64>]], rows: usize) -> Vec<bool> {
    (0..rows)
        .map(|i| cells.iter().all(|cell| cell[i].is_some()))
        .collect()
}

/// `values` at the rows `keep` marks.
pub(crate) fn select<T: Copy>(values: &[T], keep: &[bool]) -> Vec<T> {
    values
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| *v)
        .collect()
}

/// A cell's scores at the kept rows (which all have one).
pub(crate) fn kept_scores(cell: &[Option<f64>], keep: &[bool]) -> Vec<f64> {
    select(cell, keep)
        .into_iter()
        .map(|s| s.expect("kept rows have scores"))
        .collect()
}
