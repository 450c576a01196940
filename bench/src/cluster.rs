//! Scale-out (issue 21): a clustered query run by one and by two member processes on this
//! machine, the time a killed member's partitions take to run elsewhere, and the time a
//! new owner takes to restore a partition's state of a million keys.
//!
//! Members are processes of this binary (`sluice-bench sluice run --member NAME …`, the
//! `sluice` command line built into the harness), against the harness's broker process.
//! Both members share the machine's two cores with each other and with the broker: the
//! figures say what the protocol costs and how the work splits, not what two machines do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka::{Broker, produce_from};

/// What to run.
pub struct ClusterBench {
    /// Records through the copy query per throughput run.
    pub records: u64,
    /// Keys in the partition whose state is restored.
    pub keys: u64,
}

/// Partitions of the copy query's topics (the mock broker keeps 5 MB per partition).
const PARTITIONS: usize = 24;

/// One batch of a task, from a member's progress log.
struct Batch {
    /// `<query>/<topic>-<p>`.
    task: String,
    start_ms: i64,
    end_ms: i64,
    rows: u64,
}

/// A member process; killed when dropped.
struct Member {
    child: Child,
    name: String,
    log: PathBuf,
    stderr: PathBuf,
}

impl Member {
    fn start(file: &Path, name: &str) -> Result<Member> {
        let dir = file.parent().context("pipeline folder")?;
        let log = dir.join(format!("progress-{name}.jsonl"));
        let stderr = dir.join(format!("stderr-{name}.log"));
        let child = Command::new(std::env::current_exe()?)
            .arg("sluice")
            .arg("run")
            .arg(file)
            .args(["--member", name, "--progress-log"])
            .arg(&log)
            .env("RUST_LOG", "sluice=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()?;
        Ok(Member {
            child,
            name: name.to_owned(),
            log,
            stderr,
        })
    }

    /// The batches with rows in its progress log.
    fn batches(&self) -> Vec<Batch> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<sluice::progress::QueryProgress>(l).ok())
            .filter(|p| p.num_input_rows > 0)
            .filter_map(|p| {
                let start = chrono::DateTime::parse_from_rfc3339(&p.timestamp)
                    .ok()?
                    .timestamp_millis();
                Some(Batch {
                    task: p.name,
                    start_ms: start,
                    end_ms: start + p.batch_duration as i64,
                    rows: p.num_input_rows,
                })
            })
            .collect()
    }

    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait()?;
        if !status.success() {
            bail!(
                "member {} ended with {status}: {}",
                self.name,
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
        Ok(())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_pipeline(dir: &Path, bootstrap: &str, session: &str, kip848: bool) -> Result<PathBuf> {
    let protocol = if kip848 {
        "\"kafka.group.protocol\" = \"consumer\""
    } else {
        ""
    };
    let file = dir.join("pipeline.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[query]]
name = "copy"
checkpointLocation = "ckpt"
[query.cluster]
group = "bench"
sessionTimeout = "{session}"
[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
subscribe = "in"
{protocol}
startingOffsets = "earliest"
[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
topic = "out"
exactlyOnce = true
"#
        ),
    )?;
    Ok(file)
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
fn until(what: &str, within: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + within;
    while !check()? {
        if Instant::now() > deadline {
            bail!("{what}: not within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How many partitions each named member runs now, from `members/` in the checkpoint.
fn running(ckpt: &Path, names: &[&str]) -> Result<Vec<usize>> {
    let members = sluice::cluster::members(ckpt)?;
    Ok(names
        .iter()
        .map(|n| {
            members
                .iter()
                .filter(|m| m.member == *n)
                .flat_map(|m| m.running())
                .count()
        })
        .collect())
}

fn records_in(bootstrap: &str, topic: &str, partitions: usize) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut total = 0;
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high - low;
    }
    Ok(total)
}

/// Records per second through the copy query with `n` members (after all joined).
fn throughput(records: u64, n: usize) -> Result<(f64, Vec<(String, u64)>)> {
    let broker = Broker::start(&[format!("in:{PARTITIONS}"), format!("out:{PARTITIONS}")])?;
    let dir = tempfile::tempdir()?;
    let file = copy_pipeline(dir.path(), &broker.bootstrap, "10 seconds", false)?;
    let ckpt = dir.path().join("ckpt");
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let members: Vec<Member> = names
        .iter()
        .map(|m| Member::start(&file, m))
        .collect::<Result<_>>()?;
    until(
        "the members share the partitions",
        Duration::from_secs(60),
        || {
            let counts = running(&ckpt, &name_refs)?;
            Ok(counts.iter().sum::<usize>() == PARTITIONS
                && counts.iter().all(|&c| c == PARTITIONS / n))
        },
    )?;
    produce_from(&broker.bootstrap, "in", 0, records)?;
    until("every record copied", Duration::from_secs(600), || {
        Ok(records_in(&broker.bootstrap, "out", PARTITIONS)? >= records as i64)
    })?;
    // The progress record of the last batch is written as it commits: wait for it.
    until("every batch logged", Duration::from_secs(30), || {
        Ok(members
            .iter()
            .flat_map(|m| m.batches())
            .map(|b| b.rows)
            .sum::<u64>()
            >= records)
    })?;
    let batches: Vec<(String, Vec<Batch>)> = members
        .iter()
        .map(|m| (m.name.clone(), m.batches()))
        .collect();
    let first = batches
        .iter()
        .flat_map(|(_, b)| b)
        .map(|b| b.start_ms)
        .min()
        .context("no batch")?;
    let last = batches
        .iter()
        .flat_map(|(_, b)| b)
        .map(|b| b.end_ms)
        .max()
        .context("no batch")?;
    let per_member = batches
        .iter()
        .map(|(m, b)| (m.clone(), b.iter().map(|x| x.rows).sum()))
        .collect();
    for m in members {
        m.stop()?;
    }
    Ok((
        records as f64 / ((last - first).max(1) as f64 / 1000.0),
        per_member,
    ))
}

/// How the hand-over is measured.
struct HandOver {
    /// `sessionTimeout` (classic) or the broker's session timeout (KIP-848), in seconds.
    session_secs: u64,
    /// KIP-848's protocol instead of the classic one.
    kip848: bool,
    /// SIGTERM (the member finishes its batches and leaves the group) instead of SIGKILL.
    graceful: bool,
}

/// After one of two members ends: until the survivor is given its partitions, and until it
/// committed a batch of one of them.
fn rebalance(how: &HandOver) -> Result<(Duration, Duration)> {
    let session_ms = (how.session_secs * 1000).to_string();
    let broker = Broker::start_with(
        &[format!("in:{PARTITIONS}"), format!("out:{PARTITIONS}")],
        &["--group-consumer-session-timeout-ms", &session_ms],
    )?;
    let dir = tempfile::tempdir()?;
    let session = format!("{} seconds", how.session_secs);
    let file = copy_pipeline(dir.path(), &broker.bootstrap, &session, how.kip848)?;
    let ckpt = dir.path().join("ckpt");
    let a = Member::start(&file, "a")?;
    let b = Member::start(&file, "b")?;
    until(
        "two members share the partitions",
        Duration::from_secs(60),
        || Ok(running(&ckpt, &["a", "b"])? == vec![PARTITIONS / 2, PARTITIONS / 2]),
    )?;
    let of_b: Vec<String> = sluice::cluster::members(&ckpt)?
        .into_iter()
        .filter(|m| m.member == "b")
        .flat_map(|m| m.partitions)
        .map(|p| format!("copy/{}", p.partition))
        .collect();
    // A steady trickle, so that every partition has a batch to run soon after it moves.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let (bootstrap, stop) = (broker.bootstrap.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = produce_from(&bootstrap, "in", next, 240);
                next += 240;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Let the group settle (a cooperative rebalance takes two rounds) before the kill.
    std::thread::sleep(Duration::from_secs(5));
    // From the signal: a graceful member's leave is part of what is measured.
    let killed_ms = chrono::Utc::now().timestamp_millis();
    if how.graceful {
        b.stop()?;
    } else {
        b.kill();
    }
    // When the group gave a the first of b's partitions: a's log line says so.
    let mut assigned_ms = None;
    until(
        "a is given b's partitions",
        Duration::from_secs(120),
        || {
            let text = std::fs::read_to_string(&a.stderr).unwrap_or_default();
            assigned_ms = text
                .lines()
                .filter(|l| l.contains("partition assigned"))
                .filter_map(|l| {
                    let at =
                        chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok()?;
                    let partition = l.split("partition=").nth(1)?.trim();
                    (of_b.contains(&format!("copy/{partition}"))
                        && at.timestamp_millis() > killed_ms)
                        .then_some(at.timestamp_millis())
                })
                .min();
            Ok(assigned_ms.is_some())
        },
    )?;
    until("a runs every partition", Duration::from_secs(120), || {
        Ok(running(&ckpt, &["a"])? == vec![PARTITIONS])
    })?;
    let owned = Duration::from_millis((assigned_ms.unwrap_or(killed_ms) - killed_ms).max(0) as u64);
    let mut first_batch = None;
    until(
        "a commits a batch of a moved partition",
        Duration::from_secs(60),
        || {
            first_batch = a
                .batches()
                .into_iter()
                .filter(|b| of_b.contains(&b.task) && b.start_ms > killed_ms)
                .map(|b| b.end_ms)
                .min();
            Ok(first_batch.is_some())
        },
    )?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = trickle.join();
    a.stop()?;
    let committed =
        Duration::from_millis((first_batch.unwrap_or(killed_ms) - killed_ms).max(0) as u64);
    Ok((owned, committed))
}

/// A partition with `keys` keys in an aggregate's state moves from member a (stopped) to
/// member b: how long b's restore took, and from b's start until it ran the partition.
fn restore(keys: u64) -> Result<(u64, Duration, u64)> {
    let broker = Broker::start(&["keys:1".to_owned()])?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pipeline.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[query]]
name = "count"
checkpointLocation = "ckpt"
outputMode = "update"
[query.cluster]
group = "restore"
keyedBy = ["key"]
[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{}"
subscribe = "keys"
startingOffsets = "earliest"
[query.aggregate]
groupBy = ["key"]
aggs = [{{ fn = "count", column = "value", as = "n" }}]
[query.sink]
format = "blackhole"
"#,
            broker.bootstrap
        ),
    )?;
    let ckpt = dir.path().join("ckpt");
    let a = Member::start(&file, "a")?;
    until("a runs the partition", Duration::from_secs(60), || {
        Ok(running(&ckpt, &["a"])? == vec![1])
    })?;
    // In chunks of 2 MB the query keeps up with: the mock broker keeps 5 MB of a partition.
    let chunk = 20_000;
    let mut produced = 0;
    while produced < keys {
        let n = chunk.min(keys - produced);
        produce_from(&broker.bootstrap, "keys", produced, n)?;
        produced += n;
        until("a reads the chunk", Duration::from_secs(300), || {
            Ok(a.batches().iter().map(|b| b.rows).sum::<u64>() >= produced)
        })?;
    }
    a.stop()?;
    let state_bytes = crate::measure::dir_size(&ckpt.join("partitions/keys-0/state"));
    let started = Instant::now();
    let b = Member::start(&file, "b")?;
    let mut restored_ms = None;
    until("b restores the state", Duration::from_secs(300), || {
        let text = std::fs::read_to_string(&b.stderr).unwrap_or_default();
        restored_ms = text
            .lines()
            .find(|l| l.contains("state restored from the checkpoint"))
            .and_then(|l| l.split("ms=").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        Ok(restored_ms.is_some())
    })?;
    let ready = started.elapsed();
    b.stop()?;
    Ok((restored_ms.unwrap_or(0), ready, state_bytes))
}

/// Runs the three measurements and prints their tables.
pub fn run(bench: &ClusterBench) -> Result<()> {
    println!("### Scale-out: members of a consumer group\n");
    println!(
        "Kafka `in` ({PARTITIONS} partitions) → exactly-once Kafka `out`, {} records of 100 bytes, from the first batch to the last commit (after the members joined):\n",
        bench.records
    );
    println!("| members | records/s | records per member |");
    println!("|---|---|---|");
    for n in [1, 2] {
        let (rate, per) = throughput(bench.records, n)?;
        let per: Vec<String> = per.iter().map(|(m, r)| format!("{m}: {r}")).collect();
        println!("| {n} | {rate:.0} | {} |", per.join(", "));
    }
    println!(
        "\nOne of two members ends (SIGKILL, or SIGTERM: it finishes its batches and leaves the group): until the group gives the survivor its partitions, and until it committed a batch of one of them:\n"
    );
    println!(
        "| protocol | session timeout | ended by | partitions reassigned | first batch of a moved partition committed |"
    );
    println!("|---|---|---|---|---|");
    for (kip848, session_secs, graceful) in [
        (false, 4, false),
        (false, 10, false),
        (false, 10, true),
        (true, 4, false),
        (true, 10, false),
        (true, 10, true),
    ] {
        let (owned, committed) = rebalance(&HandOver {
            session_secs,
            kip848,
            graceful,
        })?;
        println!(
            "| {} | {session_secs} s | {} | {:.1} s | {:.1} s |",
            if kip848 {
                "KIP-848"
            } else {
                "classic, cooperative-sticky"
            },
            if graceful { "SIGTERM" } else { "SIGKILL" },
            owned.as_secs_f64(),
            committed.as_secs_f64()
        );
    }
    let (restored, ready, bytes) = restore(bench.keys)?;
    println!(
        "\nA partition's aggregate state of {} keys ({:.1} MB in the checkpoint) restored by its new owner: {restored} ms (the new member's start to the partition running: {:.1} s, the group join included)",
        bench.keys,
        bytes as f64 / 1e6,
        ready.as_secs_f64()
    );
    Ok(())
}
