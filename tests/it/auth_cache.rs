//! On PostgreSQL each process keeps the bearer tokens it found live
//! (`store::auth_cache`) and forgets them when PostgreSQL's triggers say something
//! that can end a token's access changed, wherever the change came from. These
//! tests make the change behind the server's back (a connection of their own, as
//! another process or an operator at psql would) and require the server to refuse
//! the token soon after; and they take the listener away to require that nothing
//! kept is used while a notification could be missed. PostgreSQL only; on SQLite
//! (no cache) they return at once.

use crate::support::TestApp;
use crate::support::oauth::scim_status;
use sqlx::Connection;
use std::time::{Duration, Instant};

/// A server on PostgreSQL with a workspace whose SCIM is on, a workspace token,
/// and the admin's password (the admin is admin@acme.test).
async fn server() -> Option<(TestApp, String, String)> {
    let app = TestApp::spawn().await;
    if !app.database_url.starts_with("postgres") {
        app.stop().await;
        return None;
    }
    let (_, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "IdP", "test")
        .await
        .unwrap();
    wait_until(|| app.db.auth_cache_on(), "the listener never connected").await;
    Some((app, token, password))
}

async fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}");
}

/// The token works, and this process answers it from what it keeps.
async fn used(app: &TestApp, token: &str) {
    let hits = app.db.auth_cache_hits();
    for _ in 0..3 {
        assert_eq!(scim_status(app, token).await, 200);
    }
    assert!(
        app.db.auth_cache_hits() >= hits + 2,
        "the token was not kept: looked up every time"
    );
}

