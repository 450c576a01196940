//! The dashboard at `/`: one page and its assets, embedded in the binary (no Node.js or files
//! at run time), drawing the same JSON the API serves (`/queries`, `/queries/{name}/progress`)
//! with uPlot (MIT, vendored in `dashboard/vendor/` with its licence). The page polls once a
//! second; serving it reads the progress the queries already keep, so the batch loop does no
//! extra work for it.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;

/// The page.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", body = String, content_type = "text/html")))]
pub(crate) async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard/index.html"),
    )
        .into_response()
}

/// The page's scripts and styles, by name.
#[utoipa::path(get, path = "/assets/{file}", tag = "dashboard",
    params(("file" = String, Path, description = "The asset's file name")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/plain"))),
        (status = 404, description = "No such asset", body = super::errors::ErrorBody),
    ))]
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match file.as_str() {
        "dashboard.js" => (include_str!("dashboard/dashboard.js"), "text/javascript"),
        "dashboard.css" => (include_str!("dashboard/dashboard.css"), "text/css"),
        "uPlot.iife.min.js" => (
            include_str!("dashboard/vendor/uPlot.iife.min.js"),
            "text/javascript",
        ),
        "uPlot.min.css" => (include_str!("dashboard/vendor/uPlot.min.css"), "text/css"),
        "uPlot.LICENSE" => (include_str!("dashboard/vendor/uPlot.LICENSE"), "text/plain"),
        _ => {
            return ApiError(StatusCode::NOT_FOUND, format!("no asset named '{file}'"))
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}
