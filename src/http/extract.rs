//! Extractors for browser pages: a malformed form or query string gets the readable
//! HTML error page (400), not axum's plain-text rejection.

use crate::http::error::AppError;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(v)) => Ok(PageForm(v)),
            Err(e) => Err(AppError::BadRequest(format!(
                "The form could not be read ({}). Go back, reload the page and try again.",
                e.body_text()
            ))),
        }
    }
}

pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(PageQuery(v)),
            Err(e) => Err(AppError::BadRequest(format!(
                "This address could not be read ({}).",
                e.body_text()
            ))),
        }
    }
}
