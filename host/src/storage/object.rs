//! Object stores behind [`super::Location`]: S3 and S3-compatible servers (MinIO, Ceph, R2,
//! moto), Google Cloud Storage and Azure Blob Storage, through the `object_store` crate.
//!
//! Configuration comes from the environment, as AWS, Google and Azure tools read it:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` (an S3-compatible server), `AWS_ALLOW_HTTP`; instance metadata, web
//! identity and ECS credentials when no keys are set; `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_NAME` and the rest of those crates' `from_env` keys. Shared
//! `~/.aws` profiles are not read (the `object_store` crate does not).
//!
//! Each request is retried with exponential back-off on 5xx answers, timeouts and refused
//! connections, for up to `SLUICE_STORAGE_RETRY_TIMEOUT_SECS` (default 180) and
//! `SLUICE_STORAGE_MAX_RETRIES` (default 10) attempts; then the operation fails with an error
//! naming the bucket and key, and the batch with it.
//!
//! The crate is async; the engine is not (a query runs on its own thread). Each call is run
//! on one small runtime of its own ([`block`]), so it works from any thread, a tokio worker
//! of `sluice serve` included.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as KeyPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

use super::{FileEntry, Location};
use crate::error::{Error, Result};

/// A bucket (or container) and the client that reaches it.
struct Bucket {
    /// `s3://bucket`, for messages and for joining keys back into URLs.
    url: String,
    store: Arc<dyn ObjectStore>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}

/// A key in a bucket: an object, or a prefix used as a directory.
#[derive(Clone, Debug)]
pub struct ObjectPath {
    bucket: Arc<Bucket>,
    /// The key, without leading or trailing `/` (empty: the bucket's root).
    key: String,
}

/// One client per bucket for the whole process: a client holds a connection pool and
/// credentials that are fetched once.
fn buckets() -> &'static Mutex<HashMap<String, Arc<Bucket>>> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Arc<Bucket>>>> = OnceLock::new();
    BUCKETS.get_or_init(Default::default)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: env_number("SLUICE_STORAGE_MAX_RETRIES", 10) as usize,
        retry_timeout: Duration::from_secs(env_number("SLUICE_STORAGE_RETRY_TIMEOUT_SECS", 180)),
        ..RetryConfig::default()
    }
}

fn open_bucket(scheme: &str, bucket: &str) -> Result<Arc<Bucket>> {
    let url = format!("{scheme}://{bucket}");
    let mut all = buckets().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = all.get(&url) {
        return Ok(b.clone());
    }
    // reqwest is built without a crypto provider of its own: TLS uses rustls on ring, as
    // the PostgreSQL client does. Installing it twice is harmless (the first one stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fail = |e: object_store::Error| Error::Storage {
        action: "opening",
        location: url.clone(),
        message: e.to_string(),
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(format!("s3://{bucket}"))
                .with_retry(retry_config())
                .build()
                .map_err(fail)?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.clone())
                .with_retry(retry_config())
                .build()
                .map_err(fail)?,
        ),
        "az" | "abfs" | "abfss" | "azure" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.clone())
                .with_retry(retry_config())
                .build()
                .map_err(fail)?,
        ),
        other => {
            return Err(Error::Storage {
                action: "opening",
                location: url,
                message: format!(
                    "'{other}://' is not a storage Sluice knows; use s3://, gs://, az:// or a local path"
                ),
            });
        }
    };
    let b = Arc::new(Bucket {
        url: url.clone(),
        store,
    });
    all.insert(url, b.clone());
    Ok(b)
}

/// The runtime object store calls run on: two threads, shared by every query.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sluice-storage")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| Error::Storage {
            action: "starting",
            location: "the object storage runtime".into(),
            message: e.to_string(),
        })
}

/// Runs `future` to completion on the storage runtime and waits for it here.
fn block<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| Error::Storage {
        action: "waiting for",
        location: "the object storage runtime".into(),
        message: "a storage request was dropped before it finished".into(),
    })
}

