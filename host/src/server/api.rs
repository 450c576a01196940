//! The HTTP routes of `sluice serve` (the table is in the parent module's docs).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::errors::{ApiError, ErrorBody};
use super::queries::{QueryInfo, StepView};
use crate::registry::ModuleInfo;

/// Largest pipeline or swap body.
const MAX_JSON_BODY: usize = 1024 * 1024;

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

/// The API's description: title and version here, each operation from its handler's
/// `#[utoipa::path]`, collected as the routes are registered.
#[derive(OpenApi)]
#[openapi(
    info(title = "sluice serve", description = "Modules, queries and their progress over HTTP; mutating requests need the bearer token."),
    modifiers(&BearerToken)
)]
struct ApiDoc;

/// Declares the bearer token that mutating operations name in their `security`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "token",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The routes, with the token check on mutating requests and body limits, and
/// `GET /openapi.json`, their description.
pub(crate) fn router(state: Arc<AppState>, max_module_bytes: u64) -> Router {
    // The registry enforces the size cap itself, with a message giving the limit. The body
    // limit is twice that (plus room for multipart framing), so a client sending a somewhat
    // larger module reads that message rather than a connection closed mid-upload.
    let upload_limit = (max_module_bytes as usize)
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let modules = OpenApiRouter::new()
        .routes(routes!(upload_module, list_modules))
        .layer(DefaultBodyLimit::max(upload_limit));
    let (router, description) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(super::dashboard::index))
        .routes(routes!(super::dashboard::asset))
        .routes(routes!(inspect_module, remove_module))
        .routes(routes!(create_queries, list_queries))
        .routes(routes!(query_status))
        .routes(routes!(query_progress))
        .routes(routes!(stop_query))
        .routes(routes!(swap_module))
        .routes(routes!(super::sql::post_sql))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(modules)
        .split_for_parts();
    let description = Arc::new(description);
    router
        .route(
            "/openapi.json",
            get(move || {
                let description = description.clone();
                async move { Json(description.as_ref().clone()) }
            }),
        )
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint; see `sluice serve --help` for the API".into(),
            )
        })
        .with_state(state)
}

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok` while the server answers.
    status: String,
}

/// Liveness: answers while the server runs.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
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

/// `POST /modules`'s query parameters (or multipart fields of the same names).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadParams {
    /// The module's name.
    name: Option<String>,
    /// Its semver version.
    version: Option<String>,
}

/// A module's component bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
struct ModuleBytes(#[allow(dead_code)] Vec<u8>);

/// A multipart upload: name, version and the component.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ModuleForm {
    /// The module's name.
    name: String,
    /// Its semver version.
    version: String,
    /// The component.
    #[schema(value_type = String, format = Binary)]
    module: Vec<u8>,
}

/// Uploads a module version: validated, precompiled and stored under `name@version`.
#[utoipa::path(post, path = "/modules", tag = "modules", params(UploadParams),
    request_body(content(
        (ModuleBytes = "application/octet-stream"),
        (ModuleForm = "multipart/form-data"),
    )),
    security(("token" = [])),
    responses(
        (status = 201, description = "Stored", body = ModuleInfo),
        (status = 400, description = "Not a component of our worlds, or a bad name or version", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 409, description = "That version exists with other bytes", body = ErrorBody),
        (status = 413, description = "Larger than the server's limit", body = ErrorBody),
    ))]
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

/// Lists the stored module versions.
#[utoipa::path(get, path = "/modules", tag = "modules",
    responses((status = 200, description = "Every stored version", body = Vec<ModuleInfo>)))]
async fn list_modules(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(Json(state.registry.list()?).into_response())
}

/// One stored module version.
#[utoipa::path(get, path = "/modules/{name}/{version}", tag = "modules",
    params(("name" = String, Path, description = "The module's name", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"),
           ("version" = String, Path, description = "Its semantic version", pattern = r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")),
    responses(
        (status = 200, description = "The version", body = ModuleInfo),
        (status = 400, description = "Not a valid name or version", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
    ))]
async fn inspect_module(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(state.registry.inspect(&name, &version)?).into_response())
}

/// Removes a module version; refused while a running query uses it.
#[utoipa::path(delete, path = "/modules/{name}/{version}", tag = "modules",
    params(("name" = String, Path, description = "The module's name", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"),
           ("version" = String, Path, description = "Its semantic version", pattern = r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$")),
    security(("token" = [])),
    responses(
        (status = 200, description = "Removed", body = ModuleInfo),
        (status = 400, description = "Not a valid name or version", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "A running query uses it", body = ErrorBody),
    ))]
async fn remove_module(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let removed = state
        .registry
        .remove(&name, &version, |digest| state.queries.using(digest))?;
    Ok(Json(removed).into_response())
}

/// `POST /queries`'s query parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CreateParams {
    /// Where the pipeline's relative paths resolve (the CLI sends the file's directory).
    #[param(value_type = Option<String>)]
    base: Option<PathBuf>,
}

/// Starts the queries of a pipeline file.
#[utoipa::path(post, path = "/queries", tag = "queries", params(CreateParams),
    request_body(description = "The pipeline: TOML text, or the same as a JSON object",
        content((String = "application/toml"), (Object = "application/json"))),
    security(("token" = [])),
    responses(
        (status = 201, description = "Started", body = Vec<QueryInfo>),
        (status = 400, description = "The pipeline is invalid (each problem with its line)", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "A module it names is not stored", body = ErrorBody),
        (status = 409, description = "A query of that name runs", body = ErrorBody),
        (status = 422, description = "A module does not fit its step", body = ErrorBody),
    ))]
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

/// Lists the server's queries.
#[utoipa::path(get, path = "/queries", tag = "queries",
    responses((status = 200, description = "Every query, running or ended", body = Vec<QueryInfo>)))]
async fn list_queries(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(Json(state.queries.list()).into_response())
}

/// One query's status.
#[utoipa::path(get, path = "/queries/{name}", tag = "queries",
    params(("name" = String, Path, description = "The query's name")),
    responses(
        (status = 200, description = "Its status", body = QueryInfo),
        (status = 404, description = "No such query", body = ErrorBody),
    ))]
async fn query_status(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.queries.info(&name)?).into_response())
}

/// A query's progress records, as Spark's `lastProgress` and `recentProgress`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProgressBody {
    /// The newest record (none before the first batch).
    #[schema(value_type = Option<Object>)]
    last_progress: Option<crate::progress::QueryProgress>,
    /// The recent records, oldest first.
    #[schema(value_type = Vec<Object>)]
    recent_progress: Vec<crate::progress::QueryProgress>,
}

/// One query's last and recent progress records.
#[utoipa::path(get, path = "/queries/{name}/progress", tag = "queries",
    params(("name" = String, Path, description = "The query's name")),
    responses(
        (status = 200, description = "Its progress", body = ProgressBody),
        (status = 404, description = "No such query", body = ErrorBody),
    ))]
async fn query_progress(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (last_progress, recent_progress) = state.queries.progress(&name)?;
    Ok(Json(ProgressBody {
        last_progress,
        recent_progress,
    })
    .into_response())
}

/// Stops a query gracefully: the batch in flight commits first.
#[utoipa::path(post, path = "/queries/{name}/stop", tag = "queries",
    params(("name" = String, Path, description = "The query's name")),
    security(("token" = [])),
    responses(
        (status = 200, description = "Stopped", body = QueryInfo),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such query", body = ErrorBody),
        (status = 409, description = "It is not running", body = ErrorBody),
    ))]
async fn stop_query(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let info = blocking(move || Ok(state.queries.stop(&name)?)).await?;
    Ok(Json(info).into_response())
}

/// `POST /queries/{name}/swap`'s body.
#[derive(Deserialize, ToSchema)]
struct SwapBody {
    /// The step whose module changes.
    step: String,
    /// The new module, `name@version`, `name@^1.2` or `sha256:<hex>`.
    module: String,
}

/// Runs a step on another module from the next batch on.
#[utoipa::path(post, path = "/queries/{name}/swap", tag = "queries",
    params(("name" = String, Path, description = "The query's name")),
    request_body(content = SwapBody, content_type = "application/json"),
    security(("token" = [])),
    responses(
        (status = 200, description = "Swapped from the next batch on", body = StepView),
        (status = 400, description = "Not a swap request", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such query, step or module", body = ErrorBody),
        (status = 409, description = "The query is not running", body = ErrorBody),
        (status = 422, description = "The module does not fit the step", body = ErrorBody),
    ))]
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

/// Every query's figures in Prometheus's text format.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
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
