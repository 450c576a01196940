//! `sluice serve` over real HTTP: a server process started by each test, modules pushed and
//! queries started through the API and the `sluice module` / `sluice query` CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A `sluice serve` process on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
    data: PathBuf,
    token: String,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let (child, url, token) = start_serve(data, extra);
        Server {
            child,
            url,
            data: data.to_path_buf(),
            token,
        }
    }

    /// Sends a request; returns the status and the JSON (or text) answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Content-Type", content_type);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = agent.run(req.body(body).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, None, "application/json", Vec::new());
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn push(&self, name: &str, version: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/modules?name={name}&version={version}"),
            Some(&self.token),
            "application/wasm",
            bytes,
        )
    }

    /// Uploads `step@1.0.0` (pass-through) and `step@2.0.0` (the hostile guest, which passes
    /// rows through unless told otherwise); returns 2.0.0's digest.
    fn push_step_versions(&self) -> String {
        assert_eq!(
            self.push("step", "1.0.0", module("pass_through.wasm")).0,
            201
        );
        let (status, v2) = self.push("step", "2.0.0", module("hostile_transform.wasm"));
        assert_eq!(status, 201, "{v2}");
        v2["digest"].as_str().unwrap().to_owned()
    }

    /// Runs the `sluice` CLI against this server.
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = sluice()
            .args(args)
            .args(["--server", &self.url, "--token", &self.token])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `sluice query swap QUERY --step STEP --module MODULE`, then waits until `batches` more
    /// batches committed; returns the CLI's output, the batch id at the swap and the query
    /// then.
    fn swap(&self, query: &str, step: &str, module: &str, batches: u64) -> (String, u64, Value) {
        let (ok, stdout, stderr) =
            self.cli(&["query", "swap", query, "--step", step, "--module", module]);
        assert!(ok, "{stderr}");
        let swapped_at = self.get(&format!("/queries/{query}"))["lastBatchId"]
            .as_u64()
            .unwrap();
        let after = self.await_batch(query, swapped_at + batches);
        (stdout, swapped_at, after)
    }

    /// `sluice query stop QUERY`; returns its last batch id.
    fn stop(&self, query: &str) -> u64 {
        let (ok, _, stderr) = self.cli(&["query", "stop", query]);
        assert!(ok, "{stderr}");
        self.get(&format!("/queries/{query}"))["lastBatchId"]
            .as_u64()
            .unwrap()
    }

    /// Waits until query `name` has committed batch `id` (or later).
    fn await_batch(&self, name: &str, id: u64) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let q = self.get(&format!("/queries/{name}"));
            if q["lastBatchId"].as_u64().is_some_and(|b| b >= id) {
                return q;
            }
            assert!(
                q["exception"].is_null(),
                "query {name} failed: {}",
                q["exception"]
            );
            assert!(
                Instant::now() < deadline,
                "query {name} did not reach batch {id}: {q}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn module(file: &str) -> Vec<u8> {
    std::fs::read(guests().join(file)).unwrap()
}