/// Run `statement` on a connection of the test's own (not the server's).
async fn behind_its_back(url: &str, statements: &[&str]) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    for s in statements {
        sqlx::query(s).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

/// How long until the server refuses `token` (it must, within two seconds), and
/// then it keeps refusing.
async fn refused_after(app: &TestApp, token: &str) -> Duration {
    let start = Instant::now();
    loop {
        if scim_status(app, token).await == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the server still accepts a token revoked in the database"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    for _ in 0..5 {
        assert_eq!(scim_status(app, token).await, 401);
    }
    took
}

#[tokio::test]
async fn a_token_revoked_behind_the_servers_back_is_refused_within_moments() {
    let Some((app, token, _)) = server().await else {
        return;
    };
    used(&app, &token).await;
    behind_its_back(
        &app.database_url,
        &["UPDATE api_tokens SET revoked_at = now()"],
    )
    .await;
    let took = refused_after(&app, &token).await;
    eprintln!("refused {took:?} after the revocation committed elsewhere");
    app.stop().await;
}

#[tokio::test]
async fn a_workspace_change_behind_the_servers_back_is_seen_within_moments() {
    let Some((app, token, _)) = server().await else {
        return;
    };
    assert_eq!(scim_status(&app, &token).await, 200);
    behind_its_back(
        &app.database_url,
        &["UPDATE workspaces SET scim_enabled = FALSE"],
    )
    .await;
    let start = Instant::now();
    while scim_status(&app, &token).await == 200 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "SCIM switched off in the database, still served"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    app.stop().await;
}

/// Notifications sent while the listener is gone are lost: the server must not
/// use what it kept from before, and must start empty when it listens again.
#[tokio::test]
async fn while_the_listener_is_gone_nothing_kept_is_used() {
    let Some((app, token, _)) = server().await else {
        return;
    };
    used(&app, &token).await;
    behind_its_back(
        &app.database_url,
        &["SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
           WHERE datname = current_database() AND application_name = 'rollcall-auth-listener'"],
    )
    .await;
    wait_until(
        || !app.db.auth_cache_on(),
        "the lost listener went unnoticed",
    )
    .await;
    // Revoked with the triggers off: no notification at all, as if it was sent
    // while nobody listened.
    behind_its_back(
        &app.database_url,
        &[
            "SET session_replication_role = replica",
            "UPDATE api_tokens SET revoked_at = now()",
        ],
    )
    .await;
    assert_eq!(scim_status(&app, &token).await, 401);
    // Listening again, and still refused (it started empty).
    wait_until(|| app.db.auth_cache_on(), "the listener never came back").await;
    assert_eq!(scim_status(&app, &token).await, 401);
    app.stop().await;
}

/// What the serving process changes itself it refuses at once, before any
/// notification (the server is told to ignore them here): each store function that
/// can end a token's access forgets what the process keeps.
#[tokio::test]
async fn what_this_process_changes_it_refuses_at_once() {
    use crate::support::oauth::{cc_token, register, revoke, tokens_for};
    use crate::support::ops;
    let Some((app, api, password)) = server().await else {
        return;
    };
    app.db.deafen_auth_cache(true);
    let ws = ops::workspace(&app.db, "acme").await.unwrap();

    // A workspace token revoked.
    used(&app, &api).await;
    let id = rollcall::store::tokens::list(&app.db, ws.id).await.unwrap()[0].id;
    rollcall::app::admin::revoke_api_token(&app.db, &ws, id)
        .await
        .unwrap();
    assert_eq!(scim_status(&app, &api).await, 401, "revoked API token");

    // An access token revoked (RFC 7009).
    let email = "admin@acme.test";
    let okta = register(&app, "Okta", false).await;
    let access = tokens_for(&app, &okta, email, &password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    used(&app, &access).await;
    assert_eq!(revoke(&app, &okta, &access).await, 200);
    assert_eq!(
        scim_status(&app, &access).await,
        401,
        "revoked access token"
    );

    // A grant ended by an admin on the page.
    let access = tokens_for(&app, &okta, email, &password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    used(&app, &access).await;
    let grants = rollcall::store::oauth::list_grants(&app.db, ws.id)
        .await
        .unwrap();
    for g in grants {
        rollcall::app::admin::revoke_grant(&app.db, &ws, g.id)
            .await
            .unwrap();
    }
    assert_eq!(scim_status(&app, &access).await, 401, "revoked grant");

    // A client's secret rotated with no overlap, and a client deleted.
    let script = ops::script_client(&app.db, "acme", "Script").await;
    let cc = cc_token(&app, &script).await;
    used(&app, &cc).await;
    rollcall::app::admin::rotate_client_secret(
        &app.db,
        rollcall::store::oauth::ClientScope::Workspace(ws.id),
        &script.client_id,
        Duration::ZERO,
        "test",
    )
    .await
    .unwrap();
    assert_eq!(scim_status(&app, &cc).await, 401, "rotated secret");
    let script = ops::script_client(&app.db, "acme", "Script 2").await;
    let cc = cc_token(&app, &script).await;
    used(&app, &cc).await;
    ops::delete_client(&app.db, &script.client_id)
        .await
        .unwrap();
    assert_eq!(scim_status(&app, &cc).await, 401, "deleted client");

    // The authorizing admin demoted through SCIM (by another token).
    let access = tokens_for(&app, &okta, email, &password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    used(&app, &access).await;
    let api = ops::create_api_token(&app.db, "acme", "IdP 2", "test")
        .await
        .unwrap();
    let admin = rollcall::store::members::credentials(&app.db, ws.id, email)
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let demoted = app
        .api()
        .patch(app.url(&format!("/scim/v2/Users/{admin}")))
        .bearer_auth(&api)
        .header("content-type", "application/scim+json")
        .body(
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "roles",
                                "value": [{"value": "viewer", "primary": true}]}],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(demoted.status(), 200);
    assert_eq!(scim_status(&app, &access).await, 401, "demoted authorizer");

    // SCIM switched off for the workspace.
    used(&app, &api).await;
    ops::set_scim(&app.db, "acme", false).await.unwrap();
    assert_ne!(scim_status(&app, &api).await, 200, "SCIM switched off");
    app.stop().await;
}
