//! Wasm transforms and foreachBatch handlers, end to end: guests compiled from source by
//! `scripts/build-guests.sh`, example pipelines run through the CLI, hostile guests stopped
//! with the documented errors while other queries go on.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn json_events_example_parses_lowercases_filters_and_reserialises() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("json-events", dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let values: Vec<String> = committed_json(&dir.path().join("out/json-events"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        values,
        vec![
            r#"{"lower_city":"seoul","domain":"shop.example.com","behavior":"click"}"#,
            r#"{"lower_city":"busan","domain":"news.example.com","behavior":"view"}"#,
            r#"{"lower_city":"gwangju","domain":"shop.example.com","behavior":"purchase"}"#,
            r#"{"lower_city":"seoul","domain":"news.example.com","behavior":"click"}"#,
        ]
    );
}

#[test]
fn word_count_example_flat_maps_lines_into_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("word-count", dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let words: Vec<String> = committed_json(&dir.path().join("out/words"))
        .iter()
        .map(|r| r["word"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        words.join(" "),
        "spark structured streaming processes data in micro-batches sluice processes micro-batches too with webassembly"
    );
}

#[test]
fn dead_letter_example_routes_refused_batches_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("dead-letter", dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let ids = |sub: &str| sorted_ids_by(&committed_json(&dir.path().join(sub)), "order_id");
    assert_eq!(ids("out/orders-valid"), vec![1, 2, 3, 7]);
    let rejected = committed_json(&dir.path().join("out/orders-rejected"));
    assert_eq!(sorted_ids_by(&rejected, "order_id"), vec![4, 5, 6]);
    for r in &rejected {
        let error = r["_error"].as_str().unwrap();
        assert!(
            error.contains("step 'validate'")
                && error.contains("batch 1")
                && error.contains("row 1: missing product"),
            "{error}"
        );
    }
    let valid = committed_json(&dir.path().join("out/orders-valid"));
    assert!(valid.iter().all(|r| r["amount_krw"] == r["amount"]));
    let p = progress(&dir.path().join("progress.jsonl"));
    assert_eq!(
        p.iter()
            .map(|p| p.observed_metrics["transform.validate.failedCalls"]
                .as_u64()
                .unwrap())
            .sum::<u64>(),
        1
    );
}

fn sorted_ids_by(rows: &[serde_json::Value], key: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = rows.iter().map(|r| r[key].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn two_sinks_handler_writes_both_outputs_and_a_granted_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("two-sinks", dir.path());
    let (code, stdout, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let archive = committed_json(&dir.path().join("out/orders-archive"));
    assert_eq!(
        sorted_ids_by(&archive, "order_id"),
        (1..=7).collect::<Vec<_>>()
    );
    // Every row carries the engine's batch id: files are read one per batch, oldest first.
    assert!(archive.iter().all(|r| r["batch_id"].as_u64().unwrap() <= 2));
    // The alerts output is the console: the two orders over the threshold, one per batch.
    assert!(
        stdout.contains("|       2| laptop|electronics|1500000|       0|"),
        "{stdout}"
    );
    assert!(
        stdout.contains("|       4|  phone|electronics|990000|       1|"),
        "{stdout}"
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &fs::read(dir.path().join("out/two-sinks/summaries/batch-1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"batchId": 1, "rows": 3, "alerts": 1})
    );
    assert!(
        stderr.contains("batch 2: 1 rows, 0 alerts"),
        "the guest's log reaches the host's:\n{stderr}"
    );
}

#[test]
fn a_replayed_batch_reaches_the_handler_with_the_same_id_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("two-sinks", dir.path());
    // Die after the handler and its outputs ran for batch 1, before the commit.
    let mut first = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", "after-sink:1")]);
    first.await_line("sluice-failpoint: after-sink batch 1");
    let handled_first = first
        .seen
        .iter()
        .find(|l| l.contains("batch 1: 3 rows"))
        .cloned();
    first.signal(9);
    let (_, log_first) = first.wait();
    assert!(
        handled_first.is_some() || log_first.contains("batch 1: 3 rows, 1 alerts"),
        "{log_first}"
    );

    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("re-running the last batch"), "{stderr}");
    assert!(
        stderr.contains("batch 1: 3 rows, 1 alerts"),
        "batch 1 not replayed to the handler:\n{stderr}"
    );
    // Outputs were written once per batch id in spite of the replay.
    let archive = committed_json(&dir.path().join("out/orders-archive"));
    assert_eq!(
        sorted_ids_by(&archive, "order_id"),
        (1..=7).collect::<Vec<_>>()
    );
}

/// A query per hostile behaviour plus a good query, all in one process.
fn hostile_pipeline(dir: &Path) -> std::path::PathBuf {
    let module = guests().join("hostile_transform.wasm");
    let mut text = hostile_queries(
        &module,
        &[
            ("spin", r#"{ behavior = "loop" }"#, r#"timeout = "500 ms""#),
            (
                "hoard",
                r#"{ behavior = "alloc" }"#,
                r#"maxMemory = "64 MiB""#,
            ),
            (
                "snoop",
                r#"{ behavior = "open-file", path = "/etc/passwd" }"#,
                "",
            ),
            ("environ", r#"{ behavior = "env" }"#, ""),
            ("liar", r#"{ behavior = "wrong-schema" }"#, ""),
            ("crash", r#"{ behavior = "panic" }"#, ""),
            ("flood", r#"{ behavior = "flood" }"#, ""),
            ("trickle", r#"{ behavior = "flood" }"#, "maxEmitRows = 1000"),
            ("echo", r#"{ behavior = "rows-flood" }"#, ""),
            ("phantom", r#"{ behavior = "rows-bad-column" }"#, ""),
            ("burn", r#"{ behavior = "loop" }"#, "fuel = 5000000"),
            (
                "skipper",
                r#"{ behavior = "loop" }"#,
                "timeout = \"200 ms\"\nonError = \"skip\"",
            ),
        ],
    );
    drop_file(&dir.join("in"), "a.json", event_lines(0..50));
    text.push_str(
        r#"
[[query]]
name = "good"
checkpointLocation = "ckpt-good"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
[query.sink]
format = "json"
path = "out-good"
"#,
    );
    pipeline(dir, &text)
}

#[test]
fn hostile_guests_fail_their_own_query_with_clear_errors_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = hostile_pipeline(dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    let error_of = |q: &str| query_error(&stderr, q);
    let spin = error_of("spin");
    assert!(
        spin.contains("step 'spin-step'")
            && spin.contains("ran past its deadline of 500ms")
            && spin.contains("batch 0"),
        "{spin}"
    );
    let hoard = error_of("hoard");
    assert!(
        hoard.contains("exceeded its memory limit of 64.0 MiB"),
        "{hoard}"
    );
    let snoop = error_of("snoop");
    assert!(snoop.contains("open-file /etc/passwd:"), "{snoop}");
    assert!(!snoop.contains("without a grant"), "{snoop}");
    let environ = error_of("environ");
    assert!(environ.contains("env: 0 variables visible"), "{environ}");
    let liar = error_of("liar");
    assert!(
        liar.contains("emitted a batch that does not match its output schema"),
        "{liar}"
    );
    let crash = error_of("crash");
    assert!(
        crash.contains("guest panicked")
            && crash.contains("boom in the middle of a batch")
            && crash.contains("batch 0"),
        "{crash}"
    );
    // Nothing of a failed batch is committed, not even what the guest emitted before it died.
    assert!(committed_json(&dir.path().join("out-crash")).is_empty());
    assert!(
        dir.path().join("ckpt-crash/offsets/0").exists()
            && !dir.path().join("ckpt-crash/commits/0").exists()
    );
    // A guest emitting without end is stopped by the host's budget, long before its deadline
    // (30 s by default), and holds nothing: the default is relative to the input.
    let flood = error_of("flood");
    assert!(
        flood.contains("step 'flood-step'")
            && flood.contains("handed the host more than 1000000 rows in one call (the default, relative to the input)")
            && flood.contains("maxEmitRows")
            && flood.contains("batch 0"),
        "{flood}"
    );
    // The same through emit-rows, where nothing crosses the boundary but the host would
    // hold a batch per call.
    let echo = error_of("echo");
    assert!(
        echo.contains("step 'echo-step'")
            && echo.contains("handed the host more than 1000000 rows in one call")
            && echo.contains("batch 0"),
        "{echo}"
    );
    let phantom = error_of("phantom");
    assert!(
        phantom.contains("emit-rows: the input has 2 columns, not a column 99"),
        "{phantom}"
    );
    let trickle = error_of("trickle");
    assert!(
        trickle.contains("more than 1000 rows in one call (the step's limit)"),
        "{trickle}"
    );
    let burn = error_of("burn");
    assert!(burn.contains("ran out of fuel (5000000 units)"), "{burn}");
    // onError = "skip": the failed call's rows are dropped and counted, the query goes on.
    assert!(!stderr.contains("error: query 'skipper'"), "{stderr}");
    assert!(
        stderr.contains("skipping the rows of a failed transform call"),
        "{stderr}"
    );
    assert!(committed_json(&dir.path().join("out-skipper")).is_empty());
    assert!(
        dir.path().join("ckpt-skipper/commits/0").exists(),
        "the skipped batch is committed"
    );
    // The good query ran to the end beside them.
    assert_eq!(committed_json(&dir.path().join("out-good")).len(), 50);
}

#[test]
fn an_endless_guest_is_stopped_within_twice_its_deadline() {
    let module = guests().join("hostile_transform.wasm");
    let spec = sluice::pipeline::TransformSpec {
        name: "spin".into(),
        module_ref: None,
        module,
        config: serde_json::json!({"behavior": "loop"}).into(),
        limits: sluice::pipeline::GuestLimits {
            timeout: Duration::from_millis(300),
            ..Default::default()
        },
        on_error: sluice::pipeline::OnError::Fail,
    };
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "value",
        arrow_schema::DataType::Int64,
        false,
    )]));
    let batch = arrow_array::RecordBatch::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(arrow_array::Int64Array::from(vec![
            1, 2,
        ]))],
    )
    .unwrap();
    let mut step = sluice::wasm::transform::WasmTransform::new(spec, "q", schema).unwrap();
    let outputs = sluice::sink::outputs::SharedOutputs::default();
    for _ in 0..2 {
        // Twice: the second call runs on the instance re-created after the first trap.
        let started = Instant::now();
        let err = step
            .process(7, vec![batch.clone()], &outputs, 1)
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        assert!(
            err.contains("ran past its deadline of 300ms") && err.contains("batch 7"),
            "{err}"
        );
        assert!(took < Duration::from_millis(600), "stopped after {took:?}");
    }
}

/// A one-request-at-a-time HTTP server on loopback that records request bodies.
fn http_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, rx)
}

fn handler_pipeline(dir: &Path, name: &str, config: &str, grants: &str) -> std::path::PathBuf {
    let module = guests().join("hostile_handler.wasm");
    drop_file(&dir.join("in"), "a.json", event_lines(0..3));
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "{name}"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "json"
path = "in"
schema = "id BIGINT, city STRING, amount BIGINT"
[query.sink]
format = "foreachBatch"
module = "{module}"
config = {config}
{grants}
"#,
            module = module.display()
        ),
    )
}

#[test]
fn a_handler_writing_without_end_is_refused_past_its_budget_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(
        dir.path(),
        "flood",
        r#"{ behavior = "write-flood" }"#,
        "maxEmitRows = 3000\n[query.outputs.copy]\nformat = \"json\"\npath = \"out-copy\"",
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("handed the host more than 3000 rows in one call (the step's limit)")
            && stderr.contains("batch 0"),
        "{stderr}"
    );
    // The batch failed: nothing it staged reaches the output.
    assert!(committed_json(&dir.path().join("out-copy")).is_empty());
}

#[test]
fn a_handler_cannot_fill_the_disk_the_network_or_the_log() {
    // Files: refused past the call's byte budget (here 8 MiB), and the batch fails even
    // though the guest ignores the refusal and returns success.
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(
        dir.path(),
        "files",
        r#"{ behavior = "file-flood" }"#,
        "directory = \"granted\"\nmaxEmitBytes = \"8 MiB\"",
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "files.write-file: handed the host more than 8.0 MiB in one call (the step's limit)"
        ) && stderr.contains("foreachBatch (module")
            && stderr.contains("batch 0"),
        "{stderr}"
    );
    let written = std::fs::read_dir(dir.path().join("granted"))
        .unwrap()
        .count();
    assert!(written <= 8, "{written} files written");

    // HTTP request bodies: the same budget, and nothing more reaches the server.
    let (port, bodies) = http_server();
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(
        dir.path(),
        "http",
        &format!(r#"{{ behavior = "http-flood", url = "http://127.0.0.1:{port}/" }}"#),
        &format!("allowHosts = [\"127.0.0.1:{port}\"]\nmaxEmitBytes = \"4 MiB\""),
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("http.send: handed the host more than 4.0 MiB in one call"),
        "{stderr}"
    );
    let received =
        std::iter::from_fn(|| bodies.recv_timeout(Duration::from_millis(300)).ok()).count();
    assert!(received <= 4, "{received} requests reached the server");

    // An error message of any size is cut before the host keeps or prints it.
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(dir.path(), "big", r#"{ behavior = "huge-error" }"#, "");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("more bytes cut)"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(stderr.len() < 100_000, "{} bytes of stderr", stderr.len());

    // Log lines past the per-call cap are dropped, once said so.
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(dir.path(), "chatty", r#"{ behavior = "log-flood" }"#, "");
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{}", &stderr[..stderr.len().min(2000)]);
    let spam = stderr.lines().filter(|l| l.contains("spam ")).count();
    assert_eq!(spam, 1000, "{spam} guest log lines reached the log");
    assert!(
        stderr.contains("more than 1000 log lines in one call"),
        "{}",
        &stderr[..2000]
    );
}

#[test]
fn a_handler_reaches_allow_listed_hosts_only() {
    let (port, bodies) = http_server();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let file = handler_pipeline(
        dir.path(),
        "post",
        &format!(r#"{{ behavior = "post", url = "{url}" }}"#),
        &format!(r#"allowHosts = ["127.0.0.1:{port}"]"#),
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        bodies.recv_timeout(TIMEOUT).unwrap(),
        r#"{"batchId":0,"rows":3}"#
    );

    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(
        dir.path(),
        "post",
        &format!(r#"{{ behavior = "post", url = "{url}" }}"#),
        r#"allowHosts = ["example.com"]"#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("host '127.0.0.1:{port}' is not in the pipeline's allowHosts (example.com); the request was not sent")), "{stderr}");
    assert!(stderr.contains("batch 0"), "{stderr}");
    assert!(
        bodies.recv_timeout(Duration::from_millis(200)).is_err(),
        "a request got through"
    );
}

#[test]
fn a_handler_cannot_write_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = handler_pipeline(
        dir.path(),
        "escape",
        r#"{ behavior = "escape" }"#,
        r#"directory = "granted""#,
    );
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("'../escaped.txt' must be a relative path inside the granted directory"),
        "{stderr}"
    );
    assert!(!dir.path().join("escaped.txt").exists());
}

#[test]
fn bad_modules_are_refused_before_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("random.wasm"), b"definitely not wasm").unwrap();
    // A minimal core module: magic, version 1, layer 0.
    fs::write(d.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let handler = guests().join("hostile_handler.wasm");
    for (module, expected) in [
        (d.join("missing.wasm"), "no module file".to_owned()),
        (
            d.join("random.wasm"),
            "not a WebAssembly component".to_owned(),
        ),
        (
            d.join("core.wasm"),
            "a core WebAssembly module, not a component".to_owned(),
        ),
        (handler.clone(), "cannot be a transform step".to_owned()),
        // Built against the previous WIT package: the versions and how to rebuild.
        (
            guests().join("old_sdk_transform.wasm"),
            "implements sluice:pipeline@0.1.0, and this host speaks sluice:pipeline@0.2.0: rebuild it against the guest SDK of this release (`sluice module build`".to_owned(),
        ),
    ] {
        let file = pipeline(
            d,
            &format!(
                r#"[[query]]
name = "bad"
trigger = "once"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 1
[[query.transform]]
module = "{}"
[query.sink]
format = "memory"
"#,
                module.display()
            ),
        );
        // Refused as the pipeline is read (exit 2), at the step's line, before anything runs.
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("pipeline.toml:8: query 'bad': transform[0].module: "),
            "{stderr}"
        );
        assert!(
            stderr.contains(&expected),
            "{}: expected {expected:?} in:\n{stderr}",
            module.display()
        );
        assert!(
            stderr.contains(&module.display().to_string()),
            "the error names the module:\n{stderr}"
        );
        assert!(!stderr.contains("batch committed"), "{stderr}");
    }
}

#[test]
fn a_wasm_aggregate_keeps_top_k_per_group_across_batches_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = example("top-k", dir.path());
    // First run: the first two order files only; the third arrives before the second run.
    let third = dir.path().join("data/orders/orders-3.json");
    let held = dir.path().join("orders-3.json.held");
    fs::rename(&third, &held).unwrap();
    let (code, stdout, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        last_console_table(&stdout),
        vec![
            row(&["electronics", "[1500000, 990000]", "2"]),
            row(&["food", "[12000, 8000, 3000]", "4"])
        ],
        "{stdout}"
    );
    fs::rename(&held, &third).unwrap();
    let (code, stdout, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    // The guest's per-group state came back from the checkpoint: the new 320000 joins the
    // two amounts seen in the first run.
    assert!(stdout.contains("Batch: 2"), "{stdout}");
    assert_eq!(
        last_console_table(&stdout),
        vec![
            row(&["electronics", "[1500000, 990000, 320000]", "3"]),
            row(&["food", "[12000, 8000, 3000]", "4"])
        ],
        "{stdout}"
    );
}

/// The committed files of a json sink under `out`: (name, contents), in name order.
fn committed_files(out: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = sluice::connectors::file::sink::committed_files(out)
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(out).unwrap().display().to_string(),
                std::fs::read_to_string(&f).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_batch_runs_its_partitions_on_several_workers_and_its_output_does_not_depend_on_them() {
    // Twelve files, four a batch, through a Wasm step: each batch's files are decoded and
    // its record batches transformed by up to `parallelism` workers with a guest instance
    // each, and written as that many files.
    let run = |parallelism: u32| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for i in 0..12u64 {
            let lines: String = (0..500)
                .map(|j| {
                    let n = i * 500 + j;
                    let event = ["click", "view", "purchase", "heartbeat"][(n % 4) as usize];
                    format!("{{\"city\":\"City{}\",\"domain\":\"d{n}.example.com\",\"event\":\"{event}\"}}\n", n % 7)
                })
                .collect();
            let f = drop_file(&d.join("in"), &format!("e{i:02}.jsonl"), &lines);
            set_mtime(&f, 100 - i);
        }
        let file = pipeline(
            d,
            &format!(
                r#"[[query]]
name = "events"
checkpointLocation = "ckpt"
trigger = "availableNow"
parallelism = {parallelism}
[query.source]
format = "text"
path = "in/*.jsonl"
maxFilesPerTrigger = 4
[[query.transform]]
name = "parse"
module = "{}"
config = {{ events = ["click", "view", "purchase"] }}
[query.sink]
format = "json"
path = "out"
"#,
                guests().join("json_events.wasm").display()
            ),
        );
        let (code, _, stderr) = run_logged(&file);
        assert_eq!(code, Some(0), "{stderr}");
        let progress = progress(&d.join("progress.jsonl"));
        let calls: f64 = progress
            .iter()
            .map(|p| {
                p.observed_metrics["transform.parse.calls"]
                    .as_f64()
                    .unwrap()
            })
            .sum();
        (committed_files(&d.join("out")), calls, dir)
    };
    let (serial, serial_calls, _a) = run(1);
    let (parallel, parallel_calls, _b) = run(4);
    let (again, _, _c) = run(4);
    // Same files with the same rows when run again with the same parallelism.
    assert_eq!(parallel, again);
    // Four files a batch instead of one, and the same rows in all.
    assert_eq!(serial.len(), 3);
    assert_eq!(
        parallel.len(),
        12,
        "{:?}",
        parallel.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let rows = |files: &[(String, String)]| {
        let mut r: Vec<String> = files
            .iter()
            .flat_map(|(_, text)| text.lines().map(str::to_owned))
            .collect();
        r.sort();
        r
    };
    assert_eq!(rows(&serial), rows(&parallel));
    assert_eq!(rows(&serial).len(), 12 * 500 * 3 / 4);
    // One guest call per record batch whichever worker made it.
    assert_eq!(serial_calls, parallel_calls);
}

#[test]
fn a_guest_built_against_the_previous_wit_package_is_refused_with_how_to_rebuild() {
    let old = guests().join("old_sdk_transform.wasm");
    // At upload or check time...
    let out = sluice()
        .args(["module", "check"])
        .arg(&old)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("implements sluice:pipeline@0.1.0")
            && stderr.contains("this host speaks sluice:pipeline@0.2.0")
            && stderr.contains("rebuild it against the guest SDK of this release"),
        "{stderr}"
    );
    // `sluice run` says the same: see bad_modules_are_refused_before_any_batch.
}
