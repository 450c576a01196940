//! Keyed processor benchmark (issue: per-key state in Wasm). Run with
//! `cargo run --release -p sluice-bench -- processor`; figures go to docs/BENCHMARKS.md.
//!
//! A counter per key (`examples/key-counter`: one `ValueState<i64>` per key, the new count
//! emitted for every key a batch touches) over 1,000,000 keys read from JSON files, against
//! the strongest baseline this engine has for the same result: the built-in native `count`
//! aggregation grouped by the same key, in update mode. Reported: rows/s end to end and per
//! core (the process's CPU time), peak resident memory with every key in state, and the
//! guest calls per batch from the progress records.

use std::path::Path;

use anyhow::Result;

use crate::measure::{median, peak_rss, reset_peak_rss, resident};
use crate::pipeline::{PipelineRun, run_pipeline};

const KEYS: u64 = 1_000_000;
const FILES: u64 = 20;
const ROWS_PER_FILE: u64 = 200_000;
const RUNS: usize = 3;

fn write_input(dir: &Path) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = 0;
    for f in 0..FILES {
        let mut text = String::with_capacity((ROWS_PER_FILE * 40) as usize);
        for r in 0..ROWS_PER_FILE {
            // Every key four times over the input, a quarter of them in each batch of four
            // files: each batch touches 800,000 keys, half of them new.
            let i = f * ROWS_PER_FILE + r;
            let key = (i * 7_919) % KEYS;
            text.push_str(&format!(
                "{{\"user\":\"user-{key:07}\",\"amount\":{}}}\n",
                i % 100
            ));
        }
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("part-{f:03}.json")), text).unwrap();
    }
    bytes
}

fn query(input: &Path, files_per_batch: u64, stateful: &str) -> String {
    format!(
        r#"[[query]]
name = "counter"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "update"
[query.source]
format = "json"
path = "{}/*.json"
schema = "user STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = {files_per_batch}
{stateful}
[query.sink]
format = "blackhole"
"#,
        input.display()
    )
}

struct Figures {
    rows_per_s: f64,
    rows_per_cpu_s: f64,
    peak_mb: f64,
    before_mb: f64,
    keys: u64,
    state_mb: f64,
    calls: Vec<u64>,
}

fn measure(text: &str) -> Result<Figures> {
    let mut rates = Vec::new();
    let mut per_core = Vec::new();
    let mut peaks = Vec::new();
    let mut last: Option<PipelineRun> = None;
    let before = resident();
    for _ in 0..RUNS {
        reset_peak_rss();
        let run = run_pipeline(text)?;
        peaks.push(peak_rss() as f64);
        rates.push(run.input_rows as f64 / run.span.wall.as_secs_f64());
        per_core.push(run.input_rows as f64 / run.span.cpu.as_secs_f64());
        last = Some(run);
    }
    let run = last.expect("at least one run");
    let op = |p: &sluice::progress::QueryProgress, field: &str| {
        p.state_operators
            .first()
            .and_then(|o| o[field].as_u64())
            .unwrap_or(0)
    };
    let final_progress = run.progress.last().expect("a batch ran");
    let mb = |b: f64| b / (1024.0 * 1024.0);
    Ok(Figures {
        rows_per_s: median(&rates).0,
        rows_per_cpu_s: median(&per_core).0,
        peak_mb: mb(median(&peaks).0),
        before_mb: mb(before as f64),
        keys: op(final_progress, "numRowsTotal"),
        state_mb: mb(op(final_progress, "memoryUsedBytes") as f64),
        calls: run
            .progress
            .iter()
            .map(|p| {
                p.state_operators
                    .first()
                    .and_then(|o| o["customMetrics"]["numWasmCalls"].as_u64())
                    .unwrap_or(0)
            })
            .collect(),
    })
}

/// Runs the benchmark: the processor, then the native aggregation on the same files, with
/// batches of one file (200,000 rows) and of four (800,000 rows).
pub fn run(module: &Path) -> Result<()> {
    let data = tempfile::tempdir()?;
    let input = data.path().join("in");
    let bytes = write_input(&input);
    let rows = FILES * ROWS_PER_FILE;
    let processor = format!(
        "[query.processor]\nmodule = \"{}\"\nkey = [\"user\"]\n",
        module.display()
    );
    let native =
        "[query.aggregate]\ngroupBy = [\"user\"]\naggs = [{ fn = \"count\", as = \"count\" }]\n";
    println!(
        "input: {rows} rows over {KEYS} keys in {FILES} JSON files ({:.1} MB); median of {RUNS} runs\n",
        bytes as f64 / 1e6
    );
    println!(
        "| query | rows a batch | rows/s | rows/s per core (CPU time) | keys in state | state (operator's count) | peak RSS | guest calls per batch |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for files in [1, 4] {
        for (name, stateful) in [
            ("Wasm processor (key-counter)", processor.as_str()),
            ("native count aggregation", native),
        ] {
            let f = measure(&query(&input, files, stateful))?;
            let calls = if f.calls.iter().all(|&c| c == f.calls[0]) {
                format!("{} (every batch)", f.calls[0])
            } else {
                format!("{:?}", f.calls)
            };
            println!(
                "| {name} | {} | {:.2} M | {:.2} M | {} | {:.0} MB | {:.0} MB (before: {:.0} MB) | {calls} |",
                files * ROWS_PER_FILE,
                f.rows_per_s / 1e6,
                f.rows_per_cpu_s / 1e6,
                f.keys,
                f.state_mb,
                f.peak_mb,
                f.before_mb,
            );
        }
    }
    Ok(())
}
