//! The Elasticsearch sink through the CLI against a real Elasticsearch-compatible server
//! (`noida-db`), read back with plain HTTP: documents by id, replays after kill -9 that write
//! each document once, refused rows kept in a dead-letter output, a server that goes away.

mod common;

use std::path::Path;

use common::elasticsearch::Elasticsearch;
use common::*;

/// Json files in `in/` (one per batch) to the index `events` at `url`, with `sink_options`.
fn es_pipeline(dir: &Path, url: &str, sink_options: &str, extra: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "to-es"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
maxFilesPerTrigger = 1

[query.sink]
format = "elasticsearch"
url = "{url}"
index = "events"
bulkSize = 7
{sink_options}
{extra}"#
        ),
    )
}

/// Three files of events: ids 0..30, 30..60, 60..90, read in that order.
fn three_files(dir: &Path) {
    for (i, range) in [0..30, 30..60, 60..90].into_iter().enumerate() {
        let f = drop_file(&dir.join("in"), &format!("{i}.json"), event_lines(range));
        set_mtime(&f, 100 - i as u64);
    }
}

fn rows(docs: &[(String, serde_json::Value)]) -> Vec<(u64, String, u64)> {
    let mut out: Vec<(u64, String, u64)> = docs
        .iter()
        .map(|(_, d)| {
            (
                d["id"].as_u64().unwrap(),
                d["city"].as_str().unwrap().to_owned(),
                d["amount"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rows_become_documents_with_ids_from_their_columns() {
    let es = Elasticsearch::start();
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let file = es_pipeline(
        dir.path(),
        &es.url,
        "idColumns = [\"city\", \"id\"]\nrefresh = \"wait_for\"",
        "",
    );
    run_ok(sluice().arg("validate").arg(&file));
    run_ok(sluice().arg("run").arg(&file));
    assert_eq!(es.count("events"), 90);
    assert_eq!(rows(&es.docs("events")), event_rows(0..90));
    // The id is the columns' values joined by ':'.
    let doc = es.doc("events", "Busan:5").expect("document Busan:5");
    assert_eq!(doc["amount"], 50);
    // Run again over the same files from a new checkpoint: the same ids, nothing added.
    std::fs::remove_dir_all(dir.path().join("ckpt")).unwrap();
    run_ok(sluice().arg("run").arg(&file));
    assert_eq!(es.count("events"), 90);
}

#[test]
fn an_index_template_sends_each_row_to_its_column_s_index() {
    let es = Elasticsearch::start();
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let file = es_pipeline(dir.path(), &es.url, "idColumns = [\"id\"]", "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("index = \"events\"", "index = \"by-{city}\"");
    std::fs::write(&file, text).unwrap();
    run_ok(sluice().arg("run").arg(&file));
    for (i, city) in ["Seoul", "Busan", "Incheon", "Daegu"].iter().enumerate() {
        let docs = es.docs(&format!("by-{city}"));
        let ids: Vec<u64> = rows(&docs).iter().map(|r| r.0).collect();
        let want: Vec<u64> = (0..90).filter(|n| n % 4 == i as u64).collect();
        assert_eq!(ids, want, "{city}");
    }
}

#[test]
fn a_batch_killed_at_any_point_writes_each_document_once_after_the_restart() {
    let es = Elasticsearch::start();
    let mut killed = 0;
    for batch in 0..4 {
        for point in [
            "before-offsets",
            "after-offsets",
            "mid-sink",
            "after-sink",
            "after-commit",
        ] {
            // Each case its own index: no idColumns, so ids come from the query id (this
            // checkpoint's), the batch id and the row's position.
            let index = format!("crash-{batch}-{point}");
            let dir = tempfile::tempdir().unwrap();
            three_files(dir.path());
            // A fourth batch, so every point is hit in four batches (20 kills).
            let f = drop_file(&dir.path().join("in"), "3.json", event_lines(90..120));
            set_mtime(&f, 97);
            let file = es_pipeline(dir.path(), &es.url, "", "")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file)
                .unwrap()
                .replace("index = \"events\"", &format!("index = \"{index}\""));
            std::fs::write(&file, text).unwrap();
            let failpoint = format!("{point}:{batch}");
            let mut run =
                Running::start(Path::new(&file), &[], &[("SLUICE_FAILPOINTS", &failpoint)]);
            run.await_line(&format!("sluice-failpoint: {point} batch {batch}"));
            run.signal(9);
            let _ = run.wait();
            killed += 1;
            let out = sluice().arg("run").arg(&file).output().unwrap();
            assert!(
                out.status.success(),
                "{failpoint}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let docs = es.docs(&index);
            assert_eq!(docs.len(), 120, "{failpoint}: {} documents", docs.len());
            assert_eq!(rows(&docs), event_rows(0..120), "{failpoint}");
        }
    }
    assert_eq!(killed, 20);
}

#[test]
fn refused_rows_go_to_the_dead_letter_output_with_the_reason_or_fail_the_batch() {
    let es = Elasticsearch::start();
    let dir = tempfile::tempdir().unwrap();
    // Rows without a city have no id: refused, never written under an id of chance.
    let mut lines = event_lines(0..10);
    lines.push_str("{\"id\":100,\"amount\":1}\n{\"id\":101,\"amount\":2}\n");
    drop_file(&dir.path().join("in"), "0.json", &lines);
    let file = es_pipeline(
        dir.path(),
        &es.url,
        "idColumns = [\"city\"]\ndeadLetter = \"refused\"",
        "[query.outputs.refused]\nformat = \"json\"\npath = \"refused\"\n",
    );
    run_ok(sluice().arg("run").arg(&file));
    // Ten rows over four cities: the last row of each city wins its id.
    assert_eq!(es.count("events"), 4);
    let refused = committed_json(&dir.path().join("refused"));
    let mut ids: Vec<u64> = refused.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [100, 101]);
    assert!(
        refused
            .iter()
            .all(|r| r["_error"].as_str().unwrap().contains("'city' is null")),
        "{refused:?}"
    );

    // Without a deadLetter output the batch fails, naming the sink, the batch and the reason.
    let dir = tempfile::tempdir().unwrap();
    drop_file(&dir.path().join("in"), "0.json", &lines);
    let file = es_pipeline(dir.path(), &es.url, "idColumns = [\"city\"]", "");
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ElasticsearchSink[")
            && stderr.contains("batch 0")
            && stderr.contains("2 documents were refused")
            && stderr.contains("deadLetter"),
        "{stderr}"
    );

    // A deadLetter naming no output is refused by validate, at its line.
    let file = es_pipeline(
        dir.path(),
        &es.url,
        "idColumns = [\"city\"]\ndeadLetter = \"nowhere\"",
        "",
    );
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "pipeline.toml:18: query 'to-es': sink.deadLetter: no output named 'nowhere'"
        ),
        "{stderr}"
    );
}

#[test]
fn a_server_that_goes_away_fails_the_batch_and_a_restart_writes_every_row_once() {
    let mut es = Elasticsearch::start();
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let file = es_pipeline(dir.path(), &es.url, "maxRetries = 1", "");
    // The query pauses after committing batch 0; the server goes away; the query goes on.
    let mut cmd = sluice();
    cmd.arg("run")
        .arg(&file)
        .env("SLUICE_FAILPOINTS", "after-commit:0")
        .env("SLUICE_FAILPOINTS_RESUME", "stdin")
        .stdin(std::process::Stdio::piped());
    let mut run = Running::spawn(cmd);
    run.await_line("sluice-failpoint: after-commit batch 0");
    let url = es.url.clone();
    es.stop();
    run.resume();
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "sink ElasticsearchSink[{url}]: batch 1: _bulk failed 2 times"
        )),
        "{stderr}"
    );
    // A new server on another port: the pipeline follows it, and batches 1 and 2 (never
    // committed) are written there once.
    let es = Elasticsearch::start();
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace(&url, &es.url),
    )
    .unwrap();
    run_ok(sluice().arg("run").arg(&file));
    assert_eq!(rows(&es.docs("events")), event_rows(30..90));
}

