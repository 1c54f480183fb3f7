//! Sources and feature SQL: named tables over Parquet, CSV and NDJSON files (a file, a
//! folder or a glob), registered in a DataFusion session, and feature queries rendered
//! with their point-in-time cutoffs (`{{as_of}}`, `{{now}}`).

mod error;
mod pit;
mod pit_plan;
mod render;
mod session;
mod source;

pub use error::{DataError, column_list, quoted_list};
pub use pit::{PitFeatures, PitProgress, PitRequest, PointInTime, key_strings};
pub use render::{Cutoffs, render_sql, timestamp_literal};
pub use session::{FeatureQuery, FeatureSession, stream_error};
pub use source::{SourceFingerprint, SourceFormat, SourceSpec, fingerprint};
