//! Tenant isolation, swept over every SCIM and OAuth endpoint and every workspace
//! admin page. Two workspaces, acme (A) and globex (B), each with members, a
//! workspace API token and an OAuth grant made through the real authorize flow by
//! the same global client (Okta serves every workspace with one client id).
//!
//! The rules these tests pin down:
//! - SCIM is served on the app host only (`<base>/scim/v2`); the bearer token alone
//!   names the workspace. `/scim/v2` on any workspace host is the workspace site's
//!   404 page, whichever workspace the token belongs to.
//! - A token of A never reads, counts, changes or learns of B's members: B's ids
//!   answer 404 (DELETE 405, exactly as for A's own ids), filters on B's values find
//!   nothing, and B's userName / externalId can be created in A (uniqueness is per
//!   workspace) without touching B.
//! - Introspection and revocation are per client, not per workspace: the client a
//!   token was issued to sees it (`workspace` names its subdomain) and may revoke it,
//!   whatever the workspace; any other client learns `{"active": false}` and revokes
//!   nothing.
//! - Codes and refresh tokens carry their workspace: tokens minted from A's grant
//!   only ever act for A.
//! - A session belongs to the workspace it signed in to: on B's host every page and
//!   every form answers with a redirect to sign in, and nothing of B changes; on A's
//!   host, B's ids (members, tokens, grants, OAuth clients) are not found.
//! - A workspace client (each side has one, with a client-credentials token) acts
//!   for its own workspace only: its token is swept like the others, and it cannot
//!   authorize into the other workspace.

use crate::support::oauth::{authorize_query, code_for, exchange, register, revoke};
use crate::support::ops::{self, CreatedClient};
use crate::support::scim::{Answer, answer, okta_create};
use crate::support::{TestApp, assert_scim_error, enc, form_value, location, s, sign_in};
use reqwest::{Method, StatusCode};
use rollcall::store::{activity, members, oauth as grants, sso, tokens};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const REDIRECT: &str = "http://localhost:9999/callback";

/// One workspace and what it holds.
struct Side {
    sub: &'static str,
    ws_id: i64,
    email: String,
    password: String,
    admin_id: String,
    /// The workspace API token.
    api: String,
    /// Okta's tokens for this workspace.
    access: String,
    refresh: String,
    /// The workspace's own OAuth client (code and client credentials), and a
    /// client-credentials token of it.
    own: CreatedClient,
    own_access: String,
    /// Members created through SCIM: (id, userName, externalId).
    people: Vec<(String, String, String)>,
}

impl Side {
    fn user_names(&self) -> BTreeSet<String> {
        std::iter::once(self.email.clone())
            .chain(self.people.iter().map(|p| p.1.clone()))
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        std::iter::once(self.admin_id.clone())
            .chain(self.people.iter().map(|p| p.0.clone()))
            .collect()
    }
}

struct World {
    app: TestApp,
    okta: CreatedClient,
    a: Side,
    b: Side,
}

async fn world() -> World {
    // Many token-endpoint calls from one address: the limiter is not under test.
    let app = TestApp::spawn_with(|s| {
        s.token_rate_per_client = Some(100_000);
        s.token_rate_per_address = Some(100_000);
    })
    .await;
    let okta = register(&app, "Okta", false).await;
    let a = side(&app, &okta, "acme", &["ada", "alan", "anne"]).await;
    let b = side(&app, &okta, "globex", &["grace", "hopper", "gwen"]).await;
    World { app, okta, a, b }
}

