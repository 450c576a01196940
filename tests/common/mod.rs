//! Helpers shared by the end-to-end tests: run the real `sluice` binary on real files.
#![allow(dead_code)]

pub mod attribution;
pub mod cassandra;
pub mod elasticsearch;
pub mod kafka;
pub mod postgres;
pub mod s3;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// How long any awaited event may take before the test fails (generous: CI machines are slow).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1 (one the OS just handed out, then closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `sluice` binary built for this test run.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Writes `text` to `dir/name` the way producers should: under a hidden name, then renamed in.
pub fn drop_file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The cities of [`event_lines`], by `id % 4`.
const CITIES: [&str; 4] = ["Seoul", "Busan", "Incheon", "Daegu"];

/// JSON lines of `{"id": i, "city": ..., "amount": ...}` for ids in `range`.
pub fn event_lines(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| {
            format!(
                "{{\"id\":{i},\"city\":\"{}\",\"amount\":{}}}\n",
                CITIES[(i % 4) as usize],
                i * 10
            )
        })
        .collect()
}

/// What [`event_lines`] holds, as `(id, city, amount)` rows: what a sink must have written.
pub fn event_rows(range: std::ops::Range<u64>) -> Vec<(u64, String, u64)> {
    range
        .map(|i| (i, CITIES[(i % 4) as usize].to_owned(), i * 10))
        .collect()
}

/// Writes a pipeline file into `dir` and returns its path.
pub fn pipeline(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every row of the committed files of a json file sink, read through its commit log.
pub fn committed_json(dir: &Path) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for file in sluice::connectors::file::sink::committed_files(dir).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            rows.push(serde_json::from_str(line).unwrap());
        }
    }
    rows
}

/// The `id` fields of rows, sorted.
pub fn sorted_ids(rows: &[serde_json::Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

/// The progress records of a `--progress-log` file.
pub fn progress(path: &Path) -> Vec<sluice::progress::QueryProgress> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A `sluice run` child whose stderr lines arrive on a channel, so tests can await log
/// lines and failpoints instead of sleeping.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(pipeline: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = sluice();
        cmd.arg("run").arg(pipeline).args(args);
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Running::spawn(cmd)
    }

    /// Starts `cmd` (a `sluice` command) with its stderr lines on the channel.
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics with everything seen on timeout.
    pub fn await_line(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needle:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits up to a second for a stderr line containing `needle`; false if none came yet.
    pub fn try_await_line(&mut self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push(line.clone());
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// Lets a process paused at a failpoint go on (`SLUICE_FAILPOINTS_RESUME=stdin`, stdin
    /// piped).
    pub fn resume(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Whether the child has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal to the child.
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit and returns the exit code (None if killed by a signal) and all stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen).join("\n"))
    }
}

impl Drop for Running {
    /// A test that fails half-way must not leave a `sluice run` behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The repository's root folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the Python guest components from source with componentize-py (once per test
/// binary), with the script a user runs, and returns the folder holding the `.wasm` files.
pub fn python_guests() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/build-python-guests.sh"))
            .output()
            .expect("running scripts/build-python-guests.sh");
        assert!(
            out.status.success(),
            "building the Python guest components failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    repo().join("examples/modules")
}

/// Builds the JavaScript guest components from source (once per test binary) with
/// `scripts/build-js-guests.sh` (ComponentizeJS from npm), and returns where they are.
pub fn js_guests() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/build-js-guests.sh"))
            .output()
            .expect("running scripts/build-js-guests.sh");
        assert!(
            out.status.success(),
            "building the JavaScript guest components failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    repo().join("examples/modules")
}

/// Builds every guest component from source (once per test binary) with the same script a
/// user runs, and returns the folder holding the `.wasm` files.
pub fn guests() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/build-guests.sh"))
            .output()
            .expect("running scripts/build-guests.sh");
        assert!(
            out.status.success(),
            "building the guest components failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    repo().join("examples/modules")
}

/// Copies example pipeline `name` (and the example data) into `dir`, pointing its modules at
/// the freshly built components, and returns the copied pipeline's path.
pub fn example(name: &str, dir: &Path) -> PathBuf {
    let modules = guests();
    let examples = repo().join("examples");
    let text = std::fs::read_to_string(examples.join(format!("{name}.toml"))).unwrap();
    let text = text.replace("\"modules/", &format!("\"{}/", modules.display()));
    copy_dir(&examples.join("data"), &dir.join("data"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Copies a folder; files get modification times in name order, so a file source reads
/// `orders-1`, `orders-2`, ... in that order as it would the originals.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let base = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (i, entry) in entries.iter().enumerate() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let f = std::fs::File::options().write(true).open(&target).unwrap();
            f.set_modified(base + Duration::from_secs(i as u64))
                .unwrap();
        }
    }
}

/// The rows of the last table a console sink printed, as trimmed cells.
pub fn last_console_table(stdout: &str) -> Vec<Vec<String>> {
    table_rows(stdout.rsplit("Batch: ").next().unwrap_or(""))
}

/// The rows a console sink printed for batch `id`, as trimmed cells (empty when it printed
/// none).
pub fn console_table(stdout: &str, id: u64) -> Vec<Vec<String>> {
    let heading = format!("Batch: {id}\n");
    stdout
        .split_once(&heading)
        .map(|(_, rest)| table_rows(rest.split("Batch: ").next().unwrap_or("")))
        .unwrap_or_default()
}

fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(1) // the header
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Spawns `cmd` (a server: a broker, `sluice serve`) and returns it with what follows
/// `prefix` on the first line it prints, its address.
pub fn spawn_announcing(mut cmd: Command, prefix: &str) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected a first line starting {prefix:?}, got {line:?}"))
        .to_owned();
    (child, address)
}

