//! The dashboard of `sluice serve`, in a real browser (headless Chromium driven by
//! playwright-core, both installed by scripts/test.sh): the page of a running pipeline shows
//! its batches, plots one point per batch, agrees with the API, refuses a stop without the
//! token and stops the query with it, with no error in the browser's console.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The server, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path) -> (Server, String, String) {
    let (child, url, token) = start_serve(data, &[]);
    (Server(child), url, token)
}

/// Runs check.mjs against a dashboard (with `env`, e.g. a swap to make); returns what it saw.
fn check_in_browser(
    url: &str,
    token: &str,
    query: &str,
    name: &str,
    env: &[(&str, &str)],
) -> Value {
    let shot = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("{name}.png"));
    let out = Command::new("node")
        .arg(repo().join("tests/dashboard/check.mjs"))
        .args([url, token, query, "5"])
        .arg(&shot)
        .current_dir(repo().join("tests/dashboard"))
        .envs(env.iter().copied())
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "check.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shot.exists());
    serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap()
}

/// What every dashboard must have shown: the API's numbers, a point per batch, the plan,
/// a refused stop without the token, a stop with it, and a clean console.
fn assert_shown(seen: &Value, plan: &[&str]) {
    let shown = &seen["shown"];
    let last: u64 = shown["lastBatch"].as_str().unwrap().parse().unwrap();
    assert!(last >= 5, "{seen}");
    let api: Vec<(u64, u64)> = shown["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect();
    let rows = api.iter().find(|(b, _)| *b == last).map(|(_, r)| *r);
    assert_eq!(
        rows,
        Some(shown["lastInputRows"].as_str().unwrap().parse().unwrap()),
        "{seen}"
    );
    for (chart, points) in shown["points"].as_object().unwrap() {
        assert_eq!(points.as_u64(), Some(last + 1), "{chart}: {seen}");
    }
    let nodes: Vec<&str> = shown["planNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(nodes, plan, "{seen}");
    assert!(
        seen["withoutToken"]
            .as_str()
            .unwrap()
            .starts_with("refused (401)"),
        "{seen}"
    );
    assert!(
        seen["withToken"].as_str().unwrap().starts_with("stopped"),
        "{seen}"
    );
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen}");
}

#[test]
fn sluice_run_ui_serves_the_same_dashboard_for_a_foreground_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(
        dir.path(),
        r#"[[query]]
name = "local"
trigger = { processingTime = "200 milliseconds" }
[query.inputs.a]
format = "rate-micro-batch"
rowsPerBatch = 10
[query.inputs.b]
format = "rate-micro-batch"
rowsPerBatch = 5
[query.views.both]
union = ["a", "b"]
[query.views.both.dropDuplicates]
columns = ["value"]
[query.sink]
format = "memory"
"#,
    );
    let mut run = Running::start(&file, &["--ui", "127.0.0.1:0"], &[]);
    let line = run.await_line("sluice run dashboard on ");
    let rest = line.split("sluice run dashboard on ").nth(1).unwrap();
    let (url, token) = rest.split_once(" token: ").unwrap();
    let seen = check_in_browser(url, token.trim(), "local", "run-ui", &[]);
    // The plan as the page draws it: the inputs, the view over them, the sink.
    assert_shown(&seen, &["input a", "input b", "view both", "sink (append)"]);
    // The stop button ends the run gracefully: the process exits 0.
    let (code, log) = run.wait();
    assert_eq!(code, Some(0), "{log}");
}

