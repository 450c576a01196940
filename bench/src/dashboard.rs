//! What watching the dashboard costs a run (issue: the dashboard). Run with
//! `cargo build --release -p sluice && cargo run --release -p sluice-bench -- dashboard`.
//!
//! Nexmark q0 (`examples/nexmark/q0.toml`, 10 M events) runs as `sluice run`, alternately
//! without `--ui` and with `--ui` and the page open in headless Chromium
//! (`tests/dashboard/watch.mjs`, which polls like the page itself, once a second). The figure
//! is events per second over the batches' own time (the sum of `batchDuration` in the
//! progress log), so the browser's start-up, which competes for the same two cores before the
//! first batch, is not counted against the batch loop.
//!
//! The browser shares this machine's two cores with the run; with `--pin` the run is held to
//! core 0 and the browser to core 1 (`taskset`), both ways, so what is left is what serving
//! the page costs the host rather than what drawing it costs the machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::measure::median;

/// One run of q0; returns events per second of batch time.
fn run_q0(sluice: &Path, examples: &Path, watch: bool, pin: bool) -> Result<f64> {
    let work = tempfile::tempdir()?;
    let log = work.path().join("progress.jsonl");
    let on_core = |core: &str, program: &Path| {
        if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", core]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    let mut cmd = on_core("0", sluice);
    cmd.current_dir(examples)
        .args(["run", "q0.toml", "--progress-log"])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn");
    if watch {
        cmd.args(["--ui", "127.0.0.1:0"]);
    }
    let mut child = cmd.spawn().context("starting sluice run")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut browser = None;
    if watch {
        let url = loop {
            let line = lines
                .next()
                .context("sluice run ended before its dashboard line")??;
            if let Some(rest) = line.strip_prefix("sluice run dashboard on ") {
                break rest.split(' ').next().unwrap_or_default().to_owned();
            }
        };
        browser = Some(
            on_core("1", Path::new("node"))
                .arg(crate::repo().join("tests/dashboard/watch.mjs"))
                .arg(&url)
                .current_dir(crate::repo().join("tests/dashboard"))
                .stdout(Stdio::null())
                .spawn()
                .context("starting the browser (npm ci --prefix tests/dashboard)")?,
        );
    }
    for _ in lines.by_ref() {}
    let status = child.wait()?;
    if let Some(mut b) = browser {
        let _ = b.wait();
    }
    if !status.success() {
        bail!("sluice run q0 failed: {status}");
    }
    let mut events = 0u64;
    let mut ms = 0u64;
    for line in std::fs::read_to_string(&log)?.lines() {
        let p: sluice::progress::QueryProgress = serde_json::from_str(line)?;
        events += p.num_input_rows;
        ms += p.batch_duration;
    }
    Ok(events as f64 / (ms.max(1) as f64 / 1000.0))
}

/// Runs q0 `runs` times each way, interleaved, and prints both medians.
pub fn run(runs: usize, pin: bool) -> Result<()> {
    let sluice: PathBuf = std::env::current_exe()?.with_file_name("sluice");
    if !sluice.exists() {
        bail!(
            "{} not found: build it first with cargo build --release -p sluice",
            sluice.display()
        );
    }
    let examples = crate::repo().join("examples/nexmark");
    let (mut plain, mut watched) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(run_q0(&sluice, &examples, false, pin)?);
        watched.push(run_q0(&sluice, &examples, true, pin)?);
    }
    let (p, plo, phi) = median(&plain);
    let (w, wlo, whi) = median(&watched);
    let placement = if pin {
        " (run on core 0, browser on core 1)"
    } else {
        ""
    };
    println!(
        "q0{placement} without the dashboard: median {p:.0} events/s of batch time (min {plo:.0}, max {phi:.0}); with the page open: median {w:.0} (min {wlo:.0}, max {whi:.0}); difference {:+.1}% over {runs} runs each",
        (w - p) / p * 100.0
    );
    Ok(())
}
