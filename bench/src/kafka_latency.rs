//! End-to-end latency (issue 15): records produced at a steady rate into topic `in`, through
//! a pass-through Wasm transform, into topic `out`; each record's latency is the time from
//! its creation (the producer's clock, written into the record just before it is sent) to
//! the moment an independent `read_committed` consumer receives it from `out`.
//!
//! For exactly-once, a record is counted as received when its transaction's marker is (see
//! [`receive`]): the mock broker does not hide open transactions from read_committed readers.
//!
//! Every combination of trigger (micro-batch as fast as possible, continuous) and
//! guarantee (at-least-once, exactly-once) runs against its own pair of topics on one broker
//! process; the first second of each run is warm-up and not counted.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice::manager::QueryManager;
use sluice::pipeline::Pipeline;

use crate::kafka::Broker;
use crate::measure::quantile;

/// Partitions of each topic.
const PARTITIONS: i32 = 4;

/// Options of the `kafka-latency` benchmark.
pub struct LatencyBench {
    /// Records per second the producer sends.
    pub rates: Vec<u64>,
    /// Seconds each run produces for (the first is warm-up).
    pub seconds: u64,
    /// The pass-through guest.
    pub module: std::path::PathBuf,
    /// Only the runs whose label contains this.
    pub only: Option<String>,
    /// The continuous trigger's checkpoint interval (`"1 second"`).
    pub interval: String,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Sends `rate` records per second for `seconds` into `topic`, each carrying its send time
/// in microseconds; returns how many were sent.
fn produce_steadily(bootstrap: &str, topic: &str, rate: u64, seconds: u64) -> Result<u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        // A record waits at most 1 ms for others to share its request (counted in its
        // latency: it is stamped before it is sent). With 0, 10,000 requests a second are
        // more than the mock broker's one thread answers.
        .set("linger.ms", "1")
        .create()?;
    let total = rate * seconds;
    let start = Instant::now();
    let mut value = [b' '; 100];
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let stamp = format!("{:020}", now_us());
        value[..20].copy_from_slice(stamp.as_bytes());
        let key = (i % 1024).to_string();
        let record = BaseRecord::to(topic).payload(&value[..]).key(key.as_str());
        crate::kafka::send_waiting(&producer, record, Duration::from_micros(100));
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(total)
}

