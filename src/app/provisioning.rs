//! SCIM provisioning: the use cases behind the SCIM API. Ties the pure protocol
//! (`scim`) to storage (`store`) and records every write in the activity log.
//! Errors are already SCIM errors (`ScimError` is the SCIM protocol's error type,
//! with its status); the HTTP layer only renders.

use crate::scim::error::ScimError;
use crate::scim::filter::Filter;
use crate::scim::patch;
use crate::scim::resource::{self, Meta};
use crate::scim::schema::AttrRef;
use crate::store::members::{self, Member, MemberData, Search, WithTeams};
use crate::store::{Db, StoreError, activity};
use serde_json::Value;
use uuid::Uuid;

/// An authenticated SCIM caller: the workspace its token belongs to and what it may
/// do (see [`authenticate`]).
#[derive(Debug, Clone)]
pub struct Principal {
    pub workspace: crate::store::workspaces::Workspace,
    pub can_read: bool,
    pub can_write: bool,
    /// Who acted, for the provisioning activity log: "token:<prefix>" or "oauth:<client>".
    pub actor: String,
}

/// Who a bearer token acts for. `None`: unknown, revoked or expired.
///
/// Workspace API tokens (`rc_pat_…`) carry full SCIM access. OAuth access tokens
/// (`rc_at_…`) act for the workspace of their grant with the grant's scopes: reading
/// needs `scim:read`, writing needs `scim:write` (a token with only `scim:write`
/// cannot read; ask for both, as a client that asks for nothing gets). They count
/// only while their grant lives and its authorizer is an active admin.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Principal>, StoreError> {
    use crate::oauth::{Scope, Scopes};
    use crate::secrets::{self, Kind};
    if token.starts_with(Kind::ApiToken.prefix()) {
        let Some((t, workspace)) =
            crate::store::tokens::authenticate(db, &secrets::digest(token)).await?
        else {
            return Ok(None);
        };
        return Ok(Some(Principal {
            workspace,
            can_read: true,
            can_write: true,
            actor: format!("token:{}", t.prefix),
        }));
    }
    if token.starts_with(Kind::AccessToken.prefix()) {
        let digest = secrets::digest(token);
        let Some(t) = crate::store::oauth::access_token(db, &digest).await? else {
            return Ok(None);
        };
        if t.kind != "access" || !t.live() || crate::store::now() >= t.expires_at {
            return Ok(None);
        }
        let workspace = t.workspace();
        crate::store::oauth::touch_grant(db, &t).await?;
        let scopes = Scopes::parse(&t.scope).unwrap_or_default();
        return Ok(Some(Principal {
            workspace,
            can_read: scopes.contains(Scope::ScimRead),
            can_write: scopes.contains(Scope::ScimWrite),
            actor: format!("oauth:{}", t.client_name),
        }));
    }
    Ok(None)
}

/// What a successful write or read returns.
pub type Outcome = Result<Member, ScimError>;

/// What a successful change of a member returns: the member and its teams.
pub type Changed = Result<WithTeams, ScimError>;

/// The stored data for a canonical SCIM user. Members written through SCIM are
/// SCIM-managed from then on (this is how "Provision User" links existing members).
pub fn member_data(canonical: Value) -> MemberData {
    let f = resource::facts(&canonical);
    MemberData {
        user_name: f.user_name,
        external_id: f.external_id,
        display_name: f.display_name,
        given_name: f.given_name,
        family_name: f.family_name,
        role: f.role,
        active: f.active,
        scim_managed: true,
        resource: canonical,
        emails_ci: f.emails,
    }
}

/// The member as a SCIM User resource, with its teams as `groups` entries.
pub fn render(member: &Member, groups: &[Value], base_url: &str) -> Value {
    let id = member.id.to_string();
    let location = format!("{base_url}/scim/v2/Users/{id}");
    resource::render_user(
        &member.resource.0,
        &Meta {
            id: &id,
            created: member.created_at,
            last_modified: member.updated_at,
            version: member.version,
            location: &location,
            groups,
        },
    )
}

/// Members as SCIM User resources, with the teams read with them.
pub fn render_all(members: &[WithTeams], base_url: &str) -> Vec<Value> {
    members
        .iter()
        .map(|m| render(&m.member, &group_refs(&m.teams, base_url), base_url))
        .collect()
}

fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(what) => ScimError::uniqueness(what),
        StoreError::NotFound => ScimError::not_found("no such User"),
        StoreError::VersionMismatch => {
            ScimError::precondition_failed("the User changed since the version given in If-Match")
        }
        StoreError::InvalidFilter(detail) => ScimError::invalid_filter(detail),
        other => {
            tracing::error!(error = %other, "SCIM storage error");
            ScimError::new(500, None, "internal error")
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id)
        .map_err(|_| ScimError::not_found(format!("no User with id '{}'", truncate(id, 80))))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub async fn get(db: &Db, workspace_id: i64, id: &str) -> Outcome {
    let uuid = parse_id(id)?;
    members::by_id(db, workspace_id, uuid)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found(format!("no User with id '{id}'")))
}

/// A member with its `groups` entries, read in one statement.
pub async fn get_with_groups(
    db: &Db,
    workspace_id: i64,
    id: &str,
    base_url: &str,
) -> Result<(Member, Vec<Value>), ScimError> {
    let uuid = parse_id(id)?;
    let found = members::by_id_with_teams(db, workspace_id, uuid)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found(format!("no User with id '{id}'")))?;
    let groups = group_refs(&found.teams, base_url);
    Ok((found.member, groups))
}

/// A member's teams as `groups` entries.
pub fn group_refs(teams: &[(Uuid, String)], base_url: &str) -> Vec<Value> {
    teams
        .iter()
        .map(|(team, name)| resource::group_ref(base_url, &team.to_string(), name))
        .collect()
}

pub struct ListRequest<'a> {
    pub filter: Option<&'a Filter>,
    pub sort: Option<&'a AttrRef>,
    pub descending: bool,
    /// 1-based, at least 1.
    pub start_index: i64,
    pub count: i64,
    /// Read each member's teams, for its `groups` (false when the client excluded
    /// them).
    pub groups: bool,
}

pub async fn list(
    db: &Db,
    workspace_id: i64,
    req: &ListRequest<'_>,
) -> Result<(i64, Vec<WithTeams>), ScimError> {
    let search = Search {
        filter: req.filter,
        sort: req.sort,
        descending: req.descending,
        offset: req.start_index - 1,
        limit: req.count,
        teams: req.groups,
    };
    members::search(db, workspace_id, &search)
        .await
        .map_err(store_error)
}

/// Record a write's outcome; the log never fails the write itself.
async fn log(
    db: &Db,
    who: &Principal,
    operation: &'static str,
    member: Option<&Member>,
    user_name: Option<&str>,
    result: Result<&str, &ScimError>,
) {
    let (status, detail) = match result {
        Ok(d) => (200, d.to_owned()),
        Err(e) => (e.status, e.detail.clone()),
    };
    crate::metrics::scim_write(operation, status);
    let entry = activity::NewActivity {
        workspace_id: who.workspace.id,
        actor: &who.actor,
        operation,
        member_id: member.map(|m| m.id),
        user_name: member.map(|m| m.user_name.as_str()).or(user_name),
        team_id: None,
        team_name: None,
        status,
        detail: &detail,
    };
    if let Err(e) = activity::record(db, &entry).await {
        tracing::warn!(error = %e, "could not record provisioning activity");
    }
}

fn user_name_of(body: &Value) -> Option<&str> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userName"))?
        .1
        .as_str()
}

pub async fn create(db: &Db, who: &Principal, body: &Value) -> Outcome {
    let result = async {
        let canonical = resource::normalize_user(body)?;
        members::create(db, who.workspace.id, &member_data(canonical), None)
            .await
            .map_err(store_error)
    }
    .await;
    match &result {
        Ok(m) => log(db, who, "create", Some(m), None, Ok("created")).await,
        Err(e) => log(db, who, "create", None, user_name_of(body), Err(e)).await,
    }
    result
}

/// 412 unless `If-Match` (when sent) accepts the current version.
fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    match if_match {
        Some(h) if !if_match_accepts(h, version) => Err(ScimError::precondition_failed(format!(
            "If-Match {h} does not match the current version {}",
            resource::etag(version)
        ))),
        _ => Ok(()),
    }
}

/// Does an `If-Match` header value accept `version`? (`*`, or any listed ETag,
/// compared weakly.)
pub fn if_match_accepts(header: &str, version: i64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == version.to_string()
    })
}

