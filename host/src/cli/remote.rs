//! `sluice module ...` and `sluice query ...`: the command line as a client of `sluice serve`.
//!
//! Tables on a terminal, JSON with `--json` (or when stdout is not a terminal, so scripts get
//! something parseable). The token comes from `--token`, `SLUICE_TOKEN`, `--token-file`, or
//! the default data directory's `token` file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "SLUICE_SERVER",
        default_value = "http://127.0.0.1:7878"
    )]
    server: String,
    /// The bearer token (default: SLUICE_TOKEN, else the token file).
    #[arg(long, global = true, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token (default: <data dir>/token of a local server).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// `sluice module ...`
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Upload a component as NAME@VERSION (validated and precompiled by the server).
    Push {
        /// The component file (.wasm).
        file: PathBuf,
        /// The module's name.
        #[arg(long)]
        name: String,
        /// Its semantic version, e.g. 1.2.0.
        #[arg(long)]
        version: String,
    },
    /// List every module version.
    List,
    /// Show one version: digest, worlds, size, wasmtime version, upload time.
    Inspect {
        /// NAME@VERSION
        module: String,
    },
    /// Remove a version (refused while a running query uses it).
    Rm {
        /// NAME@VERSION
        module: String,
    },
    /// Check a component file locally, exactly as an upload is checked (no server needed).
    Check {
        /// The component file (.wasm).
        file: PathBuf,
    },
    /// Build the guest crate in DIR for wasm32-wasip2 (release) and check the component (no
    /// server needed).
    Build {
        /// The guest crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// `sluice query ...`
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Start the queries of a pipeline file on the server.
    Start {
        /// The pipeline file (TOML); relative paths in it resolve against its directory.
        file: PathBuf,
    },
    /// List the server's queries.
    List,
    /// One query's status.
    Status {
        /// The query's name.
        name: String,
    },
    /// One query's last progress record (all recent ones with --json).
    Progress {
        /// The query's name.
        name: String,
    },
    /// Stop a query gracefully (its batch in flight commits).
    Stop {
        /// The query's name.
        name: String,
    },
    /// Run another module version in a step, from the next batch on.
    Swap {
        /// The query's name.
        name: String,
        /// The transform step's name.
        #[arg(long)]
        step: String,
        /// NAME@VERSION, NAME@^REQ or sha256:DIGEST.
        #[arg(long)]
        module: String,
    },
}

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    json: bool,
}

impl Client {
    fn new(args: &ServerArgs) -> Client {
        let token = args.token.clone().or_else(|| {
            let file = args
                .token_file
                .clone()
                .unwrap_or_else(|| crate::registry::default_data_dir().join("token"));
            std::fs::read_to_string(file)
                .ok()
                .map(|t| t.trim().to_owned())
        });
        Client {
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into(),
            json: args.json || !std::io::stdout().is_terminal(),
        }
    }

    /// Sends a request and returns the JSON answer, or the server's error message.
    fn call(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).context("building the request")?;
        let mut resp = self
            .agent
            .run(req)
            .with_context(|| format!("{method} {url}: is `sluice serve` running there?"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: {status}: {message}");
        }
        Ok(value)
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, "application/json", Vec::new())
    }

    fn print(&self, value: &Value, table: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", table(value));
        }
    }
}

fn split_module(module: &str) -> Result<(&str, &str)> {
    module
        .split_once('@')
        .with_context(|| format!("'{module}' is not NAME@VERSION"))
}

/// Left-aligned columns.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn module_rows(v: &Value) -> String {
    let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
    table(
        &[
            "NAME", "VERSION", "WORLDS", "LANGUAGE", "SIZE", "DIGEST", "UPLOADED",
        ],
        items
            .iter()
            .map(|m| {
                vec![
                    s(&m["name"]),
                    s(&m["version"]),
                    m["worlds"]
                        .as_array()
                        .map(|w| w.iter().map(s).collect::<Vec<_>>().join(","))
                        .unwrap_or_default(),
                    s(&m["language"]),
                    s(&m["size"]),
                    s(&m["digest"]).chars().take(19).collect(),
                    s(&m["uploadedAt"]).chars().take(19).collect(),
                ]
            })
            .collect(),
    )
}

