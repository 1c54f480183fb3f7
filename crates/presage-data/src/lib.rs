//! Sources and feature SQL: named tables of any source kind (files in Parquet, CSV
//! and NDJSON as a file, a folder, a glob or a hive-partitioned dataset, on local disk
//! or in object storage; Postgres tables and queries), opened in a DataFusion session when
//! a query reads them, and feature queries rendered with their point-in-time cutoffs
//! (`{{as_of}}`, `{{now}}`). A source kind is one [`SourceKind`] implementation.

mod distinct;
mod error;
mod features;
mod pit;
mod pit_plan;
mod render;
mod session;
mod source;

pub use error::{ByteSize, DataError, column_list, error_chain, quoted_list};
pub use features::FeatureSpec;
pub use pit::{PitFeatures, PitProgress, PitRequest, PointInTime, key_strings};
pub use render::{Cutoffs, render_sql, timestamp_literal};
pub use session::{
    FeatureQuery, FeatureSession, FeatureStream, QueryLimits, QueryProgress, plan_error,
    stream_error,
};
pub use source::{
    FetchStats, FileSource, ObjectSource, OpenedSource, PartitionColumn, PostgresConnection,
    PostgresRelation, PostgresSource, SourceFingerprint, SourceFormat, SourceKind, SourceSpec,
    StorageOptions, is_remote_url, write_files,
};
