//! Kill -9 at every step of the batch protocol, restart, and check that the committed output
//! is exactly a clean run's: no row lost, none duplicated.
//!
//! The process is stopped at exact places with failpoints (see `sluice::failpoint`): it
//! announces the point on stderr and parks; the test then sends a real SIGKILL.

mod common;

use std::path::{Path, PathBuf};

use common::attribution::*;
use common::*;

const FILES: u64 = 6;
const ROWS_PER_FILE: u64 = 50;

/// Writes the input files, oldest first, with distinct modification times (which fix the
/// order files are picked in).
fn write_inputs(d: &Path, file_text: impl Fn(u64) -> String) {
    for i in 0..FILES {
        let f = drop_file(&d.join("in"), &format!("f{i}.json"), file_text(i));
        set_mtime(&f, 100 - i);
    }
}

/// A stateless copy: json files to a partitioned json file sink.
fn setup_copy(d: &Path) -> PathBuf {
    write_inputs(d, |i| {
        event_lines(i * ROWS_PER_FILE..(i + 1) * ROWS_PER_FILE)
    });
    pipeline(
        d,
        r#"[[query]]
name = "copy"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.sink]
format = "json"
path = "out"
partitionBy = ["city"]
"#,
    )
}

/// A windowed aggregation: 5-minute revenue per category, 2-minute watermark, append, some
/// rows a minute late, so windows close (and state is evicted) batch after batch.
fn setup_windowed(d: &Path) -> PathBuf {
    write_inputs(d, |i| {
        (0..ROWS_PER_FILE)
            .map(|j| {
                let on_time = i * 300 + j * 6;
                let secs = if j % 10 == 0 { on_time.saturating_sub(60) } else { on_time };
                let category = ["food", "tech", "toys", "books"][(j % 4) as usize];
                format!(
                    "{{\"order_time\":\"2024-05-01T12:{:02}:{:02}Z\",\"category\":\"{category}\",\"amount\":{}}}\n",
                    secs / 60,
                    secs % 60,
                    i * 1000 + j
                )
            })
            .collect()
    });
    pipeline(
        d,
        r#"[[query]]
name = "revenue"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "append"
minBatchesToRetain = 2

[query.source]
format = "json"
path = "in/*.json"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = { column = "order_time", delay = "2 minutes" }

[query.aggregate]
groupBy = ["category"]
window = { column = "order_time", duration = "5 minutes" }
aggs = [{ fn = "sum", column = "amount", as = "revenue" }, { fn = "count", as = "orders" }, { fn = "max", column = "order_time", as = "last_order" }]

[query.sink]
format = "json"
path = "out"
partitionBy = ["category"]
"#,
    )
}

/// Every committed row, as sorted JSON text (order across files is not part of the contract).
fn committed_rows(d: &Path) -> Vec<String> {
    let mut rows: Vec<String> = committed_json(&d.join("out"))
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    rows.sort();
    rows
}

fn clean_run(setup: fn(&Path) -> PathBuf) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = setup(dir.path());
    run_ok(sluice().arg("run").arg(&file));
    committed_rows(dir.path())
}

