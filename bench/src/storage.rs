//! Object storage (issue 18): the engine bench's json → parquet job with its checkpoint and its
//! parquet sink on a local S3-compatible server (moto's, as the tests use), next to the same
//! job on local disk. Run with `cargo run --release -p sluice-bench -- storage`.
//!
//! Prints rows/s and the median (and max) of every phase of a batch's progress record over
//! every batch of every run: `latestOffset` (listing, the source log entry), `walCommit` (the
//! offsets entry), `getBatch` (reading and decoding), `addBatch` (encoding plus the PUTs and
//! the sink's log entry), `commitOffsets` (the commit entry), `triggerExecution` (all).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::median;
use crate::pipeline::run_pipeline;

const FILES: usize = 16;
const ROWS_PER_FILE: usize = 50_000;

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Result<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("python3 -m moto.server (pip install 'moto[server]')")?;
    let moto = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("http://127.0.0.1:{port}/"))
        .call()
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("moto's server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

fn write_input(dir: &std::path::Path) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut rows = 0;
    for f in 0..FILES {
        let mut text = String::with_capacity(ROWS_PER_FILE * 110);
        for r in 0..ROWS_PER_FILE {
            let id = f * ROWS_PER_FILE + r;
            text.push_str(&format!(
                "{{\"id\":{id},\"city\":\"c{}\",\"domain\":\"shop{}.example.com\",\"amount\":{}}}\n",
                id % 8,
                id % 100,
                id % 10_000
            ));
            rows += 1;
        }
        std::fs::write(dir.join(format!("part-{f:03}.json")), text)?;
    }
    Ok(rows)
}

/// One job `runs` times with checkpoint and sink under `root`: rows/s and per-batch phases.
fn measure(input: &std::path::Path, root: &str, rows: u64, runs: usize) -> Result<String> {
    let mut rates = Vec::new();
    let mut phases: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for run in 0..runs {
        let text = format!(
            r#"[[query]]
name = "bench"
checkpointLocation = "{root}/run{run}/ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{input}/*.json"
schema = "id BIGINT, city STRING, domain STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 2
[query.sink]
format = "parquet"
path = "{root}/run{run}/out"
"#,
            input = input.display(),
        );
        let r = run_pipeline(&text)?;
        rates.push(rows as f64 / r.span.wall.as_secs_f64());
        for p in &r.progress {
            for (phase, ms) in &p.duration_ms {
                phases.entry(phase.clone()).or_default().push(*ms as f64);
            }
        }
    }
    let (rate, lo, hi) = median(&rates);
    let mut line = format!("{rate:.0} rows/s (min {lo:.0}, max {hi:.0})");
    for (phase, ms) in phases {
        let (m, _, max) = median(&ms);
        line.push_str(&format!(", {phase} median {m:.0} ms (max {max:.0})"));
    }
    Ok(line)
}

/// Runs the comparison: local disk first, then moto's S3.
pub fn run(runs: usize) -> Result<()> {
    let data = tempfile::tempdir()?;
    let input = data.path().join("in");
    let rows = write_input(&input)?;
    let local = data.path().join("local");
    println!(
        "json -> parquet, {rows} rows in {FILES} files, 2 files per batch, local disk: {}",
        measure(&input, &local.display().to_string(), rows, runs)?
    );
    let moto = start_moto()?;
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    ureq::put(&format!("{endpoint}/bench")).send_empty()?;
    // SAFETY: set before any query (or other thread reading the environment) starts; the S3
    // client reads these when it is built.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    println!(
        "json -> parquet, {rows} rows in {FILES} files, 2 files per batch, S3 (moto on localhost): {}",
        measure(&input, "s3://bench", rows, runs)?
    );
    Ok(())
}