#[test]
fn https_with_the_server_s_ca_and_basic_auth_from_a_secret() {
    let es = Elasticsearch::start();
    let certs = tempfile::tempdir().unwrap();
    common::tls::certificates(certs.path());
    let port = free_port();
    let _proxy =
        common::tls::TlsProxy::start(certs.path(), port, es.url.trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let ca = certs.path().join("ca.crt");
    let options = format!(
        "sslRootCert = \"{}\"\nusername = \"sluice\"\npassword = {{ env = \"SLUICE_TEST_ES_PASSWORD\" }}",
        ca.display()
    );
    let file = es_pipeline(
        dir.path(),
        &format!("https://127.0.0.1:{port}"),
        &options,
        "",
    );
    let out = run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .env("SLUICE_TEST_ES_PASSWORD", "pw-81c2")
            .env("RUST_LOG", "debug"),
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pw-81c2"));
    assert_eq!(rows(&es.docs("events")), event_rows(0..90));

    // Without the CA the server's certificate is not trusted: the start fails, saying so.
    let file = es_pipeline(dir.path(), &format!("https://127.0.0.1:{port}"), "", "");
    let out = sluice().arg("run").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach https://127.0.0.1"),
        "{stderr}"
    );
}

#[test]
fn options_that_cannot_work_are_refused_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (options, key, words) in [
        (
            "username = \"u\"",
            "sink.username",
            "username and password go together",
        ),
        (
            "password = \"plain\"\nusername = \"u\"",
            "sink.password",
            "a secret written into the pipeline is refused",
        ),
        ("refresh = \"sometimes\"", "sink.refresh", "not an option"),
    ] {
        let file = es_pipeline(dir.path(), "http://127.0.0.1:9", options, "");
        let out = sluice().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{options}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(words),
            "{options}: {stderr}"
        );
        assert!(!stderr.contains("plain"), "{stderr}");
    }
    let file = es_pipeline(dir.path(), "http://user:pw@127.0.0.1:9", "", "");
    let out = sluice().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds credentials"), "{stderr}");
}

