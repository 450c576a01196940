//! Checkpoints, file sources and file sinks on S3, against a real S3-compatible server
//! (moto's, started by each test) reached the way users reach theirs: `s3://` paths in the
//! pipeline and `AWS_*` variables in the environment. What Sluice wrote is read back with a
//! plain HTTP client, not with Sluice's own object store client.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::s3::{Proxy, S3Server};
use common::*;

const SCHEMA: &str = "id BIGINT, city STRING, amount BIGINT";

fn with_s3(cmd: &mut Command, env: &[(String, String)]) {
    for (k, v) in env {
        cmd.env(k, v);
    }
}

fn run_s3(file: &Path, env: &[(String, String)]) -> std::process::Output {
    let mut cmd = sluice();
    cmd.arg("run").arg(file).env("RUST_LOG", "info");
    with_s3(&mut cmd, env);
    run_ok(&mut cmd)
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `sluice run FILE` paused at failpoint `point` of batch `batch`, until [`Running::resume`].
fn paused_at(file: &Path, env: &[(String, String)], point: &str, batch: u64) -> Running {
    let mut cmd = sluice();
    cmd.arg("run")
        .arg(file)
        .env("RUST_LOG", "info")
        .env("SLUICE_FAILPOINTS", format!("{point}:{batch}"))
        .env("SLUICE_FAILPOINTS_RESUME", "stdin")
        .stdin(Stdio::piped());
    with_s3(&mut cmd, env);
    let mut run = Running::spawn(cmd);
    run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
    run
}

/// `rows` JSON values as sorted text, for comparing row sets.
fn sorted_text(rows: impl IntoIterator<Item = serde_json::Value>) -> Vec<String> {
    let mut v: Vec<String> = rows.into_iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The rows of a parquet object, as JSON objects, with the `col=value` directories of its key
/// added back as string columns.
fn parquet_rows(bytes: Vec<u8>, key: &str) -> Vec<serde_json::Value> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        for line in String::from_utf8(w.into_inner()).unwrap().lines() {
            let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
            for part in key.split('/') {
                if let Some((c, v)) = part.split_once('=') {
                    row[c] = v.into();
                }
            }
            out.push(row);
        }
    }
    out
}

/// The input rows as the sinks write them.
fn input_rows(range: std::ops::Range<u64>) -> Vec<String> {
    sorted_text(
        event_lines(range)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
    )
}

