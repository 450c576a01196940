//! JSON files → PostgreSQL (append and upsert, exactly once) against `psql \copy` of the same
//! rows as CSV — PostgreSQL's own bulk load from its own client, the ceiling of a loader.
//! The server is `scripts/postgres-server.sh` (Debian's postgresql) on a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::{median, span};
use crate::pipeline::run_pipeline;

/// The superuser's password of the benchmark's server.
pub(crate) const PASSWORD: &str = "bench-pw";

/// A throwaway PostgreSQL server (`scripts/postgres-server.sh`), stopped when dropped.
pub(crate) struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts a server with its cluster in `dir`; returns once it accepts connections.
    pub(crate) fn start(dir: &Path) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres-server.sh");
        let child = Command::new("bash")
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .arg(PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting scripts/postgres-server.sh")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .status()?
            .success()
        {
            if Instant::now() > deadline {
                bail!("PostgreSQL did not start");
            }
        }
        Ok(Server { child, port })
    }

    /// The connection string of database `db` (the password is given apart).
    pub(crate) fn url(&self, db: &str) -> String {
        format!("host=127.0.0.1 port={} user=sluice dbname={db}", self.port)
    }

    /// Runs `sql` with psql; its unaligned output.
    pub(crate) fn psql(&self, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "sluice",
            ])
            .args(["-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn row(i: usize) -> (String, String) {
    let (category, amount) = (format!("c{}", i % 50), (i * 7919) % 100_000);
    let ts = format!(
        "2026-12-01T{:02}:{:02}:{:02}Z",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60
    );
    (
        format!(
            "{{\"order_id\":{i},\"category\":\"{category}\",\"amount\":{amount},\"ts\":\"{ts}\",\"customer\":\"u{:06}\"}}\n",
            i % 100_000
        ),
        format!("{i},{category},{amount},{ts},u{:06}\n", i % 100_000),
    )
}

/// Runs the benchmark: `runs` runs of each load of `rows` rows.
pub fn run(rows: usize, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("pg"))?;
    let files = 10;
    let data = dir.path().join("orders");
    std::fs::create_dir_all(&data)?;
    let mut csv = String::new();
    for f in 0..files {
        let mut json = String::new();
        for i in f * rows / files..(f + 1) * rows / files {
            let (j, c) = row(i);
            json.push_str(&j);
            csv.push_str(&c);
        }
        std::fs::write(data.join(format!("part-{f:02}.json")), json)?;
    }
    let csv_path = dir.path().join("orders.csv");
    std::fs::write(&csv_path, csv)?;
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD)?;
    let columns = "order_id bigint, category text, amount bigint, ts timestamptz, customer text";

    let mut copy = Vec::new();
    let mut append = Vec::new();
    let mut upsert = Vec::new();
    let mut commit_ms = Vec::new();
    for r in 0..runs {
        let table = format!("copy_{r}");
        server.psql(&format!("CREATE TABLE {table} ({columns})"))?;
        let (out, s) = span(|| {
            server.psql(&format!(
                "\\copy {table} FROM '{}' WITH (FORMAT csv)",
                csv_path.display()
            ))
        });
        out?;
        copy.push(rows as f64 / s.wall.as_secs_f64());

        for (mode, rates) in [("append", &mut append), ("upsert", &mut upsert)] {
            let table = format!("{mode}_{r}");
            let key = if mode == "upsert" {
                "mode = \"upsert\"\nkey = [\"order_id\"]"
            } else {
                ""
            };
            let text = format!(
                r#"[[query]]
name = "load"
checkpointLocation = "ckpt-{mode}-{r}"
trigger = "availableNow"
[query.source]
format = "json"
path = "{data}"
schema = "order_id BIGINT, category STRING, amount BIGINT, ts TIMESTAMP, customer STRING"
mode = "FAILFAST"
maxFilesPerTrigger = 2
[query.sink]
format = "postgres"
url = "host=127.0.0.1 port={port} user=sluice dbname=postgres"
password = {{ file = "{pw}" }}
table = "{table}"
createTable = true
{key}
"#,
                data = data.display(),
                port = server.port,
                pw = pw.display(),
            );
            let run = run_pipeline(&text)?;
            rates.push(rows as f64 / run.span.wall.as_secs_f64());
            for p in &run.progress {
                if let Some(ms) = p.duration_ms.get("addBatch") {
                    commit_ms.push(*ms as f64);
                }
            }
            let n: usize = server
                .psql(&format!("SELECT count(*) FROM {table}"))?
                .parse()?;
            if n != rows {
                bail!("{table}: {n} rows, wanted {rows}");
            }
        }
    }
    let (c, cl, ch) = median(&copy);
    let (a, al, ah) = median(&append);
    let (u, ul, uh) = median(&upsert);
    let (m, _, mh) = median(&commit_ms);
    println!(
        "| load ({rows} rows, 5 columns, {runs} runs) | rows/s (median; min–max) | of psql \\copy |"
    );
    println!("|---|---|---|");
    println!("| psql \\copy from CSV (the ceiling) | {c:.0} ({cl:.0}–{ch:.0}) | — |");
    println!(
        "| Sluice json → postgres append, 5 batches | {a:.0} ({al:.0}–{ah:.0}) | {:.0}% |",
        100.0 * a / c
    );
    println!(
        "| Sluice json → postgres upsert, 5 batches | {u:.0} ({ul:.0}–{uh:.0}) | {:.0}% |",
        100.0 * u / c
    );
    println!(
        "\nper-batch write (addBatch: claim, COPY, upsert, commit) of 2 files: median {m:.0} ms, max {mh:.0} ms"
    );
    Ok(())
}
