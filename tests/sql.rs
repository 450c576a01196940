//! Queries written in SQL (`sql = "SELECT ..."`), through the CLI: the seeds' order
//! analytics as a windowed aggregation with HAVING and expressions over aggregates, equal to
//! the same query written in TOML; a stateless filter and projection; UNION ALL of two inputs.
//! Spark's own answers: tests/sql_spark.rs; mistakes: tests/sql_validation.rs.

mod common;

use std::path::Path;

use common::*;

/// Writes one JSON orders file per batch, oldest first.
fn write_batches(dir: &Path, batches: &[&[(&str, &str, i64)]]) {
    for (i, rows) in batches.iter().enumerate() {
        let text: String = rows
            .iter()
            .map(|(t, c, a)| {
                format!(
                    "{{\"order_time\":\"2024-05-01T{t}:00Z\",\"category\":\"{c}\",\"amount\":{a}}}\n"
                )
            })
            .collect();
        let f = drop_file(&dir.join("in"), &format!("orders-{i}.json"), &text);
        set_mtime(&f, 1000 - i as u64);
    }
}

/// The event-time scenario of tests/event_time.rs: a late row dropped, windows closed by the
/// watermark.
const BATCHES: &[&[(&str, &str, i64)]] = &[
    &[("12:02", "food", 10), ("12:07", "tech", 20)],
    &[("12:11", "food", 5), ("12:04", "food", 1)],
    &[("12:21", "tech", 7), ("12:03", "food", 100)],
    &[("12:04", "food", 1000), ("12:16", "tech", 3)],
    &[("12:40", "toys", 1), ("12:01", "food", 50000)],
];

/// The query `revenue` with `keys` among its own keys and `tables` before its sink.
fn revenue(keys: &str, tables: &str) -> String {
    format!(
        r#"[[query]]
name = "revenue"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "append"
{keys}

[query.inputs.orders]
format = "json"
path = "in"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
maxFilesPerTrigger = 1
watermark = {{ column = "order_time", delay = "10 minutes" }}

{tables}

[query.sink]
format = "json"
path = "out"
"#
    )
}

