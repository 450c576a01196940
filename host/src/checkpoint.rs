//! The checkpoint directory: what lets a query stop anywhere and resume without losing or
//! repeating output. The layout is Spark's:
//!
//! ```text
//! <checkpointLocation>/
//!   metadata        {"id": ..., "sources": [...]}   query id, stable across restarts
//!   offsets/N       the end offsets of batch N, written durably BEFORE the batch runs
//!   commits/N       written after batch N reached the sink
//!   sources/<i>/    each source's own log (file lists, start times, inferred schemas)
//!   .lock           held while a process runs the query (local directories)
//! ```
//!
//! The location may be an object store (`s3://bucket/prefix`): there is no lock there and no
//! rename, so `offsets/N` and `commits/N` are created with put-if-absent; a second process
//! running the same query fails at its first batch with "another query owns this checkpoint".
//!
//! On restart, if the newest `offsets/N` has no `commits/N`, batch N is run again with the
//! same offsets and the same id; sinks that remember ids make that re-run a no-op.
//! Every write is atomic and durable ([`crate::storage::Location::write`]).

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::{Error, Result};
use crate::source::Offset;
use crate::storage::Location;

/// `metadata`: who this checkpoint belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryMetadata {
    /// The query id, generated once and kept for the checkpoint's lifetime.
    pub id: String,
    /// What each source reads (format and location); a pipeline reading something else is
    /// refused, since its offsets would mean nothing here.
    pub sources: Vec<String>,
}

/// `offsets/N`: the write-ahead log entry of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OffsetEntry {
    /// The batch id (same as the file name).
    pub batch_id: u64,
    /// When the batch was planned, in ms since the epoch.
    pub batch_timestamp_ms: i64,
    /// The event-time watermark the batch runs with.
    pub batch_watermark_ms: i64,
    /// End offset of each source, in source order.
    pub sources: Vec<Offset>,
    /// The digest (`sha256:<hex>`) of each transform step's module, by step name: a re-run
    /// of this batch after a crash runs the same code, even if a swap or a moved tag changed
    /// the step's module since.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub modules: std::collections::BTreeMap<String, String>,
    /// The version of each static join table the batch joined with (a fingerprint of its
    /// files), so a re-run can tell whether it joins with the same rows.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tables: std::collections::BTreeMap<String, String>,
}

/// `commits/N`: batch N reached the sink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CommitEntry {
    /// The watermark batch N ran with.
    pub batch_watermark_ms: i64,
    /// The watermark the next batch will run with.
    pub next_batch_watermark_ms: i64,
    /// The largest event time seen so far per input, µs (to carry the watermark on).
    pub max_event_time_us: Vec<Option<i64>>,
}

/// A check run before every `offsets/N` and `commits/N` write: a clustered query's task
/// refuses to write once its partition was taken over by another member
/// (`cluster::ownership`).
pub trait Fence: Send + Sync {
    /// `Ok` while this process may still write entry `what/batch_id`.
    fn check(&self, what: &str, batch_id: u64) -> Result<()>;
}

/// An open checkpoint: locked while this process runs the query (a local directory), or
/// guarded by conditional writes (an object store, which has no locks), or by a [`Fence`].
pub struct Checkpoint {
    dir: Location,
    metadata: QueryMetadata,
    _lock: Option<File>,
    fence: Option<std::sync::Arc<dyn Fence>>,
    // Keeps a temporary checkpoint alive for as long as the query runs.
    _temp: Option<tempfile::TempDir>,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `dir` (a local path or an `s3://…` URL) for a
    /// query whose sources are `sources`.
    ///
    /// Refuses a checkpoint written for other sources, or one another process is using.
    pub fn open(dir: &Path, sources: &[String]) -> Result<Checkpoint> {
        Self::open_inner(Location::parse(dir)?, sources, None, None)
    }

    /// Opens (or creates) a checkpoint whose writer is decided by `fence` instead of a lock:
    /// a partition's checkpoint under a clustered query, which another member may take over
    /// while this one is paused (a lock would keep it out until the paused one resumed).
    pub fn open_fenced(
        dir: &Path,
        sources: &[String],
        fence: std::sync::Arc<dyn Fence>,
    ) -> Result<Checkpoint> {
        Self::open_inner(Location::parse(dir)?, sources, None, Some(fence))
    }

