//! A Kafka-protocol broker for tests and demos: librdkafka's mock cluster in a process of its
//! own, so that killing the host under test does not kill the broker.
//!
//! ```text
//! sluice-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]... [--advertise HOST:PORT]...
//!                   [--sasl USER:PASSWORD]
//! ```
//!
//! Creates the topics, prints `bootstrap=HOST:PORT` on stdout and serves until killed. Any
//! Kafka client (Sluice, kcat, librdkafka, the Java client) can connect to it.
//!
//! `--advertise` (once per broker, in broker order) makes a broker tell clients to reach it at
//! another address than the one it listens on — a TLS proxy in front of it (stunnel), which is
//! how the tests reach a Kafka-protocol broker over TLS: the mock cluster itself speaks plain
//! TCP only.
//!
//! `--sasl` puts an authenticating front before every broker (`sasl.rs`: PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 for that one user) and advertises it instead, so clients
//! must connect with `security.protocol = SASL_PLAINTEXT` and those credentials; the printed
//! bootstrap address is the front's.

mod sasl;

use std::io::Write;
use std::process::ExitCode;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

fn main() -> ExitCode {
    let mut brokers = 1;
    let mut topics: Vec<(String, i32)> = Vec::new();
    let mut advertise: Vec<(String, i32)> = Vec::new();
    let mut credentials: Option<sasl::Credentials> = None;
    // Kafka's `group.initial.rebalance.delay.ms` (3 s, as Kafka's default).
    let mut initial_rebalance_delay_ms: i32 = 3000;
    // KIP-848 groups (`group.protocol = consumer`): the broker's session timeout; the
    // heartbeat interval is a fifth of it. (librdkafka's mock: 30 s and 3 s.)
    let mut consumer_session_timeout_ms: Option<i32> = None;
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
            ("--advertise", Some(a)) => match a.rsplit_once(':').map(|(h, p)| (h, p.parse())) {
                Some((host, Ok(port))) if !host.is_empty() => {
                    advertise.push((host.to_owned(), port))
                }
                _ => return usage(&format!("--advertise takes HOST:PORT, not '{a}'")),
            },
            ("--sasl", Some(c)) => match c.split_once(':') {
                Some((user, password)) if !user.is_empty() => {
                    credentials = Some(sasl::Credentials {
                        user: user.to_owned(),
                        password: password.to_owned(),
                    })
                }
                _ => return usage("--sasl takes USER:PASSWORD"),
            },
            ("--group-initial-rebalance-delay-ms", Some(ms)) => match ms.parse() {
                Ok(ms) if ms >= 0 => initial_rebalance_delay_ms = ms,
                _ => {
                    return usage(&format!(
                        "--group-initial-rebalance-delay-ms takes milliseconds, not '{ms}'"
                    ));
                }
            },
            ("--group-consumer-session-timeout-ms", Some(ms)) => match ms.parse() {
                Ok(ms) if ms >= 100 => consumer_session_timeout_ms = Some(ms),
                _ => {
                    return usage(&format!(
                        "--group-consumer-session-timeout-ms takes milliseconds (at least 100), not '{ms}'"
                    ));
                }
            },
            (other, _) => return usage(&format!("unknown argument '{other}'")),
        }
    }
    if advertise.len() > brokers as usize {
        return usage("more --advertise addresses than brokers");
    }
    if credentials.is_some() && !advertise.is_empty() {
        return usage("--sasl advertises its own fronts: it cannot be combined with --advertise");
    }
    // The cluster belongs to this client (librdkafka's `test.mock.num.brokers`), which keeps
    // it while the process lives and gives the raw handle `--advertise` needs.
    let owner: BaseProducer = match ClientConfig::new()
        .set("test.mock.num.brokers", brokers.to_string())
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: starting the mock cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(cluster) = owner.client().mock_cluster() else {
        eprintln!("error: the client has no mock cluster");
        return ExitCode::FAILURE;
    };
    // SASL: a front per broker, listening now, advertised in the broker's place below.
    let mut fronts = Vec::new();
    if let Some(credentials) = credentials {
        let credentials = std::sync::Arc::new(credentials);
        let listening: Vec<String> = cluster
            .bootstrap_servers()
            .split(',')
            .map(str::to_owned)
            .collect();
        for broker in listening {
            let listener = match std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| Ok((l.local_addr()?.port(), l)))
            {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: listening for the SASL front: {e}");
                    return ExitCode::FAILURE;
                }
            };
            advertise.push(("127.0.0.1".to_owned(), i32::from(listener.0)));
            fronts.push(format!("127.0.0.1:{}", listener.0));
            sasl::serve(listener.1, broker, credentials.clone());
        }
    }
    for (i, (host, port)) in advertise.iter().enumerate() {
        let Ok(host) = std::ffi::CString::new(host.as_str()) else {
            return usage("--advertise host holds a NUL byte");
        };
        // SAFETY: the client owns a live mock cluster (checked above) for as long as `owner`
        // lives; librdkafka copies `host` under the cluster's lock; broker ids start at 1.
        unsafe {
            let raw = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            rdkafka::bindings::rd_kafka_mock_broker_set_host_port(
                raw,
                i as i32 + 1,
                host.as_ptr(),
                *port,
            );
        }
    }
    // SAFETY: as above, the cluster lives as long as `owner`.
    unsafe {
        let raw = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
            raw,
            initial_rebalance_delay_ms,
        );
        if let Some(ms) = consumer_session_timeout_ms {
            rdkafka::bindings::rd_kafka_mock_set_group_consumer_session_timeout_ms(raw, ms);
            rdkafka::bindings::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(
                raw,
                (ms / 5).max(50),
            );
        }
    }
    for (name, partitions) in &topics {
        if let Err(e) = cluster.create_topic(name, *partitions, 1) {
            eprintln!("error: creating topic {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout().lock();
    // Where it listens (an --advertise'd proxy forwards here).
    if fronts.is_empty() {
        let _ = writeln!(out, "bootstrap={}", cluster.bootstrap_servers());
    } else {
        let _ = writeln!(out, "bootstrap={}", fronts.join(","));
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "error: {problem}\nusage: sluice-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]... [--advertise HOST:PORT]... [--sasl USER:PASSWORD] [--group-initial-rebalance-delay-ms MS] [--group-consumer-session-timeout-ms MS]"
    );
    ExitCode::from(2)
}
