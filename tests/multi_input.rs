//! Queries with several named inputs: seed 004's web and app events, each brought to one
//! format (the web events by a Wasm step), unioned, then aggregated per 5-minute window.
//! Driven through the CLI on real files; the output is checked against an independent sum.

mod common;

use std::collections::BTreeMap;

use common::*;

/// (minute after 12:00, category, amount) of each order.
type Order = (u32, &'static str, u32);

/// Web orders arrive as raw JSON lines (as a Kafka value would) and are parsed in Wasm.
const WEB: &[&[Order]] = &[
    &[(1, "food", 10), (2, "tech", 200), (6, "food", 5)],
    &[(7, "toys", 3), (11, "tech", 50)],
];
/// App orders arrive as typed JSON with the same columns.
const APP: &[&[Order]] = &[
    &[(3, "food", 7), (4, "toys", 1)],
    &[(8, "tech", 20), (12, "food", 9), (13, "food", 1)],
];
/// A late-enough order on each side moves both watermarks past every window above.
const FLUSH: Order = (40, "flush", 0);

fn line((minute, category, amount): Order, id: usize) -> String {
    format!(
        "{{\"order_id\":\"o{id}\",\"user_id\":\"u{id}\",\"amount\":{amount}.0,\"category\":\"{category}\",\"order_time\":\"2026-11-21T12:{minute:02}:00Z\"}}\n"
    )
}

fn write_inputs(dir: &std::path::Path) {
    let mut id = 0;
    let mut write = |side: &str, ext: &str, batches: &[&[Order]]| {
        let mut files: Vec<Vec<Order>> = batches.iter().map(|b| b.to_vec()).collect();
        files.push(vec![FLUSH]);
        for (i, orders) in files.iter().enumerate() {
            let text: String = orders
                .iter()
                .map(|o| {
                    id += 1;
                    line(*o, id)
                })
                .collect();
            let f = drop_file(&dir.join(side), &format!("{i}.{ext}"), &text);
            // Oldest first: the file source reads them in this order.
            set_mtime(&f, 100 - i as u64);
        }
    };
    write("web", "jsonl", WEB);
    write("app", "json", APP);
}

fn union_pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    let parse = guests().join("parse_orders.wasm");
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "all-orders"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.inputs.web]
format = "text"
path = "web/*.jsonl"
maxFilesPerTrigger = 1
watermark = {{ column = "order_time", delay = "5 minutes" }}

[[query.inputs.web.transform]]
name = "parse-web"
module = "{parse}"

[query.inputs.app]
format = "json"
path = "app/*.json"
schema = "order_id STRING, user_id STRING, amount DOUBLE, category STRING, order_time TIMESTAMP"
mode = "FAILFAST"
maxFilesPerTrigger = 1
watermark = {{ column = "order_time", delay = "5 minutes" }}

[query.union]
inputs = ["web", "app"]

[query.aggregate]
groupBy = ["category"]
window = {{ column = "order_time", duration = "5 minutes" }}
aggs = [{{ fn = "sum", column = "amount", as = "revenue" }}, {{ fn = "count", as = "orders" }}]

[query.sink]
format = "json"
path = "out"
"#,
            parse = parse.display()
        ),
    )
}

#[test]
fn two_inputs_shaped_alike_by_wasm_are_unioned_and_aggregated_per_window() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let file = union_pipeline(dir.path());
    run_ok(sluice().arg("validate").arg(&file));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");

    // Independent: every order of both sides, summed per (window start, category).
    let mut expected: BTreeMap<(String, String), (f64, i64)> = BTreeMap::new();
    for (minute, category, amount) in WEB.iter().chain(APP).flat_map(|b| b.iter()) {
        let start = format!("12:{:02}", minute / 5 * 5);
        let e = expected.entry((start, category.to_string())).or_default();
        e.0 += *amount as f64;
        e.1 += 1;
    }
    let mut got: BTreeMap<(String, String), (f64, i64)> = BTreeMap::new();
    for r in committed_json(&dir.path().join("out")) {
        let start = r["window"]["start"].as_str().unwrap()[11..16].to_owned();
        let key = (start, r["category"].as_str().unwrap().to_owned());
        let value = (
            r["revenue"].as_f64().unwrap(),
            r["orders"].as_i64().unwrap(),
        );
        assert!(
            got.insert(key.clone(), value).is_none(),
            "{key:?} emitted twice"
        );
    }
    assert_eq!(got, expected);

    // Progress names both inputs; each read its own rows.
    let records = progress(&dir.path().join("progress.jsonl"));
    let first = &records[0];
    assert_eq!(first.sources.len(), 2);
    let rows_per_input: Vec<u64> = (0..2)
        .map(|i| records.iter().map(|p| p.sources[i].num_input_rows).sum())
        .collect();
    let count = |side: &[&[Order]]| side.iter().map(|b| b.len() as u64).sum::<u64>() + 1;
    assert_eq!(rows_per_input, vec![count(WEB), count(APP)]);
}

#[test]
fn a_restart_with_other_inputs_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let file = union_pipeline(dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("path = \"app/*.json\"", "path = \"mobile/*.json\"");
    std::fs::write(&file, text).unwrap();
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("app=json:"), "{stderr}");
    assert!(stderr.contains("mobile"), "{stderr}");
}

#[test]
fn inputs_whose_columns_differ_after_their_steps_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let file = union_pipeline(dir.path());
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "amount DOUBLE, category STRING",
        "amount BIGINT, category STRING",
    );
    std::fs::write(&file, text).unwrap();
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("input 'app' has (order_id Utf8, user_id Utf8, amount Int64"),
        "{stderr}"
    );
    assert!(stderr.contains("but input 'web' has"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}
