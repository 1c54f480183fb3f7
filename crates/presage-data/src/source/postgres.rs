//! A Postgres table or query as a source.
//!
//! Opening asks Postgres for the relation's columns (a prepared `SELECT … LIMIT 0`);
//! a scan sends one `COPY (SELECT <projected columns> FROM … WHERE <pushed filters>)
//! TO STDOUT (FORMAT binary)` and turns the binary rows into Arrow batches while they
//! arrive. The wire protocol is tokio-postgres's; only the binary COPY row format is
//! decoded here. Columns of types without an Arrow reader here are cast by Postgres:
//! `numeric` to `float8`, anything else to `text`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use chrono::{SecondsFormat, Utc};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, expr::InList,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use super::{OpenedSource, RemoteReads, SourceFingerprint, SourceKind};
use crate::DataError;

/// How to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub enum PostgresConnection {
    /// A connection URL (`postgresql://user@host:5432/db`) or key-value string.
    Url(String),
    /// The name of an environment variable holding the URL, read when the source opens
    /// (so that a password need not be written in `presage.toml`).
    Env(String),
}

impl fmt::Debug for PostgresConnection {
    /// Never shows a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => write!(f, "Url({})", without_password(url)),
            Self::Env(var) => write!(f, "Env({var})"),
        }
    }
}

/// What the source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresRelation {
    /// A table or view: `accounts` or `schema.table`.
    Table(String),
    /// A query whose result is the table (`SELECT …`).
    Query(String),
}

/// A Postgres table or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSource {
    /// How to reach the database.
    pub connection: PostgresConnection,
    /// What is read.
    pub relation: PostgresRelation,
}

/// How long connecting may take before the source fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl PostgresSource {
    /// A source reading `relation` from the database at `connection`.
    pub fn new(connection: PostgresConnection, relation: PostgresRelation) -> PostgresSource {
        PostgresSource {
            connection,
            relation,
        }
    }

    fn error(&self, name: &str, message: impl Into<String>) -> DataError {
        DataError::Remote {
            source_name: name.to_owned(),
            url: self.location(),
            message: message.into(),
        }
    }

    fn connection_string(&self, name: &str) -> Result<String, DataError> {
        match &self.connection {
            PostgresConnection::Url(url) => Ok(url.clone()),
            PostgresConnection::Env(var) => std::env::var(var).map_err(|_| {
                self.error(
                    name,
                    format!(
                        "`postgres_env` names the environment variable `{var}`, which is not set"
                    ),
                )
            }),
        }
    }

    /// The relation as it goes after `FROM`.
    fn relation_sql(&self) -> String {
        match &self.relation {
            PostgresRelation::Table(table) => table
                .split('.')
                .map(quote_identifier)
                .collect::<Vec<_>>()
                .join("."),
            PostgresRelation::Query(query) => {
                format!("({}) AS presage_source", query.trim().trim_end_matches(';'))
            }
        }
    }
}

#[async_trait]
impl SourceKind for PostgresSource {
    fn location(&self) -> String {
        let database = match &self.connection {
            PostgresConnection::Url(url) => without_password(url),
            PostgresConnection::Env(var) => format!("${var}"),
        };
        match &self.relation {
            PostgresRelation::Table(table) => format!("{database} table {table}"),
            PostgresRelation::Query(_) => format!("{database} query"),
        }
    }

