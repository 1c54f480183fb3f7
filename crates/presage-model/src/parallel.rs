use rayon::prelude::*;

use crate::{Model, ModelError, Scores};

/// Rows per task: large enough to amortise dispatch, small enough to balance cores.
const CHUNK_ROWS: usize = 4096;

/// Scores `rows` rows on all cores (rayon's pool), in row order.
///
/// The matrix is split into chunks of whole rows; each chunk is scored by
/// [`Model::score`] on a worker thread and the results are concatenated.
pub fn score_parallel(
    model: &dyn Model,
    features: &[f32],
    rows: usize,
) -> Result<Scores, ModelError> {
    let n = model.info().n_features;
    ModelError::check_shape(features, rows, n)?;
    if rows <= CHUNK_ROWS || n == 0 {
        return model.score(features, rows);
    }
    let parts: Vec<Scores> = features
        .par_chunks(CHUNK_ROWS * n)
        .map(|chunk| model.score(chunk, chunk.len() / n))
        .collect::<Result<_, _>>()?;
    let mut all = Scores::with_rows(rows);
    for part in &parts {
        all.append(part);
    }
    Ok(all)
}
