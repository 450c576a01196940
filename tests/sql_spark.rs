//! Queries written in SQL, each equal to Spark 4.0.1's own output for the same input: the
//! cases under tests/fixtures/spark-sql/ (input files, the SQL, and the rows pyspark's
//! Structured Streaming wrote for them, made by generate.py there) run through `sluice run`
//! with the same options Spark ran with (one file per input per batch, the same watermarks,
//! `availableNow`). Some are also written in TOML operators, which must give the same rows.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(case: &str) -> PathBuf {
    repo().join("tests/fixtures/spark-sql").join(case)
}

/// The pipeline for `case`: its inputs, tables and output mode from case.json, its SQL from
/// query.sql — or, with `toml`, the same query written in TOML operators instead of the SQL
/// and the tables — writing JSON files (append) or to the console (complete).
fn case_pipeline(case: &str, dir: &Path, toml: Option<&str>) -> (PathBuf, bool) {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(case).join("case.json")).unwrap())
            .unwrap();
    let complete = spec["outputMode"] == "complete";
    let mut text = format!(
        "[[query]]\nname = \"{case}\"\ncheckpointLocation = \"ckpt\"\ntrigger = \"availableNow\"\noutputMode = \"{}\"\n{}\n",
        spec["outputMode"].as_str().unwrap(),
        if toml.is_some() {
            ""
        } else {
            "sql = { file = \"query.sql\" }\n"
        }
    );
    std::fs::copy(fixture(case).join("query.sql"), dir.join("query.sql")).unwrap();
    for (name, input) in spec["inputs"].as_object().unwrap() {
        copy_dir(
            &fixture(case).join("inputs").join(name),
            &dir.join("in").join(name),
        );
        text += &format!(
            "[query.inputs.{name}]\nformat = \"json\"\npath = \"in/{name}\"\nschema = \"{}\"\nmaxFilesPerTrigger = 1\n",
            input["schema"].as_str().unwrap()
        );
        if let Some(w) = input["watermark"].as_object() {
            text += &format!(
                "watermark = {{ column = \"{}\", delay = \"{}\" }}\n",
                w["column"].as_str().unwrap(),
                w["delay"].as_str().unwrap()
            );
        }
        text += "\n";
    }
    for (name, table) in spec["tables"].as_object().unwrap() {
        copy_dir(
            &fixture(case).join("tables").join(name),
            &dir.join("tables").join(name),
        );
        if toml.is_none() {
            text += &format!(
                "[query.tables.{name}]\nformat = \"json\"\npath = \"tables/{name}\"\nschema = \"{}\"\n\n",
                table["schema"].as_str().unwrap()
            );
        }
    }
    if let Some(body) = toml {
        text += body;
        text += "\n";
    }
    text += if complete {
        "[query.sink]\nformat = \"console\"\nnumRows = 1000\ntruncate = false\n"
    } else {
        "[query.sink]\nformat = \"json\"\npath = \"out\"\n"
    };
    (pipeline(dir, &text), complete)
}

/// A timestamp as Spark's rows in the fixture write it (`2024-05-01T12:00:00`).
fn normal_time(text: &str) -> String {
    let t = text
        .trim_end_matches('Z')
        .trim_end_matches("+00:00")
        .replacen(' ', "T", 1);
    t.strip_suffix(".000")
        .or_else(|| t.strip_suffix(".000000"))
        .map_or(t.clone(), str::to_owned)
}

fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ')
}

/// A row as Spark's JSON file sink writes it: timestamps in one form, null fields left out.
fn normal(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) if looks_like_time(s) => normal_time(s).into(),
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), normal(v)))
            .collect(),
        other => other.clone(),
    }
}

/// Spark's rows for `case`, as sorted JSON texts (console cells for a complete-mode case).
fn spark_rows(case: &str, as_cells: bool) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(case).join("expected.jsonl")).unwrap();
    let mut rows: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if as_cells {
                cells(&v)
            } else {
                normal(&v).to_string()
            }
        })
        .collect();
    rows.sort();
    rows
}

/// A row as the console prints its cells, in column-name order.
fn cells(v: &serde_json::Value) -> String {
    let m = v.as_object().unwrap();
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| match &m[k.as_str()] {
            serde_json::Value::String(s) => normal_time(s),
            serde_json::Value::Null => "null".to_owned(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Runs `case` through `sluice run` and compares its rows with Spark's.
fn spark_case(case: &str) {
    spark_case_as(case, None);
}

/// As [`spark_case`], the query written in TOML (`toml`) instead of its SQL when given.
fn spark_case_as(case: &str, toml: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (file, complete) = case_pipeline(case, dir.path(), toml);
    run_ok(sluice().arg("validate").arg(&file));
    let out = run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<String> = if complete {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let header = stdout
            .rsplit("Batch: ")
            .next()
            .and_then(|t| t.lines().find(|l| l.starts_with('|')))
            .unwrap_or_default()
            .to_owned();
        let names: Vec<String> = header
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        last_console_table(&stdout)
            .into_iter()
            .map(|row| {
                let mut pairs: Vec<(&String, &String)> = names.iter().zip(&row).collect();
                pairs.sort();
                pairs
                    .iter()
                    .map(|(_, c)| normal_time(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect()
    } else {
        committed_json(&dir.path().join("out"))
            .iter()
            .map(|r| normal(r).to_string())
            .collect()
    };
    got.sort();
    let expected = spark_rows(case, complete);
    assert!(!expected.is_empty());
    assert_eq!(
        got, expected,
        "{case}: Sluice's rows (left) and Spark's (right)"
    );
}

#[test]
fn order_analytics_in_sql_equals_spark() {
    spark_case("order_analytics");
}

#[test]
fn revenue_by_category_a_stream_static_join_then_window_equals_spark() {
    spark_case("revenue_by_category");
}

#[test]
fn attribution_a_left_outer_join_between_streams_within_an_hour_equals_spark() {
    spark_case("attribution");
    // The same query in TOML gives the same rows.
    spark_case_as(
        "attribution",
        Some(
            r#"[query.join]
left = "impressions"
right = "clicks"
type = "leftOuter"
on = [["ad_id", "click_ad_id"]]
within = { left = "impression_time", right = "click_time", lower = "0 seconds", upper = "1 hour" }

[[query.transform]]
selectExpr = ["ad_id", "impression_time", "click_time"]"#,
        ),
    );
}

#[test]
fn enrichment_with_a_users_table_equals_spark() {
    spark_case("enrichment");
    spark_case_as(
        "enrichment",
        Some(
            r#"[query.join]
type = "inner"
on = [["user_id", "id"]]

[query.join.table]
format = "json"
path = "tables/users"
schema = "id BIGINT, name STRING, tier STRING"

[[query.transform]]
where = "tier <> 'banned'"

[[query.transform]]
selectExpr = ["order_id", "name", "tier", "amount * 2 AS doubled"]"#,
        ),
    );
}

#[test]
fn enrichment_left_outer_keeps_unknown_users_as_spark_does() {
    spark_case("enrichment_left");
}

#[test]
fn seed_002_activity_counts_per_window_and_gt_in_complete_mode_equal_spark() {
    spark_case("activity");
}

#[test]
fn a_cte_over_union_all_then_window_equals_spark() {
    spark_case("cte_union");
}
