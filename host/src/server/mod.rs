//! `sluice serve`: a long-running host that holds modules and queries, behind a JSON HTTP API.
//!
//! | method and path | what it does | token |
//! |---|---|---|
//! | `GET /` | the dashboard: queries, plan, live plots of their progress ([`dashboard`]) | no (stop asks for it) |
//! | `GET /healthz` | liveness | no |
//! | `GET /metrics` | Prometheus text format | no |
//! | `GET /openapi.json` | this API's OpenAPI 3.1 description, generated from the handlers | no |
//! | `POST /modules?name=N&version=V` | upload (raw body, or multipart with `name`, `version`, `module`) | yes |
//! | `GET /modules`, `GET /modules/{name}/{version}` | list, inspect | no |
//! | `DELETE /modules/{name}/{version}` | remove (refused while a query uses it) | yes |
//! | `POST /queries[?base=DIR]` | start the queries of a pipeline (TOML, or JSON with `Content-Type: application/json`) | yes |
//! | `GET /queries`, `GET /queries/{name}` | list, status (Spark's `message`, `isDataAvailable`, `isTriggerActive`) | no |
//! | `GET /queries/{name}/progress` | last and recent progress records | no |
//! | `POST /queries/{name}/stop` | graceful stop (the batch in flight commits) | yes |
//! | `POST /queries/{name}/swap` | `{"step": S, "module": "name@1.2.0"}`: new module from the next batch on | yes |
//! | `POST /sql` | `{"sql": "SELECT ..."}`: a batch query over the memory sinks' tables (as `sluice run --ui` too) | yes |
//!
//! Mutating requests need `Authorization: Bearer <token>`: the token is given with `--token`
//! or `SLUICE_TOKEN`, or generated into `<data>/token` at first start. Errors are JSON
//! objects `{"error": "..."}` saying what to fix.
//!
//! Tasks: the HTTP server runs on a small tokio runtime; each query runs on its own thread
//! (as under `sluice run`); requests that compile modules or wait for a query to stop run on
//! tokio's blocking pool so they never stall the server.

mod api;
mod dashboard;
mod errors;
mod metrics;
mod queries;
pub mod run_ui;
mod sql;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::registry::Registry;

pub use queries::QueryTable;

/// Options of `sluice serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where modules, pipelines, checkpoints and the token live.
    pub data_dir: PathBuf,
    /// The address to listen on (loopback by default).
    pub addr: SocketAddr,
    /// The bearer token; generated into `<data>/token` when not given.
    pub token: Option<String>,
    /// Largest module upload, bytes.
    pub max_module_bytes: u64,
}

/// Everything the handlers share.
pub(crate) struct AppState {
    pub registry: Registry,
    pub queries: QueryTable,
    pub token: String,
}

/// Reads the token from the options, else `<data>/token`, else generates and stores one.
fn load_token(opts: &ServeOptions) -> Result<String> {
    if let Some(t) = &opts.token {
        return Ok(t.clone());
    }
    let path = opts.data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            crate::fsutil::write_atomic(&path, token.as_bytes())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(token)
        }
    }
}

/// The lock a running server holds on its data directory (`<data>/serve.lock`), so a second
/// `sluice serve` on the same directory is refused instead of running every query twice
/// into the same checkpoints. The file also says who holds it (pid, then address), which is
/// what the refusal names.
struct DataDirLock {
    file: std::fs::File,
    path: PathBuf,
}

impl DataDirLock {
    fn take(data_dir: &std::path::Path) -> Result<DataDirLock> {
        let path = data_dir.join("serve.lock");
        // Not truncated on open: the holder's description must survive a refused attempt.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening the data directory's lock", &path, e))?;
        if !crate::fsutil::try_lock(&file, &path)? {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(Error::Server(format!(
                "another `sluice serve` is using the data directory {} ({}); stop it or give this one its own --data-dir",
                data_dir.display(),
                if holder.is_empty() {
                    "its lock file is empty"
                } else {
                    holder
                }
            )));
        }
        let lock = DataDirLock { file, path };
        lock.describe(&format!("pid {}", std::process::id()))?;
        Ok(lock)
    }

    /// Replaces the holder's description in the lock file.
    fn describe(&self, holder: &str) -> Result<()> {
        use std::io::{Seek, Write};
        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .map_err(|e| Error::io("writing the data directory's lock", &self.path, e))
    }
}

/// Runs the server until SIGINT/SIGTERM, then stops every query gracefully. `ready` is
/// called with the bound address once the server accepts connections.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| Error::io("creating the data directory", &opts.data_dir, e))?;
    let lock = DataDirLock::take(&opts.data_dir)?;
    let registry =
        Registry::open(opts.data_dir.join("modules"))?.with_max_bytes(opts.max_module_bytes);
    let token = load_token(&opts)?;
    let queries = QueryTable::open(opts.data_dir.clone(), registry.clone())?;
    let state = Arc::new(AppState {
        registry,
        queries,
        token,
    });
    // Queries that were running when the server last stopped resume from their checkpoints.
    state.queries.resume_all();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-http")
        .enable_io()
        // `POST /sql` bounds each query's time with a tokio timer.
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the HTTP runtime", "tokio", e))?;
    let app = api::router(state.clone(), opts.max_module_bytes);
    let stop = Arc::new(crate::query::StopSignal::default());
    {
        let stop = stop.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .map_err(|e| Error::io("installing signal handlers", "serve", e))?;
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                stop.request();
            }
        });
    }
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|e| Error::io("listening", opts.addr.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listening", opts.addr.to_string(), e))?;
        tracing::info!(%addr, data_dir = %opts.data_dir.display(), "sluice serve listening");
        lock.describe(&format!(
            "pid {}, listening on http://{addr}",
            std::process::id()
        ))?;
        ready(addr);
        let shutdown = {
            let stop = stop.clone();
            async move {
                // The signal thread flips `stop`; wait for it without blocking a worker.
                let _ = tokio::task::spawn_blocking(move || {
                    while !stop.wait(std::time::Duration::from_secs(3600)) {}
                })
                .await;
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::io("serving HTTP", addr.to_string(), e))
    })?;
    tracing::info!("stopping every query gracefully");
    state.queries.shutdown();
    Ok(())
}
