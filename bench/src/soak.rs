//! Soak (issue 34): one `sluice serve` process running two queries for a long time under
//! steady input, watched from outside.
//!
//! - `kafka-windows`: Kafka (`soak-in`) → a Wasm step → 5-second tumbling count and sum per
//!   window → Kafka (`soak-out`), exactly once. Its step's module is swapped between two
//!   versions every `swap_every`.
//! - `files-join`: JSON files (one a second) → joined with a static users table →
//!   PostgreSQL, exactly once, each file deleted once committed (`cleanSource`, as a
//!   long-running ingest does: otherwise the directory, and the source's log of the files it
//!   has read, grow for as long as the query runs). It is stopped gracefully and started
//!   again every `restart_every`.
//!
//! Every 10 seconds the server's resident memory, open file descriptors and threads, the
//! checkpoints' size on disk and each query's last batch duration are sampled. At the end
//! the inputs stop, the queries drain, and the outputs are checked: every Kafka row counted
//! in exactly one window, every file row in PostgreSQL once. After warm-up nothing may grow
//! by more than 10% (descriptors and threads by at most 10% or 4, the checkpoints by at most
//! 10% or 64 KB: a file more or less at the instant of a sample).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::kafka::Broker;
use crate::measure::{cpu_time_of, dir_size, proc_status};
use crate::postgres::Server as Postgres;
use crate::serve::Http;

/// The soak's settings.
pub struct SoakBench {
    /// How long the inputs run.
    pub minutes: f64,
    /// Kafka records a second.
    pub rate: u64,
    /// Rows per input file (one file a second).
    pub file_rows: u64,
    /// Seconds between two module swaps of `kafka-windows`.
    pub swap_every: u64,
    /// Seconds between two graceful restarts of `files-join`.
    pub restart_every: u64,
    /// Where to write the samples as CSV, if anywhere.
    pub csv: Option<PathBuf>,
    /// The pass-through component and a second one that passes rows through too.
    pub modules: [PathBuf; 2],
}

const TOKEN: &str = "soak-token";
const USERS: u64 = 100;

/// A process's CPU time between two samples, as a share of one core.
struct CpuShare {
    pid: u32,
    last: (Instant, Duration),
}

impl CpuShare {
    fn new(pid: u32) -> CpuShare {
        CpuShare {
            pid,
            last: (Instant::now(), cpu_time_of(Some(pid))),
        }
    }

    /// Percent of one core used since the last call (or since `new`).
    fn sample(&mut self) -> f64 {
        let now = (Instant::now(), cpu_time_of(Some(self.pid)));
        let wall = now.0.duration_since(self.last.0).as_secs_f64();
        let cpu = now.1.saturating_sub(self.last.1).as_secs_f64();
        self.last = now;
        if wall > 0.0 { 100.0 * cpu / wall } else { 0.0 }
    }
}

/// One sample of the server process and its queries.
#[derive(Debug, Clone)]
struct Sample {
    seconds: f64,
    rss_mb: f64,
    fds: u64,
    threads: u64,
    checkpoint_mb: f64,
    kafka_batch_ms: u64,
    files_batch_ms: u64,
    /// Share of one core the server used since the previous sample, in percent.
    server_cpu: f64,
    /// The same for the Kafka test broker (a single-threaded process).
    broker_cpu: f64,
}

impl Sample {
    /// Its figures as text, in the order of the table's and the CSV's columns.
    fn fields(&self) -> [String; 9] {
        [
            format!("{:.0}", self.seconds),
            format!("{:.1}", self.rss_mb),
            self.fds.to_string(),
            self.threads.to_string(),
            format!("{:.3}", self.checkpoint_mb),
            self.kafka_batch_ms.to_string(),
            self.files_batch_ms.to_string(),
            format!("{:.0}", self.server_cpu),
            format!("{:.0}", self.broker_cpu),
        ]
    }
}

/// `sluice serve` as a child process (its figures are read from /proc), and a client of it.
struct Serve {
    child: Child,
    http: Http,
}

