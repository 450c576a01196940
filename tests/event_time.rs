//! Event time: watermarks, windows, aggregation and deduplication in all three output modes,
//! reproducing the seeds' and Spark's programming-guide scenarios with exact expected outputs.

mod common;

use std::path::Path;

use common::*;

/// One JSON order.
fn order(time: &str, category: &str, amount: i64) -> String {
    format!(
        "{{\"order_time\":\"2024-05-01T{time}:00Z\",\"category\":\"{category}\",\"amount\":{amount}}}\n"
    )
}

/// Writes one file per batch, oldest first (the file source reads one per trigger).
fn write_batches(dir: &Path, batches: &[&[(&str, &str, i64)]]) {
    for (i, rows) in batches.iter().enumerate() {
        let text: String = rows.iter().map(|(t, c, a)| order(t, c, *a)).collect();
        let f = drop_file(&dir.join("in"), &format!("orders-{i}.json"), &text);
        set_mtime(&f, 1000 - i as u64);
    }
}

/// The seeds' order analytics: 5-minute revenue per category with a 10-minute watermark.
fn revenue_pipeline(dir: &Path, name: &str, mode: &str, sink: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "{name}"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "{mode}"

[query.source]
format = "json"
path = "in"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = {{ column = "order_time", delay = "10 minutes" }}

[query.aggregate]
groupBy = ["category"]
window = {{ column = "order_time", duration = "5 minutes" }}
aggs = [{{ fn = "sum", column = "amount", as = "revenue" }}, {{ fn = "count", as = "orders" }}]

{sink}
"#
        ),
    )
}

/// The scenario. As in Spark 3.4+ (tests/fixtures/spark-sql/order_analytics has Spark's own
/// rows for the first five orders files), a row is late by the watermark of the batch before:
/// the 12:04 order of file 3 arrives after 12:21 pushed the watermark to 12:11, but batch 3
/// judges lateness by 12:01, so it counts, and its window (12:00-12:05) closes in that batch.
/// The 12:01 order of file 4 is judged by 12:11 and dropped — except in complete mode.
const BATCHES: &[&[(&str, &str, i64)]] = &[
    &[("12:02", "food", 10), ("12:07", "tech", 20)],
    &[("12:11", "food", 5), ("12:04", "food", 1)],
    &[("12:21", "tech", 7), ("12:03", "food", 100)],
    &[("12:04", "food", 1000), ("12:16", "tech", 3)],
    &[("12:40", "toys", 1), ("12:01", "food", 50000)],
];

