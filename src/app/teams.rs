//! Teams: the SCIM Groups API (for identity providers, while the workspace turns
//! "Manage teams with SCIM" on) and the admin pages' team edits. Every change is in
//! the provisioning activity log: who, which team, which members were added or
//! removed.

use super::provisioning::Principal;
use crate::scim::error::ScimError;
use crate::scim::filter::Filter;
use crate::scim::group::{self, GroupPatch, GroupView, MembersOp};
use crate::store::members::{self, Member};
use crate::store::teams::{self, Changed, Edit, MemberChange, NewTeam, Refused, Team, TeamMember};
use crate::store::workspaces::Workspace;
use crate::store::{Db, StoreError, activity};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// SCIM
// ---------------------------------------------------------------------------

/// 403 unless the workspace manages its teams with SCIM.
pub fn check_enabled(who: &Principal) -> Result<(), ScimError> {
    if who.workspace.scim_teams {
        return Ok(());
    }
    let sub = &who.workspace.subdomain;
    Err(ScimError::forbidden(format!(
        "Teams are not managed with SCIM in workspace '{sub}'. A workspace admin can turn on \
         \"Manage teams with SCIM\" in Settings > SSO and SCIM (or run `rollcall workspace \
         scim-teams {sub} on`)."
    )))
}

fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(what) => ScimError::uniqueness(what),
        StoreError::NotFound => ScimError::not_found("no such Group"),
        StoreError::InvalidFilter(detail) => ScimError::invalid_filter(detail),
        other => {
            tracing::error!(error = %other, "SCIM storage error");
            ScimError::new(500, None, "internal error")
        }
    }
}

fn unknown_members(ids: &[Uuid]) -> ScimError {
    let listed: Vec<String> = ids.iter().take(5).map(Uuid::to_string).collect();
    let more = if ids.len() > 5 {
        format!(" and {} more", ids.len() - 5)
    } else {
        String::new()
    };
    ScimError::invalid_value(format!(
        "members: {}{more} {} not a member of this workspace; nothing was changed",
        listed.join(", "),
        if ids.len() == 1 { "is" } else { "are" }
    ))
}

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id).map_err(|_| {
        ScimError::not_found(format!(
            "no Group with id '{}'",
            id.chars().take(80).collect::<String>()
        ))
    })
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!(
        "no Group with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// The Group's facts for rendering.
pub fn view<'a>(team: &'a Team, id: &'a str, base: &'a str) -> GroupView<'a> {
    GroupView {
        id,
        display_name: &team.display_name,
        external_id: team.external_id.as_deref(),
        created: team.created_at,
        last_modified: team.updated_at,
        version: team.version,
        base,
    }
}

/// A `members` entry for one member of a team (`base`: the SCIM base URL).
pub fn member_entry(base: &str, m: &TeamMember) -> Value {
    let display = m.display_name.as_deref().unwrap_or(&m.user_name);
    group::member_entry(base, &m.id.to_string(), display)
}

pub async fn get(db: &Db, who: &Principal, id: &str) -> Result<Team, ScimError> {
    check_enabled(who)?;
    let uuid = parse_id(id)?;
    teams::by_id(db, who.workspace.id, uuid)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(id))
}

/// One page of a team's members, in id order after `after`.
pub async fn members_page(
    db: &Db,
    team: &Team,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TeamMember>, ScimError> {
    teams::members_page(db, team.workspace_id, team.id, after, limit)
        .await
        .map_err(store_error)
}

pub struct ListRequest<'a> {
    pub filter: Option<&'a Filter>,
    pub by_name: bool,
    pub descending: bool,
    /// 1-based, at least 1.
    pub start_index: i64,
    pub count: i64,
}

pub async fn list(
    db: &Db,
    who: &Principal,
    req: &ListRequest<'_>,
) -> Result<(i64, Vec<Team>), ScimError> {
    check_enabled(who)?;
    let search = teams::Search {
        filter: req.filter,
        by_name: req.by_name,
        descending: req.descending,
        offset: req.start_index - 1,
        limit: req.count,
    };
    teams::search(db, who.workspace.id, &search)
        .await
        .map_err(store_error)
}

