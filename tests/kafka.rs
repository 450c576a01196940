//! The Kafka source against a real Kafka-protocol broker process (`sluice-kafka-mock`, which
//! runs librdkafka's mock cluster): records produced with a Kafka client, read by
//! `sluice run`, checked in the file sink.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A broker process, killed when dropped.
struct Broker {
    child: Child,
    bootstrap: String,
}

impl Broker {
    fn start(topics: &[&str]) -> Broker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-kafka-mock"));
        for t in topics {
            cmd.arg("--topic").arg(t);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap=")
            .expect("the broker prints its address")
            .to_owned();
        Broker { child, bootstrap }
    }

    fn produce(&self, topic: &str, records: impl Iterator<Item = (Option<String>, String)>) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        for (i, (key, value)) in records.enumerate() {
            let headers = OwnedHeaders::new().insert(Header {
                key: "seq",
                value: Some(&i.to_string()),
            });
            let mut record = BaseRecord::to(topic).payload(&value).headers(headers);
            if let Some(k) = &key {
                record = record.key(k);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kafka_pipeline(dir: &std::path::Path, bootstrap: &str, extra: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "from-kafka"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
subscribe = "events"
startingOffsets = "earliest"
includeHeaders = true
{extra}

[query.sink]
format = "json"
path = "out"
"#
        ),
    )
}

fn values(dir: &std::path::Path) -> Vec<String> {
    // The json sink writes binary columns (Kafka's value) as hex strings.
    let mut v: Vec<String> = committed_json(&dir.join("out"))
        .iter()
        .map(|r| {
            let hex = r["value"].as_str().unwrap();
            String::from_utf8(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            )
            .unwrap()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn records_are_read_once_in_bounded_batches_and_resume_after_restart() {
    let broker = Broker::start(&["events:3"]);
    broker.produce(
        "events",
        (0..250).map(|i| (Some(format!("k{}", i % 7)), format!("event-{i:04}"))),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = kafka_pipeline(dir.path(), &broker.bootstrap, "maxOffsetsPerTrigger = 100");
    let log = dir.path().join("progress.jsonl");
    let out = sluice()
        .arg("run")
        .arg(&file)
        .arg("--progress-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = (0..250).map(|i| format!("event-{i:04}")).collect();
    assert_eq!(values(dir.path()), expected);
    let p = progress(&log);
    assert_eq!(
        p.iter().map(|b| b.num_input_rows).collect::<Vec<_>>(),
        vec![100, 100, 50],
        "maxOffsetsPerTrigger splits the backlog"
    );
    let rows = committed_json(&dir.path().join("out"));
    assert!(
        rows.iter()
            .all(|r| r["topic"] == "events" && r["partition"].as_i64().unwrap() < 3)
    );
    assert!(
        rows.iter().all(|r| r["headers"][0]["key"] == "seq"),
        "{:?}",
        rows[0]
    );

    // More records; a restart reads only those.
    broker.produce(
        "events",
        (250..300).map(|i| (None, format!("event-{i:04}"))),
    );
    let out = sluice()
        .arg("run")
        .arg(&file)
        .arg("--progress-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = (0..300).map(|i| format!("event-{i:04}")).collect();
    assert_eq!(
        values(dir.path()),
        expected,
        "nothing lost or read twice across the restart"
    );
}

#[test]
fn consumer_group_options_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = kafka_pipeline(
        dir.path(),
        "127.0.0.1:9",
        "\"kafka.group.id\" = \"mine\"\n\"kafka.auto.offset.reset\" = \"earliest\"",
    );
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kafka.group.id: is not supported: the source reads assigned partitions"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kafka.auto.offset.reset: is not supported: use startingOffsets"),
        "{stderr}"
    );
}
