//! The Kafka source against a real Kafka-protocol broker process (`sluice-kafka-mock`, which
//! runs librdkafka's mock cluster): records produced with a Kafka client, read by
//! `sluice run`, checked in the file sink.

mod common;

use std::time::Duration;

use common::kafka::*;
use common::tls::TlsProxy;
use common::*;

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
    // The json sink writes binary columns (Kafka's value) as Spark does: base64 strings.
    use base64::Engine;
    let mut v: Vec<String> = committed_json(&dir.join("out"))
        .iter()
        .map(|r| {
            let text = r["value"].as_str().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_else(|e| panic!("value {text:?} is not base64: {e}"));
            String::from_utf8(bytes).unwrap()
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
    run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .arg("--progress-log")
            .arg(&log),
    );
    let expected: Vec<String> = (0..250).map(|i| format!("event-{i:04}")).collect();
    assert_eq!(values(dir.path()), expected);
    let p = progress(&log);
    assert_eq!(
        p.iter().map(|b| b.num_input_rows).collect::<Vec<_>>(),
        vec![100, 100, 50],
        "maxOffsetsPerTrigger splits the backlog"
    );
    // Spark's lag metrics: how far each batch ends behind the latest offsets, per partition.
    let behind: Vec<i64> = p
        .iter()
        .map(|b| {
            let per_partition = b.sources[0].metrics["offsetsBehindLatest"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_i64().unwrap())
                .collect::<Vec<_>>();
            assert_eq!(per_partition.len(), 3);
            let max = b.sources[0].metrics["maxOffsetsBehindLatest"]
                .as_i64()
                .unwrap();
            assert_eq!(max, *per_partition.iter().max().unwrap());
            per_partition.iter().sum()
        })
        .collect();
    assert_eq!(behind, vec![150, 50, 0]);
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
    run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .arg("--progress-log")
            .arg(&log),
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

fn to_kafka_pipeline(
    dir: &std::path::Path,
    bootstrap: &str,
    exactly_once: bool,
) -> std::path::PathBuf {
    for i in 0..4u64 {
        let text: String = (i * 25..(i + 1) * 25)
            .map(|n| format!("{{\"value\":\"order-{n:03}\"}}\n"))
            .collect();
        let f = drop_file(&dir.join("in"), &format!("f{i}.json"), &text);
        set_mtime(&f, 100 - i);
    }
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "to-kafka"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "value STRING"
maxFilesPerTrigger = 1

[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{bootstrap}"
topic = "orders-out"
exactlyOnce = {exactly_once}
"#
        ),
    )
}

#[test]
fn exactly_once_sink_survives_kill_minus_nine_at_every_step() {
    let expected: Vec<String> = (0..100).map(|n| format!("order-{n:03}")).collect();
    let points = [
        "before-offsets",
        "after-offsets",
        "after-sink",
        "after-commit",
    ];
    let mut killed = 0;
    for batch in 0..3u64 {
        for point in points {
            let broker = Broker::start(&["orders-out:2"]);
            let dir = tempfile::tempdir().unwrap();
            let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, true);
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let (code, _) = run.wait();
            assert_eq!(code, None);
            killed += 1;
            let out = sluice()
                .arg("run")
                .arg(&file)
                .env("RUST_LOG", "info")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{failpoint}: restart failed:\n{stderr}"
            );
            if point == "after-sink" {
                assert!(
                    stderr.contains("batch already committed to Kafka; skipping"),
                    "{failpoint}:\n{stderr}"
                );
            }
            assert_eq!(
                read_committed(&broker.bootstrap, "orders-out", 2, 100),
                expected,
                "{failpoint}: a read_committed reader sees a different set"
            );
        }
    }
    assert_eq!(killed, 12);
}

