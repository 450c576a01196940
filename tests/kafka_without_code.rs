//! Kafka with no user code: the source parses JSON values into columns (`valueFormat =
//! "json"` with a schema), expression steps shape the record's key and value, and the sink
//! routes by a partition only when `partitionColumn` names one — a Kafka source's own
//! `partition` column carried along never picks the output partition. A real broker process
//! (librdkafka's mock cluster); records produced and read back with kcat.

mod common;

use common::kafka::*;
use common::*;

/// A query reading `events` as JSON and writing to `topic` with `sink_extra` options, after
/// `select` (selectExpr items).
fn query(name: &str, b: &str, select: &str, topic: &str, sink_extra: &str) -> String {
    format!(
        r#"
[[query]]
name = "{name}"
checkpointLocation = "ckpt-{name}"
trigger = "availableNow"

[query.source]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
subscribe = "events"
startingOffsets = "earliest"
valueFormat = "json"
schema = "id BIGINT, city STRING, amount BIGINT"

[[query.transform]]
where = "amount >= 300"

[[query.transform]]
selectExpr = [{select}]

[query.sink]
format = "kafka"
"kafka.bootstrap.servers" = "{b}"
topic = "{topic}"
{sink_extra}
"#
    )
}

/// Every record of `topic` as `(partition, key, value)`, sorted.
fn read(b: &str, topic: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = kcat(
        &["-C", "-b", b, "-t", topic, "-e", "-q", "-f", "%p\t%k\t%s\n"],
        "",
    )
    .iter()
    .map(|l| {
        let mut parts = l.splitn(3, '\t');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        (next(), next(), next())
    })
    .collect();
    rows.sort();
    rows
}

