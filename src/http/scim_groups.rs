//! SCIM Groups at `<base>/scim/v2/Groups` (RFC 7644): the workspace's teams. Thin,
//! like the Users handlers: parse, call `app::teams`, render.
//!
//! A Group's members are never held in memory whole: bodies with members are
//! written in pages of [`PAGE`] members read one after the other (a team of
//! 100,000 members is about 15 MB of JSON), so a large team costs the server a
//! page's worth of memory, not the whole list.

use super::AppState;
use super::scim::{Caller, ListParams, ScimBody, Segment, if_match};
use crate::app::teams::{self, ListRequest};
use crate::scim::error::ScimError;
use crate::scim::filter::{self, Filter};
use crate::scim::group;
use crate::scim::resource::{self, Projection};
use crate::scim::schema;
use crate::store::Db;
use crate::store::teams::Team;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use uuid::Uuid;

/// Members read and written at a time.
const PAGE: i64 = 1000;
/// A body chunk is sent once it is at least this long.
const CHUNK: usize = 64 * 1024;

fn scim_base(state: &AppState) -> String {
    format!("{}/scim/v2", state.config.base())
}

/// One piece of a Group body: literal JSON text, or a team's members to read.
enum Part {
    Text(String),
    Members {
        team: Uuid,
        after: Option<Uuid>,
        first: bool,
    },
}

/// What the body writer needs.
struct Writer {
    db: Db,
    workspace_id: i64,
    base: String,
    projection: Projection,
    parts: VecDeque<Part>,
}

impl Writer {
    /// The next chunk of the body; None at the end.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let mut buf = String::new();
        while buf.len() < CHUNK {
            let Some(part) = self.parts.pop_front() else {
                break;
            };
            match part {
                Part::Text(t) => buf.push_str(&t),
                Part::Members { team, after, first } => {
                    let page = match crate::store::teams::members_page(
                        &self.db,
                        self.workspace_id,
                        team,
                        after,
                        PAGE,
                    )
                    .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            // The status line is gone: all that is left is to cut the
                            // body short (and never write its end after it).
                            tracing::error!(error = %e, "reading a team's members failed mid-response");
                            self.parts.clear();
                            return Some(Err(std::io::Error::other("team members unavailable")));
                        }
                    };
                    let mut first = first;
                    for m in &page {
                        let entry = teams::member_entry(&self.base, m);
                        let Some(entry) = self.projection.element("members", entry) else {
                            continue;
                        };
                        if !first {
                            buf.push(',');
                        }
                        first = false;
                        buf.push_str(&entry.to_string());
                    }
                    if page.len() as i64 == PAGE
                        && let Some(last) = page.last()
                    {
                        self.parts.push_front(Part::Members {
                            team,
                            after: Some(last.id),
                            first,
                        });
                    }
                }
            }
        }
        (!buf.is_empty()).then(|| Ok(Bytes::from(buf)))
    }
}

/// The parts of one Group: its attributes (projected), then its members when the
/// projection keeps them.
fn group_parts(team: &Team, base: &str, projection: &Projection, out: &mut VecDeque<Part>) {
    let id = team.id.to_string();
    let head = projection.apply(group::render_head(&teams::view(team, &id, base)));
    let text = head.to_string();
    if !projection.keeps("members") {
        out.push_back(Part::Text(text));
        return;
    }
    // `{"a":1,...}` becomes `{"a":1,...,"members":[` + entries + `]}`.
    let open = text.strip_suffix('}').unwrap_or(&text);
    let sep = if open.ends_with('{') { "" } else { "," };
    out.push_back(Part::Text(format!("{open}{sep}\"members\":[")));
    if team.member_count > 0 {
        out.push_back(Part::Members {
            team: team.id,
            after: None,
            first: true,
        });
    }
    out.push_back(Part::Text("]}".into()));
}

/// A body written from `parts` in chunks.
fn streamed(
    state: &AppState,
    workspace_id: i64,
    projection: Projection,
    parts: VecDeque<Part>,
) -> Body {
    let writer = Writer {
        db: state.db.clone(),
        workspace_id,
        base: scim_base(state),
        projection,
        parts,
    };
    Body::from_stream(futures_util::stream::unfold(writer, |mut w| async move {
        let chunk = w.next().await?;
        Some((chunk, w))
    }))
}

fn with_type(status: StatusCode, body: Body) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::scim::SCIM_JSON),
    );
    resp
}

