//! `POST /sql`: a batch SELECT over the memory tables (see
//! [`crate::connectors::memory::query`]), for `sluice serve` and `sluice run --ui` alike.
//! The body is `{"sql": "SELECT ...", "maxRows": 100}`; the answer has the columns, the rows
//! as JSON objects (as the JSON sinks write them), and the rows as Spark's `show()` prints
//! them, which `sluice sql` shows.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::connectors::memory::query::{self, Limits, QueryError};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SqlRequest {
    /// One SELECT.
    sql: String,
    /// At most this many rows back (default and cap: [`Limits::default`]'s).
    max_rows: Option<usize>,
}

/// Answers one query; errors are `{"error": ...}` with 400 (the SQL) or 422 (a limit).
pub(crate) async fn post_sql(Json(request): Json<SqlRequest>) -> Response {
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
            return (status, Json(json!({ "error": e.to_string() }))).into_response();
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
    let columns: Vec<_> = answer
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    Json(json!({
        "columns": columns,
        "rows": rows,
        "truncated": answer.truncated,
        "show": shown,
    }))
    .into_response()
}

fn internal(message: String) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": format!("formatting the answer: {message}") })),
    )
        .into_response()
}