#[test]
fn the_module_life_cycle_over_http_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(server.get("/healthz")["status"], "ok");

    // Raw body.
    let (status, info) = server.push("pass", "1.0.0", module("pass_through.wasm"));
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["worlds"], json!(["sluice:pipeline/transformer"]));
    assert_eq!(info["package"], "sluice:pipeline@0.2.0");
    assert!(info["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        info["size"].as_u64().unwrap() as usize,
        module("pass_through.wasm").len()
    );
    // Multipart, through the CLI's sibling: a form with name, version and the file.
    let boundary = "sluice-test-boundary";
    let mut body = Vec::new();
    for (field, value) in [("name", "top-k"), ("version", "2.1.0")] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"top_k.wasm\"\r\nContent-Type: application/wasm\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&module("top_k.wasm"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, info) = server.call(
        "POST",
        "/modules",
        Some(&server.token),
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    );
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["worlds"], json!(["sluice:pipeline/aggregator"]));
    // The CLI pushes a handler.
    let handler = guests().join("two_sinks.wasm");
    let (ok, stdout, stderr) = server.cli(&[
        "module",
        "push",
        handler.to_str().unwrap(),
        "--name",
        "two-sinks",
        "--version",
        "0.3.0",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let pushed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pushed["worlds"], json!(["sluice:pipeline/handler"]));

    // List and inspect, over HTTP and the CLI.
    let list = server.get("/modules");
    let names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}@{}",
                m["name"].as_str().unwrap(),
                m["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["pass@1.0.0", "top-k@2.1.0", "two-sinks@0.3.0"]);
    let (ok, stdout, _) = server.cli(&["module", "inspect", "pass@1.0.0", "--json"]);
    assert!(ok);
    let inspected: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(inspected["wasmtime"], "48.0.8");
    assert!(inspected["uploadedAt"].as_str().unwrap().starts_with("20"));

    // Re-pushing the same bytes is a no-op; other bytes under the same version are refused.
    assert_eq!(
        server.push("pass", "1.0.0", module("pass_through.wasm")).0,
        201
    );
    let (status, err) = server.push("pass", "1.0.0", module("hostile_transform.wasm"));
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("versions are immutable")
    );

    // The registry the server fills serves `sluice run --registry` too.
    let out_dir = dir.path().join("standalone");
    std::fs::create_dir_all(out_dir.join("in")).unwrap();
    std::fs::write(out_dir.join("in/a.txt"), "x\ny\n").unwrap();
    let file = pipeline(
        &out_dir,
        r#"[[query]]
name = "standalone"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "text"
path = "in"
[[query.transform]]
name = "pass"
module = "pass@^1.0"
[query.sink]
format = "json"
path = "out"
"#,
    );
    run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .arg("--registry")
            .arg(server.data.join("modules")),
    );
    assert_eq!(committed_json(&out_dir.join("out")).len(), 2);
    // Without the registry the reference is an error at its line.
    let out = sluice()
        .arg("validate")
        .arg(&file)
        .env("SLUICE_HOME", dir.path().join("nowhere"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pipeline.toml:10") && stderr.contains("no registry is open"),
        "{stderr}"
    );

    // Delete, then it is gone.
    let (ok, _, stderr) = server.cli(&["module", "rm", "top-k@2.1.0"]);
    assert!(ok, "{stderr}");
    let (status, err) = server.call(
        "GET",
        "/modules/top-k/2.1.0",
        None,
        "application/json",
        Vec::new(),
    );
    assert_eq!(status, 404, "{err}");
}

#[test]
fn invalid_uploads_are_refused_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-module-size", "2MiB"]);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let oversized = vec![7u8; 3 * 1024 * 1024];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "random",
            "1.0.0",
            random,
            400,
            "not a WebAssembly component",
        ),
        (
            "core",
            "1.0.0",
            core_module,
            400,
            "a core WebAssembly module, not a component",
        ),
        (
            "foreign",
            "1.0.0",
            module("foreign_world.wasm"),
            400,
            "implements none of the sluice:pipeline worlds",
        ),
        (
            "pass",
            "1.0",
            module("pass_through.wasm"),
            400,
            "is not a semantic version",
        ),
        (
            "Bad Name",
            "1.0.0",
            module("pass_through.wasm"),
            400,
            "is not valid",
        ),
        ("big", "1.0.0", oversized, 413, "limit of 2097152 bytes"),
    ];
    for (name, version, bytes, want, message) in cases {
        let (status, err) = server.call(
            "POST",
            &format!(
                "/modules?name={}&version={version}",
                name.replace(' ', "%20")
            ),
            Some(&server.token),
            "application/wasm",
            bytes,
        );
        assert_eq!(status, want, "{name}: {err}");
        let text = err["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{name}: {text}");
    }
    // The foreign component's error says which world export is missing.
    let (_, err) = server.push("foreign", "1.0.0", module("foreign_world.wasm"));
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("sluice:pipeline/transform"),
        "{err}"
    );
    assert_eq!(server.get("/modules"), json!([]), "nothing was stored");
}