impl ObjectPath {
    /// `scheme://bucket/key…`.
    pub fn parse(url: &str) -> Result<ObjectPath> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Storage {
                action: "parsing",
                location: url.to_owned(),
                message: "no bucket: write it as scheme://bucket/prefix".into(),
            });
        }
        Ok(ObjectPath {
            bucket: open_bucket(&scheme.to_ascii_lowercase(), bucket)?,
            key: key.trim_matches('/').to_owned(),
        })
    }

    pub(super) fn join(&self, name: &str) -> ObjectPath {
        let name = name.trim_matches('/');
        ObjectPath {
            bucket: self.bucket.clone(),
            key: match (self.key.is_empty(), name.is_empty()) {
                (_, true) => self.key.clone(),
                (true, false) => name.to_owned(),
                (false, false) => format!("{}/{name}", self.key),
            },
        }
    }

    /// The key as the store sees it: exactly our string (`KeyPath::from` would percent-encode
    /// `%` and the like a second time, so `city=a%2Fb/` would not be found again by the name
    /// a listing returns).
    fn key_path(&self) -> Result<KeyPath> {
        KeyPath::parse(&self.key).map_err(|e| Error::Storage {
            action: "naming",
            location: self.to_string(),
            message: format!("not a valid object key: {e}"),
        })
    }

    fn fail(&self, action: &'static str, e: object_store::Error) -> Error {
        Error::Storage {
            action,
            location: self.to_string(),
            message: e.to_string(),
        }
    }

    pub(super) fn read(&self) -> Result<Option<Bytes>> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let got = block(async move {
            match store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.fail("reading", e))
    }

    pub(super) fn exists(&self) -> Result<bool> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let got = block(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.fail("looking up", e))
    }

    pub(super) fn write(&self, bytes: Bytes) -> Result<()> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        block(async move { store.put(&key, PutPayload::from(bytes)).await })?
            .map(|_| ())
            .map_err(|e| self.fail("writing", e))
    }

    pub(super) fn create(&self, bytes: Bytes) -> Result<bool> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let payload = PutPayload::from(bytes.clone());
        let put = block(async move {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            store.put_opts(&key, payload, options).await
        })?;
        match put {
            Ok(_) => Ok(true),
            // A request retried after its answer was lost finds its own object: the same
            // bytes mean this writer made it.
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(self.read()?.is_some_and(|there| there == bytes))
            }
            Err(e) => Err(self.fail("creating", e)),
        }
    }

    pub(super) fn remove(&self) -> Result<()> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let done = block(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        done.map_err(|e| self.fail("removing", e))
    }

    /// The names of the objects and prefixes directly under this prefix.
    pub(super) fn children(&self) -> Result<Vec<String>> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let root = self.key.is_empty();
        let listed = block(async move {
            store
                .list_with_delimiter(if root { None } else { Some(&key) })
                .await
        })?
        .map_err(|e| self.fail("listing", e))?;
        let name = |p: &KeyPath| p.filename().map(str::to_owned);
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(name)
            .chain(listed.objects.iter().filter_map(|o| name(&o.location)))
            .collect())
    }

    /// Every object under this prefix, at any depth (a file source's listing; a local one
    /// uses its glob).
    pub fn list_files(&self) -> Result<Vec<FileEntry>> {
        let (store, key) = (self.bucket.store.clone(), self.key_path()?);
        let root = self.key.is_empty();
        let listed = block(async move {
            store
                .list(if root { None } else { Some(&key) })
                .try_collect::<Vec<_>>()
                .await
        })?
        .map_err(|e| self.fail("listing", e))?;
        Ok(listed
            .into_iter()
            .map(|meta| FileEntry {
                location: Location::Object(ObjectPath {
                    bucket: self.bucket.clone(),
                    key: meta.location.to_string(),
                }),
                modified: SystemTime::from(meta.last_modified),
                size: meta.size,
            })
            .collect())
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.bucket.url)
        } else {
            write!(f, "{}/{}", self.bucket.url, self.key)
        }
    }
}
