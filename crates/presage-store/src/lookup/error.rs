use std::path::PathBuf;

use super::FieldType;

/// Why a lookup file could not be written, opened or verified.
///
/// Variants about a file carry its path; variants about the input say which row,
/// key or field was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Reading, writing or syncing the file failed.
    #[error("i/o error on lookup file `{path}`")]
    Io {
        /// The lookup file (or one of its side files while building).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a complete lookup file: wrong magic, truncated, or a section
    /// that points outside the file.
    #[error("lookup file `{path}` is corrupt: {reason}")]
    Corrupt {
        /// The lookup file.
        path: PathBuf,
        /// What was wrong, in a few words.
        reason: String,
    },
    /// A checksum stored in the file does not match the bytes.
    #[error(
        "lookup file `{path}` has a bad {section} checksum: stored `{expected:016x}`, computed `{actual:016x}`"
    )]
    ChecksumMismatch {
        /// The lookup file.
        path: PathBuf,
        /// Which checksum: `header` (checked at open) or `data` (checked by `verify`).
        section: &'static str,
        /// The checksum stored in the header.
        expected: u64,
        /// The checksum of the bytes now.
        actual: u64,
    },
    /// The file was written by a format version this build cannot read.
    #[error(
        "lookup file `{path}` has format version `{found}`, this build reads version `{supported}`"
    )]
    UnsupportedVersion {
        /// The lookup file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A key in the batch is null.
    #[error("null key at row `{row}` while writing `{path}`")]
    NullKey {
        /// The lookup file being written.
        path: PathBuf,
        /// The row, counted from the first row of the first batch.
        row: u64,
    },
    /// The same key was appended twice; found by `finish`.
    #[error("duplicate key while writing `{path}`: `{key}`")]
    DuplicateKey {
        /// The lookup file being written.
        path: PathBuf,
        /// The key, as text.
        key: String,
    },
    /// An unsigned integer key does not fit in the file's signed 64-bit keys.
    #[error(
        "key at row `{row}` does not fit in a signed 64-bit integer while writing `{path}`: `{value}`"
    )]
    KeyOutOfRange {
        /// The lookup file being written.
        path: PathBuf,
        /// The row, counted from the first row of the first batch.
        row: u64,
        /// The key.
        value: u64,
    },
    /// A field's Arrow type has no lookup-file encoding (see [`FieldType::from_arrow`]).
    #[error("field `{field}` has type `{data_type}`, which a lookup file cannot store")]
    FieldType {
        /// The field name.
        field: String,
        /// The Arrow data type, as text.
        data_type: String,
    },
    /// A batch column's Arrow type does not match the field declared at `create`.
    #[error(
        "column `{field}` has type `{data_type}` while writing `{path}`, the field was declared `{expected}`"
    )]
    ColumnType {
        /// The lookup file being written.
        path: PathBuf,
        /// The field name.
        field: String,
        /// The declared field type.
        expected: FieldType,
        /// The column's Arrow data type, as text.
        data_type: String,
    },
    /// The key column's Arrow type does not match the file's key type.
    #[error(
        "key column has type `{data_type}` while writing `{path}`, the file holds `{expected}` keys"
    )]
    KeyType {
        /// The lookup file being written.
        path: PathBuf,
        /// The file's key type.
        expected: super::KeyType,
        /// The column's Arrow data type, as text.
        data_type: String,
    },
    /// Two fields have the same name (they would be the same JSON key).
    #[error("field `{field}` is declared twice while creating `{path}`")]
    DuplicateField {
        /// The lookup file being written.
        path: PathBuf,
        /// The field name.
        field: String,
    },
    /// A batch has the wrong number of value columns.
    #[error(
        "batch has `{found}` value columns while writing `{path}`, the file has `{expected}` fields"
    )]
    ColumnCount {
        /// The lookup file being written.
        path: PathBuf,
        /// The number of fields declared at `create`.
        expected: usize,
        /// The number of columns given.
        found: usize,
    },
    /// A value column is not as long as the key column.
    #[error(
        "column `{field}` has `{found}` rows while writing `{path}`, the key column has `{expected}`"
    )]
    ColumnLength {
        /// The lookup file being written.
        path: PathBuf,
        /// The field name.
        field: String,
        /// The key column's length.
        expected: usize,
        /// The value column's length.
        found: usize,
    },
    /// The file would exceed what a slot can address (1 TiB of records).
    #[error(
        "lookup file `{path}` is too large: records reach byte `{offset}`, the format addresses up to `{limit}`"
    )]
    TooLarge {
        /// The lookup file being written.
        path: PathBuf,
        /// Where the records ended.
        offset: u64,
        /// The largest offset the format can store.
        limit: u64,
    },
}

impl LookupError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> LookupError {
        LookupError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A corruption found while reading `path`.
    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> LookupError {
        LookupError::Corrupt {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}
