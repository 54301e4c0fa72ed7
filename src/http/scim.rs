//! The SCIM 2.0 API at `<base>/scim/v2` (RFC 7644). Thin: parse the request,
//! call `provisioning`, render. Every answer is `application/scim+json`; errors use
//! the SCIM Error schema with `status` as a string.

use super::AppState;
use super::bearer::{self, Principal};
use super::scim_groups;
use crate::app::provisioning::{self, ListRequest};
use crate::scim::error::ScimError;
use crate::scim::filter::{self, Filter};
use crate::scim::resource::{self, Projection};
use crate::scim::schema::{self, AttrRef};
use crate::store::members::Member;
use crate::store::rate_limits::{self, ScimVerdict};
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

pub const SCIM_JSON: &str = "application/scim+json";
/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest page (advertised in ServiceProviderConfig).
pub const MAX_RESULTS: i64 = 1000;
pub(super) const DEFAULT_COUNT: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/Users",
            get(list_users)
                .post(create_user)
                .fallback(method_not_allowed),
        )
        // RFC 7644 3.4.3: a search at the root covers every resource type.
        .route(
            "/.search",
            post(scim_groups::search_root).fallback(method_not_allowed),
        )
        .route(
            "/Users/.search",
            post(search_users).fallback(method_not_allowed),
        )
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user)
                .fallback(method_not_allowed),
        )
        .route(
            "/Groups",
            get(scim_groups::list_groups)
                .post(scim_groups::create_group)
                .fallback(method_not_allowed),
        )
        .route(
            "/Groups/.search",
            post(scim_groups::search_groups).fallback(method_not_allowed),
        )
        .route(
            "/Groups/{id}",
            get(scim_groups::get_group)
                .put(scim_groups::replace_group)
                .patch(scim_groups::patch_group)
                .delete(scim_groups::delete_group)
                .fallback(method_not_allowed),
        )
        .route(
            "/ServiceProviderConfig",
            get(service_provider_config).fallback(method_not_allowed),
        )
        .route(
            "/ResourceTypes",
            get(resource_types).fallback(method_not_allowed),
        )
        .route(
            "/ResourceTypes/{name}",
            get(resource_type).fallback(method_not_allowed),
        )
        .route("/Schemas", get(schemas).fallback(method_not_allowed))
        .route(
            "/Schemas/{id}",
            get(schema_by_id).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(rate_limit_headers))
}

/// The rate-limit verdict of this request's token, set by [`Caller`] and turned into
/// headers by [`rate_limit_headers`] whatever the handler answers.
#[derive(Clone, Default)]
struct RateSlot(Arc<OnceLock<ScimVerdict>>);

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// `X-RateLimit-Limit` and `X-RateLimit-Remaining` on every answer to an authenticated
/// SCIM request (errors and 429s included); `Retry-After` on 429s.
async fn rate_limit_headers(mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if let Some(v) = slot.0.get() {
        let headers = resp.headers_mut();
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(v.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(v.remaining));
        if let Some(secs) = v.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
    resp
}

/// The key a token is limited by: a digest of the bearer token itself (one bucket per
/// API token or OAuth access token, never per workspace), kept apart from the digest
/// the token is looked up by.
fn rate_key(token: &str) -> String {
    let digest = crate::secrets::digest(&format!("scim-rate:{token}"));
    format!("scim:{}", hex::encode(&digest[..16]))
}

/// A path segment (`/Users/{id}`). An id that is not UTF-8 once percent-decoded
/// (`/Users/%FF`) names no resource: 404 in the SCIM Error format, not axum's plain text.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ScimError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(Segment(s)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(ScimError::not_found(
                "no such resource: the id in the URL is not valid UTF-8",
            )),
            Err(e) => Err(ScimError::invalid_value(e.body_text())),
        }
    }
}

/// A SCIM JSON answer.
fn scim(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        scim(status, self.to_json())
    }
}

