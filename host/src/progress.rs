//! Progress records, shaped like Spark's `StreamingQueryProgress`, and the live status of a
//! query that observers (the terminal status line, later the HTTP API) read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::source::{Offset, SourceMetrics};

/// How many progress records a query keeps (Spark's `spark.sql.streaming.numRecentProgressUpdates`).
pub const RECENT_PROGRESS: usize = 100;

/// One batch's progress, serialised with Spark's field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryProgress {
    /// The query id (stable across restarts).
    pub id: String,
    /// This run's id (new on every start).
    pub run_id: String,
    /// The query's name.
    pub name: String,
    /// When the trigger started, RFC 3339.
    pub timestamp: String,
    /// The batch id.
    pub batch_id: u64,
    /// Wall time of the whole trigger, ms.
    pub batch_duration: u64,
    /// Rows read from all sources.
    pub num_input_rows: u64,
    /// Rows read per second since the previous trigger started.
    pub input_rows_per_second: f64,
    /// Rows read per second of this batch's processing time.
    pub processed_rows_per_second: f64,
    /// Time per phase: latestOffset, walCommit, getBatch, addBatch, commitOffsets, triggerExecution.
    pub duration_ms: BTreeMap<String, u64>,
    /// Event-time statistics (watermark, min/max/avg event time) when the query has any.
    pub event_time: BTreeMap<String, String>,
    /// Counters of the query's steps (`transform.<step>.failedCalls`: calls that failed and were
    /// skipped or dead-lettered by the step's `onError` policy).
    pub observed_metrics: BTreeMap<String, serde_json::Value>,
    /// Stateful operators' statistics.
    pub state_operators: Vec<serde_json::Value>,
    /// One entry per source.
    pub sources: Vec<SourceProgress>,
    /// The sink.
    pub sink: SinkProgress,
}

/// A source's part of a progress record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    /// The source's description.
    pub description: String,
    /// Offset the batch started after (`null` for the first batch).
    pub start_offset: Option<Offset>,
    /// Offset the batch ended at.
    pub end_offset: Offset,
    /// The latest offset the source reported.
    pub latest_offset: Offset,
    /// Rows read.
    pub num_input_rows: u64,
    /// Rows per second since the previous trigger.
    pub input_rows_per_second: f64,
    /// Rows per second of processing time.
    pub processed_rows_per_second: f64,
    /// Source-specific counters (`numMalformedRows`, ...).
    pub metrics: SourceMetrics,
}

/// The sink's part of a progress record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    /// The sink's description.
    pub description: String,
    /// Rows written (0 when a re-run batch was skipped as already committed).
    pub num_output_rows: u64,
}

/// Spark's `StreamingQueryStatus`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatus {
    /// What the query is doing, in words.
    pub message: String,
    /// Whether the last look at the sources found new data.
    pub is_data_available: bool,
    /// Whether a batch is running now.
    pub is_trigger_active: bool,
}

/// Status and recent progress of one query, shared between its thread and observers.
#[derive(Debug, Default)]
pub struct QueryMonitor {
    inner: Mutex<MonitorState>,
    /// Receives a copy of every progress record (a clustered query's member, for its tasks).
    parent: Option<std::sync::Arc<QueryMonitor>>,
}

#[derive(Debug, Default)]
struct MonitorState {
    status: QueryStatus,
    /// The query's thread has ended, and why, if it failed.
    ended: Option<Option<String>>,
    recent: VecDeque<QueryProgress>,
    totals: Totals,
}

/// Upper bounds (seconds) of the batch-duration histogram's buckets.
pub const BATCH_SECONDS_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters a query accumulates over its run, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Batches committed.
    pub batches: u64,
    /// Rows read.
    pub input_rows: u64,
    /// Rows written by the sink.
    pub output_rows: u64,
    /// Batches per duration bucket ([`BATCH_SECONDS_BUCKETS`], not cumulative).
    pub batch_seconds_buckets: [u64; BATCH_SECONDS_BUCKETS.len()],
    /// Sum of batch durations, seconds.
    pub batch_seconds_sum: f64,
    /// Per transform step.
    pub steps: BTreeMap<String, StepTotals>,
    /// Tasks run on the worker pool (`parallel.tasks`).
    pub worker_tasks: u64,
    /// CPU time of those tasks, seconds (`parallel.taskCpuMs`).
    pub worker_cpu_seconds: f64,
    /// CPU time of the query's own thread, seconds (`parallel.queryThreadCpuMs`).
    pub query_thread_cpu_seconds: f64,
}

