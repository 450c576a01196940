//! The PostgreSQL sink against a real server: Debian's `postgresql`, started here on a free
//! port in a temporary directory (as the `postgres` user when the tests run as root, which
//! the server refuses to be), with password authentication; rows checked with `psql`.

mod common;

use std::path::{Path, PathBuf};

use common::postgres::{PASSWORD, Postgres};
use common::*;

/// `files` JSON files of `per_file` orders each (order ids 0..), in `dir/orders`.
fn orders(dir: &Path, files: u64, per_file: u64) {
    for f in 0..files {
        let lines: String = (f * per_file..(f + 1) * per_file)
            .map(|i| {
                format!(
                    "{{\"order_id\":{i},\"category\":\"c{}\",\"amount\":{},\"ts\":\"2026-12-01T10:{:02}:{:02}Z\",\"note\":{}}}\n",
                    i % 5,
                    (i * 37) % 1000,
                    (i / 60) % 60,
                    i % 60,
                    if i % 7 == 0 { "null".to_owned() } else { format!("\"n{i}\"") }
                )
            })
            .collect();
        drop_file(&dir.join("orders"), &format!("orders-{f:02}.json"), &lines);
    }
}

/// A pipeline file in `d` reading the orders in `d/orders` (see [`orders`]) into a postgres
/// sink: `query` holds the query's lines (trigger, checkpoint, ...), `source` extra source
/// lines, `sink` the sink's lines after its format.
fn orders_pipeline(d: &Path, query: &str, source: &str, sink: &str) -> PathBuf {
    pipeline(
        d,
        &format!(
            r#"[[query]]
{query}
[query.source]
format = "json"
path = "{}/orders"
schema = "order_id BIGINT, category STRING, amount BIGINT, ts TIMESTAMP, note STRING"
mode = "FAILFAST"
{source}
[query.sink]
format = "postgres"
{sink}
"#,
            d.display()
        ),
    )
}

/// The query lines of a one-pass load named `name`.
const AVAILABLE_NOW: &str =
    "name = \"load\"\ncheckpointLocation = \"ckpt\"\ntrigger = \"availableNow\"";

fn run_ok_env(file: &Path) -> String {
    let out = sluice()
        .arg("run")
        .arg(file)
        .env("SLUICE_TEST_PGPASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn append_and_upsert_through_the_cli_write_every_row_once() {
    let pg = Postgres::start();
    let db = pg.database("shop");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    orders(d, 4, 250);
    let source = format!(
        r#"[query.source]
format = "json"
path = "{}/orders"
schema = "order_id BIGINT, category STRING, amount BIGINT, ts TIMESTAMP, note STRING"
mode = "FAILFAST"
maxFilesPerTrigger = 1
"#,
        d.display()
    );
    let append = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "load"
checkpointLocation = "ckpt-load"
trigger = "availableNow"
{source}
[query.sink]
format = "postgres"
url = "{url}"
password = {{ env = "SLUICE_TEST_PGPASSWORD" }}
table = "orders"
createTable = true
"#,
            url = pg.url(&db)
        ),
    );
    run_ok_env(&append);
    // Every row once, with its values: count, distinct ids, sums, nulls, a timestamp.
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*), count(DISTINCT order_id), sum(amount), count(note), \
             min(ts)::text FROM orders"
        ),
        vec![format!(
            "1000|1000|{}|{}|2026-12-01 10:00:00+00",
            (0..1000u64).map(|i| (i * 37) % 1000).sum::<u64>(),
            (0..1000).filter(|i| i % 7 != 0).count()
        )]
    );
    assert_eq!(
        pg.psql(&db, "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position"),
        vec!["bigint", "text", "bigint", "timestamp with time zone", "text"]
    );
    // A second run finds nothing new and writes nothing.
    run_ok_env(&append);
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM orders"), vec!["1000"]);
    // The batches are recorded: four files, four batches.
    assert_eq!(
        pg.psql(&db, "SELECT sink, batch_id FROM sluice_progress"),
        vec!["orders|3"]
    );

    // Upsert: revenue per category, updated each batch, one row per category at the end.
    let upsert = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "revenue"
