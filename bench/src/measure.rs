//! What every benchmark reports: wall time, the process's own CPU time, peak resident memory,
//! and medians over repeated runs.

use std::time::{Duration, Instant};

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
pub fn cpu_time() -> Duration {
    cpu_time_of(None)
}

/// CPU time (user + system) `pid` (this process for `None`) has used so far, from
/// `/proc/<pid>/stat`; zero once it is gone.
pub fn cpu_time_of(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // Linux reports them in USER_HZ, 100 per second on every platform we run on.
    Duration::from_millis(ticks * 10)
}

/// Peak resident memory of this process so far, in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    status_kb("VmHWM:") * 1024
}

/// Resident memory of this process now, in bytes (`VmRSS`).
pub fn resident() -> u64 {
    status_kb("VmRSS:") * 1024
}

/// Resets the peak resident memory to the current value, so a run measures its own peak.
pub fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0+); harmless where it is not allowed.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kb(field: &str) -> u64 {
    proc_status(None, field)
}

/// A number of `/proc/<pid>/status` (`None`: this process), e.g. `VmRSS:` in kB or
/// `Threads:`; 0 where it cannot be read.
pub fn proc_status(pid: Option<u32>, field: &str) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes of the files under `dir`, recursively (0 where it cannot be read).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Wall and CPU time of one run.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Elapsed wall-clock time.
    pub wall: Duration,
    /// CPU time the process used meanwhile (all threads).
    pub cpu: Duration,
}

/// Runs `f`, measuring its wall and CPU time.
pub fn span<T>(f: impl FnOnce() -> T) -> (T, Span) {
    let (w, c) = (Instant::now(), cpu_time());
    let out = f();
    let span = Span {
        wall: w.elapsed(),
        cpu: cpu_time().saturating_sub(c),
    };
    (out, span)
}

/// The median, minimum and maximum of `values`.
pub fn median(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.as_slice() {
        [] => (f64::NAN, f64::NAN, f64::NAN),
        v => (v[v.len() / 2], v[0], v[v.len() - 1]),
    }
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Noise of a set of runs, as the spread between min and max relative to the median.
pub fn spread_percent(values: &[f64]) -> f64 {
    let (m, lo, hi) = median(values);
    (hi - lo) / m * 100.0
}