    async fn open(&self, name: &str, _session: &dyn Session) -> Result<OpenedSource, DataError> {
        let connection = self.connection_string(name)?;
        let client = connect(&connection)
            .await
            .map_err(|message| self.error(name, message))?;
        let from = self.relation_sql();
        let statement = client
            .prepare(&format!("SELECT * FROM {from} LIMIT 0"))
            .await
            .map_err(|e| self.error(name, postgres_message(&e)))?;
        let columns: Vec<PgColumn> = statement
            .columns()
            .iter()
            .map(|c| PgColumn::new(c.name(), c.type_()))
            .collect();
        let read_at = Utc::now();
        let query = match &self.relation {
            PostgresRelation::Table(_) => format!("SELECT * FROM {from}"),
            PostgresRelation::Query(query) => query.trim().to_owned(),
        };
        let fingerprint = SourceFingerprint {
            name: name.to_owned(),
            path: format!("{} ({query})", self.location()),
            files: 0,
            bytes: 0,
            // A database has no cheap content hash: the query and the moment it was
            // read say what the version saw, and differ between runs.
            fingerprint: format!(
                "sha256:{:x} read at {}",
                Sha256::digest(query.as_bytes()),
                read_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        };
        let table = PostgresTable {
            source_name: name.to_owned(),
            location: self.location(),
            connection,
            from,
            schema: Arc::new(Schema::new(
                columns.iter().map(PgColumn::field).collect::<Vec<_>>(),
            )),
            columns,
        };
        Ok(OpenedSource {
            table: Arc::new(table),
            fingerprint,
        })
    }
}

async fn connect(connection: &str) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(connection, tokio_postgres::NoTls);
    let (client, driver) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            format!(
                "cannot connect: no answer in {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot connect: {}", postgres_message(&e)))?;
    tokio::spawn(async move {
        // The client's requests fail with the connection's error; nothing to add here.
        let _ = driver.await;
    });
    // Zoned timestamps are read as UTC, and compared with the feature SQL's UTC cutoffs.
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(|e| postgres_message(&e))?;
    Ok(client)
}