#[test]
fn mutating_requests_without_the_right_token_get_401_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    for token in [None, Some("wrong")] {
        let (status, err) = server.call(
            "POST",
            "/modules?name=pass&version=1.0.0",
            token,
            "application/wasm",
            module("pass_through.wasm"),
        );
        assert_eq!(status, 401, "{err}");
        assert!(err["error"].as_str().unwrap().contains("token"), "{err}");
        let (status, _) = server.call(
            "POST",
            "/queries",
            token,
            "application/toml",
            b"[[query]]\nname = \"q\"\n[query.source]\nformat = \"rate\"\n[query.sink]\nformat = \"console\"\n".to_vec(),
        );
        assert_eq!(status, 401);
    }
    assert_eq!(server.get("/modules"), json!([]));
    assert_eq!(server.get("/queries"), json!([]));
    // Reading needs no token.
    assert_eq!(server.get("/healthz")["status"], "ok");

    // With the token, a pipeline posted as JSON starts; a broken one is a 400 naming the key.
    let pipeline = json!({
        "query": [{
            "name": "from-json",
            "trigger": "once",
            "source": { "format": "rate-micro-batch", "rowsPerBatch": 5 },
            "sink": { "format": "memory" },
        }]
    });
    let (status, created) = server.call(
        "POST",
        "/queries",
        Some(&server.token),
        "application/json",
        pipeline.to_string().into_bytes(),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created[0]["name"], "from-json");
    server.await_batch("from-json", 0);
    let (status, err) = server.call(
        "POST",
        "/queries",
        Some(&server.token),
        "application/json",
        json!({ "query": [{ "name": "bad", "source": { "format": "kafak" }, "sink": { "format": "console" } }] })
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("source.format"),
        "{err}"
    );
    // A clustered query is `sluice run --member`'s: refused here, saying so.
    let (status, err) = server.call(
        "POST",
        "/queries",
        Some(&server.token),
        "application/json",
        json!({ "query": [{
            "name": "member",
            "checkpointLocation": "shared",
            "cluster": { "group": "g" },
            "source": { "format": "kafka", "kafka.bootstrap.servers": "127.0.0.1:9", "subscribe": "in" },
            "sink": { "format": "console" },
        }] })
        .to_string()
        .into_bytes(),
    );
    assert!((400..500).contains(&status), "{status}: {err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("sluice run --member"),
        "{err}"
    );
    let (status, err) = server.call("GET", "/queries/nope", None, "application/json", Vec::new());
    assert_eq!(status, 404, "{err}");
}

#[test]
fn concurrent_uploads_of_one_name_store_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(Server::start(&dir.path().join("data"), &[]));
    let files = ["pass_through.wasm", "hostile_transform.wasm"];
    // Eight uploads at once: four distinct versions, and four racing for the same version
    // with different bytes.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                let version = if i < 4 {
                    format!("1.{i}.0")
                } else {
                    "9.9.9".to_owned()
                };
                server.push("race", &version, module(files[i % 2])).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses[..4].iter().all(|s| *s == 201), "{statuses:?}");
    let racing = &statuses[4..];
    // Same bytes may both "win" (an identical upload is a no-op); different bytes never do.
    let digests: std::collections::BTreeSet<_> = (4..8)
        .filter(|i| racing[i - 4] == 201)
        .map(|i| files[i % 2])
        .collect();
    assert_eq!(digests.len(), 1, "{statuses:?}");
    assert!(
        racing.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let versions: Vec<String> = server
        .get("/modules")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "9.9.9"]);
}

