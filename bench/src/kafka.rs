//! Kafka round trip (issue: Kafka source and sink): 100-byte records from topic `in` through a
//! pass-through Wasm transform to topic `out`, on loopback against a broker process, compared
//! with the ceiling: the raw consume rate of the same client library (librdkafka) on the same
//! broker and records.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::measure::{Span, median, peak_rss, quantile, reset_peak_rss, span, spread_percent};
use crate::pipeline::run_pipeline;

/// Partitions of the topics. librdkafka's mock broker keeps at most 5 MB per partition
/// (older message sets are deleted, like retention), so a million 100-byte records need many.
const PARTITIONS: i32 = 64;

/// The broker: this same binary's `broker` subcommand, in a process of its own so that its CPU
/// time is not counted as the host's.
pub(crate) struct Broker {
    child: Child,
    /// The address clients connect to.
    pub(crate) bootstrap: String,
}

impl Broker {
    /// The broker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the broker process with `topics` (`NAME:PARTITIONS`).
    pub(crate) fn start(topics: &[String]) -> Result<Broker> {
        Broker::start_with(topics, &[])
    }

    /// Starts the broker process with `topics` and more arguments of the `broker` subcommand.
    pub(crate) fn start_with(topics: &[String], args: &[&str]) -> Result<Broker> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("broker");
        for t in topics {
            cmd.arg("--topic").arg(t);
        }
        cmd.args(args);
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("broker stdout")?).read_line(&mut line)?;
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .context("the broker prints bootstrap=ADDRESS")?
            .to_owned();
        Ok(Broker { child, bootstrap })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves librdkafka's mock cluster with `topics` (`NAME:PARTITIONS`) until killed; with
/// `consumer_session_ms`, KIP-848 groups get that session timeout.
pub fn serve_broker(topics: &[String], consumer_session_ms: Option<i32>) -> Result<()> {
    // The cluster belongs to this client (`test.mock.num.brokers`), whose raw handle the
    // session setting needs (rust-rdkafka's `MockCluster` does not expose it).
    let owner: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()?;
    let cluster = owner
        .client()
        .mock_cluster()
        .context("the client has no mock cluster")?;
    for t in topics {
        let (name, partitions) = t.split_once(':').unwrap_or((t, "1"));
        cluster.create_topic(name, partitions.parse()?, 1)?;
    }
    if let Some(ms) = consumer_session_ms {
        // SAFETY: the client owns a live mock cluster (checked above) for as long as `owner`
        // lives, which is until the process ends.
        unsafe {
            let raw = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            rdkafka::bindings::rd_kafka_mock_set_group_consumer_session_timeout_ms(raw, ms);
            rdkafka::bindings::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(
                raw,
                (ms / 5).max(50),
            );
        }
    }
    println!("bootstrap={}", cluster.bootstrap_servers());
    loop {
        std::thread::park();
    }
}

fn produce(bootstrap: &str, topic: &str, records: u64) -> Result<()> {
    produce_from(bootstrap, topic, 0, records)
}

/// Produces records `from .. from + records` of the benchmark's stream (100-byte values,
/// record `i` keyed by its last eight digits).
pub(crate) fn produce_from(bootstrap: &str, topic: &str, from: u64, records: u64) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Without idempotence the mock broker was seen to drop records under load.
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut value = [b'x'; 100];
    for i in from..from + records {
        let digits = format!("{i:020}");
        value[..20].copy_from_slice(digits.as_bytes());
        let record = BaseRecord::to(topic).payload(&value[..]).key(&digits[12..]);
        send_waiting(&producer, record, Duration::from_millis(1));
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Queues `record`, waiting `pause` at a time while the producer's queue is full.
pub(crate) fn send_waiting(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, str, [u8]>,
    pause: Duration,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                std::thread::sleep(pause);
                record = r;
            }
        }
    }
}

/// The ceiling: a librdkafka consumer reading every record of `topic` as fast as it can.
fn raw_consume(bootstrap: &str, topic: &str, records: u64) -> Result<Span> {
    // The same fetch settings as the Kafka source, so the two differ only in what is
    // done with the records.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    for p in 0..PARTITIONS {
        let (low, _) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if low > 0 {
            bail!("the broker dropped the first {low} records of {topic}-{p}: use fewer records");
        }
    }
    let (read, span) = span(|| -> Result<u64> {
        let mut read = 0u64;
        let mut bytes = 0usize;
        while read < records {
            if let Some(m) = consumer.poll(Duration::from_secs(10)) {
                use rdkafka::Message;
                bytes += m?.payload().map_or(0, <[u8]>::len);
                read += 1;
            } else {
                bail!("raw consumer stalled at {read} of {records}");
            }
        }
        std::hint::black_box(bytes);
        Ok(read)
    });
    read?;
    Ok(span)
}

