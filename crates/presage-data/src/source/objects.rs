//! Object storage as a source (S3, Google Cloud Storage, Azure Blob Storage, HTTP),
//! and hive-partitioned datasets on any storage (`events/date=2026-11-01/part-0.parquet`).
//!
//! Stores are built from each cloud's standard environment variables and credential
//! chain (for S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity and instance
//! credentials), overridden by a [`StorageOptions`] from `[storage."s3://bucket"]`.
//! Every store a session uses is wrapped so that the objects it fetches are counted:
//! the run's progress shows them, and a test can check that a partition filter kept a
//! query from fetching the objects it does not need.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::{DataType, Schema};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RetryConfig,
};
use sha2::{Digest, Sha256};

use super::files::file_format;
use super::{OpenedSource, SourceFingerprint, SourceFormat, SourceKind};
use crate::DataError;

/// URL schemes read through object storage.
const REMOTE_SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl", "http", "https",
];

/// Whether `location` is an object-storage URL (`s3://…`, `gs://…`, `az://…`,
/// `abfss://…`, `http(s)://…`) rather than a local path.
pub fn is_remote_url(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| REMOTE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// A column whose values come from the folder names of a hive-partitioned dataset
/// (`date=2026-11-01/`), with the type its values are read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionColumn {
    /// The column's name, as in the folder names.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

impl PartitionColumn {
    /// The type names `partition_columns` accepts.
    pub const TYPE_NAMES: &'static str = "string, date, int, bigint, boolean";

    /// A partition column of the type named `type_name` (see [`Self::TYPE_NAMES`]).
    pub fn parse(name: &str, type_name: &str) -> Result<PartitionColumn, String> {
        let data_type = match type_name.to_ascii_lowercase().as_str() {
            "string" | "text" | "varchar" => DataType::Utf8,
            "date" => DataType::Date32,
            "int" | "integer" | "bigint" | "int64" => DataType::Int64,
            "boolean" | "bool" => DataType::Boolean,
            other => {
                return Err(format!(
                    "partition column `{name}`: unknown type `{other}`; known: {}",
                    Self::TYPE_NAMES
                ));
            }
        };
        Ok(PartitionColumn {
            name: name.to_owned(),
            data_type,
        })
    }
}

/// Settings for the stores under one URL prefix (`[storage."s3://bucket"]`), applied
/// over the cloud's environment variables. Secrets are never written here: only the
/// names of the environment variables that hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// The service's endpoint (`http://127.0.0.1:9000` for a local S3-compatible server).
    pub endpoint: Option<String>,
    /// The region (S3).
    pub region: Option<String>,
    /// Whether plain `http://` endpoints are allowed.
    pub allow_http: Option<bool>,
    /// Other settings of the store, by their object_store name
    /// (`virtual_hosted_style_request = "true"`).
    pub options: BTreeMap<String, String>,
    /// Settings read from environment variables: setting name → variable name
    /// (`secret_access_key = "LAKE_SECRET"`).
    pub options_env: BTreeMap<String, String>,
}

impl StorageOptions {
    /// Every setting as object_store key and value, environment variables resolved.
    fn settings(&self) -> Result<Vec<(String, String)>, String> {
        let mut settings = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            settings.push(("endpoint".to_owned(), endpoint.clone()));
        }
        if let Some(region) = &self.region {
            settings.push(("region".to_owned(), region.clone()));
        }
        if let Some(allow) = self.allow_http {
            settings.push(("allow_http".to_owned(), allow.to_string()));
        }
        settings.extend(self.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (key, var) in &self.options_env {
            let value = std::env::var(var).map_err(|_| {
                format!("`{key}` is read from the environment variable `{var}`, which is not set")
            })?;
            settings.push((key.clone(), value));
        }
        Ok(settings)
    }
}

/// Objects in object storage: one object, a prefix (every data object below it) or a
/// glob (`s3://lake/events/*.parquet`), all of one format; or a hive-partitioned
/// prefix read as one table with its partition columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSource {
    /// The URL as configured.
    pub url: String,
    /// The format; `None` infers it from the objects' extensions.
    pub format: Option<SourceFormat>,
    /// Partition columns of a hive-partitioned prefix; empty for plain objects.
    pub partitions: Vec<PartitionColumn>,
    /// Settings over the environment's for this URL's store.
    pub storage: StorageOptions,
}

