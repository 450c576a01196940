//! Bad SQL, as `sluice validate` reports it: each mistake in a table with the pipeline line it
//! is placed at (the SQL's own line, counted from where the SQL starts in the TOML) and what
//! the message says — Spark's reason in plain words, the position, a close name for a typo.

mod common;

use common::*;

/// The pipeline around `sql` (which starts on line 5): inputs `orders` (watermarked) and
/// `clicks` (not), and a static table `users` (the SQL fuzz target plans inside it too).
fn pipeline_text(sql: &str) -> String {
    include_str!("fixtures/sql-validation/pipeline.toml").replace("{sql}", sql)
}

/// Where a message is placed: the SQL's line (1-based), or the query (a rule about the whole
/// query, reported at its key).
enum At {
    SqlLine(usize),
    Query,
}

use At::*;

/// (SQL, where, what the message says). Queries that read only `orders` leave `clicks`
/// unread, which validate also reports; each row checks its own message.
const CASES: &[(&str, At, &str)] = &[
    (
        "SELEC category FROM orders",
        SqlLine(1),
        "SQL line 1, column 1",
    ),
    (
        "SELECT *\nFROM ordres",
        SqlLine(2),
        "'ordres' is not an input, table or WITH name of the query (did you mean 'orders'?)",
    ),
    (
        "SELECT category FROM orders WHERE sum(amount) > 1",
        SqlLine(1),
        "an aggregate cannot be in WHERE; filter groups with HAVING",
    ),
    (
        "SELECT category, count(*) FROM orders\nGROUP BY window(order_time, '5 minutes', '10 minutes'), category",
        SqlLine(2),
        "must not exceed",
    ),
    (
        "SELECT category FROM orders\nUNION\nSELECT category FROM orders",
        SqlLine(1),
        "write UNION ALL",
    ),
    (
        "SELECT * FROM orders\nORDER BY amount",
        SqlLine(2),
        "ORDER BY is not supported on a stream",
    ),
    (
        "SELECT * FROM orders LIMIT 10",
        SqlLine(1),
        "LIMIT is not supported on a stream",
    ),
    (
        "SELECT * FROM orders o\nCROSS JOIN clicks c",
        SqlLine(2),
        "a CROSS JOIN of streams is not supported",
    ),
    (
        "SELECT * FROM orders o JOIN clicks c USING (id)",
        SqlLine(1),
        "USING and NATURAL are not planned; name the keys",
    ),
    (
        "SELECT * FROM orders o, clicks c",
        SqlLine(1),
        "combine several with JOIN ... ON",
    ),
    (
        "SELECT * FROM orders o\nLEFT JOIN clicks c ON c.id = o.id",
        SqlLine(2),
        "needs an event-time range in ON",
    ),
    (
        "SELECT * FROM orders o LEFT JOIN clicks c\nON c.id = o.id AND c.click_time BETWEEN o.order_time AND o.order_time + INTERVAL 1 HOUR",
        SqlLine(1),
        "needs a watermark on both sides: add watermark = { column = \"click_time\"",
    ),
    (
        "SELECT * FROM orders o LEFT ANTI JOIN clicks c ON c.id = o.id",
        SqlLine(1),
        "LEFT ANTI JOIN between two streams is not supported",
    ),
    (
        "SELECT * FROM orders o FULL OUTER JOIN users u ON o.uid = u.id",
        SqlLine(1),
        "a FULL OUTER join with a static table is not supported",
    ),
    (
        "SELECT * FROM users u LEFT JOIN orders o ON o.uid = u.id",
        SqlLine(1),
        "put the stream first",
    ),
    (
        "SELECT * FROM orders o JOIN clicks c ON c.click_time > o.order_time",
        SqlLine(1),
        "a join needs at least one pair of equal keys",
    ),
    (
        "SELECT * FROM orders o JOIN users u ON uid = u.id",
        SqlLine(1),
        "name the side of 'uid' in ON: o.uid or u.uid",
    ),
    (
        "SELECT * FROM orders o JOIN clicks c ON c.id = o.id AND c.click_time >= o.order_time",
        Query,
        "is open on one end",
    ),
    (
        "SELECT * FROM orders o JOIN clicks c ON o.id = c.id\nAND c.click_time BETWEEN o.order_time + INTERVAL 1 HOUR AND o.order_time",
        Query,
        "is empty",
    ),
    (
        "SELECT DISTINCT category, count(*) FROM orders GROUP BY category",
        SqlLine(1),
        "SELECT DISTINCT with GROUP BY or aggregates is not planned",
    ),
    (
        "SELECT count(*) FROM orders\nGROUP BY window(order_time, '5 minutes'), window(order_time, '10 minutes')",
        SqlLine(2),
        "one window per GROUP BY",
    ),
    ("SELECT 1;\nSELECT 2", SqlLine(2), "one statement per query"),
    (
        "INSERT INTO t VALUES (1)",
        SqlLine(1),
        "a query is one SELECT statement",
    ),
    (
        "SELECT id FROM orders\nINTERSECT\nSELECT id FROM orders",
        SqlLine(1),
        "only SELECT and UNION ALL are planned",
    ),
    (
        "WITH RECURSIVE r AS (SELECT * FROM orders) SELECT * FROM r",
        SqlLine(1),
        "WITH RECURSIVE is not supported on a stream",
    ),
    (
        "SELECT * FROM (orders o JOIN clicks c ON o.id = c.id)",
        SqlLine(1),
        "a parenthesised join is not planned",
    ),
    (
        "SELECT * FROM users",
        SqlLine(1),
        "'users' is a static table; a query reads a stream",
    ),
    (
        "SELECT category, count(*) AS n FROM orders GROUP BY category",
        Query,
        "append mode with an aggregation needs a watermark on the grouped event time",
    ),
    (
        "SELECT category FROM orders\nGROUP BY category, window(order_time, 'five minutes')",
        SqlLine(2),
        "is not a duration",
    ),
    (
        "SELECT count(*) FROM orders GROUP BY session_window(order_time)",
        SqlLine(1),
        "write window(ts, '5 minutes'[, slide[, start]]) or session_window(ts, '5 minutes')",
    ),
    (
        "SELECT u.name, count(*) AS n FROM orders o JOIN users u ON o.uid = u.id\nGROUP BY window(u.since, '5 minutes'), u.name",
        SqlLine(2),
        "a window over a join reads the event time of its first side ('o')",
    ),
    (
        "SELECT category, count(*) FROM orders GROUP BY ALL",
        SqlLine(1),
        "GROUP BY ALL and modifiers are not supported",
    ),
    (
        "SELECT * FROM orders o RIGHT JOIN clicks c ON o.id = c.id",
        SqlLine(1),
        "a RIGHT OUTER join between streams needs an event-time range",
    ),
    (
        "SELECT sum(amount, 2) AS s FROM orders GROUP BY window(order_time, '5 minutes')",
        SqlLine(1),
        "sum takes one column or expression",
    ),
    (
        "SELECT * FROM orders\nWHERE amount > (SELECT max(amount) FROM orders)",
        SqlLine(2),
        "a subquery inside an expression is not supported on a stream",
    ),
    (
        "SELECT * FROM orders WHERE id IN (SELECT id FROM clicks)",
        SqlLine(1),
        "LEFT SEMI JOIN for IN/EXISTS",
    ),
    (
        "SELECT * FROM lateral_view(orders)",
        SqlLine(1),
        "'lateral_view' is not a processor; a table function is a keyed processor [functions] declares",
    ),
    // Checked against the declared schemas through joins and into aggregations.
    (
        "SELECT o.id, u.nam FROM orders o JOIN users u ON o.uid = u.id",
        Query,
        "unknown column 'u.nam' (did you mean 'u.name'?)",
    ),
    (
        "SELECT o.id FROM orders o JOIN users u ON o.uid = u.name",
        Query,
        "key 'uid' is Int64 on the left but 'name' is Utf8 on the right",
    ),
    (
        "SELECT categry, count(*) AS n FROM orders\nGROUP BY categry, window(order_time, '5 minutes')",
        Query,
        "categry",
    ),
    (
        "SELECT o.id FROM orders o JOIN clicks c ON o.id = c.id WHERE",
        SqlLine(1),
        "Expected: an expression",
    ),
    // Refused before sqlparser, which backtracked for minutes on unclosed brackets after
    // dotted names (ten of them would be days; found by the `sql` fuzz target).
    (
        "SELECT\n-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s-i.a.u.h.m[s FROM orders",
        SqlLine(2),
        "'[' is never closed",
    ),
];