/// One User, with its teams, its ETag (and Location when created).
fn user_response(
    status: StatusCode,
    member: &Member,
    teams: &[(Uuid, String)],
    state: &AppState,
    projection: &Projection,
) -> Response {
    let base = state.config.base();
    let groups = provisioning::group_refs(teams, base);
    let body = projection.apply(provisioning::render(member, &groups, base));
    let mut resp = with_etag(scim(status, body), member.version);
    let location = format!("{base}/scim/v2/Users/{}", member.id);
    if let (StatusCode::CREATED, Ok(v)) = (status, HeaderValue::from_str(&location)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn with_etag(mut resp: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&resource::etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

async fn method_not_allowed() -> ScimError {
    ScimError::method_not_allowed("this method is not supported on this SCIM endpoint")
}

async fn not_found() -> ScimError {
    ScimError::not_found(
        "no such SCIM endpoint; Rollcall serves /Users, /Groups, /ServiceProviderConfig, /ResourceTypes and /Schemas",
    )
}

/// The caller, from the bearer token. Rejections are SCIM errors: 401 with
/// `WWW-Authenticate: Bearer` for missing or bad tokens, 403 when SCIM is off.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let unauthorized = |detail: &str| {
            let mut resp = ScimError::unauthorized(detail).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
            resp
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(token) = bearer::bearer(header) else {
            return Err(unauthorized(
                "a bearer token is required (Authorization: Bearer <token>)",
            ));
        };
        let principal = match bearer::authenticate(state, token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(unauthorized(
                    "the bearer token is not valid (unknown, expired or revoked)",
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return Err(ScimError::new(500, None, "internal error").into_response());
            }
        };
        // Every authenticated request counts, whatever it asks (0: no limit).
        let limit = state.config.limits.scim_per_token;
        if limit > 0 {
            let verdict = rate_limits::scim_hit(&state.db, &rate_key(token), limit).await;
            if let Some(slot) = parts.extensions.get::<RateSlot>() {
                let _ = slot.0.set(verdict);
            }
            if let Some(secs) = verdict.retry_after_secs {
                return Err(ScimError::new(
                    429,
                    None,
                    format!(
                        "too many requests: this token may make {limit} SCIM requests a minute \
                         (a minute's worth at once); retry after {secs} seconds"
                    ),
                )
                .into_response());
            }
        }
        if !principal.workspace.scim_enabled {
            return Err(ScimError::forbidden(format!(
                "SCIM provisioning is turned off for workspace '{}'. A workspace admin can turn it on in \
                 Settings > SSO and SCIM (or run `rollcall workspace scim {} on`).",
                principal.workspace.subdomain, principal.workspace.subdomain
            ))
            .into_response());
        }
        Ok(Caller(principal))
    }
}

impl Caller {
    /// The 403 `insufficient_scope` answer, when the token may not do this.
    pub(super) fn denied(&self, write: bool) -> Option<Response> {
        let (ok, scope) = if write {
            (self.0.can_write, "scim:write")
        } else {
            (self.0.can_read, "scim:read")
        };
        if ok {
            return None;
        }
        let mut resp = ScimError::forbidden(format!(
            "insufficient_scope: this token lacks the {scope} scope"
        ))
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
        )) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Some(resp)
    }
}

/// A JSON request body, whatever its content type says: 413 over 1 MiB, 400
/// `invalidSyntax` when it is not JSON.
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ScimError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ScimError::payload_too_large(format!(
                    "request bodies are limited to {MAX_BODY} bytes"
                ))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax(
                "the request body is empty; a JSON object is expected",
            ));
        }
        serde_json::from_slice(&bytes).map(ScimBody).map_err(|e| {
            ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}"))
        })
    }
}