/// Record a team change (or a refused one) in the activity log; never fails the
/// change itself.
async fn log(
    db: &Db,
    workspace_id: i64,
    actor: &str,
    operation: &'static str,
    team: Option<(Uuid, &str)>,
    result: Result<&str, &ScimError>,
) {
    let (status, detail) = match result {
        Ok(d) => (200, d.to_owned()),
        Err(e) => (e.status, e.detail.clone()),
    };
    if operation.starts_with("group") {
        crate::metrics::scim_write(operation, status);
    }
    let entry = activity::NewActivity {
        workspace_id,
        actor,
        operation,
        member_id: None,
        user_name: None,
        team_id: team.map(|t| t.0),
        team_name: team.map(|t| t.1),
        status,
        detail: &detail,
    };
    if let Err(e) = activity::record(db, &entry).await {
        tracing::warn!(error = %e, "could not record provisioning activity");
    }
}

/// "added 2 (ada@…, bob@…); removed 1 (cy@…)": what a change did, for the log.
fn describe(what: &str, changed: &Changed, patch: Option<&GroupPatch>) -> String {
    let names: HashMap<Uuid, &str> = changed
        .named
        .iter()
        .map(|n| (n.id, n.user_name.as_str()))
        .collect();
    let listed = |ids: &mut dyn Iterator<Item = &Uuid>| -> String {
        let mut shown: Vec<&str> = Vec::new();
        let mut n = 0;
        for id in ids {
            n += 1;
            if shown.len() < 10 {
                shown.push(names.get(id).copied().unwrap_or("?"));
            }
        }
        let more = if n > shown.len() {
            format!(", {} more", n - shown.len())
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    let mut parts = vec![what.to_owned()];
    if let Some(p) = patch {
        if let Some(name) = &p.display_name {
            parts.push(format!("displayName '{name}'"));
        }
        let mut adds = p.members.iter().flat_map(|op| match op {
            MembersOp::Add(ids) => ids.as_slice(),
            _ => &[],
        });
        let mut removes = p.members.iter().flat_map(|op| match op {
            MembersOp::Remove(ids) => ids.as_slice(),
            _ => &[],
        });
        if p.members.contains(&MembersOp::RemoveAll) {
            parts.push("removed every member".into());
        }
        let added = listed(&mut adds);
        if !added.is_empty() {
            parts.push(format!("add {added}"));
        }
        let removed = listed(&mut removes);
        if !removed.is_empty() {
            parts.push(format!("remove {removed}"));
        }
    }
    parts.push(format!(
        "{} membership(s) added, {} removed; {} member(s) now",
        changed.added, changed.removed, changed.team.member_count
    ));
    parts.join("; ")
}

pub async fn create(db: &Db, who: &Principal, body: &Value) -> Result<Team, ScimError> {
    check_enabled(who)?;
    let result = async {
        let input = group::parse_group(body)?;
        let new = NewTeam {
            display_name: input.display_name,
            external_id: input.external_id,
            scim_managed: true,
            members: input.members,
        };
        match teams::create(db, who.workspace.id, &new).await {
            Ok(Ok(team)) => Ok(team),
            Ok(Err(Refused::UnknownMembers(ids))) => Err(unknown_members(&ids)),
            Ok(Err(Refused::Caller(never))) => match never {},
            Err(e) => Err(store_error(e)),
        }
    }
    .await;
    match &result {
        Ok(t) => {
            let detail = format!("created with {} member(s)", t.member_count);
            log(
                db,
                who.workspace.id,
                &who.actor,
                "group create",
                Some((t.id, &t.display_name)),
                Ok(&detail),
            )
            .await
        }
        Err(e) => {
            log(
                db,
                who.workspace.id,
                &who.actor,
                "group create",
                None,
                Err(e),
            )
            .await
        }
    }
    result
}

/// The edit a Group PATCH makes.
fn edit_of(p: &GroupPatch) -> Edit {
    Edit {
        display_name: p.display_name.clone(),
        external_id: p.external_id.clone(),
        scim_managed: Some(true),
        members: p
            .members
            .iter()
            .map(|op| match op {
                MembersOp::Add(ids) => MemberChange::Add(ids.clone()),
                MembersOp::Remove(ids) => MemberChange::Remove(ids.clone()),
                MembersOp::RemoveAll => MemberChange::RemoveAll,
            })
            .collect(),
    }
}

/// Apply `edit` to the team read under the write lock, after `If-Match`.
async fn modify(
    db: &Db,
    who: &Principal,
    id: &str,
    if_match: Option<&str>,
    edit: Edit,
) -> Result<Changed, ScimError> {
    let uuid = parse_id(id)?;
    let if_match = if_match.map(str::to_owned);
    let outcome = teams::modify(db, who.workspace.id, uuid, move |current| {
        match if_match.as_deref() {
            Some(h) if !super::provisioning::if_match_accepts(h, current.version) => {
                Err(ScimError::precondition_failed(format!(
                    "If-Match {h} does not match the current version {}",
                    crate::scim::resource::etag(current.version)
                )))
            }
            _ => Ok(edit),
        }
    })
    .await;
    match outcome {
        Ok(Ok(changed)) => Ok(changed),
        Ok(Err(Refused::UnknownMembers(ids))) => Err(unknown_members(&ids)),
        Ok(Err(Refused::Caller(e))) => Err(e),
        Err(StoreError::NotFound) => Err(not_found(id)),
        Err(e) => Err(store_error(e)),
    }
}

async fn log_change(
    db: &Db,
    who: &Principal,
    operation: &'static str,
    id: &str,
    result: &Result<Changed, ScimError>,
    patch: Option<&GroupPatch>,
) {
    match result {
        Ok(c) => {
            let what = if operation == "group replace" {
                "replaced"
            } else {
                "patched"
            };
            let detail = describe(what, c, patch);
            log(
                db,
                who.workspace.id,
                &who.actor,
                operation,
                Some((c.team.id, &c.team.display_name)),
                Ok(&detail),
            )
            .await
        }
        // Unknown ids are the client's business, not worth an activity line.
        Err(e) if e.status == 404 => crate::metrics::scim_write(operation, 404),
        Err(e) => {
            let team = Uuid::parse_str(id).ok();
            let entry_team = team.map(|t| (t, ""));
            log(
                db,
                who.workspace.id,
                &who.actor,
                operation,
                entry_team,
                Err(e),
            )
            .await
        }
    }
}

/// PUT: the Group's name, externalId and member list become those sent.
pub async fn replace(
    db: &Db,
    who: &Principal,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Team, ScimError> {
    check_enabled(who)?;
    let result = async {
        let input = group::parse_group(body)?;
        let as_patch = GroupPatch {
            display_name: Some(input.display_name),
            external_id: Some(input.external_id),
            members: vec![MembersOp::RemoveAll, MembersOp::Add(input.members)],
        };
        modify(db, who, id, if_match, edit_of(&as_patch)).await
    }
    .await;
    log_change(db, who, "group replace", id, &result, None).await;
    result.map(|c| c.team)
}

/// PATCH: all or nothing, on the team locked for the write, so concurrent
/// membership changes queue and none is lost.
pub async fn patch(
    db: &Db,
    who: &Principal,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Team, ScimError> {
    check_enabled(who)?;
    let parsed = group::parse_patch(body);
    let result = match &parsed {
        Ok(p) => modify(db, who, id, if_match, edit_of(p)).await,
        Err(e) => Err(e.clone()),
    };
    log_change(db, who, "group patch", id, &result, parsed.as_ref().ok()).await;
    result.map(|c| c.team)
}

/// DELETE: the team and its memberships go; its members stay.
pub async fn delete(db: &Db, who: &Principal, id: &str) -> Result<(), ScimError> {
    check_enabled(who)?;
    let uuid = parse_id(id)?;
    match teams::delete(db, who.workspace.id, uuid, false).await {
        Ok(Some(t)) => {
            let detail = format!("deleted; it had {} member(s)", t.member_count);
            log(
                db,
                who.workspace.id,
                &who.actor,
                "group delete",
                Some((t.id, &t.display_name)),
                Ok(&detail),
            )
            .await;
            Ok(())
        }
        Ok(None) => {
            crate::metrics::scim_write("group delete", 404);
            Err(not_found(id))
        }
        Err(e) => Err(store_error(e)),
    }
}

// ---------------------------------------------------------------------------
// The admin pages
// ---------------------------------------------------------------------------

/// Why a team edit on the pages was refused. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("no such team")]
    NotFound,
    #[error("this team is managed by your identity provider; change it there")]
    Managed,
    #[error("{0}")]
    Invalid(String),
    #[error("a team called '{0}' already exists")]
    Taken(String),
    #[error("no member '{0}' in this workspace")]
    NoMember(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TeamError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => TeamError::NotFound,
            other => TeamError::Store(other),
        }
    }
}

/// May the pages change this team? Not while the identity provider manages it.
pub fn may_edit(workspace: &Workspace, team: &Team) -> bool {
    !(workspace.scim_teams && team.scim_managed)
}

fn actor(admin: &Member) -> String {
    format!("admin:{}", admin.user_name)
}

fn checked_name(name: &str) -> Result<String, TeamError> {
    let name = name.trim();
    group::check_name(name)
        .map_err(|e| TeamError::Invalid(e.replace("displayName", "The name")))?;
    Ok(name.to_owned())
}

pub async fn create_team(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    name: &str,
) -> Result<Team, TeamError> {
    let name = checked_name(name)?;
    let new = NewTeam {
        display_name: name.clone(),
        external_id: None,
        scim_managed: false,
        members: Vec::new(),
    };
    let team = match teams::create(db, ws.id, &new).await {
        Ok(Ok(t)) => t,
        Ok(Err(Refused::UnknownMembers(_))) => return Err(TeamError::NotFound),
        Ok(Err(Refused::Caller(never))) => match never {},
        Err(StoreError::Conflict(_)) => return Err(TeamError::Taken(name)),
        Err(e) => return Err(e.into()),
    };
    log(
        db,
        ws.id,
        &actor(admin),
        "team create",
        Some((team.id, &team.display_name)),
        Ok("created"),
    )
    .await;
    Ok(team)
}

/// Change a team from the pages: refused for a team the identity provider manages.
async fn edit_team(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    id: Uuid,
    operation: &'static str,
    edit: Edit,
) -> Result<Changed, TeamError> {
    let scim_teams = ws.scim_teams;
    let new_name = edit.display_name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = teams::modify(db, ws.id, id, move |current| {
        // The name before a rename, for the log.
        let _ = tx.send(current.display_name.clone());
        if scim_teams && current.scim_managed {
            Err(TeamError::Managed)
        } else {
            Ok(edit)
        }
    })
    .await;
    let old_name = rx.try_recv().unwrap_or_default();
    let changed = match outcome {
        Ok(Ok(c)) => c,
        Ok(Err(Refused::Caller(e))) => return Err(e),
        Ok(Err(Refused::UnknownMembers(_))) => return Err(TeamError::NoMember("?".into())),
        Err(StoreError::Conflict(_)) => return Err(TeamError::Taken(new_name.unwrap_or_default())),
        Err(e) => return Err(e.into()),
    };
    let now = changed.team.member_count;
    let named = changed.named.first();
    let who = named.map_or("?", |n| n.user_name.as_str());
    let detail = match operation {
        "team add" if changed.added == 0 => format!("{who} was already a member"),
        "team add" => format!("added {who}; {now} member(s) now"),
        "team remove" if changed.removed == 0 => format!("{who} was not a member"),
        "team remove" => format!("removed {who}; {now} member(s) now"),
        "team rename" => format!(
            "renamed from '{old_name}' to '{}'",
            changed.team.display_name
        ),
        _ => describe(operation, &changed, None),
    };
    let entry = activity::NewActivity {
        workspace_id: ws.id,
        actor: &actor(admin),
        operation,
        member_id: named.map(|n| n.id),
        user_name: named.map(|n| n.user_name.as_str()),
        team_id: Some(changed.team.id),
        team_name: Some(&changed.team.display_name),
        status: 200,
        detail: &detail,
    };
    if let Err(e) = activity::record(db, &entry).await {
        tracing::warn!(error = %e, "could not record provisioning activity");
    }
    Ok(changed)
}

pub async fn rename_team(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    id: Uuid,
    name: &str,
) -> Result<Team, TeamError> {
    let name = checked_name(name)?;
    let edit = Edit {
        display_name: Some(name),
        ..Edit::default()
    };
    Ok(edit_team(db, ws, admin, id, "team rename", edit)
        .await?
        .team)
}

/// Add a member, by userName (their email), to a team.
pub async fn add_member(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    id: Uuid,
    user_name: &str,
) -> Result<Team, TeamError> {
    let user_name = user_name.trim();
    let Some((member, _)) = members::credentials(db, ws.id, user_name).await? else {
        return Err(TeamError::NoMember(user_name.chars().take(100).collect()));
    };
    let edit = Edit {
        members: vec![MemberChange::Add(vec![member.id])],
        ..Edit::default()
    };
    Ok(edit_team(db, ws, admin, id, "team add", edit).await?.team)
}

pub async fn remove_member(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    id: Uuid,
    member_id: Uuid,
) -> Result<Team, TeamError> {
    let edit = Edit {
        members: vec![MemberChange::Remove(vec![member_id])],
        ..Edit::default()
    };
    match edit_team(db, ws, admin, id, "team remove", edit).await {
        Err(TeamError::NoMember(_)) => Err(TeamError::NoMember(member_id.to_string())),
        other => Ok(other?.team),
    }
}

pub async fn delete_team(
    db: &Db,
    ws: &Workspace,
    admin: &Member,
    id: Uuid,
) -> Result<Team, TeamError> {
    let team = teams::by_id(db, ws.id, id)
        .await?
        .ok_or(TeamError::NotFound)?;
    if !may_edit(ws, &team) {
        return Err(TeamError::Managed);
    }
    let Some(team) = teams::delete(db, ws.id, id, ws.scim_teams).await? else {
        // Gone, or SCIM took it over since it was read.
        return match teams::by_id(db, ws.id, id).await? {
            Some(_) => Err(TeamError::Managed),
            None => Err(TeamError::NotFound),
        };
    };
    let detail = format!("deleted; it had {} member(s)", team.member_count);
    log(
        db,
        ws.id,
        &actor(admin),
        "team delete",
        Some((team.id, &team.display_name)),
        Ok(&detail),
    )
    .await;
    Ok(team)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{admin, provisioning, testing};
    use serde_json::json;

    async fn setup() -> (Db, admin::CreatedWorkspace, Principal) {
        let db = testing::db().await;
        let acme = testing::workspace(&db, "acme").await;
        let token = admin::create_api_token(&db, &acme.workspace, "IdP", "test")
            .await
            .unwrap();
        let who = provisioning::authenticate(&db, &token)
            .await
            .unwrap()
            .unwrap();
        (db, acme, who)
    }

    async fn user(db: &Db, who: &Principal, name: &str) -> Uuid {
        provisioning::create(db, who, &json!({"userName": name}))
            .await
            .unwrap()
            .id
    }

    #[tokio::test]
    async fn groups_need_the_switch() {
        let (db, acme, who) = setup().await;
        let refused = create(&db, &who, &json!({"displayName": "Eng"}))
            .await
            .unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(
            refused.detail.contains("Settings > SSO and SCIM"),
            "{}",
            refused.detail
        );
        admin::set_scim_teams(&db, &acme.workspace, true)
            .await
            .unwrap();
        let who = Principal {
            workspace: crate::store::workspaces::by_id(&db, acme.workspace.id)
                .await
                .unwrap()
                .unwrap(),
            ..who
        };
        create(&db, &who, &json!({"displayName": "Eng"}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_patch_naming_a_stranger_changes_nothing() {
        let (db, acme, mut who) = setup().await;
        admin::set_scim_teams(&db, &acme.workspace, true)
            .await
            .unwrap();
        who.workspace.scim_teams = true;
        let ada = user(&db, &who, "ada@acme.test").await;
        let bob = user(&db, &who, "bob@acme.test").await;
        let team = create(
            &db,
            &who,
            &json!({"displayName": "Eng", "members": [{"value": ada.to_string()}]}),
        )
        .await
        .unwrap();
        assert_eq!(team.member_count, 1);
        let stranger = Uuid::now_v7();
        let body = json!({"Operations": [
            {"op": "add", "path": "members", "value": [{"value": bob.to_string()}]},
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": stranger.to_string()}]},
        ]});
        let err = patch(&db, &who, &team.id.to_string(), &body, None)
            .await
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.detail.contains(&stranger.to_string()), "{}", err.detail);
        let page = teams::members_page(&db, acme.workspace.id, team.id, None, 10)
            .await
            .unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [ada]);
        assert_eq!(
            get(&db, &who, &team.id.to_string()).await.unwrap().version,
            team.version
        );
    }

    #[tokio::test]
    async fn counts_follow_adds_removes_and_repeats() {
        let (db, acme, mut who) = setup().await;
        admin::set_scim_teams(&db, &acme.workspace, true)
            .await
            .unwrap();
        who.workspace.scim_teams = true;
        let ids = [
            user(&db, &who, "a@acme.test").await,
            user(&db, &who, "b@acme.test").await,
            user(&db, &who, "c@acme.test").await,
        ];
        let team = create(&db, &who, &json!({"displayName": "All"}))
            .await
            .unwrap();
        let id = team.id.to_string();
        let add = |ids: &[Uuid]| {
            json!({"Operations": [{"op": "Add", "path": "members",
                "value": ids.iter().map(|i| json!({"value": i.to_string()})).collect::<Vec<_>>()}]})
        };
        let t = patch(&db, &who, &id, &add(&ids), None).await.unwrap();
        assert_eq!(t.member_count, 3);
        // Adding members already there changes nothing, not even the version.
        let again = patch(&db, &who, &id, &add(&ids[..2]), None).await.unwrap();
        assert_eq!((again.member_count, again.version), (3, t.version));
        let remove = json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": ids[0].to_string()}]}]});
        let t = patch(&db, &who, &id, &remove, None).await.unwrap();
        assert_eq!(t.member_count, 2);
        let listed: Vec<Uuid> = teams::members_page(&db, acme.workspace.id, team.id, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(listed, ids[1..]);
        // A user's groups name the team.
        let teams_of = |id| {
            let db = &db;
            async move {
                members::by_id_with_teams(db, acme.workspace.id, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .teams
            }
        };
        assert!(teams_of(ids[0]).await.is_empty());
        assert_eq!(teams_of(ids[1]).await, [(team.id, "All".to_owned())]);
        // The log names who and what.
        let log = activity::recent_of_team(&db, acme.workspace.id, team.id, 10)
            .await
            .unwrap();
        assert!(
            log.iter().any(|a| a.detail.contains("remove a@acme.test")),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn pages_cannot_change_what_the_idp_manages() {
        let (db, acme, mut who) = setup().await;
        let admin_member = acme.admin.clone();
        // Off: the pages manage teams, SCIM-made ones included.
        let mine = create_team(&db, &acme.workspace, &admin_member, "Design")
            .await
            .unwrap();
        assert!(matches!(
            create_team(&db, &acme.workspace, &admin_member, "DESIGN").await,
            Err(TeamError::Taken(_))
        ));
        admin::set_scim_teams(&db, &acme.workspace, true)
            .await
            .unwrap();
        who.workspace.scim_teams = true;
        let theirs = create(&db, &who, &json!({"displayName": "Eng"}))
            .await
            .unwrap();
        let ws = crate::store::workspaces::by_id(&db, acme.workspace.id)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            rename_team(&db, &ws, &admin_member, theirs.id, "X").await,
            Err(TeamError::Managed)
        ));
        assert!(matches!(
            delete_team(&db, &ws, &admin_member, theirs.id).await,
            Err(TeamError::Managed)
        ));
        // A team made on the pages stays theirs to edit.
        add_member(&db, &ws, &admin_member, mine.id, &admin_member.user_name)
            .await
            .unwrap();
        assert!(matches!(
            add_member(&db, &ws, &admin_member, mine.id, "nobody@acme.test").await,
            Err(TeamError::NoMember(_))
        ));
        let renamed = rename_team(&db, &ws, &admin_member, mine.id, " Product ")
            .await
            .unwrap();
        assert_eq!(
            (renamed.display_name.as_str(), renamed.member_count),
            ("Product", 1)
        );
        delete_team(&db, &ws, &admin_member, mine.id).await.unwrap();
        // Its member stays.
        assert!(
            members::by_id(&db, ws.id, admin_member.id)
                .await
                .unwrap()
                .is_some()
        );
    }
}