/// Postgres's own message for a server error (with its SQLSTATE), the client's
/// otherwise, on one line.
fn postgres_message(error: &tokio_postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => format!(
            "Postgres says: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ),
        None => {
            use std::error::Error as _;
            match error.source() {
                Some(cause) => format!("{error}: {cause}"),
                None => error.to_string(),
            }
        }
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A URL or key-value connection string without its password.
fn without_password(connection: &str) -> String {
    if let Ok(mut url) = url::Url::parse(connection)
        && url.password().is_some()
    {
        let _ = url.set_password(None);
        return url.to_string();
    }
    connection
        .split_whitespace()
        .filter(|part| !part.to_ascii_lowercase().starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a column is read: the Arrow type, and how Postgres sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Date,
    Timestamp,
}

#[derive(Debug, Clone)]
struct PgColumn {
    name: String,
    kind: PgKind,
    /// What the scan selects: the column, or a cast of it to a type read here.
    select: String,
}

impl PgColumn {
    fn new(name: &str, pg_type: &Type) -> PgColumn {
        let quoted = quote_identifier(name);
        let (kind, select) = match *pg_type {
            Type::BOOL => (PgKind::Bool, quoted),
            Type::INT2 => (PgKind::Int2, quoted),
            Type::INT4 => (PgKind::Int4, quoted),
            Type::INT8 => (PgKind::Int8, quoted),
            Type::OID => (PgKind::Int8, format!("{quoted}::int8")),
            Type::FLOAT4 => (PgKind::Float4, quoted),
            Type::FLOAT8 => (PgKind::Float8, quoted),
            Type::NUMERIC => (PgKind::Float8, format!("{quoted}::float8")),
            Type::TEXT | Type::VARCHAR => (PgKind::Text, quoted),
            Type::DATE => (PgKind::Date, quoted),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => (PgKind::Timestamp, quoted),
            _ => (PgKind::Text, format!("{quoted}::text")),
        };
        PgColumn {
            name: name.to_owned(),
            kind,
            select,
        }
    }

    fn field(&self) -> Field {
        let data_type = match self.kind {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 => DataType::Float64,
            PgKind::Text => DataType::Utf8,
            PgKind::Date => DataType::Date32,
            // Naive UTC, as the feature SQL's `{{as_of}}` literal is.
            PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        };
        Field::new(&self.name, data_type, true)
    }
}

/// A Postgres relation as DataFusion sees it.
#[derive(Debug)]
struct PostgresTable {
    source_name: String,
    location: String,
    connection: String,
    from: String,
    schema: SchemaRef,
    columns: Vec<PgColumn>,
}

#[async_trait]
impl TableProvider for PostgresTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters Postgres can evaluate are sent to it; DataFusion applies them again
    /// (inexact), so a difference in, say, collation can only cost rows read.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>, DataFusionError> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.filter_sql(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let columns: Vec<PgColumn> = indices.iter().map(|&i| self.columns[i].clone()).collect();
        let schema = Arc::new(self.schema.project(&indices)?);
        let copy = self.copy_sql(&columns, filters, limit);
        let partition = Arc::new(PostgresScan {
            source_name: self.source_name.clone(),
            location: self.location.clone(),
            connection: self.connection.clone(),
            copy,
            columns: columns.iter().map(|c| (c.name.clone(), c.kind)).collect(),
            schema: schema.clone(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![partition],
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

impl PostgresTable {
    /// The COPY that reads `columns` of the rows `filters` keep (those Postgres can
    /// evaluate), at most `limit` of them.
    fn copy_sql(&self, columns: &[PgColumn], filters: &[Expr], limit: Option<usize>) -> String {
        let mut sql = format!(
            "SELECT {} FROM {}",
            columns
                .iter()
                .map(|c| c.select.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.from
        );
        let pushed: Vec<String> = filters.iter().filter_map(|f| self.filter_sql(f)).collect();
        if !pushed.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&pushed.join(" AND "));
        }
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        format!("COPY ({sql}) TO STDOUT (FORMAT binary)")
    }

    /// `filter` as Postgres SQL, if every part of it can be sent.
    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        match filter {
            Expr::Column(column) => self
                .columns
                .iter()
                .find(|c| c.name == column.name)
                // A cast column compares as its cast type in DataFusion.
                .filter(|c| c.select == quote_identifier(&c.name))
                .map(|c| c.select.clone()),
            Expr::Literal(value, _) => literal_sql(value),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let op = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    Operator::GtEq => ">=",
                    Operator::And => "AND",
                    Operator::Or => "OR",
                    _ => return None,
                };
                Some(format!(
                    "({} {op} {})",
                    self.filter_sql(left)?,
                    self.filter_sql(right)?
                ))
            }
            Expr::Not(inner) => Some(format!("(NOT {})", self.filter_sql(inner)?)),
            Expr::IsNull(inner) => Some(format!("({} IS NULL)", self.filter_sql(inner)?)),
            Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", self.filter_sql(inner)?)),
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => Some(format!(
                "({} {}BETWEEN {} AND {})",
                self.filter_sql(expr)?,
                if *negated { "NOT " } else { "" },
                self.filter_sql(low)?,
                self.filter_sql(high)?
            )),
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) if !list.is_empty() => {
                let items = list
                    .iter()
                    .map(|item| self.filter_sql(item))
                    .collect::<Option<Vec<_>>>()?;
                Some(format!(
                    "({} {}IN ({}))",
                    self.filter_sql(expr)?,
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                ))
            }
            _ => None,
        }
    }
}

/// A literal as Postgres SQL; `None` for values not sent (NULL, NaN, other types).
fn literal_sql(value: &ScalarValue) -> Option<String> {
    use chrono::DateTime;
    let timestamp = |micros: Option<i64>| -> Option<String> {
        let instant = DateTime::from_timestamp_micros(micros?)?;
        Some(format!(
            "TIMESTAMP '{}'",
            instant.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")
        ))
    };
    match value {
        ScalarValue::Boolean(Some(b)) => Some(if *b { "TRUE" } else { "FALSE" }.to_owned()),
        ScalarValue::Int8(Some(v)) => Some(v.to_string()),
        ScalarValue::Int16(Some(v)) => Some(v.to_string()),
        ScalarValue::Int32(Some(v)) => Some(v.to_string()),
        ScalarValue::Int64(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt8(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt16(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt32(Some(v)) => Some(v.to_string()),
        ScalarValue::UInt64(Some(v)) => Some(v.to_string()),
        ScalarValue::Float32(Some(v)) if v.is_finite() => Some(format!("{v:?}::float8")),
        ScalarValue::Float64(Some(v)) if v.is_finite() => Some(format!("{v:?}::float8")),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
            if !s.contains('\0') =>
        {
            Some(format!("'{}'", s.replace('\'', "''")))
        }
        ScalarValue::Date32(Some(days)) => {
            let date =
                chrono::NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE)?;
            Some(format!("DATE '{}'", date.format("%Y-%m-%d")))
        }
        ScalarValue::TimestampSecond(v, _) => timestamp(v.and_then(|s| s.checked_mul(1_000_000))),
        ScalarValue::TimestampMillisecond(v, _) => timestamp(v.and_then(|s| s.checked_mul(1_000))),
        ScalarValue::TimestampMicrosecond(v, _) => timestamp(*v),
        ScalarValue::TimestampNanosecond(v, _) => timestamp(v.map(|n| n.div_euclid(1_000))),
        _ => None,
    }
}

/// Days from 0001-01-01 to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
/// Postgres counts dates from 2000-01-01; Arrow from 1970-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// The same in microseconds.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One scan: a COPY streamed into Arrow batches.
#[derive(Debug)]
struct PostgresScan {
    source_name: String,
    location: String,
    connection: String,
    copy: String,
    columns: Vec<(String, PgKind)>,
    schema: SchemaRef,
}

/// Batches decoded ahead of the query.
const BATCHES_AHEAD: usize = 2;

impl PartitionStream for PostgresScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size();
        let reads = ctx.session_config().get_extension::<RemoteReads>();
        let (sender, receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let scan = PostgresScanTask {
            source_name: self.source_name.clone(),
            location: self.location.clone(),
            connection: self.connection.clone(),
            copy: self.copy.clone(),
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            batch_size,
            reads,
        };
        tokio::spawn(async move {
            if let Err(e) = scan.run(&sender).await {
                let _ = sender
                    .send(Err(DataFusionError::External(Box::new(e))))
                    .await;
            }
        });
        let batches = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches.boxed(),
        ))
    }
}