    /// A checkpoint in a temporary directory, removed when the query ends (Spark does this for
    /// console and memory sinks without a `checkpointLocation`).
    pub fn temporary(sources: &[String]) -> Result<Checkpoint> {
        let temp = tempfile::Builder::new()
            .prefix("sluice-checkpoint-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary checkpoint", std::env::temp_dir(), e))?;
        Self::open_inner(
            Location::Local(temp.path().to_path_buf()),
            sources,
            Some(temp),
            None,
        )
    }

    fn damaged(dir: &Location, message: impl Into<String>) -> Error {
        Error::Checkpoint {
            path: dir.to_path_buf(),
            message: message.into(),
        }
    }

    fn open_inner(
        dir: Location,
        sources: &[String],
        temp: Option<tempfile::TempDir>,
        fence: Option<std::sync::Arc<dyn Fence>>,
    ) -> Result<Checkpoint> {
        dir.create_dir_all()?;
        let lock = match (dir.as_local(), &fence) {
            (Some(local), None) => Some(lock(local)?),
            _ => None,
        };
        let meta = dir.join("metadata");
        let metadata = match meta.read()? {
            Some(bytes) => {
                let m: QueryMetadata = serde_json::from_slice(&bytes).map_err(|e| {
                    Self::damaged(&dir, format!("metadata is not a Sluice checkpoint's: {e}"))
                })?;
                if m.sources != sources {
                    return Err(Self::damaged(
                        &dir,
                        format!(
                            "it belongs to query {} reading {:?}, but this pipeline reads {:?}; its offsets would be meaningless here — use a new checkpointLocation",
                            m.id, m.sources, sources
                        ),
                    ));
                }
                m
            }
            None => {
                if !dir.join("offsets").numbered_entries()?.is_empty() {
                    return Err(Self::damaged(
                        &dir,
                        "offsets exist but metadata is missing; the checkpoint is damaged",
                    ));
                }
                let m = QueryMetadata {
                    id: uuid::Uuid::new_v4().to_string(),
                    sources: sources.to_vec(),
                };
                let json = serde_json::to_vec(&m)
                    .map_err(|e| Error::data("writing checkpoint metadata", e))?;
                // Two processes starting on a new checkpoint at once: one metadata wins, and
                // both go on with it.
                if !meta.create(json)? {
                    drop(lock);
                    return Self::open_inner(dir, sources, temp, fence);
                }
                m
            }
        };
        for sub in ["offsets", "commits", "sources"] {
            dir.join(sub).create_dir_all()?;
        }
        Ok(Checkpoint {
            dir,
            metadata,
            _lock: lock,
            fence,
            _temp: temp,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Location {
        &self.dir
    }

    /// The query id stored in `metadata`.
    pub fn query_id(&self) -> &str {
        &self.metadata.id
    }

    /// The log directory of source `index`.
    pub fn source_dir(&self, index: usize) -> Location {
        self.dir.join("sources").join(index.to_string())
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, at: &Location) -> Result<Option<T>> {
        let Some(bytes) = at.read()? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Checkpoint {
                path: at.to_path_buf(),
                message: format!("entry is corrupt: {e}"),
            })
    }

    /// The newest offsets entry, if any.
    pub fn latest_offsets(&self) -> Result<Option<OffsetEntry>> {
        match self.dir.join("offsets").numbered_entries()?.last() {
            Some(id) => self.offsets(*id),
            None => Ok(None),
        }
    }

    /// The offsets entry of batch `id`, if it is still retained.
    pub fn offsets(&self, id: u64) -> Result<Option<OffsetEntry>> {
        self.read_json(&self.dir.join("offsets").join(id.to_string()))
    }

    /// The newest commit: its batch id and entry.
    pub fn latest_commit(&self) -> Result<Option<(u64, CommitEntry)>> {
        match self.dir.join("commits").numbered_entries()?.last() {
            Some(&id) => {
                let at = self.dir.join("commits").join(id.to_string());
                let entry = self
                    .read_json(&at)?
                    .ok_or_else(|| Self::damaged(&self.dir, format!("commits/{id} vanished")))?;
                Ok(Some((id, entry)))
            }
            None => Ok(None),
        }
    }

    /// Writes a write-ahead entry that must not exist yet: if another process wrote it first,
    /// that process is running this query too.
    fn write_new(&self, sub: &str, id: u64, json: Vec<u8>) -> Result<()> {
        if let Some(fence) = &self.fence {
            fence.check(sub, id)?;
        }
        if self.dir.join(sub).join(id.to_string()).create(json)? {
            return Ok(());
        }
        Err(Self::damaged(
            &self.dir,
            format!(
                "{sub}/{id} was written by another process: another query owns this checkpoint; stop it or give this query its own checkpointLocation"
            ),
        ))
    }

    /// Records batch `entry.batch_id`'s offsets; must happen before the batch runs.
    pub fn write_offsets(&self, entry: &OffsetEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(|e| Error::data("writing offsets", e))?;
        self.write_new("offsets", entry.batch_id, json)
    }

    /// Records that batch `id` reached the sink.
    pub fn write_commit(&self, id: u64, entry: &CommitEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(|e| Error::data("writing commit", e))?;
        self.write_new("commits", id, json)
    }

    /// Deletes offsets and commits older than the newest `retain` batches.
    pub fn purge(&self, latest: u64, retain: u64) -> Result<()> {
        let Some(keep_from) = latest.checked_sub(retain.saturating_sub(1)) else {
            return Ok(());
        };
        for sub in ["offsets", "commits"] {
            let dir = self.dir.join(sub);
            for id in dir.numbered_entries()? {
                if id >= keep_from {
                    break;
                }
                dir.join(id.to_string()).remove()?;
                debug!(entry = %format!("{sub}/{id}"), "purged old checkpoint entry");
            }
        }
        Ok(())
    }
}

/// Takes the lock of a local checkpoint directory (`.lock`), held until the file is dropped.
fn lock(dir: &Path) -> Result<File> {
    let lock_path = dir.join(".lock");
    // Held open read-only: a lock needs no write access, and a file open for writing would
    // keep the checkpoint's filesystem from being remounted read-only while the query runs.
    if !lock_path.exists() {
        File::create(&lock_path).map_err(|e| Error::io("creating", &lock_path, e))?;
    }
    let lock = File::open(&lock_path).map_err(|e| Error::io("opening", &lock_path, e))?;
    if crate::fsutil::try_lock(&lock, &lock_path)? {
        Ok(lock)
    } else {
        Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            message: "another running query is using this checkpoint; stop it or give this query its own checkpointLocation".into(),
        })
    }
}