/// The rows a run wrote, as "category window-start revenue orders" strings, sorted.
fn rows(dir: &Path, start: impl Fn(&serde_json::Value) -> String) -> Vec<String> {
    let mut rows: Vec<String> = committed_json(&dir.join("out"))
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["category"].as_str().unwrap(),
                &start(r)[11..16],
                r["revenue"],
                r["orders"]
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_seeds_order_analytics_in_sql_gives_the_toml_query_s_rows() {
    let sql_dir = tempfile::tempdir().unwrap();
    write_batches(sql_dir.path(), BATCHES);
    let sql = revenue(
        r#"sql = """
SELECT window.start AS window_start, o.category, sum(o.amount) AS revenue, count(*) AS orders,
       sum(amount) / count(*) AS mean
FROM orders o
WHERE o.amount > 0
GROUP BY window(o.order_time, '5 minutes'), o.category
HAVING count(*) >= 1
""""#,
        "",
    );
    let file = pipeline(sql_dir.path(), &sql);
    run_ok(sluice().arg("validate").arg(&file));
    let explain = run_ok(sluice().arg("explain").arg(&file));
    let explain = String::from_utf8_lossy(&explain.stdout).into_owned();
    assert!(explain.contains("View 'sql'"), "{explain}");
    run_ok(sluice().arg("run").arg(&file));
    let from_sql = rows(sql_dir.path(), |r| {
        r["window_start"].as_str().unwrap().to_owned()
    });
    // The mean is the revenue over the orders of each window.
    for r in committed_json(&sql_dir.path().join("out")) {
        let mean = r["revenue"].as_f64().unwrap() / r["orders"].as_f64().unwrap();
        assert_eq!(r["mean"].as_f64().unwrap(), mean, "{r}");
    }

    let toml_dir = tempfile::tempdir().unwrap();
    write_batches(toml_dir.path(), BATCHES);
    let toml = revenue(
        "",
        r#"[[query.inputs.orders.transform]]
where = "amount > 0"

[query.aggregate]
groupBy = ["category"]
window = { column = "order_time", duration = "5 minutes" }
aggs = [{ fn = "sum", column = "amount", as = "revenue" }, { fn = "count", as = "orders" }]"#,
    );
    let file = pipeline(toml_dir.path(), &toml);
    run_ok(sluice().arg("run").arg(&file));
    let from_toml = rows(toml_dir.path(), |r| {
        r["window"]["start"].as_str().unwrap().to_owned()
    });
    assert_eq!(from_sql, from_toml);
    assert_eq!(
        from_sql,
        [
            "food 12:00 1111 4",
            "food 12:10 5 1",
            "tech 12:05 20 1",
            "tech 12:15 3 1",
            "tech 12:20 7 1"
        ]
    );
}

#[test]
fn a_stateless_select_filters_and_shapes_rows() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(&dir.path().join("in"), "0.json", event_lines(0..100));
    let text = r#"[[query]]
name = "big"
checkpointLocation = "ckpt"
trigger = "availableNow"
sql = "SELECT id, lower(city) AS city, amount * 2 AS doubled FROM events WHERE amount > 500"

[query.inputs.events]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"

[query.sink]
format = "json"
path = "out"
"#;
    let file = pipeline(dir.path(), text);
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(u64, String, u64)> = committed_json(&dir.path().join("out"))
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().unwrap(),
                r["city"].as_str().unwrap().to_owned(),
                r["doubled"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<(u64, String, u64)> = event_rows(0..100)
        .into_iter()
        .filter(|(_, _, a)| *a > 500)
        .map(|(id, c, a)| (id, c.to_lowercase(), a * 2))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn union_all_of_two_inputs_keeps_every_row_of_both() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(&dir.path().join("web"), "0.json", event_lines(0..40));
    drop_file(&dir.path().join("app"), "0.json", event_lines(100..130));
    let text = r#"[[query]]
name = "both"
checkpointLocation = "ckpt"
trigger = "availableNow"
sql = """
SELECT id, 'web' AS src FROM web WHERE amount >= 200
UNION ALL
SELECT a.id, concat('app-', lower(a.city)) AS src FROM app a
"""

[query.inputs.web]
format = "json"
path = "web"
schema = "id BIGINT, city STRING, amount BIGINT"

[query.inputs.app]
format = "json"
path = "app"
schema = "id BIGINT, city STRING, amount BIGINT"

[query.sink]
format = "json"
path = "out"
"#;
    let file = pipeline(dir.path(), text);
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(u64, String)> = committed_json(&dir.path().join("out"))
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().unwrap(),
                r["src"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(u64, String)> = event_rows(0..40)
        .into_iter()
        .filter(|(_, _, a)| *a >= 200)
        .map(|(id, _, _)| (id, "web".to_owned()))
        .chain(
            event_rows(100..130)
                .into_iter()
                .map(|(id, c, _)| (id, format!("app-{}", c.to_lowercase()))),
        )
        .collect();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn select_distinct_emits_each_distinct_row_once_as_dataset_distinct_does() {
    let dir = tempfile::tempdir().unwrap();
    // Two batches whose rows overlap: a row seen in the first is not emitted again.
    let f = drop_file(&dir.path().join("in"), "0.json", event_lines(0..60));
    set_mtime(&f, 100);
    let f = drop_file(&dir.path().join("in"), "1.json", event_lines(30..100));
    set_mtime(&f, 99);
    let text = r#"[[query]]
name = "cities"
checkpointLocation = "ckpt"
trigger = "availableNow"
sql = "SELECT DISTINCT city, amount % 2 AS odd FROM events WHERE id >= 10"

[query.inputs.events]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.sink]
format = "json"
path = "out"
"#;
    let file = pipeline(dir.path(), text);
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<(String, u64)> = committed_json(&dir.path().join("out"))
        .iter()
        .map(|r| {
            (
                r["city"].as_str().unwrap().to_owned(),
                r["odd"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, u64)> = event_rows(10..100)
        .into_iter()
        .map(|(_, city, amount)| (city, amount % 2))
        .collect();
    expected.sort();
    expected.dedup();
    assert!(expected.len() > 1);
    assert_eq!(got, expected);
}

#[test]
fn collect_list_and_collect_set_gather_each_window_s_values() {
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), BATCHES);
    let text = revenue(
        r#"sql = """
SELECT window.start AS window_start, category, sort_array(collect_list(amount)) AS amounts,
       size(collect_set(amount % 2)) AS parities, count(*) AS orders, sum(amount) AS revenue
FROM orders
GROUP BY window(order_time, '5 minutes'), category
""""#,
        "",
    );
    let file = pipeline(dir.path(), &text);
    run_ok(sluice().arg("run").arg(&file));
    let mut got: Vec<String> = committed_json(&dir.path().join("out"))
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["category"].as_str().unwrap(),
                &r["window_start"].as_str().unwrap()[11..16],
                r["amounts"],
                r["parities"]
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "food 12:00 [1,10,100,1000] 2",
            "food 12:10 [5] 1",
            "tech 12:05 [20] 1",
            "tech 12:15 [3] 1",
            "tech 12:20 [7] 1"
        ]
    );
}
