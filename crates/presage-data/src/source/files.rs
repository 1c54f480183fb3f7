//! Files on local disk as a source: Parquet, CSV or newline-delimited JSON.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use arrow::datatypes::Schema;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::objects::{Listing, PartitionColumn, StorageOptions, session_store};
use super::{OpenedSource, SourceFingerprint, SourceKind};
use crate::DataError;

/// The file format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// Newline-delimited JSON: one object per line.
    #[serde(alias = "ndjson", alias = "jsonl")]
    Json,
}

impl SourceFormat {
    /// The format a file's extension implies, if any.
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            _ => None,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "Parquet",
            Self::Csv => "CSV",
            Self::Json => "JSON",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Files on local disk: a file, a folder (every data file below it) or a glob
/// (`data/events/*.parquet`), all of one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    /// A file, a folder or a glob; relative paths are relative to the working directory.
    pub path: PathBuf,
    /// The format; `None` infers it from the files' extensions.
    pub format: Option<SourceFormat>,
    /// Partition columns of a hive-partitioned folder; empty for plain files.
    pub partitions: Vec<PartitionColumn>,
}

/// Files whose schemas are read at once while opening a source.
const SCHEMA_READS_IN_FLIGHT: usize = 16;

impl FileSource {
    /// A source over `path` (a file, a folder or a glob) in `format`, or in the format
    /// the files' extensions say.
    pub fn new(path: impl Into<PathBuf>, format: Option<SourceFormat>) -> FileSource {
        FileSource {
            path: path.into(),
            format,
            partitions: Vec::new(),
        }
    }

    /// The same source read as a hive-partitioned folder
    /// (`events/date=2026-11-01/part-0.parquet`) with `partitions`.
    pub fn with_partitions(mut self, partitions: Vec<PartitionColumn>) -> FileSource {
        self.partitions = partitions;
        self
    }

    /// The files the source holds right now, sorted; an error naming the source
    /// `name` if there are none.
    ///
    /// Files and folders whose names start with `.` or `_` (`_SUCCESS`, `.crc`) are
    /// skipped when walking a folder, as Spark and Hive writers leave them beside data.
    pub fn files(&self, name: &str) -> Result<Vec<PathBuf>, DataError> {
        let text = self.path.to_string_lossy();
        let mut files = if text.contains(['*', '?', '[']) {
            self.glob_files(name, &text)?
        } else if self.path.is_dir() {
            let mut found = Vec::new();
            self.walk(name, &self.path, &mut found)?;
            found
        } else if self.path.is_file() {
            vec![self.path.clone()]
        } else {
            Vec::new()
        };
        files.sort();
        if files.is_empty() {
            return Err(DataError::NoFiles {
                source_name: name.to_owned(),
                path: self.path.clone(),
            });
        }
        Ok(files)
    }

    /// The files and the one format they are read as.
    pub fn files_with_format(&self, name: &str) -> Result<(Vec<PathBuf>, SourceFormat), DataError> {
        let files = self.files(name)?;
        if let Some(format) = self.format {
            return Ok((files, format));
        }
        let mut first: Option<(&Path, SourceFormat)> = None;
        for file in &files {
            let format =
                SourceFormat::from_extension(file).ok_or_else(|| DataError::UnknownFormat {
                    source_name: name.to_owned(),
                    path: file.clone(),
                })?;
            match first {
                None => first = Some((file, format)),
                Some((first_path, first_format)) if first_format != format => {
                    return Err(DataError::MixedFormats {
                        source_name: name.to_owned(),
                        first_path: first_path.to_path_buf(),
                        first: first_format.name(),
                        path: file.clone(),
                        found: format.name(),
                    });
                }
                Some(_) => {}
            }
        }
        let format = first.map(|(_, f)| f).unwrap_or(SourceFormat::Parquet);
        Ok((files, format))
    }

