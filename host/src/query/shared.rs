//! What a running query shares with the world outside its thread: the stop signal, the
//! progress log, what observers see of its steps (and the swaps they ask for), and what a
//! clustered query's member hands each partition's task.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arrow_schema::SchemaRef;

use crate::pipeline::TransformSpec;
use crate::progress::QueryMonitor;
use crate::wasm::transform::WasmTransform;

/// A stop request that wakes a query sleeping between triggers.
#[derive(Debug, Default)]
pub struct StopSignal {
    requested: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Asks the query to stop after the batch in flight.
    pub fn request(&self) {
        *self.requested.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        *self.requested.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `timeout`; returns true (early) if a stop is requested.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.requested.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, timeout, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Where progress records go besides the query's memory.
pub type ProgressLog = Arc<Mutex<Box<dyn Write + Send>>>;

/// A transform step as observers see it: its module and the schemas around it.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// The step's name.
    pub name: String,
    /// The module as the pipeline named it (registry reference or path).
    pub module: String,
    /// `sha256:<hex>` of the module running now.
    pub digest: String,
    /// The schema the step receives.
    pub input_schema: SchemaRef,
    /// The schema it emits.
    pub output_schema: SchemaRef,
    /// The step's spec (module, config, limits), for a swap to keep all but the module.
    pub spec: TransformSpec,
}

/// Steps, and the swaps waiting for the next batch boundary, shared between a query's
/// thread and its handle.
#[derive(Default)]
pub(super) struct StepsShared {
    pub(super) info: Mutex<Vec<StepInfo>>,
    pub(super) pending: Mutex<Vec<(usize, WasmTransform)>>,
}

pub(super) fn step_info(step: &WasmTransform, input_schema: SchemaRef) -> StepInfo {
    let spec = step.spec();
    StepInfo {
        name: spec.name.clone(),
        module: spec
            .module_ref
            .clone()
            .unwrap_or_else(|| spec.module.display().to_string()),
        digest: step.digest().to_owned(),
        input_schema,
        output_schema: step.output_schema(),
        spec: spec.clone(),
    }
}

/// What a clustered query's member gives the task of one partition (`cluster`).
pub(crate) struct TaskContext {
    /// The partition's ownership: checked before every checkpoint entry.
    pub fence: Arc<dyn crate::checkpoint::Fence>,
    /// The member's way to stop the task.
    pub stop: Arc<StopSignal>,
    /// The task's monitor (forwarding its progress to the member's).
    pub monitor: Arc<QueryMonitor>,
}