#[test]
fn seed_003_a_foreach_batch_handler_writes_each_batch_to_elasticsearch_and_upserts_into_postgresql()
{
    let es = Elasticsearch::start();
    let pg = common::postgres::Postgres::start();
    let db = pg.database("shop");
    let dir = tempfile::tempdir().unwrap();
    // Three batches of orders; order 5 comes again in the last one with a new amount.
    let order = |id: u64, amount: u64| {
        format!(
            "{{\"order_id\":{id},\"product\":\"p{}\",\"category\":\"c{}\",\"amount\":{amount}}}\n",
            id % 7,
            id % 3
        )
    };
    let amount = |id: u64| (id * 137) % 1000;
    for (i, ids) in [0..20u64, 20..40, 40..60].into_iter().enumerate() {
        let mut text: String = ids.map(|id| order(id, amount(id))).collect();
        if i == 2 {
            text.push_str(&order(5, 999));
        }
        let f = drop_file(&dir.path().join("in"), &format!("{i}.json"), &text);
        set_mtime(&f, 100 - i as u64);
    }
    let file = pipeline(
        dir.path(),
        &format!(
            r#"[[query]]
name = "seed-003"
checkpointLocation = "ckpt"
trigger = "availableNow"

[query.source]
format = "json"
path = "in"
schema = "order_id BIGINT, product STRING, category STRING, amount BIGINT"
mode = "FAILFAST"
maxFilesPerTrigger = 1

[query.sink]
format = "foreachBatch"
module = "{module}"
config = {{ copy = "search", alerts = "db", threshold = 500 }}
directory = "side"

[query.outputs.search]
format = "elasticsearch"
url = "{es}"
index = "orders"
idColumns = ["order_id"]

[query.outputs.db]
format = "postgres"
url = "{pg}"
password = {{ env = "SLUICE_TEST_PGPASSWORD" }}
table = "big_orders"
mode = "upsert"
key = ["order_id"]
createTable = true
"#,
            module = guests().join("two_sinks.wasm").display(),
            es = es.url,
            pg = pg.url(&db),
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(&file)
        .env("SLUICE_TEST_PGPASSWORD", common::postgres::PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Elasticsearch: a document per order, by _id; order 5 holds the last batch's values.
    assert_eq!(es.count("orders"), 60);
    let five = es.doc("orders", "5").expect("order 5 by its _id");
    assert_eq!(
        (five["amount"].as_u64(), five["batch_id"].as_u64()),
        (Some(999), Some(2))
    );
    let seven = es.doc("orders", "7").unwrap();
    assert_eq!(seven["amount"].as_u64(), Some(amount(7)));
    assert_eq!(seven["product"], "p0");

    // PostgreSQL: the orders of at least 500, one row each (upserted), computed here.
    let mut want: Vec<String> = (0..60u64)
        .map(|id| (id, if id == 5 { 999 } else { amount(id) }))
        .filter(|(_, a)| *a >= 500)
        .map(|(id, a)| format!("{id}|{a}"))
        .collect();
    want.sort();
    let mut got = pg.psql(&db, "SELECT order_id, amount FROM big_orders");
    got.sort();
    assert_eq!(got, want);
    assert!(got.contains(&"5|999".to_owned()));
}
