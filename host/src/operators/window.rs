//! Event-time windows: which windows a row at time `t` belongs to.
//!
//! Windows are `[start, end)`: start inclusive, end exclusive, aligned to the Unix epoch plus
//! `startTime`, as Spark's `window(column, duration, slide, startTime)` and
//! `session_window(column, gap)`.

use std::time::Duration;

/// `window = { column, duration [, slide] [, startTime] }` or `{ column, gap }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed windows of `duration` every `slide` (tumbling when `slide == duration`).
    Fixed {
        /// Event-time column.
        column: String,
        /// Window length.
        duration: Duration,
        /// Distance between window starts.
        slide: Duration,
        /// Offset of the window starts from the epoch.
        start: Duration,
    },
    /// Session windows: rows of a key closer than `gap` share a window.
    Session {
        /// Event-time column.
        column: String,
        /// Inactivity that closes a session.
        gap: Duration,
    },
}

impl WindowSpec {
    /// The event-time column.
    pub fn column(&self) -> &str {
        match self {
            WindowSpec::Fixed { column, .. } | WindowSpec::Session { column, .. } => column,
        }
    }
}

fn us(d: Duration) -> i64 {
    d.as_micros() as i64
}

/// Calls `f(start_us)` for every fixed window containing `t_us`, oldest first.
#[inline]
pub fn fixed_windows(
    t_us: i64,
    duration: Duration,
    slide: Duration,
    start: Duration,
    mut f: impl FnMut(i64),
) {
    let (d, s, o) = (us(duration), us(slide), us(start));
    let last = (t_us - o).div_euclid(s) * s + o;
    let mut first = last;
    while first - s > t_us - d {
        first -= s;
    }
    let mut w = first;
    while w <= last {
        f(w);
        w += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(t: i64, d: u64, s: u64, o: u64) -> Vec<i64> {
        let mut v = Vec::new();
        fixed_windows(
            t,
            Duration::from_micros(d),
            Duration::from_micros(s),
            Duration::from_micros(o),
            |w| v.push(w),
        );
        v
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_plus_offset() {
        assert_eq!(windows(7, 5, 5, 0), vec![5]);
        assert_eq!(windows(5, 5, 5, 0), vec![5], "start is inclusive");
        assert_eq!(windows(4, 5, 5, 0), vec![0], "end is exclusive");
        assert_eq!(windows(7, 5, 5, 2), vec![7]);
        assert_eq!(windows(6, 5, 5, 2), vec![2]);
        assert_eq!(windows(-1, 5, 5, 0), vec![-5], "before the epoch");
    }

    #[test]
    fn sliding_windows_cover_each_row_duration_over_slide_times() {
        // 10-minute windows every 5 minutes, as in Spark's guide: 12:07 is in 12:00-12:10 and 12:05-12:15.
        assert_eq!(windows(7, 10, 5, 0), vec![0, 5]);
        assert_eq!(windows(10, 10, 5, 0), vec![5, 10]);
        assert_eq!(windows(7, 10, 3, 0), vec![0, 3, 6]);
    }
}