checkpointLocation = "ckpt-revenue"
trigger = "availableNow"
outputMode = "update"
{source}
[query.aggregate]
groupBy = ["category"]
aggs = [{{ fn = "sum", column = "amount", as = "revenue" }}, {{ fn = "count", as = "orders" }}]
[query.sink]
format = "postgres"
url = "{url}"
password = {{ env = "SLUICE_TEST_PGPASSWORD" }}
table = "revenue"
mode = "upsert"
key = ["category"]
createTable = true
"#,
            url = pg.url(&db)
        ),
    );
    run_ok_env(&upsert);
    let want: Vec<String> = (0..5u64)
        .map(|c| {
            let ids = (0..1000u64).filter(|i| i % 5 == c);
            let revenue: u64 = ids.clone().map(|i| (i * 37) % 1000).sum();
            format!("c{c}|{revenue}|{}", ids.count())
        })
        .collect();
    assert_eq!(
        pg.psql(
            &db,
            "SELECT category, revenue, orders FROM revenue ORDER BY category"
        ),
        want
    );
}

#[test]
fn bad_postgres_pipelines_are_refused_with_the_field_and_the_reason() {
    let pg = Postgres::start();
    let db = pg.database("refusals");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    orders(d, 1, 10);
    let with_sink = |sink: &str| orders_pipeline(d, AVAILABLE_NOW, "", sink);
    let url = pg.url(&db);
    for (sink, expected) in [
        (
            format!("url = \"{url} password=x\"\ntable = \"t\""),
            "holds a password",
        ),
        (
            format!("url = \"{url}\"\npassword = \"{PASSWORD}\"\ntable = \"t\""),
            "a secret written into the pipeline is refused",
        ),
        (
            format!("url = \"{url}\"\ntable = \"t\"\nmode = \"upsert\""),
            "an upsert needs the key columns",
        ),
        (
            format!(
                "url = \"{url}\"\npassword = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\ntable = \"missing\""
            ),
            "relation \"missing\" does not exist",
        ),
        (
            format!(
                "url = \"{url}\"\npassword = {{ env = \"SLUICE_TEST_NOT_SET\" }}\ntable = \"t\""
            ),
            "SLUICE_TEST_NOT_SET is not set",
        ),
    ] {
        let file = with_sink(&sink);
        let out = sluice()
            .arg("run")
            .arg(&file)
            .env("SLUICE_TEST_PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sink}: accepted");
        assert!(stderr.contains(expected), "{sink}: {stderr}");
        assert!(
            !stderr.contains(PASSWORD) || sink.contains(&format!("\"{PASSWORD}\"")),
            "the password leaked: {stderr}"
        );
    }
    // A column that does not fit its table column is named.
    pg.psql(&db, "CREATE TABLE typed (order_id bigint, category bigint, amount bigint, ts timestamptz, note text)");
    let file = with_sink(&format!(
        "url = \"{url}\"\npassword = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\ntable = \"typed\""
    ));
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("SLUICE_TEST_PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("column 'category' is Utf8 in the query but int8 in the table"),
        "{stderr}"
    );
}

