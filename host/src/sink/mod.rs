//! Sinks: where each micro-batch's result goes, behind one trait that receives
//! `(batch id, rows)`.
//!
//! The batch id is the engine's: a batch re-run after a crash arrives with the same id and
//! the same rows. A sink that can remember which ids it has committed (the file sink's log,
//! the memory sink) skips a repeat and so gives exactly-once output together with the
//! checkpoint; the console sink prints again (at-least-once), as in Spark.

//! Each sink lives with its options and, where it has one, its source in
//! [`crate::connectors`]`::<name>`; this module is the trait they implement and the named
//! outputs a foreachBatch handler writes to ([`outputs`]). Which connector serves which
//! pipeline spec is decided a floor up, where the plan is built (`query::connect`).

pub mod outputs;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::config::OutputMode;
use crate::error::{Error, Result};

/// Receives the rows of each micro-batch.
pub trait Sink: Send {
    /// Describes the sink for logs and progress.
    fn description(&self) -> String;

    /// Writes batch `batch_id`. Must be idempotent for sinks that claim exactly-once.
    /// Returns the number of rows written (0 for a skipped repeat).
    fn add_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64>;

    /// Asks the sink to make batches durable in a second step: `add_batch` then hands a
    /// batch over (a Kafka producer sends it on its own threads) and [`Sink::finish_batch`]
    /// waits until it is durable, so the engine reads and transforms the next batch in
    /// between. Called once, before the first batch; `false` (the default): `add_batch` is
    /// durable when it returns.
    fn defer_finish(&mut self) -> bool {
        false
    }

    /// Makes batch `batch_id`, handed over by `add_batch`, durable (acknowledged,
    /// committed). Only called after `defer_finish` returned true; the engine calls it
    /// before the next `add_batch` and before it records the batch as committed.
    fn finish_batch(&mut self, _batch_id: u64) -> Result<()> {
        Ok(())
    }

    /// Continuous processing: takes rows of epoch `epoch` as they arrive, in many calls per
    /// epoch; [`Sink::finish_batch`] makes the epoch durable at its end (the engine calls it
    /// whether or not `defer_finish` was asked). Only the sinks a continuous query may write
    /// (Kafka, console, memory) implement it; `sluice validate` refuses the others first.
    fn add_continuous(
        &mut self,
        _epoch: u64,
        _schema: &SchemaRef,
        _batches: &[RecordBatch],
    ) -> Result<u64> {
        Err(Error::Sink {
            sink: self.description(),
            message: "this sink cannot be written continuously; use a micro-batch trigger".into(),
        })
    }
}

/// What a sink is opened with besides its own options.
#[derive(Clone)]
pub struct SinkContext {
    /// The query's name.
    pub query: String,
    /// The query id from the checkpoint (stable across restarts).
    pub query_id: String,
    /// The query's output mode.
    pub output_mode: OutputMode,
    /// The schema of the batches the sink will receive.
    pub schema: SchemaRef,
    /// The query's named outputs (for foreachBatch handlers).
    pub outputs: outputs::SharedOutputs,
    /// How many files of a batch a file sink may write at once.
    pub parallelism: usize,
    /// For a named output (`[query.outputs.NAME]`): its name. Its rows' schema is known only
    /// when a handler writes them (`schema` is then the query's input schema).
    pub output_name: Option<String>,
}

/// Counts rows and writes nothing: what benchmarks use so the sink does not dominate.
pub struct Blackhole;

impl Sink for Blackhole {
    fn description(&self) -> String {
        "BlackholeSink".to_owned()
    }

    fn add_batch(
        &mut self,
        _batch_id: u64,
        _schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }
}
