//! Stateful operators: streaming aggregation (with event-time windows), deduplication,
//! joins, and the keyed processor (per-key state in Wasm).
//!
//! An operator sees each micro-batch after the transform steps, with the batch's watermark,
//! keeps what it must remember in memory, and persists it per batch through the
//! [`crate::state::StateStore`] so a restart resumes exactly where the last committed batch
//! left off. What it emits depends on the output mode:
//!
//! | mode | aggregation emits | evicts |
//! |---|---|---|
//! | append | a window once, when the watermark passes its end | what it emitted |
//! | update | every group changed by the batch | groups whose window ended behind the watermark |
//! | complete | the whole result table | nothing |

pub mod aggregate;
pub mod dedup;
pub mod exchange;
pub mod join;
pub mod operator;
pub mod processor;
pub mod stateless;
pub mod window;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Statistics of a stateful operator for progress (Spark's `StateOperatorProgress`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    /// The operator's name.
    pub operator_name: String,
    /// Keys in state after the batch.
    pub num_rows_total: u64,
    /// Keys written by the batch.
    pub num_rows_updated: u64,
    /// Keys evicted by the batch.
    pub num_rows_removed: u64,
    /// Input rows (per window) dropped for being behind the watermark.
    pub num_rows_dropped_by_watermark: u64,
    /// Approximate memory held by the state.
    pub memory_used_bytes: u64,
    /// Time to write the state's delta (and snapshot).
    pub commit_time_ms: u64,
    /// Operator-specific figures (Spark's `customMetrics`), e.g. the processor's Wasm calls.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub custom_metrics: std::collections::BTreeMap<String, u64>,
}

/// The watermarks (ms) a stateful operator runs one batch with, as Spark's
/// `eventTimeWatermarkForLateEvents` and `...ForEviction`.
///
/// Alone behind the inputs both are the batch's watermark. Behind a stream–stream join they
/// are held back by the join's time range, and rows count as late only by the *previous*
/// batch's: an outer row the join emits when the watermark passes it is on time for the
/// operators after it, not dropped by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Rows whose event time is at or behind this are late (dropped, counted).
    pub late_ms: i64,
    /// State behind this is final: emitted (append) and evicted.
    pub eviction_ms: i64,
}

impl Watermarks {
    /// Both the same (an operator fed by the inputs directly).
    pub fn single(ms: i64) -> Watermarks {
        Watermarks {
            late_ms: ms,
            eviction_ms: ms,
        }
    }
}

/// What a stateful operator knows of the batch it runs: its id, its processing time (as the
/// offsets log recorded it, so a re-run batch sees the same) and its watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchClock {
    /// The batch id.
    pub batch_id: u64,
    /// The batch's processing time, ms since the epoch.
    pub processing_time_ms: i64,
    /// Its event-time watermarks.
    pub watermarks: Watermarks,
}

/// A stateful operator of a query.
pub trait StatefulOperator: Send {
    /// The schema of what it emits.
    fn output_schema(&self) -> SchemaRef;

    /// Loads the state after batch `version` (`None`: empty) — before the first batch it runs.
    fn restore(&mut self, version: Option<u64>) -> Result<()>;

    /// Processes a batch's rows at its clock and returns what to emit to the sink.
    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>>;

    /// Persists the state after batch `batch_id`.
    fn commit(&mut self, batch_id: u64) -> Result<()>;

    /// Removes persisted versions older than `keep_from`.
    fn purge(&mut self, keep_from: u64) -> Result<()>;

    /// Statistics of the last batch.
    fn progress(&self) -> StateOperatorProgress;

    /// Whether a watermark that moved without new data could emit or evict something (then
    /// the engine runs a no-data batch).
    fn wants_no_data_batches(&self) -> bool;

    /// Whether something falls due by processing time `now_ms` (a processing-time timer or
    /// TTL), so the engine runs a no-data batch even though the watermark did not move.
    fn due_by_processing_time(&self, _now_ms: i64) -> bool {
        false
    }
}

// A boxed operator is an operator.
impl<T: StatefulOperator + ?Sized> StatefulOperator for Box<T> {
    fn output_schema(&self) -> SchemaRef {
        (**self).output_schema()
    }
    fn restore(&mut self, version: Option<u64>) -> Result<()> {
        (**self).restore(version)
    }
    fn process(&mut self, clock: BatchClock, input: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        (**self).process(clock, input)
    }
    fn commit(&mut self, batch_id: u64) -> Result<()> {
        (**self).commit(batch_id)
    }
    fn purge(&mut self, keep_from: u64) -> Result<()> {
        (**self).purge(keep_from)
    }
    fn progress(&self) -> StateOperatorProgress {
        (**self).progress()
    }
    fn wants_no_data_batches(&self) -> bool {
        (**self).wants_no_data_batches()
    }
    fn due_by_processing_time(&self, now_ms: i64) -> bool {
        (**self).due_by_processing_time(now_ms)
    }
}

/// A pipeline field that does not fit the data reaching it, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The field's path in the query, e.g. `aggregate.aggs[1].column`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl SpecProblem {
    /// The first of `columns` (the pipeline field `field`, e.g. `processor.key`) that is not
    /// in `schema`, as a problem naming its position and the columns there are.
    pub fn missing_column(
        schema: &arrow_schema::Schema,
        columns: &[String],
        field: &str,
    ) -> Result<(), SpecProblem> {
        match columns
            .iter()
            .enumerate()
            .find(|(_, c)| schema.index_of(c).is_err())
        {
            Some((i, c)) => Err(SpecProblem {
                key: format!("{field}[{i}]"),
                message: format!(
                    "column '{c}' is not among the query's columns ({})",
                    crate::schema::column_names(schema)
                ),
            }),
            None => Ok(()),
        }
    }
}

impl From<SpecProblem> for crate::error::Error {
    fn from(p: SpecProblem) -> crate::error::Error {
        crate::error::Error::Data {
            context: p.key,
            message: p.message,
        }
    }
}