#[test]
fn a_foreach_batch_handler_writes_two_postgres_outputs_once_per_batch() {
    let pg = Postgres::start();
    let db = pg.database("handler");
    let dir = tempfile::tempdir().unwrap();
    let file = example("two-sinks", dir.path());
    let url = pg.url(&db);
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text
        .replace(
            "[query.outputs.archive]\nformat = \"json\"\npath = \"out/orders-archive\"",
            &format!(
                "[query.outputs.archive]\nformat = \"postgres\"\nurl = \"{url}\"\n\
                 password = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\ntable = \"archive\"\n\
                 mode = \"upsert\"\nkey = [\"order_id\"]\ncreateTable = true"
            ),
        )
        .replace(
            "[query.outputs.alerts]\nformat = \"console\"",
            &format!(
                "[query.outputs.alerts]\nformat = \"postgres\"\nurl = \"{url}\"\n\
                 password = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\ntable = \"alerts\"\ncreateTable = true"
            ),
        );
    assert!(text.contains("table = \"alerts\""), "{text}");
    std::fs::write(&file, text).unwrap();
    run_ok_env(&file);
    // Every order of the example's three files once, tagged with its batch (file i is
    // batch i: one file a trigger).
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("data/orders"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    let orders: Vec<(usize, serde_json::Value)> = files
        .iter()
        .enumerate()
        .flat_map(|(batch, f)| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| (batch, serde_json::from_str(l).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    let archived = pg.psql(
        &db,
        "SELECT count(*), count(DISTINCT order_id), count(DISTINCT batch_id) FROM archive",
    );
    assert_eq!(
        archived,
        vec![format!("{}|{}|{}", orders.len(), orders.len(), files.len())]
    );
    let big: Vec<&(usize, serde_json::Value)> = orders
        .iter()
        .filter(|(_, v)| v["amount"].as_i64().unwrap() >= 900_000)
        .collect();
    assert!(!big.is_empty());
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM alerts"),
        vec![big.len().to_string()]
    );
    let last_alert_batch = big.iter().map(|(b, _)| *b).max().unwrap();
    assert_eq!(
        pg.psql(
            &db,
            "SELECT sink, batch_id FROM sluice_progress ORDER BY sink"
        ),
        vec![
            format!("outputs.alerts|{last_alert_batch}"),
            format!("outputs.archive|{}", files.len() - 1)
        ]
    );
    // Run again: nothing new, nothing written twice.
    run_ok_env(&file);
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM archive"),
        vec![orders.len().to_string()]
    );
}

#[test]
fn kill_minus_nine_at_every_point_of_a_postgres_load_leaves_each_row_once() {
    let pg = Postgres::start();
    let db = pg.database("crash");
    let points = [
        "before-offsets",
        "after-offsets",
        "postgres-mid-copy",
        "postgres-before-commit",
        "postgres-after-commit",
        "after-sink",
        "after-commit",
    ];
    let (files, per_file) = (4u64, 300u64);
    let expected_sum: u64 = (0..files * per_file).map(|i| (i * 37) % 1000).sum();
    let mut kills = 0;
    for batch in 0..files {
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            orders(d, files, per_file);
            let table = format!("load_{kills}");
            // Every other run upserts by order id: the same rows, merged instead of appended.
            let mode = if kills % 2 == 1 {
                "mode = \"upsert\"\nkey = [\"order_id\"]"
            } else {
                ""
            };
            let file = orders_pipeline(
                d,
                AVAILABLE_NOW,
                "maxFilesPerTrigger = 1",
                &format!(
                    "url = \"{}\"\npassword = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\n\
                     table = \"{table}\"\ncreateTable = true\n{mode}",
                    pg.url(&db)
                ),
            );
            let failpoint = format!("{point}:{batch}");
            let mut run = Running::start(
                &file,
                &[],
                &[
                    ("SLUICE_FAILPOINTS", &failpoint),
                    ("SLUICE_TEST_PGPASSWORD", PASSWORD),
                ],
            );
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let (code, _) = run.wait();
            assert_eq!(code, None, "{failpoint}: not killed");
            kills += 1;
            // Whatever a reader sees after the crash is whole batches, each row once.
            let partial = pg.psql(
                &db,
                &format!("SELECT count(*), count(DISTINCT order_id) FROM {table}"),
            );
            let (n, distinct) = partial[0].split_once('|').unwrap();
            assert_eq!(n, distinct, "{failpoint}: a row twice");
            assert_eq!(
                n.parse::<u64>().unwrap() % per_file,
                0,
                "{failpoint}: part of a batch"
            );

            run_ok_env(&file);
            assert_eq!(
                pg.psql(
                    &db,
                    &format!("SELECT count(*), count(DISTINCT order_id), sum(amount) FROM {table}")
                ),
                vec![format!(
                    "{}|{}|{expected_sum}",
                    files * per_file,
                    files * per_file
                )],
                "{failpoint}"
            );
            // The progress table says the last batch was written, for this table.
            assert_eq!(
                pg.psql(
                    &db,
                    &format!("SELECT batch_id FROM sluice_progress WHERE sink = '{table}'")
                ),
                vec![(files - 1).to_string()],
                "{failpoint}"
            );
        }
    }
    assert!(kills >= 20, "{kills}");
}

