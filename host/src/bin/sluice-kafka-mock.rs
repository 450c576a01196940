//! A Kafka-protocol broker for tests and demos: librdkafka's mock cluster in a process of its
//! own, so that killing the host under test does not kill the broker.
//!
//! ```text
//! sluice-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]...
//! ```
//!
//! Creates the topics, prints `bootstrap=HOST:PORT` on stdout and serves until killed. Any
//! Kafka client (Sluice, kcat, librdkafka, the Java client) can connect to it.

use std::io::Write;
use std::process::ExitCode;

use rdkafka::mocking::MockCluster;

fn main() -> ExitCode {
    let mut brokers = 1;
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--brokers", Some(n)) => match n.parse() {
                Ok(n) if n > 0 => brokers = n,
                _ => return usage(&format!("--brokers takes a positive number, not '{n}'")),
            },
            ("--topic", Some(t)) => {
                let (name, partitions) = t.split_once(':').unwrap_or((&t, "1"));
                match partitions.parse() {
                    Ok(p) if p > 0 && !name.is_empty() => topics.push((name.to_owned(), p)),
                    _ => return usage(&format!("--topic takes NAME[:PARTITIONS], not '{t}'")),
                }
            }
            (other, _) => return usage(&format!("unknown argument '{other}'")),
        }
    }
    let cluster = match MockCluster::new(brokers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: starting the mock cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, partitions) in &topics {
        if let Err(e) = cluster.create_topic(name, *partitions, 1) {
            eprintln!("error: creating topic {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "bootstrap={}", cluster.bootstrap_servers());
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "error: {problem}\nusage: sluice-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]..."
    );
    ExitCode::from(2)
}
