//! Joins through the CLI on real files: the seeds' enrichment (a stream joined with a users
//! table from parquet, the table replaced mid-run) and attribution (impressions ⋈ clicks,
//! left outer, within an hour), each checked row by row against an independent computation.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::attribution::*;
use common::*;

/// Writes a users table (id, name, tier) as parquet, atomically (a hidden file renamed in).
fn write_users(dir: &Path, users: &[(i64, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(
                users.iter().map(|u| u.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                users.iter().map(|u| u.1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let tmp = dir.join(".users.parquet.tmp");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&tmp).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::rename(&tmp, dir.join("users.parquet")).unwrap();
}

fn events(range: std::ops::Range<i64>) -> String {
    range
        .map(|i| {
            format!(
                "{{\"event_id\":{i},\"user_id\":{},\"action\":\"click\"}}\n",
                i % 5
            )
        })
        .collect()
}

const ENRICH: &str = r#"[[query]]
name = "enrich"
checkpointLocation = "ckpt"
trigger = { processingTime = "50 ms" }

[query.source]
format = "json"
path = "events/*.json"
schema = "event_id BIGINT, user_id BIGINT, action STRING"
mode = "FAILFAST"

[query.join]
type = "leftOuter"
on = [["user_id", "id"]]

[query.join.table]
format = "parquet"
path = "users"
schema = "id BIGINT, name STRING"

[query.sink]
format = "json"
path = "out"
"#;

#[test]
fn a_parquet_table_takes_its_schema_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_users(&d.join("users"), &[(0, "ann"), (1, "bo"), (2, "cy")]);
    drop_file(&d.join("events"), "0.json", events(0..10));
    // No `schema` and no `inferSchema`: parquet says what its columns are, as in Spark.
    let text = ENRICH
        .replace("schema = \"id BIGINT, name STRING\"\n", "")
        .replace(
            "trigger = { processingTime = \"50 ms\" }",
            "trigger = \"availableNow\"",
        );
    assert!(!text.contains("schema = \"id BIGINT"));
    let file = pipeline(d, &text);
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(i64, Option<String>)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            (
                r["event_id"].as_i64().unwrap(),
                r["name"].as_str().map(str::to_owned),
            )
        })
        .collect();
    got.sort();
    let names = ["ann", "bo", "cy"];
    let expected: Vec<(i64, Option<String>)> = (0..10)
        .map(|i| (i, names.get((i % 5) as usize).map(|n| n.to_string())))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a_stream_joins_a_parquet_table_and_the_next_batches_see_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Version 1 knows users 0..3; user 4 is unknown (left outer: null name).
    write_users(
        &d.join("users"),
        &[(0, "ann"), (1, "bo"), (2, "cy"), (3, "di")],
    );
    drop_file(&d.join("events"), "0.json", events(0..10));
    let file = pipeline(d, ENRICH);
    run_ok(sluice().arg("validate").arg(&file));
    let mut run = Running::start(&file, &[], &[]);
    run.await_line("batch_id=0");

    // Version 2, published by rename: user 1 renamed, user 3 gone, user 4 known.
    write_users(
        &d.join("users"),
        &[(0, "ann"), (1, "bob"), (2, "cy"), (4, "eve")],
    );
    drop_file(&d.join("events"), "1.json", events(10..20));
    run.await_line("batch_id=1");
    run.signal(2);
    let (code, log) = run.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("join table loaded"), "{log}");

    let v1: BTreeMap<i64, &str> = [(0, "ann"), (1, "bo"), (2, "cy"), (3, "di")].into();
    let v2: BTreeMap<i64, &str> = [(0, "ann"), (1, "bob"), (2, "cy"), (4, "eve")].into();
    let mut got: Vec<(i64, i64, Option<String>)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            (
                r["event_id"].as_i64().unwrap(),
                r["user_id"].as_i64().unwrap(),
                r["name"].as_str().map(str::to_owned),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<(i64, i64, Option<String>)> = (0..20)
        .map(|i| {
            let table = if i < 10 { &v1 } else { &v2 };
            (i, i % 5, table.get(&(i % 5)).map(|n| n.to_string()))
        })
        .collect();
    assert_eq!(got, expected);

    // Each batch's offsets entry names the table version it joined with.
    let version = |n: u32| -> String {
        let entry: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("ckpt/offsets/{n}"))).unwrap())
                .unwrap();
        entry["tables"]["join"].as_str().unwrap().to_owned()
    };
    assert_ne!(version(0), version(1));
}