/// Kills a run at every failpoint of the first `batches` batches, restarts it, and checks the
/// output against a clean run's.
fn kill_everywhere(setup: fn(&Path) -> PathBuf, expected: &[String], batches: u64) -> u64 {
    let points = [
        "before-offsets",
        "after-offsets",
        "mid-sink",
        "after-sink",
        "after-commit",
    ];
    let mut killed_at = 0;
    for batch in 0..batches {
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let file = setup(d);
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            let reached = format!("sluice-failpoint: {point} batch {batch}");
            // mid-sink is only reached by batches that write at least one file.
            let (code, log) = loop {
                let done = run.try_await_line(&reached);
                if done {
                    run.signal(9);
                    break run.wait();
                }
                if run.has_exited() {
                    break run.wait();
                }
            };
            if code.is_some() {
                assert_eq!(point, "mid-sink", "{failpoint}: not reached:\n{log}");
                continue;
            }
            killed_at += 1;

            // What a reader sees right after the crash is part of the clean output.
            let partial = committed_rows(d);
            assert!(
                partial.iter().all(|r| expected.binary_search(r).is_ok()),
                "{failpoint}: a row that a clean run never writes"
            );

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
            if matches!(point, "after-offsets" | "mid-sink" | "after-sink") {
                assert!(
                    stderr.contains("re-running the last batch"),
                    "{failpoint}: batch not re-run:\n{stderr}"
                );
            }
            assert_eq!(
                committed_rows(d),
                expected,
                "{failpoint}: output differs from a clean run"
            );
        }
    }
    assert!(killed_at >= 20, "only {killed_at} kill points were reached");
    killed_at
}

#[test]
fn kill_minus_nine_anywhere_then_restart_gives_the_clean_output() {
    let expected = clean_run(setup_copy);
    assert_eq!(expected.len() as u64, FILES * ROWS_PER_FILE);
    kill_everywhere(setup_copy, &expected, 5);
}

#[test]
fn a_windowed_aggregation_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_windowed);
    // Six files of five minutes each: the windows 12:00 .. 12:20 close as the watermark
    // passes them (4 categories each); 12:25 stays open (no later data), as in Spark.
    assert_eq!(expected.len(), 5 * 4, "{expected:#?}");
    kill_everywhere(setup_windowed, &expected, 6);
}

/// A stream–stream left outer join over files (both inputs one file a batch), buffering
/// both sides in state and emitting unmatched impressions once the watermark passes them.
fn setup_stream_join(d: &Path) -> PathBuf {
    for i in 0..FILES as i64 {
        // Impressions of ads 10i..10i+9 at minute 20i+j; clicks on the even ones 3j minutes
        // later, and on ad 10i+1 two hours later (too late to match).
        let imp: String = (0..10)
            .map(|j| {
                format!(
                    "{{\"ad_id\":{},\"impression_time\":\"2024-05-01T{}\"}}\n",
                    10 * i + j,
                    hm(20 * i + j)
                )
            })
            .collect();
        let mut clk: String = (0..10)
            .filter(|j| j % 2 == 0)
            .map(|j| {
                format!(
                    "{{\"ad_id\":{},\"click_time\":\"2024-05-01T{}\"}}\n",
                    10 * i + j,
                    hm(20 * i + 4 * j)
                )
            })
            .collect();
        clk.push_str(&format!(
            "{{\"ad_id\":{},\"click_time\":\"2024-05-01T{}\"}}\n",
            10 * i + 1,
            hm(20 * i + 121)
        ));
        let f = drop_file(&d.join("imp"), &format!("{i}.json"), &imp);
        set_mtime(&f, 100 - i as u64);
        let f = drop_file(&d.join("clk"), &format!("{i}.json"), &clk);
        set_mtime(&f, 100 - i as u64);
    }
    pipeline(
        d,
        r#"[[query]]
name = "attribution"
checkpointLocation = "ckpt"
trigger = "availableNow"
minBatchesToRetain = 2

[query.inputs.impressions]
format = "json"
path = "imp/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "5 minutes" }

[query.inputs.clicks]
format = "json"
path = "clk/*.json"
schema = "ad_id BIGINT, click_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "click_time", delay = "5 minutes" }

[query.join]
left = "impressions"
right = "clicks"
type = "leftOuter"
on = ["ad_id"]
within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "30 minutes" }

[query.sink]
format = "json"
path = "out"
"#,
    )
}

/// `HH:MM:00Z` of minute `m` after 12:00.
fn hm(m: i64) -> String {
    format!("{:02}:{:02}:00Z", 12 + m / 60, m % 60)
}

