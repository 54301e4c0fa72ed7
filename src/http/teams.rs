//! The Teams pages: every signed-in member may look; admins create, rename and
//! delete teams and add and remove members, except on teams the identity provider
//! manages while "Manage teams with SCIM" is on.

use super::AppState;
use super::admin::{
    AdminPost, ERROR, NOTICE, NoFields, PAGE_SIZE, SOMETHING_WENT_WRONG, flash, is_admin, shell,
};
use super::extract::PageQuery;
use super::pages::{SignedIn, urlencode};
use super::views::*;
use crate::app::teams::{self as team_cases, TeamError, may_edit};
use crate::http::error::AppError;
use crate::store::teams::{self, Cursor, Team};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams", get(teams_page).post(create_team))
        .route("/teams/{id}", get(team_page))
        .route("/teams/{id}/rename", post(rename_team))
        .route("/teams/{id}/members", post(add_member))
        .route(
            "/teams/{id}/members/{member_id}/remove",
            post(remove_member),
        )
        .route("/teams/{id}/delete", post(delete_team))
}

fn no_such_team() -> AppError {
    AppError::NotFound("There is no such team in this workspace.".into())
}

fn parse_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| no_such_team())
}

async fn load_team(state: &AppState, me: &SignedIn, id: &str) -> Result<Team, AppError> {
    teams::by_id(&state.db, me.workspace.id, parse_id(id)?)
        .await?
        .ok_or_else(no_such_team)
}

#[derive(Deserialize)]
struct TeamsQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    before: Option<String>,
}

async fn teams_page(
    State(state): State<AppState>,
    me: SignedIn,
    PageQuery(query): PageQuery<TeamsQuery>,
) -> Result<TeamsPage, AppError> {
    let q = query.q.trim().to_owned();
    let backwards = query.after.is_none() && query.before.is_some();
    let cursor = match (&query.after, &query.before) {
        (Some(a), _) => Cursor::After(a),
        (None, Some(b)) => Cursor::Before(b),
        _ => Cursor::First,
    };
    // One extra row tells whether there is a further page.
    let mut rows = teams::browse(&state.db, me.workspace.id, &q, cursor, PAGE_SIZE + 1).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    if more {
        if backwards {
            rows.remove(0);
        } else {
            rows.pop();
        }
    }
    let link =
        |key: &str, value: &str| format!("/teams?q={}&{key}={}", urlencode(&q), urlencode(value));
    let has_prev = if backwards {
        more
    } else {
        query.after.is_some()
    };
    let has_next = backwards || more;
    let prev = rows
        .first()
        .filter(|_| has_prev)
        .map(|t| link("before", &t.display_name));
    let next = rows
        .last()
        .filter(|_| has_next)
        .map(|t| link("after", &t.display_name));
    Ok(TeamsPage {
        total: teams::count(&state.db, me.workspace.id).await?,
        teams: rows
            .into_iter()
            .map(|t| TeamRow {
                id: t.id.to_string(),
                managed: !may_edit(&me.workspace, &t),
                name: t.display_name,
                member_count: t.member_count,
            })
            .collect(),
        scim_teams: me.workspace.scim_teams,
        shell: shell(&me, "teams").await?,
        q,
        prev,
        next,
    })
}

#[derive(Deserialize)]
struct TeamQuery {
    after: Option<String>,
}

async fn team_page(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    PageQuery(query): PageQuery<TeamQuery>,
) -> Result<TeamPage, AppError> {
    let team = load_team(&state, &me, &id).await?;
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(a) => Some(
            Uuid::parse_str(a)
                .map_err(|_| AppError::BadRequest("That page of members does not exist.".into()))?,
        ),
    };
    let mut rows =
        teams::members_page(&state.db, me.workspace.id, team.id, after, PAGE_SIZE + 1).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    if more {
        rows.pop();
    }
    let next = rows
        .last()
        .filter(|_| more)
        .map(|m| format!("/teams/{}?after={}", team.id, m.id));
    let managed = !may_edit(&me.workspace, &team);
    Ok(TeamPage {
        id: team.id.to_string(),
        member_count: team.member_count,
        external_id: team.external_id.clone().unwrap_or_default(),
        editable: is_admin(&me) && !managed,
        managed,
        members: rows
            .into_iter()
            .map(|m| TeamMemberRow {
                id: m.id.to_string(),
                display_name: m.display_name.unwrap_or_default(),
                user_name: m.user_name,
                active: m.active,
            })
            .collect(),
        first: after.map(|_| format!("/teams/{}", team.id)),
        next,
        name: team.display_name,
        shell: shell(&me, "teams").await?,
    })
}

