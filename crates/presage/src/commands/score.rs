use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use presage_data::{FeatureSession, FileSource, SourceSpec};
use presage_model::{BatchScorer, ModelSpec, OutputField, ScoreError, column_index};

/// `presage score`: a file of rows in, a Parquet file of predictions out.
pub fn score(
    model_path: &Path,
    input: &Path,
    output: Option<&Path>,
    key: Option<&str>,
    inputs: &[String],
) -> Result<()> {
    let started = Instant::now();
    let output: PathBuf =
        output.map_or_else(|| input.with_extension("scored.parquet"), Path::to_path_buf);
    let rt = super::runtime()?;
    let (rows, engine) = rt.block_on(async {
        let source = SourceSpec::new("input", FileSource::new(input, None));
        let session = FeatureSession::new(std::slice::from_ref(&source))?;
        let plan = session.plan("input", "SELECT * FROM input").await?;
        let schema = plan.schema();
        let key_index = key
            .map(|k| column_index(&schema, "input", k, "key"))
            .transpose()?;
        let spec = ModelSpec {
            name: model_path.display().to_string(),
            path: model_path.to_path_buf(),
            inputs: inputs.to_vec(),
            outputs: BTreeMap::new(),
        };
        // A model with named inputs binds its columns by name; any other model
        // without `--inputs` reads every column but the key.
        let model = match spec.load() {
            Err(ScoreError::InputsNotListed { .. }) => ModelSpec {
                inputs: schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != key_index)
                    .map(|(_, f)| f.name().clone())
                    .collect(),
                ..spec
            }
            .load()
            .map_err(|e| match e {
                ScoreError::InputCount { .. } => anyhow::Error::new(e).context(
                    "without `--inputs` every column but `--key` is an input; choose them with `--inputs a,b,c` and the id column with `--key`",
                ),
                e => e.into(),
            })?,
            loaded => loaded?,
        };
        let engine = format!(
            "{} model, {} engine",
            model.info().format,
            model.info().engine
        );
        let mut scorer = BatchScorer::new(model, "input", &schema)?;
        // DataFusion reads Parquet strings as views; the output uses plain strings,
        // which every Parquet reader maps to its usual string type.
        let key_field = key_index.map(|i| {
            let field = schema.field(i);
            match field.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => {
                    field.clone().with_data_type(DataType::Utf8)
                }
                DataType::BinaryView | DataType::LargeBinary => {
                    field.clone().with_data_type(DataType::Binary)
                }
                _ => field.clone(),
            }
        });
        let mut fields: Vec<Field> = key_field.iter().cloned().collect();
        fields.extend(scorer.outputs().iter().map(OutputField::arrow_field));
        let out_schema = Arc::new(Schema::new(fields));
        let file = fs_err::File::create(&output)?;
        let mut writer = ArrowWriter::try_new(file, out_schema.clone(), None)
            .with_context(|| format!("writing `{}`", output.display()))?;
        let mut stream = plan.stream().await?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let mut columns = Vec::with_capacity(out_schema.fields().len());
            if let (Some(i), Some(field)) = (key_index, &key_field) {
                columns.push(cast(batch.column(i), field.data_type())?);
            }
            columns.extend(tokio::task::block_in_place(|| scorer.score(&batch))?);
            writer
                .write(&RecordBatch::try_new(out_schema.clone(), columns)?)
                .with_context(|| format!("writing `{}`", output.display()))?;
            rows += batch.num_rows() as u64;
        }
        writer
            .close()
            .with_context(|| format!("writing `{}`", output.display()))?;
        anyhow::Ok((rows, engine))
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scored {rows} rows in {secs:.2}s ({:.0} rows/s; {engine}) → {}",
        rows as f64 / secs.max(1e-9),
        output.display()
    );
    Ok(())
}
