//! What a pipeline says about each guest it runs: the step, handler and limits specs the
//! `wasm` module builds instances from. The pipeline parser fills them; `wasm` owns them, so
//! it names no type of the layers above it.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::GuestConfig;

/// Limits on a guest, per call.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLimits {
    /// Wall-clock deadline of one call (`timeout`).
    pub timeout: Duration,
    /// Cap on the guest's linear memory (`maxMemory`).
    pub max_memory: u64,
    /// Fuel per call (`fuel`), when set.
    pub fuel: Option<u64>,
    /// Rows one call may hand the host (`maxEmitRows`); default relative to the input.
    pub max_emit_rows: Option<u64>,
    /// Bytes one call may hand the host (`maxEmitBytes`); default relative to the input.
    pub max_emit_bytes: Option<u64>,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            timeout: Duration::from_secs(30),
            max_memory: 512 << 20,
            fuel: None,
            max_emit_rows: None,
            max_emit_bytes: None,
        }
    }
}

/// What a failed transform call does to its rows (`onError`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnError {
    /// The query stops; the batch is not committed and re-runs on restart.
    #[default]
    Fail,
    /// The rows of the failed call are dropped, logged and counted.
    Skip,
    /// The rows go, with an `_error` column, to this named output.
    DeadLetter(String),
}

/// A Wasm transform step (`[[query.transform]]`).
#[derive(Debug, Clone)]
pub struct TransformSpec {
    /// The step's name in logs and errors.
    pub name: String,
    /// The component file (for a registry module, its blob, named by its digest).
    pub module: PathBuf,
    /// The registry reference the pipeline wrote (`name@^1.2`), when it named one.
    pub module_ref: Option<String>,
    /// The step's `config` table, handed to the guest's `init` as JSON.
    pub config: GuestConfig,
    /// Per-call limits.
    pub limits: GuestLimits,
    /// What a failed call does.
    pub on_error: OnError,
}

/// A foreachBatch handler sink.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The component file.
    pub module: PathBuf,
    /// The sink's `config` table, handed to the guest's `init` as JSON.
    pub config: GuestConfig,
    /// Per-call limits.
    pub limits: GuestLimits,
    /// The one directory the handler may read and write (`directory`).
    pub directory: Option<PathBuf>,
    /// Hosts (`host` or `host:port`) the handler may send HTTP requests to (`allowHosts`).
    pub allow_hosts: Vec<String>,
}