/// Options of the `kafka` benchmark.
pub struct KafkaBench {
    /// Records in the input topic.
    pub records: u64,
    /// Repetitions of each measurement.
    pub runs: usize,
    /// The pass-through guest.
    pub module: std::path::PathBuf,
}

/// Runs the benchmark and prints its figures as markdown.
pub fn run(bench: &KafkaBench) -> Result<()> {
    let mut topics = vec![format!("in:{PARTITIONS}")];
    for r in 0..bench.runs {
        topics.push(format!("out-{r}:{PARTITIONS}"));
        topics.push(format!("eos-{r}:{PARTITIONS}"));
        topics.push(format!("seq-{r}:{PARTITIONS}"));
    }
    let broker = Broker::start(&topics)?;
    let b = &broker.bootstrap;
    eprintln!("producing {} records of 100 bytes ...", bench.records);
    produce(b, "in", bench.records)?;

    let n = bench.records as f64;
    let mut ceiling = Vec::new();
    let mut ceiling_per_core = Vec::new();
    // One untimed read first: the broker's and the client's first-touch costs are not the
    // ceiling's.
    raw_consume(b, "in", bench.records)?;
    for _ in 0..bench.runs {
        let s = raw_consume(b, "in", bench.records)?;
        ceiling.push(n / s.wall.as_secs_f64());
        ceiling_per_core.push(n / s.cpu.as_secs_f64());
    }
    let mut rows = vec![row(
        "raw consume (librdkafka, the ceiling)",
        &ceiling,
        Some(&ceiling_per_core),
        None,
    )];
    // Compile the guest once, so no run below pays for it (the compile cache keeps it).
    sluice::wasm::runtime(false)
        .and_then(|r| r.load(&bench.module))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The at-least-once sink twice: pipelined (the default: batch N+1 is read while N's
    // acknowledgements arrive) and strictly one batch after the other.
    for (label, sink, pipelined) in [
        ("Kafka → pass-through Wasm → blackhole", None, true),
        (
            "Kafka → pass-through Wasm → Kafka (at-least-once, pipelined)",
            Some(("out", false)),
            true,
        ),
        (
            "Kafka → pass-through Wasm → Kafka (at-least-once, pipelineBatches = false)",
            Some(("seq", false)),
            false,
        ),
        (
            "Kafka → pass-through Wasm → Kafka (exactlyOnce)",
            Some(("eos", true)),
            true,
        ),
    ] {
        let mut rates = Vec::new();
        let mut per_core = Vec::new();
        let mut batch_ms = Vec::new();
        reset_peak_rss();
        for r in 0..bench.runs {
            let sink = match sink {
                None => "format = \"blackhole\"".to_owned(),
                Some((topic, eos)) => format!(
                    "format = \"kafka\"\n\"kafka.bootstrap.servers\" = \"{b}\"\ntopic = \"{topic}-{r}\"\nexactlyOnce = {eos}"
                ),
            };
            let text = format!(
                r#"[[query]]
name = "kafka-bench"
trigger = "availableNow"
pipelineBatches = {pipelined}
[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
subscribe = "in"
startingOffsets = "earliest"
maxOffsetsPerTrigger = 200000
[[query.transform]]
name = "pass-through"
module = "{module}"
[query.sink]
{sink}
"#,
                module = bench.module.display()
            );
            let run = run_pipeline(&text)?;
            if run.input_rows != bench.records {
                bail!(
                    "{label}: read {} rows, expected {}",
                    run.input_rows,
                    bench.records
                );
            }
            rates.push(n / run.span.wall.as_secs_f64());
            per_core.push(n / run.span.cpu.as_secs_f64());
            batch_ms.extend(run.batch_ms);
        }
        eprintln!(
            "{label}: batch p50 {:.0} ms, p99 {:.0} ms; peak resident {:.0} MB",
            quantile(&batch_ms, 0.5),
            quantile(&batch_ms, 0.99),
            peak_rss() as f64 / 1e6
        );
        rows.push(row(
            label,
            &rates,
            Some(&per_core),
            Some(median(&ceiling).0),
        ));
    }
    println!(
        "{} records of 100 bytes, {PARTITIONS} partitions, {} runs each (medians; spread = (max-min)/median)\n",
        bench.records, bench.runs
    );
    println!("| pipeline | records/s | spread | records/s per core (host CPU) | of ceiling |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

fn row(label: &str, rates: &[f64], per_core: Option<&[f64]>, ceiling: Option<f64>) -> String {
    let (m, _, _) = median(rates);
    format!(
        "| {label} | {m:.0} | {:.0}% | {} | {} |",
        spread_percent(rates),
        per_core.map_or("—".to_owned(), |p| format!("{:.0}", median(p).0)),
        ceiling.map_or("—".to_owned(), |c| format!("{:.0}%", m / c * 100.0)),
    )
}
