//! Event-time watermarks (Spark's `withWatermark(column, delay)`).
//!
//! Each input with a watermark tracks the largest event time it has seen; its watermark is
//! that minus the delay. The query's watermark is the minimum over its inputs (or the
//! maximum, with `watermarkPolicy = "max"`), is computed at the end of a batch and applies
//! from the next batch on, never moves back, and is kept in the commit log so a restart
//! resumes with it.

use std::time::Duration;

use arrow_array::{Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Schema, TimeUnit};

use crate::error::{Error, Result};

/// `watermark = { column = "...", delay = "..." }` on an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The event-time column (TIMESTAMP).
    pub column: String,
    /// How late a row may be and still count.
    pub delay: Duration,
}

/// How several inputs' watermarks combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatermarkPolicy {
    /// The slowest input decides (Spark's default): nothing is dropped that any input still needs.
    #[default]
    Min,
    /// The fastest input decides: lower latency, late rows of slower inputs are dropped.
    Max,
}

/// Event-time statistics of one batch, for progress (`eventTime`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeStats {
    /// Smallest event time in the batch, µs.
    pub min: Option<i64>,
    /// Largest event time in the batch, µs.
    pub max: Option<i64>,
    /// Sum and count for the average.
    pub sum: i128,
    /// Rows with an event time.
    pub count: u64,
}

impl EventTimeStats {
    /// Folds another input's statistics of the same batch into these.
    pub fn merge(&mut self, other: &EventTimeStats) {
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Tracks the watermark of a query.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    specs: Vec<Option<WatermarkSpec>>,
    max_seen_us: Vec<Option<i64>>,
    policy: WatermarkPolicy,
    /// The watermark the current batch runs with, ms.
    current_ms: i64,
}

impl WatermarkTracker {
    /// A tracker for inputs with these watermark specs.
    pub fn new(specs: Vec<Option<WatermarkSpec>>, policy: WatermarkPolicy) -> Self {
        let n = specs.len();
        WatermarkTracker {
            specs,
            max_seen_us: vec![None; n],
            policy,
            current_ms: 0,
        }
    }

    /// Whether any input has a watermark.
    pub fn is_enabled(&self) -> bool {
        self.specs.iter().any(Option::is_some)
    }

    /// The watermark of input `i`'s spec, if any.
    pub fn spec(&self, input: usize) -> Option<&WatermarkSpec> {
        self.specs.get(input).and_then(Option::as_ref)
    }

    /// The watermark the current batch runs with (ms since the epoch; 0 before any data).
    pub fn current_ms(&self) -> i64 {
        self.current_ms
    }

    /// Restores the state saved in a commit entry.
    pub fn restore(&mut self, current_ms: i64, max_seen_us: &[Option<i64>]) {
        self.current_ms = current_ms;
        for (slot, saved) in self.max_seen_us.iter_mut().zip(max_seen_us) {
            *slot = *saved;
        }
    }

    /// Sets the watermark of the batch about to run (from the offsets log on a re-run).
    pub fn set_current_ms(&mut self, ms: i64) {
        self.current_ms = ms;
    }

    /// The largest event time seen per input, µs (saved in the commit log).
    pub fn max_seen_us(&self) -> &[Option<i64>] {
        &self.max_seen_us
    }

    /// Notes the event times of input `i`'s rows of this batch.
    pub fn observe(&mut self, input: usize, batches: &[RecordBatch]) -> Result<EventTimeStats> {
        let mut stats = EventTimeStats::default();
        let Some(spec) = self.spec(input).cloned() else {
            return Ok(stats);
        };
        for batch in batches {
            let times = event_times(batch, &spec.column)?;
            for t in times.iter().flatten() {
                stats.min = Some(stats.min.map_or(t, |m| m.min(t)));
                stats.max = Some(stats.max.map_or(t, |m| m.max(t)));
                stats.sum += t as i128;
                stats.count += 1;
            }
        }
        if let Some(max) = stats.max {
            let slot = &mut self.max_seen_us[input];
            *slot = Some(slot.map_or(max, |m| m.max(max)));
        }
        Ok(stats)
    }

    /// Each input's own watermark (max seen − delay, ms), `None` for an input without a
    /// watermark or without rows yet.
    pub fn input_watermarks_ms(&self) -> Vec<Option<i64>> {
        self.specs
            .iter()
            .zip(&self.max_seen_us)
            .map(|(spec, max)| Some(max.as_ref()? / 1000 - spec.as_ref()?.delay.as_millis() as i64))
            .collect()
    }

