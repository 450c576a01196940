//! Event-time benchmarks (issue: event time). Run with
//! `cargo run --release -p sluice-bench -- event-time`; figures go to docs/BENCHMARKS.md.
//!
//! 1. **tumbling sum**: JSON files of ~100-byte orders (8 categories, event times a few
//!    minutes out of order), 5-minute tumbling windows, sum per category, 10-minute
//!    watermark, append, `availableNow`, end to end from the files (parse included).
//! 2. **sliding count**: 10-second windows sliding every 2 seconds, count per key over
//!    10,000 keys (each row lands in 5 windows), update mode into a blackhole sink.
//! 3. **state size**: 1,000,000 distinct keys held in state (1-hour windows, append, nothing
//!    closes); peak resident memory of the process before and after.

use std::path::Path;

use anyhow::Result;

use crate::measure::{median, peak_rss, resident};
use crate::pipeline::run_pipeline;

const RUNS: usize = 3;

fn write_files(dir: &Path, files: usize, rows: usize, row: impl Fn(usize) -> String) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = 0;
    for f in 0..files {
        let mut text = String::with_capacity(rows * 110);
        for r in 0..rows {
            text.push_str(&row(f * rows + r));
        }
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("part-{f:03}.json")), text).unwrap();
    }
    bytes
}

