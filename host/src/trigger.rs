//! When the next micro-batch starts: Spark's four trigger kinds.
//!
//! | trigger | next batch | no new data | ends |
//! |---|---|---|---|
//! | unspecified | as soon as the last one ends | polls again after a short delay | never |
//! | `processingTime` | at the next multiple of the interval; at once if the last batch overran | no batch, waits for the next boundary | never |
//! | `once` | one batch with everything available (limits ignored) | no batch | after that batch |
//! | `availableNow` | as fast as possible, honouring per-trigger limits | - | when everything present at start is processed |
//! | `continuous` | no batches: records are processed as they arrive; the checkpoint is written once per interval (an epoch) | waits for records | never |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a query schedules its micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Next batch as soon as the previous one ends.
    #[default]
    Unspecified,
    /// Batches start on multiples of the interval (wall-clock aligned, as in Spark).
    ProcessingTime(Duration),
    /// One batch of all available data, then stop.
    Once,
    /// All data available at start, in as many batches as the limits allow, then stop.
    AvailableNow,
    /// Continuous processing (Spark's continuous trigger): records go from source to sink as
    /// they arrive, and every interval the epoch they belong to is committed (the offsets
    /// and commit logs, a Kafka transaction). See `query/continuous.rs`.
    Continuous(Duration),
}

impl Trigger {
    /// Whether the per-trigger limits (`maxFilesPerTrigger`, ...) apply.
    pub fn honours_limits(self) -> bool {
        !matches!(self, Trigger::Once)
    }

    /// Whether the query stops by itself once the data present at start is processed.
    pub fn is_bounded(self) -> bool {
        matches!(self, Trigger::Once | Trigger::AvailableNow)
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Trigger::Unspecified => f.write_str("unspecified"),
            Trigger::ProcessingTime(d) => write!(f, "processingTime({d:?})"),
            Trigger::Once => f.write_str("once"),
            Trigger::AvailableNow => f.write_str("availableNow"),
            Trigger::Continuous(d) => write!(f, "continuous({d:?})"),
        }
    }
}

/// How long an unspecified trigger waits before polling a source that had no new data
/// (Spark's `spark.streaming.pollingDelay`).
pub const POLLING_DELAY: Duration = Duration::from_millis(10);

/// For a processing-time trigger: when the batch that started at `batch_start` should be
/// followed by the next one, and whether the batch overran its interval.
///
/// Boundaries are multiples of the interval since the Unix epoch, like Spark's
/// `ProcessingTimeExecutor`, so a 10-second trigger fires at :00, :10, :20 whatever the start.
pub fn next_boundary(
    batch_start: SystemTime,
    now: SystemTime,
    interval: Duration,
) -> (SystemTime, bool) {
    let interval_ms = interval.as_millis().max(1);
    let start_ms = batch_start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let next_ms = (start_ms / interval_ms + 1) * interval_ms;
    let next = UNIX_EPOCH + Duration::from_millis(next_ms as u64);
    if now > next {
        (now, true)
    } else {
        (next, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_time_aligns_to_interval_boundaries() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let iv = Duration::from_millis(100);
        assert_eq!(next_boundary(at(1_000), at(1_020), iv), (at(1_100), false));
        assert_eq!(next_boundary(at(1_050), at(1_060), iv), (at(1_100), false));
        // Overran: the batch took longer than the interval, start the next at once.
        assert_eq!(next_boundary(at(1_050), at(1_230), iv), (at(1_230), true));
    }
}
