//! Runs a pipeline text in this process, as `sluice run` would, and measures it.

use std::io::Write;

use anyhow::{Result, anyhow};
use sluice::manager::QueryManager;
use sluice::pipeline::Pipeline;

use crate::measure::{Span, span};

/// Runs pipeline `text` to completion (relative paths resolve in a temporary directory).
pub fn run_pipeline(text: &str) -> Result<PipelineRun> {
    run_pipeline_at(text, None)
}

/// What one run of a pipeline did.
pub struct PipelineRun {
    /// Wall and CPU time from start to the end of the last query.
    pub span: Span,
    /// Rows the sources delivered, over all batches.
    pub input_rows: u64,
    /// Each batch's duration, in milliseconds.
    pub batch_ms: Vec<f64>,
    /// Every batch's progress record.
    pub progress: Vec<sluice::progress::QueryProgress>,
}

/// Runs pipeline `text` to completion, its relative paths resolved as if it were the file
/// `anchor` (a temporary directory's when `None`).
pub fn run_pipeline_at(text: &str, anchor: Option<&std::path::Path>) -> Result<PipelineRun> {
    let dir = tempfile::tempdir()?;
    let file = anchor
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| dir.path().join("pipeline.toml"));
    let pipeline = Pipeline::parse(text, &file).map_err(|e| anyhow!("{e}"))?;
    // Every batch's progress, through the same JSON-lines log `sluice run --progress-log` writes.
    let log_path = dir.path().join("progress.jsonl");
    let log: sluice::query::ProgressLog = std::sync::Arc::new(std::sync::Mutex::new(Box::new(
        std::io::BufWriter::new(std::fs::File::create(&log_path)?),
    )));
    let (outcome, span) = span(|| -> Result<()> {
        let manager = QueryManager::start_pipeline(&pipeline, Some(log.clone()))
            .map_err(|e| anyhow!("{e}"))?;
        for (name, outcome) in manager.await_all(pipeline.on_query_failure) {
            outcome.map_err(|e| anyhow!("query {name}: {e}"))?;
        }
        Ok(())
    });
    outcome?;
    log.lock()
        .map_err(|_| anyhow!("progress log poisoned"))?
        .flush()?;
    let mut input_rows = 0;
    let mut batch_ms = Vec::new();
    let mut progress = Vec::new();
    for line in std::fs::read_to_string(&log_path)?.lines() {
        let p: sluice::progress::QueryProgress = serde_json::from_str(line)?;
        input_rows += p.num_input_rows;
        if std::env::var_os("SLUICE_BENCH_PHASES").is_some() {
            eprintln!(
                "batch {}: {} rows, {:?}",
                p.batch_id, p.num_input_rows, p.duration_ms
            );
        }
        batch_ms.push(p.batch_duration as f64);
        progress.push(p);
    }
    Ok(PipelineRun {
        span,
        input_rows,
        batch_ms,
        progress,
    })
}