/// `secs` after 2024-05-01T00:00:00Z, as RFC 3339.
fn iso(secs: usize) -> String {
    chrono::DateTime::from_timestamp(1_714_521_600 + secs as i64, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Wall seconds of one run of `text`.
fn run(text: &str) -> Result<f64> {
    Ok(run_pipeline(text)?.span.wall.as_secs_f64())
}

fn tumbling_sum() -> Result<()> {
    const CATEGORIES: [&str; 8] = [
        "food", "tech", "toys", "books", "garden", "sports", "music", "games",
    ];
    let data = tempfile::tempdir()?;
    let (files, rows) = (20, 100_000);
    let bytes = write_files(data.path(), files, rows, |i| {
        // ~20 orders per second of event time; every 7th order up to 3 minutes late.
        let secs = i / 20 - if i % 7 == 0 { (i % 180).min(i / 20) } else { 0 };
        format!(
            "{{\"order_id\":{i},\"order_time\":\"{}\",\"category\":\"{}\",\"amount\":{},\"customer\":\"c{:06}\"}}\n",
            iso(secs),
            CATEGORIES[i % 8],
            (i * 7919) % 100_000,
            i % 1_000_000
        )
    });
    let text = format!(
        r#"[[query]]
name = "tumbling"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{}/*.json"
schema = "order_id BIGINT, order_time TIMESTAMP, category STRING, amount BIGINT, customer STRING"
mode = "FAILFAST"
maxFilesPerTrigger = 4
watermark = {{ column = "order_time", delay = "10 minutes" }}
[query.aggregate]
groupBy = ["category"]
window = {{ column = "order_time", duration = "5 minutes" }}
aggs = [{{ fn = "sum", column = "amount", as = "revenue" }}]
[query.sink]
format = "blackhole"
"#,
        data.path().display()
    );
    let total = (files * rows) as f64;
    let times = (0..RUNS)
        .map(|_| run(&text))
        .collect::<Result<Vec<f64>>>()?;
    let (m, lo, hi) = median(&times);
    println!(
        "tumbling 5-min sum per category from JSON ({} rows, {:.0} B/row): median {:.0} rows/s (min {:.0}, max {:.0}) over {RUNS} runs; median {m:.3} s for the job, {:.0} MB/s",
        total,
        bytes as f64 / total,
        total / m,
        total / hi,
        total / lo,
        bytes as f64 / m / 1e6
    );
    let floor = (0..RUNS)
        .map(|_| parse_floor(data.path()))
        .collect::<Result<Vec<f64>>>()?;
    let (f, _, _) = median(&floor);
    println!(
        "  the floor, simd-json parsing the same lines to its tape on {} threads (files read before): median {f:.3} s, {:.0} MB/s; the job takes {:.1}× the floor",
        threads(),
        bytes as f64 / f / 1e6,
        m / f
    );
    Ok(())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Seconds simd-json takes to parse every line of the `.json` files in `dir` to its tape, the
/// files shared out over one thread per core: the most a JSON job on these files could gain
/// from its parser (the issue's "floor").
fn parse_floor(dir: &Path) -> Result<f64> {
    let mut files: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(std::fs::read(path)?);
        }
    }
    let threads = threads();
    let mut shares: Vec<Vec<Vec<u8>>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, f) in files.into_iter().enumerate() {
        shares[i % threads].push(f);
    }
    let start = std::time::Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = shares
            .iter_mut()
            .map(|share| {
                scope.spawn(move || -> Result<usize> {
                    let mut buffers = simd_json::Buffers::default();
                    let mut lines = 0;
                    for file in share.iter_mut() {
                        for line in file.split_mut(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            let tape = simd_json::to_tape_with_buffers(line, &mut buffers)?;
                            std::hint::black_box(&tape);
                            lines += 1;
                        }
                    }
                    Ok(lines)
                })
            })
            .collect();
        for w in workers {
            let lines = w
                .join()
                .map_err(|_| anyhow::anyhow!("a parsing thread panicked"))??;
            std::hint::black_box(lines);
        }
        Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

fn sliding_count() -> Result<()> {
    let data = tempfile::tempdir()?;
    let (files, rows) = (10, 100_000);
    write_files(data.path(), files, rows, |i| {
        format!(
            "{{\"key\":\"k{:05}\",\"ts\":\"{}\"}}\n",
            (i * 7919) % 10_000,
            iso(i / 2_000)
        )
    });
    let text = format!(
        r#"[[query]]
name = "sliding"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "update"
[query.source]
format = "json"
path = "{}/*.json"
schema = "key STRING, ts TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 2
watermark = {{ column = "ts", delay = "5 seconds" }}
[query.aggregate]
groupBy = ["key"]
window = {{ column = "ts", duration = "10 seconds", slide = "2 seconds" }}
aggs = [{{ fn = "count", as = "n" }}]
[query.sink]
format = "blackhole"
"#,
        data.path().display()
    );
    let total = (files * rows) as f64;
    let times = (0..RUNS)
        .map(|_| run(&text))
        .collect::<Result<Vec<f64>>>()?;
    let (m, lo, hi) = median(&times);
    println!(
        "sliding 10s/2s count per key, 10,000 keys ({total} rows, 5 windows each): median {:.0} rows/s (min {:.0}, max {:.0}) over {RUNS} runs",
        total / m,
        total / hi,
        total / lo
    );
    Ok(())
}

fn state_size() -> Result<()> {
    let data = tempfile::tempdir()?;
    let (files, rows) = (10, 100_000);
    write_files(data.path(), files, rows, |i| {
        format!(
            "{{\"id\":{i},\"ts\":\"{}\",\"amount\":{}}}\n",
            iso(i % 3000),
            i % 1000
        )
    });
    let text = format!(
        r#"[[query]]
name = "keys"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{}/*.json"
schema = "id BIGINT, ts TIMESTAMP, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 2
watermark = {{ column = "ts", delay = "1 hour" }}
[query.aggregate]
groupBy = ["id"]
window = {{ column = "ts", duration = "1 hour" }}
aggs = [{{ fn = "sum", column = "amount", as = "total" }}, {{ fn = "count", as = "n" }}]
[query.sink]
format = "blackhole"
"#,
        data.path().display()
    );
    let before = resident();
    let took = run(&text)?;
    let peak = peak_rss();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "1,000,000 keys in state: resident before {:.0} MB, peak {:.0} MB (state and the batch in flight: {:.0} MB); {:.0} rows/s",
        mb(before),
        mb(peak),
        mb(peak.saturating_sub(before)),
        (files * rows) as f64 / took
    );
    Ok(())
}

/// Runs the event-time benchmarks whose name contains `only` (all without it).
pub fn run_all(only: Option<&str>) -> Result<()> {
    let want = |name: &str| only.is_none_or(|o| name.contains(o));
    if want("state_size") {
        // First, so the peak is this benchmark's.
        state_size()?;
    }
    if want("tumbling_sum") {
        tumbling_sum()?;
    }
    if want("sliding_count") {
        sliding_count()?;
    }
    Ok(())
}
