//! A Kafka-protocol broker process for the tests (`sluice-kafka-mock`, librdkafka's mock
//! cluster) and the clients the tests check it with.

use std::process::{Child, Command};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{TIMEOUT, spawn_announcing};

/// A broker process, killed when dropped.
pub struct Broker {
    pub child: Child,
    pub bootstrap: String,
}

impl Broker {
    pub fn start(topics: &[&str]) -> Broker {
        Broker::start_with(topics, &[])
    }

    /// A broker started with more arguments (`--group-initial-rebalance-delay-ms 500`).
    pub fn start_with(topics: &[&str], args: &[&str]) -> Broker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-kafka-mock"));
        for t in topics {
            cmd.arg("--topic").arg(t);
        }
        cmd.args(args);
        let (child, bootstrap) = spawn_announcing(cmd, "bootstrap=");
        Broker { child, bootstrap }
    }

    pub fn produce(&self, topic: &str, records: impl Iterator<Item = (Option<String>, String)>) {
        self.produce_to(topic, None, records)
    }

    /// Like [`Broker::produce`], to one partition (`None`: the partitioner's choice).
    pub fn produce_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        records: impl Iterator<Item = (Option<String>, String)>,
    ) {
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
            if let Some(p) = partition {
                record = record.partition(p);
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

impl Broker {
    /// A broker telling clients to reach it at 127.0.0.1:`port` (a TLS proxy in front of it).
    pub fn start_advertised(topics: &[&str], port: u16) -> Broker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-kafka-mock"));
        for t in topics {
            cmd.arg("--topic").arg(t);
        }
        cmd.arg("--advertise").arg(format!("127.0.0.1:{port}"));
        let (child, bootstrap) = spawn_announcing(cmd, "bootstrap=");
        Broker { child, bootstrap }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record of `topic` a `read_committed` consumer sees, as sorted strings: read until at
/// least `expected` records arrived (the mock broker can report a partition's end before its
/// last writes are visible, so "read to the end" alone can stop short), then on to the end of
/// every partition, so extra records are seen too.
pub fn read_committed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<String> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while out.len() < expected || at_end.len() < partitions as usize {
        if std::time::Instant::now() > deadline {
            // The caller's assertion reports the shortfall with its context.
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    out.sort();
    out
}
