//! The one error type of the engine library.
//!
//! Every variant names *where* the problem is (a pipeline field, a file and line, a
//! checkpoint path, a batch id), because the person reading it is a data engineer looking at
//! a failed query, not at our source code.

use std::path::{Path, PathBuf};

use crate::config::Diagnostics;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a query or refuse a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file is invalid; each diagnostic names the query, key path and line.
    #[error("{0}")]
    Pipeline(Diagnostics),

    /// A filesystem operation failed.
    ///
    /// The cause is part of the message and not also `source()`: a report that prints the
    /// chain (`anyhow`'s `{:#}`) would say it twice. The same holds for every variant.
    #[error("{action} {}: {cause}", path.display())]
    Io {
        /// What we were doing ("reading", "renaming", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },

    /// An object store request failed (after its retries), or a URL names no store we know.
    #[error("{action} {location}: {message}")]
    Storage {
        /// What we were doing ("reading", "creating", ...).
        action: &'static str,
        /// The bucket and key (`s3://bucket/key`).
        location: String,
        /// The store's answer.
        message: String,
    },

    /// A row of an input file could not be parsed and the source's `mode` is FAILFAST.
    #[error("malformed record in {} line {line}: {message} (the source's mode is FAILFAST; use mode = \"PERMISSIVE\" or \"DROPMALFORMED\" to keep going)", file.display())]
    MalformedRecord {
        /// The input file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the row.
        message: String,
    },

    /// An Arrow or Parquet operation failed.
    #[error("{context}: {message}")]
    Data {
        /// What we were doing and on what.
        context: String,
        /// The library's message.
        message: String,
    },

    /// The checkpoint directory is unusable for this query.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint location.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },

    /// A source failed.
    #[error("source {source_name}: {message}")]
    Source {
        /// The source's description (format and path/host).
        source_name: String,
        /// What went wrong.
        message: String,
    },

    /// A sink failed.
    #[error("sink {sink}: {message}")]
    Sink {
        /// The sink's description.
        sink: String,
        /// What went wrong.
        message: String,
    },

    /// A Wasm module could not be loaded, refused its configuration, or failed a call.
    #[error("{module}: {message}")]
    Wasm {
        /// Which module, step and query.
        module: String,
        /// What went wrong and what to do.
        message: String,
    },

    /// A query failed while running a batch.
    #[error("query '{query}' failed in batch {batch_id}: {cause}")]
    Batch {
        /// The query's name.
        query: String,
        /// The batch being run.
        batch_id: u64,
        /// The cause.
        cause: Box<Error>,
    },

    /// A clustered query's partition is owned by another member now: this one may not write
    /// its checkpoint any more (see `cluster::ownership`).
    #[error("partition {partition}: {message}")]
    Fenced {
        /// The partition (`topic-partition`).
        partition: String,
        /// Who took it over, and what was not written.
        message: String,
    },

    /// The module registry refused or failed a request.
    #[error(transparent)]
    Registry(#[from] crate::registry::error::RegistryError),

    /// A `sluice serve` request was refused (a name in use, a query not running).
    #[error("{0}")]
    Server(String),

    /// A `sluice serve` request named a query that does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    /// Builds an [`Error::Io`].
    ///
    /// A full filesystem (ENOSPC, or a quota) gets the free space of the filesystem holding
    /// `path` added to the message, so an operator sees at once which disk to clear.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        let cause = match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                let space = free_space(&path).map_or_else(
                    || "its free space is unknown".to_owned(),
                    |(free, total)| format!("{free} of {total} bytes are free"),
                );
                std::io::Error::new(
                    source.kind(),
                    format!(
                        "{source}: the filesystem holding it is full ({space}); free space and restart, the batch runs again from its checkpoint"
                    ),
                )
            }
            _ => source,
        };
        Error::Io {
            action,
            path,
            cause,
        }
    }

    /// Builds an [`Error::Data`] from anything displayable (Arrow and Parquet errors).
    pub fn data(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Data {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

/// The free and total bytes of the filesystem holding `path` (its nearest existing
/// ancestor), or `None` where that cannot be asked.
fn free_space(path: &Path) -> Option<(u64, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(existing).ok()?;
        Some((stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}
