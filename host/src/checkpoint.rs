//! The checkpoint directory: what lets a query stop anywhere and resume without losing or
//! repeating output. The layout is Spark's:
//!
//! ```text
//! <checkpointLocation>/
//!   metadata        {"id": ..., "sources": [...]}   query id, stable across restarts
//!   offsets/N       the end offsets of batch N, written durably BEFORE the batch runs
//!   commits/N       written after batch N reached the sink
//!   sources/<i>/    each source's own log (file lists, start times, inferred schemas)
//!   .lock           held while a process runs the query
//! ```
//!
//! On restart, if the newest `offsets/N` has no `commits/N`, batch N is run again with the
//! same offsets and the same id; sinks that remember ids make that re-run a no-op.
//! Every write is atomic and durable ([`crate::fsutil::write_atomic`]).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::{Error, Result};
use crate::fsutil::{create_dir_all, numbered_entries, write_atomic};
use crate::source::Offset;

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

/// An open, locked checkpoint directory.
pub struct Checkpoint {
    dir: PathBuf,
    metadata: QueryMetadata,
    _lock: File,
    // Keeps a temporary checkpoint alive for as long as the query runs.
    _temp: Option<tempfile::TempDir>,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `dir` for a query whose sources are `sources`.
    ///
    /// Refuses a checkpoint written for other sources, or one another process is using.
    pub fn open(dir: &Path, sources: &[String]) -> Result<Checkpoint> {
        Self::open_inner(dir.to_path_buf(), sources, None)
    }

    /// A checkpoint in a temporary directory, removed when the query ends (Spark does this for
    /// console and memory sinks without a `checkpointLocation`).
    pub fn temporary(sources: &[String]) -> Result<Checkpoint> {
        let temp = tempfile::Builder::new()
            .prefix("sluice-checkpoint-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary checkpoint", std::env::temp_dir(), e))?;
        Self::open_inner(temp.path().to_path_buf(), sources, Some(temp))
    }

    fn open_inner(
        dir: PathBuf,
        sources: &[String],
        temp: Option<tempfile::TempDir>,
    ) -> Result<Checkpoint> {
        create_dir_all(&dir)?;
        let lock_path = dir.join(".lock");
        let lock = File::create(&lock_path).map_err(|e| Error::io("creating", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Checkpoint {
                    path: dir,
                    message: "another running query is using this checkpoint; stop it or give this query its own checkpointLocation".into(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", lock_path, e)),
        }
        let meta_path = dir.join("metadata");
        let metadata = match std::fs::read(&meta_path) {
            Ok(bytes) => {
                let m: QueryMetadata =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
                        path: dir.clone(),
                        message: format!("metadata is not a Sluice checkpoint's: {e}"),
                    })?;
                if m.sources != sources {
                    return Err(Error::Checkpoint {
                        path: dir,
                        message: format!(
                            "it belongs to query {} reading {:?}, but this pipeline reads {:?}; its offsets would be meaningless here — use a new checkpointLocation",
                            m.id, m.sources, sources
                        ),
                    });
                }
                m
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !numbered_entries(&dir.join("offsets"))?.is_empty() {
                    return Err(Error::Checkpoint {
                        path: dir,
                        message: "offsets exist but metadata is missing; the checkpoint is damaged"
                            .into(),
                    });
                }
                let m = QueryMetadata {
                    id: uuid::Uuid::new_v4().to_string(),
                    sources: sources.to_vec(),
                };
                let json = serde_json::to_vec(&m)
                    .map_err(|e| Error::data("writing checkpoint metadata", e))?;
                write_atomic(&meta_path, &json)?;
                m
            }
            Err(e) => return Err(Error::io("reading", meta_path, e)),
        };
        for sub in ["offsets", "commits", "sources"] {
            create_dir_all(&dir.join(sub))?;
        }
        Ok(Checkpoint {
            dir,
            metadata,
            _lock: lock,
            _temp: temp,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The query id stored in `metadata`.
    pub fn query_id(&self) -> &str {
        &self.metadata.id
    }

    /// The log directory of source `index`.
    pub fn source_dir(&self, index: usize) -> PathBuf {
        self.dir.join("sources").join(index.to_string())
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Result<T> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("entry is corrupt: {e}"),
        })
    }

    /// The newest offsets entry, if any.
    pub fn latest_offsets(&self) -> Result<Option<OffsetEntry>> {
        match numbered_entries(&self.dir.join("offsets"))?.last() {
            Some(id) => self.offsets(*id),
            None => Ok(None),
        }
    }

    /// The offsets entry of batch `id`, if it is still retained.
    pub fn offsets(&self, id: u64) -> Result<Option<OffsetEntry>> {
        let path = self.dir.join("offsets").join(id.to_string());
        if !path.exists() {
            return Ok(None);
        }
        self.read_json(&path).map(Some)
    }

    /// The newest commit: its batch id and entry.
    pub fn latest_commit(&self) -> Result<Option<(u64, CommitEntry)>> {
        match numbered_entries(&self.dir.join("commits"))?.last() {
            Some(&id) => {
                let entry = self.read_json(&self.dir.join("commits").join(id.to_string()))?;
                Ok(Some((id, entry)))
            }
            None => Ok(None),
        }
    }

    /// Records batch `entry.batch_id`'s offsets; must happen before the batch runs.
    pub fn write_offsets(&self, entry: &OffsetEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(|e| Error::data("writing offsets", e))?;
        write_atomic(
            &self.dir.join("offsets").join(entry.batch_id.to_string()),
            &json,
        )
    }

    /// Records that batch `id` reached the sink.
    pub fn write_commit(&self, id: u64, entry: &CommitEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(|e| Error::data("writing commit", e))?;
        write_atomic(&self.dir.join("commits").join(id.to_string()), &json)
    }

    /// Deletes offsets and commits older than the newest `retain` batches.
    pub fn purge(&self, latest: u64, retain: u64) -> Result<()> {
        let Some(keep_from) = latest.checked_sub(retain.saturating_sub(1)) else {
            return Ok(());
        };
        for sub in ["offsets", "commits"] {
            let dir = self.dir.join(sub);
            for id in numbered_entries(&dir)? {
                if id >= keep_from {
                    break;
                }
                let path = dir.join(id.to_string());
                std::fs::remove_file(&path).map_err(|e| Error::io("purging", &path, e))?;
                debug!(path = %path.display(), "purged old checkpoint entry");
            }
        }
        Ok(())
    }
}