/// One Group, with its ETag (and Location when created).
fn group_response(
    state: &AppState,
    status: StatusCode,
    team: &Team,
    projection: Projection,
) -> Response {
    let base = scim_base(state);
    let mut parts = VecDeque::new();
    group_parts(team, &base, &projection, &mut parts);
    let mut resp = with_type(
        status,
        streamed(state, team.workspace_id, projection, parts),
    );
    if let Ok(v) = HeaderValue::from_str(&resource::etag(team.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    let location = format!("{base}/Groups/{}", team.id);
    if let (StatusCode::CREATED, Ok(v)) = (status, HeaderValue::from_str(&location)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The projection asked for; `None` when the query names neither parameter.
fn asked_projection(q: Option<&str>) -> Result<Option<Projection>, ScimError> {
    let p = ListParams::from_query(q)?;
    if p.attributes.is_none() && p.excluded_attributes.is_none() {
        return Ok(None);
    }
    Projection::parse_group(p.attributes.as_deref(), p.excluded_attributes.as_deref()).map(Some)
}

fn projection_from(q: Option<&str>) -> Projection {
    asked_projection(q).ok().flatten().unwrap_or_default()
}

async fn list_with(
    state: &AppState,
    caller: &Caller,
    p: ListParams,
) -> Result<Response, ScimError> {
    let filter: Option<Filter> = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty())
    {
        Some(f) => Some(filter::parse_group(f)?),
        None => None,
    };
    let by_name = match p
        .sort_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => false,
        Some(s) => {
            let attr = schema::resolve_group(s).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "unknown sortBy attribute '{}'",
                    s.chars().take(80).collect::<String>()
                ))
            })?;
            attr.attr.name == "displayName"
        }
    };
    let descending = p.descending()?;
    let (start_index, count) = p.page()?;
    let projection =
        Projection::parse_group(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
    let req = ListRequest {
        filter: filter.as_ref(),
        by_name,
        descending,
        start_index,
        count,
    };
    let (total, mut found) = teams::list(&state.db, &caller.0, &req).await?;
    if projection.keeps("members") {
        budget(&mut found);
    }
    let base = scim_base(state);
    let envelope = resource::list_response(Vec::new(), total.max(0) as u64, start_index as u64);
    // The envelope with `itemsPerPage` set and `Resources` opened: the resources
    // follow as parts.
    let mut envelope = envelope;
    envelope["itemsPerPage"] = found.len().into();
    if let Some(obj) = envelope.as_object_mut() {
        obj.remove("Resources");
    }
    let text = envelope.to_string();
    let open = text.strip_suffix('}').unwrap_or(&text);
    let mut parts = VecDeque::new();
    parts.push_back(Part::Text(format!("{open},\"Resources\":[")));
    for (i, team) in found.iter().enumerate() {
        if i > 0 {
            parts.push_back(Part::Text(",".into()));
        }
        group_parts(team, &base, &projection, &mut parts);
    }
    parts.push_back(Part::Text("]}".into()));
    Ok(with_type(
        StatusCode::OK,
        streamed(state, caller.0.workspace.id, projection, parts),
    ))
}

/// Most members written into one list response: a page of large teams is cut short
/// after the team that passes it (RFC 7644 lets a page hold fewer resources than
/// `count`; `itemsPerPage` says how many, and the client asks for the next page).
const LIST_MEMBER_BUDGET: i64 = 100_000;

fn budget(found: &mut Vec<Team>) {
    let mut total = 0;
    let keep = found
        .iter()
        .position(|t| {
            total += t.member_count;
            total >= LIST_MEMBER_BUDGET
        })
        .map_or(found.len(), |i| i + 1);
    found.truncate(keep);
}

pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(r) = caller.denied(false) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    let result = async {
        let params = ListParams::from_query(q.as_deref())?;
        list_with(&state, &caller, params).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn search_groups(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(false) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    let result = async {
        let ScimBody(b) = body?;
        let params = ListParams::from_search_body(&b)?;
        list_with(&state, &caller, params).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(r) = caller.denied(false) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    match teams::get(&state.db, &caller.0, &id).await {
        Ok(t) => group_response(&state, StatusCode::OK, &t, projection_from(q.as_deref())),
        Err(e) => e.into_response(),
    }
}

pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    let body = match body {
        Ok(ScimBody(b)) => b,
        Err(e) => return e.into_response(),
    };
    match teams::create(&state.db, &caller.0, &body).await {
        Ok(t) => group_response(
            &state,
            StatusCode::CREATED,
            &t,
            projection_from(q.as_deref()),
        ),
        Err(e) => e.into_response(),
    }
}

pub async fn replace_group(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    let body = match body {
        Ok(ScimBody(b)) => b,
        Err(e) => return e.into_response(),
    };
    match teams::replace(&state.db, &caller.0, &id, &body, if_match(&headers)).await {
        Ok(t) => group_response(&state, StatusCode::OK, &t, projection_from(q.as_deref())),
        Err(e) => e.into_response(),
    }
}

/// PATCH answers 204 (no member list, however large the team), or 200 with the
/// Group when the request names `attributes` or `excludedAttributes`.
pub async fn patch_group(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    let body = match body {
        Ok(ScimBody(b)) => b,
        Err(e) => return e.into_response(),
    };
    let asked = match asked_projection(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match teams::patch(&state.db, &caller.0, &id, &body, if_match(&headers)).await {
        Ok(t) => match asked {
            Some(p) => group_response(&state, StatusCode::OK, &t, p),
            None => {
                let mut resp = StatusCode::NO_CONTENT.into_response();
                if let Ok(v) = HeaderValue::from_str(&resource::etag(t.version)) {
                    resp.headers_mut().insert(header::ETAG, v);
                }
                resp
            }
        },
        Err(e) => e.into_response(),
    }
}

pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Segment(id): Segment,
) -> Response {
    if let Some(r) = caller.denied(true) {
        return r;
    }
    if let Err(e) = teams::check_enabled(&caller.0) {
        return e.into_response();
    }
    match teams::delete(&state.db, &caller.0, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /.search` at the SCIM root (RFC 7644 §3.4.3): Users, then (while the
/// workspace manages teams with SCIM) Groups, paged as one list. A filter applies
/// to the resource types whose attributes it names; `sortBy` applies to neither
/// (each type keeps its own order).
pub async fn search_root(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ScimBody, ScimError>,
) -> Response {
    if let Some(r) = caller.denied(false) {
        return r;
    }
    let result = async {
        let ScimBody(b) = body?;
        let p = ListParams::from_search_body(&b)?;
        search_all(&state, &caller, p).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn search_all(
    state: &AppState,
    caller: &Caller,
    p: ListParams,
) -> Result<Response, ScimError> {
    use crate::app::provisioning;
    let who = &caller.0;
    let text = p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty());
    let (user_filter, group_filter) = match text {
        None => (None, None),
        Some(f) => {
            let users = filter::parse(f);
            let groups = filter::parse_group(f).ok();
            match (users, groups) {
                (Err(e), None) => return Err(e),
                (users, groups) => (users.ok(), groups),
            }
        }
    };
    let (start_index, count) = p.page()?;
    let user_projection =
        Projection::parse(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
    let group_projection =
        Projection::parse_group(p.attributes.as_deref(), p.excluded_attributes.as_deref())?;
    let (users_total, members) = if text.is_some() && user_filter.is_none() {
        (0, Vec::new())
    } else {
        let req = provisioning::ListRequest {
            filter: user_filter.as_ref(),
            sort: None,
            descending: false,
            start_index,
            count,
            groups: user_projection.keeps("groups"),
        };
        provisioning::list(&state.db, who.workspace.id, &req).await?
    };
    let with_groups = who.workspace.scim_teams && !(text.is_some() && group_filter.is_none());
    let (groups_total, mut found) = if with_groups {
        let req = ListRequest {
            filter: group_filter.as_ref(),
            by_name: false,
            descending: false,
            start_index: (start_index - users_total).max(1),
            count: count - members.len() as i64,
        };
        teams::list(&state.db, who, &req).await?
    } else {
        (0, Vec::new())
    };
    if group_projection.keeps("members") {
        budget(&mut found);
    }
    let users = provisioning::render_all(&members, state.config.base());
    let mut envelope = resource::list_response(
        Vec::new(),
        (users_total + groups_total).max(0) as u64,
        start_index as u64,
    );
    envelope["itemsPerPage"] = (users.len() + found.len()).into();
    if let Some(obj) = envelope.as_object_mut() {
        obj.remove("Resources");
    }
    let text = envelope.to_string();
    let open = text.strip_suffix('}').unwrap_or(&text);
    let mut parts = VecDeque::new();
    parts.push_back(Part::Text(format!("{open},\"Resources\":[")));
    let base = scim_base(state);
    let mut first = true;
    for u in users {
        if !first {
            parts.push_back(Part::Text(",".into()));
        }
        first = false;
        parts.push_back(Part::Text(user_projection.apply(u).to_string()));
    }
    for team in &found {
        if !first {
            parts.push_back(Part::Text(",".into()));
        }
        first = false;
        group_parts(team, &base, &group_projection, &mut parts);
    }
    parts.push_back(Part::Text("]}".into()));
    Ok(with_type(
        StatusCode::OK,
        streamed(state, who.workspace.id, group_projection, parts),
    ))
}
