//! `sluice run --ui [ADDR]`: the dashboard of `sluice serve` for the queries of one run
//! (Spark's port 4040 by default).
//!
//! It serves the same page and the read-only part of the API the page uses (`/queries`,
//! `/queries/{name}`, `/queries/{name}/progress`), from the queries' monitors, plus
//! `POST /queries/{name}/stop` with a token made for this run and printed with the address.
//! The server lives on its own small tokio runtime; when the run ends it ends.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::progress::QueryMonitor;
use crate::query::StopSignal;

/// One query of the run, as the page sees it.
#[derive(Clone)]
pub struct UiQuery {
    /// The query's name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// This run's id.
    pub run_id: String,
    /// Its status and progress.
    pub monitor: Arc<QueryMonitor>,
    /// Asks it to stop after the batch in flight.
    pub stop: Arc<StopSignal>,
    /// What it is made of (`QuerySpec::plan_view`).
    pub plan: Value,
    /// A clustered query: its group, this process's member name and the shared checkpoint
    /// whose `members/` the page lists.
    pub cluster: Option<UiCluster>,
}

/// What the page shows of a clustered query's group.
#[derive(Clone)]
pub struct UiCluster {
    /// The consumer group.
    pub group: String,
    /// This process's member name.
    pub member: String,
    /// The shared checkpoint.
    pub checkpoint: std::path::PathBuf,
}

struct UiState {
    queries: Vec<UiQuery>,
    token: String,
}

/// A running dashboard; dropping it shuts the server down.
pub struct RunUi {
    runtime: Option<tokio::runtime::Runtime>,
    /// Ends the server, and the server's task to wait for.
    shutdown: Option<(
        futures::channel::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token its stop button needs.
    pub token: String,
}

impl Drop for RunUi {
    fn drop(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        if let Some((shutdown, server)) = self.shutdown.take() {
            let _ = shutdown.send(());
            // Answers in flight are finished; an open page's idle polling connection is not
            // waited for longer than this.
            rt.block_on(async {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
            });
        }
        rt.shutdown_background();
    }
}

fn info(q: &UiQuery) -> Value {
    let status = q.monitor.status();
    let ended = q.monitor.ended();
    json!({
        "name": q.name,
        "id": q.id,
        "runId": q.run_id,
        "isActive": ended.is_none(),
        "message": status.message,
        "isDataAvailable": status.is_data_available,
        "isTriggerActive": status.is_trigger_active,
        "exception": ended.flatten(),
        "lastBatchId": q.monitor.last_progress().map(|p| p.batch_id),
        "steps": [],
        "plan": q.plan,
        "cluster": q.cluster.as_ref().map(|c| json!({
            "group": c.group,
            "member": c.member,
            // Read at each request: the entries are a few small files the members rewrite.
            "members": crate::cluster::members(&c.checkpoint)
                .map(|m| json!(m))
                .unwrap_or_else(|e| json!({ "error": e.to_string() })),
        })),
    })
}

/// Answers with `f` of query `name`, or 404 naming it.
fn with_query(state: &UiState, name: &str, f: impl FnOnce(&UiQuery) -> Response) -> Response {
    match state.queries.iter().find(|q| q.name == name) {
        Some(q) => f(q),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no query '{name}' in this run") })),
        )
            .into_response(),
    }
}

/// Starts the dashboard for `queries` on `addr` (port 0 picks a free one).
pub fn start(addr: SocketAddr, queries: Vec<UiQuery>) -> Result<RunUi> {
    let token = format!("{}", uuid::Uuid::new_v4().simple());
    let state = Arc::new(UiState {
        queries,
        token: token.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sluice-ui")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the dashboard's runtime", "tokio", e))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| Error::io("binding the dashboard", addr.to_string(), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("binding the dashboard", addr.to_string(), e))?;
    let app = Router::new()
        .route("/", get(super::dashboard::index))
        .route("/assets/{file}", get(super::dashboard::asset))
        .route(
            "/queries",
            get(|State(s): State<Arc<UiState>>| async move {
                Json(s.queries.iter().map(info).collect::<Vec<_>>())
            }),
        )
        .route(
            "/queries/{name}",
            get(
                |State(s): State<Arc<UiState>>, Path(name): Path<String>| async move {
                    with_query(&s, &name, |q| Json(info(q)).into_response())
                },
            ),
        )
        .route(
            "/queries/{name}/progress",
            get(
                |State(s): State<Arc<UiState>>, Path(name): Path<String>| async move {
                    with_query(&s, &name, |q| {
                        Json(json!({
                            "lastProgress": q.monitor.last_progress(),
                            "recentProgress": q.monitor.recent_progress(),
                        }))
                        .into_response()
                    })
                },
            ),
        )
        .route(
            "/queries/{name}/stop",
            post(
                |State(s): State<Arc<UiState>>, Path(name): Path<String>| async move {
                    with_query(&s, &name, |q| {
                        q.stop.request();
                        Json(info(q)).into_response()
                    })
                },
            ),
        )
        .route("/sql", post(super::sql::post_sql))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    // Shut down gracefully when the run ends: the answer to the stop button (the request
    // that ended the run) is still delivered before the process exits.
    let (shutdown, stopped) = futures::channel::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "the dashboard stopped");
        }
    });
    Ok(RunUi {
        runtime: Some(runtime),
        shutdown: Some((shutdown, server)),
        addr: bound,
        token,
    })
}

/// A stop request needs the run's token; reading needs nothing.
async fn require_token(State(state): State<Arc<UiState>>, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(state.token.as_str()) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "stopping a query or asking SQL needs the token `sluice run --ui` printed" })),
    )
        .into_response()
}
