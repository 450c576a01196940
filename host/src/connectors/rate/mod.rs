//! Spark's `rate` and `rate-micro-batch` generators.

pub mod source;

use std::time::Duration;

use crate::config::reader::TableReader;

/// Options of the `rate` source.
#[derive(Debug, Clone, Copy)]
pub struct RateSpec {
    /// Rows generated per second once ramped up.
    pub rows_per_second: u64,
    /// Time to ramp up linearly to `rows_per_second`.
    pub ramp_up_time: Duration,
    /// Accepted for compatibility; rows are generated in one partition.
    pub num_partitions: u64,
}

/// Options of the `rate-micro-batch` source.
#[derive(Debug, Clone, Copy)]
pub struct RateMicroBatchSpec {
    /// Rows in every batch.
    pub rows_per_batch: u64,
    /// Accepted for compatibility; rows are generated in one partition.
    pub num_partitions: u64,
    /// Event time of batch 0's rows, in ms since the epoch.
    pub start_timestamp_ms: i64,
    /// How far the event time moves per batch, in ms.
    pub advance_millis_per_batch: i64,
}

/// `format = "rate"` options.
pub(crate) fn parse_rate(mut s: TableReader) -> Option<RateSpec> {
    let spec = RateSpec {
        rows_per_second: s.positive("rowsPerSecond").unwrap_or(1),
        ramp_up_time: s.duration("rampUpTime").unwrap_or_default(),
        num_partitions: s.positive("numPartitions").unwrap_or(1),
    };
    s.finish(&["format", "rowsPerSecond", "rampUpTime", "numPartitions"]);
    Some(spec)
}

/// `format = "rate-micro-batch"` options.
pub(crate) fn parse_micro_batch(mut s: TableReader) -> Option<RateMicroBatchSpec> {
    let rows = s.positive("rowsPerBatch");
    if s.get("rowsPerBatch").is_none() {
        s.error_here(
            "rowsPerBatch",
            "missing required option; e.g. rowsPerBatch = 1000".to_owned(),
        );
    }
    let spec = RateMicroBatchSpec {
        rows_per_batch: rows.unwrap_or(0),
        num_partitions: s.positive("numPartitions").unwrap_or(1),
        start_timestamp_ms: s.i64("startTimestamp").unwrap_or(0),
        advance_millis_per_batch: s.i64("advanceMillisPerBatch").unwrap_or(1000),
    };
    s.finish(&[
        "format",
        "rowsPerBatch",
        "numPartitions",
        "startTimestamp",
        "advanceMillisPerBatch",
    ]);
    rows.map(|_| spec)
}
