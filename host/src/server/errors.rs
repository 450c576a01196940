//! The API's error answers: a status and `{"error": "..."}` saying what to fix, the same for
//! every route (and described once, as [`ErrorBody`], in `/openapi.json`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::Error;
use crate::registry::RegistryError;

/// An error response: a status and a JSON `{"error": message}`.
pub(crate) struct ApiError(pub StatusCode, pub String);

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong and what to fix.
    error: String,
}

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

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}