/// Markers of other writers (another query on the topic, the other partitions of a clustered
/// query) pile up after this query's last one: a restart must still find it and skip the
/// batch its transaction committed.
#[test]
fn exactly_once_finds_its_last_batch_behind_other_writers_markers() {
    let expected: Vec<String> = (0..100).map(|n| format!("order-{n:03}")).collect();
    let broker = Broker::start(&["orders-out:2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, true);
    let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", "after-sink:1")]);
    run.await_line("sluice-failpoint: after-sink batch 1");
    run.signal(9);
    let _ = run.wait();
    broker.produce_to(
        "orders-out.sluice-batches",
        Some(0),
        (0..2500).map(|i| (Some("another-writer".to_owned()), i.to_string())),
    );
    let out = run_ok(sluice().arg("run").arg(&file).env("RUST_LOG", "info"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("batch already committed to Kafka; skipping"),
        "{stderr}"
    );
    assert_eq!(
        read_committed(&broker.bootstrap, "orders-out", 2, 100),
        expected
    );
}

#[test]
fn a_pipelined_at_least_once_kafka_sink_killed_anywhere_loses_nothing() {
    let expected: Vec<String> = (0..100).map(|n| format!("order-{n:03}")).collect();
    // A clean run is pipelined: each batch's progress has the wait for its acknowledgements
    // (`sinkFinish`), done after the next batch was read.
    {
        let broker = Broker::start(&["orders-out:2"]);
        let dir = tempfile::tempdir().unwrap();
        let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, false);
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{stderr}");
        let records = progress(&file.with_file_name("progress.jsonl"));
        assert_eq!(records.len(), 4);
        assert!(
            records
                .iter()
                .all(|p| p.duration_ms.contains_key("sinkFinish")),
            "{:?}",
            records.iter().map(|p| &p.duration_ms).collect::<Vec<_>>()
        );
        let ids: Vec<u64> = records.iter().map(|p| p.batch_id).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
    }
    let points = [
        "before-offsets",
        "after-offsets",
        "after-sink",
        "after-commit",
    ];
    let mut killed = 0;
    for batch in 0..3u64 {
        for point in points {
            let broker = Broker::start(&["orders-out:2"]);
            let dir = tempfile::tempdir().unwrap();
            let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, false);
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            assert_eq!(run.wait().0, None);
            killed += 1;
            let out = run_ok(sluice().arg("run").arg(&file).env("RUST_LOG", "info"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Killed once batch N+1's offsets were written while N was still waiting for
            // its acknowledgements: both are re-run, N first.
            let reruns: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("re-running the last batch"))
                .filter_map(|l| l.split("batch_id=").nth(1)?.split(' ').next())
                .collect();
            if point == "after-offsets" && batch > 0 {
                let (before, this) = ((batch - 1).to_string(), batch.to_string());
                assert_eq!(
                    reruns,
                    [before.as_str(), this.as_str()],
                    "{failpoint}:\n{stderr}"
                );
            }
            let mut got = read_committed(&broker.bootstrap, "orders-out", 2, 100);
            got.sort();
            got.dedup();
            assert_eq!(got, expected, "{failpoint}: a record was lost");
        }
    }
    assert_eq!(killed, 12);
}

#[test]
fn at_least_once_sink_delivers_every_row() {
    let broker = Broker::start(&["orders-out:2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, false);
    run_ok(sluice().arg("run").arg(&file));
    let expected: Vec<String> = (0..100).map(|n| format!("order-{n:03}")).collect();
    assert_eq!(
        read_committed(&broker.bootstrap, "orders-out", 2, 100),
        expected
    );
}

/// A topic written in transactions (the exactly-once sink: four batches, four commit markers)
/// is read by the Kafka source in full: a batch whose end offset falls on a marker does not
/// wait for a record that will never come. Read in two batches, so the second starts from
/// where the first left the partition's queue.
#[test]
fn a_topic_written_in_transactions_is_read_across_its_markers() {
    let broker = Broker::start(&["orders-out:2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = to_kafka_pipeline(dir.path(), &broker.bootstrap, true);
    run_ok(sluice().arg("run").arg(&file));

    let reader = tempfile::tempdir().unwrap();
    let file = kafka_pipeline(
        reader.path(),
        &broker.bootstrap,
        "maxOffsetsPerTrigger = 60",
    )
    .to_str()
    .unwrap()
    .to_owned();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("subscribe = \"events\"", "subscribe = \"orders-out\"");
    std::fs::write(&file, text).unwrap();
    let log = reader.path().join("progress.jsonl");
    run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .arg("--progress-log")
            .arg(&log),
    );
    let expected: Vec<String> = (0..100).map(|n| format!("order-{n:03}")).collect();
    assert_eq!(values(reader.path()), expected);
    assert!(progress(&log).len() >= 2, "more than one batch");
}

#[test]
fn the_seeds_kafka_pipeline_with_kcat_on_both_ends() {
    let broker = Broker::start(&["quickstart:3", "transformed:3"]);
    let b = broker.bootstrap.as_str();
    let events = [
        r#"{"city":"Seoul","domain":"shop.example.com","event":"click"}"#,
        r#"{"city":"BUSAN","domain":"news.example.com","event":"view"}"#,
        r#"{"city":"Daegu","domain":"mail.example.com"}"#,
    ];
    kcat(
        &["-P", "-b", b, "-t", "quickstart"],
        &(events.join("\n") + "\n"),
    );

    let dir = tempfile::tempdir().unwrap();
    let file = example("kafka-json-events", dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("localhost:9092", b);
    std::fs::write(&file, text).unwrap();
    run_ok(sluice().arg("run").arg(&file));

    let expected = vec![
        r#"{"lower_city":"busan","domain":"news.example.com","behavior":"view"}"#.to_owned(),
        r#"{"lower_city":"seoul","domain":"shop.example.com","behavior":"click"}"#.to_owned(),
    ];
    // kcat reads `transformed` as a read_committed consumer would.
    let mut read = kcat(
        &[
            "-C",
            "-b",
            b,
            "-t",
            "transformed",
            "-e",
            "-q",
            "-X",
            "isolation.level=read_committed",
        ],
        "",
    );
    read.sort();
    assert_eq!(read, expected);
    // The second query wrote the same rows to files (the guest also accepts Kafka's binary value).
    let mut files: Vec<String> = committed_json(&dir.path().join("out/transformed"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert_eq!(files, expected);
}

#[test]
fn a_recreated_topic_is_data_loss_unless_the_pipeline_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = Broker::start(&["events:1"]);
    first.produce("events", (0..10).map(|i| (None, format!("old-{i}"))));
    let file = kafka_pipeline(dir.path(), &first.bootstrap, "");
    assert!(
        sluice()
            .arg("run")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    );
    drop(first);
    // A new, empty cluster: the checkpoint says offset 10 was read; the partition ends at 3.
    let second = Broker::start(&["events:1"]);
    second.produce("events", (0..3).map(|i| (None, format!("new-{i}"))));
    let point_at = |extra: &str| {
        let text =
            std::fs::read_to_string(kafka_pipeline(dir.path(), &second.bootstrap, extra)).unwrap();
        std::fs::write(&file, text).unwrap();
    };
    point_at("");
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("events-0 ends at offset 3 but the query had read up to 10"),
        "{stderr}"
    );
    assert!(stderr.contains("set failOnDataLoss = false"), "{stderr}");

    point_at("failOnDataLoss = false");
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("failOnDataLoss is false, continuing"),
        "{stderr}"
    );
    let mut expected: Vec<String> = (0..10)
        .map(|i| format!("old-{i}"))
        .chain((0..3).map(|i| format!("new-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values(dir.path()), expected);
}

#[test]
fn a_pattern_subscription_picks_up_topics_created_later() {
    let broker = Broker::start(&["metrics-a:2"]);
    broker.produce("metrics-a", (0..5).map(|i| (None, format!("a-{i}"))));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(kafka_pipeline(dir.path(), &broker.bootstrap, ""))
        .unwrap()
        .replace(
            "subscribe = \"events\"",
            "subscribePattern = \"metrics-.*\"",
        );
    let file = pipeline(dir.path(), &text);
    assert!(
        sluice()
            .arg("run")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    );
    // A topic that did not exist at the first run (created by producing to it).
    broker.produce("metrics-b", (0..4).map(|i| (None, format!("b-{i}"))));
    run_ok(sluice().arg("run").arg(&file));
    let mut expected: Vec<String> = (0..5)
        .map(|i| format!("a-{i}"))
        .chain((0..4).map(|i| format!("b-{i}")))
        .collect();
    expected.sort();
    assert_eq!(
        values(dir.path()),
        expected,
        "the new topic is read from its earliest offset"
    );
}

#[test]
fn the_topic_option_overrides_the_topic_column_and_a_missing_topic_names_the_batch() {
    let broker = Broker::start(&["routed:1", "forced:1"]);
    let dir = tempfile::tempdir().unwrap();
    drop_file(
        &dir.path().join("in"),
        "a.json",
        "{\"value\":\"v1\",\"topic\":\"routed\"}\n{\"value\":\"v2\",\"topic\":\"routed\"}\n",
    );
    let text = |topic_option: &str| {
        format!(
            r#"[[query]]
name = "route"
checkpointLocation = "ckpt-{n}"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "value STRING, topic STRING"
[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
{topic_option}
"#,
            n = topic_option.len(),
            b = broker.bootstrap
        )
    };
    // The column routes rows...
    let file = pipeline(dir.path(), &text(""));
    assert!(
        sluice()
            .arg("run")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(
        read_committed(&broker.bootstrap, "routed", 1, 2),
        vec!["v1", "v2"]
    );
    // ...unless the option says otherwise.
    let file = pipeline(dir.path(), &text("topic = \"forced\""));
    assert!(
        sluice()
            .arg("run")
            .arg(&file)
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(
        read_committed(&broker.bootstrap, "forced", 1, 2),
        vec!["v1", "v2"]
    );
    assert_eq!(
        read_committed(&broker.bootstrap, "routed", 1, 2).len(),
        2,
        "nothing more went to the column's topic"
    );
    // A row with no topic at all is an error naming the row and the batch.
    drop_file(&dir.path().join("in"), "b.json", "{\"value\":\"v3\"}\n");
    let file = pipeline(dir.path(), &text(""));
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("row 0 of batch 1 has no topic"), "{stderr}");
}

#[test]
fn min_offsets_per_trigger_holds_small_backlogs_until_max_trigger_delay() {
    let broker = Broker::start(&["events:1"]);
    broker.produce("events", (0..20).map(|i| (None, format!("first-{i:02}"))));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(kafka_pipeline(
        dir.path(),
        &broker.bootstrap,
        "minOffsetsPerTrigger = 10\nmaxTriggerDelay = \"4 seconds\"",
    ))
    .unwrap()
    .replace("trigger = \"availableNow\"\n", "");
    let file = pipeline(dir.path(), &text);
    let mut run = Running::start(&file, &[], &[]);
    run.await_line("batch_id=0 input_rows=20");
    // 3 records are fewer than 10: held back until 4 s after the last batch.
    let produced = std::time::Instant::now();
    broker.produce("events", (0..3).map(|i| (None, format!("small-{i}"))));
    run.await_line("batch_id=1 input_rows=3");
    let waited = produced.elapsed();
    assert!(
        waited >= Duration::from_millis(3500),
        "the small backlog was read after {waited:?}, before maxTriggerDelay"
    );
    // 12 records reach the minimum: read at once.
    let produced = std::time::Instant::now();
    broker.produce("events", (0..12).map(|i| (None, format!("big-{i:02}"))));
    run.await_line("batch_id=2 input_rows=12");
    assert!(
        produced.elapsed() < Duration::from_millis(3500),
        "a backlog over the minimum waited {:?}",
        produced.elapsed()
    );
    run.signal(15);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

/// The issue's crash test: 100,000 records move from topic A through a Wasm transform to topic
/// B with `exactlyOnce = true`; the host is killed with SIGKILL at 20 points (four steps of each
/// of the five batches) and restarted, and a `read_committed` reader of B sees exactly the
/// 100,000 expected records each time. The input is produced by kcat, an independent client.
#[test]
fn a_hundred_thousand_records_through_wasm_exactly_once_across_twenty_kills() {
    const N: usize = 100_000;
    let input: String = (0..N)
        .map(|n| {
            format!(
                "{{\"city\":\"City{}\",\"domain\":\"d{n}\",\"event\":\"e\"}}\n",
                n % 7
            )
        })
        .collect();
    let mut expected: Vec<String> = (0..N)
        .map(|n| {
            format!(
                "{{\"lower_city\":\"city{}\",\"domain\":\"d{n}\",\"behavior\":\"e\"}}",
                n % 7
            )
        })
        .collect();
    expected.sort();
    let module = guests().join("json_events.wasm");
    let mut killed = 0;
    for batch in 0..5u64 {
        for point in [
            "before-offsets",
            "after-offsets",
            "after-sink",
            "after-commit",
        ] {
            // librdkafka's mock broker keeps at most 5 MB per partition (older message sets are
            // deleted, like retention): eight partitions keep 100,000 records well under that.
            let broker = Broker::start(&["a:8", "b:8"]);
            let b = broker.bootstrap.as_str();
            kcat(
                &["-P", "-b", b, "-t", "a", "-X", "enable.idempotence=true"],
                &input,
            );
            let dir = tempfile::tempdir().unwrap();
            let file = pipeline(
                dir.path(),
                &format!(
                    r#"[[query]]
name = "a-to-b"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
subscribe = "a"
startingOffsets = "earliest"
maxOffsetsPerTrigger = 20000

[[query.transform]]
name = "parse-lower"
module = "{module}"

[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
topic = "b"
exactlyOnce = true
"#,
                    module = module.display()
                ),
            );
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let (code, _) = run.wait();
            assert_eq!(code, None, "{failpoint}: the host was killed");
            killed += 1;
            let out = sluice().arg("run").arg(&file).output().unwrap();
            assert!(
                out.status.success(),
                "{failpoint}: restart failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let seen = read_committed(b, "b", 8, N);
            assert!(
                seen == expected,
                "{failpoint}: a read_committed reader of b saw {} records ({} distinct), expected {N}",
                seen.len(),
                seen.iter().collect::<std::collections::BTreeSet<_>>().len()
            );
        }
    }
    assert_eq!(killed, 20);
}

/// `startingTimestamp` and `startingOffsetsByTimestamp` look offsets up with the broker's
/// ListOffsets-by-timestamp request and take precedence over `startingOffsets`, as in Spark.
/// The mock broker answers every timestamp lookup with "no such offset" (librdkafka's mock
/// does not index timestamps), so this drives the paths that answer leads to: the default
/// strategy stops the query naming the partition, `latest` starts at the end of the log, and
/// a partition missing from the per-partition JSON is named.
#[test]
fn starting_timestamps_take_precedence_and_follow_their_strategy() {
    let broker = Broker::start(&["events:2"]);
    broker.produce("events", (0..5).map(|i| (None, format!("old-{i}"))));
    let run = |dir: &std::path::Path, extra: &str| {
        let file = kafka_pipeline(dir, &broker.bootstrap, extra);
        let out = sluice().arg("run").arg(&file).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(dir.path(), "startingTimestamp = \"4102444800000\"");
    assert!(!ok, "no offset at that timestamp is an error by default");
    assert!(
        stderr.contains("no record of events-0 has a timestamp at or after 4102444800000")
            && stderr.contains("startingOffsetsByTimestampStrategy"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(
        dir.path(),
        "startingOffsetsByTimestamp = '{\"events\":{\"0\":4102444800000}}'\nstartingOffsetsByTimestampStrategy = \"latest\"",
    );
    assert!(!ok);
    assert!(
        stderr.contains("startingOffsetsByTimestamp has no timestamp for events-1"),
        "{stderr}"
    );

    // startingOffsets = "earliest" is in the pipeline too; the timestamp wins, and with the
    // `latest` strategy the query starts at the end: the five old records are not read ...
    let dir = tempfile::tempdir().unwrap();
    let extra = "startingOffsetsByTimestamp = '{\"events\":{\"0\":4102444800000,\"1\":4102444800000}}'\nstartingOffsetsByTimestampStrategy = \"latest\"";
    let (ok, stderr) = run(dir.path(), extra);
    assert!(ok, "{stderr}");
    assert_eq!(values(dir.path()), Vec::<String>::new());
    // ... and the records produced after it started are.
    broker.produce("events", (0..3).map(|i| (None, format!("new-{i}"))));
    let (ok, stderr) = run(dir.path(), extra);
    assert!(ok, "{stderr}");
    assert_eq!(values(dir.path()), vec!["new-0", "new-1", "new-2"]);
}

/// The seeds' order analytics (`examples/kafka-order-analytics.toml`): orders produced by kcat
/// into `orders`, parsed by the parse-orders Wasm transform, 5-minute revenue per category in
/// update mode with a 5-minute watermark on `order_time`. The test runs the example as shipped
/// except for the broker address, `startingOffsets = "earliest"` (the orders are produced
/// before the query starts) and `availableNow` (so each run ends when it has read them).
#[test]
fn the_seeds_order_analytics_pipeline_sums_revenue_per_category_and_window() {
    let broker = Broker::start(&["orders:3"]);
    let b = broker.bootstrap.as_str();
    let order = |id: u32, amount: f64, category: &str, time: &str| {
        format!(
            "{{\"order_id\":\"o{id}\",\"user_id\":\"u{}\",\"amount\":{amount},\"category\":\"{category}\",\"order_time\":\"2026-11-21T{time}Z\"}}\n",
            id % 3
        )
    };
    let first: String = [
        order(1, 10.0, "food", "12:01:00"),
        order(2, 2.5, "food", "12:04:59"),
        order(3, 100.0, "books", "12:03:00"),
        order(4, 7.0, "food", "12:06:00"),
        order(5, 40.0, "books", "12:21:00"),
    ]
    .concat();
    kcat(&["-P", "-b", b, "-t", "orders"], &first);

    let dir = tempfile::tempdir().unwrap();
    let file = example("kafka-order-analytics", dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("localhost:9092", b)
        .replace(
            r#"startingOffsets = "latest""#,
            r#"startingOffsets = "earliest""#,
        )
        .replace(
            r#"trigger = { processingTime = "10 seconds" }"#,
            r#"trigger = "availableNow""#,
        );
    std::fs::write(&file, text).unwrap();
    let run = || {
        let out = sluice().arg("run").arg(&file).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // Spark's order: the window, then the group columns, then the aggregates.
    let row = |category: &str, window: &str, revenue: &str| {
        vec![window.to_owned(), category.to_owned(), revenue.to_owned()]
    };
    let w = |from: &str, to: &str| {
        format!("{{start: 2026-11-21T{from}:00Z, end: 2026-11-21T{to}:00Z}}")
    };
    let stdout = run();
    let mut table = console_table(&stdout, 0);
    table.sort();
    let mut expected = vec![
        row("books", &w("12:00", "12:05"), "100.0"),
        row("books", &w("12:20", "12:25"), "40.0"),
        row("food", &w("12:00", "12:05"), "12.5"),
        row("food", &w("12:05", "12:10"), "7.0"),
    ];
    expected.sort();
    assert_eq!(table, expected, "{stdout}");
    // The watermark moved to 12:16 at the end of batch 0, so a no-data batch ran; in update
    // mode it emits nothing (nothing changed).
    assert!(stdout.contains("Batch: 1"), "{stdout}");
    assert_eq!(console_table(&stdout, 1), Vec::<Vec<String>>::new());

    // The watermark is now 12:16 (12:21 minus 5 minutes): an order for 12:02 is too late and
    // dropped; one for 12:22 updates its window, and update mode prints only that group.
    let second = [
        order(6, 999.0, "food", "12:02:00"),
        order(7, 1.5, "books", "12:22:00"),
    ]
    .concat();
    kcat(&["-P", "-b", b, "-t", "orders"], &second);
    let stdout = run();
    assert_eq!(
        console_table(&stdout, 2),
        vec![row("books", &w("12:20", "12:25"), "41.5")],
        "{stdout}"
    );
}

/// A loopback address where nothing listens: a port the OS just handed out, then closed.
fn closed_port_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

#[test]
fn an_unreachable_broker_is_named_instead_of_a_transaction_time_out() {
    // The exactly-once sink with the default connectTimeout (10 s): the error names the
    // servers and the cause, not "initialising transactions ... Timed out" after a minute.
    let dir = tempfile::tempdir().unwrap();
    let address = closed_port_address();
    let file = to_kafka_pipeline(dir.path(), &address, true);
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no Kafka broker answered at bootstrap servers '{address}' within 10 s"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("check kafka.bootstrap.servers"), "{stderr}");
    assert!(!stderr.contains("initialising transactions"), "{stderr}");

    // The source, with its own bound.
    let dir = tempfile::tempdir().unwrap();
    let address = closed_port_address();
    let file = kafka_pipeline(dir.path(), &address, "connectTimeout = \"1 second\"");
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "KafkaSource[Subscribe[events]]: no Kafka broker answered at bootstrap servers '{address}' within 1 s"
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing may be written");
}

#[test]
fn the_seeds_attribution_joins_two_topics_produced_by_kcat() {
    let broker = Broker::start(&["impressions:1", "clicks:1"]);
    let b = broker.bootstrap.as_str();
    let at = |m: i64| format!("2026-11-21T{:02}:{:02}:00Z", 12 + m / 60, m % 60);
    const NEXT_DAY: &str = "2026-11-22T12:00:00Z";
    // (ad, minute): ads 0..20 shown a minute apart; even ads clicked 2·ad minutes later
    // (within the hour), ad 3 clicked after 90 minutes (too late), ad 99 clicked but never
    // shown. Then one record per topic a day on, to move the watermark past everything.
    let shown: Vec<(i64, i64)> = (0..20).map(|ad| (ad, ad)).collect();
    let mut clicked: Vec<(i64, i64)> = (0..20)
        .filter(|ad| ad % 2 == 0)
        .map(|ad| (ad, ad + 2 * ad))
        .collect();
    clicked.push((3, 3 + 90));
    clicked.push((99, 30));
    let mut imp: String = shown
        .iter()
        .map(|(ad, m)| {
            format!(
                "{{\"ad_id\":{ad},\"campaign\":\"c{}\",\"impression_time\":\"{}\"}}\n",
                ad % 3,
                at(*m)
            )
        })
        .collect();
    imp.push_str(&format!(
        "{{\"ad_id\":1000,\"campaign\":\"flush\",\"impression_time\":\"{NEXT_DAY}\"}}\n"
    ));
    let mut clk: String = clicked
        .iter()
        .map(|(ad, m)| format!("{{\"ad_id\":{ad},\"click_time\":\"{}\"}}\n", at(*m)))
        .collect();
    clk.push_str(&format!(
        "{{\"ad_id\":1001,\"click_time\":\"{NEXT_DAY}\"}}\n"
    ));
    kcat(&["-P", "-b", b, "-t", "impressions"], &imp);
    kcat(&["-P", "-b", b, "-t", "clicks"], &clk);

    let dir = tempfile::tempdir().unwrap();
    let file = example("kafka-attribution", dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("localhost:9092", b);
    std::fs::write(&file, text).unwrap();
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));

    // Independently: every impression with each click on its ad within [0, 60] minutes, or
    // alone when there is none.
    let mut expected: Vec<(i64, String, Option<String>)> = Vec::new();
    for (ad, m) in &shown {
        let hits: Vec<_> = clicked
            .iter()
            .filter(|(cad, cm)| cad == ad && (0..=60).contains(&(cm - m)))
            .collect();
        if hits.is_empty() {
            expected.push((*ad, at(*m), None));
        }
        for (_, cm) in hits {
            expected.push((*ad, at(*m), Some(at(*cm))));
        }
    }
    expected.sort();
    let normal = |t: &str| t.replace(".000", "").replace("+00:00", "Z");
    let mut got: Vec<(i64, String, Option<String>)> =
        committed_json(&dir.path().join("out/attribution"))
            .iter()
            .map(|r| {
                assert_eq!(
                    r["campaign"].as_str().unwrap(),
                    format!("c{}", r["ad_id"].as_i64().unwrap() % 3)
                );
                (
                    r["ad_id"].as_i64().unwrap(),
                    normal(r["impression_time"].as_str().unwrap()),
                    r["click_time"].as_str().map(normal),
                )
            })
            .collect();
    got.sort();
    assert!(expected.iter().any(|r| r.2.is_none()) && expected.iter().any(|r| r.2.is_some()));
    assert_eq!(got, expected);
}

/// Producers compress by default in many shops: records kcat wrote with each of Kafka's
/// codecs are read, and the sink compresses with `kafka.compression.type` (kcat decodes it).
#[test]
fn topics_compressed_with_every_codec_are_read_and_the_sink_compresses() {
    let broker = Broker::start(&["events:1", "orders-out:1"]);
    let b = broker.bootstrap.as_str();
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        kcat(
            &["-P", "-b", b, "-t", "events", "-z", codec],
            &format!("{codec}-1\n{codec}-2\n"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = kafka_pipeline(dir.path(), b, "");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected: Vec<String> = codecs
        .iter()
        .flat_map(|c| [format!("{c}-1"), format!("{c}-2")])
        .collect();
    expected.sort();
    assert_eq!(values(dir.path()), expected);

    for codec in codecs {
        let dir = tempfile::tempdir().unwrap();
        let file = to_kafka_pipeline(dir.path(), b, true);
        let text = std::fs::read_to_string(&file).unwrap().replace(
            "topic = \"orders-out\"",
            &format!("topic = \"orders-out\"\n\"kafka.compression.type\" = \"{codec}\""),
        );
        std::fs::write(&file, text).unwrap();
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{codec}: {stderr}");
    }
    let read = kcat(
        &[
            "-C",
            "-b",
            b,
            "-t",
            "orders-out",
            "-e",
            "-q",
            "-X",
            "isolation.level=read_committed",
        ],
        "",
    );
    // Four runs of the same 100 rows, one per codec, each read back.
    assert_eq!(read.len(), 400, "{:?}", &read[..read.len().min(5)]);
    assert!(read.iter().all(|v| v.starts_with("order-")));
}

#[test]
fn a_broker_behind_tls_is_read_with_its_ca_and_refused_without_it() {
    let certs = tempfile::tempdir().unwrap();
    common::tls::certificates(certs.path());
    let port = free_port();
    let broker = Broker::start_advertised(&["secure:2"], port);
    let _proxy = TlsProxy::start(certs.path(), port, &broker.bootstrap);
    let tls_bootstrap = format!("127.0.0.1:{port}");
    let ca = certs.path().join("ca.crt");
    let ca_option = format!("ssl.ca.location={}", ca.display());
    // An independent client writes over TLS.
    let lines: String = (0..200).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    kcat(
        &[
            "-b",
            &tls_bootstrap,
            "-X",
            "security.protocol=SSL",
            "-X",
            &ca_option,
            "-t",
            "secure",
            "-P",
        ],
        &lines,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with = |tls: &str| {
        pipeline(
            d,
            &format!(
                r#"[[query]]
name = "secure"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{tls_bootstrap}"
"kafka.security.protocol" = "SSL"
{tls}
subscribe = "secure"
startingOffsets = "earliest"
connectTimeout = "5 seconds"
[query.sink]
format = "json"
path = "out"
"#
            ),
        )
    };
    // Without the CA (the system's CAs are tried) the broker's certificate is not trusted: the
    // start fails saying so.
    let out = sluice().arg("run").arg(with("")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broker certificate could not be verified"),
        "{stderr}"
    );
    // With it every record arrives.
    let file = with(&format!("\"kafka.ssl.ca.location\" = \"{}\"", ca.display()));
    run_ok(sluice().arg("run").arg(&file));
    let mut want: Vec<String> = (0..200).map(|i| format!("{{\"id\":{i}}}")).collect();
    want.sort();
    assert_eq!(values(d), want);
}

#[test]
fn seed_004_dead_letters_reach_a_kafka_topic_with_the_error_and_their_source_position() {
    let broker = Broker::start(&["orders:1", "orders-dlq:1"]);
    let b = broker.bootstrap.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = example("kafka-dead-letters", dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("localhost:9092", b);
    std::fs::write(&file, text).unwrap();
    // A batch that parses, then one with a broken record: its batch goes to the dead letters.
    kcat(
        &["-P", "-b", b, "-t", "orders"],
        "{\"order_id\":1,\"product\":\"kimchi\",\"amount\":12000}\n{\"order_id\":2,\"product\":\"cable\",\"amount\":9000}\n",
    );
    run_ok(sluice().arg("run").arg(&file));
    let broken = "{\"order_id\":3,\"product\":\"tteok\",\"amount\":";
    let good = "{\"order_id\":4,\"product\":\"robot\",\"amount\":800}";
    kcat(
        &["-P", "-b", b, "-t", "orders"],
        &format!("{broken}\n{good}\n"),
    );
    let out = run_ok(sluice().arg("run").arg(&file).env("RUST_LOG", "info"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sending the rows of a failed transform call to the dead-letter output"),
        "{stderr}"
    );
    let parsed: Vec<u64> = sorted_ids(
        &committed_json(&dir.path().join("out/orders-parsed"))
            .into_iter()
            .map(|r| serde_json::json!({ "id": r["order_id"] }))
            .collect::<Vec<_>>(),
    );
    assert_eq!(parsed, [1, 2]);
    // kcat reads the dead letters: the records as they were produced, with their headers.
    let dead = kcat(
        &[
            "-C",
            "-b",
            b,
            "-t",
            "orders-dlq",
            "-e",
            "-q",
            "-f",
            "%s\t%h\n",
        ],
        "",
    );
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (line, (value, offset)) in dead.iter().zip([(broken, 2), (good, 3)]) {
        let (v, headers) = line.split_once('\t').unwrap();
        assert_eq!(v, value);
        assert!(
            headers.contains("sluice.error=")
                && headers.contains("step 'parse'")
                && headers.contains("sluice.source.topic=orders")
                && headers.contains("sluice.source.partition=0")
                && headers.contains(&format!("sluice.source.offset={offset}")),
            "{headers}"
        );
    }
}