async fn side(app: &TestApp, okta: &CreatedClient, sub: &'static str, people: &[&str]) -> Side {
    let (email, password) = app.workspace(sub).await;
    ops::set_scim(&app.db, sub, true).await.unwrap();
    let ws_id = ops::workspace(&app.db, sub).await.unwrap().id;
    let admin_id = members::credentials(&app.db, ws_id, &email)
        .await
        .unwrap()
        .unwrap()
        .0
        .id
        .to_string();
    let api = ops::create_api_token(&app.db, sub, "sweep", "test")
        .await
        .unwrap();
    let mut created = Vec::new();
    for p in people {
        let user_name = format!("{p}@{sub}.test");
        let external_id = format!("ext-{p}-{sub}");
        let a = call(
            app,
            &api,
            Method::POST,
            "/Users",
            Some(okta_create(&user_name, &external_id)),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        created.push((s(&a.body["id"]).to_owned(), user_name, external_id));
    }
    let query = authorize_query(&okta.client_id, "");
    let code = if sub == "acme" {
        code_for(app, &query, &email, &password).await
    } else {
        code_in(app, sub, &query, &email, &password).await
    };
    let (status, t) = exchange(app, okta, &code, None).await;
    assert_eq!(status, 200, "{t}");
    let own = ops::register_client(
        &app.db,
        sub,
        &format!("{sub} sync"),
        &[REDIRECT.to_owned()],
        &[
            ops::GrantType::AuthorizationCode,
            ops::GrantType::ClientCredentials,
        ],
    )
    .await
    .unwrap();
    let own_access = crate::support::oauth::cc_token(app, &own).await;
    Side {
        sub,
        ws_id,
        email,
        password,
        admin_id,
        api,
        access: s(&t["access_token"]).to_owned(),
        refresh: s(&t["refresh_token"]).to_owned(),
        own,
        own_access,
        people: created,
    }
}

/// The authorize flow through the pages for workspace `sub`: the app host's
/// workspace question, sign-in on the workspace host, Allow. Returns the code.
async fn code_in(app: &TestApp, sub: &str, query: &str, email: &str, password: &str) -> String {
    let browser = sign_in(app, sub, email, password).await;
    let r = browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request = form_value(&r.text().await.unwrap(), "request").unwrap();
    let r = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("subdomain", sub), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let next = location(&r);
    assert!(
        next.starts_with(&app.ws_url(sub, "/oauth2/authorize?")),
        "{next}"
    );
    let r = browser.get(&next).send().await.unwrap();
    assert_eq!(r.status(), 200, "consent page");
    let consent = r.text().await.unwrap();
    assert!(consent.contains(&format!("{sub} Inc")), "{consent}");
    let r = browser
        .post(app.ws_url(sub, "/oauth2/authorize"))
        .form(&[
            ("csrf", form_value(&consent, "csrf").unwrap().as_str()),
            ("request", form_value(&consent, "request").unwrap().as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = url::Url::parse(&location(&r)).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

/// A SCIM request on the app host with a bearer token.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut req = app
        .api()
        .request(method, app.url(&format!("/scim/v2{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    answer(req.send().await.unwrap()).await
}

/// A workspace's live grants that a member authorized (not its own client's
/// client-credentials grant).
async fn user_grants(db: &rollcall::store::Db, ws_id: i64) -> Vec<grants::GrantSummary> {
    grants::list_grants(db, ws_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.member_id.is_some())
        .collect()
}

/// The userNames of a ListResponse, checking `totalResults` against them.
fn listed(a: &Answer) -> BTreeSet<String> {
    assert_eq!(a.status, 200, "{}", a.body);
    let names: BTreeSet<String> = a.body["Resources"]
        .as_array()
        .map(|rs| rs.iter().map(|r| s(&r["userName"]).to_owned()).collect())
        .unwrap_or_default();
    assert_eq!(
        a.body["totalResults"],
        json!(names.len()),
        "totalResults counts what is listed: {}",
        a.body
    );
    names
}

/// Everything of a workspace that a request might change, as text: the workspace
/// row, its SSO settings, API tokens, live grants and every member in full SCIM form
/// (read with the workspace's own token).
async fn state_of(w: &World, side: &Side) -> String {
    let db = &w.app.db;
    let ws = ops::workspace(db, side.sub).await.unwrap();
    let sso_row = sso::get(db, side.ws_id).await.unwrap();
    let toks: Vec<_> = tokens::list(db, side.ws_id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.name, t.prefix, t.revoked_at))
        .collect();
    let live: Vec<_> = grants::list_grants(db, side.ws_id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.id, g.client_id, g.scope))
        .collect();
    let clients: Vec<_> = grants::list_clients(db, Some(side.ws_id))
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.client.id, l.client.name, l.client.secret_generation))
        .collect();
    let all = call(&w.app, &side.api, Method::GET, "/Users?count=1000", None).await;
    assert_eq!(all.status, 200, "{}", all.body);
    format!(
        "{ws:?}\n{sso_row:?}\n{toks:?}\n{live:?}\n{clients:?}\n{}",
        all.body
    )
}

/// The filters that find B's members, with how many of B's members each finds.
fn filters_on(b: &Side) -> Vec<(String, usize)> {
    let (id, user_name, external_id) = &b.people[0];
    vec![
        (format!("userName eq \"{user_name}\""), 1),
        (format!("userName eq \"{}\"", b.email), 1),
        (format!("externalId eq \"{external_id}\""), 1),
        (format!("id eq \"{id}\""), 1),
        (format!("id eq \"{}\"", b.admin_id), 1),
        (format!("emails.value eq \"{user_name}\""), 1),
        (format!("emails[value eq \"{user_name}\"]"), 1),
        (format!("userName co \"{}\"", b.sub), 4),
        (format!("userName sw \"{}\"", &user_name[..3]), 1),
        (
            format!("externalId pr and userName ew \"@{}.test\"", b.sub),
            3,
        ),
    ]
}

/// GET /Users?filter, POST /Users/.search and POST /.search with one filter.
async fn search_three_ways(app: &TestApp, token: &str, filter: &str) -> [Answer; 3] {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": filter,
        "startIndex": 1,
        "count": 100
    });
    [
        call(
            app,
            token,
            Method::GET,
            &format!("/Users?filter={}&startIndex=1&count=100", enc(filter)),
            None,
        )
        .await,
        call(
            app,
            token,
            Method::POST,
            "/Users/.search",
            Some(body.clone()),
        )
        .await,
        call(app, token, Method::POST, "/.search", Some(body)).await,
    ]
}

/// Every SCIM read with `token` (a credential of A): B's members are never listed,
/// counted, found or fetched.
async fn sweep_reads(w: &World, label: &str, token: &str) {
    let (app, a, b) = (&w.app, &w.a, &w.b);
    let a_names = a.user_names();
    // Unfiltered, paged, sorted, projected: A's members and no one else.
    for path in [
        "/Users",
        "/Users?startIndex=1&count=1000",
        "/Users?sortBy=userName&sortOrder=descending",
        "/Users?attributes=userName",
        "/Users?excludedAttributes=emails",
    ] {
        let list = call(app, token, Method::GET, path, None).await;
        assert_eq!(listed(&list), a_names, "{label} {path}: {}", list.body);
        let text = list.body.to_string();
        for leak in b.ids().iter().chain(b.user_names().iter()) {
            assert!(!text.contains(leak.as_str()), "{label} {path} leaks {leak}");
        }
        assert!(!text.contains(b.sub), "{label} {path}: {text}");
    }
    // One per page: the count is still A's.
    let page = call(app, token, Method::GET, "/Users?startIndex=1&count=1", None).await;
    assert_eq!(page.body["totalResults"], json!(a_names.len()), "{label}");
    assert_eq!(page.body["itemsPerPage"], json!(1), "{label}");
    let active = search_three_ways(app, token, "active eq true").await;
    for r in &active {
        assert_eq!(listed(r), a_names, "{label}: {}", r.body);
    }

    // Filters on B's values: B's own token finds them (so the filter works), A's
    // credential finds nothing, on all three search endpoints.
    for (filter, in_b) in filters_on(b) {
        for found in search_three_ways(app, &b.api, &filter).await {
            let names = listed(&found);
            assert_eq!(names.len(), in_b, "control, {filter}: {}", found.body);
            assert!(names.is_subset(&b.user_names()), "{filter}");
        }
        for found in search_three_ways(app, token, &filter).await {
            assert_eq!(
                listed(&found),
                BTreeSet::new(),
                "{label}, {filter}: {}",
                found.body
            );
            assert_eq!(found.body["totalResults"], 0, "{label}, {filter}");
        }
    }

    // B's ids: 404, the same SCIM error as an id that exists nowhere.
    let nowhere = call(
        app,
        token,
        Method::GET,
        &format!("/Users/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_scim_error(&nowhere, 404, None);
    for id in b.ids() {
        for path in [
            format!("/Users/{id}"),
            format!("/Users/{id}?attributes=userName"),
        ] {
            let control = call(app, &b.api, Method::GET, &path, None).await;
            assert_eq!(control.status, 200, "control: {}", control.body);
            let got = call(app, token, Method::GET, &path, None).await;
            assert_scim_error(&got, 404, None);
            let text = got.body.to_string();
            assert!(!text.contains(b.sub), "{label} {path}: {text}");
            assert!(got.headers.get("etag").is_none(), "{label} {path}");
        }
    }
}

/// Every SCIM write with `token` (a credential of A) aimed at B: refused, and B is
/// unchanged. Then B's userName `b_person` (and its externalId) is created in A.
async fn sweep_writes(w: &World, label: &str, token: &str, b_person: usize) {
    let (app, a, b) = (&w.app, &w.a, &w.b);
    let before = state_of(w, b).await;
    let b_log = activity::recent(&app.db, b.ws_id, None, false, 1000)
        .await
        .unwrap()
        .len();
    for id in b.ids() {
        let path = format!("/Users/{id}");
        let etag = call(app, &b.api, Method::GET, &path, None).await.headers["etag"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut put = okta_create("taken@acme.test", "taken");
        put["id"] = json!(id);
        put["displayName"] = json!("Taken Over");
        put["active"] = json!(false);
        assert_scim_error(
            &call(app, token, Method::PUT, &path, Some(put.clone())).await,
            404,
            None,
        );
        let patches = [
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]}),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "taken@acme.test"},
                                  {"op": "add", "path": "displayName", "value": "Taken Over"}]}),
            json!({"Operations": [{"op": "remove", "path": "emails"}]}),
        ];
        for patch in patches {
            assert_scim_error(
                &call(app, token, Method::PATCH, &path, Some(patch)).await,
                404,
                None,
            );
        }
        // With B's current ETag as If-Match: still 404, never 412 or 200.
        let r = app
            .api()
            .patch(app.url(&format!("/scim/v2{path}")))
            .bearer_auth(token)
            .header("if-match", &etag)
            .json(&json!({"Operations": [{"op": "replace", "value": {"active": false}}]}))
            .send()
            .await
            .unwrap();
        assert_scim_error(&answer(r).await, 404, None);
        // DELETE: 405, the very answer A's own members get, so it reveals nothing.
        let del = call(app, token, Method::DELETE, &path, None).await;
        assert_scim_error(&del, 405, None);
        let own = call(
            app,
            token,
            Method::DELETE,
            &format!("/Users/{}", a.admin_id),
            None,
        )
        .await;
        assert_eq!((own.status, &own.body), (del.status, &del.body), "{label}");
    }
    assert_eq!(state_of(w, b).await, before, "{label}: B changed");
    assert_eq!(
        activity::recent(&app.db, b.ws_id, None, false, 1000)
            .await
            .unwrap()
            .len(),
        b_log,
        "{label}: B's activity log grew"
    );

    // B's userName and externalId are free in A: created in A, B untouched.
    let (b_id, user_name, external_id) = &b.people[b_person];
    let a_before = listed(&call(app, token, Method::GET, "/Users?count=1000", None).await);
    let created = call(
        app,
        token,
        Method::POST,
        "/Users",
        Some(okta_create(user_name, external_id)),
    )
    .await;
    assert_eq!(created.status, 201, "{label}: {}", created.body);
    let new_id = s(&created.body["id"]).to_owned();
    assert_ne!(&new_id, b_id);
    assert_eq!(created.body["userName"], json!(user_name));
    // Only once per workspace: a second create in A is a conflict.
    let again = call(
        app,
        token,
        Method::POST,
        "/Users",
        Some(okta_create(user_name, external_id)),
    )
    .await;
    assert_scim_error(&again, 409, None);
    let filter = format!("userName eq \"{user_name}\"");
    for found in search_three_ways(app, token, &filter).await {
        assert_eq!(found.body["totalResults"], 1, "{label}: {}", found.body);
        assert_eq!(found.body["Resources"][0]["id"], json!(new_id));
    }
    for found in search_three_ways(app, &b.api, &filter).await {
        assert_eq!(found.body["totalResults"], 1, "{}", found.body);
        assert_eq!(found.body["Resources"][0]["id"], json!(b_id));
    }
    let a_after = listed(&call(app, token, Method::GET, "/Users?count=1000", None).await);
    assert_eq!(a_after.len(), a_before.len() + 1, "{label}");
    assert_eq!(
        call(app, token, Method::GET, &format!("/Users/{b_id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        state_of(w, b).await,
        before,
        "{label}: B changed by the create"
    );
}

#[tokio::test]
async fn scim_reads_never_cross_workspaces() {
    let w = world().await;
    sweep_reads(&w, "A's API token", &w.a.api).await;
    sweep_reads(&w, "A's OAuth access token", &w.a.access).await;
    sweep_reads(&w, "A's client-credentials token", &w.a.own_access).await;
    // And the other way round, so neither direction is special.
    let swapped = World {
        app: w.app,
        okta: w.okta,
        a: w.b,
        b: w.a,
    };
    sweep_reads(&swapped, "B's API token", &swapped.a.api).await;
    swapped.app.stop().await;
}

#[tokio::test]
async fn scim_writes_never_cross_workspaces() {
    let w = world().await;
    sweep_writes(&w, "A's API token", &w.a.api, 0).await;
    sweep_writes(&w, "A's OAuth access token", &w.a.access, 1).await;
    sweep_writes(&w, "A's client-credentials token", &w.a.own_access, 2).await;
    w.app.stop().await;
}

#[tokio::test]
async fn scim_lives_on_the_app_host_and_the_token_alone_names_the_workspace() {
    let w = world().await;
    let (app, a, b) = (&w.app, &w.a, &w.b);
    for token in [&a.api, &a.access] {
        // /scim/v2 on a workspace host, matching the token or not: the workspace
        // site's own 404 page, not SCIM, and nothing of either workspace.
        for host in [a.sub, b.sub] {
            for (method, path) in [
                (Method::GET, "/scim/v2/Users".to_owned()),
                (Method::GET, format!("/scim/v2/Users/{}", b.admin_id)),
                (Method::GET, format!("/scim/v2/Users/{}", a.admin_id)),
                (Method::POST, "/scim/v2/Users/.search".to_owned()),
                (Method::GET, "/scim/v2/ServiceProviderConfig".to_owned()),
            ] {
                let r = app
                    .api()
                    .request(method.clone(), app.ws_url(host, &path))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 404, "{host} {method} {path}");
                let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
                assert!(ct.starts_with("text/html"), "{host} {path}: {ct}");
                let body = r.text().await.unwrap();
                assert!(body.contains("There is no page at this address"), "{body}");
                for leak in [&a.email, &b.email, &a.admin_id, &b.admin_id] {
                    assert!(!body.contains(leak.as_str()), "{host} {path} leaks {leak}");
                }
            }
        }
        // On the app host a forwarded host is ignored (trust_forwarded_host is off):
        // still A's members, whatever the header names.
        let r = app
            .api()
            .get(app.url("/scim/v2/Users"))
            .bearer_auth(token)
            .header("x-forwarded-host", format!("{}.localhost", b.sub))
            .send()
            .await
            .unwrap();
        assert_eq!(listed(&answer(r).await), a.user_names());
        // The resources' locations name the app host's SCIM base, never a workspace.
        let one = call(
            app,
            token,
            Method::GET,
            &format!("/Users/{}", a.admin_id),
            None,
        )
        .await;
        assert_eq!(
            one.body["meta"]["location"],
            json!(format!("{}/scim/v2/Users/{}", app.base, a.admin_id))
        );
    }
    // SCIM switched off in B: B's credentials get 403, A's keep working.
    ops::set_scim(&app.db, b.sub, false).await.unwrap();
    assert_eq!(
        call(app, &a.api, Method::GET, "/Users", None).await.status,
        200
    );
    assert_eq!(
        call(app, &a.access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    assert_scim_error(
        &call(app, &b.api, Method::GET, "/Users", None).await,
        403,
        None,
    );
    assert_scim_error(
        &call(app, &b.access, Method::GET, "/Users", None).await,
        403,
        None,
    );
    w.app.stop().await;
}

/// POST a form to an OAuth endpoint on the app host with HTTP Basic.
async fn oauth_post(
    app: &TestApp,
    client: &CreatedClient,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let r = app
        .api()
        .post(app.url(path))
        .basic_auth(&client.client_id, client.client_secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

async fn introspect(app: &TestApp, client: &CreatedClient, token: &str) -> Value {
    let (status, body) = oauth_post(app, client, "/oauth2/introspect", &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// What a SCIM token can see: its list of userNames, and whether B's admin is found.
async fn sees(app: &TestApp, token: &str, b: &Side) -> (BTreeSet<String>, StatusCode) {
    let list = listed(&call(app, token, Method::GET, "/Users", None).await);
    let b_admin = call(
        app,
        token,
        Method::GET,
        &format!("/Users/{}", b.admin_id),
        None,
    )
    .await
    .status;
    (list, b_admin)
}

#[tokio::test]
async fn oauth_grants_codes_and_refreshes_stay_in_their_workspace() {
    let w = world().await;
    let (app, okta, a, b) = (&w.app, &w.okta, &w.a, &w.b);
    let a_view = (a.user_names(), StatusCode::NOT_FOUND);

    // The grant's own access token sees A only.
    assert_eq!(sees(app, &a.access, b).await, a_view);

    // Refreshing A's refresh token (even naming B in made-up parameters) gives an
    // access token for A only.
    let (status, fresh) = oauth_post(
        app,
        okta,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &a.refresh),
            ("workspace", b.sub),
            ("resource", &app.ws_url(b.sub, "/")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{fresh}");
    let fresh_access = s(&fresh["access_token"]).to_owned();
    let fresh_refresh = s(&fresh["refresh_token"]).to_owned();
    assert_eq!(sees(app, &fresh_access, b).await, a_view);
    assert_eq!(
        introspect(app, okta, &fresh_access).await["workspace"],
        "acme"
    );
    assert_eq!(
        introspect(app, okta, &fresh_refresh).await["workspace"],
        "acme"
    );

    // A new code issued on A's host, redeemed (again naming B): tokens for A only.
    let code = code_for(
        app,
        &authorize_query(&okta.client_id, ""),
        &a.email,
        &a.password,
    )
    .await;
    let (status, t) = oauth_post(
        app,
        okta,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("workspace", b.sub),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let code_access = s(&t["access_token"]).to_owned();
    assert_eq!(sees(app, &code_access, b).await, a_view);
    let i = introspect(app, okta, &code_access).await;
    assert_eq!(
        (i["active"].clone(), i["workspace"].clone()),
        (json!(true), json!("acme"))
    );
    assert_eq!(i["sub"], json!(a.admin_id));
    // Every token minted so far belongs to A's grants; B still has exactly its one.
    assert_eq!(user_grants(&app.db, b.ws_id).await.len(), 1);
    assert_eq!(user_grants(&app.db, a.ws_id).await.len(), 2);

    // Another client ("Solo") with a grant for A only.
    let solo = register(app, "Solo", false).await;
    let solo_code = code_for(
        app,
        &authorize_query(&solo.client_id, ""),
        &a.email,
        &a.password,
    )
    .await;
    let (status, solo_tokens) = exchange(app, &solo, &solo_code, None).await;
    assert_eq!(status, 200);
    assert_eq!(sees(app, s(&solo_tokens["access_token"]), b).await, a_view);
    // Solo cannot redeem an Okta code or refresh Okta's (A's or B's) refresh tokens.
    let okta_code = code_for(
        app,
        &authorize_query(&okta.client_id, ""),
        &a.email,
        &a.password,
    )
    .await;
    let (status, body) = exchange(app, &solo, &okta_code, None).await;
    assert_eq!((status.as_u16(), s(&body["error"])), (400, "invalid_grant"));
    for rt in [&fresh_refresh, &b.refresh] {
        let (status, body) = oauth_post(
            app,
            &solo,
            "/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
        assert_eq!((status.as_u16(), s(&body["error"])), (400, "invalid_grant"));
    }

    // Introspection is per client. Solo learns nothing about B's (Okta's) tokens.
    for t in [&b.access, &b.refresh] {
        assert_eq!(introspect(app, &solo, t).await, json!({"active": false}));
    }
    // Okta, the one client serving both workspaces, holds B's tokens too: it sees
    // them active, and the answer names B's workspace and B's authorizing member.
    let i = introspect(app, okta, &b.access).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["workspace"], "globex", "{i}");
    assert_eq!(i["sub"], json!(b.admin_id), "{i}");
    assert_eq!(i["client_id"], json!(okta.client_id), "{i}");
    assert_eq!(
        introspect(app, okta, &b.refresh).await["workspace"],
        "globex"
    );
    // A's token introspected names A: the workspace never comes from the caller.
    assert_eq!(introspect(app, okta, &a.access).await["workspace"], "acme");

    // Revocation is per client too: Solo's revocations of B's tokens are the RFC
    // 7009 empty 200, and change nothing.
    let before = state_of(&w, b).await;
    for t in [&b.access, &b.refresh] {
        assert_eq!(revoke(app, &solo, t).await, 200);
    }
    assert_eq!(introspect(app, okta, &b.access).await["active"], true);
    assert_eq!(introspect(app, okta, &b.refresh).await["active"], true);
    assert_eq!(
        call(app, &b.access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    assert_eq!(state_of(&w, b).await, before);
    // Revoking A's tokens (Okta's) ends A's grant and touches nothing of B.
    assert_eq!(revoke(app, okta, &fresh_refresh).await, 200);
    assert_eq!(
        call(app, &fresh_access, Method::GET, "/Users", None)
            .await
            .status,
        401
    );
    assert_eq!(
        call(app, &b.access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    assert_eq!(state_of(&w, b).await, before);
    // Okta itself may revoke B's token: it is Okta's token (the client that holds a
    // token can always end it); B's grant goes with its refresh token.
    assert_eq!(revoke(app, okta, &b.refresh).await, 200);
    assert_eq!(introspect(app, okta, &b.access).await["active"], false);
    assert_scim_error(
        &call(app, &b.access, Method::GET, "/Users", None).await,
        401,
        None,
    );
    assert!(user_grants(&app.db, b.ws_id).await.is_empty());
    // A's other grants live on.
    assert_eq!(
        call(app, &code_access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    w.app.stop().await;
}

#[tokio::test]
async fn consent_on_another_workspace_host_is_refused() {
    let w = world().await;
    let (app, okta, a, b) = (&w.app, &w.okta, &w.a, &w.b);
    let before = state_of(&w, b).await;
    let query = authorize_query(&okta.client_id, "");
    // A's admin, signed in on A's host, with A's consent page and its CSRF token.
    let cookie = crate::foundation::signed_in_cookie(app, a.sub, &a.email, &a.password).await;
    let (status, consent, _) =
        get_with(&w, &cookie, a.sub, &format!("/oauth2/authorize?{query}")).await;
    assert_eq!(status, 200, "{consent}");
    assert!(consent.contains("acme Inc"));
    let csrf = form_value(&consent, "csrf").unwrap();
    let request = form_value(&consent, "request").unwrap();
    let browser = sign_in(app, a.sub, &a.email, &a.password).await;

    // The same browser on B's host: the cookie is host-only, so sign-in is asked for.
    let r = browser
        .get(app.ws_url(b.sub, &format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with("/signin?next="),
        "{}",
        location(&r)
    );
    // A's cookie carried to B's host by hand: the consent page is not shown and
    // Allow issues no code for B.
    let r = app
        .api()
        .get(app.ws_url(b.sub, &format!("/oauth2/authorize?{query}")))
        .header("cookie", format!("rollcall_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with("/signin?next="),
        "{}",
        location(&r)
    );
    let body = r.text().await.unwrap();
    assert!(!body.contains("globex Inc"), "{body}");
    for decision in ["allow", "deny"] {
        let r = app
            .api()
            .post(app.ws_url(b.sub, "/oauth2/authorize"))
            .header("cookie", format!("rollcall_session={cookie}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", &request),
                ("decision", decision),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{decision}");
        let to = location(&r);
        assert!(to.starts_with("/signin?next="), "{decision}: {to}");
        assert!(!to.contains("code="), "{to}");
    }
    // Control: the same cookie and form on A's host do give a code.
    let r = app
        .api()
        .post(app.ws_url(a.sub, "/oauth2/authorize"))
        .header("cookie", format!("rollcall_session={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", &request),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with(REDIRECT) && to.contains("code="), "{to}");
    assert_eq!(state_of(&w, b).await, before);
    assert_eq!(user_grants(&app.db, b.ws_id).await.len(), 1);
    w.app.stop().await;
}

/// A's session, by cookie value, and a CSRF token of that session.
async fn a_session(w: &World) -> (String, String) {
    let cookie =
        crate::foundation::signed_in_cookie(&w.app, w.a.sub, &w.a.email, &w.a.password).await;
    let page = get_with(w, &cookie, w.a.sub, "/settings/api").await;
    assert_eq!(page.0, 200);
    let csrf = form_value(&page.1, "csrf").expect("csrf on the API page");
    (cookie, csrf)
}

async fn get_with(w: &World, cookie: &str, host: &str, path: &str) -> (u16, String, String) {
    let r = w
        .app
        .api()
        .get(w.app.ws_url(host, path))
        .header("cookie", format!("rollcall_session={cookie}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, r.text().await.unwrap(), to)
}

async fn post_with(
    w: &World,
    cookie: &str,
    host: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let r = w
        .app
        .api()
        .post(w.app.ws_url(host, path))
        .header("cookie", format!("rollcall_session={cookie}"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, r.text().await.unwrap(), to)
}

/// The admin pages, with `side`'s ids filled in.
fn pages_of(side: &Side) -> Vec<String> {
    let person = &side.people[0];
    vec![
        "/members".into(),
        format!("/members?q={}", side.sub),
        format!("/members/{}", side.admin_id),
        format!("/members/{}", person.0),
        "/settings/sso".into(),
        "/settings/api".into(),
        "/settings/clients".into(),
        "/settings/apps".into(),
        "/activity".into(),
        "/activity?outcome=failures".into(),
        format!("/activity?member={}", person.0),
        format!("/activity?member_email={}", enc(&person.1)),
    ]
}

#[tokio::test]
async fn a_session_opens_no_page_of_another_workspace() {
    let w = world().await;
    let (a, b) = (&w.a, &w.b);
    let (cookie, _) = a_session(&w).await;
    // Control: on A's host every page opens, showing A.
    for path in pages_of(a) {
        let (status, body, _) = get_with(&w, &cookie, a.sub, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains("acme Inc"), "{path}");
    }
    // On B's host: every page sends A's session to sign in, and shows nothing of B.
    for path in pages_of(b) {
        let (status, body, to) = get_with(&w, &cookie, b.sub, &path).await;
        assert_eq!(status, 303, "{path}: {body}");
        assert_eq!(to, format!("/signin?next={}", enc(&path)), "{path}");
        for leak in b.user_names().iter().chain(b.ids().iter()) {
            assert!(!body.contains(leak.as_str()), "{path} leaks {leak}");
        }
    }
    // /settings only redirects to its first tab, which is refused as above.
    let (status, _, to) = get_with(&w, &cookie, b.sub, "/settings").await;
    assert_eq!((status, to.as_str()), (303, "/settings/sso"));
    w.app.stop().await;
}

#[tokio::test]
async fn a_session_changes_nothing_in_another_workspace() {
    let w = world().await;
    let (app, a, b) = (&w.app, &w.a, &w.b);
    let (cookie, csrf) = a_session(&w).await;
    let b_token_id = tokens::list(&app.db, b.ws_id).await.unwrap()[0].id;
    let b_grant_id = user_grants(&app.db, b.ws_id).await[0].id;
    let b_admin_version = call(
        app,
        &b.api,
        Method::GET,
        &format!("/Users/{}", b.admin_id),
        None,
    )
    .await
    .body["meta"]["version"]
        .clone();
    let version = b_admin_version
        .as_str()
        .map(|v| v.trim_start_matches("W/").trim_matches('"').to_owned())
        .unwrap_or_else(|| b_admin_version.to_string());
    let before = state_of(&w, b).await;

    let member_form = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("given_name", "Taken"),
        ("family_name", "Over"),
        ("display_name", "Taken Over"),
        ("role", "member"),
    ];
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/settings/api/tokens".into(),
            vec![("csrf", csrf.as_str()), ("name", "evil")],
        ),
        (
            "/settings/scim".into(),
            vec![("csrf", csrf.as_str()), ("enabled", "off")],
        ),
        (
            "/settings/password-signin".into(),
            vec![("csrf", csrf.as_str()), ("enabled", "off")],
        ),
        ("/settings/sso/off".into(), vec![("csrf", csrf.as_str())]),
        (
            "/settings/sso/passwords".into(),
            vec![("csrf", csrf.as_str()), ("enabled", "off")],
        ),
        (
            "/settings/sso/oidc".into(),
            vec![
                ("csrf", csrf.as_str()),
                ("issuer", "https://evil.test"),
                ("client_id", "x"),
                ("client_secret", "y"),
            ],
        ),
        (
            "/settings/sso/saml".into(),
            vec![
                ("csrf", csrf.as_str()),
                ("metadata_url", "https://evil.test"),
            ],
        ),
        (
            format!("/settings/api/tokens/{b_token_id}/revoke"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            format!("/settings/apps/{b_grant_id}/revoke"),
            vec![("csrf", csrf.as_str())],
        ),
        (format!("/members/{}", b.admin_id), member_form.to_vec()),
        (
            format!("/settings/clients/{}/rotate", b.own.client_id),
            vec![("csrf", csrf.as_str())],
        ),
        (
            format!("/settings/clients/{}/delete", b.own.client_id),
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/settings/clients".into(),
            vec![
                ("csrf", csrf.as_str()),
                ("name", "evil"),
                ("kind", "confidential"),
                ("grant_client_credentials", "on"),
                ("scope_read", "on"),
            ],
        ),
    ];
    // On B's host: each is sent to sign in, and B is exactly as before.
    for (path, form) in &posts {
        let (status, body, to) = post_with(&w, &cookie, b.sub, path, form).await;
        assert_eq!(status, 303, "{path}: {body}");
        assert!(to.starts_with("/signin?next="), "{path}: {to}");
    }
    assert_eq!(state_of(&w, b).await, before, "B changed");
    assert_eq!(
        call(app, &b.api, Method::GET, "/Users", None).await.status,
        200
    );
    assert_eq!(
        call(app, &b.access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );

    // On A's own host, B's ids are not found: no member edit, token or grant revoked,
    // no client rotated or deleted.
    for (path, form) in &posts[7..12] {
        let (status, body, _) = post_with(&w, &cookie, a.sub, path, form).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _, _) = get_with(&w, &cookie, a.sub, &format!("/members/{}", b.admin_id)).await;
    assert_eq!(status, 404);
    // Filters on B's members find nothing on A's pages (A's activity and member
    // list are not empty, so "nothing" is the filter working, not an empty page).
    let (_, all_activity, _) = get_with(&w, &cookie, a.sub, "/activity").await;
    assert!(!all_activity.contains("Nothing yet."), "A has activity");
    let a_count = format!("{} members in all", a.user_names().len());
    let (_, all_members, _) = get_with(&w, &cookie, a.sub, "/members").await;
    assert!(all_members.contains(&a_count), "{all_members}");
    let echoed = &b.people[0].1;
    for (path, nothing) in [
        (
            format!("/activity?member={}", b.people[0].0),
            "Nothing yet.",
        ),
        (
            format!("/activity?member_email={}", enc(echoed)),
            "Nothing yet.",
        ),
        (format!("/members?q={}", enc(echoed)), "No members match."),
        (format!("/members?q={}", b.sub), "No members match."),
    ] {
        let (status, body, _) = get_with(&w, &cookie, a.sub, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(nothing), "{path}: {body}");
        if path.starts_with("/members") {
            assert!(body.contains(&a_count), "{path}: {body}");
        }
        // The query itself is echoed in the search box; nothing else of B appears.
        for leak in b.user_names().iter().chain(b.ids().iter()) {
            if leak != echoed {
                assert!(!body.contains(leak.as_str()), "{path} leaks {leak}");
            }
        }
    }
    assert_eq!(state_of(&w, b).await, before, "B changed");
    assert_eq!(
        call(app, &b.api, Method::GET, "/Users", None).await.status,
        200
    );
    assert_eq!(
        call(app, &b.access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );

    // Control: the same cookie and CSRF token do work on A's host.
    let a_tokens = tokens::list(&app.db, a.ws_id).await.unwrap().len();
    let (status, body, _) =
        post_with(&w, &cookie, a.sub, "/settings/api/tokens", &posts[0].1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        tokens::list(&app.db, a.ws_id).await.unwrap().len(),
        a_tokens + 1
    );
    let (status, _, _) = post_with(&w, &cookie, a.sub, "/settings/scim", &posts[1].1).await;
    assert_eq!(status, 303);
    assert_scim_error(
        &call(app, &a.api, Method::GET, "/Users", None).await,
        403,
        None,
    );
    assert_eq!(
        call(app, &b.api, Method::GET, "/Users", None).await.status,
        200
    );
    assert_eq!(state_of(&w, b).await, before, "B changed");
    w.app.stop().await;
}

#[tokio::test]
async fn workspace_clients_stay_in_their_workspace() {
    let w = world().await;
    let (app, a, b) = (&w.app, &w.a, &w.b);
    // A's admin sees A's client on the clients page, never B's.
    let (cookie, csrf) = a_session(&w).await;
    let (status, page, _) = get_with(&w, &cookie, a.sub, "/settings/clients").await;
    assert_eq!(status, 200);
    assert!(page.contains(&a.own.client_id), "{page}");
    assert!(!page.contains(&b.own.client_id), "{page}");
    assert!(!page.contains(&format!("{} sync", b.sub)), "{page}");

    // A's client sent to B's host: an error page there, never a redirect; from the
    // app host it goes to A's host only.
    let query = authorize_query(&a.own.client_id, "");
    let b_admin = sign_in(app, b.sub, &b.email, &b.password).await;
    for browser in [app.browser(), b_admin.clone()] {
        let r = browser
            .get(app.ws_url(b.sub, &format!("/oauth2/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }
    let r = app
        .browser()
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(&app.ws_url(a.sub, "/oauth2/authorize?")),
        "{}",
        location(&r)
    );

    // B's client learns nothing of A's token and cannot revoke it; neither can Okta.
    for other in [&b.own, &w.okta] {
        assert_eq!(
            introspect(app, other, &a.own_access).await,
            json!({"active": false})
        );
        assert_eq!(revoke(app, other, &a.own_access).await, 200);
    }
    assert_eq!(
        call(app, &a.own_access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    // A's admin cannot rotate or delete B's client (not found), and B's works on.
    for action in ["rotate", "delete"] {
        let path = format!("/settings/clients/{}/{action}", b.own.client_id);
        let (status, _, _) = post_with(&w, &cookie, a.sub, &path, &[("csrf", csrf.as_str())]).await;
        assert_eq!(status, 404, "{path}");
    }
    let b_token = crate::support::oauth::cc_token(app, &b.own).await;
    assert_eq!(
        call(app, &b_token, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    // Deleting A's own client ends its token and leaves B's untouched.
    let path = format!("/settings/clients/{}/delete", a.own.client_id);
    let (status, _, to) = post_with(&w, &cookie, a.sub, &path, &[("csrf", csrf.as_str())]).await;
    assert_eq!((status, to.as_str()), (303, "/settings/clients"));
    assert_eq!(
        call(app, &a.own_access, Method::GET, "/Users", None)
            .await
            .status,
        401
    );
    assert_eq!(
        call(app, &b.own_access, Method::GET, "/Users", None)
            .await
            .status,
        200
    );
    w.app.stop().await;
}

/// A team (SCIM Group) of `side`, made with its own token; returns its id.
async fn team_of(
    app: &TestApp,
    side: &Side,
    name: &str,
    external_id: &str,
    members: &[&str],
) -> String {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "externalId": external_id,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
    });
    let a = call(app, &side.api, Method::POST, "/Groups", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    s(&a.body["id"]).to_owned()
}

/// Everything of a workspace's teams, in full, read with its own token.
async fn teams_of(app: &TestApp, side: &Side) -> Value {
    let all = call(app, &side.api, Method::GET, "/Groups?count=1000", None).await;
    assert_eq!(all.status, 200, "{}", all.body);
    all.body
}

/// The team ids of a Groups ListResponse, checking `totalResults` against them.
fn team_ids(a: &Answer) -> BTreeSet<String> {
    assert_eq!(a.status, 200, "{}", a.body);
    let ids: BTreeSet<String> = a.body["Resources"]
        .as_array()
        .map(|rs| rs.iter().map(|r| s(&r["id"]).to_owned()).collect())
        .unwrap_or_default();
    assert_eq!(a.body["totalResults"], json!(ids.len()), "{}", a.body);
    ids
}

#[tokio::test]
async fn scim_groups_never_cross_workspaces() {
    let w = world().await;
    let (app, a, b) = (&w.app, &w.a, &w.b);
    for side in [a, b] {
        ops::set_scim_teams(&app.db, side.sub, true).await.unwrap();
    }
    // The same team name in both workspaces: names are unique per workspace only.
    let a_team = team_of(app, a, "Shared", "ext-shared-a", &[a.people[0].0.as_str()]).await;
    let b_team = team_of(
        app,
        b,
        "Shared",
        "ext-shared-b",
        &[b.people[0].0.as_str(), b.people[1].0.as_str()],
    )
    .await;
    let b_only = team_of(
        app,
        b,
        "Globex Only",
        "ext-globex-only",
        &[b.admin_id.as_str()],
    )
    .await;
    let b_teams = [b_team.clone(), b_only.clone()];
    let b_member = b.people[0].0.clone();
    let b_before = teams_of(app, b).await;
    let b_users_before = state_of(&w, b).await;
    let b_log = activity::recent(&app.db, b.ws_id, None, false, 1000)
        .await
        .unwrap()
        .len();

    for (label, token) in [("A's API token", &a.api), ("A's OAuth token", &a.access)] {
        // Lists: A's team only, nothing of B's in the text.
        for path in [
            "/Groups",
            "/Groups?startIndex=1&count=1000",
            "/Groups?excludedAttributes=members",
            "/Groups?attributes=displayName",
        ] {
            let list = call(app, token, Method::GET, path, None).await;
            assert_eq!(
                team_ids(&list),
                BTreeSet::from([a_team.clone()]),
                "{label} {path}"
            );
            let text = list.body.to_string();
            for leak in b_teams.iter().chain(b.ids().iter()) {
                assert!(!text.contains(leak.as_str()), "{label} {path} leaks {leak}");
            }
        }
        // Filters on B's values find nothing for A (and B's own token finds them).
        let filters = [
            ("displayName eq \"Globex Only\"".to_owned(), 1),
            ("externalId eq \"ext-shared-b\"".to_owned(), 1),
            (format!("id eq \"{b_team}\""), 1),
            (format!("id eq \"{b_only}\""), 1),
            (format!("members.value eq \"{b_member}\""), 1),
            (format!("members[value eq \"{b_member}\"]"), 1),
            (format!("members.value eq \"{}\"", b.admin_id), 1),
            (
                format!("members.value eq \"{b_member}\" or displayName eq \"Globex Only\""),
                2,
            ),
        ];
        for (f, in_b) in &filters {
            let get = format!("/Groups?filter={}&excludedAttributes=members", enc(f));
            let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                "filter": f, "startIndex": 1, "count": 100});
            let control = call(app, &b.api, Method::GET, &get, None).await;
            assert_eq!(
                team_ids(&control).len(),
                *in_b,
                "control {f}: {}",
                control.body
            );
            for got in [
                call(app, token, Method::GET, &get, None).await,
                call(app, token, Method::POST, "/Groups/.search", Some(search)).await,
            ] {
                assert_eq!(team_ids(&got), BTreeSet::new(), "{label} {f}: {}", got.body);
            }
        }
        // "displayName eq Shared" finds A's own team, never B's.
        let shared = call(
            app,
            token,
            Method::GET,
            &format!("/Groups?filter={}", enc("displayName eq \"shared\"")),
            None,
        )
        .await;
        assert_eq!(
            team_ids(&shared),
            BTreeSet::from([a_team.clone()]),
            "{label}"
        );
        // A's member: its groups list A's team only.
        let u = call(
            app,
            token,
            Method::GET,
            &format!("/Users/{}", a.people[0].0),
            None,
        )
        .await;
        let groups: Vec<&str> = u.body["groups"]
            .as_array()
            .map(|g| g.iter().map(|e| s(&e["value"])).collect())
            .unwrap_or_default();
        assert_eq!(groups, vec![a_team.as_str()], "{label}: {}", u.body);

        // B's team ids: 404 for every method, never 412/200/204.
        let nowhere = format!("/Groups/{}", uuid::Uuid::now_v7());
        assert_scim_error(
            &call(app, token, Method::GET, &nowhere, None).await,
            404,
            None,
        );
        for id in &b_teams {
            let path = format!("/Groups/{id}");
            let etag = call(app, &b.api, Method::GET, &path, None).await.body["meta"]["version"]
                .as_str()
                .unwrap()
                .to_owned();
            for p in [
                path.clone(),
                format!("{path}?excludedAttributes=members"),
                format!("{path}?attributes=displayName"),
            ] {
                let got = call(app, token, Method::GET, &p, None).await;
                assert_scim_error(&got, 404, None);
                assert!(!got.body.to_string().contains("Shared"), "{label} {p}");
            }
            for patch in [
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "add", "path": "members", "value": [{"value": a.people[1].0}]}]}),
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "value": {"id": id, "displayName": "Taken"}}]}),
                json!({"Operations": [{"op": "Remove", "path": "members"}]}),
                json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{b_member}\"]")}]}),
            ] {
                assert_scim_error(
                    &call(app, token, Method::PATCH, &path, Some(patch)).await,
                    404,
                    None,
                );
            }
            let r = app
                .api()
                .patch(app.url(&format!("/scim/v2{path}")))
                .bearer_auth(token)
                .header("if-match", &etag)
                .json(&json!({"Operations": [{"op": "Remove", "path": "members"}]}))
                .send()
                .await
                .unwrap();
            assert_scim_error(&answer(r).await, 404, None);
            let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                             "id": id, "displayName": "Taken", "members": []});
            assert_scim_error(
                &call(app, token, Method::PUT, &path, Some(put)).await,
                404,
                None,
            );
            assert_scim_error(
                &call(app, token, Method::DELETE, &path, None).await,
                404,
                None,
            );
        }

        // B's member into A's team: 400 invalidValue, and A's team unchanged.
        let a_path = format!("/Groups/{a_team}");
        let a_before = call(app, token, Method::GET, &a_path, None).await.body;
        for patch in [
            json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": b_member}]}]}),
            json!({"Operations": [{"op": "Add", "path": "members",
                                   "value": [{"value": a.people[1].0}, {"value": b.admin_id}]}]}),
            json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": b_member}]}]}),
            json!({"Operations": [{"op": "add", "value": {"members": [{"value": b_member}]}}]}),
        ] {
            let got = call(app, token, Method::PATCH, &a_path, Some(patch)).await;
            assert_scim_error(&got, 400, Some("invalidValue"));
            assert!(
                !got.body.to_string().contains("globex"),
                "{label}: {}",
                got.body
            );
        }
        let put = json!({"displayName": "Shared", "members": [{"value": b_member}]});
        assert_scim_error(
            &call(app, token, Method::PUT, &a_path, Some(put)).await,
            400,
            Some("invalidValue"),
        );
        let post = json!({"displayName": "Poached", "members": [{"value": b_member}]});
        assert_scim_error(
            &call(app, token, Method::POST, "/Groups", Some(post)).await,
            400,
            Some("invalidValue"),
        );
        assert_eq!(
            call(app, token, Method::GET, &a_path, None).await.body,
            a_before,
            "{label}: A's team changed"
        );
    }

    // B is exactly as before: teams, members (with their groups), activity.
    assert_eq!(teams_of(app, b).await, b_before, "B's teams changed");
    assert_eq!(state_of(&w, b).await, b_users_before, "B changed");
    assert_eq!(
        activity::recent(&app.db, b.ws_id, None, false, 1000)
            .await
            .unwrap()
            .len(),
        b_log,
        "B's activity log grew"
    );
    // Teams off in B: B's token gets 403, A's keeps working.
    ops::set_scim_teams(&app.db, b.sub, false).await.unwrap();
    assert_scim_error(
        &call(app, &b.api, Method::GET, "/Groups", None).await,
        403,
        None,
    );
    assert_eq!(
        call(app, &a.api, Method::GET, "/Groups", None).await.status,
        200
    );
    w.app.stop().await;
}
