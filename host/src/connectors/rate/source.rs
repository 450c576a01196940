//! Generated sources for tests and demos: `rate` (rows per second of wall-clock time) and
//! `rate-micro-batch` (a fixed number of rows per batch, the same rows on every replay).
//!
//! Both produce Spark's columns: `timestamp` (TIMESTAMP) and `value` (BIGINT, 0, 1, 2, ...).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::json;

use super::{RateMicroBatchSpec, RateSpec};
use crate::error::{Error, Result};
use crate::schema::{UTC, timestamp_type};
use crate::source::{Offset, ReadLimit, Source, SourceContext, offset_u64};

/// The rows of `rate` and `rate-micro-batch`: `timestamp`, `value` (as in Spark).
pub fn rate_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("value", arrow_schema::DataType::Int64, false),
    ]))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Builds a batch of consecutive values `first..first+count` with timestamps from `ts_of`.
fn rate_batch(
    schema: &SchemaRef,
    first: u64,
    count: u64,
    ts_of: impl Fn(u64) -> i64,
) -> Result<RecordBatch> {
    let values: Int64Array = (first..first + count).map(|v| v as i64).collect();
    let stamps = TimestampMicrosecondArray::from_iter_values((0..count).map(|i| ts_of(i) * 1000))
        .with_timezone(UTC);
    RecordBatch::try_new(schema.clone(), vec![Arc::new(stamps), Arc::new(values)])
        .map_err(|e| Error::data("building a rate batch", e))
}

/// Spark's `rate` source: `rowsPerSecond` rows per second, ramping up linearly over
/// `rampUpTime`. Offsets are milliseconds since the query first started (kept in the source
/// log), so a replayed batch has the same rows and timestamps.
pub struct RateSource {
    spec: RateSpec,
    schema: SchemaRef,
    start_ms: u64,
    available_now_end: Option<u64>,
}

impl RateSource {
    /// Opens the source, restoring its start time from the checkpoint.
    pub fn open(spec: RateSpec, ctx: SourceContext) -> Result<Self> {
        ctx.log_dir.create_dir_all()?;
        let path = ctx.log_dir.join("start.json");
        let start_ms = match path.read()? {
            Some(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("startMs").and_then(|s| s.as_u64()))
                .ok_or_else(|| Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: "rate source start time is corrupt".into(),
                })?,
            None => {
                let start = now_ms();
                path.write(json!({ "startMs": start }).to_string().into_bytes())?;
                start
            }
        };
        Ok(RateSource {
            spec,
            schema: rate_schema(),
            start_ms,
            available_now_end: None,
        })
    }

    /// Rows generated in the first `elapsed_ms` milliseconds.
    fn rows_at(&self, elapsed_ms: u64) -> u64 {
        let rate = self.spec.rows_per_second as u128;
        let ramp = self.spec.ramp_up_time.as_millis();
        let t = elapsed_ms as u128;
        let rows = if ramp == 0 {
            rate * t / 1000
        } else if t < ramp {
            rate * t * t / (2 * ramp * 1000)
        } else {
            rate * (2 * t - ramp) / 2000
        };
        rows as u64
    }
}

impl Source for RateSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        format!("RateSource[rowsPerSecond={}]", self.spec.rows_per_second)
    }

    fn prepare_for_available_now(&mut self) -> Result<()> {
        self.available_now_end = Some(now_ms().saturating_sub(self.start_ms));
        Ok(())
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        _limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let from = offset_u64(start, "elapsedMs").unwrap_or(0);
        let mut now = now_ms().saturating_sub(self.start_ms);
        if let Some(end) = self.available_now_end {
            now = now.min(end);
        }
        if now <= from || self.rows_at(now) == self.rows_at(from) {
            return Ok(start.cloned());
        }
        Ok(Some(json!({ "elapsedMs": now })))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let from = offset_u64(start, "elapsedMs").unwrap_or(0);
        let to = offset_u64(Some(end), "elapsedMs").unwrap_or(from);
        let (first, last) = (self.rows_at(from), self.rows_at(to));
        let count = last.saturating_sub(first);
        if count == 0 {
            return Ok(Vec::new());
        }
        // Spread the batch's rows evenly over its time range; deterministic for the offsets.
        let base = (self.start_ms + from) as i64;
        let span = (to - from) as i64;
        let batch = rate_batch(&self.schema, first, count, |i| {
            base + span * i as i64 / count as i64
        })?;
        Ok(vec![batch])
    }

    fn commit(&mut self, _end: &Offset) -> Result<()> {
        Ok(())
    }

    fn read_available(
        &mut self,
        start: Option<&Offset>,
        wait: Duration,
    ) -> Result<Option<(Offset, Vec<RecordBatch>)>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.latest_offset(start, ReadLimit::Configured)?
                && Some(&end) != start
            {
                let rows = self.get_batch(start, &end)?;
                return Ok(Some((end, rows)));
            }
            // Offsets count milliseconds: a millisecond is the finest wait that can find a
            // new row.
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(1)));
        }
    }
}

/// Spark's `rate-micro-batch` source: batch k holds values `k*rowsPerBatch ..` with event
/// time `startTimestamp + k*advanceMillisPerBatch`, whatever the wall clock says. Offsets
/// count batches (`{"batches": n}`).
pub struct RateMicroBatchSource {
    spec: RateMicroBatchSpec,
    schema: SchemaRef,
    bounded: bool,
    end: Option<u64>,
}

impl RateMicroBatchSource {
    /// Creates the source; it keeps no state of its own outside the offsets.
    pub fn new(spec: RateMicroBatchSpec) -> Self {
        RateMicroBatchSource {
            spec,
            schema: rate_schema(),
            bounded: false,
            end: None,
        }
    }
}

impl Source for RateMicroBatchSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn description(&self) -> String {
        format!(
            "RatePerMicroBatchSource[rowsPerBatch={}]",
            self.spec.rows_per_batch
        )
    }

    fn prepare_for_available_now(&mut self) -> Result<()> {
        // "Everything available now" for a generator is its next batch.
        self.bounded = true;
        Ok(())
    }

    fn latest_offset(
        &mut self,
        start: Option<&Offset>,
        _limit: ReadLimit,
    ) -> Result<Option<Offset>> {
        let from = offset_u64(start, "batches").unwrap_or(0);
        if self.bounded {
            let end = *self.end.get_or_insert(from + 1);
            if from >= end {
                return Ok(start.cloned());
            }
        }
        Ok(Some(json!({ "batches": from + 1 })))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let from = offset_u64(start, "batches").unwrap_or(0);
        let to = offset_u64(Some(end), "batches").unwrap_or(from);
        let rows = self.spec.rows_per_batch;
        (from..to)
            .map(|k| {
                let ts =
                    self.spec.start_timestamp_ms + k as i64 * self.spec.advance_millis_per_batch;
                rate_batch(&self.schema, k * rows, rows, |_| ts)
            })
            .collect()
    }

    fn commit(&mut self, _end: &Offset) -> Result<()> {
        Ok(())
    }
}