/// `sluice sql` against the run's dashboard address until the answer has `rows` rows (the
/// memory table fills with the first batch): its stdout.
fn ask_until_rows(url: &str, token: &str, sql: &str, rows: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = sluice()
            .args(["sql", sql, "--server", url, "--token", token])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && last_console_table(&format!("Batch: 0\n{stdout}")).len() == rows
        {
            return stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {rows}-row answer: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_sql_query_s_text_is_shown_beside_its_plan_and_its_memory_table_answers_sluice_sql() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(
        dir.path(),
        r#"[[query]]
name = "counts"
trigger = { processingTime = "200 milliseconds" }
outputMode = "complete"
sql = "SELECT value % 3 AS k, count(*) AS n FROM ticks GROUP BY value % 3"
[query.inputs.ticks]
format = "rate-micro-batch"
rowsPerBatch = 10
[query.sink]
format = "memory"
"#,
    );
    let mut run = Running::start(&file, &["--ui", "127.0.0.1:0"], &[]);
    let line = run.await_line("sluice run dashboard on ");
    let rest = line.split("sluice run dashboard on ").nth(1).unwrap();
    let (url, token) = rest.split_once(" token: ").unwrap();
    let token = token.trim();
    // Spark's memory sink then spark.sql(...): a batch SELECT over the table, from outside.
    let shown = ask_until_rows(
        url,
        token,
        "SELECT k, n, n * 2 AS twice FROM counts ORDER BY k",
        3,
    );
    let rows = last_console_table(&format!("Batch: 0\n{shown}"));
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(keys, ["0", "1", "2"], "{shown}");
    for r in &rows {
        let n: u64 = r[1].parse().unwrap();
        assert!(n > 0, "{shown}");
        assert_eq!(r[2], (n * 2).to_string(), "{shown}");
    }
    // Without the token, no answer; a mistake is named.
    let out = sluice()
        .args([
            "sql",
            "SELECT * FROM counts",
            "--server",
            url,
            "--token",
            "wrong",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = sluice()
        .args([
            "sql",
            "SELECT * FROM countz",
            "--server",
            url,
            "--token",
            token,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("countz") && stderr.contains("the memory tables are: counts"),
        "{stderr}"
    );
    let seen = check_in_browser(url, token, "counts", "run-ui-sql", &[]);
    assert_shown(
        &seen,
        &[
            "input ticks",
            "view sql",
            "step sql.select",
            "sink (complete)",
        ],
    );
    assert_eq!(
        seen["shown"]["sql"], "SELECT value % 3 AS k, count(*) AS n FROM ticks GROUP BY value % 3",
        "{seen}"
    );
    let (code, log) = run.wait();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn the_dashboard_shows_a_running_query_and_stops_it_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, token) = start_server(&dir.path().join("data"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let file = pipeline(
        &work,
        r#"[[query]]
name = "ticks"
checkpointLocation = "ckpt"
trigger = { processingTime = "200 milliseconds" }
outputMode = "update"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 25
advanceMillisPerBatch = 1000
watermark = { column = "timestamp", delay = "1 second" }
[[query.transform]]
name = "step"
module = "step@^1.0"
[query.aggregate]
window = { column = "timestamp", duration = "5 seconds" }
aggs = [{ fn = "count", as = "n" }]
[query.sink]
format = "memory"
"#,
    );
    for (file, version) in [
        ("pass_through.wasm", "1.0.0"),
        ("hostile_transform.wasm", "2.0.0"),
    ] {
        run_ok(
            sluice()
                .args(["module", "push"])
                .arg(guests().join(file))
                .args(["--name", "step", "--version", version])
                .args(["--server", &url, "--token", &token]),
        );
    }
    run_ok(
        sluice()
            .args(["query", "start"])
            .arg(&file)
            .args(["--server", &url, "--token", &token]),
    );

    let seen = check_in_browser(
        &url,
        &token,
        "ticks",
        "serve",
        &[("SWAP_STEP", "step"), ("SWAP_MODULE", "step@2.0.0")],
    );
    assert_shown(
        &seen,
        &["input source", "step step", "aggregate", "sink (update)"],
    );
    // The swap from the page: accepted, and the module table shows where the digest changed.
    assert!(
        seen["swap"]
            .as_str()
            .unwrap()
            .starts_with("swapped step to sha256:"),
        "{seen}"
    );
    assert!(
        seen["swapHistory"][0].as_str().unwrap().contains(" → "),
        "{seen}"
    );

    // The server agrees the query stopped, and stays stopped.
    let status: Value = serde_json::from_str(
        &String::from_utf8(
            run_ok(
                sluice()
                    .args(["query", "status", "ticks", "--json"])
                    .args(["--server", &url, "--token", &token]),
            )
            .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(status["isActive"], false, "{status}");
}