/// Runs the scenario into a memory table and returns, per batch id, rows as
/// "category window-start revenue/orders" strings.
fn run_in_memory(
    mode: &str,
) -> (
    Vec<(u64, Vec<String>)>,
    Vec<sluice::progress::QueryProgress>,
) {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), BATCHES);
    let name = format!("revenue_{mode}");
    let file = revenue_pipeline(dir.path(), &name, mode, "[query.sink]\nformat = \"memory\"");
    let p = sluice::pipeline::Pipeline::load(&file).unwrap();
    let log = dir.path().join("progress.jsonl");
    let writer: Box<dyn std::io::Write + Send> = Box::new(std::fs::File::create(&log).unwrap());
    let manager = sluice::manager::QueryManager::start_pipeline(
        &p,
        Some(std::sync::Arc::new(std::sync::Mutex::new(writer))),
    )
    .unwrap();
    for (q, r) in manager.await_all(p.on_query_failure) {
        r.unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    let batches = sluice::connectors::memory::sink::batches(&name).unwrap();
    let rows = batches
        .into_iter()
        .map(|(id, bs)| {
            let mut rows = Vec::new();
            for b in bs {
                let mut buf = Vec::new();
                let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
                w.write(&b).unwrap();
                w.finish().unwrap();
                for line in String::from_utf8(buf).unwrap().lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let start = v["window"]["start"].as_str().unwrap();
                    rows.push(format!(
                        "{} {} {}/{}",
                        v["category"].as_str().unwrap(),
                        &start[11..16],
                        v["revenue"],
                        v["orders"]
                    ));
                }
            }
            // Update mode emits in the order the batch touched the groups; compare as sets.
            if mode == "update" {
                rows.sort();
            }
            (id, rows)
        })
        .collect();
    (rows, progress(&log))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn append_emits_each_window_once_when_the_watermark_passes_it() {
    let (out, p) = run_in_memory("append");
    // Batches 0-2 close nothing (watermark 0, 11:57, 12:01). Batch 3 runs with watermark
    // 12:11: windows ending by then are final. Batch 4 moves it to 12:30, and a no-data
    // batch 5 emits the windows that ended by 12:30. 12:40 toys stays open.
    let non_empty: Vec<_> = out.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    assert_eq!(
        non_empty,
        vec![
            (3, s(&["food 12:00 1111/4", "tech 12:05 20/1"])),
            (
                5,
                s(&["food 12:10 5/1", "tech 12:15 3/1", "tech 12:20 7/1"])
            ),
        ]
    );
    assert_eq!(p.len(), 6, "five data batches and one no-data batch");
    assert_eq!(p[5].num_input_rows, 0);
    assert_eq!(p[3].event_time["watermark"], "2024-05-01T12:11:00.000Z");
    let dropped: Vec<u64> = p
        .iter()
        .map(|b| {
            b.state_operators[0]["numRowsDroppedByWatermark"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        dropped,
        vec![0, 0, 0, 0, 1, 0],
        "the 12:01 order of batch 4 is dropped, nothing else"
    );
    // State is evicted as windows are emitted: after batch 5 only 12:40 toys is left.
    assert_eq!(p[5].state_operators[0]["numRowsTotal"], 1);
    assert_eq!(p[5].state_operators[0]["numRowsRemoved"], 3);
}

#[test]
fn update_emits_changed_windows_every_batch_and_evicts_behind_the_watermark() {
    let (out, p) = run_in_memory("update");
    assert_eq!(
        out,
        vec![
            (0, s(&["food 12:00 10/1", "tech 12:05 20/1"])),
            (1, s(&["food 12:00 11/2", "food 12:10 5/1"])),
            (2, s(&["food 12:00 111/3", "tech 12:20 7/1"])),
            (3, s(&["food 12:00 1111/4", "tech 12:15 3/1"])),
            (4, s(&["toys 12:40 1/1"])),
            (5, s(&[])),
        ]
    );
    // The no-data batch 5 emits nothing but evicts.
    assert_eq!(p.len(), 6);
    assert_eq!(p[5].state_operators[0]["numRowsTotal"], 1);
}

#[test]
fn complete_emits_the_whole_table_every_batch_and_keeps_late_rows() {
    let (out, p) = run_in_memory("complete");
    // The memory table holds the last complete result (each batch replaces it).
    assert_eq!(
        out,
        vec![(
            4,
            s(&[
                "food 12:00 51111/5",
                "tech 12:05 20/1",
                "food 12:10 5/1",
                "tech 12:15 3/1",
                "tech 12:20 7/1",
                "toys 12:40 1/1"
            ])
        )]
    );
    let emitted: Vec<u64> = p.iter().map(|b| b.sink.num_output_rows).collect();
    assert_eq!(
        emitted,
        vec![2, 3, 4, 5, 6],
        "the whole table, growing, every batch; no no-data batch"
    );
    assert!(
        p.iter()
            .all(|b| b.state_operators[0]["numRowsDroppedByWatermark"] == 0)
    );
}

#[test]
fn append_results_reach_a_file_sink_through_the_cli_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // First run: the first three files only.
    write_batches(dir.path(), &BATCHES[..3]);
    let file = revenue_pipeline(
        dir.path(),
        "revenue",
        "append",
        "[query.sink]\nformat = \"json\"\npath = \"out\"",
    );
    run_ok(sluice().arg("run").arg(&file));
    // The restarted query continues with its state and watermark from the checkpoint.
    let more = tempfile::tempdir().unwrap();
    write_batches(more.path(), BATCHES);
    for i in 3..BATCHES.len() {
        let name = format!("orders-{i}.json");
        let target = dir.path().join("in").join(&name);
        std::fs::copy(more.path().join("in").join(&name), &target).unwrap();
        set_mtime(&target, 100 - i as u64);
    }
    run_ok(sluice().arg("run").arg(&file));
    let mut rows: Vec<String> = committed_json(&dir.path().join("out"))
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["category"].as_str().unwrap(),
                &r["window"]["start"].as_str().unwrap()[11..16],
                r["revenue"]
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        s(&[
            // The first run ended with a no-data batch at watermark 12:11, so the restarted
            // run judges file 3's 12:04 order by 12:11 (Spark's rule too): late, dropped.
            "food 12:00 111",
            "food 12:10 5",
            "tech 12:05 20",
            "tech 12:15 3",
            "tech 12:20 7"
        ])
    );
}

fn run_pipeline_text(dir: &Path, text: &str) -> Vec<serde_json::Value> {
    let file = pipeline(dir, text);
    run_ok(sluice().arg("run").arg(&file));
    committed_json(&dir.join("out"))
}

