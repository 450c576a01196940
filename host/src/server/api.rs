//! The HTTP routes of `sluice serve` (the table is in the parent module's docs).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::error::Error;
use crate::registry::RegistryError;

/// Largest pipeline or swap body.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// An error response: a status and a JSON `{"error": message}`.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Pipeline(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Server(_) => StatusCode::CONFLICT,
            Error::Wasm { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Registry(r) => return ApiError::from_registry(r),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::from_registry(&e)
    }
}

impl ApiError {
    fn from_registry(e: &RegistryError) -> ApiError {
        let status = match e {
            RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
            RegistryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
            RegistryError::Conflict(_) => StatusCode::CONFLICT,
            RegistryError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Runs blocking work (compiling a module, waiting for a query) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    })?
}

/// The routes, with the token check on mutating requests and body limits.
pub(crate) fn router(state: Arc<AppState>, max_module_bytes: u64) -> Router {
    // The registry enforces the size cap itself, with a message giving the limit. The body
    // limit is twice that (plus room for multipart framing), so a client sending a somewhat
    // larger module reads that message rather than a connection closed mid-upload.
    let upload_limit = (max_module_bytes as usize)
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let modules = Router::new()
        .route("/modules", post(upload_module).get(list_modules))
        .layer(DefaultBodyLimit::max(upload_limit));
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route("/", get(super::dashboard::index))
        .route("/assets/{file}", get(super::dashboard::asset))
        .route(
            "/modules/{name}/{version}",
            get(inspect_module).delete(remove_module),
        )
        .route("/queries", post(create_queries).get(list_queries))
        .route("/queries/{name}", get(query_status))
        .route("/queries/{name}/progress", get(query_progress))
        .route("/queries/{name}/stop", post(stop_query))
        .route("/queries/{name}/swap", post(swap_module))
        .route("/sql", post(super::sql::post_sql))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(modules)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint; see `sluice serve --help` for the API".into(),
            )
        })
        .with_state(state)
}

/// Mutating requests (anything but GET/HEAD) need `Authorization: Bearer <token>`; without
/// it they are refused before any handler runs, so nothing changes.
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let authorised = given
        .as_deref()
        .is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()));
    if authorised {
        return next.run(req).await;
    }
    // Read (and drop) the body first: answering before the client finished sending it would
    // make it see a broken connection instead of the 401.
    let limit = (state.registry.max_bytes() as usize)
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let _ = axum::body::to_bytes(req.into_body(), limit).await;
    match given {
        Some(_) => ApiError(
            StatusCode::UNAUTHORIZED,
            "the bearer token is wrong; use the one in <data-dir>/token or SLUICE_TOKEN".into(),
        )
        .into_response(),
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            "this request changes the server and needs `Authorization: Bearer <token>` (the token is in <data-dir>/token)".into(),
        )
        .into_response(),
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct UploadParams {
    name: Option<String>,
    version: Option<String>,
}

async fn upload_module(
    State(state): State<Arc<AppState>>,
    Query(params): Query<UploadParams>,
    req: Request,
) -> ApiResult<Response> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (mut name, mut version) = (params.name, params.version);
    let bytes = if is_multipart {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the multipart body: {e}")))?;
        let mut module = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the multipart body: {e}")))?
        {
            let field_name = field.name().unwrap_or_default().to_owned();
            let data = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad_request(format!("reading field '{field_name}': {e}")))?;
            match field_name.as_str() {
                "name" => name = Some(String::from_utf8_lossy(&data).into_owned()),
                "version" => version = Some(String::from_utf8_lossy(&data).into_owned()),
                "module" | "file" => module = Some(data),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown multipart field '{other}'; send name, version and module"
                    )));
                }
            }
        }
        module.ok_or_else(|| ApiError::bad_request("the multipart body has no `module` field"))?
    } else {
        Bytes::from_request(req, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(
                    e.status(),
                    format!(
                        "the module is larger than the limit of {} bytes (sluice serve --max-module-size)",
                        state.registry.max_bytes()
                    ),
                )
            } else {
                ApiError(e.status(), format!("reading the body: {}", e.body_text()))
            }
        })?
    };
    let name = name.ok_or_else(|| {
        ApiError::bad_request("give the module's name: POST /modules?name=N&version=V")
    })?;
    let version = version.ok_or_else(|| {
        ApiError::bad_request("give the module's version: POST /modules?name=N&version=V")
    })?;
    let info = blocking(move || Ok(state.registry.push(&name, &version, &bytes)?)).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn list_modules(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(Json(state.registry.list()?).into_response())
}

async fn inspect_module(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(state.registry.inspect(&name, &version)?).into_response())
}

async fn remove_module(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let removed = state
        .registry
        .remove(&name, &version, |digest| state.queries.using(digest))?;
    Ok(Json(removed).into_response())
}

#[derive(Deserialize)]
struct CreateParams {
    /// Where the pipeline's relative paths resolve (the CLI sends the file's directory).
    base: Option<PathBuf>,
}

async fn create_queries(
    State(state): State<Arc<AppState>>,
    Query(params): Query<CreateParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the pipeline is not UTF-8 text"))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if is_json {
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ApiError::bad_request(format!("the JSON pipeline does not parse: {e}")))?;
        toml::to_string(&value).map_err(|e| {
            ApiError::bad_request(format!(
                "the JSON pipeline has no TOML form (a null, or mixed arrays?): {e}"
            ))
        })?
    } else {
        text
    };
    let created = blocking(move || Ok(state.queries.create(&text, params.base)?)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_queries(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(Json(state.queries.list()).into_response())
}

async fn query_status(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.queries.info(&name)?).into_response())
}

async fn query_progress(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (last, recent) = state.queries.progress(&name)?;
    Ok(Json(json!({ "lastProgress": last, "recentProgress": recent })).into_response())
}

async fn stop_query(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let info = blocking(move || Ok(state.queries.stop(&name)?)).await?;
    Ok(Json(info).into_response())
}

#[derive(Deserialize)]
struct SwapBody {
    step: String,
    module: String,
}

async fn swap_module(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let swap: SwapBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"step\": \"<step name>\", \"module\": \"name@version\"}}: {e}"
        ))
    })?;
    let step = blocking(move || Ok(state.queries.swap(&name, &swap.step, &swap.module)?)).await?;
    Ok(Json(step).into_response())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = super::metrics::render(
        &state.queries.metrics(),
        state.registry.list().map_or(0, |m| m.len()),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
