//! Sources: where a query's rows come from, behind one trait with replayable offsets.
//!
//! The engine drives every source the same way, following Spark's `MicroBatchStream`:
//!
//! 1. [`Source::latest_offset`] — how far the data goes now (bounded by the per-trigger limit);
//! 2. the engine writes that offset to the checkpoint's offsets log (the write-ahead log);
//! 3. [`Source::get_batch`] — the rows between the previous batch's end and that offset;
//!    called again with the *same* offsets when a batch is re-run after a crash, and must
//!    then return the same rows;
//! 4. [`Source::commit`] — the batch reached the sink; the source may forget or clean up.
//!
//! A continuous query (`trigger = { continuous = ... }`) drives a source differently: it
//! calls [`Source::read_available`] over and over, taking whatever records have arrived,
//! and writes the offset reached to the offsets log once per epoch. A re-run of an epoch
//! after a crash goes through `get_batch` with the recorded offsets, as a batch does.
//!
//! Offsets are JSON values, stored verbatim in the checkpoint, so each source picks its own
//! shape (a file-log index, a row count, per-partition Kafka offsets).

//! Each source lives with its options and, where it has one, its sink in
//! [`crate::connectors`]`::<name>`; this module is the trait they implement. Which connector
//! serves which pipeline spec is decided a floor up, where the plan is built
//! (`query::connect`).

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::{Error, Result};

/// A source position, as stored in the offsets log.
pub type Offset = serde_json::Value;

/// How much a single batch may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Everything available (`once` trigger).
    All,
    /// The source's own per-trigger limits (`maxFilesPerTrigger`, ...).
    Configured,
}

/// Per-batch counters a source reports in progress (`sources[].metrics`).
pub type SourceMetrics = BTreeMap<String, serde_json::Value>;

/// A replayable stream of Arrow record batches.
pub trait Source: Send {
    /// The schema of every batch this source returns.
    fn schema(&self) -> SchemaRef;

    /// Describes the source for logs and progress.
    fn description(&self) -> String;

    /// For `availableNow`: fixes the end of the data to what is present now; later
    /// [`Source::latest_offset`] calls never go past it.
    fn prepare_for_available_now(&mut self) -> Result<()> {
        Ok(())
    }

    /// The end offset of the next batch starting at `start` (`None`: from the beginning), or
    /// `None` when the source has no data at all. Returning `start` itself means no new data.
    fn latest_offset(&mut self, start: Option<&Offset>, limit: ReadLimit)
    -> Result<Option<Offset>>;

    /// The rows after `start` up to and including `end`. Deterministic for a given pair.
    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>>;

    /// Everything up to `end` reached the sink and is committed in the checkpoint.
    fn commit(&mut self, end: &Offset) -> Result<()>;

    /// Continuous processing: the records that arrived after `start` (`None`: the source's
    /// starting position), waiting up to `wait` for the first, and the offset just after
    /// them; `None` when nothing arrived in time. Only the sources a continuous query may
    /// read (Kafka, rate) implement it; `sluice validate` refuses the others first.
    fn read_available(
        &mut self,
        _start: Option<&Offset>,
        _wait: Duration,
    ) -> Result<Option<(Offset, Vec<RecordBatch>)>> {
        Err(Error::Source {
            source_name: self.description(),
            message: "this source cannot be read continuously; use a micro-batch trigger".into(),
        })
    }

    /// Counters for the last [`Source::get_batch`], reset by this call.
    fn take_metrics(&mut self) -> SourceMetrics {
        SourceMetrics::new()
    }
}

/// What a source may use of the query's checkpoint.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// `checkpoint/sources/<n>`: the source's own log directory.
    pub log_dir: crate::storage::Location,
    /// How many of a batch's partitions (e.g. files) the source may read at once.
    pub parallelism: usize,
}

/// Reads a `u64` field of an offset written by one of our sources.
pub fn offset_u64(offset: Option<&Offset>, field: &str) -> Option<u64> {
    offset.and_then(|o| o.get(field)).and_then(|v| v.as_u64())
}
