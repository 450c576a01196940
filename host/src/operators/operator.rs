//! The one trait every node of a query's plan implements (in the manner of DataFusion's
//! `ExecutionPlan`): an input, a Wasm step, a union, a join, deduplication, an aggregation, a
//! keyed processor.
//!
//! A node's schema is fixed when the plan is built; its children are the plan's edges (the
//! plan, `query::plan`, owns them and hands each node its children's rows, in order); the
//! partitioning it needs of its input is stated; and a stateful node carries its state's
//! lifecycle — restore, commit, purge, progress, no-data batches — on the same trait, with
//! defaults that suit a stateless node. Every stateful node is an
//! [`Exchange`](super::exchange::Exchange) over the operator's state partitions.
//!
//! Watermarks flow through the plan as Spark's multiple-stateful-operator rules say: a node
//! runs with the watermarks of its input (the minimum over its children); a node that emits
//! rows when the watermark passes them ([`Operator::emits_on_watermark`]) hands its parents a
//! late-events watermark of the *previous* batch, so what it emits now is not late for them;
//! a node whose output lags its input (a stream–stream join, by its time range) holds both
//! back ([`Operator::output_lag_ms`]).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{BatchClock, StateOperatorProgress};
use crate::error::Result;
use crate::sink::outputs::SharedOutputs;
use crate::wasm::transform::WasmTransform;

/// What a node sees of the batch it runs besides its input rows.
pub struct OperatorContext<'a> {
    /// The batch id, its processing time, and this node's watermarks.
    pub clock: BatchClock,
    /// The query's Wasm steps (a step node runs one of them; the query swaps them between
    /// batches, so they are held outside the plan).
    pub steps: &'a mut [WasmTransform],
    /// The named outputs steps may write to.
    pub outputs: &'a SharedOutputs,
    /// How many partitions of a batch run at once.
    pub parallelism: usize,
}

/// How a node needs its input's rows spread over state partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Any way: a stateless node.
    Any,
    /// Rows with equal `columns` in the same one of `partitions` (the key of its state).
    ByKey {
        /// The key columns.
        columns: Vec<String>,
        /// How many state partitions.
        partitions: usize,
    },
}

/// A node of a query's plan.
pub trait Operator: Send {
    /// What it is, for `sluice explain`, logs and errors (`Union`, `StreamStreamJoin`, ...).
    fn name(&self) -> &'static str;

    /// The schema of the rows it emits, fixed when the plan is built.
    fn schema(&self) -> SchemaRef;

    /// How it needs its input partitioned.
    fn required_partitioning(&self) -> Partitioning {
        Partitioning::Any
    }

    /// Processes one batch: `inputs` holds each child's rows, in the order of its children
    /// (an input node gets its source's rows as its one input).
    fn process(
        &mut self,
        ctx: &mut OperatorContext<'_>,
        inputs: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<RecordBatch>>;

    /// How far behind its input's watermark the rows it emits can be, ms.
    fn output_lag_ms(&self) -> i64 {
        0
    }

    /// Whether it emits rows when the watermark passes them (a window, an outer join's
    /// unmatched row, a timer's output) rather than as they arrive.
    fn emits_on_watermark(&self) -> bool {
        false
    }

    /// Whether it keeps state in the checkpoint between batches.
    fn is_stateful(&self) -> bool {
        false
    }

    /// Loads the state after batch `version` (`None`: empty), before the first batch it runs.
    fn restore(&mut self, _version: Option<u64>) -> Result<()> {
        Ok(())
    }

    /// Persists the state after batch `batch_id`.
    fn commit(&mut self, _batch_id: u64) -> Result<()> {
        Ok(())
    }

    /// Removes persisted versions older than `keep_from`.
    fn purge(&mut self, _keep_from: u64) -> Result<()> {
        Ok(())
    }

    /// Statistics of the last batch, for a stateful node.
    fn progress(&self) -> Option<StateOperatorProgress> {
        None
    }

    /// Whether a watermark that moved without new data could make it emit or evict.
    fn wants_no_data_batches(&self) -> bool {
        false
    }

    /// Whether something falls due by processing time `now_ms` (a timer, a TTL).
    fn due_by_processing_time(&self, _now_ms: i64) -> bool {
        false
    }

    /// Between batches: a table it joins with looks for a newer version.
    fn refresh(&mut self) -> Result<()> {
        Ok(())
    }

    /// The version of the table it joins with, which the offsets log records per batch.
    fn table_version(&self) -> Option<String> {
        None
    }
}
