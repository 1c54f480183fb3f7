use std::path::PathBuf;

/// Why a source could not be read or a feature query could not run.
///
/// Every variant names the source or query it is about, and the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A source's path matches no file.
    #[error("source `{source_name}`: no file matches `{}`", path.display())]
    NoFiles {
        /// The source's name.
        source_name: String,
        /// The configured path.
        path: PathBuf,
    },
    /// A source's glob pattern is malformed.
    #[error("source `{source_name}`: bad glob pattern `{pattern}`: {message}")]
    BadGlob {
        /// The source's name.
        source_name: String,
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file format could not be told from the extension.
    #[error(
        "source `{source_name}`: cannot tell the format of `{}` from its extension; set `format = \"parquet\" | \"csv\" | \"json\"`",
        path.display()
    )]
    UnknownFormat {
        /// The source's name.
        source_name: String,
        /// The file.
        path: PathBuf,
    },
    /// A source's files are of different formats.
    #[error(
        "source `{source_name}`: `{}` is {found} but `{}` is {first}; one source holds one format",
        path.display(),
        first_path.display()
    )]
    MixedFormats {
        /// The source's name.
        source_name: String,
        /// The first file.
        first_path: PathBuf,
        /// Its format.
        first: &'static str,
        /// A file of another format.
        path: PathBuf,
        /// Its format.
        found: &'static str,
    },
    /// A file could not be read as its format (its schema could not be read).
    #[error("source `{source_name}`: cannot read `{}` as {format}: {message}", path.display())]
    Unreadable {
        /// The source's name.
        source_name: String,
        /// The file.
        path: PathBuf,
        /// The format it was read as.
        format: &'static str,
        /// The reader's error.
        message: String,
    },
    /// Listing or statting a source's files failed.
    #[error("source `{source_name}`: `{}`: {source}", path.display())]
    Io {
        /// The source's name.
        source_name: String,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Listing or reading a source in object storage failed, or its URL or storage
    /// settings are wrong.
    #[error("source `{source_name}` (`{url}`): {message}")]
    Remote {
        /// The source's name.
        source_name: String,
        /// The source's URL as configured.
        url: String,
        /// What failed, on one line.
        message: String,
    },
    /// A feature query does not parse or plan (syntax, unknown table or column, types).
    #[error("feature SQL of `{query}`: {message}")]
    Sql {
        /// The feature set (or check) the SQL belongs to.
        query: String,
        /// DataFusion's message.
        message: String,
    },
    /// A feature query failed while running (a bad file, a failed cast, a full disk).
    #[error("feature SQL of `{query}` failed while running: {message}")]
    Execution {
        /// The feature set (or check) the SQL belongs to.
        query: String,
        /// DataFusion's message.
        message: String,
    },
    /// A feature query needed more memory than the run's limit allows, after the
    /// operators that can spill had spilled.
    #[error(
        "feature SQL of `{query}` needs more memory than the run's limit of {}: {operator} could not grow; raise `[run] memory_limit` in presage.toml or pass `--memory-limit`, or make the query hold less at once (fewer groups, a smaller join side)",
        ByteSize(*limit)
    )]
    MemoryLimit {
        /// The feature set (or check) the SQL belongs to.
        query: String,
        /// The operator that asked for more (`GroupedHashAggregateStream[1]`).
        operator: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The SQL uses a `{{placeholder}}` presage does not know.
    #[error(
        "feature SQL of `{query}`: unknown placeholder `{{{{{name}}}}}`; known: {{{{as_of}}}}, {{{{now}}}}"
    )]
    UnknownPlaceholder {
        /// The feature set.
        query: String,
        /// The placeholder's name.
        name: String,
    },
    /// The SQL opens a `{{` it never closes.
    #[error("feature SQL of `{query}`: `{{{{` at byte {offset} is never closed with `}}}}`")]
    UnclosedPlaceholder {
        /// The feature set.
        query: String,
        /// Where the `{{` is.
        offset: usize,
    },
    /// `entity_columns` names a source that is not configured.
    #[error(
        "feature set `{query}`: `entity_columns` names source `{source_name}`, which is not defined; sources: {available}"
    )]
    UnknownEntitySource {
        /// The feature set.
        query: String,
        /// The name given.
        source_name: String,
        /// The sources there are.
        available: String,
    },
    /// A source lacks the entity column configured for it.
    #[error(
        "source `{source_name}` has no column `{column}` (its entity column); columns: {available}"
    )]
    MissingEntityColumn {
        /// The source.
        source_name: String,
        /// The configured column.
        column: String,
        /// The columns it has.
        available: String,
    },
    /// The feature query does not return its key column.
    #[error("feature SQL of `{query}` returns no key column `{column}`; it returns: {available}")]
    MissingKey {
        /// The feature set.
        query: String,
        /// The key column.
        column: String,
        /// The columns it returns.
        available: String,
    },
    /// A key column is neither text nor an integer.
    #[error("`{query}`: key column `{column}` is {found}; expected a string or an integer")]
    KeyType {
        /// The feature set or source.
        query: String,
        /// The column.
        column: String,
        /// Its type.
        found: String,
    },
    /// Two sources share a name (table names are case-insensitive in SQL).
    #[error("source `{name}` is defined twice")]
    DuplicateSource {
        /// The name.
        name: String,
    },
}

/// Names as an error message lists them: `` `a`, `b` ``.
pub fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of `schema`, as error messages list what is there.
pub fn column_list(schema: &arrow::datatypes::Schema) -> String {
    quoted_list(schema.fields().iter().map(|f| f.name().as_str()))
}

/// An error and its causes on one line, as the CLI prints them (`a: b: c`); for
/// records that outlive the error (a run's outcome, a challenger's rejection).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Bytes for people: `512 B`, `1.5 MiB`, `2.0 GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}