struct PostgresScanTask {
    source_name: String,
    location: String,
    connection: String,
    copy: String,
    columns: Vec<(String, PgKind)>,
    schema: SchemaRef,
    batch_size: usize,
    /// The session's counters, for progress.
    reads: Option<Arc<RemoteReads>>,
}

type BatchSender = tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>;

impl PostgresScanTask {
    fn error(&self, message: impl Into<String>) -> DataError {
        DataError::Remote {
            source_name: self.source_name.clone(),
            url: self.location.clone(),
            message: message.into(),
        }
    }

    fn count(&self, batch: &RecordBatch) {
        if let Some(reads) = &self.reads {
            reads.add_database_rows(batch.num_rows() as u64);
        }
    }

    async fn run(&self, sender: &BatchSender) -> Result<(), DataError> {
        let client = connect(&self.connection)
            .await
            .map_err(|message| self.error(message))?;
        let stream = client
            .copy_out(self.copy.as_str())
            .await
            .map_err(|e| self.error(postgres_message(&e)))?;
        futures::pin_mut!(stream);
        let mut decoder = CopyDecoder::new(&self.columns, self.batch_size);
        let mut buffer = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(postgres_message(&e)))?;
            buffer.extend_from_slice(&chunk);
            let used = decoder.decode(&buffer).map_err(|m| self.error(m))?;
            buffer.advance(used);
            while decoder.rows >= self.batch_size {
                let batch = decoder.finish(&self.schema).map_err(|m| self.error(m))?;
                self.count(&batch);
                if sender.send(Ok(batch)).await.is_err() {
                    return Ok(()); // The query stopped reading (a LIMIT, an error).
                }
            }
        }
        if !buffer.is_empty() {
            return Err(self.error("the COPY stream ended inside a row"));
        }
        if decoder.rows > 0 {
            let batch = decoder.finish(&self.schema).map_err(|m| self.error(m))?;
            self.count(&batch);
            let _ = sender.send(Ok(batch)).await;
        }
        Ok(())
    }
}

