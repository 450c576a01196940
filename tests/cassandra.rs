//! The Cassandra connector through the CLI against a CQL server process (kassandra, in
//! `tests/servers/cassandra`), read back with the DataStax Python driver: seed 000's job
//! (Kafka events joined with a Cassandra users table, written back to Cassandra), replays
//! after kill -9 that leave each row once with the clean run's values, a server that goes
//! away, and the refusals a user meets first.

mod common;

use std::path::Path;

use common::cassandra::{Cassandra, PASSWORD, USER};
use common::kafka::Broker;
use common::*;

/// `CREATE KEYSPACE` (SimpleStrategy, one replica).
fn keyspace(name: &str) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
}

/// The connection keys of a pipeline table for `db` (the password from the environment).
fn connection(db: &Cassandra) -> String {
    format!(
        "contactPoints = [\"{}\"]\nusername = \"{USER}\"\npassword = {{ env = \"CQL_PASSWORD\" }}\n",
        db.contact_point()
    )
}

/// `sluice run` of `file` with the password in the environment.
fn run(file: &Path) -> std::process::Output {
    sluice()
        .arg("run")
        .arg(file)
        .env("CQL_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

/// Json files in `in/` (one per batch, 30 events each) written to `ks.events`.
fn files_pipeline(dir: &Path, db: &Cassandra, table: &str, batches: u64) -> std::path::PathBuf {
    for i in 0..batches {
        let f = drop_file(
            &dir.join("in"),
            &format!("{i}.json"),
            event_lines(i * 30..(i + 1) * 30),
        );
        set_mtime(&f, 100 - i);
    }
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "to-cassandra"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 1

[query.sink]
format = "cassandra"
keyspace = "ks"
table = "{table}"
batchSize = 4
maxRetries = 1
{}"#,
            connection(db)
        ),
    )
}

