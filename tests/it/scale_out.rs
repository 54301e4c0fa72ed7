//! Two Rollcall servers on one database, as when several processes share
//! PostgreSQL (SQLite is checked too: two processes on one file). Nothing that
//! matters lives in one process: codes, tokens, sessions and uniqueness hold across.

use crate::support::TestApp;
use crate::support::oauth::{authorize_query, code_for, exchange, register, revoke};
use crate::support::scim::okta_create;

#[tokio::test]
async fn two_servers_share_codes_tokens_sessions_and_uniqueness() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(&a.database_url, |_| {}).await;
    let (email, password) = a.workspace("acme").await;
    crate::support::ops::set_scim(&a.db, "acme", true)
        .await
        .unwrap();
    let okta = register(&a, "Okta", false).await;

    // Authorize on A, redeem on B.
    let code = code_for(&a, &authorize_query(&okta.client_id, ""), &email, &password).await;
    let (status, tokens) = exchange(&b, &okta, &code, None).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // SCIM writes on both at once: uniqueness holds across processes.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (client, url, token) = (app.api(), app.url("/scim/v2/Users"), access.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&okta_create("shared@acme.test", &format!("e{i}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );

    // Revocation on A is refused at once on A, and on B as soon as PostgreSQL's
    // notification reaches it (each process keeps the tokens it found live; on
    // SQLite nothing is kept, and B refuses at once too).
    let on_b = |token: String| {
        let (client, url) = (b.api(), b.url("/scim/v2/Users"));
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(on_b(access.clone()).await, 200);
    assert_eq!(revoke(&a, &okta, &access).await, 200);
    assert_eq!(crate::support::oauth::scim_status(&a, &access).await, 401);
    crate::support::oauth::refused_soon(&b, &access).await;

    // A session started on A works on B (same workspace host name, shared store).
    let cookie = crate::foundation::signed_in_cookie(&a, "acme", &email, &password).await;
    let members_on_b = b
        .api()
        .get(b.ws_url("acme", "/members"))
        .header("cookie", format!("rollcall_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(members_on_b.status(), 200);
    b.stop().await;
    a.stop().await;
}

/// Deleting a workspace client on one server ends its tokens there at once, and on
/// the other as soon as PostgreSQL's notification reaches it.
#[tokio::test]
async fn a_deleted_clients_tokens_end_on_every_server() {
    use crate::support::oauth::{cc_token, scim_status};
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(&a.database_url, |_| {}).await;
    a.workspace("acme").await;
    crate::support::ops::set_scim(&a.db, "acme", true)
        .await
        .unwrap();
    let script = crate::support::ops::script_client(&a.db, "acme", "Script").await;
    // Issued by A, used on B, and the other way round.
    let from_a = cc_token(&a, &script).await;
    let from_b = cc_token(&b, &script).await;
    for token in [&from_a, &from_b] {
        assert_eq!(scim_status(&a, token).await, 200);
        assert_eq!(scim_status(&b, token).await, 200);
    }
    crate::support::ops::delete_client(&a.db, &script.client_id)
        .await
        .unwrap();
    for token in [&from_a, &from_b] {
        assert_eq!(scim_status(&a, token).await, 401);
        crate::support::oauth::refused_soon(&b, token).await;
    }
    let (status, _, body) = crate::support::oauth::client_credentials(
        &b,
        &script.client_id,
        script.client_secret.as_deref().unwrap(),
        true,
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    b.stop().await;
    a.stop().await;
}