#[test]
fn a_stream_joins_a_postgres_table_and_sees_it_change_through_its_version_query() {
    let pg = Postgres::start();
    let db = pg.database("enrich");
    pg.psql(
        &db,
        "CREATE TABLE users (id bigint PRIMARY KEY, name text, tier text, since date, \
         updated_at timestamptz NOT NULL DEFAULT now(), profile jsonb, credit numeric(10, 2)); \
         INSERT INTO users (id, name, tier, since, profile, credit) VALUES \
         (0, 'ann', 'gold', '2024-02-29', '{\"lang\": \"ko\"}', 12.5), \
         (1, 'bo', 'silver', NULL, NULL, -0.25), (2, 'cy', 'gold', '2020-01-01', '[1, 2]', 1000000)",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let events = |ids: &[u64]| -> String {
        ids.iter()
            .map(|i| format!("{{\"user_id\":{i},\"clicks\":{}}}\n", i * 10))
            .collect()
    };
    drop_file(&d.join("events"), "e-0.json", events(&[0, 1, 2, 3]));
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "enrich"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{}/events"
schema = "user_id BIGINT, clicks BIGINT"
mode = "FAILFAST"
[query.join]
type = "leftOuter"
on = [["user_id", "id"]]
[query.join.table]
format = "postgres"
url = "{url}"
password = {{ env = "SLUICE_TEST_PGPASSWORD" }}
query = "SELECT id, name, tier, since, profile, credit FROM users"
versionQuery = "SELECT max(updated_at) FROM users"
[query.sink]
format = "json"
path = "out"
"#,
            d.display(),
            url = pg.url(&db)
        ),
    );
    run_ok_env(&file);
    // The table changes: bo becomes gold, user 3 appears.
    pg.psql(
        &db,
        "UPDATE users SET tier = 'gold', updated_at = now() + interval '1 second' WHERE id = 1; \
         INSERT INTO users (id, name, tier) VALUES (3, 'di', 'bronze')",
    );
    drop_file(&d.join("events"), "e-1.json", events(&[1, 3, 4]));
    run_ok_env(&file);
    let mut rows: Vec<String> = committed_json(&d.join("out"))
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r["user_id"],
                r["clicks"],
                r["name"],
                r["tier"],
                r["since"],
                r["profile"],
                r["credit"]
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            // Batch 0 joined with the first version.
            r#"0 0 "ann" "gold" "2024-02-29" "{\"lang\": \"ko\"}" 12.5"#,
            r#"1 10 "bo" "gold" null null -0.25"#,
            r#"1 10 "bo" "silver" null null -0.25"#,
            r#"2 20 "cy" "gold" "2020-01-01" "[1, 2]" 1000000.0"#,
            r#"3 30 "di" "bronze" null null null"#,
            r#"3 30 null null null null null"#,
            r#"4 40 null null null null null"#,
        ]
    );
    // Each batch's offsets entry names the table version it joined with.
    let version = |n: u32| -> String {
        let entry: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(format!("ckpt/offsets/{n}"))).unwrap(),
        )
        .unwrap();
        entry["tables"]["join"].as_str().unwrap().to_owned()
    };
    assert_ne!(version(0), version(1));
}