    /// The watermark for the next batch: the policy over inputs of (max seen − delay), never
    /// below the current one.
    pub fn next_ms(&self) -> i64 {
        let per_input = self
            .specs
            .iter()
            .zip(&self.max_seen_us)
            // As Spark's WatermarkTracker: an input that has not seen a row yet has no
            // watermark and takes no part in the policy.
            .filter_map(|(spec, max)| {
                let spec = spec.as_ref()?;
                Some(max.as_ref()? / 1000 - spec.delay.as_millis() as i64)
            });
        let combined = match self.policy {
            WatermarkPolicy::Min => per_input.min(),
            WatermarkPolicy::Max => per_input.max(),
        };
        combined.unwrap_or(0).max(self.current_ms)
    }
}

/// The event-time column of a batch as microseconds since the epoch (any TIMESTAMP unit).
pub fn event_times(batch: &RecordBatch, column: &str) -> Result<TimestampMicrosecondArray> {
    let col = batch.column_by_name(column).ok_or_else(|| Error::Data {
        context: format!("event-time column '{column}'"),
        message: "is not in the batch".into(),
    })?;
    let cast = arrow_cast::cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))
        .map_err(|e| Error::data(format!("event-time column '{column}'"), e))?;
    Ok(cast
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
        .unwrap_or_else(|| TimestampMicrosecondArray::from(vec![None::<i64>; cast.len()])))
}

/// Checks that `column` exists in `schema` and is a TIMESTAMP, with a message that says why not.
pub fn check_event_time_column(schema: &Schema, column: &str, what: &str) -> Result<()> {
    match schema.field_with_name(column).map(|f| f.data_type()) {
        Ok(DataType::Timestamp(_, _)) => Ok(()),
        Ok(other) => Err(Error::Data {
            context: format!("{what} column '{column}'"),
            message: format!(
                "is {other}, not a TIMESTAMP; declare it as TIMESTAMP in the source schema"
            ),
        }),
        Err(_) => Err(Error::Data {
            context: format!("{what} column '{column}'"),
            message: format!(
                "is not among the columns reaching it ({})",
                crate::schema::column_names(schema)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::Field;

    use super::*;

    fn batch(times_ms: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let col = arrow_array::TimestampMillisecondArray::from(times_ms.to_vec());
        RecordBatch::try_new(schema, vec![Arc::new(col)]).unwrap()
    }

    #[test]
    fn watermark_is_max_minus_delay_never_moves_back_and_takes_the_slowest_input() {
        let spec = |d| {
            Some(WatermarkSpec {
                column: "t".into(),
                delay: Duration::from_millis(d),
            })
        };
        let mut w = WatermarkTracker::new(vec![spec(100), spec(10)], WatermarkPolicy::Min);
        assert_eq!(w.next_ms(), 0);
        w.observe(0, &[batch(&[1_000, 5_000, 3_000])]).unwrap();
        w.observe(1, &[batch(&[2_000])]).unwrap();
        assert_eq!(w.next_ms(), 1_990);
        w.set_current_ms(w.next_ms());
        w.observe(1, &[batch(&[1_500])]).unwrap();
        assert_eq!(w.next_ms(), 1_990, "an older max does not move it back");
        let mut max = WatermarkTracker::new(vec![spec(100), spec(10)], WatermarkPolicy::Max);
        max.observe(0, &[batch(&[5_000])]).unwrap();
        max.observe(1, &[batch(&[2_000])]).unwrap();
        assert_eq!(max.next_ms(), 4_900);
    }

    #[test]
    fn an_input_without_rows_yet_takes_no_part_in_the_watermark() {
        let spec = Some(WatermarkSpec {
            column: "t".into(),
            delay: Duration::from_millis(100),
        });
        let mut w = WatermarkTracker::new(vec![spec.clone(), spec], WatermarkPolicy::Min);
        w.observe(0, &[batch(&[5_000])]).unwrap();
        assert_eq!(w.next_ms(), 4_900, "input 1 has seen nothing yet");
        w.observe(1, &[batch(&[1_000])]).unwrap();
        w.set_current_ms(0);
        assert_eq!(w.next_ms(), 900, "now the slower input holds it back");
    }
}
