//! The module registry and `sluice serve` (issue: module registry and serve): how long an
//! upload takes to become usable (validation + precompilation), how long a precompiled
//! module takes to instantiate, and how soon a query started through the API emits its first
//! batch. The server runs in this process, on a loopback port, and is talked to over HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use arrow_schema::{DataType, Field, Schema};
use sluice::pipeline::{GuestLimits, OnError, TransformSpec};
use sluice::wasm::transform::WasmTransform;

use crate::measure::{median, quantile};

/// The example components, as built by scripts/build-guests.sh.
const EXAMPLES: [&str; 8] = [
    "pass_through.wasm",
    "filter_project.wasm",
    "json_events.wasm",
    "parse_orders.wasm",
    "word_count.wasm",
    "two_sinks.wasm",
    "dead_letter.wasm",
    "top_k.wasm",
];

/// A client of a `sluice serve` API, sending the bearer token with every request.
pub(crate) struct Http {
    /// `http://host:port`.
    pub(crate) url: String,
    token: String,
    agent: ureq::Agent,
}

impl Http {
    /// A client of the server at `url`; answers of any status are returned, not errors.
    pub(crate) fn new(url: String, token: &str) -> Http {
        Http {
            url,
            token: token.to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    /// Sends a request; its status and JSON answer (null if it is not JSON).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, serde_json::Value)> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {}", self.token))
            .body(body)?;
        let mut resp = self.agent.run(req)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or_default()))
    }

    /// Sends a request that must answer `status`; its JSON answer.
    pub(crate) fn expect(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        status: u16,
    ) -> Result<serde_json::Value> {
        let (got, answer) = self.call(method, path, body)?;
        if got != status {
            bail!("{method} {path}: {got} {answer}");
        }
        Ok(answer)
    }
}

/// Runs the benchmark and prints markdown tables.
pub fn run(modules: &Path, runs: usize) -> Result<()> {
    let work = tempfile::tempdir()?;
    // A compile cache of our own, empty: the first upload of each module pays for compiling.
    // SAFETY: set before any other thread exists (the runtime and server start below).
    unsafe { std::env::set_var("SLUICE_CACHE_DIR", work.path().join("cache")) };
    let data = work.path().join("data");
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = sluice::server::ServeOptions {
        data_dir: data.clone(),
        addr: "127.0.0.1:0".parse()?,
        token: Some("bench-token".into()),
        max_module_bytes: 64 << 20,
    };
    std::thread::spawn(move || {
        let ready = tx.clone();
        if let Err(e) = sluice::server::serve(opts, move |addr| {
            let _ = ready.send(Ok(addr));
        }) {
            let _ = tx.send(Err(e.to_string()));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))?
        .map_err(|e| anyhow!(e))?;
    let http = Http::new(format!("http://{addr}"), "bench-token");

    println!("### Upload to ready (HTTP POST until 201: validation, precompilation, storage)\n");
    println!(
        "| module | size | first upload (compiles) | re-upload as a new version (cache hit), median of {runs} |"
    );
    println!("|---|---|---|---|");
    for file in EXAMPLES {
        let bytes = std::fs::read(modules.join(file)).with_context(|| format!("reading {file}"))?;
        let name = file.trim_end_matches(".wasm").replace('_', "-");
        let t = Instant::now();
        let (status, v) = http.call(
            "POST",
            &format!("/modules?name={name}&version=1.0.0"),
            bytes.clone(),
        )?;
        let cold = t.elapsed();
        if status != 201 {
            bail!("uploading {file}: {status} {v}");
        }
        let mut warm = Vec::new();
        for r in 0..runs {
            let t = Instant::now();
            let (status, v) = http.call(
                "POST",
                &format!("/modules?name={name}&version=1.0.{}", r + 1),
                bytes.clone(),
            )?;
            warm.push(t.elapsed().as_secs_f64() * 1000.0);
            if status != 201 {
                bail!("uploading {file}: {status} {v}");
            }
        }
        println!(
            "| {file} | {:.0} KiB | {:.0} ms | {:.1} ms |",
            bytes.len() as f64 / 1024.0,
            cold.as_secs_f64() * 1000.0,
            median(&warm).0
        );
    }

    // Instantiation of a precompiled module: what a query (or a swap) does before its first
    // call — load the compiled artifact from the cache, link, instantiate, call `init`.
    let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)]));
    let blob = sluice::registry::Registry::open(data.join("modules"))?
        .resolve("pass-through@1.0.0")?
        .path;
    let mut ms = Vec::new();
    for _ in 0..50 {
        let spec = TransformSpec {
            name: "bench".into(),
            module: blob.clone(),
            module_ref: None,
            config: Default::default(),
            limits: GuestLimits::default(),
            on_error: OnError::Fail,
        };
        let t = Instant::now();
        let step = WasmTransform::new(spec, "bench", schema.clone())?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(step);
    }
    println!(
        "\n### Instantiating a precompiled module (pass-through: cache load, link, instantiate, init)\n\nmedian {:.3} ms, p99 {:.3} ms over {} instantiations\n",
        median(&ms).0,
        quantile(&ms, 0.99),
        ms.len()
    );

    // First-batch latency: POST /queries until the query reports batch 0 committed.
    let input = work.path().join("in");
    std::fs::create_dir_all(&input)?;
    std::fs::write(input.join("a.txt"), "one\ntwo\nthree\n")?;
    let mut first = Vec::new();
    for r in 0..runs.max(5) {
        let name = format!("first-{r}");
        let text = pipeline(&name, &input, &work.path().join(&name));
        let t = Instant::now();
        let (status, v) = http.call("POST", "/queries", text.into_bytes())?;
        if status != 201 {
            bail!("starting {name}: {status} {v}");
        }
        loop {
            let (_, q) = http.call("GET", &format!("/queries/{name}"), Vec::new())?;
            if q["lastBatchId"].as_u64() == Some(0) {
                break;
            }
            if !q["exception"].is_null() {
                bail!("{name} failed: {}", q["exception"]);
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("{name} did not run a batch in 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        http.call("POST", &format!("/queries/{name}/stop"), Vec::new())?;
    }
    let (m, lo, hi) = median(&first);
    println!(
        "### First batch of a query started through the API (precompiled pass-through step, one text file → json sink)\n\nmedian {m:.1} ms (min {lo:.1}, max {hi:.1}) over {} queries, from POST /queries to batch 0 committed",
        first.len()
    );
    Ok(())
}

fn pipeline(name: &str, input: &Path, out: &Path) -> String {
    format!(
        r#"[[query]]
name = "{name}"
checkpointLocation = "{ckpt}"
[query.source]
format = "text"
path = "{input}"
[[query.transform]]
name = "pass"
module = "pass-through@1.0.0"
[query.sink]
format = "json"
path = "{out}"
"#,
        ckpt = out.join("ckpt").display(),
        input = input.display(),
        out = out.join("out").display()
    )
}