impl ObjectSource {
    /// A source over `url` (an object, a prefix or a glob).
    pub fn new(url: impl Into<String>, format: Option<SourceFormat>) -> ObjectSource {
        ObjectSource {
            url: url.into(),
            format,
            partitions: Vec::new(),
            storage: StorageOptions::default(),
        }
    }

    /// The same source read as a hive-partitioned dataset with `partitions`.
    pub fn with_partitions(mut self, partitions: Vec<PartitionColumn>) -> ObjectSource {
        self.partitions = partitions;
        self
    }

    /// The same source with `storage` settings for its store.
    pub fn with_storage(mut self, storage: StorageOptions) -> ObjectSource {
        self.storage = storage;
        self
    }

    fn remote_error(&self, name: &str, message: impl Into<String>) -> DataError {
        DataError::Remote {
            source_name: name.to_owned(),
            url: self.url.clone(),
            message: message.into(),
        }
    }
}

#[async_trait]
impl SourceKind for ObjectSource {
    fn location(&self) -> String {
        self.url.clone()
    }

    async fn open(&self, name: &str, session: &dyn Session) -> Result<OpenedSource, DataError> {
        let table_url = remote_table_url(&self.url).map_err(|e| self.remote_error(name, e))?;
        let store = session_store(session, &table_url, &self.storage)
            .map_err(|message| self.remote_error(name, message))?;
        let listing = Listing {
            source_name: name,
            location: &self.url,
            table_url,
            store,
        };
        if self.partitions.is_empty() {
            listing.open_objects(session, self.format).await
        } else {
            listing
                .open_partitioned(session, self.format, &self.partitions)
                .await
        }
    }
}

/// `url` as a listing URL: the part before the first segment with a glob character
/// is the prefix listed, the rest the pattern objects below it must match
/// (DataFusion reads globs only in local paths).
fn remote_table_url(url: &str) -> Result<ListingTableUrl, String> {
    let invalid = |e: &dyn fmt::Display| format!("not a valid URL: {e}");
    let Some(glob_at) = url.find(['*', '?', '[']) else {
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e))?;
        return ListingTableUrl::try_new(parsed, None).map_err(|e| invalid(&e.strip_backtrace()));
    };
    let base_end = url[..glob_at].rfind('/').map_or(0, |i| i + 1);
    let (base, pattern) = url.split_at(base_end);
    let parsed = url::Url::parse(base).map_err(|e| invalid(&e))?;
    let pattern =
        glob::Pattern::new(pattern).map_err(|e| format!("bad glob pattern `{pattern}`: {e}"))?;
    ListingTableUrl::try_new(parsed, Some(pattern)).map_err(|e| invalid(&e.strip_backtrace()))
}

/// One source's listing: its URL, its store, and how to read what it lists.
pub(super) struct Listing<'a> {
    pub(super) source_name: &'a str,
    /// The source's location as configured, for messages.
    pub(super) location: &'a str,
    pub(super) table_url: ListingTableUrl,
    pub(super) store: Arc<dyn ObjectStore>,
}

