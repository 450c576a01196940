//! The `sluice` command line: `run`, `validate`, `serve`, and `module` / `query` as clients
//! of a server ([`remote`]).
//!
//! The binary's edge: errors become `anyhow` reports with context, and exit codes tell
//! scripts what happened (0 all queries ended cleanly, 1 a query failed, 2 the pipeline is
//! invalid).

mod module_build;
mod new;
mod remote;
mod state;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::error::Error;
use crate::manager::QueryManager;
use crate::pipeline::Pipeline;
use crate::progress::QueryMonitor;
use crate::query::ProgressLog;
use crate::registry::Registry;

/// Sluice: micro-batch stream processing with WebAssembly user code over Apache Arrow.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    after_help = "Examples:\n  \
sluice run examples/rate-to-console.toml          run every query of a pipeline\n  \
sluice run pipeline.toml --query events           run one query of it\n  \
sluice run pipeline.toml --progress-log p.jsonl   also write progress records as JSON lines\n  \
sluice validate pipeline.toml                     check a pipeline without running it\n  \
sluice explain pipeline.toml                      print each query's plan as a tree\n  \
sluice new transform my-step                      start a guest crate (or handler, aggregate, processor)\n  \
sluice module build                               build and check the guest crate here\n  \
sluice state show CHECKPOINT                      print a query's operator state as JSON lines\n\n\
Stop with Ctrl-C (or SIGTERM): each query finishes its batch in flight, commits, and the\n\
process exits 0. A second Ctrl-C exits at once; the next start re-runs the uncommitted batch.\n\
Logs go to stderr; set RUST_LOG=debug for more."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the queries of a pipeline file until they end or the process is stopped.
    Run {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Run only this query.
        #[arg(long)]
        query: Option<String>,
        /// Append each batch's progress record (Spark's StreamingQueryProgress) to this file as JSON lines.
        #[arg(long)]
        progress_log: Option<PathBuf>,
        /// The module registry for `module = "name@version"` references (default: the data
        /// directory's `modules`, as `sluice serve` fills it).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// Serve the dashboard of this run (default 127.0.0.1:4040, Spark's UI port; port 0
        /// picks a free one). Its address and the token for the stop button go to stderr.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4040")]
        ui: Option<std::net::SocketAddr>,
        /// This process's name in the consumer group of each `[query.cluster]` query
        /// (default: host-pid). Run the same pipeline with another name on each machine.
        #[arg(long, value_name = "NAME")]
        member: Option<String>,
    },
    /// Check a pipeline file and report every problem, without running anything.
    Validate {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// The module registry for `module = "name@version"` references.
        #[arg(long)]
        registry: Option<PathBuf>,
    },
    /// Print each query's plan as a tree (operators, keys, state, watermarks), checking the
    /// pipeline as `validate` does.
    Explain {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Only this query.
        #[arg(long)]
        query: Option<String>,
        /// The module registry for `module = "name@version"` references.
        #[arg(long)]
        registry: Option<PathBuf>,
    },
    /// Run a long-lived host with an HTTP API: modules, queries, progress, /metrics.
    Serve {
        /// Where modules, pipelines, checkpoints and the token live (default:
        /// $SLUICE_HOME, else ~/.local/share/sluice).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:7878")]
        addr: std::net::SocketAddr,
        /// The bearer token for mutating requests (default: generated into <data-dir>/token).
        #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Largest module upload, e.g. "64MiB".
        #[arg(long, default_value = "64MiB")]
        max_module_size: String,
    },
    /// Start a guest crate: a working example, a pipeline that runs it, and the guest SDK.
    New {
        /// What the guest is: each possible value below is one world of `wit/`.
        kind: new::GuestKind,
        /// The crate's name (also the component's file name).
        name: String,
        /// The guest's language (python and js scaffold transforms, built with
        /// componentize-py or ComponentizeJS).
        #[arg(long, value_enum, default_value_t)]
        lang: new::Lang,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Modules: build and check locally; push, list, inspect, rm on a server.
    Module {
        #[command(flatten)]
        server: remote::ServerArgs,
        #[command(subcommand)]
        command: remote::ModuleCommand,
    },
    /// Look at a checkpoint's operator state: `sluice state show CHECKPOINT`.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Manage the queries of a server: start, list, status, progress, stop, swap.
    Query {
        #[command(flatten)]
        server: remote::ServerArgs,
        #[command(subcommand)]
        command: remote::QueryCommand,
    },
    /// Ask a running `sluice serve` or `sluice run --ui` a batch SELECT over its memory
    /// tables (`format = "memory"` sinks), printed as Spark's show() prints it.
    Sql {
        /// One SELECT, e.g. "SELECT gt, count(*) FROM my_device_table GROUP BY gt".
        sql: String,
        /// At most this many rows (the server caps it at 10,000).
        #[arg(long, default_value_t = 20)]
        max_rows: usize,
        #[command(flatten)]
        server: remote::ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Print each key's state of the stateful operators as JSON lines.
    Show {
        /// The query's checkpointLocation.
        checkpoint: PathBuf,
        /// Only this operator (the folder under state/, e.g. processor).
        #[arg(long)]
        operator: Option<String>,
        /// Only keys whose column has this value, COLUMN=VALUE (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// The state after this batch (default: the last committed).
        #[arg(long)]
        batch: Option<u64>,
    },
}

/// Entry point of the `sluice` binary.
pub fn main() -> ExitCode {
    main_with(std::env::args_os())
}

/// `sluice` with these arguments (the first is the program's name), as the binary runs it.
/// The benchmark harness runs a clustered query's members as processes of its own binary
/// this way, so they are the same build as the harness.
pub fn main_with(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    let interactive = std::io::stderr().is_terminal();
    init_logging(interactive);
    let result = match cli.command {
        Command::Validate { file, registry } => validate(&file, registry),
        Command::Explain {
            file,
            query,
            registry,
        } => explain(&file, query.as_deref(), registry),
        Command::Run {
            file,
            query,
            progress_log,
            registry,
            ui,
            member,
        } => run(
            &file,
            query.as_deref(),
            progress_log,
            registry,
            ui,
            member,
            interactive,
        ),
        Command::Serve {
            data_dir,
            addr,
            token,
            max_module_size,
        } => serve(data_dir, addr, token, &max_module_size),
        Command::New {
            kind,
            lang,
            name,
            dir,
        } => new::scaffold(kind, lang, &name, dir).map(|dir| {
            println!("created {}", dir.display());
            let build = match lang {
                new::Lang::Rust => "sluice module build      # builds and checks the component",
                new::Lang::Python => "./build.sh               # componentize-py, then checks the component",
                new::Lang::Js => "./build.sh               # ComponentizeJS, then checks the component",
            };
            println!(
                "next:\n  cd {}\n  {build}\n  sluice run pipeline.toml # runs it on the sample input",
                dir.display()
            );
            ExitCode::SUCCESS
        }),
        Command::Module { server, command } => {
            remote::module(&server, command).map(|()| ExitCode::SUCCESS)
        }
        Command::Query { server, command } => {
            remote::query(&server, command).map(|()| ExitCode::SUCCESS)
        }
        Command::Sql {
            sql,
            max_rows,
            server,
        } => remote::sql(&server, &sql, max_rows).map(|()| ExitCode::SUCCESS),
        Command::State {
            command:
                StateCommand::Show {
                    checkpoint,
                    operator,
                    keys,
                    batch,
                },
        } => crate::storage::Location::parse(&checkpoint)
            .map_err(anyhow::Error::from)
            .and_then(|c| state::show(&c, operator.as_deref(), &keys, batch))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(Error::Pipeline(d)) = e.downcast_ref::<Error>() {
                eprintln!("error: {d}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(interactive: bool) {
    // On a terminal the status lines show progress; keep the log to warnings unless asked.
    // The Cassandra driver narrates its connection pools at info; its warnings are enough.
    let default = if interactive {
        "warn"
    } else {
        "info,scylla=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(interactive)
        .try_init();
}

/// The registry a standalone command uses: the one given, else the default data
/// directory's, if it exists.
fn open_registry(given: Option<PathBuf>) -> anyhow::Result<Option<Registry>> {
    let dir = match given {
        Some(d) => d,
        None => {
            let d = crate::registry::default_data_dir().join("modules");
            if !d.exists() {
                return Ok(None);
            }
            d
        }
    };
    Ok(Some(Registry::open(&dir).with_context(|| {
        format!("opening the module registry {}", dir.display())
    })?))
}

fn serve(
    data_dir: Option<PathBuf>,
    addr: std::net::SocketAddr,
    token: Option<String>,
    max_module_size: &str,
) -> anyhow::Result<ExitCode> {
    let max_module_bytes = crate::pipeline::parse_bytes(max_module_size)
        .map_err(|e| anyhow::anyhow!("--max-module-size: {e}"))?;
    let data_dir = data_dir.unwrap_or_else(crate::registry::default_data_dir);
    crate::server::serve(
        crate::server::ServeOptions {
            data_dir: data_dir.clone(),
            addr,
            token,
            max_module_bytes,
        },
        |bound| {
            // Scripts and tests wait for this line; flush it at once.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sluice serve listening on http://{bound}");
            let _ = writeln!(out, "token: {}", data_dir.join("token").display());
            let _ = out.flush();
        },
    )
    .context("sluice serve")?;
    Ok(ExitCode::SUCCESS)
}

/// The pipeline at `file` (registry references resolved), only query `only` when given, and
/// every module it names checked: what `validate`, `explain` and `run` start from.
fn load_checked(
    file: &std::path::Path,
    only: Option<&str>,
    registry: Option<PathBuf>,
) -> anyhow::Result<Pipeline> {
    let registry = open_registry(registry)?;
    let mut pipeline = Pipeline::load_with_registry(file, registry.as_ref())?;
    if let Some(name) = only {
        pipeline.select(name)?;
    }
    pipeline.check_modules(crate::registry::check_module_file)?;
    Ok(pipeline)
}

fn validate(file: &std::path::Path, registry: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let pipeline = load_checked(file, None, registry)?;
    for q in &pipeline.queries {
        println!(
            "query '{}': {} -> {} (trigger {}, outputMode {:?}{})",
            q.name,
            q.inputs
                .iter()
                .map(|i| i.source.description())
                .collect::<Vec<_>>()
                .join(" + "),
            q.sink.description(),
            q.trigger,
            q.output_mode,
            q.cluster.as_ref().map_or(String::new(), |c| format!(
                ", members of consumer group '{}', session timeout {:?}",
                c.group, c.session_timeout
            ))
        );
    }
    println!(
        "{}: ok, {} quer{}",
        file.display(),
        pipeline.queries.len(),
        if pipeline.queries.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn explain(
    file: &std::path::Path,
    only: Option<&str>,
    registry: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let pipeline = load_checked(file, only, registry)?;
    for (i, q) in pipeline.queries.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("== Query '{}' ==", q.name);
        print!("{}", q.explain());
    }
    Ok(ExitCode::SUCCESS)
}

fn run(
    file: &std::path::Path,
    only: Option<&str>,
    progress_log: Option<PathBuf>,
    registry: Option<PathBuf>,
    ui: Option<std::net::SocketAddr>,
    member: Option<String>,
    interactive: bool,
) -> anyhow::Result<ExitCode> {
    let mut pipeline = load_checked(file, only, registry)?;
    if let Some(member) = member {
        pipeline.set_member(&member)?;
    }
    let progress_log: Option<ProgressLog> = match progress_log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening progress log {}", path.display()))?;
            Some(Arc::new(Mutex::new(Box::new(f))))
        }
        None => None,
    };
    let manager =
        QueryManager::start_pipeline(&pipeline, progress_log).context("starting the pipeline")?;
    let _ui = match ui {
        Some(addr) => {
            let queries = manager
                .queries()
                .iter()
                .zip(&pipeline.queries)
                .map(|(q, spec)| crate::server::run_ui::UiQuery {
                    name: q.name().to_owned(),
                    id: q.id().to_owned(),
                    run_id: q.run_id().to_owned(),
                    monitor: q.monitor().clone(),
                    stop: q.stop_handle(),
                    plan: spec.plan_view(),
                    cluster: match (&spec.cluster, &spec.checkpoint_location) {
                        (Some(c), Some(dir)) => Some(crate::server::run_ui::UiCluster {
                            group: c.group.clone(),
                            member: c.member_name(),
                            checkpoint: dir.clone(),
                        }),
                        _ => None,
                    },
                })
                .collect();
            let ui =
                crate::server::run_ui::start(addr, queries).context("starting the dashboard")?;
            // Tests and scripts wait for this line.
            eprintln!(
                "sluice run dashboard on http://{} token: {}",
                ui.addr, ui.token
            );
            Some(ui)
        }
        None => None,
    };
    let stops: Vec<_> = manager.queries().iter().map(|q| q.stop_handle()).collect();
    install_signal_handlers(stops)?;
    let status = interactive.then(|| {
        let monitors: Vec<(String, Arc<QueryMonitor>)> = manager
            .queries()
            .iter()
            .map(|q| (q.name().to_owned(), q.monitor().clone()))
            .collect();
        StatusLine::start(monitors)
    });
    let outcomes = manager.await_all(pipeline.on_query_failure);
    if let Some(s) = status {
        s.finish();
    }
    let mut failed = false;
    for (name, outcome) in outcomes {
        if let Err(e) = outcome {
            failed = true;
            // A batch's error already names the query (and the batch).
            match e {
                Error::Batch { .. } => eprintln!("error: {e}"),
                e => eprintln!("error: query '{name}' failed: {e}"),
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// First SIGINT/SIGTERM: every query stops after its batch in flight. Second: exit at once.
fn install_signal_handlers(stops: Vec<Arc<crate::query::StopSignal>>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen == 1 {
                    tracing::warn!(
                        signal = sig,
                        "stopping: finishing the batches in flight (signal again to abort)"
                    );
                    for s in &stops {
                        s.request();
                    }
                } else {
                    eprintln!("aborted; the next start re-runs any uncommitted batch");
                    std::process::exit(130);
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// A live status line per query on the terminal.
struct StatusLine {
    stop: Arc<crate::query::StopSignal>,
    thread: std::thread::JoinHandle<()>,
}

impl StatusLine {
    fn start(monitors: Vec<(String, Arc<QueryMonitor>)>) -> StatusLine {
        let stop = Arc::new(crate::query::StopSignal::default());
        let done = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut drawn = 0;
            loop {
                let finished = done.wait(Duration::from_millis(250));
                let mut out = String::new();
                if drawn > 0 {
                    out.push_str(&format!("\x1b[{drawn}A"));
                }
                for (name, m) in &monitors {
                    let status = m.status();
                    let line = match m.last_progress() {
                        Some(p) => format!(
                            "{name}: batch {} | {:.0} rows/s | last batch {} rows in {} ms | {}",
                            p.batch_id,
                            p.input_rows_per_second,
                            p.num_input_rows,
                            p.batch_duration,
                            status.message
                        ),
                        None => format!(
                            "{name}: {}",
                            if status.message.is_empty() {
                                "starting"
                            } else {
                                &status.message
                            }
                        ),
                    };
                    out.push_str(&format!("\r\x1b[K{line}\n"));
                }
                drawn = monitors.len();
                eprint!("{out}");
                if finished {
                    break;
                }
            }
        });
        StatusLine { stop, thread }
    }

    fn finish(self) {
        self.stop.request();
        let _ = self.thread.join();
    }
}