/// List parameters, from a query string or a `.search` body.
#[derive(Default)]
pub(super) struct ListParams {
    pub filter: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// The parameter called `name`, matched ignoring case.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name.to_ascii_lowercase().as_str() {
            "filter" => &mut self.filter,
            "startindex" => &mut self.start_index,
            "count" => &mut self.count,
            "sortby" => &mut self.sort_by,
            "sortorder" => &mut self.sort_order,
            "attributes" => &mut self.attributes,
            "excludedattributes" => &mut self.excluded_attributes,
            _ => return None,
        })
    }

    /// Parameter names are matched ignoring case.
    pub(super) fn from_query(raw: Option<&str>) -> Result<Self, ScimError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
                ScimError::invalid_value(format!("the query string cannot be read: {e}"))
            })?;
        let mut p = ListParams::default();
        for (k, v) in pairs {
            if let Some(slot) = p.slot(&k) {
                *slot = Some(v);
            }
        }
        Ok(p)
    }

    /// `sortOrder`: ascending (the default) or descending, any case.
    pub(super) fn descending(&self) -> Result<bool, ScimError> {
        match self
            .sort_order
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => Ok(false),
            Some(s) if s.is_empty() || s == "ascending" => Ok(false),
            Some(s) if s == "descending" => Ok(true),
            Some(s) => Err(ScimError::invalid_value(format!(
                "sortOrder is ascending or descending, not '{s}'"
            ))),
        }
    }

    /// `startIndex` (1-based, at least 1) and `count` (0 to [`MAX_RESULTS`], default
    /// [`DEFAULT_COUNT`]).
    pub(super) fn page(&self) -> Result<(i64, i64), ScimError> {
        let start_index = int_param("startIndex", self.start_index.as_deref(), 1)?.max(1);
        let count = int_param("count", self.count.as_deref(), DEFAULT_COUNT)?.clamp(0, MAX_RESULTS);
        Ok((start_index, count))
    }

    pub(super) fn from_search_body(body: &Value) -> Result<Self, ScimError> {
        let Some(obj) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let mut p = ListParams::default();
        for (k, v) in obj {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null => continue,
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "'{k}' has the wrong type"
                    )));
                }
            };
            if let Some(slot) = p.slot(k) {
                *slot = Some(text);
            }
        }
        Ok(p)
    }
}

/// An integer parameter; absurd values are clamped, not errors, where RFC 7644 says
/// how to read them.
pub(super) fn int_param(name: &str, raw: Option<&str>, default: i64) -> Result<i64, ScimError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(n) => Ok(n),
        Err(_)
            if raw
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            // Too large for i64: as large (or as small) as can be.
            Ok(if raw.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            })
        }
        Err(_) => Err(ScimError::invalid_value(format!(
            "{name} must be an integer, not '{}'",
            raw.chars().take(40).collect::<String>()
        ))),
    }
}

async fn list_with(state: &AppState, caller: &Caller, p: ListParams) -> Result<Response, Response> {
    if let Some(r) = caller.denied(false) {
        return Err(r);
    }
    let filter: Option<Filter> = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty())
    {
        Some(f) => Some(filter::parse(f).map_err(IntoResponse::into_response)?),
        None => None,
    };
    let sort: Option<AttrRef> = match p
        .sort_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(schema::resolve(s).ok_or_else(|| {
            ScimError::invalid_value(format!("unknown sortBy attribute '{s}'")).into_response()
        })?),
        None => None,
    };
    let descending = p.descending().map_err(IntoResponse::into_response)?;
    let (start_index, count) = p.page().map_err(IntoResponse::into_response)?;
    let projection = Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref())
        .map_err(IntoResponse::into_response)?;
    let req = ListRequest {
        filter: filter.as_ref(),
        sort: sort.as_ref(),
        descending,
        start_index,
        count,
        groups: projection.keeps("groups"),
    };
    let (total, members) = provisioning::list(&state.db, caller.0.workspace.id, &req)
        .await
        .map_err(IntoResponse::into_response)?;
    let resources = provisioning::render_all(&members, state.config.base())
        .into_iter()
        .map(|r| projection.apply(r))
        .collect();
    Ok(scim(
        StatusCode::OK,
        resource::list_response(resources, total.max(0) as u64, start_index as u64),
    ))
}