/// A stream–static left outer join: events enriched with a country from a csv table.
fn setup_static_join(d: &Path) -> PathBuf {
    write_inputs(d, |i| {
        event_lines(i * ROWS_PER_FILE..(i + 1) * ROWS_PER_FILE)
    });
    drop_file(
        &d.join("cities"),
        "cities.csv",
        "city,country\nSeoul,KR\nBusan,KR\nDaegu,KR\n",
    );
    pipeline(
        d,
        r#"[[query]]
name = "enrich"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in/*.json"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.join]
type = "leftOuter"
on = ["city"]

[query.join.table]
format = "csv"
path = "cities"
header = true
schema = "city STRING, country STRING"
mode = "FAILFAST"

[query.sink]
format = "json"
path = "out"
"#,
    )
}

#[test]
fn a_stream_stream_outer_join_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_stream_join);
    // 60 impressions: 30 clicked within the half hour (one row each); the other 30 are
    // emitted unmatched once the watermark passes them — except those the last batches'
    // watermark has not passed yet, which a clean run does not emit either.
    let unmatched = expected
        .iter()
        .filter(|r| !r.contains("click_time"))
        .count();
    let matched = expected.len() - unmatched;
    assert_eq!(matched, 30, "{expected:#?}");
    assert!(unmatched >= 20, "{unmatched} unmatched rows emitted");
    kill_everywhere(setup_stream_join, &expected, 5);
}

#[test]
fn a_stream_static_join_killed_anywhere_gives_the_clean_output() {
    let expected = clean_run(setup_static_join);
    assert_eq!(expected.len() as u64, FILES * ROWS_PER_FILE);
    assert!(expected.iter().any(|r| r.contains("\"country\":\"KR\"")));
    // Incheon is not in the table: left outer keeps its rows, without a country.
    assert!(
        expected
            .iter()
            .any(|r| r.contains("Incheon") && !r.contains("country"))
    );
    kill_everywhere(setup_static_join, &expected, 5);
}

/// Sessionization in a keyed processor (state and event-time timers in Wasm): 8 users,
/// events every 4.8 minutes with pauses of 14.4, a 10-minute gap, so sessions close by timer
/// batch after batch — and timers registered before a kill fire after the restart.
fn setup_sessions(d: &Path) -> PathBuf {
    write_inputs(d, |i| {
        (0..ROWS_PER_FILE)
            .filter(|j| (j / 8 + j % 8) % 4 < 2)
            .map(|j| {
                let secs = i * 1800 + j * 36;
                format!(
                    "{{\"user_id\":\"u{}\",\"ts\":\"2024-05-01T{:02}:{:02}:{:02}Z\"}}\n",
                    j % 8,
                    12 + secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )
            })
            .collect()
    });
    pipeline(
        d,
        &format!(
            r#"[[query]]
name = "sessions"
checkpointLocation = "ckpt"
trigger = "availableNow"
minBatchesToRetain = 2

[query.source]
format = "json"
path = "in/*.json"
schema = "user_id STRING, ts TIMESTAMP"
maxFilesPerTrigger = 1
watermark = {{ column = "ts", delay = "5 minutes" }}

[query.processor]
module = "{}"
key = ["user_id"]
timeMode = "eventTime"
config = {{ gapMs = 600000 }}

[query.sink]
format = "json"
path = "out"
"#,
            guests().join("sessionize.wasm").display()
        ),
    )
}

#[test]
fn a_keyed_processor_with_timers_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_sessions);
    assert!(expected.len() >= 30, "{expected:#?}");
    kill_everywhere(setup_sessions, &expected, 6);
}

/// `setup` with `parallelism = 4` (on this 2-core machine: more workers than cores), so a
/// batch's files are decoded, and its output files written, by several workers at once.
fn with_parallelism_4(setup: fn(&Path) -> PathBuf, d: &Path) -> PathBuf {
    let file = setup(d);
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replacen(
        "trigger = \"availableNow\"",
        "trigger = \"availableNow\"\nparallelism = 4",
        1,
    );
    assert!(text.contains("parallelism = 4"));
    std::fs::write(&file, text).unwrap();
    file
}

fn setup_copy_parallel(d: &Path) -> PathBuf {
    // Each batch's four city directories are written by four workers at once.
    with_parallelism_4(setup_copy, d)
}

fn setup_windowed_parallel(d: &Path) -> PathBuf {
    with_parallelism_4(setup_windowed, d)
}

#[test]
fn a_parallel_copy_killed_anywhere_gives_the_clean_output() {
    let expected = clean_run(setup_copy_parallel);
    assert_eq!(
        expected,
        clean_run(setup_copy),
        "parallelism changes no row"
    );
    kill_everywhere(setup_copy_parallel, &expected, 5);
}

#[test]
fn a_parallel_windowed_aggregation_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_windowed_parallel);
    assert_eq!(
        expected,
        clean_run(setup_windowed),
        "parallelism changes no row"
    );
    kill_everywhere(setup_windowed_parallel, &expected, 5);
}

fn setup_windowed_8_partitions(d: &Path) -> PathBuf {
    let file = with_parallelism_4(setup_windowed, d);
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "parallelism = 4",
        "parallelism = 4\nshufflePartitions = 8",
        1,
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn an_aggregation_in_eight_state_partitions_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_windowed_8_partitions);
    assert_eq!(
        expected,
        clean_run(setup_windowed),
        "partitioning changes no row"
    );
    kill_everywhere(setup_windowed_8_partitions, &expected, 5);

    // Each partition keeps its own state files; the count is fixed for the checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let file = setup_windowed_8_partitions(dir.path());
    run_ok(sluice().arg("run").arg(&file));
    let parts = std::fs::read_dir(dir.path().join("ckpt/state/aggregate"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(parts, 8);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("shufflePartitions = 8", "shufflePartitions = 4");
    std::fs::write(&file, &text).unwrap();
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the pipeline sets shufflePartitions = 4, but this checkpoint's state is split into 8 partitions"),
        "{stderr}"
    );
    // Leaving it out takes the checkpoint's count.
    let text = text.replace("shufflePartitions = 4\n", "");
    std::fs::write(&file, text).unwrap();
    run_ok(sluice().arg("run").arg(&file));
    // The state reads back across the partitions.
    let out = run_ok(
        sluice()
            .args(["state", "show"])
            .arg(dir.path().join("ckpt")),
    );
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 4);
}

/// The windowed aggregation by a sliding window alone (no group key): each of four state
/// partitions sees every row and keeps the windows that hash to it.
fn setup_by_window_alone(d: &Path, partitions: u32) -> PathBuf {
    let file = setup_windowed(d);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("groupBy = [\"category\"]\n", "")
        .replace(
            "duration = \"5 minutes\" }",
            "duration = \"5 minutes\", slide = \"1 minute\" }",
        )
        .replace("partitionBy = [\"category\"]\n", "")
        .replacen(
            "trigger = \"availableNow\"",
            &format!("trigger = \"availableNow\"\nshufflePartitions = {partitions}"),
            1,
        );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn an_aggregation_by_window_alone_in_four_partitions_killed_anywhere_gives_the_clean_output() {
    let expected = clean_run(|d| setup_by_window_alone(d, 4));
    assert_eq!(expected, clean_run(|d| setup_by_window_alone(d, 1)));
    assert!(expected.len() >= 20, "{expected:#?}");
    kill_everywhere(|d| setup_by_window_alone(d, 4), &expected, 5);
}

#[test]
fn a_stream_stream_join_in_four_state_partitions_killed_anywhere_gives_the_clean_output() {
    fn setup(d: &Path) -> PathBuf {
        let file = setup_stream_join(d);
        let text = std::fs::read_to_string(&file).unwrap().replacen(
            "trigger = \"availableNow\"",
            "trigger = \"availableNow\"\nparallelism = 4\nshufflePartitions = 4",
            1,
        );
        std::fs::write(&file, text).unwrap();
        file
    }
    let expected = clean_run(setup);
    assert_eq!(
        expected,
        clean_run(setup_stream_join),
        "partitioning changes no row"
    );
    kill_everywhere(setup, &expected, 5);
    let dir = tempfile::tempdir().unwrap();
    run_ok(sluice().arg("run").arg(setup(dir.path())));
    let parts = std::fs::read_dir(dir.path().join("ckpt/state/join"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(parts, 4);
}

/// Two joins in one plan (views): two impression inputs unioned, joined with the clicks
/// (stream–stream, left outer), each row then enriched from a parquet table.
fn setup_two_joins(d: &Path) -> PathBuf {
    write_split_impressions(d);
    write_ads(&d.join("ads"));
    pipeline(d, UNION_JOIN_ENRICH)
}

/// A windowed aggregation (in a view) whose windows are joined with a parquet table.
fn setup_aggregate_join(d: &Path) -> PathBuf {
    write_attribution(d);
    write_ads(&d.join("ads"));
    pipeline(d, AGGREGATE_ENRICH)
}

fn setup_two_joins_parallel(d: &Path) -> PathBuf {
    with_parallelism_4(setup_two_joins, d)
}

fn setup_aggregate_join_parallel(d: &Path) -> PathBuf {
    with_parallelism_4(setup_aggregate_join, d)
}

#[test]
fn a_plan_with_two_joins_killed_anywhere_gives_the_clean_output() {
    let expected = clean_run(setup_two_joins);
    assert!(expected.len() >= 40, "{}", expected.len());
    let killed = kill_everywhere(setup_two_joins, &expected, 6);
    assert!(killed >= 25, "only {killed} kill points were reached");
}

#[test]
fn a_plan_with_two_joins_at_parallelism_4_killed_anywhere_gives_the_clean_output() {
    let expected = clean_run(setup_two_joins_parallel);
    assert_eq!(
        expected,
        clean_run(setup_two_joins),
        "parallelism changes no row"
    );
    let killed = kill_everywhere(setup_two_joins_parallel, &expected, 6);
    assert!(killed >= 25, "only {killed} kill points were reached");
}

#[test]
fn an_aggregation_joined_with_a_table_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_aggregate_join);
    assert!(expected.len() >= 40, "{}", expected.len());
    let killed = kill_everywhere(setup_aggregate_join, &expected, 6);
    assert!(killed >= 25, "only {killed} kill points were reached");
}

#[test]
fn an_aggregation_joined_with_a_table_at_parallelism_4_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_aggregate_join_parallel);
    assert_eq!(
        expected,
        clean_run(setup_aggregate_join),
        "parallelism changes no row"
    );
    let killed = kill_everywhere(setup_aggregate_join_parallel, &expected, 6);
    assert!(killed >= 25, "only {killed} kill points were reached");
}

/// The attribution in SQL: impressions left-joined with their clicks within the hour,
/// joined with the ads table, counted per campaign and 30-minute window — two joins and an
/// aggregation planned from one statement.
fn setup_sql_join_aggregate(d: &Path) -> PathBuf {
    write_attribution(d);
    write_ads(&d.join("ads"));
    pipeline(
        d,
        r#"[[query]]
name = "campaigns"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "append"
minBatchesToRetain = 2
sql = """
SELECT window.start AS window_start, a.campaign, count(*) AS impressions,
       count(c.click_time) AS clicks
FROM impressions i
LEFT OUTER JOIN clicks c
  ON c.ad_id = i.ad_id
  AND c.click_time BETWEEN i.impression_time AND i.impression_time + INTERVAL 1 HOUR
JOIN ads a ON i.ad_id = a.id
GROUP BY window(i.impression_time, '30 minutes'), a.campaign
"""

[query.inputs.impressions]
format = "json"
path = "imp/*.json"
schema = "ad_id BIGINT, impression_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "impression_time", delay = "10 minutes" }

[query.inputs.clicks]
format = "json"
path = "clk/*.json"
schema = "ad_id BIGINT, click_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = { column = "click_time", delay = "10 minutes" }

[query.tables.ads]
format = "parquet"
path = "ads"

[query.sink]
format = "json"
path = "out"
"#,
    )
}

#[test]
fn a_sql_query_with_joins_and_an_aggregation_killed_anywhere_restarts_from_its_state() {
    let expected = clean_run(setup_sql_join_aggregate);
    // By brute force: the attribution's rows of ads in the table, per 30-minute window of
    // the impression and campaign (impressions, clicks).
    let mut counts: std::collections::BTreeMap<(i64, String), (u64, u64)> = Default::default();
    for (ad, it, click) in expected_attribution() {
        if ad >= 40 {
            continue;
        }
        let e = counts
            .entry((it - it.rem_euclid(30), campaign(ad).unwrap()))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(click.is_some());
    }
    let mut got: std::collections::BTreeMap<(i64, String), (u64, u64)> = Default::default();
    for r in &expected {
        let r: serde_json::Value = serde_json::from_str(r).unwrap();
        let key = (
            minutes(r["window_start"].as_str().unwrap()),
            r["campaign"].as_str().unwrap().to_owned(),
        );
        let v = (
            r["impressions"].as_u64().unwrap(),
            r["clicks"].as_u64().unwrap(),
        );
        assert!(got.insert(key, v).is_none(), "{r} emitted twice");
    }
    assert_eq!(got, counts);
    // Batches that emit no window write no file, so their mid-sink point is never reached.
    let killed = kill_everywhere(setup_sql_join_aggregate, &expected, 6);
    assert!(killed >= 24, "only {killed} kill points were reached");
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The committed rows of each query of the fixture's pipeline, sorted.
fn fixture_output(d: &Path) -> Vec<Vec<String>> {
    ["bids", "sellers"]
        .iter()
        .map(|q| {
            let mut rows: Vec<String> = committed_json(&d.join("out").join(q))
                .into_iter()
                .map(|r| r.to_string())
                .collect();
            rows.sort();
            rows
        })
        .collect()
}

#[test]
fn a_checkpoint_written_before_the_plan_of_operators_restores_into_it() {
    // tests/fixtures/checkpoint-before-plan: checkpoints and output of commit c954f35's
    // binary (a dedup → aggregation over 2 state partitions; a stream–stream outer join →
    // aggregation) after 10,000 events. Today's binary carries them on to 20,000 events.
    let fixture = repo().join("tests/fixtures/checkpoint-before-plan");
    let resumed = tempfile::tempdir().unwrap();
    copy_tree(&fixture, resumed.path());
    let more = |d: &Path| {
        let file = d.join("pipeline.toml");
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("events = 10000\n", "events = 20000\n");
        std::fs::write(&file, text).unwrap();
        file
    };
    let before = fixture_output(resumed.path());
    assert!(before.iter().all(|rows| !rows.is_empty()));
    let out = sluice()
        .arg("run")
        .arg(more(resumed.path()))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("state restored from the checkpoint"),
        "{stderr}"
    );

    // A clean run of the same 20,000 events with today's binary.
    let clean = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture.join("pipeline.toml"),
        clean.path().join("pipeline.toml"),
    )
    .unwrap();
    run_ok(sluice().arg("run").arg(more(clean.path())));
    let (got, expected) = (fixture_output(resumed.path()), fixture_output(clean.path()));
    for (rows, earlier) in got.iter().zip(&before) {
        assert!(rows.len() > earlier.len(), "the resumed run added rows");
    }
    assert_eq!(got, expected);
}
