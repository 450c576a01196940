//! JSON files → Cassandra (prepared INSERTs by primary key, unlogged batches per partition)
//! against the DataStax Python driver's own bulk path — `execute_concurrent_with_args` of the
//! same prepared INSERT over the same rows, 100 requests in flight — in the same run, on the
//! same server: kassandra's in-memory engine served as a process (`tests/servers/cassandra`,
//! built here from source).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::measure::median;
use crate::pipeline::run_pipeline;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Result<Server> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target"))
            .join("servers");
        let built = Command::new("cargo")
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "--manifest-path",
            ])
            .arg(repo.join("tests/servers/cassandra/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .context("building the Cassandra test server")?;
        if !built.success() {
            bail!("building the Cassandra test server failed");
        }
        let mut child = Command::new(target.join("release/sluice-cassandra-test-server"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the server said {line:?}"))?;
        Ok(Server { child, port })
    }

    /// Runs `script` (Python, with `session` connected) and returns its stdout.
    fn python(&self, script: &str) -> Result<String> {
        let mut child = Command::new("python3")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("python3 with cassandra-driver (pip install cassandra-driver==3.30.1)")?;
        let prelude = format!(
            "from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile\n\
             from cassandra.concurrent import execute_concurrent_with_args\n\
             from cassandra.policies import RoundRobinPolicy\n\
             profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())\n\
             cluster = Cluster(['127.0.0.1'], port={}, protocol_version=4, \
             schema_metadata_enabled=False, token_metadata_enabled=False, \
             execution_profiles={{EXEC_PROFILE_DEFAULT: profile}})\n\
             session = cluster.connect()\n",
            self.port
        );
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(format!("{prelude}{script}\ncluster.shutdown()\n").as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("python: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn count(&self, table: &str) -> Result<u64> {
        let out = self.python(&format!(
            "print(sum(1 for _ in session.execute('SELECT order_id FROM bench.{table}')))"
        ))?;
        out.trim().parse().context("a count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn row(i: usize) -> (usize, String, usize, String) {
    (
        i,
        format!("c{}", i % 50),
        (i * 7919) % 100_000,
        format!("u{:06}", i % 100_000),
    )
}

/// Runs the benchmark: `runs` runs of each load of `rows` rows.
pub fn run(rows: usize, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start()?;
    server.python(
        "session.execute(\"CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}\")",
    )?;
    let files = 10;
    let data = dir.path().join("orders");
    std::fs::create_dir_all(&data)?;
    let mut csv = String::new();
    for f in 0..files {
        let mut json = String::new();
        for i in f * rows / files..(f + 1) * rows / files {
            let (id, category, amount, customer) = row(i);
            json.push_str(&format!(
                "{{\"order_id\":{id},\"category\":\"{category}\",\"amount\":{amount},\"customer\":\"{customer}\"}}\n"
            ));
            csv.push_str(&format!("{id},{category},{amount},{customer}\n"));
        }
        std::fs::write(data.join(format!("part-{f:02}.json")), json)?;
    }
    let csv_path = dir.path().join("rows.csv");
    std::fs::write(&csv_path, csv)?;
    let table = |name: &str| {
        format!(
            "session.execute('CREATE TABLE bench.{name} (order_id bigint PRIMARY KEY, category text, amount bigint, customer text)')"
        )
    };

    let mut python = Vec::new();
    let mut sluice = Vec::new();
    for r in 0..runs {
        // The ceiling: the Python driver's concurrent execution of the same prepared INSERT
        // (rows read from a CSV before the clock starts).
        let name = format!("py_{r}");
        server.python(&table(&name))?;
        let out = server.python(&format!(
            "import csv, time\n\
             rows = [(int(a), b, int(c), d) for a, b, c, d in csv.reader(open('{csv}'))]\n\
             insert = session.prepare('INSERT INTO bench.{name} (order_id, category, amount, customer) VALUES (?, ?, ?, ?)')\n\
             start = time.perf_counter()\n\
             execute_concurrent_with_args(session, insert, rows, concurrency=100, raise_on_first_error=True)\n\
             print(time.perf_counter() - start)",
            csv = csv_path.display()
        ))?;
        let seconds: f64 = out.trim().parse().context("python's time")?;
        python.push(rows as f64 / seconds);
        let n = server.count(&name)?;
        if n != rows as u64 {
            bail!("{name}: {n} rows, wanted {rows}");
        }

        let name = format!("sluice_{r}");
        server.python(&table(&name))?;
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
format = "cassandra"
contactPoints = ["127.0.0.1:{port}"]
keyspace = "bench"
table = "{name}"
"#,
            dir = dir.path().display(),
            data = data.display(),
            port = server.port,
        );
        let run = run_pipeline(&text)?;
        sluice.push(rows as f64 / run.span.wall.as_secs_f64());
        let n = server.count(&name)?;
        if n != rows as u64 {
            bail!("{name}: {n} rows, wanted {rows}");
        }
    }
    let (p, pl, ph) = median(&python);
    let (s, sl, sh) = median(&sluice);
    println!(
        "| load ({rows} rows, 4 columns, {runs} runs) | rows/s (median; min–max) | of the Python driver |"
    );
    println!("|---|---|---|");
    println!(
        "| Python driver, execute_concurrent_with_args, 100 in flight (the ceiling) | {p:.0} ({pl:.0}–{ph:.0}) | — |"
    );
    println!(
        "| Sluice json → cassandra, 5 batches | {s:.0} ({sl:.0}–{sh:.0}) | {:.0}% |",
        100.0 * s / p
    );
    Ok(())
}
