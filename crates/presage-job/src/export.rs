//! Copies a published version's predictions to the job's `export` destination.
//!
//! The rows are teed into a local Parquet file while the run writes them to the
//! store (every store, Redis included, then exports the same way); after publish
//! the file and the manifest go to `<destination>/version=<id>/`, manifest last. Any
//! failure here is recorded and reported, and never touches the published version.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use presage_store::{ExportRecord, Manifest};

use crate::ExportSpec;

/// The rows of a run, as a local Parquet file waiting for publish.
pub(crate) struct ExportFile {
    path: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<std::fs::File>>,
    error: Option<String>,
}

impl ExportFile {
    /// A file in the system's temporary folder for `job`'s rows: `key` and `outputs`.
    pub(crate) fn create(job: &str, key: Field, outputs: &[Field]) -> ExportFile {
        let path = std::env::temp_dir().join(format!(
            "presage-export-{job}-{}-{}.parquet",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        let fields: Vec<Field> = std::iter::once(key)
            .chain(outputs.iter().map(|f| f.clone().with_nullable(true)))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let opened = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create `{}`: {e}", path.display()))
            .and_then(|file| {
                ArrowWriter::try_new(file, schema.clone(), Some(properties))
                    .map_err(|e| e.to_string())
            });
        let (writer, error) = match opened {
            Ok(writer) => (Some(writer), None),
            Err(e) => (None, Some(e)),
        };
        ExportFile {
            path,
            schema,
            writer,
            error,
        }
    }

    /// Adds one batch; a failure is kept for the outcome and stops the export, not
    /// the run.
    pub(crate) fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let columns: Vec<ArrayRef> = std::iter::once(keys.clone())
            .chain(outputs.iter().cloned())
            .collect();
        let written = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| e.to_string())
            .and_then(|batch| writer.write(&batch).map_err(|e| e.to_string()));
        if let Err(e) = written {
            self.error = Some(format!("writing the rows to export: {e}"));
            self.writer = None;
        }
    }

    /// Copies the rows and `manifest` to the destination of `spec`; the record says
    /// where, and what failed.
    pub(crate) async fn publish(mut self, spec: &ExportSpec, manifest: &Manifest) -> ExportRecord {
        let destination = format!(
            "{}/version={}/",
            spec.destination.trim_end_matches('/'),
            manifest.id
        );
        let error = self.copy(spec, manifest, &destination).await.err();
        ExportRecord { destination, error }
    }

    async fn copy(
        &mut self,
        spec: &ExportSpec,
        manifest: &Manifest,
        destination: &str,
    ) -> Result<(), String> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let writer = self.writer.take().expect("open until published");
        writer
            .close()
            .map_err(|e| format!("writing the rows to export: {e}"))?;
        let manifest_path = self.path.with_extension("manifest.json");
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        std::fs::write(&manifest_path, json)
            .map_err(|e| format!("cannot write `{}`: {e}", manifest_path.display()))?;
        let files = [
            ("predictions.parquet".to_owned(), self.path.clone()),
            ("manifest.json".to_owned(), manifest_path.clone()),
        ];
        let copied = presage_data::write_files(destination, &spec.storage, &files).await;
        let _ = std::fs::remove_file(&manifest_path);
        copied
    }
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        self.writer = None;
        let _ = std::fs::remove_file(&self.path);
    }
}
