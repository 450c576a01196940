//! Nexmark (issue: benchmarks): the pipelines in `examples/nexmark/` run unthrottled on the
//! `nexmark` source, with events/s, events/s per core of CPU time, batch latencies and peak
//! memory, and the published per-core figures of Flink to compare with.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::measure::{median, peak_rss, quantile, reset_peak_rss, spread_percent};
use crate::pipeline::run_pipeline_at;

/// The queries with pipelines in `examples/nexmark/`, with Flink's published throughput per
/// core (events/s, Nexmark on Flink's reference cluster) and this project's targets.
pub const QUERIES: [(&str, f64, f64); 9] = [
    ("q0", 155_000.0, 1_000_000.0),
    ("q1", 158_000.0, 1_000_000.0),
    ("q2", 175_000.0, 1_000_000.0),
    ("q3", 152_000.0, 1_000_000.0),
    ("q8", 146_000.0, 1_000_000.0),
    ("q5", 22_000.0, 200_000.0),
    ("q7", 12_000.0, 150_000.0),
    ("q4", 34_000.0, 1_000_000.0),
    ("q9", 14_200.0, 1_000_000.0),
];

/// The queries only `examples/nexmark-sql/` has.
pub const SQL_ONLY: [&str; 9] = [
    "q10", "q11", "q14", "q15", "q16", "q17", "q20", "q21", "q22",
];

/// One query's figures over its runs.
pub struct QueryFigures {
    /// The query.
    pub query: String,
    /// Events per run.
    pub events: u64,
    /// Median wall seconds.
    pub wall: f64,
    /// Median events/s.
    pub rate: f64,
    /// Spread of events/s across runs, percent.
    pub spread: f64,
    /// Median events/s per core of CPU time.
    pub per_core: f64,
    /// Median CPU cores used (CPU time / wall time).
    pub cores: f64,
    /// Batch duration quantiles over all runs, ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Peak resident memory of the process during the runs, MB.
    pub peak_mb: f64,
}

/// Runs `query` `runs` times over `events` events.
pub fn run_query(
    examples: &std::path::Path,
    query: &str,
    events: u64,
    runs: usize,
) -> Result<QueryFigures> {
    let file: PathBuf = examples.join(format!("{query}.toml"));
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading {} (queries: q0, q1, q2, q3, q4, q5, q7, q8, q9)",
            file.display()
        )
    })?;
    // The pipeline as shipped, with the number of events asked for; a file sink (q10) writes
    // into a fresh directory each run, its checkpoint beside it.
    let out = tempfile::tempdir().context("a directory for q10's files")?;
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("events =") {
                format!("events = {events}")
            } else if l.trim_start().starts_with("checkpointLocation =") {
                format!(
                    "checkpointLocation = \"{}/checkpoint\"",
                    out.path().display()
                )
            } else if l.trim_start().starts_with("path = \"out/") {
                format!("path = \"{}/files\"", out.path().display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (mut walls, mut rates, mut per_core, mut cores, mut batches) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    reset_peak_rss();
    for _ in 0..runs {
        // Each run's files start from an empty directory.
        let _ = std::fs::remove_dir_all(out.path());
        std::fs::create_dir_all(out.path()).context("q10's directory")?;
        let run = run_pipeline_at(&text, Some(&file))?;
        if run.batch_ms.is_empty() {
            bail!("{query}: no batch ran");
        }
        let wall = run.span.wall.as_secs_f64();
        let cpu = run.span.cpu.as_secs_f64().max(1e-3);
        walls.push(wall);
        rates.push(events as f64 / wall);
        per_core.push(events as f64 / cpu);
        cores.push(cpu / wall);
        batches.extend(run.batch_ms);
    }
    Ok(QueryFigures {
        query: query.to_owned(),
        events,
        wall: median(&walls).0,
        rate: median(&rates).0,
        spread: spread_percent(&rates),
        per_core: median(&per_core).0,
        cores: median(&cores).0,
        p50_ms: quantile(&batches, 0.5),
        p99_ms: quantile(&batches, 0.99),
        peak_mb: peak_rss() as f64 / 1e6,
    })
}

/// The figures of one query, as the harness prints them.
pub fn print_one(f: &QueryFigures) {
    println!(
        "{}: {} events in {:.2} s: {:.0} events/s ({:.0} per core, {:.2} cores used; spread {:.0}%), batch p50 {:.0} ms, p99 {:.0} ms, peak resident {:.0} MB",
        f.query,
        f.events,
        f.wall,
        f.rate,
        f.per_core,
        f.cores,
        f.spread,
        f.p50_ms,
        f.p99_ms,
        f.peak_mb
    );
}

/// The markdown table of `--all`.
pub fn table(figures: &[QueryFigures], runs: usize) -> String {
    let mut out = format!(
        "| query | events | events/s (median of {runs}) | spread | events/s per core | cores used | batch p50 / p99 | peak RSS | Flink per core | target per core |\n|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for f in figures {
        let (flink, target) = QUERIES
            .iter()
            .find(|(q, _, _)| *q == f.query)
            .map(|(_, fl, t)| (*fl, *t))
            .unwrap_or((f64::NAN, f64::NAN));
        out += &format!(
            "| {} | {} | {:.0} | {:.0}% | **{:.0}** | {:.2} | {:.0} / {:.0} ms | {:.0} MB | {:.0} | {:.0}{} |\n",
            f.query,
            f.events,
            f.rate,
            f.spread,
            f.per_core,
            f.cores,
            f.p50_ms,
            f.p99_ms,
            f.peak_mb,
            flink,
            target,
            if f.per_core >= target { " ✓" } else { " ✗" }
        );
    }
    out
}
