//! `POST /sql`: a batch SELECT over the memory tables (see
//! [`crate::connectors::memory::query`]), for `sluice serve` and `sluice run --ui` alike.
//! The body is `{"sql": "SELECT ...", "maxRows": 100}`; the answer has the columns, the rows
//! as JSON objects (as the JSON sinks write them), and the rows as Spark's `show()` prints
//! them, which `sluice sql` shows.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::errors::ApiError;
use crate::connectors::memory::query::{self, Limits, QueryError};

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SqlRequest {
    /// One SELECT.
    sql: String,
    /// At most this many rows back (default and cap: [`Limits::default`]'s).
    max_rows: Option<usize>,
}

/// A column of the answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct SqlColumn {
    /// Its name.
    name: String,
    /// Its Arrow type, as Arrow prints it.
    #[serde(rename = "type")]
    data_type: String,
}

/// The answer to one query.
#[derive(Serialize, ToSchema)]
pub(crate) struct SqlAnswer {
    /// The columns, in order.
    columns: Vec<SqlColumn>,
    /// The rows as JSON objects, as the JSON sinks write them.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Whether rows past `maxRows` were left out.
    truncated: bool,
    /// The rows as Spark's `show()` prints them.
    show: String,
}

/// Answers one SELECT over the memory tables; errors are `{"error": ...}` with 400 (the
/// SQL) or 422 (a limit).
#[utoipa::path(post, path = "/sql", tag = "sql",
    request_body(content = SqlRequest, content_type = "application/json"),
    security(("token" = [])),
    responses(
        (status = 200, description = "The rows", body = SqlAnswer),
        (status = 400, description = "The SQL does not parse or plan, or the body is not a request", body = super::errors::ErrorBody),
        (status = 401, description = "No or a wrong token", body = super::errors::ErrorBody),
        (status = 422, description = "The query passed a limit", body = super::errors::ErrorBody),
    ))]
pub(crate) async fn post_sql(body: axum::body::Bytes) -> Response {
    // Read by hand rather than with axum's `Json` extractor, whose refusals are plain text
    // (and a 415 without a JSON content type): every error of the API is `{"error": ...}`.
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!(
                "expected {{\"sql\": \"SELECT ...\", \"maxRows\": N}}: {e}"
            ))
            .into_response();
        }
    };
    let defaults = Limits::default();
    let limits = Limits {
        max_rows: request
            .max_rows
            .unwrap_or(defaults.max_rows)
            .min(defaults.max_rows),
        ..defaults
    };
    let answer = match query::run(&request.sql, limits).await {
        Ok(a) => a,
        Err(e) => {
            let status = match e {
                QueryError::Sql(_) => StatusCode::BAD_REQUEST,
                QueryError::Limit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return ApiError(status, e.to_string()).into_response();
        }
    };
    let shown = crate::connectors::console::sink::render_table(
        &answer.schema,
        &answer.rows,
        limits.max_rows,
        false,
    );
    let mut rows = Vec::new();
    for batch in &answer.rows {
        match crate::schema::rows_as_json(batch) {
            Ok(r) => rows.extend(r),
            Err(e) => return internal(e.to_string()),
        }
    }
    let shown = match shown {
        Ok(s) => s,
        Err(e) => return internal(e.to_string()),
    };
    let columns = answer
        .schema
        .fields()
        .iter()
        .map(|f| SqlColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    Json(SqlAnswer {
        columns,
        rows,
        truncated: answer.truncated,
        show: shown,
    })
    .into_response()
}

fn internal(message: String) -> Response {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("formatting the answer: {message}"),
    )
    .into_response()
}
