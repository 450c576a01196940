//! One running streaming query: the micro-batch loop (Spark's `MicroBatchExecution`).
//!
//! Per batch, in this order — the order is what makes a crash at any point recoverable:
//!
//! 1. ask the source for its latest offset (bounded by the per-trigger limit);
//! 2. **write `offsets/N`** (write-ahead log);
//! 3. read the rows between the last committed offset and the new one;
//! 4. run the Wasm transform steps, hand the rows to the sink with batch id N, then write
//!    what was staged for named outputs (handler writes, dead letters) with the same id;
//! 5. **write `commits/N`**, then let the source clean up.
//!
//! A query runs on its own thread and owns its source, sink and checkpoint. The outside
//! world holds a [`StreamingQuery`] handle: it can read status and progress and ask for a
//! graceful stop, which is honoured between batches (the batch in flight finishes and
//! commits).
//!
//! A continuous query (`trigger = { continuous = ... }`) runs epochs instead of batches, with
//! the same checkpoint and recovery.
//!
//! Here: the handle and the opening of a query's parts (checkpoint, sources, sink).
//! `plan.rs` builds the DAG of operators between them, `execution/` runs the loop,
//! `connect.rs` opens connectors, `identity.rs` says what a checkpoint records of the inputs,
//! `shared.rs` holds what the handle and the thread share.

pub mod connect;
mod execution;
mod identity;
mod plan;
mod shared;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow_schema::SchemaRef;
use tracing::info;

use self::execution::MicroBatchExecution;
use self::identity::input_identity;
use self::plan::{Built, PlanBuilder};
use self::shared::{StepsShared, step_info};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::pipeline::{Combine, QuerySpec, TransformSpec};
use crate::progress::QueryMonitor;
use crate::sink::SinkContext;
use crate::sink::outputs::SharedOutputs;
use crate::source::SourceContext;
use crate::trigger::Trigger;
use crate::wasm::transform::WasmTransform;
use crate::watermark::{EventTimeStats, WatermarkTracker, check_event_time_column};

pub(crate) use shared::TaskContext;
pub use shared::{ProgressLog, StepInfo, StopSignal};