/// A transform step's calls over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTotals {
    /// `sha256:<hex>` of the module that ran last.
    pub module: String,
    /// Calls (one per record batch).
    pub calls: u64,
    /// Failed calls.
    pub failed: u64,
    /// Time in the calls, seconds.
    pub seconds: f64,
}

impl Totals {
    fn add(&mut self, p: &QueryProgress) {
        self.batches += 1;
        self.input_rows += p.num_input_rows;
        self.output_rows += p.sink.num_output_rows;
        let secs = p.batch_duration as f64 / 1000.0;
        self.batch_seconds_sum += secs;
        if let Some(i) = BATCH_SECONDS_BUCKETS.iter().position(|b| secs <= *b) {
            self.batch_seconds_buckets[i] += 1;
        }
        for (key, value) in &p.observed_metrics {
            match key.as_str() {
                "parallel.tasks" => self.worker_tasks += value.as_u64().unwrap_or(0),
                "parallel.taskCpuMs" => {
                    self.worker_cpu_seconds += value.as_f64().unwrap_or(0.0) / 1000.0
                }
                "parallel.queryThreadCpuMs" => {
                    self.query_thread_cpu_seconds += value.as_f64().unwrap_or(0.0) / 1000.0
                }
                _ => {}
            }
            let Some(rest) = key.strip_prefix("transform.") else {
                continue;
            };
            let Some((step, metric)) = rest.rsplit_once('.') else {
                continue;
            };
            let entry = self.steps.entry(step.to_owned()).or_default();
            match metric {
                "module" => entry.module = value.as_str().unwrap_or_default().to_owned(),
                "calls" => entry.calls += value.as_u64().unwrap_or(0),
                "failedCalls" => entry.failed += value.as_u64().unwrap_or(0),
                "callSeconds" => entry.seconds += value.as_f64().unwrap_or(0.0),
                _ => {}
            }
        }
    }
}

impl QueryMonitor {
    fn state(&self) -> std::sync::MutexGuard<'_, MonitorState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current status.
    pub fn status(&self) -> QueryStatus {
        self.state().status.clone()
    }

    /// Updates the status.
    pub fn set_status(&self, message: &str, data_available: bool, trigger_active: bool) {
        let mut s = self.state();
        s.status.message = message.to_owned();
        s.status.is_data_available = data_available;
        s.status.is_trigger_active = trigger_active;
    }

    /// The last progress record.
    pub fn last_progress(&self) -> Option<QueryProgress> {
        self.state().recent.back().cloned()
    }

    /// Records that the query's thread ended (with its error, if it failed).
    pub fn set_ended(&self, error: Option<String>) {
        self.state().ended = Some(error);
    }

    /// Records how the query's thread ended: its status and, if it failed, the error.
    pub fn set_finished<T, E: std::fmt::Display>(&self, result: &std::result::Result<T, E>) {
        self.set_status(
            if result.is_ok() {
                "Stopped"
            } else {
                "Terminated with exception"
            },
            false,
            false,
        );
        self.set_ended(result.as_ref().err().map(|e| e.to_string()));
    }

    /// `None` while the query runs; once it ended, `Some(error)`.
    pub fn ended(&self) -> Option<Option<String>> {
        self.state().ended.clone()
    }

    /// Up to [`RECENT_PROGRESS`] records, oldest first.
    pub fn recent_progress(&self) -> Vec<QueryProgress> {
        self.state().recent.iter().cloned().collect()
    }

    /// Counters over the whole run.
    pub fn totals(&self) -> Totals {
        self.state().totals.clone()
    }

    /// A monitor whose progress records also go to `parent` (a member's, for one task).
    pub fn with_parent(parent: std::sync::Arc<QueryMonitor>) -> Self {
        QueryMonitor {
            inner: Mutex::default(),
            parent: Some(parent),
        }
    }

    /// Appends a record, dropping the oldest beyond [`RECENT_PROGRESS`].
    pub fn push(&self, p: QueryProgress) {
        if let Some(parent) = &self.parent {
            parent.push(p.clone());
        }
        let mut s = self.state();
        s.totals.add(&p);
        if s.recent.len() == RECENT_PROGRESS {
            s.recent.pop_front();
        }
        s.recent.push_back(p);
    }
}

/// Now, as progress records write times (RFC 3339, milliseconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