/// Decodes Postgres's binary COPY format into column builders.
struct CopyDecoder<'a> {
    columns: &'a [(String, PgKind)],
    builders: Vec<Box<dyn ArrayBuilder>>,
    batch_size: usize,
    header_read: bool,
    ended: bool,
    rows: usize,
}

/// The binary COPY signature that starts the stream.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl<'a> CopyDecoder<'a> {
    fn new(columns: &'a [(String, PgKind)], batch_size: usize) -> Self {
        let mut decoder = CopyDecoder {
            columns,
            builders: Vec::new(),
            batch_size,
            header_read: false,
            ended: false,
            rows: 0,
        };
        decoder.builders = decoder.new_builders();
        decoder
    }

    fn new_builders(&self) -> Vec<Box<dyn ArrayBuilder>> {
        let n = self.batch_size;
        self.columns
            .iter()
            .map(|(_, kind)| -> Box<dyn ArrayBuilder> {
                match kind {
                    PgKind::Bool => Box::new(BooleanBuilder::with_capacity(n)),
                    PgKind::Int2 => Box::new(Int16Builder::with_capacity(n)),
                    PgKind::Int4 => Box::new(Int32Builder::with_capacity(n)),
                    PgKind::Int8 => Box::new(Int64Builder::with_capacity(n)),
                    PgKind::Float4 => Box::new(Float32Builder::with_capacity(n)),
                    PgKind::Float8 => Box::new(Float64Builder::with_capacity(n)),
                    PgKind::Text => Box::new(StringBuilder::with_capacity(n, n * 16)),
                    PgKind::Date => Box::new(Date32Builder::with_capacity(n)),
                    PgKind::Timestamp => Box::new(TimestampMicrosecondBuilder::with_capacity(n)),
                }
            })
            .collect()
    }

    /// Decodes the complete rows at the start of `data` (stopping at a full batch);
    /// returns the bytes used.
    fn decode(&mut self, data: &[u8]) -> Result<usize, String> {
        let mut at = 0;
        if !self.header_read {
            // Signature, flags, then an extension area of the length given.
            if data.len() < COPY_SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &data[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                return Err("the COPY stream is not in binary format".to_owned());
            }
            let extension = read_i32(data, COPY_SIGNATURE.len() + 4) as usize;
            let header = COPY_SIGNATURE.len() + 8 + extension;
            if data.len() < header {
                return Ok(0);
            }
            self.header_read = true;
            at = header;
        }
        while !self.ended && self.rows < self.batch_size {
            let Some(row_end) = self.row_end(&data[at..])? else {
                break;
            };
            let row = &data[at..at + row_end];
            at += row_end;
            let fields = read_i16(row, 0);
            if fields == -1 {
                self.ended = true;
                break;
            }
            let mut offset = 2;
            for (index, (name, kind)) in self.columns.iter().enumerate() {
                let len = read_i32(row, offset);
                offset += 4;
                let value = if len < 0 {
                    None
                } else {
                    let value = &row[offset..offset + len as usize];
                    offset += len as usize;
                    Some(value)
                };
                append(self.builders[index].as_mut(), *kind, value)
                    .map_err(|m| format!("column `{name}`: {m}"))?;
            }
            self.rows += 1;
        }
        Ok(at)
    }

    /// The length of the row starting `data`, if it is all there.
    fn row_end(&self, data: &[u8]) -> Result<Option<usize>, String> {
        if data.len() < 2 {
            return Ok(None);
        }
        let fields = read_i16(data, 0);
        if fields == -1 {
            return Ok(Some(2));
        }
        if fields as usize != self.columns.len() {
            return Err(format!(
                "a row has {fields} fields where {} were asked for",
                self.columns.len()
            ));
        }
        let mut offset = 2;
        for _ in 0..fields {
            if data.len() < offset + 4 {
                return Ok(None);
            }
            let len = read_i32(data, offset);
            offset += 4;
            if len > 0 {
                offset += len as usize;
            }
        }
        Ok((data.len() >= offset).then_some(offset))
    }

    /// The rows decoded so far as a batch; the builders start again.
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let rows = self.rows;
        let mut builders = self.new_builders();
        std::mem::swap(&mut builders, &mut self.builders);
        self.rows = 0;
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
    }
}