/// Receives from `topic` until `expected` records arrived; each record's send time and
/// latency in milliseconds.
///
/// With `markers` (an exactly-once sink's marker topic), a record counts as received when
/// the marker of a transaction after it arrives: librdkafka's mock broker ignores
/// `isolation.level` and serves records of open transactions, so the time a record is
/// received is not the time a read_committed reader could see it; the marker is written
/// last in each transaction, just before its commit. Records that arrive after a marker of
/// their own transaction are charged to the next one (an over-estimate, never an under-).
fn receive(
    bootstrap: &str,
    topic: &str,
    markers: Option<&str>,
    expected: u64,
    ready: &AtomicBool,
) -> Result<Vec<(u64, f64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("latency-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // The reader's own wait is part of what it measures: keep it short.
        .set("fetch.wait.max.ms", "1")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    if let Some(m) = markers {
        tpl.add_partition_offset(m, 0, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    // Assigned and fetching before the first record is produced.
    consumer.poll(Duration::from_millis(200));
    ready.store(true, Ordering::SeqCst);
    let mut out = Vec::with_capacity(expected as usize);
    // Exactly-once: records waiting for their transaction's marker.
    let mut waiting: Vec<u64> = Vec::new();
    let mut last = Instant::now();
    while (out.len() as u64) < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let received = now_us();
                last = Instant::now();
                if Some(m.topic()) == markers {
                    for sent in waiting.drain(..) {
                        out.push((sent, received.saturating_sub(sent) as f64 / 1000.0));
                    }
                    continue;
                }
                let sent: u64 = m
                    .payload()
                    .and_then(|p| std::str::from_utf8(p.get(..20)?).ok())
                    .and_then(|s| s.parse().ok())
                    .context("a record without its send time")?;
                if markers.is_some() {
                    waiting.push(sent);
                } else {
                    out.push((sent, received.saturating_sub(sent) as f64 / 1000.0));
                }
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            // Every record is here but the last ones' marker came before them: they are
            // left out (the run reports how many records it measured).
            None if out.len() + waiting.len() >= expected as usize
                && last.elapsed() > Duration::from_secs(2) =>
            {
                break;
            }
            None if last.elapsed() > Duration::from_secs(20) => bail!(
                "{topic}: {} of {expected} records arrived, then nothing for 20 s",
                out.len() + waiting.len()
            ),
            None => {}
        }
    }
    Ok(out)
}

/// Runs the benchmark and prints its figures as markdown.
pub fn run(bench: &LatencyBench) -> Result<()> {
    let interval = bench.interval.as_str();
    // The first: no query at all, the reader on the input topic — the floor the producer,
    // the broker and the reader set for everything below.
    // (trigger, guarantee, continuous interval, exactly-once, runs a query)
    let modes = [
        ("none (producer → broker → reader)", "—", None, false, false),
        ("micro-batch", "at-least-once", None, false, true),
        ("micro-batch", "exactly-once", None, true, true),
        ("continuous", "at-least-once", Some(interval), false, true),
        ("continuous", "exactly-once", Some(interval), true, true),
    ];
    let mut runs = Vec::new();
    for rate in &bench.rates {
        for (trigger, guarantee, continuous, eos, query) in modes {
            let label = format!("{trigger}, {guarantee}, {rate} records/s");
            if bench.only.as_ref().is_some_and(|o| !label.contains(o)) {
                continue;
            }
            runs.push((label, *rate, (trigger, guarantee), continuous, eos, query));
        }
    }
    let mut topics = Vec::new();
    for (n, _) in runs.iter().enumerate() {
        topics.push(format!("in-{n}:{PARTITIONS}"));
        topics.push(format!("out-{n}:{PARTITIONS}"));
        topics.push(format!("out-{n}.sluice-batches:1"));
    }
    let broker = Broker::start(&topics)?;
    let b = broker.bootstrap.clone();
    sluice::wasm::runtime(false)
        .and_then(|r| r.load(&bench.module))
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "Kafka → pass-through Wasm → Kafka, {PARTITIONS} partitions, {} s per run (first second not counted); latency from each record's creation to a read_committed consumer receiving it, in ms\n",
        bench.seconds
    );
    println!("| trigger | guarantee | records/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for (n, (label, rate, (trigger_name, guarantee), continuous, eos, query)) in
        runs.iter().enumerate()
    {
        let trigger = match continuous {
            Some(interval) => format!("trigger = {{ continuous = \"{interval}\" }}"),
            None => String::new(),
        };
        let dir = tempfile::tempdir()?;
        let text = format!(
            r#"[[query]]
name = "latency"
checkpointLocation = "ckpt"
{trigger}
[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
subscribe = "in-{n}"
startingOffsets = "earliest"
# librdkafka's mock broker answers a fetch that finds no data only after this wait, even
# if records arrive meanwhile (a real broker answers as soon as they do): keep it short.
"kafka.fetch.wait.max.ms" = "1"
[[query.transform]]
name = "pass-through"
module = "{module}"
[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
topic = "out-{n}"
exactlyOnce = {eos}
"#,
            module = bench.module.display(),
        );
        let pipeline = Pipeline::parse(&text, &dir.path().join("pipeline.toml"))
            .map_err(|e| anyhow!("{e}"))?;
        // Every batch's (epoch's) progress, for the phases printed with SLUICE_BENCH_PHASES=1.
        let log_path = dir.path().join("progress.jsonl");
        let log: sluice::query::ProgressLog = Arc::new(std::sync::Mutex::new(Box::new(
            std::io::BufWriter::new(std::fs::File::create(&log_path)?),
        )));
        let direct = !query;
        let manager = match direct {
            true => None,
            false => Some(
                QueryManager::start_pipeline(&pipeline, Some(log.clone()))
                    .map_err(|e| anyhow!("{e}"))?,
            ),
        };
        let expected = rate * bench.seconds;
        let ready = Arc::new(AtomicBool::new(false));
        let reader = {
            let topic = format!("{}-{n}", if direct { "in" } else { "out" });
            let (b, ready) = (b.clone(), ready.clone());
            let markers = eos.then(|| format!("{topic}.sluice-batches"));
            std::thread::spawn(move || receive(&b, &topic, markers.as_deref(), expected, &ready))
        };
        while !ready.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let started_us = now_us();
        produce_steadily(&b, &format!("in-{n}"), *rate, bench.seconds)?;
        let received = reader
            .join()
            .map_err(|_| anyhow!("the reader panicked"))??;
        if let Some(manager) = manager {
            manager.stop_all();
            for (name, outcome) in manager.await_all(pipeline.on_query_failure) {
                outcome.map_err(|e| anyhow!("query {name}: {e}"))?;
            }
        }
        if std::env::var_os("SLUICE_BENCH_PHASES").is_some() {
            print_phases(label, &log, &log_path)?;
        }
        if let Some(dump) = std::env::var_os("SLUICE_BENCH_LATENCIES") {
            let lines: String = received
                .iter()
                .map(|(sent, l)| format!("{n} {sent} {l:.3}\n"))
                .collect();
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump)?
                .write_all(lines.as_bytes())?;
        }
        let warm = started_us + 1_000_000;
        let latencies: Vec<f64> = received
            .iter()
            .filter(|(sent, _)| *sent >= warm)
            .map(|(_, l)| *l)
            .collect();
        let max = latencies.iter().copied().fold(0.0, f64::max);
        eprintln!("{label}: {} records measured", latencies.len());
        let trigger_name = match continuous {
            Some(i) => format!("{trigger_name} ({i})"),
            None => (*trigger_name).to_owned(),
        };
        println!(
            "| {trigger_name} | {guarantee} | {rate} | {:.1} | {:.1} | {max:.1} |",
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
        );
    }
    Ok(())
}

/// Per phase of the batches (epochs) of one run: how many there were, and the mean and
/// largest milliseconds spent in it.
fn print_phases(
    label: &str,
    log: &sluice::query::ProgressLog,
    path: &std::path::Path,
) -> Result<()> {
    log.lock()
        .map_err(|_| anyhow!("progress log poisoned"))?
        .flush()?;
    let mut phases: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut batches = 0;
    for line in std::fs::read_to_string(path)?.lines() {
        let p: sluice::progress::QueryProgress = serde_json::from_str(line)?;
        batches += 1;
        for (phase, ms) in p.duration_ms {
            phases.entry(phase).or_default().push(ms as f64);
        }
    }
    eprintln!("{label}: {batches} batches");
    for (phase, ms) in phases {
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let max = ms.iter().copied().fold(0.0, f64::max);
        eprintln!("  {phase}: mean {mean:.1} ms, max {max:.0} ms");
    }
    Ok(())
}