#[test]
fn json_values_become_columns_and_only_partition_column_routes_the_sink() {
    // The input has three partitions; `out` has one, so a source partition carried into the
    // sink would fail on partitions 1 and 2 of a topic that lacks them.
    let broker = Broker::start(&["events:3", "out:1", "routed:2"]);
    let b = broker.bootstrap.as_str();
    let events: String = event_lines(0..60);
    // Keys spread the records over the three partitions.
    for (i, line) in events.lines().enumerate() {
        kcat(
            &["-P", "-b", b, "-t", "events", "-p", &(i % 3).to_string()],
            &format!("{line}\n"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let text = query(
        "shaped",
        b,
        r#""CAST(id AS STRING) AS key", "to_json(named_struct('id', id, 'city', lower(city))) AS value", "partition""#,
        "out",
        "",
    ) + &query(
        "routed",
        b,
        r#""CAST(id AS STRING) AS key", "CAST(amount AS STRING) AS value", "CAST(id % 2 AS INT) AS p""#,
        "routed",
        r#"partitionColumn = "p""#,
    );
    let file = pipeline(dir.path(), &text);
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));

    let kept: Vec<(u64, String, u64)> = event_rows(0..60)
        .into_iter()
        .filter(|(_, _, amount)| *amount >= 300)
        .collect();
    let mut expected: Vec<(String, String, String)> = kept
        .iter()
        .map(|(id, city, _)| {
            (
                "0".to_owned(),
                id.to_string(),
                format!(r#"{{"id":{id},"city":"{}"}}"#, city.to_lowercase()),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(read(b, "out"), expected);

    let mut expected: Vec<(String, String, String)> = kept
        .iter()
        .map(|(id, _, amount)| ((id % 2).to_string(), id.to_string(), amount.to_string()))
        .collect();
    expected.sort();
    assert_eq!(read(b, "routed"), expected);
}

#[test]
fn validate_checks_expressions_against_the_json_value_s_fields() {
    let dir = tempfile::tempdir().unwrap();
    let text = query(
        "typo",
        "127.0.0.1:9",
        r#""CAST(id AS STRING) AS key", "to_json(named_struct('c', citty)) AS value""#,
        "out",
        "",
    );
    let file = pipeline(dir.path(), &text);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("citty") && stderr.contains("did you mean 'city'"),
        "{stderr}"
    );
    let bad = text.replace("id BIGINT, city STRING", "id BIGNUM, city STRING");
    std::fs::write(&file, bad).unwrap();
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source.schema") && stderr.contains("BIGNUM"),
        "{stderr}"
    );
}

/// The seeds' order analytics written in SQL over a Kafka topic of JSON orders (5-minute
/// revenue and count per category, 10-minute watermark, append), equal to the same query in
/// TOML and to the windows computed here from the orders.
#[test]
fn order_analytics_in_sql_over_kafka_equals_the_toml_query_and_the_orders() {
    let broker = Broker::start(&["orders:2"]);
    let b = broker.bootstrap.as_str();
    let categories = ["food", "tech", "toys"];
    // An order a minute for 100 minutes (none late), over two partitions.
    let orders: Vec<(i64, &str, i64)> = (0..100)
        .map(|m| (m, categories[(m % 3) as usize], 10 + m * 7 % 50))
        .collect();
    for (i, (m, c, a)) in orders.iter().enumerate() {
        let line = format!(
            "{{\"order_time\":\"2024-05-01T{:02}:{:02}:00Z\",\"category\":\"{c}\",\"amount\":{a}}}\n",
            12 + m / 60,
            m % 60
        );
        kcat(
            &["-P", "-b", b, "-t", "orders", "-p", &(i % 2).to_string()],
            &line,
        );
    }
    let run = |name: &str, body: &str| -> Vec<(String, i64, i64, i64)> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"[[query]]
name = "{name}"
checkpointLocation = "ckpt"
trigger = "availableNow"
outputMode = "append"
{body}

[query.sink]
format = "json"
path = "out"
"#
        );
        let text = text.replace(
            "INPUT",
            &format!(
                r#"format = "kafka"
"kafka.bootstrap.servers" = "{b}"
subscribe = "orders"
startingOffsets = "earliest"
valueFormat = "json"
schema = "order_time TIMESTAMP, category STRING, amount BIGINT"
watermark = {{ column = "order_time", delay = "10 minutes" }}"#
            ),
        );
        let file = pipeline(dir.path(), &text);
        run_ok(sluice().arg("run").arg(&file));
        let mut rows: Vec<(String, i64, i64, i64)> = committed_json(&dir.path().join("out"))
            .iter()
            .map(|r| {
                let start = r["window_start"]
                    .as_str()
                    .or_else(|| r["window"]["start"].as_str())
                    .unwrap();
                let minute = chrono::DateTime::parse_from_rfc3339(start)
                    .unwrap()
                    .timestamp()
                    / 60
                    - chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
                        .unwrap()
                        .timestamp()
                        / 60;
                (
                    r["category"].as_str().unwrap().to_owned(),
                    minute,
                    r["revenue"].as_i64().unwrap(),
                    r["orders"].as_i64().unwrap(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let from_sql = run(
        "revenue_sql",
        r#"sql = """
SELECT window.start AS window_start, category, sum(amount) AS revenue, count(*) AS orders
FROM orders
GROUP BY window(order_time, '5 minutes'), category
"""

[query.inputs.orders]
INPUT"#,
    );
    let from_toml = run(
        "revenue_toml",
        r#"[query.source]
INPUT

[query.aggregate]
groupBy = ["category"]
window = { column = "order_time", duration = "5 minutes" }
aggs = [{ fn = "sum", column = "amount", as = "revenue" }, { fn = "count", as = "orders" }]"#,
    );
    // The windows the watermark (99 - 10 minutes) has passed: those ending by minute 89.
    let mut expected: std::collections::BTreeMap<(String, i64), (i64, i64)> = Default::default();
    for (m, c, a) in &orders {
        let start = m - m % 5;
        if start + 5 <= 89 {
            let e = expected.entry((c.to_string(), start)).or_default();
            e.0 += a;
            e.1 += 1;
        }
    }
    let expected: Vec<(String, i64, i64, i64)> = expected
        .into_iter()
        .map(|((c, s), (r, n))| (c, s, r, n))
        .collect();
    assert_eq!(from_sql, expected);
    assert_eq!(from_toml, expected);
}