fn query_rows(v: &Value) -> String {
    let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
    table(
        &["NAME", "ACTIVE", "LAST BATCH", "STATUS", "STEPS"],
        items
            .iter()
            .map(|q| {
                vec![
                    s(&q["name"]),
                    s(&q["isActive"]),
                    s(&q["lastBatchId"]),
                    q["exception"]
                        .as_str()
                        .map(|e| format!("failed: {e}"))
                        .unwrap_or_else(|| s(&q["message"])),
                    q["steps"]
                        .as_array()
                        .map(|st| {
                            st.iter()
                                .map(|x| format!("{}={}", s(&x["name"]), s(&x["module"])))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    )
}

/// Runs `sluice sql "SELECT ..."`: the server's answer as Spark's show() prints it (its JSON
/// with `--json`), then a line when rows were left out.
pub fn sql(args: &ServerArgs, sql: &str, max_rows: usize) -> Result<()> {
    let c = Client::new(args);
    let body = serde_json::to_vec(&serde_json::json!({ "sql": sql, "maxRows": max_rows }))
        .context("writing the request")?;
    let v = c.call("POST", "/sql", "application/json", body)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    print!("{}", s(&v["show"]));
    if v["truncated"] == Value::Bool(true) {
        println!("only showing the first {max_rows} rows (--max-rows for more)");
    }
    Ok(())
}

/// Runs `sluice module ...`.
pub fn module(args: &ServerArgs, command: ModuleCommand) -> Result<()> {
    // The local commands need no server.
    match command {
        ModuleCommand::Check { file } => return super::module_build::check(&file).map(|_| ()),
        ModuleCommand::Build { dir } => return super::module_build::build(&dir).map(|_| ()),
        _ => {}
    }
    let c = Client::new(args);
    match command {
        ModuleCommand::Push {
            file,
            name,
            version,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = format!(
                "/modules?name={}&version={}",
                encode(&name),
                encode(&version)
            );
            let v = c.call("POST", &path, "application/wasm", bytes)?;
            c.print(&v, module_rows);
        }
        ModuleCommand::List => {
            let v = c.get("/modules")?;
            c.print(&v, module_rows);
        }
        ModuleCommand::Inspect { module } => {
            let (n, ver) = split_module(&module)?;
            let v = c.get(&format!("/modules/{}/{}", encode(n), encode(ver)))?;
            c.print(&v, |v| {
                format!(
                    "{}{} {} bytes, WIT {}, precompiled with wasmtime {}\n",
                    module_rows(v),
                    s(&v["digest"]),
                    s(&v["size"]),
                    s(&v["package"]),
                    s(&v["wasmtime"])
                )
            });
        }
        ModuleCommand::Rm { module } => {
            let (n, ver) = split_module(&module)?;
            let v = c.call(
                "DELETE",
                &format!("/modules/{}/{}", encode(n), encode(ver)),
                "application/json",
                Vec::new(),
            )?;
            c.print(&v, |v| {
                format!("removed {}@{}\n", s(&v["name"]), s(&v["version"]))
            });
        }
        ModuleCommand::Check { .. } | ModuleCommand::Build { .. } => {}
    }
    Ok(())
}

/// Runs `sluice query ...`.
pub fn query(args: &ServerArgs, command: QueryCommand) -> Result<()> {
    let c = Client::new(args);
    match command {
        QueryCommand::Start { file } => {
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let dir = absolute_dir(&file)?;
            let path = format!("/queries?base={}", encode(&dir.display().to_string()));
            let v = c.call("POST", &path, "application/toml", text)?;
            c.print(&v, query_rows);
        }
        QueryCommand::List => {
            let v = c.get("/queries")?;
            c.print(&v, query_rows);
        }
        QueryCommand::Status { name } => {
            let v = c.get(&format!("/queries/{}", encode(&name)))?;
            c.print(&v, query_rows);
        }
        QueryCommand::Progress { name } => {
            let v = c.get(&format!("/queries/{}/progress", encode(&name)))?;
            c.print(&v, |v| {
                let p = &v["lastProgress"];
                if p.is_null() {
                    return "no batch has run yet\n".into();
                }
                format!(
                    "batch {} at {}: {} rows in {} ms ({:.0} rows/s)\n",
                    s(&p["batchId"]),
                    s(&p["timestamp"]),
                    s(&p["numInputRows"]),
                    s(&p["batchDuration"]),
                    p["processedRowsPerSecond"].as_f64().unwrap_or(0.0)
                )
            });
        }
        QueryCommand::Stop { name } => {
            let v = c.call(
                "POST",
                &format!("/queries/{}/stop", encode(&name)),
                "application/json",
                Vec::new(),
            )?;
            c.print(&v, query_rows);
        }
        QueryCommand::Swap { name, step, module } => {
            let body = serde_json::json!({ "step": step, "module": module }).to_string();
            let v = c.call(
                "POST",
                &format!("/queries/{}/swap", encode(&name)),
                "application/json",
                body.into_bytes(),
            )?;
            c.print(&v, |v| {
                format!(
                    "step {} of {name} runs {} ({}) from the next batch on\n",
                    s(&v["name"]),
                    s(&v["module"]),
                    s(&v["digest"])
                )
            });
        }
    }
    Ok(())
}

fn absolute_dir(file: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(file).with_context(|| format!("locating {}", file.display()))?;
    Ok(abs.parent().map(Path::to_path_buf).unwrap_or(abs))
}

/// Percent-encodes a query or path component (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