impl Listing<'_> {
    fn error(&self, message: impl Into<String>) -> DataError {
        DataError::Remote {
            source_name: self.source_name.to_owned(),
            url: self.location.to_owned(),
            message: message.into(),
        }
    }

    fn object_url(&self, location: &ObjectPath) -> String {
        format!("{}{}", self.table_url.object_store().as_str(), location)
    }

    /// The data objects the URL names now, sorted: objects below its prefix that
    /// match its glob, skipping names that start with `.` or `_` (`_SUCCESS`, `.crc`)
    /// and, without a configured format, objects of no known format. A URL that is not
    /// a prefix of anything is read as one object.
    async fn list(&self, format: Option<SourceFormat>) -> Result<Vec<ObjectMeta>, DataError> {
        let prefix = self.table_url.prefix().clone();
        let listed: Result<Vec<ObjectMeta>, _> = self.store.list(Some(&prefix)).try_collect().await;
        let listed = match listed {
            Ok(listed) => listed,
            // A plain web server cannot list (HTTP stores list with WebDAV): a URL
            // without a pattern may still name one object.
            Err(list_error) if self.table_url.get_glob().is_none() => {
                match self.store.head(&prefix).await {
                    Ok(meta) => vec![meta],
                    // On a web server the object's own answer says more than the
                    // listing's "unsupported".
                    Err(e) if matches!(self.table_url.scheme(), "http" | "https") => {
                        return Err(self.error(store_message("read", &e)));
                    }
                    Err(_) => return Err(self.error(store_message("list", &list_error))),
                }
            }
            Err(e) => return Err(self.error(store_message("list", &e))),
        };
        let mut objects: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|meta| {
                let below: Vec<String> = meta
                    .location
                    .prefix_match(&prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
                    .unwrap_or_default();
                !below.iter().any(|part| part.starts_with(['.', '_']))
                    && self.table_url.contains(&meta.location, false)
                    && (format.is_some() || format_of(&meta.location).is_some())
            })
            .collect();
        if objects.is_empty() && self.table_url.get_glob().is_none() {
            match self.store.head(&prefix).await {
                Ok(meta) => objects.push(meta),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(store_message("read", &e))),
            }
        }
        if objects.is_empty() {
            return Err(self.error("no object matches"));
        }
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The one format of `objects`: the configured one, or the one their extensions
    /// say.
    fn format(
        &self,
        objects: &[ObjectMeta],
        format: Option<SourceFormat>,
    ) -> Result<SourceFormat, DataError> {
        if let Some(format) = format {
            return Ok(format);
        }
        let mut first: Option<(&ObjectMeta, SourceFormat)> = None;
        for meta in objects {
            let found = format_of(&meta.location).ok_or_else(|| {
                self.error(format!(
                    "cannot tell the format of `{}` from its extension; set `format = \"parquet\" | \"csv\" | \"json\"`",
                    self.object_url(&meta.location)
                ))
            })?;
            match first {
                None => first = Some((meta, found)),
                Some((first_meta, first_format)) if first_format != found => {
                    return Err(self.error(format!(
                        "`{}` is {found} but `{}` is {first_format}; one source holds one format",
                        self.object_url(&meta.location),
                        self.object_url(&first_meta.location)
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(first.map_or(SourceFormat::Parquet, |(_, f)| f))
    }

    /// A table over every listed object, their schemas read (several at once, so a bad
    /// object among many is named) and merged.
    async fn open_objects(
        &self,
        session: &dyn Session,
        format: Option<SourceFormat>,
    ) -> Result<OpenedSource, DataError> {
        let objects = self.list(format).await?;
        let format = self.format(&objects, format)?;
        let file_format = file_format(format);
        let schemas: Vec<Schema> = futures::stream::iter(objects.iter().cloned())
            .map(|meta| self.object_schema(session, file_format.as_ref(), meta, format))
            .buffered(SCHEMA_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        // Merged one object at a time, so that the first object that disagrees is named.
        let mut merged = schemas[0].clone();
        for (schema, meta) in schemas.into_iter().zip(&objects).skip(1) {
            merged = Schema::try_merge([merged, schema]).map_err(|e| {
                self.error(format!(
                    "`{}` does not agree with the objects before it (from `{}`): {e}",
                    self.object_url(&meta.location),
                    self.object_url(&objects[0].location),
                ))
            })?;
        }
        let urls = objects
            .iter()
            .map(|meta| {
                ListingTableUrl::parse(self.object_url(&meta.location))
                    .map_err(|e| self.error(e.strip_backtrace()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The objects are already chosen; the extension filter would drop a `.txt`
        // object configured as CSV.
        let options = ListingOptions::new(file_format).with_file_extension("");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::new(merged));
        let table = ListingTable::try_new(config).map_err(|e| self.error(e.strip_backtrace()))?;
        Ok(OpenedSource {
            table: Arc::new(table) as Arc<dyn TableProvider>,
            fingerprint: self.fingerprint(&objects),
        })
    }

    /// A table over a hive-partitioned prefix: DataFusion lists it at each scan and
    /// reads only the partitions a query's filters on the partition columns keep.
    /// The schema is read from the last object only (in path order, usually the newest
    /// partition), so that opening does not fetch every object's footer.
    pub(super) async fn open_partitioned(
        &self,
        session: &dyn Session,
        format: Option<SourceFormat>,
        partitions: &[PartitionColumn],
    ) -> Result<OpenedSource, DataError> {
        if self.table_url.get_glob().is_some() {
            return Err(self.error(
                "a partitioned source is a folder or prefix, not a glob; drop the pattern",
            ));
        }
        let objects = self.list(format).await?;
        let format = self.format(&objects, format)?;
        let file_format = file_format(format);
        let last = objects.last().expect("list returns at least one object");
        let mut schema = self
            .object_schema(session, file_format.as_ref(), last.clone(), format)
            .await?;
        // A writer that also stored the partition column in the files: the folder's
        // value is the one read.
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !partitions.iter().any(|p| p.name == *f.name()))
            .cloned()
            .collect();
        schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        let extension = format!(".{}", extension_of(&last.location).unwrap_or_default());
        let options = ListingOptions::new(file_format)
            .with_file_extension(extension)
            .with_table_partition_cols(
                partitions
                    .iter()
                    .map(|p| (p.name.clone(), p.data_type.clone()))
                    .collect(),
            );
        let table_url = ListingTableUrl::parse(format!(
            "{}/",
            self.table_url.as_str().trim_end_matches('/')
        ))
        .map_err(|e| self.error(e.strip_backtrace()))?;
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(Arc::new(schema));
        let table = ListingTable::try_new(config).map_err(|e| self.error(e.strip_backtrace()))?;
        Ok(OpenedSource {
            table: Arc::new(table) as Arc<dyn TableProvider>,
            fingerprint: self.fingerprint(&objects),
        })
    }

    async fn object_schema(
        &self,
        session: &dyn Session,
        file_format: &dyn FileFormat,
        meta: ObjectMeta,
        format: SourceFormat,
    ) -> Result<Schema, DataError> {
        let schema = file_format
            .infer_schema(session, &self.store, std::slice::from_ref(&meta))
            .await
            .map_err(|e| {
                self.error(format!(
                    "cannot read `{}` as {format}: {}",
                    self.object_url(&meta.location),
                    one_line(&e.strip_backtrace())
                ))
            })?;
        Ok(schema.as_ref().clone())
    }

    /// A hash of every listed object's path, size, modification time and entity tag.
    fn fingerprint(&self, objects: &[ObjectMeta]) -> SourceFingerprint {
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        for meta in objects {
            bytes += meta.size;
            hasher.update(meta.location.as_ref().as_bytes());
            hasher.update([0]);
            hasher.update(meta.size.to_le_bytes());
            hasher.update(meta.last_modified.timestamp_micros().to_le_bytes());
            hasher.update(meta.e_tag.as_deref().unwrap_or("").as_bytes());
            hasher.update([0]);
        }
        SourceFingerprint {
            name: self.source_name.to_owned(),
            path: self.location.to_owned(),
            files: objects.len(),
            bytes,
            fingerprint: format!("sha256:{:x}", hasher.finalize()),
        }
    }
}

/// Objects whose schemas are read at once while opening a source.
const SCHEMA_READS_IN_FLIGHT: usize = 16;

fn extension_of(location: &ObjectPath) -> Option<String> {
    let name = location.filename()?;
    let (_, ext) = name.rsplit_once('.')?;
    Some(ext.to_owned())
}

fn format_of(location: &ObjectPath) -> Option<SourceFormat> {
    SourceFormat::from_extension(std::path::Path::new(location.filename()?))
}

/// The first line of a message, for errors that must fit on one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What went wrong with a store request, in words an operator can act on: what
/// kind of failure, then the service's own error code and message (S3 and Azure send
/// XML bodies) or the transport's error.
fn store_message(action: &str, error: &object_store::Error) -> String {
    use std::error::Error as _;
    let mut chain = vec![one_line(&error.to_string())];
    let mut cause: Option<&dyn std::error::Error> = error.source();
    while let Some(e) = cause {
        let text = one_line(&e.to_string());
        if !chain.iter().any(|seen| seen.contains(&text)) {
            chain.push(text);
        }
        cause = e.source();
    }
    let full = chain.join(": ");
    let between = |start: &str, end: &str| {
        let from = full.find(start)? + start.len();
        let to = full[from..].find(end)? + from;
        Some(full[from..to].to_owned())
    };
    let status: Option<u16> = between("status code: ", " ").and_then(|s| s.parse().ok());
    // Without credentials in the environment, object_store asks the cloud's instance
    // metadata service last; its failure says nothing about the bucket.
    if full.contains("169.254.169.254") || full.contains("metadata.google.internal") {
        return format!(
            "cannot {action}: no credentials found: set the cloud's variables (for S3 \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or name them in \
             [storage.\"…\"] env, or run where instance credentials exist ({})",
            one_line(&full)
        );
    }
    let what = match (error, status) {
        (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => "not found",
        (object_store::Error::PermissionDenied { .. }, _)
        | (object_store::Error::Unauthenticated { .. }, _)
        | (_, Some(401 | 403)) => "access denied",
        _ if full.contains("error sending request") => "the endpoint is unreachable",
        _ => "failed",
    };
    let detail = match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => match full.find("error sending request") {
            // The endpoint, the retries, and why the connection failed.
            Some(at) => {
                let endpoint = between("GET ", " in ").unwrap_or_default();
                let retries = between("after ", ",").map(|r| format!(" after {r}"));
                format!("{endpoint}{}: {}", retries.unwrap_or_default(), &full[at..])
            }
            None => full,
        },
    };
    format!("cannot {action}: {what} ({detail})")
}

/// Requests to a store: few retries, so that an unreachable endpoint fails a run in
/// seconds rather than after object_store's default three minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// Builds the store for `url`'s bucket (or container, or host) from the environment and
/// `storage`.
fn build_store(url: &url::Url, storage: &StorageOptions) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::ClientConfigKey;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    use object_store::http::HttpBuilder;

    let settings = storage.settings()?;
    let scheme = url.scheme().to_ascii_lowercase();
    let unknown = |key: &str| format!("`{key}` is not a setting of {scheme}:// storage");
    const CONNECT_TIMEOUT: &str = "5s";
    let built = match scheme.as_str() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config())
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    CONNECT_TIMEOUT,
                );
            for (key, value) in settings {
                let key: AmazonS3ConfigKey = key.parse().map_err(|_| unknown(&key))?;
                builder = builder.with_config(key, value);
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        "gs" | "gcs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config())
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    CONNECT_TIMEOUT,
                );
            for (key, value) in settings {
                let key: GoogleConfigKey = key.parse().map_err(|_| unknown(&key))?;
                builder = builder.with_config(key, value);
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config())
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    CONNECT_TIMEOUT,
                );
            for (key, value) in settings {
                let key: AzureConfigKey = key.parse().map_err(|_| unknown(&key))?;
                builder = builder.with_config(key, value);
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        "http" | "https" => {
            let origin = url.origin().ascii_serialization();
            let mut builder = HttpBuilder::new()
                .with_url(origin)
                .with_retry(retry_config())
                .with_config(ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT)
                .with_config(ClientConfigKey::AllowHttp, "true");
            for (key, value) in settings {
                let key: ClientConfigKey = key.parse().map_err(|_| unknown(&key))?;
                builder = builder.with_config(key, value);
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        other => return Err(format!("`{other}://` is not a storage presage reads")),
    };
    built.map_err(|e| one_line(&e.to_string()))
}

/// Copies local `files` (name under the destination, local path) into `destination`:
/// a local folder or an object-storage prefix (`s3://bucket/exports/churn/version=7/`).
/// Files are written in order, so a reader that sees the last one (a manifest) sees
/// the others complete. Errors name the destination and the file.
pub async fn write_files(
    destination: &str,
    storage: &StorageOptions,
    files: &[(String, std::path::PathBuf)],
) -> Result<(), String> {
    if !is_remote_url(destination) {
        let dir = std::path::Path::new(destination);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{destination}`: {e}"))?;
        for (name, local) in files {
            let target = dir.join(name);
            let partial = dir.join(format!(".{name}.partial"));
            std::fs::copy(local, &partial)
                .and_then(|_| std::fs::rename(&partial, &target))
                .map_err(|e| format!("cannot write `{}`: {e}", target.display()))?;
        }
        return Ok(());
    }
    let url = url::Url::parse(destination).map_err(|e| format!("`{destination}`: {e}"))?;
    let store = build_store(&url, storage)?;
    let prefix =
        ObjectPath::from_url_path(url.path()).map_err(|e| format!("`{destination}`: {e}"))?;
    for (name, local) in files {
        let target = prefix.clone().join(name.as_str());
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "cannot write `{}/{name}`: {}",
                destination.trim_end_matches('/'),
                one_line(&e.to_string())
            )
        };
        use std::io::Read;
        use tokio::io::AsyncWriteExt;
        let mut file = std::fs::File::open(local).map_err(|e| failed(&e))?;
        // Multipart past the first few megabytes, so a big file is not held in memory.
        let mut upload = object_store::buffered::BufWriter::new(store.clone(), target);
        let mut chunk = vec![0; 1 << 20];
        loop {
            let read = file.read(&mut chunk).map_err(|e| failed(&e))?;
            if read == 0 {
                break;
            }
            upload
                .write_all(&chunk[..read])
                .await
                .map_err(|e| failed(&e))?;
        }
        upload.shutdown().await.map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// The objects a session's stores have fetched, per store, kept in the session's
/// configuration so that every source of the session shares one store per bucket.
#[derive(Debug, Default)]
pub(crate) struct RemoteReads {
    stores: Mutex<HashMap<String, Arc<FetchCounter>>>,
    /// Rows streamed from databases (whose scans report no rows of their own).
    database_rows: AtomicU64,
}

/// What a session's sources have fetched from object storage so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Distinct objects whose contents were read (in whole or in part).
    pub objects: u64,
    /// Read requests sent (one object may take several: footer, then row groups).
    pub requests: u64,
    /// Bytes those requests asked for.
    pub bytes: u64,
    /// Rows streamed from databases (Postgres sources).
    pub database_rows: u64,
}

impl RemoteReads {
    /// Counts `rows` more streamed from a database.
    pub(crate) fn add_database_rows(&self, rows: u64) {
        self.database_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// The totals over every store of the session.
    pub(crate) fn stats(&self) -> FetchStats {
        let stores = self.stores.lock().expect("not poisoned");
        let mut total = FetchStats {
            database_rows: self.database_rows.load(Ordering::Relaxed),
            ..FetchStats::default()
        };
        for counter in stores.values() {
            let stats = counter.stats();
            total.objects += stats.objects;
            total.requests += stats.requests;
            total.bytes += stats.bytes;
        }
        total
    }
}

/// The counting store of `table_url`'s bucket in this session, built and registered
/// on first use. Local paths (in partitioned sources) use the session's own store.
pub(super) fn session_store(
    session: &dyn Session,
    table_url: &ListingTableUrl,
    storage: &StorageOptions,
) -> Result<Arc<dyn ObjectStore>, String> {
    let store_url = table_url.object_store();
    let runtime = session.runtime_env();
    if table_url.scheme() == "file" {
        return runtime
            .object_store(&store_url)
            .map_err(|e| e.strip_backtrace());
    }
    let reads = session
        .config()
        .get_extension::<RemoteReads>()
        .unwrap_or_default();
    let mut stores = reads.stores.lock().expect("not poisoned");
    let key = store_url.as_str().to_owned();
    if stores.contains_key(&key) {
        return runtime
            .object_store(&store_url)
            .map_err(|e| e.strip_backtrace());
    }
    let counter = Arc::new(FetchCounter::default());
    let store: Arc<dyn ObjectStore> = Arc::new(CountingStore::new(
        build_store(table_url.get_url(), storage)?,
        counter.clone(),
    ));
    let url: &url::Url = store_url.as_ref();
    runtime.register_object_store(url, store.clone());
    stores.insert(key, counter);
    Ok(store)
}

#[derive(Debug, Default)]
struct FetchCounter {
    objects: Mutex<HashSet<ObjectPath>>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl FetchCounter {
    fn fetched(&self, location: &ObjectPath, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut objects = self.objects.lock().expect("not poisoned");
        if !objects.contains(location) {
            objects.insert(location.clone());
        }
    }

    fn stats(&self) -> FetchStats {
        FetchStats {
            objects: self.objects.lock().expect("not poisoned").len() as u64,
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            database_rows: 0,
        }
    }
}

/// Objects up to this size are fetched whole on their first read and kept for the
/// session: a feature query scans a table once per subquery that reads it, and in
/// object storage every scan of every file costs a request or two (the quickstart's
/// churn query read each of 90 event objects six times).
const WHOLE_OBJECT_LIMIT: u64 = 8 << 20;

/// Bytes of whole objects one store keeps per session; past it, reads go through.
const OBJECT_CACHE_BUDGET: u64 = 256 << 20;

/// A store that counts the reads passing through it, and keeps small objects.
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counter: Arc<FetchCounter>,
    cache: Arc<ObjectCache>,
}

/// Small objects kept whole, and the sizes of the objects listed (which say whether
/// an object is small before it is read).
#[derive(Debug, Default)]
struct ObjectCache {
    listed: Mutex<HashMap<ObjectPath, ObjectMeta>>,
    kept: Mutex<HashMap<ObjectPath, (ObjectMeta, bytes::Bytes)>>,
    held: AtomicU64,
}

impl ObjectCache {
    fn record(&self, meta: &ObjectMeta) {
        if meta.size <= WHOLE_OBJECT_LIMIT {
            self.listed
                .lock()
                .expect("not poisoned")
                .insert(meta.location.clone(), meta.clone());
        }
    }
}

impl CountingStore {
    fn new(inner: Arc<dyn ObjectStore>, counter: Arc<FetchCounter>) -> CountingStore {
        CountingStore {
            inner,
            counter,
            cache: Arc::default(),
        }
    }

    /// The whole object, if it is small, listed, and fits the budget: from memory, or
    /// fetched now in one request. `None` sends the read through.
    async fn whole(&self, location: &ObjectPath) -> Option<(ObjectMeta, bytes::Bytes)> {
        if let Some(kept) = self.cache.kept.lock().expect("not poisoned").get(location) {
            return Some(kept.clone());
        }
        let meta = self
            .cache
            .listed
            .lock()
            .expect("not poisoned")
            .get(location)
            .cloned()?;
        if self.cache.held.fetch_add(meta.size, Ordering::Relaxed) + meta.size > OBJECT_CACHE_BUDGET
        {
            self.cache.held.fetch_sub(meta.size, Ordering::Relaxed);
            return None;
        }
        let fetched = async {
            let result = self.inner.get_opts(location, GetOptions::default()).await?;
            let meta = result.meta.clone();
            Ok::<_, object_store::Error>((meta, result.bytes().await?))
        }
        .await;
        match fetched {
            Ok((meta, bytes)) => {
                self.counter.fetched(location, bytes.len() as u64);
                let replaced = self
                    .cache
                    .kept
                    .lock()
                    .expect("not poisoned")
                    .insert(location.clone(), (meta.clone(), bytes.clone()));
                if replaced.is_some() {
                    // Two scans fetched it at once; it is held once.
                    self.cache.held.fetch_sub(meta.size, Ordering::Relaxed);
                }
                Some((meta, bytes))
            }
            Err(_) => {
                // The read goes through and reports its own error.
                self.cache.held.fetch_sub(meta.size, Ordering::Relaxed);
                None
            }
        }
    }
}

/// The bytes `range` asks for out of an object of `len` bytes, if it can be served.
fn slice_range(range: Option<&object_store::GetRange>, len: u64) -> Option<Range<u64>> {
    use object_store::GetRange;
    let range = match range {
        None => 0..len,
        Some(GetRange::Bounded(r)) => r.start..r.end.min(len),
        Some(GetRange::Offset(offset)) => *offset..len,
        Some(GetRange::Suffix(n)) => len.saturating_sub(*n)..len,
    };
    (range.start < range.end || len == 0).then_some(range)
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let plain = !options.head
            && options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        if plain
            && let Some((meta, bytes)) = self.whole(location).await
            && let Some(range) = slice_range(options.range.as_ref(), bytes.len() as u64)
        {
            let part = bytes.slice(range.start as usize..range.end as usize);
            return Ok(GetResult {
                payload: object_store::GetResultPayload::Stream(
                    futures::stream::once(async move { Ok(part) }).boxed(),
                ),
                meta,
                range,
                attributes: Default::default(),
            });
        }
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if head {
            // A single object named by its URL is seen by a HEAD, not a listing.
            self.cache.record(&result.meta);
        } else {
            self.counter
                .fetched(location, result.range.end - result.range.start);
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        if let Some((_, bytes)) = self.whole(location).await {
            let len = bytes.len() as u64;
            if ranges.iter().all(|r| r.start <= r.end && r.end <= len) {
                return Ok(ranges
                    .iter()
                    .map(|r| bytes.slice(r.start as usize..r.end as usize))
                    .collect());
            }
        }
        let result = self.inner.get_ranges(location, ranges).await?;
        self.counter
            .fetched(location, ranges.iter().map(|r| r.end - r.start).sum());
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let cache = self.cache.clone();
        self.inner
            .list(prefix)
            .inspect(move |item| {
                if let Ok(meta) = item {
                    cache.record(meta);
                }
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let listed = self.inner.list_with_delimiter(prefix).await?;
        for meta in &listed.objects {
            self.cache.record(meta);
        }
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_told_from_paths() {
        for url in [
            "s3://lake/events/",
            "S3://lake/e.parquet",
            "gs://b/x",
            "az://c/x",
            "abfss://c@acct.dfs.core.windows.net/x",
            "https://example.com/users.csv",
        ] {
            assert!(is_remote_url(url), "{url}");
        }
        for path in [
            "data/events/*.parquet",
            "/abs/users.csv",
            "file.csv",
            "c:/x",
        ] {
            assert!(!is_remote_url(path), "{path}");
        }
    }

    #[test]
    fn globs_in_urls_split_into_prefix_and_pattern() {
        let url = remote_table_url("s3://lake/events/2026-*/*.parquet").unwrap();
        assert_eq!(url.prefix().as_ref(), "events");
        assert!(url.contains(&ObjectPath::from("events/2026-11/a.parquet"), false));
        assert!(!url.contains(&ObjectPath::from("events/2025-11/a.parquet"), false));
        let plain = remote_table_url("s3://lake/events/").unwrap();
        assert!(plain.get_glob().is_none());
        assert!(remote_table_url("s3://lake/[oops").is_err());
    }

    #[test]
    fn partition_types_parse_and_unknown_ones_are_named() {
        let date = PartitionColumn::parse("date", "date").unwrap();
        assert_eq!(date.data_type, DataType::Date32);
        let err = PartitionColumn::parse("day", "datetime").unwrap_err();
        assert!(err.contains("`day`") && err.contains("`datetime`"), "{err}");
    }

    #[test]
    fn storage_secrets_come_from_named_variables() {
        let storage = StorageOptions {
            options_env: BTreeMap::from([(
                "secret_access_key".to_owned(),
                "PRESAGE_TEST_UNSET_SECRET".to_owned(),
            )]),
            ..StorageOptions::default()
        };
        let err = storage.settings().unwrap_err();
        assert!(err.contains("PRESAGE_TEST_UNSET_SECRET"), "{err}");
    }

    #[test]
    fn unknown_store_settings_are_named() {
        let storage = StorageOptions {
            options: BTreeMap::from([("colour".to_owned(), "blue".to_owned())]),
            ..StorageOptions::default()
        };
        let url = url::Url::parse("s3://lake/events/").unwrap();
        let err = build_store(&url, &storage).unwrap_err();
        assert!(err.contains("`colour`") && err.contains("s3://"), "{err}");
    }
}
