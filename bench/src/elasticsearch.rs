//! JSON files → Elasticsearch (`_bulk`, ids from a column) against curl posting the same
//! documents as NDJSON to `_bulk` in requests of the same size — the server's own bulk path
//! from the plainest client, the ceiling of a loader. The server is `noida-db` (PyPI, an
//! Elasticsearch-compatible server) on a free port.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::{median, span};
use crate::pipeline::run_pipeline;

/// Documents per `_bulk` request, for both loaders.
const BULK: usize = 1000;

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("noida-db")
            .args(["start", "--only", "elasticsearch", "--data-dir"])
            .arg(dir)
            .args(["--elasticsearch-port", &port.to_string()])
            .current_dir(dir.parent().unwrap_or(dir))
            // A Python launcher that starts the server as its child: a group of their own,
            // so that stopping the group stops the server.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting noida-db (python3 -m pip install noida-db==0.2.2)")?;
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.get("/").is_err() {
            if Instant::now() > deadline {
                bail!("noida-db did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn get(&self, path: &str) -> Result<serde_json::Value> {
        let mut resp = ureq::get(format!("{}{path}", self.url)).call()?;
        Ok(serde_json::from_slice(&resp.body_mut().read_to_vec()?)?)
    }

    fn count(&self, index: &str) -> Result<u64> {
        self.get(&format!("/{index}/_refresh"))?;
        self.get(&format!("/{index}/_count"))?["count"]
            .as_u64()
            .context("_count without a count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn row(i: usize) -> String {
    format!(
        "{{\"order_id\":{i},\"category\":\"c{}\",\"amount\":{},\"customer\":\"u{:06}\"}}",
        i % 50,
        (i * 7919) % 100_000,
        i % 100_000
    )
}

/// Runs the benchmark: `runs` runs of each load of `rows` documents.
pub fn run(rows: usize, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("es"))?;
    let files = 10;
    let data = dir.path().join("orders");
    std::fs::create_dir_all(&data)?;
    for f in 0..files {
        let mut json = String::new();
        for i in f * rows / files..(f + 1) * rows / files {
            json.push_str(&row(i));
            json.push('\n');
        }
        std::fs::write(data.join(format!("part-{f:02}.json")), json)?;
    }

    let mut curl = Vec::new();
    let mut sluice = Vec::new();
    for r in 0..runs {
        // The ceiling: the same documents, `BULK` to a request, one curl for all requests.
        let index = format!("curl-{r}");
        let chunks = dir.path().join(format!("chunks-{r}"));
        std::fs::create_dir_all(&chunks)?;
        let mut config = String::new();
        for (c, start) in (0..rows).step_by(BULK).enumerate() {
            let mut body = String::new();
            for i in start..(start + BULK).min(rows) {
                body.push_str(&format!(
                    "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{i}\"}}}}\n{}\n",
                    row(i)
                ));
            }
            let chunk = chunks.join(format!("{c}.ndjson"));
            std::fs::write(&chunk, body)?;
            if c > 0 {
                config.push_str("next\n");
            }
            config.push_str(&format!(
                "url = \"{}/_bulk\"\nheader = \"Content-Type: application/x-ndjson\"\ndata-binary = \"@{}\"\noutput = \"/dev/null\"\nsilent\n",
                server.url,
                chunk.display()
            ));
        }
        let config_path = dir.path().join(format!("curl-{r}.conf"));
        std::fs::write(&config_path, config)?;
        let (status, s) = span(|| Command::new("curl").arg("-K").arg(&config_path).status());
        if !status?.success() {
            bail!("curl failed");
        }
        curl.push(rows as f64 / s.wall.as_secs_f64());
        let n = server.count(&index)?;
        if n != rows as u64 {
            bail!("{index}: {n} documents, wanted {rows}");
        }

        let index = format!("sluice-{r}");
        let text = format!(
            r#"[[query]]
name = "load"
checkpointLocation = "{dir}/ckpt-{r}"
trigger = "availableNow"
[query.source]
format = "json"
path = "{data}"
schema = "order_id BIGINT, category STRING, amount BIGINT, customer STRING"
mode = "FAILFAST"
maxFilesPerTrigger = 2
[query.sink]
format = "elasticsearch"
url = "{url}"
index = "{index}"
idColumns = ["order_id"]
bulkSize = {BULK}
"#,
            dir = dir.path().display(),
            data = data.display(),
            url = server.url,
        );
        let run = run_pipeline(&text)?;
        sluice.push(rows as f64 / run.span.wall.as_secs_f64());
        let n = server.count(&index)?;
        if n != rows as u64 {
            bail!("{index}: {n} documents, wanted {rows}");
        }
    }
    let (c, cl, ch) = median(&curl);
    let (s, sl, sh) = median(&sluice);
    println!(
        "| load ({rows} documents, 4 fields, {BULK} per _bulk, {runs} runs) | documents/s (median; min–max) | of curl |"
    );
    println!("|---|---|---|");
    println!("| curl -K: the same NDJSON to _bulk (the ceiling) | {c:.0} ({cl:.0}–{ch:.0}) | — |");
    println!(
        "| Sluice json → elasticsearch, ids from order_id, 5 batches | {s:.0} ({sl:.0}–{sh:.0}) | {:.0}% |",
        100.0 * s / c
    );
    Ok(())
}