#[test]
fn a_server_that_goes_away_fails_the_batch_clearly_and_the_query_resumes_exactly_once() {
    let mut pg = Postgres::start();
    let db = pg.database("outage");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    orders(d, 1, 100);
    let file = orders_pipeline(
        d,
        "name = \"load\"\ncheckpointLocation = \"ckpt\"\n\
         trigger = { processingTime = \"100 milliseconds\" }",
        "",
        &format!(
            "url = \"{}\"\npassword = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\n\
             table = \"orders\"\ncreateTable = true",
            pg.url(&db)
        ),
    );
    let mut run = Running::start(&file, &[], &[("SLUICE_TEST_PGPASSWORD", PASSWORD)]);
    run.await_line("batch committed");
    pg.stop();
    // The next file's batch cannot be written: the query stops with the batch, the host and
    // the table named.
    let second: String = (100..200u64)
        .map(|i| {
            format!(
                "{{\"order_id\":{i},\"category\":\"c\",\"amount\":1,\"ts\":\"2026-12-01T10:00:00Z\",\"note\":null}}\n"
            )
        })
        .collect();
    drop_file(&d.join("orders"), "orders-99.json", &second);
    let (code, log) = run.wait();
    assert_eq!(code, Some(1), "{log}");
    let place = format!("PostgresSink[127.0.0.1:{}/{db} orders]", pg.port);
    assert!(log.contains(&place), "{log}");
    assert!(log.contains("batch 1"), "{log}");
    assert!(!log.contains(PASSWORD), "the password leaked: {log}");
    // Back up: the query resumes with batch 1, every row once.
    pg.restart();
    let available = std::fs::read_to_string(&file).unwrap().replace(
        "trigger = { processingTime = \"100 milliseconds\" }",
        "trigger = \"availableNow\"",
    );
    std::fs::write(&file, available).unwrap();
    run_ok_env(&file);
    assert_eq!(
        pg.psql(&db, "SELECT count(*), count(DISTINCT order_id) FROM orders"),
        vec!["200|200"]
    );

    // A wrong password fails at start, once, saying so.
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("SLUICE_TEST_PGPASSWORD", "not-the-password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("password authentication failed for user \"sluice\""),
        "{stderr}"
    );
    assert!(stderr.contains(&place), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

#[test]
fn a_tls_only_server_is_reached_with_its_ca_and_refused_without_it() {
    let certs = tempfile::tempdir().unwrap();
    common::tls::certificates(certs.path());
    let pg = Postgres::start_with(Some(certs.path()));
    let db = pg.database("secure");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    orders(d, 2, 50);
    let with = |url_extra: &str, tls: &str| {
        orders_pipeline(
            d,
            AVAILABLE_NOW,
            "",
            &format!(
                "url = \"{}{url_extra}\"\npassword = {{ env = \"SLUICE_TEST_PGPASSWORD\" }}\n\
                 table = \"orders\"\ncreateTable = true\n{tls}",
                pg.url(&db)
            ),
        )
    };
    let fails = |file: &Path, expected: &str| {
        let out = sluice()
            .arg("run")
            .arg(file)
            .env("SLUICE_TEST_PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    };
    // Plain TCP: the server has no line for it.
    fails(&with(" sslmode=disable", ""), "no encryption");
    // TLS, but the server's CA is not in the system's store.
    fails(&with(" sslmode=require", ""), "UnknownIssuer");
    // TLS with the CA: the rows arrive.
    let ca = certs.path().join("ca.crt");
    let file = with(
        " sslmode=require",
        &format!("sslRootCert = \"{}\"", ca.display()),
    );
    run_ok_env(&file);
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM orders"), vec!["100"]);
}

#[test]
fn floats_and_integers_go_into_numeric_columns_by_their_decimal_value() {
    let pg = Postgres::start();
    let db = pg.database("money");
    pg.psql(
        &db,
        "CREATE TABLE prices (id numeric, price numeric, cents numeric(12, 2))",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let values = [(1, "12.5"), (2, "-0.25"), (3, "123456789.125"), (4, "0.1")];
    let lines: String = values
        .iter()
        .map(|(id, p)| format!("{{\"id\":{id},\"price\":{p},\"cents\":{p}}}\n"))
        .collect();
    drop_file(&d.join("prices"), "p.json", &lines);
    let file = pipeline(
        d,
        &format!(
            r#"[[query]]
name = "prices"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "{}/prices"
schema = "id BIGINT, price DOUBLE, cents DOUBLE"
mode = "FAILFAST"
[query.sink]
format = "postgres"
url = "{url}"
password = {{ env = "SLUICE_TEST_PGPASSWORD" }}
table = "prices"
"#,
            d.display(),
            url = pg.url(&db)
        ),
    );
    run_ok_env(&file);
    assert_eq!(
        pg.psql(&db, "SELECT id, price, cents FROM prices ORDER BY id"),
        vec![
            "1|12.5|12.50",
            "2|-0.25|-0.25",
            "3|123456789.125|123456789.13",
            "4|0.1|0.10"
        ]
    );
}