    fn glob_files(&self, name: &str, pattern: &str) -> Result<Vec<PathBuf>, DataError> {
        let bad_glob = |message: String| DataError::BadGlob {
            source_name: name.to_owned(),
            pattern: pattern.to_owned(),
            message,
        };
        let entries = glob::glob(pattern).map_err(|e| bad_glob(e.to_string()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::Io {
                source_name: name.to_owned(),
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            if path.is_file() {
                files.push(path);
            }
        }
        Ok(files)
    }

    fn walk(&self, name: &str, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            source_name: name.to_owned(),
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file_name = entry.file_name();
            if file_name.to_string_lossy().starts_with(['.', '_']) {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                self.walk(name, &path, found)?;
            } else if self.format.is_some() || SourceFormat::from_extension(&path).is_some() {
                found.push(path);
            }
        }
        Ok(())
    }

    /// Fingerprints `files` without reading their contents: a SHA-256 over every
    /// file's path, size and modification time.
    fn fingerprint(&self, name: &str, files: &[PathBuf]) -> Result<SourceFingerprint, DataError> {
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        for file in files {
            let meta = std::fs::metadata(file).map_err(|e| DataError::Io {
                source_name: name.to_owned(),
                path: file.clone(),
                source: e,
            })?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            bytes += meta.len();
            hasher.update(file.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(meta.len().to_le_bytes());
            hasher.update(modified.to_le_bytes());
        }
        Ok(SourceFingerprint {
            name: name.to_owned(),
            path: self.location(),
            files: files.len(),
            bytes,
            fingerprint: format!("sha256:{:x}", hasher.finalize()),
        })
    }
}

#[async_trait]
impl SourceKind for FileSource {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// One table over the files listed now, with their schemas merged. Each file's
    /// schema (Parquet footer, first rows of CSV and JSON) is read, several at once,
    /// so that a bad file among many is named.
    async fn open(&self, name: &str, session: &dyn Session) -> Result<OpenedSource, DataError> {
        if !self.partitions.is_empty() {
            return self.open_partitioned(name, session).await;
        }
        let (files, format) = self.files_with_format(name)?;
        let fingerprint = self.fingerprint(name, &files)?;
        // The extension filter would drop a `.txt` file configured as CSV; the files
        // are already chosen.
        let options = ListingOptions::new(file_format(format)).with_file_extension("");
        let unreadable = |path: &Path, message: String| DataError::Unreadable {
            source_name: name.to_owned(),
            path: path.to_path_buf(),
            format: format.name(),
            message,
        };
        let options = &options;
        let read: Vec<(ListingTableUrl, Schema)> = futures::stream::iter(files.clone())
            .map(|file| async move {
                let absolute = std::path::absolute(&file).map_err(|e| DataError::Io {
                    source_name: name.to_owned(),
                    path: file.clone(),
                    source: e,
                })?;
                let url = ListingTableUrl::parse(absolute.to_string_lossy())
                    .map_err(|e| unreadable(&file, e.strip_backtrace()))?;
                let schema = options
                    .infer_schema(session, &url)
                    .await
                    .map_err(|e| unreadable(&file, e.strip_backtrace()))?;
                Ok::<_, DataError>((url, schema.as_ref().clone()))
            })
            .buffered(SCHEMA_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let (urls, schemas): (Vec<_>, Vec<_>) = read.into_iter().unzip();
        let merged = Schema::try_merge(schemas).map_err(|e| DataError::Unreadable {
            source_name: name.to_owned(),
            path: self.path.clone(),
            format: format.name(),
            message: format!("the files' schemas do not agree: {e}"),
        })?;
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options.clone())
            .with_schema(Arc::new(merged));
        let table = ListingTable::try_new(config)
            .map_err(|e| unreadable(&self.path, e.strip_backtrace()))?;
        Ok(OpenedSource {
            table: Arc::new(table) as Arc<dyn TableProvider>,
            fingerprint,
        })
    }
}

impl FileSource {
    /// A partitioned folder is read through the session's local object store, as a
    /// partitioned prefix in object storage is.
    async fn open_partitioned(
        &self,
        name: &str,
        session: &dyn Session,
    ) -> Result<OpenedSource, DataError> {
        let location = self.location();
        let remote = |message: String| DataError::Remote {
            source_name: name.to_owned(),
            url: location.clone(),
            message,
        };
        if !self.path.is_dir() {
            return Err(remote(
                "a partitioned source is a folder (`events/` holding `date=…/` folders)".to_owned(),
            ));
        }
        let absolute = std::path::absolute(&self.path).map_err(|e| DataError::Io {
            source_name: name.to_owned(),
            path: self.path.clone(),
            source: e,
        })?;
        let table_url = ListingTableUrl::parse(format!(
            "{}/",
            absolute.to_string_lossy().trim_end_matches('/')
        ))
        .map_err(|e| remote(e.strip_backtrace()))?;
        let store =
            session_store(session, &table_url, &StorageOptions::default()).map_err(remote)?;
        let listing = Listing {
            source_name: name,
            location: &location,
            table_url,
            store,
        };
        listing
            .open_partitioned(session, self.format, &self.partitions)
            .await
    }
}

/// DataFusion's reader for `format`.
pub(super) fn file_format(format: SourceFormat) -> Arc<dyn FileFormat> {
    match format {
        SourceFormat::Parquet => Arc::new(ParquetFormat::default()),
        SourceFormat::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
        SourceFormat::Json => Arc::new(JsonFormat::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: PathBuf, format: Option<SourceFormat>) -> FileSource {
        FileSource::new(path, format)
    }

    #[test]
    fn folder_glob_and_file_list_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.parquet",
            "a.parquet",
            "_SUCCESS",
            ".a.parquet.crc",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let by_folder = source(dir.path().to_path_buf(), None)
            .files("events")
            .unwrap();
        let by_glob = source(dir.path().join("*.parquet"), None)
            .files("events")
            .unwrap();
        assert_eq!(by_folder, by_glob);
        assert_eq!(by_folder.len(), 2);
        assert!(by_folder[0].ends_with("a.parquet"));
        let one = source(dir.path().join("a.parquet"), None)
            .files("events")
            .unwrap();
        assert_eq!(one, vec![dir.path().join("a.parquet")]);
    }

    #[test]
    fn no_files_names_source_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = source(dir.path().join("*.parquet"), None)
            .files("events")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("source `events`") && text.contains("no file matches"));
    }

    #[test]
    fn mixed_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), b"x").unwrap();
        std::fs::write(dir.path().join("b.parquet"), b"x").unwrap();
        let err = source(dir.path().to_path_buf(), None)
            .files_with_format("events")
            .unwrap_err();
        assert!(
            err.to_string().contains("one source holds one format"),
            "{err}"
        );
    }

    #[test]
    fn fingerprint_changes_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        std::fs::write(&file, b"a\n1\n").unwrap();
        let s = source(file.clone(), None);
        let before = s
            .fingerprint("events", &s.files("events").unwrap())
            .unwrap();
        std::fs::write(&file, b"a\n1\n2\n").unwrap();
        let after = s
            .fingerprint("events", &s.files("events").unwrap())
            .unwrap();
        assert_eq!(before.files, 1);
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(after.bytes, 6);
    }
}