/// Starts `sluice serve` on a free loopback port with `data` as its data directory (and
/// `extra` arguments); returns the process, its URL and the token it generated.
pub fn start_serve(data: &Path, extra: &[&str]) -> (Child, String, String) {
    let mut cmd = sluice();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("SLUICE_TOKEN")
        .stderr(Stdio::null());
    let (child, url) = spawn_announcing(cmd, "sluice serve listening on ");
    let token = std::fs::read_to_string(data.join("token"))
        .unwrap()
        .trim()
        .to_owned();
    (child, url, token)
}

/// Runs `cmd` to completion and returns its output; panics with its stderr unless it exited 0.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sets a file's modification time `secs_ago` seconds back (the file source reads files
/// oldest first, so tests order their inputs with this).
pub fn set_mtime(path: &Path, secs_ago: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

/// `sluice run FILE` to its end, with progress records in `progress.jsonl` beside the file:
/// exit code (`None` if killed), stdout, stderr.
pub fn run_logged(file: &Path) -> (Option<i32>, String, String) {
    let out = sluice()
        .arg("run")
        .arg(file)
        .arg("--progress-log")
        .arg(file.with_file_name("progress.jsonl"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kcat (an independent Kafka client, from Debian's packages) with `args`, feeding
/// `input` on stdin, and returns its stdout lines.
pub fn kcat(args: &[&str], input: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/test.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs example pipeline `name` (whose json sink writes `out/NAME`) in a fresh folder and
/// returns the `value` of each committed row: what a guest in any language wrote.
pub fn example_values(name: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = example(name, dir.path());
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{name}: {stderr}");
    committed_json(&dir.path().join(format!("out/{name}")))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

/// One `availableNow` query per case `(name, config, limits)`: eight rows a batch through a
/// step of `module` with that config (a TOML inline table) and limits (TOML lines), to a
/// file sink of its own.
pub fn hostile_queries(module: &Path, cases: &[(&str, &str, &str)]) -> String {
    let mut text = String::new();
    for (name, config, limits) in cases {
        text.push_str(&format!(
            r#"
[[query]]
name = "{name}"
checkpointLocation = "ckpt-{name}"
trigger = "availableNow"
[query.source]
format = "rate-micro-batch"
rowsPerBatch = 8
[[query.transform]]
name = "{name}-step"
module = "{module}"
config = {config}
{limits}
[query.sink]
format = "json"
path = "out-{name}"
"#,
            module = module.display()
        ));
    }
    text
}

/// [`hostile_queries`] for `(name, behave, limits)` (the Python and JavaScript hostile guests
/// take `config.behave`), all run by one `sluice run`, which must fail; the folder (queries
/// write `out-NAME`) and its stderr.
pub fn run_hostile(module: &Path, cases: &[(&str, &str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<String> = cases
        .iter()
        .map(|(_, behave, _)| format!("{{ behave = \"{behave}\" }}"))
        .collect();
    let cases: Vec<(&str, &str, &str)> = cases
        .iter()
        .zip(&configs)
        .map(|((name, _, limits), config)| (*name, config.as_str(), *limits))
        .collect();
    let file = pipeline(dir.path(), &hostile_queries(module, &cases));
    let (code, _, stderr) = run_logged(&file);
    assert_eq!(code, Some(1), "{stderr}");
    (dir, stderr)
}

/// The error `sluice run` printed for query `q`, with what follows it up to the next
/// query's error (a guest's traceback).
pub fn query_error(stderr: &str, q: &str) -> String {
    let start = stderr
        .find(&format!("error: query '{q}' failed"))
        .unwrap_or_else(|| panic!("no error for query {q}:\n{stderr}"));
    let rest = &stderr[start..];
    let end = rest[1..]
        .find("error: query '")
        .map_or(rest.len(), |e| e + 1);
    rest[..end].to_owned()
}

/// Example `name` (a copy of `two-sinks.toml` with another language's handler) killed
/// after batch 1's handler and outputs ran, before its commit, then run again: batch 1 is
/// handed to the handler again, and the outputs hold every order once.
pub fn two_sinks_survive_a_replay(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = example(name, dir.path());
    let mut first = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", "after-sink:1")]);
    first.await_line("sluice-failpoint: after-sink batch 1");
    first.signal(9);
    assert_eq!(first.wait().0, None);
    let (code, stdout, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("re-running the last batch"), "{stderr}");
    assert!(stderr.contains("batch 1: 3 rows, 1 alerts"), "{stderr}");
    let archive = committed_json(&dir.path().join("out/orders-archive"));
    let mut ids: Vec<u64> = archive
        .iter()
        .map(|r| r["order_id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=7).collect::<Vec<_>>());
    assert!(archive.iter().all(|r| r["batch_id"].as_u64().unwrap() <= 2));
    // The alerts output is the console (at-least-once): batch 1's big order, printed again
    // by the replay.
    assert!(
        stdout.contains("|       4|  phone|electronics|990000|       1|"),
        "{stdout}"
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/two-sinks/summaries/batch-1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"batchId": 1, "rows": 3, "alerts": 1})
    );
}

/// Example `name` (a spread aggregate beside the built-in min, max and count, printed to the
/// console) killed once batch 1 committed, then run again: the restart restores each
/// group's state bytes from the checkpoint, and every group's spread is max − min.
pub fn spread_survives_a_kill(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = example(name, dir.path());
    let mut first = Running::start(&file, &[], &[("SLUICE_FAILPOINTS", "after-commit:1")]);
    first.await_line("sluice-failpoint: after-commit batch 1");
    first.signal(9);
    assert_eq!(first.wait().0, None);
    let (code, stdout, stderr) = run_logged(&file);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    let table = last_console_table(&stdout);
    assert!(table.len() >= 2, "{stdout}");
    let mut orders = 0;
    for row in &table {
        let [_, spread, lowest, highest, count] = &row[..] else {
            panic!("{row:?}");
        };
        let n = |s: &String| s.parse::<i64>().unwrap();
        assert_eq!(n(spread), n(highest) - n(lowest), "{row:?}");
        orders += n(count);
    }
    assert_eq!(orders, 7, "every order counted once: {stdout}");
}

/// `sluice new transform --lang LANG big-orders`, its `build.sh` (this build's `sluice` first
/// on PATH for the check it ends with), and its pipeline: the rows the sample input holds with
/// `amount >= 100`; other kinds are refused for LANG.
pub fn new_transform_builds_and_runs(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("big-orders");
    run_ok(
        sluice()
            .args(["new", "transform", "--lang", lang, "big-orders", "--dir"])
            .arg(&guest),
    );
    // build.sh runs the language's toolchain, then `sluice module check`: this build's
    // binary first on PATH.
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let built = run_ok(
        std::process::Command::new("bash")
            .arg(guest.join("build.sh"))
            .env("PATH", &path),
    );
    assert!(
        String::from_utf8_lossy(&built.stdout).contains("transformer")
            && String::from_utf8_lossy(&built.stdout).contains(&format!(
                ", {})",
                if lang == "js" { "javascript" } else { lang }
            )),
        "{}",
        String::from_utf8_lossy(&built.stdout)
    );
    run_ok(sluice().arg("run").arg(guest.join("pipeline.toml")));
    let mut amounts: Vec<i64> = committed_json(&guest.join("out/orders"))
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    amounts.sort();
    let sample = std::fs::read_to_string(guest.join("input/orders.jsonl")).unwrap();
    let mut expected: Vec<i64> = sample
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["amount"]
                .as_i64()
                .unwrap()
        })
        .filter(|a| *a >= 100)
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(amounts, expected);
    // Other kinds are refused for this language, saying what there is instead.
    let refused = sluice()
        .args(["new", "handler", "--lang", lang, "h", "--dir"])
        .arg(dir.path().join("h"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("scaffolds Python and JavaScript guests as transforms so far")
    );
}