fn read_i16(data: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([data[at], data[at + 1]])
}

fn read_i32(data: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(data[at..at + 4].try_into().expect("four bytes"))
}

fn fixed<const N: usize>(value: &[u8]) -> Result<[u8; N], String> {
    value
        .try_into()
        .map_err(|_| format!("a value of {} bytes where {N} were expected", value.len()))
}

/// Appends one binary COPY value (or NULL) to the builder of its column.
fn append(
    builder: &mut dyn ArrayBuilder,
    kind: PgKind,
    value: Option<&[u8]>,
) -> Result<(), String> {
    fn downcast<B: 'static>(builder: &mut dyn ArrayBuilder) -> &mut B {
        builder
            .as_any_mut()
            .downcast_mut::<B>()
            .expect("the builder made for this kind")
    }
    match kind {
        PgKind::Bool => {
            let v = value
                .map(|v| fixed::<1>(v).map(|b| b[0] != 0))
                .transpose()?;
            downcast::<BooleanBuilder>(builder).append_option(v);
        }
        PgKind::Int2 => {
            let v = value
                .map(|v| fixed(v).map(i16::from_be_bytes))
                .transpose()?;
            downcast::<Int16Builder>(builder).append_option(v);
        }
        PgKind::Int4 => {
            let v = value
                .map(|v| fixed(v).map(i32::from_be_bytes))
                .transpose()?;
            downcast::<Int32Builder>(builder).append_option(v);
        }
        PgKind::Int8 => {
            let v = value
                .map(|v| fixed(v).map(i64::from_be_bytes))
                .transpose()?;
            downcast::<Int64Builder>(builder).append_option(v);
        }
        PgKind::Float4 => {
            let v = value
                .map(|v| fixed(v).map(f32::from_be_bytes))
                .transpose()?;
            downcast::<Float32Builder>(builder).append_option(v);
        }
        PgKind::Float8 => {
            let v = value
                .map(|v| fixed(v).map(f64::from_be_bytes))
                .transpose()?;
            downcast::<Float64Builder>(builder).append_option(v);
        }
        PgKind::Text => {
            let v = value
                .map(|v| std::str::from_utf8(v).map_err(|_| "text that is not UTF-8".to_owned()))
                .transpose()?;
            downcast::<StringBuilder>(builder).append_option(v);
        }
        PgKind::Date => {
            let v = value
                .map(|v| fixed(v).map(|b| i32::from_be_bytes(b).saturating_add(PG_EPOCH_DAYS)))
                .transpose()?;
            downcast::<Date32Builder>(builder).append_option(v);
        }
        PgKind::Timestamp => {
            let v = value
                .map(|v| fixed(v).map(|b| i64::from_be_bytes(b).saturating_add(PG_EPOCH_MICROS)))
                .transpose()?;
            downcast::<TimestampMicrosecondBuilder>(builder).append_option(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            without_password("postgresql://app:s3cret@db:5432/main"),
            "postgresql://app@db:5432/main"
        );
        assert_eq!(
            without_password("host=db user=app password=s3cret dbname=main"),
            "host=db user=app dbname=main"
        );
        let debug = format!(
            "{:?}",
            PostgresConnection::Url("postgresql://app:s3cret@db/main".to_owned())
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn tables_and_queries_become_relation_sqls() {
        let source = |relation| {
            PostgresSource::new(
                PostgresConnection::Url("postgresql://db/x".to_owned()),
                relation,
            )
        };
        assert_eq!(
            source(PostgresRelation::Table("crm.accounts".to_owned())).relation_sql(),
            "\"crm\".\"accounts\""
        );
        assert_eq!(
            source(PostgresRelation::Query("SELECT 1 AS a;".to_owned())).relation_sql(),
            "(SELECT 1 AS a) AS presage_source"
        );
    }

    #[test]
    fn literals_render_as_postgres_sql() {
        assert_eq!(
            literal_sql(&ScalarValue::Utf8(Some("o'k".into()))).unwrap(),
            "'o''k'"
        );
        assert_eq!(
            literal_sql(&ScalarValue::TimestampMicrosecond(
                Some(1_764_288_000_000_000),
                None
            ))
            .unwrap(),
            "TIMESTAMP '2025-11-28 00:00:00.000000'"
        );
        assert_eq!(
            literal_sql(&ScalarValue::Date32(Some(0))).unwrap(),
            "DATE '1970-01-01'"
        );
        assert!(literal_sql(&ScalarValue::Float64(Some(f64::NAN))).is_none());
        assert!(literal_sql(&ScalarValue::Int64(None)).is_none());
    }

    #[test]
    fn projections_and_simple_filters_go_to_postgres() {
        use datafusion::prelude::{col, lit};
        let columns = vec![
            PgColumn::new("id", &Type::INT8),
            PgColumn::new("plan", &Type::TEXT),
            PgColumn::new("price", &Type::NUMERIC),
            PgColumn::new("seen", &Type::TIMESTAMPTZ),
        ];
        let table = PostgresTable {
            source_name: "accounts".into(),
            location: "db".into(),
            connection: String::new(),
            from: "\"crm\".\"accounts\"".into(),
            schema: Arc::new(Schema::new(
                columns.iter().map(PgColumn::field).collect::<Vec<_>>(),
            )),
            columns: columns.clone(),
        };
        let cutoff = ScalarValue::TimestampMicrosecond(Some(1_764_288_000_000_000), None);
        let filters = vec![
            col("seen").lt(lit(cutoff)),
            col("plan").in_list(vec![lit("pro"), lit("team")], false),
            // A cast column compares as its cast type here: not sent.
            col("price").gt(lit(10.0)),
            // A function Postgres may not have: not sent.
            datafusion::functions::expr_fn::upper(col("plan")).eq(lit("PRO")),
        ];
        let support = table
            .supports_filters_pushdown(&filters.iter().collect::<Vec<_>>())
            .unwrap();
        assert_eq!(
            support,
            vec![
                TableProviderFilterPushDown::Inexact,
                TableProviderFilterPushDown::Inexact,
                TableProviderFilterPushDown::Unsupported,
                TableProviderFilterPushDown::Unsupported,
            ]
        );
        assert_eq!(
            table.copy_sql(&[columns[0].clone(), columns[2].clone()], &filters, Some(5)),
            "COPY (SELECT \"id\", \"price\"::float8 FROM \"crm\".\"accounts\" \
             WHERE (\"seen\" < TIMESTAMP '2025-11-28 00:00:00.000000') \
             AND (\"plan\" IN ('pro', 'team')) LIMIT 5) TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn binary_copy_decodes_across_chunks() {
        let columns = vec![
            ("id".to_owned(), PgKind::Int8),
            ("name".to_owned(), PgKind::Text),
        ];
        let mut stream = Vec::new();
        stream.extend_from_slice(COPY_SIGNATURE);
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&0i32.to_be_bytes());
        for (id, name) in [(1i64, Some("a")), (2, None)] {
            stream.extend_from_slice(&2i16.to_be_bytes());
            stream.extend_from_slice(&8i32.to_be_bytes());
            stream.extend_from_slice(&id.to_be_bytes());
            match name {
                Some(n) => {
                    stream.extend_from_slice(&(n.len() as i32).to_be_bytes());
                    stream.extend_from_slice(n.as_bytes());
                }
                None => stream.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut decoder = CopyDecoder::new(&columns, 1024);
        let mut buffer = BytesMut::new();
        // Seven bytes at a time: rows and the header split anywhere.
        for chunk in stream.chunks(7) {
            buffer.extend_from_slice(chunk);
            let used = decoder.decode(&buffer).unwrap();
            buffer.advance(used);
        }
        assert!(buffer.is_empty() && decoder.ended);
        let batch = decoder.finish(&schema).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let names = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(names.value(0), "a");
        assert!(names.is_null(1));
    }
}