/// Every row of `ks.<table>` as `(id, city, amount)`, sorted.
fn rows(db: &Cassandra, table: &str) -> Vec<(u64, String, u64)> {
    let mut out: Vec<(u64, String, u64)> = db
        .cql(&[&format!("SELECT id, city, amount FROM ks.{table}")])
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().unwrap(),
                r["city"].as_str().unwrap().to_owned(),
                r["amount"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn events_table(name: &str) -> String {
    format!("CREATE TABLE ks.{name} (id bigint PRIMARY KEY, city text, amount bigint)")
}

#[test]
fn seed_000_kafka_events_joined_with_a_cassandra_users_table_are_written_back() {
    let db = Cassandra::start();
    db.cql(&[
        &keyspace("shop"),
        "CREATE TABLE shop.users (user_id text PRIMARY KEY, name text, tier int)",
        "CREATE TABLE shop.user_events (event_id bigint PRIMARY KEY, user_id text, name text, tier int, amount double, event_time timestamp)",
    ]);
    let users: Vec<(String, String, i32)> = (0..10)
        .map(|u| (format!("u{u}"), format!("User {u}"), u % 3))
        .collect();
    for (id, name, tier) in &users {
        db.cql(&[&format!(
            "INSERT INTO shop.users (user_id, name, tier) VALUES ('{id}', '{name}', {tier})"
        )]);
    }
    let broker = Broker::start(&["events"]);
    // Seed 000's events: JSON values; user u10 and u11 have no row in the users table.
    let event = |i: u64| {
        format!(
            "{{\"event_id\":{i},\"user_id\":\"u{}\",\"amount\":{}.5,\"event_time\":\"2026-12-07 10:{:02}:00\"}}",
            i % 12,
            i * 3,
            i % 60
        )
    };
    let produce = |range: std::ops::Range<u64>| {
        let input: String = range.map(|i| event(i) + "\n").collect();
        kcat(&["-P", "-b", &broker.bootstrap, "-t", "events"], &input);
    };
    produce(0..40);
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(
        dir.path(),
        &format!(
            r#"[[query]]
name = "enrich"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.events]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
subscribe = "events"
startingOffsets = "earliest"

[[query.inputs.events.transform]]
selectExpr = ["from_json(CAST(value AS STRING), 'event_id BIGINT, user_id STRING, amount DOUBLE, event_time TIMESTAMP') AS e"]
[[query.inputs.events.transform]]
selectExpr = ["e.*"]

[query.join]
left = "events"
on = ["user_id"]
[query.join.table]
format = "cassandra"
keyspace = "shop"
table = "users"
{conn}
[query.sink]
format = "cassandra"
keyspace = "shop"
table = "user_events"
{conn}"#,
            bootstrap = broker.bootstrap,
            conn = connection(&db)
        ),
    );
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An independent computation: the inner join of the events with the users.
    let expect = |range: std::ops::Range<u64>, users: &[(String, String, i32)]| {
        let mut rows: Vec<(u64, String, String, i64, f64)> = range
            .filter_map(|i| {
                let user = format!("u{}", i % 12);
                users
                    .iter()
                    .find(|(id, _, _)| *id == user)
                    .map(|(_, name, tier)| {
                        (
                            i,
                            user.clone(),
                            name.clone(),
                            i64::from(*tier),
                            i as f64 * 3.0 + 0.5,
                        )
                    })
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        rows
    };
    let read = || {
        let mut rows: Vec<(u64, String, String, i64, f64)> = db
            .cql(&[
                "SELECT event_id, user_id, name, tier, amount, event_time FROM shop.user_events",
            ])
            .iter()
            .map(|r| {
                assert!(
                    r["event_time"]
                        .as_str()
                        .unwrap()
                        .starts_with("2026-12-07 10:"),
                    "{r}"
                );
                (
                    r["event_id"].as_u64().unwrap(),
                    r["user_id"].as_str().unwrap().to_owned(),
                    r["name"].as_str().unwrap().to_owned(),
                    r["tier"].as_i64().unwrap(),
                    r["amount"].as_f64().unwrap(),
                )
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        rows
    };
    let first = expect(0..40, &users);
    assert_eq!(first.len(), 34);
    assert_eq!(read(), first);

    // A user renamed in Cassandra between runs: the next run's rows carry the new name.
    db.cql(&["INSERT INTO shop.users (user_id, name, tier) VALUES ('u1', 'Renamed', 2)"]);
    let mut renamed = users.clone();
    renamed[1] = ("u1".into(), "Renamed".into(), 2);
    produce(40..80);
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = first;
    want.extend(expect(40..80, &renamed));
    assert_eq!(read(), want);
    assert!(want.iter().any(|r| r.2 == "Renamed"));
}

#[test]
fn a_batch_killed_at_any_point_leaves_each_row_once_with_the_clean_run_s_values() {
    let db = Cassandra::start();
    db.cql(&[&keyspace("ks")]);
    let mut killed = 0;
    for batch in 0..4 {
        for point in [
            "before-offsets",
            "after-offsets",
            "mid-sink",
            "after-sink",
            "after-commit",
        ] {
            let table = format!("crash_{batch}_{}", point.replace('-', "_"));
            db.cql(&[&events_table(&table)]);
            let dir = tempfile::tempdir().unwrap();
            let file = files_pipeline(dir.path(), &db, &table, 4);
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(
                &file,
                &[],
                &[
                    ("SLUICE_FAILPOINTS", &failpoint),
                    ("CQL_PASSWORD", PASSWORD),
                ],
            );
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let _ = run.wait();
            killed += 1;
            let out = self::run(&file);
            assert!(
                out.status.success(),
                "{failpoint}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(rows(&db, &table), event_rows(0..120), "{failpoint}");
        }
    }
    assert_eq!(killed, 20);
}

#[test]
fn a_server_that_goes_away_fails_the_batch_and_a_restart_writes_every_row_once() {
    let mut db = Cassandra::start();
    db.cql(&[&keyspace("ks"), &events_table("events")]);
    let dir = tempfile::tempdir().unwrap();
    let file = files_pipeline(dir.path(), &db, "events", 3);
    let mut cmd = sluice();
    cmd.arg("run")
        .arg(&file)
        .env("CQL_PASSWORD", PASSWORD)
        .env("SLUICE_FAILPOINTS", "after-commit:0")
        .env("SLUICE_FAILPOINTS_RESUME", "stdin")
        .stdin(std::process::Stdio::piped());
    let mut running = Running::spawn(cmd);
    running.await_line("sluice-failpoint: after-commit batch 0");
    assert_eq!(rows(&db, "events"), event_rows(0..30));
    let port = db.port;
    db.stop();
    running.resume();
    let (code, stderr) = running.wait();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("sink CassandraSink[ks.events]: batch 1:"),
        "{stderr}"
    );
    // The server back on its port (empty: kassandra keeps data in memory): the batches never
    // committed, 1 and 2, are written there once.
    let db = Cassandra::start_on(port);
    db.cql(&[&keyspace("ks"), &events_table("events")]);
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&db, "events"), event_rows(30..90));
}

#[test]
fn refusals_name_what_is_wrong_and_never_print_the_password() {
    let db = Cassandra::start();
    db.cql(&[
        &keyspace("ks"),
        &events_table("events"),
        "CREATE TABLE ks.narrow (id int PRIMARY KEY, city text, amount bigint)",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let stderr_of = |file: &Path, password: &str| {
        let out = sluice()
            .arg("run")
            .arg(file)
            .env("CQL_PASSWORD", password)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(password), "the password is printed: {text}");
        text
    };

    // A wrong password: the server's words.
    let file = files_pipeline(dir.path(), &db, "events", 1);
    let text = stderr_of(&file, "not-the-password");
    assert!(
        text.contains("CassandraSink[ks.events]")
            && text.contains("Provided username sluice and/or password are incorrect"),
        "{text}"
    );

    // A missing table: how to make one.
    let missing = std::fs::read_to_string(&file)
        .unwrap()
        .replace("table = \"events\"", "table = \"nowhere\"");
    std::fs::write(&file, missing).unwrap();
    let text = stderr_of(&file, PASSWORD);
    assert!(
        text.contains("table ks.nowhere does not exist")
            && text.contains(
                "CREATE TABLE ks.nowhere (id bigint, city text, amount bigint, PRIMARY KEY (id))"
            ),
        "{text}"
    );

    // A column whose type does not map: named, with the cast that fixes it.
    let narrow = std::fs::read_to_string(&file)
        .unwrap()
        .replace("table = \"nowhere\"", "table = \"narrow\"");
    std::fs::write(&file, narrow).unwrap();
    let text = stderr_of(&file, PASSWORD);
    assert!(
        text.contains("column 'id' is Int64 but ks.narrow.id is int; cast it in a step"),
        "{text}"
    );

    // Options that cannot work are refused by validate at their lines.
    let bad = std::fs::read_to_string(&file)
        .unwrap()
        .replace("batchSize = 4", "consistency = \"MOST\"");
    std::fs::write(&file, bad).unwrap();
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sink.consistency: 'MOST' is not a consistency level"),
        "{stderr}"
    );
}

#[test]
fn rows_of_every_mapped_type_read_back_as_written() {
    let db = Cassandra::start();
    db.cql(&[
        &keyspace("ks"),
        "CREATE TABLE ks.typed (id uuid PRIMARY KEY, n int, big bigint, ratio double, \
         ok boolean, at timestamp, day date, tags list<text>, raw blob)",
    ]);
    let dir = tempfile::tempdir().unwrap();
    drop_file(
        &dir.path().join("in"),
        "0.json",
        "{\"id\":\"0b9c5c8e-7f4a-4a6e-9d2b-1c1f3e5a7b9d\",\"n\":7,\"big\":9000000000,\"ratio\":0.25,\"ok\":true,\"at\":\"2026-12-07T10:00:00.123Z\",\"day\":\"2026-12-07\",\"tags\":\"a,b\",\"raw\":\"aGk=\"}\n",
    );
    let file = pipeline(
        dir.path(),
        &format!(
            r#"[[query]]
name = "typed"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "id STRING, n INT, big BIGINT, ratio DOUBLE, ok BOOLEAN, at TIMESTAMP, day DATE, tags STRING, raw STRING"
mode = "FAILFAST"

[[query.transform]]
withColumn = {{ name = "raw", expr = "decode(raw, 'base64')" }}
[[query.transform]]
withColumn = {{ name = "tags", expr = "split(tags, ',')" }}

[query.sink]
format = "cassandra"
keyspace = "ks"
table = "typed"
{}"#,
            connection(&db)
        ),
    );
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = db.cql(&["SELECT * FROM ks.typed"]);
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r["id"], "0b9c5c8e-7f4a-4a6e-9d2b-1c1f3e5a7b9d");
    assert_eq!(r["n"], 7);
    assert_eq!(r["big"], 9_000_000_000u64);
    assert_eq!(r["ratio"], 0.25);
    assert_eq!(r["ok"], true);
    assert_eq!(r["at"], "2026-12-07 10:00:00.123000");
    assert_eq!(r["day"], "2026-12-07");
    assert_eq!(r["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(r["raw"], "b'hi'");
}

#[test]
fn tls_with_the_nodes_ca_and_a_refusal_without_it() {
    let db = Cassandra::start();
    db.cql(&[&keyspace("ks"), &events_table("events")]);
    let certs = tempfile::tempdir().unwrap();
    common::tls::certificates(certs.path());
    let port = free_port();
    let _proxy = common::tls::TlsProxy::start(certs.path(), port, &db.contact_point());
    let dir = tempfile::tempdir().unwrap();
    let file = files_pipeline(dir.path(), &db, "events", 2);
    let plain = std::fs::read_to_string(&file).unwrap();
    let tls = plain.replace(
        &format!("contactPoints = [\"{}\"]", db.contact_point()),
        &format!(
            "contactPoints = [\"127.0.0.1:{port}\"]\nsslRootCert = \"{}\"",
            certs.path().join("ca.crt").display()
        ),
    );
    std::fs::write(&file, &tls).unwrap();
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&db, "events"), event_rows(0..60));

    // TLS without the CA: the nodes' certificate is not trusted, and the start says so.
    let dir = tempfile::tempdir().unwrap();
    let file = files_pipeline(dir.path(), &db, "events", 1);
    let untrusted = std::fs::read_to_string(&file).unwrap().replace(
        &format!("contactPoints = [\"{}\"]", db.contact_point()),
        &format!("contactPoints = [\"127.0.0.1:{port}\"]\nssl = true"),
    );
    std::fs::write(&file, untrusted).unwrap();
    let out = run(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to 127.0.0.1:")
            && stderr.contains("certificate verify failed"),
        "{stderr}"
    );
}
