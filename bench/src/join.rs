//! Join benchmarks (issue: queries with several inputs). Run with
//! `cargo run --release -p sluice-bench -- join`; figures go to docs/BENCHMARKS.md.
//!
//! 1. **stream–static probe**: a 1,000,000-row table (csv: id, name, tier) joined (inner, on
//!    `value = id`) by 1,000,000-row batches of `rate-micro-batch`, every row a hit. The
//!    figure is stream rows per second of the batch's `transform` phase (where the join
//!    runs, on one core): key encoding, hash probe, and gathering the output columns.
//! 2. **stream–stream state**: two `rate-micro-batch` inputs of 1,000,000 rows each joined
//!    inner on `value` with no time range, so every row of both sides stays buffered: the
//!    join's own count of the memory its state holds, against the rows' Arrow size, and the
//!    process's peak RSS.

use std::time::Duration;

use anyhow::{Result, anyhow};
use sluice::manager::QueryManager;
use sluice::pipeline::Pipeline;
use sluice::progress::QueryProgress;

use crate::measure::{median, peak_rss, reset_peak_rss};

const RUNS: usize = 15;
const ROWS: u64 = 1_000_000;

/// Runs `text` until its first batch committed, then stops it; returns that batch's progress.
fn first_batch(text: &str) -> Result<QueryProgress> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, text)?;
    let pipeline = Pipeline::load(&file).map_err(|e| anyhow!("{e}"))?;
    let manager = QueryManager::start_pipeline(&pipeline, None).map_err(|e| anyhow!("{e}"))?;
    let monitor = manager.queries()[0].monitor().clone();
    let progress = loop {
        if let Some(p) = monitor.last_progress() {
            break p;
        }
        if manager.queries()[0].is_finished() {
            break monitor
                .last_progress()
                .ok_or_else(|| anyhow!("the query ended before its first batch"))?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    manager.stop_all();
    for (name, outcome) in manager.await_all(pipeline.on_query_failure) {
        outcome.map_err(|e| anyhow!("query {name}: {e}"))?;
    }
    Ok(progress)
}

fn static_probe() -> Result<()> {
    let table = tempfile::tempdir()?;
    let mut csv = String::with_capacity(ROWS as usize * 24);
    csv.push_str("id,name,tier\n");
    for id in 0..ROWS {
        csv.push_str(&format!(
            "{id},user-{id},{}\n",
            ["gold", "silver", "bronze"][id as usize % 3]
        ));
    }
    std::fs::write(table.path().join("users.csv"), csv)?;
    let text = format!(
        r#"[[query]]
name = "probe"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = {ROWS}
[query.join]
type = "inner"
on = [["value", "id"]]
[query.join.table]
format = "csv"
path = "{dir}"
header = true
schema = "id BIGINT, name STRING, tier STRING"
mode = "FAILFAST"
[query.sink]
format = "blackhole"
"#,
        dir = table.path().display()
    );
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let p = first_batch(&text)?;
        let ms = p.duration_ms.get("transform").copied().unwrap_or(0).max(1) as f64;
        rates.push(p.num_input_rows as f64 / (ms / 1000.0));
    }
    let (m, lo, hi) = median(&rates);
    println!(
        "stream-static probe, {ROWS}-row table, {ROWS}-row batches, every row a hit: median {m:.0} stream rows/s on one core (min {lo:.0}, max {hi:.0} over {RUNS} runs)"
    );
    Ok(())
}

fn symmetric_state() -> Result<()> {
    let text = format!(
        r#"[[query]]
name = "buffer"
[query.inputs.left]
format = "rate-micro-batch"
rowsPerBatch = {ROWS}
[query.inputs.right]
format = "rate-micro-batch"
rowsPerBatch = {ROWS}
[query.join]
left = "left"
right = "right"
type = "inner"
on = ["value"]
[query.sink]
format = "blackhole"
"#
    );
    let mut ratios = Vec::new();
    let mut state_mb = Vec::new();
    let mut peaks = Vec::new();
    // Two columns of 8 bytes per row (timestamp, value), per side.
    let arrow_bytes = (ROWS * 16 * 2) as f64;
    for _ in 0..RUNS {
        reset_peak_rss();
        let p = first_batch(&text)?;
        let used = p
            .state_operators
            .first()
            .and_then(|s| s["memoryUsedBytes"].as_f64())
            .unwrap_or(0.0);
        let buffered = p
            .state_operators
            .first()
            .and_then(|s| s["numRowsTotal"].as_u64())
            .unwrap_or(0);
        anyhow::ensure!(buffered == 2 * ROWS, "{buffered} rows buffered");
        ratios.push(used / arrow_bytes);
        state_mb.push(used / 1e6);
        peaks.push(peak_rss() as f64 / 1e6);
    }
    let (r, _, _) = median(&ratios);
    let (s, _, _) = median(&state_mb);
    let (peak, _, _) = median(&peaks);
    println!(
        "stream-stream state, {ROWS} rows buffered per side: state {s:.1} MB = {r:.2}x the rows' Arrow size ({:.1} MB); peak RSS {peak:.0} MB (median of {RUNS} runs)",
        arrow_bytes / 1e6
    );
    Ok(())
}

/// Runs the join benchmarks whose name contains `only` (all without it).
pub fn run(only: Option<&str>) -> Result<()> {
    if only.is_none_or(|o| "static_probe".contains(o)) {
        static_probe()?;
    }
    if only.is_none_or(|o| "symmetric_state".contains(o)) {
        symmetric_state()?;
    }
    Ok(())
}