#[test]
fn validate_places_each_sql_mistake_at_its_line_with_spark_s_reason() {
    assert!(CASES.len() >= 30);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    let mut failures = Vec::new();
    for (sql, at, says) in CASES {
        std::fs::write(&file, pipeline_text(sql)).unwrap();
        let out = sluice().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let placed = match at {
            SqlLine(l) => stderr
                .lines()
                .any(|line| line.contains(&format!("p.toml:{}:", 4 + l)) && line.contains(says)),
            Query => stderr.contains(says),
        };
        if out.status.code() != Some(2) || !placed {
            failures.push(format!("{sql}\n  expected {says:?}\n  got: {stderr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn a_column_two_joined_sides_share_is_refused_as_ambiguous_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(
        &dir.path().join("in"),
        "0.json",
        "{\"id\":1,\"uid\":7}\n{\"id\":2,\"uid\":8}\n",
    );
    drop_file(
        &dir.path().join("users"),
        "0.json",
        "{\"id\":7,\"name\":\"Ann\"}\n",
    );
    let text = |select: &str, checkpoint: &str| {
        format!(
            r#"[[query]]
name = "q"
checkpointLocation = "{checkpoint}"
trigger = "availableNow"
sql = "{select} FROM orders o JOIN users u ON o.uid = u.id"

[query.inputs.orders]
format = "json"
path = "in"
schema = "id BIGINT, uid BIGINT"

[query.tables.users]
format = "json"
path = "users"
schema = "id BIGINT, name STRING"

[query.sink]
format = "json"
path = "out"
"#
        )
    };
    let file = pipeline(dir.path(), &text("SELECT id, name", "ckpt-1"));
    // The join's output schema is known from the declared ones: `run` refuses as `validate`.
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'id' is ambiguous: both sides of the join have it; write o.id or u.id"),
        "{stderr}"
    );
    // Qualified, each side's `id` is its own.
    let file = pipeline(
        dir.path(),
        &text("SELECT o.id, u.id AS user_id, name", "ckpt-2"),
    );
    run_ok(sluice().arg("run").arg(&file));
    let rows = committed_json(&dir.path().join("out"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[0]["user_id"], 7);
    assert_eq!(rows[0]["name"], "Ann");
}

/// `sql = { file = ... }` naming something endless is refused at its line, not read until
/// memory runs out (found while writing the fuzz targets).
#[test]
fn an_endless_sql_file_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("SELECT id FROM orders").replace(
        "sql = \"\"\"\nSELECT id FROM orders\n\"\"\"",
        "sql = { file = \"/dev/zero\" }",
    );
    let file = pipeline(dir.path(), &text);
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pipeline.toml:4:")
            && stderr.contains("cannot read /dev/zero: it is larger than 1048576 bytes"),
        "{stderr}"
    );
}
