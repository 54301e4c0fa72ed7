//! The error type of the browser-facing pages. SCIM and OAuth render their own
//! formats (`scim::error`, `oauth::error`); this one renders a readable HTML page.

use super::views::ErrorPage;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An upstream service (the workspace's identity provider) failed.
    #[error("{0}")]
    BadGateway(String),
    #[error("too many attempts; wait a little and try again")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound => AppError::NotFound("Not found.".into()),
            crate::store::StoreError::Conflict(what) => AppError::Conflict(what),
            other => AppError::Internal(other.into()),
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(e) = &self {
            tracing::error!(error = %e, "internal error");
        }
        let title = match status {
            StatusCode::BAD_REQUEST => "That request could not be used",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Already exists",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::BAD_GATEWAY => "The identity provider did not answer",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            title: title.to_owned(),
            message: self.to_string(),
        };
        let mut resp = (status, page).into_response();
        if let AppError::TooManyRequests { retry_after_secs } = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
        }
        resp
    }
}