#[test]
fn sliding_windows_count_each_row_in_every_window_it_falls_in() {
    // Spark's guide: 10-minute windows sliding every 5 minutes; (12:07, dog) counts in
    // 12:00-12:10 and 12:05-12:15.
    let dir = tempfile::tempdir().unwrap();
    write_batches(
        dir.path(),
        &[
            &[
                ("12:07", "dog", 1),
                ("12:08", "owl", 1),
                ("12:14", "dog", 1),
                ("12:09", "cat", 1),
            ],
            &[("12:40", "owl", 1)],
        ],
    );
    let rows = run_pipeline_text(
        dir.path(),
        r#"[[query]]
name = "words"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = { column = "order_time", delay = "10 minutes" }
[query.aggregate]
groupBy = ["category"]
window = { column = "order_time", duration = "10 minutes", slide = "5 minutes" }
aggs = [{ fn = "count", as = "count" }]
[query.sink]
format = "json"
path = "out"
"#,
    );
    let mut got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}-{} {} {}",
                &r["window"]["start"].as_str().unwrap()[11..16],
                &r["window"]["end"].as_str().unwrap()[11..16],
                r["category"].as_str().unwrap(),
                r["count"]
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        s(&[
            "12:00-12:10 cat 1",
            "12:00-12:10 dog 1",
            "12:00-12:10 owl 1",
            "12:05-12:15 cat 1",
            "12:05-12:15 dog 2",
            "12:05-12:15 owl 1",
            "12:10-12:20 dog 1"
        ])
    );
}

#[test]
fn string_aggregates_keep_first_last_extremes_and_distinct_values_across_batches() {
    // One 10-minute window fed by two batches; a row at 12:40 then moves the watermark past
    // it. "dog" is seen first, again in the middle and last; "owl" is the largest, "cat" the
    // smallest; three distinct animals in five rows.
    let dir = tempfile::tempdir().unwrap();
    write_batches(
        dir.path(),
        &[
            &[
                ("12:01", "dog", 1),
                ("12:02", "owl", 1),
                ("12:03", "dog", 1),
            ],
            &[("12:04", "cat", 1), ("12:06", "dog", 1)],
            &[("12:40", "eel", 1)],
        ],
    );
    let rows = run_pipeline_text(
        dir.path(),
        r#"[[query]]
name = "animals"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = { column = "order_time", delay = "10 minutes" }
[query.aggregate]
window = { column = "order_time", duration = "10 minutes" }
aggs = [
  { fn = "first", column = "category", as = "first" },
  { fn = "last", column = "category", as = "last" },
  { fn = "min", column = "category", as = "min" },
  { fn = "max", column = "category", as = "max" },
  { fn = "count_distinct", column = "category", as = "kinds" },
]
[query.sink]
format = "json"
path = "out"
"#,
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                &r["window"]["start"].as_str().unwrap()[11..16],
                r["first"].as_str().unwrap(),
                r["last"].as_str().unwrap(),
                r["min"].as_str().unwrap(),
                r["max"].as_str().unwrap(),
                r["kinds"]
            )
        })
        .collect();
    assert_eq!(got, s(&["12:00 dog dog cat owl 3"]));
    // The 12:40 window is still open: its accumulators are in the checkpoint's state.
    let shown = state_show(&dir.path().join("ckpt"), &["--operator", "aggregate"]);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["window"]["start"], "2024-05-01T12:40:00.000Z");
    assert_eq!(shown[0]["aggs"]["first"], "eel");
    assert_eq!(shown[0]["aggs"]["kinds"]["distinct"], 1);
}

#[test]
fn session_windows_merge_rows_closer_than_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(
        dir.path(),
        &[
            &[
                ("12:00", "alice", 1),
                ("12:03", "alice", 2),
                ("12:01", "bob", 5),
            ],
            &[("12:06", "alice", 4), ("12:30", "bob", 1)],
            &[("13:00", "carol", 1)],
        ],
    );
    let rows = run_pipeline_text(
        dir.path(),
        r#"[[query]]
name = "sessions"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = { column = "order_time", delay = "5 minutes" }
[query.aggregate]
groupBy = ["category"]
window = { column = "order_time", gap = "5 minutes" }
aggs = [{ fn = "sum", column = "amount", as = "total" }, { fn = "max", column = "order_time", as = "last_seen" }]
[query.sink]
format = "json"
path = "out"
"#,
    );
    let mut got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {}-{} {}",
                r["category"].as_str().unwrap(),
                &r["window"]["start"].as_str().unwrap()[11..16],
                &r["window"]["end"].as_str().unwrap()[11..16],
                r["total"]
            )
        })
        .collect();
    got.sort();
    // alice's 12:00, 12:03 and 12:06 chain into one session ending 12:11.
    assert_eq!(
        got,
        s(&[
            "alice 12:00-12:11 7",
            "bob 12:01-12:06 5",
            "bob 12:30-12:35 1"
        ])
    );
}