impl Serve {
    fn start(data: &Path, log: &Path, pg_password: &str) -> Result<Serve> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["sluice", "serve", "--data-dir"])
            .arg(data)
            .args(["--addr", "127.0.0.1:0", "--token", TOKEN])
            .env("RUST_LOG", "info")
            .env("SOAK_PGPASSWORD", pg_password)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting sluice serve")?;
        // It announces its address on stdout.
        let mut stdout = BufReader::new(child.stdout.take().context("serve stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("sluice serve listening on ")
            .with_context(|| format!("sluice serve did not announce its address: {line:?}"))?
            .to_owned();
        // Keep draining stdout so a full pipe never stalls the server.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(Serve {
            child,
            http: Http::new(url, TOKEN),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// An ISO timestamp of `ms` since the epoch (UTC).
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn last_batch_ms(serve: &Http, query: &str) -> u64 {
    serve
        .call("GET", &format!("/queries/{query}/progress"), Vec::new())
        .ok()
        .and_then(|(_, p)| p["lastProgress"]["durationMs"]["triggerExecution"].as_u64())
        .unwrap_or(0)
}

fn kafka_pipeline(bootstrap: &str, work: &Path) -> String {
    format!(
        r#"[[query]]
name = "kafka-windows"
checkpointLocation = "{ckpt}"
trigger = {{ processingTime = "500 milliseconds" }}
outputMode = "append"
minBatchesToRetain = 10

[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
subscribe = "soak-in"
startingOffsets = "earliest"
valueFormat = "json"
schema = "id BIGINT, ts TIMESTAMP"
watermark = {{ column = "ts", delay = "2 seconds" }}

[[query.transform]]
name = "step"
module = "step@1.0.0"

[query.aggregate]
window = {{ column = "ts", duration = "5 seconds" }}
aggs = [{{ fn = "count", as = "n" }}, {{ fn = "sum", column = "id", as = "ids" }}]

[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
topic = "soak-out"
valueFormat = "json"
exactlyOnce = true
"#,
        ckpt = work.join("ckpt-kafka").display()
    )
}

fn files_pipeline(pg_url: &str, work: &Path) -> String {
    format!(
        r#"[[query]]
name = "files-join"
checkpointLocation = "{ckpt}"
trigger = {{ processingTime = "500 milliseconds" }}
minBatchesToRetain = 10

[query.source]
format = "json"
path = "{files}/*.json"
schema = "order_id BIGINT, user_id BIGINT, amount BIGINT"
mode = "FAILFAST"
cleanSource = "delete"

[query.join]
type = "inner"
on = [["user_id", "id"]]

[query.join.table]
format = "json"
path = "{users}"
schema = "id BIGINT, name STRING"

[query.sink]
format = "postgres"
url = "{pg_url}"
password = {{ env = "SOAK_PGPASSWORD" }}
table = "soak_orders"
createTable = true
"#,
        ckpt = work.join("ckpt-files").display(),
        files = work.join("files").display(),
        users = work.join("users").display(),
    )
}

/// Produces `rate` records a second into `soak-in` until `stop`; returns (records, sum of ids).
fn produce(bootstrap: &str, rate: u64, stop: &AtomicBool, sent: &AtomicU64) -> Result<(u64, i64)> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        // The test broker (librdkafka's mock cluster) finds a fetch's offset by walking the
        // partition's message sets from the oldest ("FIXME: Maintain an index" in
        // rdkafka_mock.c), so each fetch costs as many steps as sets in the log (up to its 5 MB
        // cap). At 5 ms a set per partition that walk saturated the broker's one thread within
        // four minutes and every batch waited on it; 100 ms keeps the log to ~3,000 sets a
        // partition. A Kafka broker indexes offsets, so this is the stand-in's limit alone.
        .set("linger.ms", "100")
        .create()?;
    let start = Instant::now();
    let (mut n, mut sum) = (0u64, 0i64);
    while !stop.load(Ordering::SeqCst) {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let value = format!("{{\"id\":{n},\"ts\":\"{}\"}}", iso(now_ms()));
        let key = (n % 64).to_string();
        let record = BaseRecord::to("soak-in")
            .payload(value.as_bytes())
            .key(key.as_str());
        crate::kafka::send_waiting(&producer, record, Duration::from_millis(1));
        sum += n as i64;
        n += 1;
        sent.store(n, Ordering::Relaxed);
    }
    // One record far enough ahead to close every window the others fell in; its own window
    // stays open, so it is not counted.
    let value = format!("{{\"id\":-1,\"ts\":\"{}\"}}", iso(now_ms() + 60_000));
    let record = BaseRecord::to("soak-in")
        .payload(value.as_bytes())
        .key("flush");
    crate::kafka::send_waiting(&producer, record, Duration::from_millis(1));
    producer.flush(Duration::from_secs(30))?;
    Ok((n, sum))
}

/// Writes one file of `rows` rows a second into `dir` until `stop`; returns the rows written.
fn write_files(dir: &Path, rows: u64, stop: &AtomicBool) -> Result<u64> {
    let start = Instant::now();
    let mut next = 0u64;
    let mut file = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let due = start + Duration::from_secs(file);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut text = String::new();
        for _ in 0..rows {
            text.push_str(&format!(
                "{{\"order_id\":{next},\"user_id\":{},\"amount\":{}}}\n",
                next % USERS,
                next % 1000
            ));
            next += 1;
        }
        // Written beside, then renamed in: the source never sees half a file.
        let tmp = dir.join(format!(".{file:08}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(format!("{file:08}.json")))?;
        file += 1;
    }
    Ok(next)
}

/// The `soak-out` rows as (window start, n, ids), read with kcat (an independent client).
fn windows(bootstrap: &str) -> Result<Vec<(String, u64, i64)>> {
    let out = Command::new("kcat")
        .args([
            "-C", "-b", bootstrap, "-t", "soak-out", "-e", "-q", "-f", "%s\n",
        ])
        .args(["-X", "isolation.level=read_committed"])
        .output()
        .context("running kcat (scripts/test.sh installs it)")?;
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("soak-out holds a record that is not JSON: {line}"))?;
        let start = v["window"]["start"]
            .as_str()
            .or_else(|| v["window_start"].as_str())
            .with_context(|| format!("no window start in {line}"))?
            .to_owned();
        rows.push((
            start,
            v["n"].as_u64().context("no n")?,
            v["ids"].as_i64().context("no ids")?,
        ));
    }
    Ok(rows)
}

/// Growth from the start of the measured part to its end: the median of its first three
/// samples against the median of its last three.
fn growth(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> (f64, f64) {
    let median3 = |s: &[Sample]| {
        let mut v: Vec<f64> = s.iter().map(&value).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let k = samples.len().min(3);
    (
        median3(&samples[..k]),
        median3(&samples[samples.len() - k..]),
    )
}

/// Runs the soak and prints its samples and verdict; an error if an output is not exact or
/// something grew past the bound.
pub fn run(bench: &SoakBench) -> Result<()> {
    let work = tempfile::tempdir()?;
    let work = work.path();
    for d in ["files", "users", "data"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let users: String = (0..USERS)
        .map(|i| format!("{{\"id\":{i},\"name\":\"user-{i}\"}}\n"))
        .collect();
    std::fs::write(work.join("users/users.json"), users)?;

    let broker = Broker::start(&["soak-in:4".into(), "soak-out:4".into()])?;
    let pg = Postgres::start(&work.join("pg"))?;
    let server = Serve::start(
        &work.join("data"),
        &work.join("serve.log"),
        crate::postgres::PASSWORD,
    )?;
    let serve = &server.http;
    eprintln!(
        "soak: server at {} (pid {}), log {}",
        serve.url,
        server.pid(),
        work.join("serve.log").display()
    );
    for (version, module) in ["1.0.0", "2.0.0"].iter().zip(&bench.modules) {
        serve.expect(
            "POST",
            &format!("/modules?name=step&version={version}"),
            std::fs::read(module).with_context(|| module.display().to_string())?,
            201,
        )?;
    }
    let kafka = kafka_pipeline(&broker.bootstrap, work);
    let files = files_pipeline(&pg.url("postgres"), work);
    serve.expect("POST", "/queries", kafka.into_bytes(), 201)?;
    serve.expect("POST", "/queries", files.clone().into_bytes(), 201)?;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (bootstrap, stop, sent, rate) = (
            broker.bootstrap.clone(),
            stop.clone(),
            sent.clone(),
            bench.rate,
        );
        std::thread::spawn(move || produce(&bootstrap, rate, &stop, &sent))
    };
    let writer = {
        let (dir, stop, rows) = (work.join("files"), stop.clone(), bench.file_rows);
        std::thread::spawn(move || write_files(&dir, rows, &stop))
    };

    let start = Instant::now();
    let total = Duration::from_secs_f64(bench.minutes * 60.0);
    let (mut next_sample, mut next_swap, mut next_restart) = (
        Duration::ZERO,
        Duration::from_secs(bench.swap_every),
        Duration::from_secs(bench.restart_every),
    );
    let mut samples = Vec::new();
    let (mut swaps, mut restarts, mut version) = (0, 0, 1);
    let pid = server.pid();
    let (mut server_cpu, mut broker_cpu) = (CpuShare::new(pid), CpuShare::new(broker.pid()));
    while start.elapsed() < total {
        let at = start.elapsed();
        if at >= next_sample {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
            let s = Sample {
                seconds: at.as_secs_f64(),
                rss_mb: proc_status(Some(pid), "VmRSS:") as f64 / 1024.0,
                fds,
                threads: proc_status(Some(pid), "Threads:"),
                checkpoint_mb: (dir_size(&work.join("ckpt-kafka"))
                    + dir_size(&work.join("ckpt-files"))) as f64
                    / 1e6,
                kafka_batch_ms: last_batch_ms(serve, "kafka-windows"),
                files_batch_ms: last_batch_ms(serve, "files-join"),
                server_cpu: server_cpu.sample(),
                broker_cpu: broker_cpu.sample(),
            };
            eprintln!(
                "soak: {:>6.0} s  rss {:>7.1} MB  fds {:>4}  threads {:>3}  checkpoints {:>6.2} MB  batch {:>4} / {:>4} ms  cpu {:>3.0}% (broker {:>3.0}%)  ({} records sent)",
                s.seconds,
                s.rss_mb,
                s.fds,
                s.threads,
                s.checkpoint_mb,
                s.kafka_batch_ms,
                s.files_batch_ms,
                s.server_cpu,
                s.broker_cpu,
                sent.load(Ordering::Relaxed)
            );
            samples.push(s);
            next_sample += Duration::from_secs(10);
        }
        if at >= next_swap {
            version = 3 - version;
            let body = format!("{{\"step\":\"step\",\"module\":\"step@{version}.0.0\"}}");
            serve.expect(
                "POST",
                "/queries/kafka-windows/swap",
                body.into_bytes(),
                200,
            )?;
            swaps += 1;
            next_swap += Duration::from_secs(bench.swap_every);
        }
        if at >= next_restart {
            serve.expect("POST", "/queries/files-join/stop", Vec::new(), 200)?;
            // The stop has committed its last batch; its thread ends just after.
            let deadline = Instant::now() + Duration::from_secs(30);
            while serve.expect("GET", "/queries/files-join", Vec::new(), 200)?["isActive"] == true {
                if Instant::now() > deadline {
                    bail!("files-join still active 30 s after its stop returned");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            serve.expect("POST", "/queries", files.clone().into_bytes(), 201)?;
            restarts += 1;
            next_restart += Duration::from_secs(bench.restart_every);
        }
        for q in ["kafka-windows", "files-join"] {
            let info = serve.expect("GET", &format!("/queries/{q}"), Vec::new(), 200)?;
            if !info["exception"].is_null() {
                bail!("query {q} failed: {}", info["exception"]);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let (records, id_sum) = producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let file_rows = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;

    // Drain: every window closed and emitted, every file loaded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (counted, loaded) = loop {
        let counted: u64 = windows(&broker.bootstrap)?.iter().map(|w| w.1).sum();
        let loaded: u64 = pg
            .psql("SELECT count(*) FROM soak_orders")?
            .parse()
            .unwrap_or(0);
        if (counted >= records && loaded >= file_rows) || Instant::now() > deadline {
            break (counted, loaded);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for q in ["kafka-windows", "files-join"] {
        serve.expect("POST", &format!("/queries/{q}/stop"), Vec::new(), 200)?;
    }

    println!(
        "\n| s | RSS MB | fds | threads | checkpoints MB | batch ms (kafka) | batch ms (files) | server CPU % | broker CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in &samples {
        println!("| {} |", s.fields().join(" | "));
    }
    if let Some(path) = &bench.csv {
        let mut csv = String::from(
            "seconds,rss_mb,fds,threads,checkpoint_mb,kafka_batch_ms,files_batch_ms,server_cpu_pct,broker_cpu_pct\n",
        );
        for s in &samples {
            csv.push_str(&s.fields().join(","));
            csv.push('\n');
        }
        std::fs::write(path, csv)?;
    }

    let mut problems = Vec::new();
    // Exactly once: each window once, every record counted once, every file row once.
    let out = windows(&broker.bootstrap)?;
    let distinct: std::collections::BTreeSet<&String> = out.iter().map(|w| &w.0).collect();
    if distinct.len() != out.len() {
        problems.push(format!(
            "{} windows emitted more than once",
            out.len() - distinct.len()
        ));
    }
    let ids: i64 = out.iter().map(|w| w.2).sum();
    if counted != records || ids != id_sum {
        problems.push(format!(
            "Kafka: {records} records sent (ids summing to {id_sum}), windows count {counted} (ids {ids})"
        ));
    }
    let distinct_rows: u64 = pg
        .psql("SELECT count(DISTINCT order_id) FROM soak_orders")?
        .parse()
        .unwrap_or(0);
    if loaded != file_rows || distinct_rows != file_rows {
        problems.push(format!(
            "PostgreSQL: {file_rows} rows written to files, {loaded} loaded ({distinct_rows} distinct)"
        ));
    }
    // Bounded: after warm-up (a third of the run, at least 30 s), nothing grows past 10%.
    let warm = (total.as_secs_f64() / 3.0).max(30.0);
    let measured: Vec<Sample> = samples
        .iter()
        .filter(|s| s.seconds >= warm)
        .cloned()
        .collect();
    let mut figures = Vec::new();
    if measured.len() >= 2 {
        type Metric = (&'static str, fn(&Sample) -> f64, f64);
        let metrics: [Metric; 4] = [
            ("RSS MB", |s| s.rss_mb, 0.0),
            ("open fds", |s| s.fds as f64, 4.0),
            ("threads", |s| s.threads as f64, 4.0),
            // A checkpoint of a few kilobytes varies by a file more or less at any instant.
            ("checkpoints MB", |s| s.checkpoint_mb, 0.064),
        ];
        for (name, value, slack) in metrics {
            let (from, to) = growth(&measured, value);
            figures.push(format!("{name} {from:.3} → {to:.3}"));
            if to > (from * 1.10).max(from + slack) {
                problems.push(format!(
                    "{name} grew from {from:.3} to {to:.3} after warm-up"
                ));
            }
        }
    } else {
        problems.push("too few samples after warm-up to judge growth; run longer".into());
    }
    println!(
        "\nsoak: {:.1} min, {records} Kafka records, {file_rows} file rows, {swaps} module swaps, {restarts} restarts; after warm-up: {}",
        bench.minutes,
        figures.join(", ")
    );
    if problems.is_empty() {
        println!("soak: every row exactly once, nothing grew past 10%");
        Ok(())
    } else {
        bail!("soak failed:\n  {}", problems.join("\n  "))
    }
}
