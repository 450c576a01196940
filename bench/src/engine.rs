//! Engine benchmarks (issue: the micro-batch engine). Run with
//! `cargo run --release -p sluice-bench -- engine`; figures go to docs/BENCHMARKS.md.
//!
//! 1. **json → parquet**: JSON-lines files of ~100-byte rows, pass-through, parquet file sink,
//!    `availableNow`: rows/s and input MB/s, whole query wall time (listing, parsing, writing,
//!    fsync of data, offsets and commits).
//! 2. **round trip**: an almost empty batch (one row, `rate-micro-batch`, unspecified trigger,
//!    json file sink): offsets write + read + sink + commit, all fsynced, per batch.
//!
//! Each figure is the median of `RUNS` runs; min and max are printed to show the noise.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use sluice::manager::QueryManager;
use sluice::pipeline::Pipeline;

use crate::measure::median;
use crate::pipeline::run_pipeline;

const RUNS: usize = 5;
const FILES: usize = 20;
const ROWS_PER_FILE: usize = 100_000;
const ROUND_TRIPS: u64 = 300;

fn write_input(dir: &Path) -> (u64, u64) {
    std::fs::create_dir_all(dir).unwrap();
    const CITIES: [&str; 8] = [
        "Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju", "Ulsan", "Suwon",
    ];
    const EVENTS: [&str; 3] = ["click", "view", "purchase"];
    let mut bytes = 0;
    for f in 0..FILES {
        let mut text = String::with_capacity(ROWS_PER_FILE * 110);
        for r in 0..ROWS_PER_FILE {
            let id = f * ROWS_PER_FILE + r;
            text.push_str(&format!(
                "{{\"id\":{id},\"city\":\"{}\",\"domain\":\"shop{}.example.com\",\"event\":\"{}\",\"amount\":{},\"ts\":\"2024-05-01T12:{:02}:{:02}Z\"}}\n",
                CITIES[id % 8],
                id % 100,
                EVENTS[id % 3],
                id % 10_000,
                (id / 60) % 60,
                id % 60
            ));
        }
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("part-{f:03}.json")), text).unwrap();
    }
    (bytes, (FILES * ROWS_PER_FILE) as u64)
}

fn json_to_parquet() -> Result<()> {
    let data = tempfile::tempdir()?;
    let (bytes, rows) = write_input(&data.path().join("in"));
    let mut rates = Vec::new();
    let mut mbs = Vec::new();
    for _ in 0..RUNS {
        let text = format!(
            r#"[[query]]
name = "bench"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{input}/*.json"
schema = "id BIGINT, city STRING, domain STRING, event STRING, amount BIGINT, ts TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 4
[query.sink]
format = "parquet"
path = "out"
"#,
            input = data.path().join("in").display(),
        );
        let took = run_pipeline(&text)?.span.wall.as_secs_f64();
        rates.push(rows as f64 / took);
        mbs.push(bytes as f64 / 1e6 / took);
    }
    let (r, rmin, rmax) = median(&rates);
    let (m, _, _) = median(&mbs);
    println!(
        "json->parquet availableNow: {rows} rows ({:.1} MB, {:.0} B/row), median {:.0} rows/s ({:.1} MB/s), min {:.0}, max {:.0} over {RUNS} runs",
        bytes as f64 / 1e6,
        bytes as f64 / rows as f64,
        r,
        m,
        rmin,
        rmax
    );
    Ok(())
}

fn round_trip() -> Result<()> {
    let mut per_batch = Vec::new();
    for _ in 0..RUNS {
        let work = tempfile::tempdir()?;
        let file = work.path().join("pipeline.toml");
        std::fs::write(
            &file,
            format!(
                r#"[[query]]
name = "tick"
checkpointLocation = "{ckpt}"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 1
[query.sink]
format = "json"
path = "{out}"
"#,
                ckpt = work.path().join("ckpt").display(),
                out = work.path().join("out").display(),
            ),
        )?;
        let pipeline = Pipeline::load(&file).map_err(|e| anyhow!("{e}"))?;
        let manager = QueryManager::start_pipeline(&pipeline, None).map_err(|e| anyhow!("{e}"))?;
        let monitor = manager.queries()[0].monitor().clone();
        // Time from the end of batch 9 (warm) to the end of batch 9 + ROUND_TRIPS.
        let wait_for = |id: u64| {
            while monitor.last_progress().is_none_or(|p| p.batch_id < id) {
                std::thread::sleep(Duration::from_micros(200));
            }
            Instant::now()
        };
        let t0 = wait_for(9);
        let t1 = wait_for(9 + ROUND_TRIPS);
        manager.stop_all();
        manager.await_all(pipeline.on_query_failure);
        per_batch.push((t1 - t0).as_secs_f64() * 1000.0 / ROUND_TRIPS as f64);
    }
    let (m, lo, hi) = median(&per_batch);
    println!(
        "round trip of a 1-row batch (offsets fsync, read, json sink + its log fsync, commit fsync): median {m:.2} ms/batch, min {lo:.2}, max {hi:.2} over {RUNS} runs of {ROUND_TRIPS} batches"
    );
    Ok(())
}

/// Runs the engine benchmarks whose name contains `only` (all without it).
pub fn run(only: Option<&str>) -> Result<()> {
    if only.is_none_or(|o| "json_to_parquet".contains(o)) {
        json_to_parquet()?;
    }
    if only.is_none_or(|o| "round_trip".contains(o)) {
        round_trip()?;
    }
    Ok(())
}