#[test]
fn drop_duplicates_within_the_watermark_and_forever() {
    let dir = tempfile::tempdir().unwrap();
    let text = |id: u32, time: &str| {
        format!("{{\"event_id\":{id},\"event_time\":\"2024-05-01T{time}:00Z\"}}\n")
    };
    for (i, body) in [
        format!(
            "{}{}{}",
            text(1, "12:00"),
            text(1, "12:00"),
            text(2, "12:01")
        ),
        format!("{}{}", text(2, "12:02"), text(3, "12:30")),
        format!("{}{}", text(1, "12:31"), text(3, "12:31")),
        text(1, "12:32"),
    ]
    .iter()
    .enumerate()
    {
        let f = drop_file(&dir.path().join("in"), &format!("e{i}.json"), body);
        set_mtime(&f, 100 - i as u64);
    }
    let base = |within: bool| {
        format!(
            r#"[[query]]
name = "dedup"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "event_id BIGINT, event_time TIMESTAMP"
maxFilesPerTrigger = 1
watermark = {{ column = "event_time", delay = "10 minutes" }}
[query.dropDuplicates]
columns = ["event_id"]
withinWatermark = {within}
[query.sink]
format = "json"
path = "out"
"#
        )
    };
    let rows = run_pipeline_text(dir.path(), &base(false));
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| r["event_id"].as_u64().unwrap())
        .collect();
    // Without the event time among the keys, a key is remembered forever. (Rows of one batch
    // come in state-partition order, not arrival order.)
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);
    let shown = state_show(&dir.path().join("ckpt"), &[]);
    let kept: Vec<i64> = shown
        .iter()
        .map(|r| r["key"]["event_id"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, [1, 2, 3], "{shown:?}");

    let again = tempfile::tempdir().unwrap();
    copy_in(&dir.path().join("in"), &again.path().join("in"));
    let rows = run_pipeline_text(again.path(), &base(true));
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| r["event_id"].as_u64().unwrap())
        .collect();
    // The last batch's only row comes last; the others are sorted (within a batch their
    // order is the state partitions').
    let last = ids.pop();
    assert_eq!(last, Some(1));
    ids.sort_unstable();
    ids.push(1);
    // Within the watermark: id 1 (12:00) expires at 12:10; batch 2 runs with watermark 12:20
    // and evicts it at its end (as Spark does, after its rows are checked), so the 12:31
    // repeat in batch 2 is still a duplicate and the 12:32 one in batch 3 is new. id 3 (12:30)
    // has not expired.
    assert_eq!(ids, vec![1, 2, 3, 1]);
    // Within the watermark each key shows when it expires (event time + delay).
    let shown = state_show(&again.path().join("ckpt"), &["--key", "event_id=3"]);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["expiresAt"], "2024-05-01T12:40:00.000Z");
}

/// `sluice state show CHECKPOINT ARGS` as JSON rows.
fn state_show(checkpoint: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = run_ok(sluice().args(["state", "show"]).arg(checkpoint).args(args));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn copy_in(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (i, f) in files.iter().enumerate() {
        let target = to.join(f.file_name().unwrap());
        std::fs::copy(f, &target).unwrap();
        set_mtime(&target, 100 - i as u64);
    }
}

#[test]
fn output_mode_rules_are_enforced_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "append",
            "watermark = { column = \"order_time\", delay = \"10 minutes\" }",
            "",
            "append mode with an aggregation needs a watermark on the grouped event time",
        ),
        (
            "update",
            "",
            "window = { column = \"order_time\", duration = \"5 minutes\" }",
            "a json file sink only supports append",
        ),
        (
            "update",
            "",
            "window = { column = \"order_time\", gap = \"5 minutes\" }",
            "session windows do not support update mode",
        ),
    ];
    for (mode, remove, replace_window, expected) in bad {
        let mut text = std::fs::read_to_string(revenue_pipeline(
            dir.path(),
            "q",
            mode,
            "[query.sink]\nformat = \"json\"\npath = \"out\"",
        ))
        .unwrap();
        if !remove.is_empty() {
            text = text.replace(remove, "");
        }
        if !replace_window.is_empty() {
            text = text.replace(
                "window = { column = \"order_time\", duration = \"5 minutes\" }",
                replace_window,
            );
        }
        let file = pipeline(dir.path(), &text);
        let out = sluice().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{mode}: expected {expected:?} in {stderr}"
        );
    }
}
