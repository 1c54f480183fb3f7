use std::fmt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use sha2::{Digest, Sha256};

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

/// A named table the feature SQL reads: a file, a folder (every data file below it) or a
/// glob (`data/events/*.parquet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The table name in SQL.
    pub name: String,
    /// A file, a folder or a glob; relative paths are relative to the working directory.
    pub path: PathBuf,
    /// The format; `None` infers it from the files' extensions.
    pub format: Option<SourceFormat>,
}

impl SourceSpec {
    /// The files the source holds right now, sorted; an error if there are none.
    ///
    /// Files and folders whose names start with `.` or `_` (`_SUCCESS`, `.crc`) are
    /// skipped when walking a folder, as Spark and Hive writers leave them beside data.
    pub fn files(&self) -> Result<Vec<PathBuf>, DataError> {
        let text = self.path.to_string_lossy();
        let mut files = if text.contains(['*', '?', '[']) {
            self.glob_files(&text)?
        } else if self.path.is_dir() {
            let mut found = Vec::new();
            self.walk(&self.path, &mut found)?;
            found
        } else if self.path.is_file() {
            vec![self.path.clone()]
        } else {
            Vec::new()
        };
        files.sort();
        if files.is_empty() {
            return Err(DataError::NoFiles {
                source_name: self.name.clone(),
                path: self.path.clone(),
            });
        }
        Ok(files)
    }

    /// The files and the one format they are read as.
    pub fn files_with_format(&self) -> Result<(Vec<PathBuf>, SourceFormat), DataError> {
        let files = self.files()?;
        if let Some(format) = self.format {
            return Ok((files, format));
        }
        let mut first: Option<(&Path, SourceFormat)> = None;
        for file in &files {
            let format =
                SourceFormat::from_extension(file).ok_or_else(|| DataError::UnknownFormat {
                    source_name: self.name.clone(),
                    path: file.clone(),
                })?;
            match first {
                None => first = Some((file, format)),
                Some((first_path, first_format)) if first_format != format => {
                    return Err(DataError::MixedFormats {
                        source_name: self.name.clone(),
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

    fn glob_files(&self, pattern: &str) -> Result<Vec<PathBuf>, DataError> {
        let bad_glob = |message: String| DataError::BadGlob {
            source_name: self.name.clone(),
            pattern: pattern.to_owned(),
            message,
        };
        let entries = glob::glob(pattern).map_err(|e| bad_glob(e.to_string()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::Io {
                source_name: self.name.clone(),
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            if path.is_file() {
                files.push(path);
            }
        }
        Ok(files)
    }

    fn walk(&self, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            source_name: self.name.clone(),
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(['.', '_']) {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                self.walk(&path, found)?;
            } else if self.format.is_some() || SourceFormat::from_extension(&path).is_some() {
                found.push(path);
            }
        }
        Ok(())
    }
}

/// What a source held when a version was computed, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFingerprint {
    /// The source's name.
    pub name: String,
    /// Its configured path.
    pub path: String,
    /// Number of files.
    pub files: usize,
    /// Total bytes.
    pub bytes: u64,
    /// SHA-256 over every file's path, size and modification time: equal fingerprints
    /// mean (barring in-place rewrites within the clock's resolution) the same data.
    pub fingerprint: String,
}

/// Lists `source`'s files and fingerprints them without reading their contents.
pub fn fingerprint(source: &SourceSpec) -> Result<SourceFingerprint, DataError> {
    let files = source.files()?;
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    for file in &files {
        let meta = std::fs::metadata(file).map_err(|e| DataError::Io {
            source_name: source.name.clone(),
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
        name: source.name.clone(),
        path: source.path.display().to_string(),
        files: files.len(),
        bytes,
        fingerprint: format!("sha256:{:x}", hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: PathBuf, format: Option<SourceFormat>) -> SourceSpec {
        SourceSpec {
            name: "events".into(),
            path,
            format,
        }
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
        let by_folder = source(dir.path().to_path_buf(), None).files().unwrap();
        let by_glob = source(dir.path().join("*.parquet"), None).files().unwrap();
        assert_eq!(by_folder, by_glob);
        assert_eq!(by_folder.len(), 2);
        assert!(by_folder[0].ends_with("a.parquet"));
        let one = source(dir.path().join("a.parquet"), None).files().unwrap();
        assert_eq!(one, vec![dir.path().join("a.parquet")]);
    }

    #[test]
    fn no_files_names_source_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = source(dir.path().join("*.parquet"), None)
            .files()
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
            .files_with_format()
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
        let before = fingerprint(&s).unwrap();
        std::fs::write(&file, b"a\n1\n2\n").unwrap();
        let after = fingerprint(&s).unwrap();
        assert_eq!(before.files, 1);
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(after.bytes, 6);
    }
}