#[test]
fn files_in_each_format_round_trip_through_s3_with_their_checkpoints_there() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..3 {
        drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            event_lines(i * 40..(i + 1) * 40),
        );
    }
    let expected = input_rows(0..120);
    for format in ["json", "csv", "parquet"] {
        let header = if format == "csv" { "header = true" } else { "" };
        // Local json → S3 in `format`, partitioned by city; the checkpoint on S3 too.
        let write = d.join(format!("write-{format}.toml"));
        std::fs::write(
            &write,
            format!(
                r#"[[query]]
name = "to-s3"
checkpointLocation = "s3://lake/{format}/ckpt-write"
trigger = "availableNow"
[query.source]
format = "json"
path = "in/*.json"
schema = "{SCHEMA}"
mode = "FAILFAST"
maxFilesPerTrigger = 1
[query.sink]
format = "{format}"
path = "s3://lake/{format}/out"
partitionBy = ["city"]
{header}
"#
            ),
        )
        .unwrap();
        run_s3(&write, &env);
        let committed = s3.committed_files("lake", &format!("{format}/out"));
        assert!(!committed.is_empty(), "{format}: nothing committed");
        assert!(
            committed.iter().all(|k| k.contains("/city=")),
            "{format}: not partitioned: {committed:?}"
        );
        // Every committed object is there, under its batch's name.
        for key in &committed {
            assert!(s3.get("lake", key).is_some(), "{format}: {key} missing");
        }
        // S3 in `format` → local json: the same rows came through both ways.
        let read = d.join(format!("read-{format}.toml"));
        std::fs::write(
            &read,
            format!(
                r#"[[query]]
name = "from-s3"
checkpointLocation = "s3://lake/{format}/ckpt-read"
trigger = "availableNow"
[query.source]
format = "{format}"
path = "s3://lake/{format}/out/*/*.{format}"
schema = "id BIGINT, amount BIGINT"
{header}
[query.sink]
format = "json"
path = "back-{format}"
"#
            ),
        )
        .unwrap();
        run_s3(&read, &env);
        let back = committed_json(&d.join(format!("back-{format}")));
        assert!(
            back.iter().all(|r| r["id"].is_u64()),
            "{format}: {:?}",
            &back[..3.min(back.len())]
        );
        let ids: Vec<u64> = sorted_ids(&back);
        assert_eq!(ids, (0..120).collect::<Vec<_>>(), "{format}: ids differ");
        let amounts: u64 = back.iter().map(|r| r["amount"].as_u64().unwrap()).sum();
        assert_eq!(
            amounts,
            (0..120u64).map(|i| i * 10).sum::<u64>(),
            "{format}"
        );
        if format == "parquet" {
            // Read independently: every row, with its city from the object's key.
            let rows = committed
                .iter()
                .flat_map(|k| parquet_rows(s3.get("lake", k).unwrap(), k));
            assert_eq!(sorted_text(rows), expected);
        }
        if format == "json" {
            let rows = committed.iter().flat_map(|k| {
                let text = String::from_utf8(s3.get("lake", k).unwrap()).unwrap();
                let city = k.split("city=").nth(1).unwrap().split('/').next().unwrap();
                text.lines()
                    .map(|l| {
                        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                        v["city"] = city.into();
                        v
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(sorted_text(rows), expected);
        }
        // The checkpoints are in the bucket, not on local disk.
        let ckpt = s3.list("lake", &format!("{format}/ckpt-write/"));
        assert!(
            ckpt.iter().any(|k| k.ends_with("/commits/2")),
            "{format}: {ckpt:?}"
        );
    }
    // Text objects, read line by line.
    s3.put("lake", "logs/a.txt", b"first line\nsecond line\n");
    s3.put("lake", "logs/_hidden.txt", b"never read\n");
    s3.put("lake", "logs/sub/b.txt", b"one level down: not matched\n");
    let text = d.join("text.toml");
    std::fs::write(
        &text,
        r#"[[query]]
name = "text"
checkpointLocation = "s3://lake/text-ckpt"
trigger = "availableNow"
[query.source]
format = "text"
path = "s3://lake/logs/*.txt"
[query.sink]
format = "json"
path = "text-out"
"#,
    )
    .unwrap();
    run_s3(&text, &env);
    let lines: Vec<String> = committed_json(&d.join("text-out"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["first line", "second line"]);
}

/// A local json → S3 parquet query with its checkpoint on S3; `prefix` keeps runs apart.
fn setup_to_parquet(d: &Path, prefix: &str, files: u64) -> PathBuf {
    for i in 0..files {
        let f = drop_file(
            &d.join("in"),
            &format!("f{i}.json"),
            event_lines(i * 50..(i + 1) * 50),
        );
        set_mtime(&f, 100 - i);
    }
    pipeline(
        d,
        &format!(
            r#"[[query]]
name = "to-parquet"
checkpointLocation = "s3://lake/{prefix}/ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in/*.json"
schema = "{SCHEMA}"
maxFilesPerTrigger = 1
[query.sink]
format = "parquet"
path = "s3://lake/{prefix}/out"
partitionBy = ["city"]
"#
        ),
    )
}

/// The committed rows under `prefix/out`, read with the independent client.
fn committed_parquet(s3: &S3Server, prefix: &str) -> Vec<String> {
    sorted_text(
        s3.committed_files("lake", &format!("{prefix}/out"))
            .iter()
            .flat_map(|k| parquet_rows(s3.get("lake", k).unwrap(), k)),
    )
}

#[test]
fn a_checkpoint_on_s3_is_resumed_by_a_second_process() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let file = setup_to_parquet(dir.path(), "resume", 3);
    run_s3(&file, &env);
    assert_eq!(committed_parquet(&s3, "resume"), input_rows(0..150));
    // Two more files; a new process picks up from the checkpoint in the bucket.
    for i in 3..5 {
        drop_file(
            &dir.path().join("in"),
            &format!("f{i}.json"),
            event_lines(i * 50..(i + 1) * 50),
        );
    }
    let out = run_s3(&file, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resuming from checkpoint") && stderr.contains("next_batch=3"),
        "{stderr}"
    );
    assert_eq!(committed_parquet(&s3, "resume"), input_rows(0..250));
    let commits: Vec<String> = s3
        .list("lake", "resume/ckpt/commits/")
        .into_iter()
        .map(|k| k.rsplit('/').next().unwrap().to_owned())
        .collect();
    let mut ids: Vec<u64> = commits.iter().map(|c| c.parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

#[test]
fn a_second_process_on_the_same_s3_checkpoint_is_refused() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let file = setup_to_parquet(dir.path(), "owned", 3);
    // The first process stops just before it records batch 1's offsets...
    let mut first = paused_at(&file, &env, "before-offsets", 1);
    // ...a second one runs the same query on the same checkpoint to its end...
    run_s3(&file, &env);
    assert_eq!(committed_parquet(&s3, "owned"), input_rows(0..150));
    // ...and when the first goes on, its batch 1 is refused: it does not write a thing.
    first.resume();
    let (code, log) = first.wait();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("another query owns this checkpoint") && log.contains("s3://lake/owned/ckpt"),
        "{log}"
    );
    assert_eq!(committed_parquet(&s3, "owned"), input_rows(0..150));
}

#[test]
fn the_store_going_down_fails_the_batch_naming_it_and_a_restart_resumes_exactly() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let mut proxy = Proxy::start(s3.port);
    let mut env = common::s3::env(&s3);
    for (k, v) in &mut env {
        if k == "AWS_ENDPOINT_URL" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    env.push(("SLUICE_STORAGE_RETRY_TIMEOUT_SECS".into(), "2".into()));
    env.push(("SLUICE_STORAGE_MAX_RETRIES".into(), "3".into()));
    let dir = tempfile::tempdir().unwrap();
    let file = setup_to_parquet(dir.path(), "outage", 4);
    // Batch 1 stops once its data files are in the bucket, before its log entry.
    let mut run = paused_at(&file, &env, "mid-sink", 1);
    // The store goes away; the batch's remaining writes fail after their retries.
    proxy.down();
    run.resume();
    let (code, log) = run.wait();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("failed in batch 1") && log.contains("s3://lake/outage/"),
        "the error names the batch and the bucket and key:\n{log}"
    );
    // Batch 0 only is committed; nothing of batch 1 is visible through the sink's log.
    assert_eq!(committed_parquet(&s3, "outage"), input_rows(0..50));
    // The store is back: the next start re-runs batch 1 and goes on, nothing lost or doubled.
    proxy.up();
    let out = run_s3(&file, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("re-running the last batch"), "{stderr}");
    assert_eq!(committed_parquet(&s3, "outage"), input_rows(0..200));
}

#[test]
fn killed_anywhere_a_json_to_s3_parquet_query_gives_the_clean_output() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    const FILES: u64 = 4;
    let expected = input_rows(0..FILES * 50);
    let points = [
        "before-offsets",
        "after-offsets",
        "mid-sink",
        "after-sink",
        "after-commit",
    ];
    let mut killed = BTreeMap::new();
    for batch in 0..FILES {
        for point in points {
            let prefix = format!("kill-{point}-{batch}");
            let dir = tempfile::tempdir().unwrap();
            let file = setup_to_parquet(dir.path(), &prefix, FILES);
            let failpoint = format!("{point}:{batch}");
            let mut env_k = env_refs(&env);
            env_k.push(("SLUICE_FAILPOINTS", &failpoint));
            let mut run = Running::start(&file, &[], &env_k);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let (code, _) = run.wait();
            assert_eq!(code, None, "{failpoint}: not killed");
            killed.insert(failpoint.clone(), ());
            // What a reader sees right after the crash is part of the clean output.
            let partial = committed_parquet(&s3, &prefix);
            assert!(
                partial.iter().all(|r| expected.binary_search(r).is_ok()),
                "{failpoint}: a row a clean run never writes"
            );
            let out = run_s3(&file, &env);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if matches!(point, "after-offsets" | "mid-sink" | "after-sink") {
                assert!(
                    stderr.contains("re-running the last batch"),
                    "{failpoint}: batch not re-run:\n{stderr}"
                );
            }
            assert_eq!(
                committed_parquet(&s3, &prefix),
                expected,
                "{failpoint}: output differs from a clean run"
            );
        }
    }
    assert_eq!(killed.len(), 20);
}

#[test]
fn seed_004_kafka_orders_land_in_s3_as_parquet_with_the_dead_letters_beside_them() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    let mut broker = Command::new(env!("CARGO_BIN_EXE_sluice-kafka-mock"));
    broker.args(["--topic", "orders:1"]);
    let (mut broker, bootstrap) = spawn_announcing(broker, "bootstrap=");
    let dir = tempfile::tempdir().unwrap();
    let file = example("kafka-to-s3", dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("localhost:9092", &bootstrap);
    std::fs::write(&file, text).unwrap();
    // A batch of good orders, then one with an order without a product.
    kcat(
        &["-P", "-b", &bootstrap, "-t", "orders"],
        concat!(
            r#"{"order_id":1,"product":"kimchi","category":"food","amount":12000}"#,
            "\n",
            r#"{"order_id":2,"product":"cable","category":"tech","amount":9000}"#,
            "\n",
            r#"{"order_id":3,"product":"tteok","category":"food","amount":3000}"#,
            "\n"
        ),
    );
    run_s3(&file, &env);
    kcat(
        &["-P", "-b", &bootstrap, "-t", "orders"],
        concat!(
            r#"{"order_id":4,"product":"","category":"toys","amount":500}"#,
            "\n",
            r#"{"order_id":5,"product":"robot","category":"toys","amount":800}"#,
            "\n"
        ),
    );
    run_s3(&file, &env);
    let valid = s3
        .committed_files("lake", "orders")
        .iter()
        .flat_map(|k| parquet_rows(s3.get("lake", k).unwrap(), k))
        .map(|r| (r["order_id"].as_i64().unwrap(), r["category"].clone()))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(
        valid,
        BTreeMap::from([(1, "food".into()), (2, "tech".into()), (3, "food".into())])
    );
    let dead: Vec<serde_json::Value> = s3
        .committed_files("lake", "dead-letters")
        .iter()
        .flat_map(|k| {
            String::from_utf8(s3.get("lake", k).unwrap())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect();
    let ids: Vec<i64> = dead
        .iter()
        .map(|r| r["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5], "{dead:?}");
    assert!(
        dead.iter()
            .all(|r| r["_error"].as_str().unwrap().contains("missing product")),
        "{dead:?}"
    );
    // The checkpoint is in the bucket.
    assert!(!s3.list("lake", "checkpoints/orders/commits/").is_empty());
    let _ = broker.kill();
    let _ = broker.wait();
}

#[test]
fn partition_values_that_need_escaping_are_written_and_read_back_by_their_keys() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let env = common::s3::env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop_file(
        &d.join("in"),
        "a.json",
        "{\"id\":1,\"city\":\"Seoul/Gangnam\",\"amount\":5}\n{\"id\":2,\"city\":\"50%\",\"amount\":6}\n",
    );
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "escape"
checkpointLocation = "s3://lake/escape/ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in/*.json"
schema = "{SCHEMA}"
mode = "FAILFAST"
[query.sink]
format = "json"
path = "s3://lake/escape/out"
partitionBy = ["city"]

[[query]]
name = "back"
checkpointLocation = "s3://lake/escape/ckpt-back"
trigger = "availableNow"
[query.source]
format = "json"
path = "s3://lake/escape/out/*/*.json"
schema = "id BIGINT, amount BIGINT"
mode = "FAILFAST"
[query.sink]
format = "json"
path = "back"
"#
        ),
    );
    run_s3(&file, &env);
    let keys = s3.committed_files("lake", "escape/out");
    assert!(
        keys.iter().any(|k| k.contains("city=Seoul%2FGangnam/"))
            && keys.iter().any(|k| k.contains("city=50%25/")),
        "{keys:?}"
    );
    for k in &keys {
        assert!(s3.get("lake", k).is_some(), "{k} is not where the log says");
    }
    // Both queries ran in one process, in order only if the second saw the first's output;
    // run again so the reader certainly has it.
    run_s3(&file, &env);
    assert_eq!(sorted_ids(&committed_json(&d.join("back"))), [1, 2]);
}