#[test]
fn impressions_join_clicks_within_an_hour_and_unmatched_ones_are_emitted_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_attribution(d);
    let file = pipeline(d, ATTRIBUTION);
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut got: Vec<(i64, i64, Option<i64>)> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            (
                r["ad_id"].as_i64().unwrap(),
                minutes(r["impression_time"].as_str().unwrap()),
                r["click_time"].as_str().map(minutes),
            )
        })
        .collect();
    got.sort();
    let expected = expected_attribution();
    assert!(
        expected.iter().any(|r| r.2.is_none()),
        "some impressions are never clicked"
    );
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    assert_eq!(got, expected);

    // The join's state is reported and empties once the watermark passed everything.
    let records = progress(&d.join("progress.jsonl"));
    let join = |p: &sluice::progress::QueryProgress| p.state_operators[0].clone();
    assert_eq!(join(&records[0])["operatorName"], "symmetricHashJoin");
    let last = join(records.last().unwrap());
    assert_eq!(
        last["numRowsTotal"], 2,
        "only the two flush rows stay: {last}"
    );
    // `sluice state show` reads those two rows from the checkpoint, one per side.
    let out = run_ok(sluice().args(["state", "show"]).arg(d.join("ckpt")));
    let state: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sides: Vec<(&str, i64)> = state
        .iter()
        .map(|r| {
            (
                r["side"].as_str().unwrap(),
                r["row"]["ad_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sides, [("left", 999), ("right", 998)], "{state:?}");
    // Progress shows each input's watermark (as of the batch's end) beside the global one the
    // batch ran with, which never passes the slower input's.
    let event_time = &records.last().unwrap().event_time;
    let (imp, clk) = (
        &event_time["watermark.impressions"],
        &event_time["watermark.clicks"],
    );
    assert!(&event_time["watermark"] <= imp.min(clk), "{event_time:?}");
}

#[test]
fn an_aggregation_after_an_outer_join_counts_the_unmatched_rows_too() {
    // Impressions and their clicks per 30-minute window of impression time, in append mode:
    // each window is emitted once, after the join has emitted its unmatched impressions.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_attribution(d);
    let text = ATTRIBUTION.replace(
        "[query.sink]",
        "[query.aggregate]\nwindow = { column = \"impression_time\", duration = \"30 minutes\" }\naggs = [{ fn = \"count\", as = \"rows\" }, { fn = \"count\", column = \"click_time\", as = \"clicks\" }]\n\n[query.sink]",
    );
    let file = pipeline(d, &text);
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (_, it, ct) in expected_attribution() {
        let e = expected.entry(it - it.rem_euclid(30)).or_default();
        e.0 += 1;
        e.1 += ct.is_some() as i64;
    }
    let mut got: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in committed_json(&d.join("out")) {
        let start = minutes(r["window"]["start"].as_str().unwrap());
        let v = (r["rows"].as_i64().unwrap(), r["clicks"].as_i64().unwrap());
        assert!(
            got.insert(start, v).is_none(),
            "window {start} emitted twice"
        );
    }
    assert_eq!(got, expected);
    let dropped: u64 = progress(&d.join("progress.jsonl"))
        .iter()
        .map(|p| {
            p.state_operators[1]["numRowsDroppedByWatermark"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(dropped, 0, "no joined row is late for the aggregation");
}

#[test]
fn a_union_joined_with_a_third_stream_is_enriched_by_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_split_impressions(d);
    write_ads(&d.join("ads"));
    let file = pipeline(d, UNION_JOIN_ENRICH);
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    type Row = (i64, i64, Option<i64>, Option<String>);
    let mut got: Vec<Row> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            (
                r["ad_id"].as_i64().unwrap(),
                minutes(r["impression_time"].as_str().unwrap()),
                r["click_time"].as_str().map(minutes),
                r["campaign"].as_str().map(str::to_owned),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<Row> = expected_attribution()
        .into_iter()
        .map(|(ad, it, ct)| (ad, it, ct, campaign(ad)))
        .collect();
    assert!(expected.iter().any(|r| r.3.is_none()) && expected.iter().any(|r| r.2.is_none()));
    assert_eq!(got, expected);
    // The view's join keeps its state under its own id, and `sluice state show` reads it.
    assert!(d.join("ckpt/state/attributed.join").is_dir());
    let out = run_ok(sluice().args(["state", "show"]).arg(d.join("ckpt")));
    let sides: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["operator"].to_string())
        .collect();
    assert!(
        !sides.is_empty() && sides.iter().all(|o| o == "\"attributed.join\""),
        "{sides:?}"
    );
    // `sluice explain` draws the three operators over the three inputs.
    let out = run_ok(sluice().arg("explain").arg(&file));
    let tree = String::from_utf8_lossy(&out.stdout);
    for line in [
        "StreamStaticJoin LeftOuter on [ad_id = id]",
        "View 'attributed'",
        "StreamStreamJoin LeftOuter on [ad_id = ad_id]; state ",
        "/state/attributed.join",
        "View 'impressions'",
        "Union",
        "Input 'web'",
        "Input 'app'",
        "Input 'clicks'",
        "Table ",
    ] {
        assert!(tree.contains(line), "{line} in:\n{tree}");
    }
}

#[test]
fn a_windowed_aggregation_is_enriched_by_a_table_in_append_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_attribution(d);
    write_ads(&d.join("ads"));
    let file = pipeline(d, AGGREGATE_ENRICH);
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected: BTreeMap<(i64, i64), (i64, String)> = BTreeMap::new();
    for (ad, it) in impressions() {
        if let Some(c) = campaign(ad) {
            expected
                .entry((ad, it - it.rem_euclid(30)))
                .or_insert((0, c))
                .0 += 1;
        }
    }
    let mut got: BTreeMap<(i64, i64), (i64, String)> = BTreeMap::new();
    for r in committed_json(&d.join("out")) {
        let key = (
            r["ad_id"].as_i64().unwrap(),
            minutes(r["window"]["start"].as_str().unwrap()),
        );
        let v = (
            r["impressions"].as_i64().unwrap(),
            r["campaign"].as_str().unwrap().to_owned(),
        );
        assert!(got.insert(key, v).is_none(), "{key:?} emitted twice");
    }
    assert_eq!(got, expected);
    assert!(d.join("ckpt/state/counts.aggregate").is_dir());
}

#[test]
fn a_plan_of_views_is_checked_by_sparks_rules_each_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Update mode with an aggregation feeding another stateful operator.
    let chained = AGGREGATE_ENRICH
        .replace("trigger = \"availableNow\"", "trigger = \"availableNow\"\noutputMode = \"update\"")
        .replace(
            "[query.join]\nleft = \"counts\"\ntype = \"inner\"\non = [[\"ad_id\", \"id\"]]\n\n[query.join.table]\nformat = \"parquet\"\npath = \"ads\"\n",
            "[query.dropDuplicates]\ncolumns = [\"ad_id\"]\n",
        );
    let file = pipeline(d, &chained);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("chained stateful operators run in append mode only"),
        "{stderr}"
    );
    // A name that is not an input or an earlier view, and an input nothing reads.
    let unknown =
        UNION_JOIN_ENRICH.replace("union = [\"web\", \"app\"]", "union = [\"web\", \"ap\"]");
    let file = pipeline(d, &unknown);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = unknown
        .lines()
        .position(|l| l.starts_with("union = "))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(":{line}:"))
            && stderr.contains("'ap' is not an input or an earlier view"),
        "line {line}: {stderr}"
    );
    let unread = UNION_JOIN_ENRICH.replace("union = [\"web\", \"app\"]", "from = \"web\"");
    let file = pipeline(d, &unread);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'app' is never read"), "{stderr}");
}
