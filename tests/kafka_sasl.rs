//! Kafka with SASL: the broker process (`sluice-kafka-mock --sasl USER:PASSWORD`, an
//! authenticating front before librdkafka's mock cluster) checks every connection's
//! credentials with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; `sluice run` reads and writes
//! through it with the password taken from the environment, kcat checks what arrived, and a
//! wrong password fails the query once, clearly, without the password in its output.

mod common;

use std::process::{Command, Stdio};

use common::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

/// The broker with its SASL front; its stderr (one line per refused login) goes to a file.
struct SaslBroker {
    child: std::process::Child,
    bootstrap: String,
    log: std::path::PathBuf,
}

impl SaslBroker {
    fn start(dir: &std::path::Path, topics: &[&str]) -> SaslBroker {
        let log = dir.join("broker.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-kafka-mock"));
        cmd.arg("--sasl").arg(format!("{USER}:{PASSWORD}"));
        for t in topics {
            cmd.arg("--topic").arg(t);
        }
        cmd.stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        let (child, bootstrap) = spawn_announcing(cmd, "bootstrap=");
        SaslBroker {
            child,
            bootstrap,
            log,
        }
    }

    /// Logins the front refused so far.
    fn refused_logins(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("sasl: authentication failed"))
            .count()
    }

    /// kcat with `mechanism` and the right credentials.
    fn kcat(&self, mechanism: &str, args: &[&str], input: &str) -> Vec<String> {
        let mut all = vec![
            "-b",
            &self.bootstrap,
            "-X",
            "security.protocol=SASL_PLAINTEXT",
        ];
        let (m, u, p) = (
            format!("sasl.mechanisms={mechanism}"),
            format!("sasl.username={USER}"),
            format!("sasl.password={PASSWORD}"),
        );
        all.extend(["-X", &m, "-X", &u, "-X", &p]);
        all.extend(args);
        kcat(&all, input)
    }
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Topic `in` → topic `out` through `mechanism`, the password from `$KAFKA_PASSWORD`.
fn sasl_pipeline(
    dir: &std::path::Path,
    bootstrap: &str,
    mechanism: &str,
    out: &str,
) -> std::path::PathBuf {
    let client = format!(
        r#""kafka.bootstrap.servers" = "{bootstrap}"
"kafka.security.protocol" = "SASL_PLAINTEXT"
"kafka.sasl.mechanism" = "{mechanism}"
"kafka.sasl.username" = "{USER}"
"kafka.sasl.password" = {{ env = "KAFKA_PASSWORD" }}
connectTimeout = "20 seconds""#
    );
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "sasl"
checkpointLocation = "ckpt-{out}"
trigger = "availableNow"

[query.source]
format = "kafka"
subscribe = "in"
startingOffsets = "earliest"
{client}

[query.sink]
format = "kafka"
topic = "{out}"
{client}
"#
        ),
    )
}

#[test]
fn every_mechanism_logs_in_and_a_wrong_password_fails_once_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = SaslBroker::start(
        dir.path(),
        &[
            "in:2",
            "out-plain:2",
            "out-scram-sha-256:2",
            "out-scram-sha-512:2",
        ],
    );
    let records: Vec<String> = (0..100).map(|n| format!("rec-{n:03}")).collect();
    broker.kcat("PLAIN", &["-P", "-t", "in"], &(records.join("\n") + "\n"));
    // The broker checks: a client with the wrong password is turned away.
    let refused = Command::new("kcat")
        .args(["-L", "-b", &broker.bootstrap, "-m", "5"])
        .args([
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=PLAIN",
        ])
        .args(["-X", "sasl.username=alice", "-X", "sasl.password=guess"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(broker.refused_logins() >= 1);

    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let out = format!("out-{}", mechanism.to_ascii_lowercase());
        let file = sasl_pipeline(dir.path(), &broker.bootstrap, mechanism, &out);
        let run = run_ok(
            sluice()
                .arg("run")
                .arg(&file)
                .env("KAFKA_PASSWORD", PASSWORD)
                .env("RUST_LOG", "info"),
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            !stderr.contains(PASSWORD),
            "{mechanism}: the password is in the log"
        );
        let mut got = broker.kcat(mechanism, &["-C", "-t", &out, "-e", "-q"], "");
        got.sort();
        assert_eq!(got, records, "{mechanism}");
    }

    // A wrong password: one clear failure naming the broker and the broker's reason, quickly
    // (not after connectTimeout), after one or two refused logins rather than a retry loop.
    let before = broker.refused_logins();
    let wrong = "n0t-Th3-Pa55";
    let file = sasl_pipeline(dir.path(), &broker.bootstrap, "SCRAM-SHA-256", "out-plain");
    let started = std::time::Instant::now();
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("KAFKA_PASSWORD", wrong)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the Kafka broker at bootstrap servers '{}' refused the login",
            broker.bootstrap
        )) && stderr.contains("Authentication failed: invalid user name or password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong),
        "the password is in the error: {stderr}"
    );
    assert!(
        took < std::time::Duration::from_secs(15),
        "the refusal took {took:?}, as long as connectTimeout"
    );
    let attempts = broker.refused_logins() - before;
    assert!((1..=3).contains(&attempts), "{attempts} refused logins");
}

/// GET `url` and return the body as text.
fn get_text(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

#[test]
fn a_served_query_with_a_password_from_the_environment_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = SaslBroker::start(dir.path(), &["in:2", "out:2"]);
    broker.kcat("PLAIN", &["-P", "-t", "in"], "one\ntwo\nthree\n");
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let mut cmd = sluice();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .env("KAFKA_PASSWORD", PASSWORD)
        .env_remove("SLUICE_TOKEN")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let (mut server, url) = spawn_announcing(cmd, "sluice serve listening on ");
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    let file = sasl_pipeline(dir.path(), &broker.bootstrap, "SCRAM-SHA-256", "out");
    // Running until stopped, so that its status and metrics are live while they are read.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "trigger = \"availableNow\"",
        "trigger = { processingTime = \"200 ms\" }",
    );
    std::fs::write(&file, text).unwrap();
    run_ok(
        sluice()
            .args(["query", "start", file.to_str().unwrap()])
            .args(["--server", &url, "--token", token.trim()]),
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    let status = loop {
        let status = get_text(&format!("{url}/queries/sasl"));
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert!(v["exception"].is_null(), "{status}");
        if v["lastBatchId"].as_u64().is_some() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut got = broker.kcat("SCRAM-SHA-256", &["-C", "-t", "out", "-e", "-q"], "");
    got.sort();
    assert_eq!(got, ["one", "three", "two"]);
    let seen = [
        ("the query's status", status),
        ("the query listing", get_text(&format!("{url}/queries"))),
        (
            "progress",
            get_text(&format!("{url}/queries/sasl/progress")),
        ),
        ("/metrics", get_text(&format!("{url}/metrics"))),
        (
            "validate",
            String::from_utf8_lossy(
                &sluice()
                    .arg("validate")
                    .arg(&file)
                    .env("KAFKA_PASSWORD", PASSWORD)
                    .output()
                    .unwrap()
                    .stdout,
            )
            .into_owned(),
        ),
    ];
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("batch committed"), "{log}");
    for (what, text) in seen.iter().chain([&("the server's debug log", log)]) {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(
            !text.contains(PASSWORD),
            "the password is in {what}:\n{text}"
        );
    }
}