pub async fn replace(
    db: &Db,
    who: &Principal,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Changed {
    let result = async {
        let canonical = resource::normalize_user(body)?;
        let data = member_data(canonical);
        let if_match = if_match.map(str::to_owned);
        modify(db, who.workspace.id, id, move |current| {
            check_if_match(if_match.as_deref(), current.version)?;
            Ok(data.clone())
        })
        .await
    }
    .await;
    log_update(db, who, "replace", &result, "replaced").await;
    result
}

/// Change one member atomically (see `members::modify`): `change` checks and
/// computes the new data from the locked current state.
async fn modify(
    db: &Db,
    workspace_id: i64,
    id: &str,
    change: impl Fn(&Member) -> Result<MemberData, ScimError> + Send + Sync + 'static,
) -> Changed {
    let uuid = parse_id(id)?;
    match members::modify(db, workspace_id, uuid, change).await {
        Ok(outcome) => outcome,
        Err(StoreError::NotFound) => Err(ScimError::not_found(format!("no User with id '{id}'"))),
        Err(e) => Err(store_error(e)),
    }
}

async fn log_update(
    db: &Db,
    who: &Principal,
    operation: &'static str,
    result: &Changed,
    what: &str,
) {
    match result {
        Ok(m) => log(db, who, operation, Some(&m.member), None, Ok(what)).await,
        // Unknown ids are the client's business, not worth an activity line.
        Err(e) if e.status == 404 => crate::metrics::scim_write(operation, 404),
        Err(e) => log(db, who, operation, None, None, Err(e)).await,
    }
}

/// A short description of a PATCH request for the activity log.
fn describe_patch(body: &Value) -> String {
    let ops = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
        .and_then(|(_, v)| v.as_array());
    let Some(ops) = ops else {
        return "patched".into();
    };
    ops.iter()
        .map(|op| {
            let kind = op
                .get("op")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_ascii_lowercase();
            match op.get("path").and_then(Value::as_str) {
                Some(p) => format!("{kind} {p}"),
                None => {
                    let keys = op
                        .get("value")
                        .and_then(Value::as_object)
                        .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>().join(","))
                        .unwrap_or_default();
                    format!("{kind} {{{keys}}}")
                }
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Apply a PatchOp request. All or nothing, on the member read under a lock (the
/// SQLite write thread; `FOR UPDATE` on PostgreSQL), so concurrent PATCHes apply one
/// after the other; `If-Match` that names another version is 412.
pub async fn patch(
    db: &Db,
    who: &Principal,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Changed {
    let result = async {
        let ops = patch::parse_request(body)?;
        // Applied to the locked current state: concurrent PATCHes queue, none is lost.
        let if_match = if_match.map(str::to_owned);
        modify(db, who.workspace.id, id, move |current| {
            check_if_match(if_match.as_deref(), current.version)?;
            let mut doc = current.resource.0.clone();
            patch::apply(&mut doc, &ops)?;
            Ok(member_data(resource::normalize_user(&doc)?))
        })
        .await
    }
    .await;
    log_update(db, who, "patch", &result, &describe_patch(body)).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{admin, testing};
    use serde_json::json;

    #[tokio::test]
    async fn a_token_provisions_its_own_workspace() {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let token = admin::create_api_token(&db, &acme.workspace, "IdP", "test")
            .await
            .unwrap();
        assert!(authenticate(&db, "rc_pat_unknown").await.unwrap().is_none());
        assert!(authenticate(&db, "not a token").await.unwrap().is_none());
        let who = authenticate(&db, &token)
            .await
            .unwrap()
            .expect("the token works");
        assert_eq!(who.workspace.id, acme.workspace.id);
        assert!(who.actor.starts_with("token:rc_pat_"), "{}", who.actor);

        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@acme.test",
            "active": true,
        });
        let created = create(&db, &who, &body).await.expect("created");
        assert!(created.scim_managed);
        let dup = create(&db, &who, &body).await.unwrap_err();
        assert_eq!(dup.status, 409);

        let id = created.id.to_string();
        let deactivate = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        });
        let stale = patch(&db, &who, &id, &deactivate, Some("W/\"99\""))
            .await
            .unwrap_err();
        assert_eq!(stale.status, 412);
        assert!(get(&db, acme.workspace.id, &id).await.unwrap().active);
        let patched = patch(
            &db,
            &who,
            &id,
            &deactivate,
            Some(&resource::etag(created.version)),
        )
        .await
        .expect("patched");
        assert!(!patched.member.active);
        assert_eq!(patched.member.version, created.version + 1);
        assert_eq!(
            get(&db, acme.workspace.id, "nope")
                .await
                .unwrap_err()
                .status,
            404
        );
    }

    #[test]
    fn if_match_forms() {
        assert!(if_match_accepts("W/\"3\"", 3));
        assert!(if_match_accepts("\"3\"", 3));
        assert!(if_match_accepts("*", 9));
        assert!(if_match_accepts("W/\"1\", W/\"3\"", 3));
        assert!(!if_match_accepts("W/\"2\"", 3));
    }

    #[test]
    fn patch_descriptions_for_the_log() {
        let body = json!({"Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "replace", "value": {"active": true, "name.givenName": "A"}}
        ]});
        assert_eq!(
            describe_patch(&body),
            "replace active; replace {active,name.givenName}"
        );
    }
}