async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Response {
    let params = match ListParams::from_query(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    list_with(&state, &caller, params)
        .await
        .unwrap_or_else(|r| r)
}

async fn search_users(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ScimBody, ScimError>,
) -> Response {
    let params = match body.and_then(|ScimBody(b)| ListParams::from_search_body(&b)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    list_with(&state, &caller, params)
        .await
        .unwrap_or_else(|r| r)
}

fn projection_from(q: Option<&str>) -> Projection {
    ListParams::from_query(q)
        .ok()
        .and_then(|p| {
            Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref()).ok()
        })
        .unwrap_or_default()
}

pub(super) fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(r) = caller.denied(false) {
        return r;
    }
    let base = state.config.base();
    match provisioning::get_with_groups(&state.db, caller.0.workspace.id, &id, base).await {
        Ok((m, groups)) => {
            let body = projection_from(q.as_deref()).apply(provisioning::render(&m, &groups, base));
            with_etag(scim(StatusCode::OK, body), m.version)
        }
        Err(e) => e.into_response(),
    }
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    let body = match body {
        Ok(ScimBody(b)) => b,
        Err(e) => return e.into_response(),
    };
    match provisioning::create(&state.db, &caller.0, &body).await {
        // A member just created is in no team yet.
        Ok(m) => user_response(
            StatusCode::CREATED,
            &m,
            &[],
            &state,
            &projection_from(q.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

#[derive(Clone, Copy)]
enum Update {
    Replace,
    Patch,
}

/// PUT and PATCH: same checks, same answer; only the use case differs.
async fn update_user(
    state: AppState,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    query: Option<String>,
    body: Result<ScimBody, ScimError>,
    kind: Update,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    let body = match body {
        Ok(ScimBody(b)) => b,
        Err(e) => return e.into_response(),
    };
    let (db, who, tag) = (&state.db, &caller.0, if_match(&headers));
    let result = match kind {
        Update::Replace => provisioning::replace(db, who, &id, &body, tag).await,
        Update::Patch => provisioning::patch(db, who, &id, &body, tag).await,
    };
    match result {
        Ok(changed) => user_response(
            StatusCode::OK,
            &changed.member,
            &changed.teams,
            &state,
            &projection_from(query.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

async fn replace_user(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    update_user(state, caller, id, headers, q, body, Update::Replace).await
}

async fn patch_user(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    update_user(state, caller, id, headers, q, body, Update::Patch).await
}

/// Members are never deleted: deactivation keeps their data and history.
async fn delete_user(caller: Caller) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    let mut resp = ScimError::method_not_allowed(
        "Rollcall does not delete members. Deactivate the member instead with PATCH \
         {\"Operations\":[{\"op\":\"replace\",\"value\":{\"active\":false}}]}; it keeps their data and can be undone.",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, PUT, PATCH"));
    resp
}

fn scim_base(state: &AppState) -> String {
    format!("{}/scim/v2", state.config.base())
}

async fn service_provider_config(State(state): State<AppState>) -> Response {
    scim(
        StatusCode::OK,
        resource::service_provider_config(&scim_base(&state), MAX_RESULTS as u64),
    )
}

async fn resource_types(State(state): State<AppState>) -> Response {
    let types = resource::resource_types(&scim_base(&state));
    let n = types.len() as u64;
    scim(StatusCode::OK, resource::list_response(types, n, 1))
}

async fn resource_type(State(state): State<AppState>, Segment(name): Segment) -> Response {
    resource::resource_types(&scim_base(&state))
        .into_iter()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
                || t["id"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        })
        .map(|t| scim(StatusCode::OK, t))
        .unwrap_or_else(|| {
            ScimError::not_found(format!(
                "no ResourceType '{name}'; Rollcall serves User and Group"
            ))
            .into_response()
        })
}

async fn schemas(State(state): State<AppState>) -> Response {
    let base = scim_base(&state);
    let all: Vec<Value> = schema::all_schemas()
        .iter()
        .map(|s| schema::schema_json(s, &base))
        .collect();
    let n = all.len() as u64;
    scim(StatusCode::OK, resource::list_response(all, n, 1))
}

async fn schema_by_id(State(state): State<AppState>, Segment(id): Segment) -> Response {
    let base = scim_base(&state);
    match schema::all_schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
    {
        Some(s) => scim(StatusCode::OK, schema::schema_json(s, &base)),
        None => ScimError::not_found(format!("no schema '{id}'")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_parameters() {
        assert_eq!(int_param("count", None, 100).unwrap(), 100);
        assert_eq!(int_param("count", Some(" 7 "), 100).unwrap(), 7);
        assert_eq!(int_param("count", Some("-5"), 100).unwrap(), -5);
        assert_eq!(
            int_param("count", Some("99999999999999999999999"), 100).unwrap(),
            i64::MAX
        );
        assert_eq!(
            int_param("count", Some("1e3"), 100).unwrap_err().status,
            400
        );
    }

    #[test]
    fn search_bodies_take_lists_and_numbers() {
        let p = ListParams::from_search_body(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "userName sw \"a\"", "startIndex": 2, "count": 10,
            "attributes": ["userName", "emails"]
        }))
        .unwrap();
        assert_eq!(p.filter.as_deref(), Some("userName sw \"a\""));
        assert_eq!(p.start_index.as_deref(), Some("2"));
        assert_eq!(p.attributes.as_deref(), Some("userName,emails"));
    }
}