/// A query reading a steady stream (`rate-micro-batch`, 50 rows a batch) through a step whose
/// module is swapped while it runs.
fn steady_pipeline(dir: &Path, module: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    pipeline(
        dir,
        &format!(
            r#"[[query]]
name = "steady"
checkpointLocation = "ckpt"
trigger = {{ processingTime = "50 milliseconds" }}
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 50
[[query.transform]]
name = "step"
module = "{module}"
[query.sink]
format = "json"
path = "out"
"#
        ),
    )
}

/// The `value`s the json sink committed, sorted; panics on a duplicate.
fn values_once(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = committed_json(&dir.join("out"))
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    v.sort();
    let n = v.len();
    v.dedup();
    assert_eq!(v.len(), n, "duplicated rows in the output");
    v
}

#[test]
fn a_swap_under_steady_input_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let v2_digest = server.push_step_versions();
    let work = dir.path().join("work");
    let file = steady_pipeline(&work, "step@^1.0");
    let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let before = server.await_batch("steady", 3);
    let v1_digest = before["steps"][0]["digest"].as_str().unwrap().to_owned();
    assert_ne!(v1_digest, v2_digest);

    // Removing the version in use is refused, naming the query.
    let (status, err) = server.call(
        "DELETE",
        "/modules/step/1.0.0",
        Some(&server.token),
        "application/json",
        Vec::new(),
    );
    assert_eq!(status, 409, "{err}");
    assert!(err["error"].as_str().unwrap().contains("'steady'"), "{err}");

    let (stdout, swapped_at, after) = server.swap("steady", "step", "step@2.0.0", 4);
    assert!(stdout.contains(&v2_digest), "{stdout}");
    assert_eq!(after["steps"][0]["digest"], v2_digest.as_str());

    let last = server.stop("steady");
    let stopped = server.get("/queries/steady");
    assert_eq!(stopped["isActive"], false);
    assert!(stopped["exception"].is_null(), "{stopped}");

    // Every batch's rows exactly once: 50 per batch, values 0.. without a gap.
    let values = values_once(&work);
    assert_eq!(values, (0..(last as i64 + 1) * 50).collect::<Vec<_>>());
    // The offsets log says which module each batch ran: v1 up to the swap, v2 after.
    let digests: Vec<String> = (0..=last)
        .map(|b| {
            let entry: Value = serde_json::from_str(
                &std::fs::read_to_string(work.join(format!("ckpt/offsets/{b}"))).unwrap(),
            )
            .unwrap();
            entry["modules"]["step"].as_str().unwrap().to_owned()
        })
        .collect();
    let first_v2 = digests.iter().position(|d| *d == v2_digest).unwrap();
    assert!(digests[..first_v2].iter().all(|d| *d == v1_digest));
    assert!(digests[first_v2..].iter().all(|d| *d == v2_digest));
    assert!(
        first_v2 as u64 > 3 && first_v2 as u64 <= swapped_at + 2,
        "{digests:?}"
    );

    // The metrics count the calls of each module.
    let (status, metrics) = server.call("GET", "/metrics", None, "text/plain", Vec::new());
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(&format!(
            "sluice_query_batches_total{{query=\"steady\"}} {}",
            last + 1
        )),
        "{text}"
    );
    assert!(
        text.contains("sluice_query_batch_duration_seconds_bucket{query=\"steady\",le=\"+Inf\"}"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sluice_wasm_calls_total{{query=\"steady\",step=\"step\",module=\"{v2_digest}\"}}"
        )),
        "{text}"
    );
    // How busy the query kept the CPU: its own thread always worked.
    let value_of = |name: &str| -> f64 {
        let prefix = format!("{name}{{query=\"steady\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    assert!(value_of("sluice_query_thread_cpu_seconds_total") > 0.0);
    // The pool's counters are there (a 50-row batch may run on the query thread alone, so
    // they may be 0); tasks are a whole count.
    assert_eq!(value_of("sluice_query_worker_tasks_total").fract(), 0.0);
    value_of("sluice_query_worker_cpu_seconds_total");
}

#[test]
fn a_killed_server_resumes_its_queries_from_their_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().join("work");
    let file = steady_pipeline(&work, "step@1.0.0");
    let first = Server::start(&data, &[]);
    assert_eq!(
        first.push("step", "1.0.0", module("pass_through.wasm")).0,
        201
    );
    let (ok, _, stderr) = first.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let reached = first.await_batch("steady", 3)["lastBatchId"]
        .as_u64()
        .unwrap();
    drop(first); // SIGKILL: no graceful stop.

    let second = Server::start(&data, &[]);
    let q = second.await_batch("steady", reached + 3);
    assert_eq!(q["isActive"], true);
    let last = second.stop("steady");
    assert_eq!(
        values_once(&work),
        (0..(last as i64 + 1) * 50).collect::<Vec<_>>(),
        "the batch in flight at the kill was re-run, nothing lost or repeated"
    );
    // A query stopped on request stays stopped across a restart.
    drop(second);
    let third = Server::start(&data, &[]);
    assert_eq!(third.get("/queries"), json!([]));
}

/// The offsets log records each batch's module digest: a batch re-run after a crash runs the
/// code it was planned with even though the tag it named (`step@^1.0`) has moved since.
#[test]
fn a_rerun_batch_uses_the_module_it_was_planned_with_after_the_tag_moved() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("modules");
    let push = |version: &str, file: &str| {
        sluice::registry::Registry::open(&registry)
            .unwrap()
            .push("step", version, &module(file))
            .unwrap()
            .digest
    };
    let v1 = push("1.0.0", "pass_through.wasm");
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("in")).unwrap();
    for i in 0..3 {
        drop_file(
            &work.join("in"),
            &format!("f{i}.txt"),
            format!("line {i}\n"),
        );
    }
    let file = pipeline(
        &work,
        r#"[[query]]
name = "tagged"
checkpointLocation = "ckpt"
trigger = "availableNow"
[query.source]
format = "text"
path = "in"
maxFilesPerTrigger = 1
[[query.transform]]
name = "step"
module = "step@^1.0"
[query.sink]
format = "json"
path = "out"
"#,
    );
    let registry_arg = registry.to_str().unwrap();
    let mut run = Running::start(
        &file,
        &["--registry", registry_arg],
        &[("SLUICE_FAILPOINTS", "after-offsets:1")],
    );
    run.await_line("sluice-failpoint: after-offsets batch 1");
    run.signal(9);
    run.wait();
    // The tag moves: ^1.0 now means 1.1.0.
    let v11 = push("1.1.0", "hostile_transform.wasm");
    let log = work.join("progress.jsonl");
    run_ok(
        sluice()
            .arg("run")
            .arg(&file)
            .args(["--registry", registry_arg, "--progress-log"])
            .arg(&log),
    );
    let ran: Vec<(u64, String)> = progress(&log)
        .iter()
        .map(|p| {
            (
                p.batch_id,
                p.observed_metrics["transform.step.module"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(ran, vec![(1, v1), (2, v11)]);
    let mut lines: Vec<String> = committed_json(&work.join("out"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    lines.sort();
    assert_eq!(lines, ["line 0", "line 1", "line 2"]);
}

#[test]
fn a_step_of_one_input_of_a_served_union_is_swapped_at_a_batch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let v2_digest = server.push_step_versions();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let file = pipeline(
        &work,
        r#"[[query]]
name = "both"
checkpointLocation = "ckpt"
trigger = { processingTime = "50 milliseconds" }
[query.inputs.a]
format = "rate-micro-batch"
rowsPerBatch = 20
[[query.inputs.a.transform]]
name = "a-step"
module = "step@^1.0"
[query.inputs.b]
format = "rate-micro-batch"
rowsPerBatch = 20
[[query.inputs.b.transform]]
name = "b-step"
module = "step@^1.0"
[query.union]
inputs = ["a", "b"]
[query.sink]
format = "json"
path = "out"
"#,
    );
    let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let before = server.await_batch("both", 2);
    let steps: Vec<&str> = before["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["a-step", "b-step"], "{before}");

    let (_, _, after) = server.swap("both", "b-step", "step@2.0.0", 3);
    assert_eq!(after["steps"][1]["digest"], v2_digest.as_str());
    assert_ne!(after["steps"][0]["digest"], v2_digest.as_str());
    let last = server.stop("both");

    // Each input's rows exactly once: every value twice (once per input), none missing.
    let mut counts: std::collections::BTreeMap<i64, u32> = Default::default();
    for r in committed_json(&work.join("out")) {
        *counts.entry(r["value"].as_i64().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len() as u64, (last + 1) * 20);
    assert!(counts.values().all(|&c| c == 2), "{counts:?}");
    // The offsets log records both input steps' modules; only b-step's changed.
    let entry: Value = serde_json::from_str(
        &std::fs::read_to_string(work.join(format!("ckpt/offsets/{last}"))).unwrap(),
    )
    .unwrap();
    assert_eq!(entry["modules"]["b-step"], v2_digest.as_str());
    assert_ne!(entry["modules"]["a-step"], v2_digest.as_str());
    assert_eq!(entry["sources"].as_array().unwrap().len(), 2);
}

#[test]
fn a_python_module_is_uploaded_and_swapped_in_under_steady_input() {
    let python = python_guests().join("python_hostile.wasm");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(
        server.push("step", "1.0.0", module("pass_through.wasm")).0,
        201
    );
    // An 18 MB component: validated and precompiled at upload like any other.
    let (status, v2) = server.push("step", "2.0.0", std::fs::read(&python).unwrap());
    assert_eq!(status, 201, "{v2}");
    // The registry says what each is written in.
    assert_eq!(v2["language"], "python", "{v2}");
    assert_eq!(server.get("/modules/step/1.0.0")["language"], "rust");
    let v2_digest = v2["digest"].as_str().unwrap().to_owned();
    let work = dir.path().join("work");
    let file = steady_pipeline(&work, "step@1.0.0");
    let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    server.await_batch("steady", 2);
    let (_, _, after) = server.swap("steady", "step", "step@2.0.0", 3);
    assert_eq!(after["steps"][0]["digest"], v2_digest.as_str());
    let last = server.stop("steady");
    // The Python step passed every row through: 50 per batch, once, without a gap.
    assert_eq!(
        values_once(&work),
        (0..(last as i64 + 1) * 50).collect::<Vec<_>>()
    );
}

/// The API as its own `/openapi.json` describes it, walked by schemathesis (an independent
/// tool, from PyPI) with the token: no 5xx, every answer as described (status, content type,
/// schema), every operation that declares the token refuses a request without it, random
/// uploads refused with a 4xx, and a query running beside the walk produces every row once.
#[test]
fn schemathesis_walks_the_openapi_description_beside_a_running_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(
        server.push("step", "1.0.0", module("pass_through.wasm")).0,
        201
    );
    let work = dir.path().join("work");
    let file = steady_pipeline(&work, "step@1.0.0");
    let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    server.await_batch("steady", 2);
    std::fs::create_dir_all(dir.path().join("victim")).unwrap();
    let victim = pipeline(
        &dir.path().join("victim"),
        r#"[[query]]
name = "victim"
checkpointLocation = "ckpt"
trigger = { processingTime = "50 milliseconds" }
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 5
[query.sink]
format = "json"
path = "out"
"#,
    );
    let (ok, _, stderr) = server.cli(&["query", "start", victim.to_str().unwrap()]);
    assert!(ok, "{stderr}");

    // The description covers every route of the table in `sluice serve`'s docs, and each
    // route that changes something declares the token.
    let description = server.get("/openapi.json");
    let paths = description["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/", &["get"][..]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
        ("/modules", &["get", "post"]),
        ("/modules/{name}/{version}", &["get", "delete"]),
        ("/queries", &["get", "post"]),
        ("/queries/{name}", &["get"]),
        ("/queries/{name}/progress", &["get"]),
        ("/queries/{name}/stop", &["post"]),
        ("/queries/{name}/swap", &["post"]),
        ("/sql", &["post"]),
    ] {
        for method in methods {
            let operation = &paths[path][*method];
            assert!(operation.is_object(), "{method} {path} is not described");
            assert_eq!(
                operation["security"].is_array(),
                *method != "get",
                "{method} {path} declares the token exactly when it changes something"
            );
        }
    }

    // `POST /sql` answers on `sluice serve` too (the walk found it panicking: the server's
    // runtime had no timers for the query's time limit).
    let (status, answer) = server.call(
        "POST",
        "/sql",
        Some(&server.token),
        "application/json",
        br#"{"sql": "SELECT 1 + 1 AS two"}"#.to_vec(),
    );
    assert_eq!(
        (status, &answer["rows"]),
        (200, &json!([{ "two": 2 }])),
        "{answer}"
    );

    // Run where its cache (`.schemathesis/`) lands in the test's folder, not the repository.
    let out = std::process::Command::new("schemathesis")
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(repo().join("tests/openapi/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.token),
        ])
        .args(["--max-examples", "60", "--workers", "1", "--no-color"])
        .args(["--generation-database", "none"])
        .output()
        .expect("running schemathesis (pip install 'schemathesis==4.32.5'; scripts/test.sh does)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("Specification:    Open API 3.1.0"),
        "{report}"
    );

    // The walk changed nothing it should not have: the one module, the query running.
    let modules = server.get("/modules");
    assert_eq!(
        modules
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!(
                "{}@{}",
                m["name"].as_str().unwrap(),
                m["version"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        ["step@1.0.0"],
        "random uploads were all refused"
    );
    let q = server.get("/queries/steady");
    assert_eq!(q["isActive"], true, "{q}");
    let victim = server.get("/queries/victim");
    assert_eq!(
        (&victim["isActive"], &victim["exception"]),
        (&json!(false), &Value::Null),
        "the walk's own query was stopped, gracefully: {victim}"
    );
    let reached = q["lastBatchId"].as_u64().unwrap();
    server.await_batch("steady", reached + 2);
    let last = server.stop("steady");
    assert_eq!(
        values_once(&work),
        (0..(last as i64 + 1) * 50).collect::<Vec<_>>(),
        "every row of the query beside the walk, once"
    );
}

/// A query stopped and started again, over and over (as the soak does every five minutes),
/// leaves one stored pipeline behind, not one per start: the data directory stays bounded,
/// and a restarted server resumes it once.
#[test]
fn a_query_restarted_many_times_keeps_one_stored_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    assert_eq!(
        server.push("step", "1.0.0", module("pass_through.wasm")).0,
        201
    );
    let work = dir.path().join("work");
    let file = steady_pipeline(&work, "step@1.0.0");
    for _ in 0..4 {
        let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        server.await_batch("steady", 1);
        server.stop("steady");
    }
    let (ok, _, stderr) = server.cli(&["query", "start", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let stored = std::fs::read_dir(data.join("pipelines")).unwrap().count();
    assert_eq!(stored, 2, "one pipeline's TOML and record");
    let reached = server.await_batch("steady", 2)["lastBatchId"]
        .as_u64()
        .unwrap();
    drop(server);
    let again = Server::start(&data, &[]);
    again.await_batch("steady", reached + 2);
    let last = again.stop("steady");
    assert_eq!(
        values_once(&work),
        (0..(last as i64 + 1) * 50).collect::<Vec<_>>()
    );
}