/// Report the outcome of a team edit on the next page: refusals are said as
/// they are; anything else (a database error) goes to the log, never the page.
async fn settle(
    me: &SignedIn,
    result: Result<Team, TeamError>,
    done: impl FnOnce(&Team) -> String,
    back: &str,
) -> Result<Redirect, AppError> {
    match result {
        Ok(team) => flash(&me.session, NOTICE, done(&team)).await,
        Err(TeamError::NotFound) => return Err(no_such_team()),
        Err(TeamError::Store(e)) => {
            tracing::error!(error = %e, "team edit failed");
            flash(&me.session, ERROR, SOMETHING_WENT_WRONG).await
        }
        Err(why) => flash(&me.session, ERROR, format!("Not saved: {why}.")).await,
    }
    Ok(Redirect::to(back))
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

async fn create_team(
    State(state): State<AppState>,
    AdminPost { me, form }: AdminPost<NameForm>,
) -> Result<Redirect, AppError> {
    match team_cases::create_team(&state.db, &me.workspace, &me.member, &form.name).await {
        Ok(team) => {
            flash(
                &me.session,
                NOTICE,
                format!("Team “{}” created.", team.display_name),
            )
            .await;
            Ok(Redirect::to(&format!("/teams/{}", team.id)))
        }
        Err(e) => settle(&me, Err(e), |_| String::new(), "/teams").await,
    }
}

async fn rename_team(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, form }: AdminPost<NameForm>,
) -> Result<Redirect, AppError> {
    let id = parse_id(&id)?;
    let result =
        team_cases::rename_team(&state.db, &me.workspace, &me.member, id, &form.name).await;
    let back = format!("/teams/{id}");
    settle(
        &me,
        result,
        |t| format!("Renamed to “{}”.", t.display_name),
        &back,
    )
    .await
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    email: String,
}

async fn add_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, form }: AdminPost<MemberForm>,
) -> Result<Redirect, AppError> {
    let id = parse_id(&id)?;
    let email = form.email.trim().to_owned();
    let result = team_cases::add_member(&state.db, &me.workspace, &me.member, id, &email).await;
    let back = format!("/teams/{id}");
    settle(
        &me,
        result,
        |t| {
            format!(
                "Added {email} to “{}”; it has {} member(s).",
                t.display_name, t.member_count
            )
        },
        &back,
    )
    .await
}

async fn remove_member(
    State(state): State<AppState>,
    Path((id, member_id)): Path<(String, String)>,
    AdminPost { me, .. }: AdminPost<NoFields>,
) -> Result<Redirect, AppError> {
    let id = parse_id(&id)?;
    let member_id = Uuid::parse_str(&member_id)
        .map_err(|_| AppError::NotFound("There is no such member in this team.".into()))?;
    let result =
        team_cases::remove_member(&state.db, &me.workspace, &me.member, id, member_id).await;
    let back = format!("/teams/{id}");
    settle(
        &me,
        result,
        |t| {
            format!(
                "Removed from “{}”; it has {} member(s).",
                t.display_name, t.member_count
            )
        },
        &back,
    )
    .await
}

#[derive(Deserialize)]
struct DeleteForm {
    confirm: Option<String>,
}

async fn delete_team(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminPost { me, form }: AdminPost<DeleteForm>,
) -> Result<Redirect, AppError> {
    let id = parse_id(&id)?;
    if form.confirm.as_deref() != Some("yes") {
        // Still a team (or not): say which before asking again.
        load_team(&state, &me, &id.to_string()).await?;
        flash(
            &me.session,
            ERROR,
            "Not deleted: tick “Yes, delete this team” to confirm.",
        )
        .await;
        return Ok(Redirect::to(&format!("/teams/{id}")));
    }
    match team_cases::delete_team(&state.db, &me.workspace, &me.member, id).await {
        Ok(team) => {
            flash(
                &me.session,
                NOTICE,
                format!("Team “{}” deleted.", team.display_name),
            )
            .await;
            Ok(Redirect::to("/teams"))
        }
        Err(e) => settle(&me, Err(e), |_| String::new(), &format!("/teams/{id}")).await,
    }
}