/// The handle of a running query.
pub struct StreamingQuery {
    name: String,
    id: String,
    run_id: String,
    stop: Arc<StopSignal>,
    monitor: Arc<QueryMonitor>,
    steps: Arc<StepsShared>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl StreamingQuery {
    /// Opens the query's checkpoint, source and sink, then starts its thread. Configuration
    /// problems (a checkpoint of another query, an unreachable socket) are returned here,
    /// before any batch runs. `on_end` is called on the query's thread when it terminates.
    ///
    /// A clustered query (`[query.cluster]`) is refused: it runs as a member of its consumer
    /// group, started by `cluster::start_member` (a floor above), whose tasks start here.
    pub fn start(
        spec: QuerySpec,
        progress_log: Option<ProgressLog>,
        on_end: impl FnOnce(&str, &Result<()>) + Send + 'static,
    ) -> Result<StreamingQuery> {
        if spec.cluster.is_some() {
            // Members are started by `cluster::start_member` (see `QueryManager::start`).
            return Err(Error::Server(format!(
                "query '{}' has a [query.cluster] table: run it with `sluice run --member NAME`",
                spec.name
            )));
        }
        Self::start_inner(spec, progress_log, None, on_end)
    }

    /// Starts one partition's task of a clustered query: its checkpoint is fenced by the
    /// partition's ownership instead of locked, and its stop signal and monitor are the
    /// member's to hold.
    pub(crate) fn start_task(
        spec: QuerySpec,
        progress_log: Option<ProgressLog>,
        task: TaskContext,
        on_end: impl FnOnce(&str, &Result<()>) + Send + 'static,
    ) -> Result<StreamingQuery> {
        Self::start_inner(spec, progress_log, Some(task), on_end)
    }

    /// The handle of a member of a clustered query, whose thread runs the member.
    pub(crate) fn from_member(
        name: String,
        id: String,
        run_id: String,
        stop: Arc<StopSignal>,
        monitor: Arc<QueryMonitor>,
        thread: JoinHandle<Result<()>>,
    ) -> StreamingQuery {
        StreamingQuery {
            name,
            id,
            run_id,
            stop,
            monitor,
            steps: Arc::new(StepsShared {
                info: Mutex::new(Vec::new()),
                pending: Mutex::new(Vec::new()),
            }),
            thread: Some(thread),
        }
    }

    fn start_inner(
        spec: QuerySpec,
        progress_log: Option<ProgressLog>,
        task: Option<TaskContext>,
        on_end: impl FnOnce(&str, &Result<()>) + Send + 'static,
    ) -> Result<StreamingQuery> {
        let identities: Vec<String> = spec.inputs.iter().map(input_identity).collect();
        let checkpoint = match (&spec.checkpoint_location, &task) {
            (Some(dir), Some(task)) => {
                Checkpoint::open_fenced(dir, &identities, task.fence.clone())?
            }
            (Some(dir), None) => Checkpoint::open(dir, &identities)?,
            (None, _) => Checkpoint::temporary(&identities)?,
        };
        let mut sources = Vec::with_capacity(spec.inputs.len());
        for (i, input) in spec.inputs.iter().enumerate() {
            sources.push(connect::open_source(
                &input.source,
                SourceContext {
                    log_dir: checkpoint.source_dir(i),
                    parallelism: spec.parallelism,
                },
            )?);
        }
        // Named outputs first: the handler and dead-letter policies write into them.
        let mut ctx = SinkContext {
            query: spec.name.clone(),
            query_id: checkpoint.query_id().to_owned(),
            output_mode: spec.output_mode,
            schema: sources[0].schema(),
            outputs: SharedOutputs::default(),
            parallelism: spec.parallelism,
            output_name: None,
        };
        let outputs = connect::open_outputs(&spec.outputs, &ctx)?;
        // Each stateful operator (and a stream–stream join) runs as `shuffle` partitions, its
        // rows routed by its key.
        let shuffle = if spec.is_stateful()
            || spec.views.iter().any(|v| v.is_stateful())
            || matches!(spec.combine, Combine::StreamJoin(_))
        {
            crate::state::shuffle::partitions(
                checkpoint.dir(),
                spec.shuffle_partitions,
                spec.parallelism,
            )?
        } else {
            1
        };
        // Each step's init fixes its output schema, the next node's input, before any batch.
        let source_schemas: Vec<SchemaRef> = sources.iter().map(|s| s.schema()).collect();
        let Built { plan, steps, infos } =
            PlanBuilder::new(&spec, checkpoint.dir(), shuffle).build(&source_schemas)?;
        ctx.schema = plan.schema();
        let shared_steps = Arc::new(StepsShared {
            info: Mutex::new(infos),
            pending: Mutex::new(Vec::new()),
        });
        // Event time: an input's watermark column is read where its rows are its own — after
        // its own steps, or, for a single input, after every step.
        let watermark = WatermarkTracker::new(
            spec.inputs.iter().map(|i| i.watermark.clone()).collect(),
            spec.watermark_policy,
        );
        for (i, input) in spec.inputs.iter().enumerate() {
            if let Some(w) = &input.watermark {
                check_event_time_column(
                    &plan.event_time_schema(i),
                    &w.column,
                    &format!("input '{}': watermark", input.name),
                )?;
            }
        }
        ctx.outputs = outputs.clone();
        let mut sink = connect::open_sink(&spec.sink, &ctx)?;
        // Pipelined batches: a stateless query whose sink can make a batch durable later
        // reads and transforms batch N+1 while batch N's acknowledgements arrive. Stateful
        // operators (their state of N+1 is built on N's) and named outputs (staged per batch)
        // keep the plain order.
        let pipelined = spec.pipeline_batches
            && !matches!(spec.trigger, Trigger::Continuous(_))
            && plan.is_stateless()
            && spec.outputs.is_empty()
            && sink.defer_finish();
        let (stop, monitor) = match task {
            Some(t) => (t.stop, t.monitor),
            None => (
                Arc::new(StopSignal::default()),
                Arc::new(QueryMonitor::default()),
            ),
        };
        let run_id = uuid::Uuid::new_v4().to_string();
        let id = checkpoint.query_id().to_owned();
        info!(query = %spec.name, id = %id, run_id = %run_id, checkpoint = %checkpoint.dir(), trigger = %spec.trigger, "starting query");
        let mut exec = MicroBatchExecution {
            schema: ctx.schema,
            steps,
            plan,
            outputs,
            watermark,
            last_batch_watermark_ms: 0,
            event_stats: EventTimeStats::default(),
            spec,
            id: id.clone(),
            run_id: run_id.clone(),
            committed: vec![None; sources.len()],
            checkpoint,
            sources,
            sink,
            stop: stop.clone(),
            monitor: monitor.clone(),
            progress_log,
            shared_steps: shared_steps.clone(),
            next_batch_id: 0,
            last_trigger_start: None,
            batch_work: (0, 0.0, 0.0),
            pipelined,
            pending: None,
        };
        let name = exec.spec.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("query-{name}"))
            .spawn(move || {
                // A bug that panics must still end the query with an error (and tell the
                // manager), not leave the process waiting for it.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec.run()))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(Error::Source {
                            source_name: exec.spec.name.clone(),
                            message: format!(
                                "internal error (a bug in Sluice, please report it): {what}"
                            ),
                        })
                    });
                exec.monitor.set_finished(&result);
                match &result {
                    Ok(()) => info!(query = %exec.spec.name, "query stopped"),
                    Err(e) => tracing::error!(query = %exec.spec.name, error = %e, "query failed"),
                }
                on_end(&exec.spec.name, &result);
                result
            })
            .map_err(|e| Error::io("starting query thread", name.clone(), e))?;
        Ok(StreamingQuery {
            name,
            id,
            run_id,
            stop,
            monitor,
            steps: shared_steps,
            thread: Some(thread),
        })
    }

    /// The query's transform steps and the modules they run now.
    pub fn steps(&self) -> Vec<StepInfo> {
        self.steps
            .info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces step `step`'s module at the next batch boundary: the batch in flight (if any)
    /// finishes and commits with the old module, and every later batch runs the new one, so no
    /// batch is lost or run twice. The new module is loaded and initialised here, before
    /// anything changes, and must emit the schema the old one did.
    pub fn swap_step(
        &self,
        step: &str,
        module: std::path::PathBuf,
        module_ref: Option<String>,
    ) -> Result<StepInfo> {
        let infos = self.steps();
        let Some(index) = infos.iter().position(|s| s.name == step) else {
            return Err(Error::Server(format!(
                "query '{}' has no step '{step}' (its steps: {})",
                self.name,
                infos
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let old = &infos[index];
        let spec = TransformSpec {
            module,
            module_ref,
            ..old.spec.clone()
        };
        let new = WasmTransform::new(spec, &self.name, old.input_schema.clone())?;
        if new.output_schema() != old.output_schema {
            return Err(Error::Wasm {
                module: new.spec().module.display().to_string(),
                message: format!(
                    "emits ({}) but step '{step}' emits ({}); a swap must keep the step's output schema",
                    crate::schema::column_names(&new.output_schema()),
                    crate::schema::column_names(&old.output_schema)
                ),
            });
        }
        let info = step_info(&new, old.input_schema.clone());
        self.steps
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((index, new));
        Ok(info)
    }

    /// The query's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The query id from the checkpoint.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Status and progress.
    pub fn monitor(&self) -> &Arc<QueryMonitor> {
        &self.monitor
    }

    /// A handle that can ask for a graceful stop from another thread (a signal handler).
    pub fn stop_handle(&self) -> Arc<StopSignal> {
        self.stop.clone()
    }

    /// Asks for a graceful stop: the batch in flight finishes and commits.
    pub fn stop(&self) {
        self.stop.request();
    }

    /// Whether the query's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the query to end and returns how it ended.
    pub fn await_termination(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::Source {
                    source_name: self.name.clone(),
                    message: "the query thread panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}
