//! The Teams pages over HTTP (issue 14): who may change what, CSRF on every form,
//! workspace scoping, teams the identity provider manages, paging, the activity
//! log, and the `workspace scim-teams` command.

use crate::support::scim::Scim;
use crate::support::{TestApp, csrf_of, html_unescape, location, page, sign_in};
use rollcall::domain::{Email, Role};
use rollcall::store::teams::{self, NewTeam, Team};
use rollcall::store::{Db, members};
use serde_json::json;
use uuid::Uuid;

/// A team written straight to the store (as the pages or SCIM would leave it).
async fn store_team(db: &Db, ws: i64, name: &str, scim_managed: bool, members: &[Uuid]) -> Team {
    teams::create(
        db,
        ws,
        &NewTeam {
            display_name: name.into(),
            external_id: None,
            scim_managed,
            members: members.to_vec(),
        },
    )
    .await
    .unwrap()
    .unwrap()
}

/// A member with this role; signs in with `password` when one is given.
async fn member(db: &Db, ws: i64, email: &str, role: Role, password: Option<&str>) -> Uuid {
    let data = crate::support::ops::local_member(&Email::parse(email).unwrap(), role);
    let hash = match password {
        Some(p) => Some(rollcall::secrets::hash_password(p.into()).await),
        None => None,
    };
    members::create(db, ws, &data, hash.as_deref())
        .await
        .unwrap()
        .id
}

async fn team(db: &Db, ws: i64, id: Uuid) -> Option<Team> {
    teams::by_id(db, ws, id).await.unwrap()
}

async fn member_ids(db: &Db, ws: i64, team: Uuid) -> Vec<Uuid> {
    teams::members_page(db, ws, team, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// Every form a team page posts, for team `t` and member `m`, with its fields.
fn team_posts(t: Uuid, m: Uuid) -> Vec<(String, Vec<(&'static str, String)>)> {
    vec![
        ("/teams".into(), vec![("name", "Posted".into())]),
        (
            format!("/teams/{t}/rename"),
            vec![("name", "Renamed".into())],
        ),
        (
            format!("/teams/{t}/members"),
            vec![("email", "bob@acme.test".into())],
        ),
        (format!("/teams/{t}/members/{m}/remove"), vec![]),
        (
            format!("/teams/{t}/delete"),
            vec![("confirm", "yes".into())],
        ),
        (
            "/settings/scim-teams".into(),
            vec![("enabled", "on".into())],
        ),
    ]
}

async fn post(
    client: &reqwest::Client,
    url: String,
    csrf: Option<&str>,
    fields: &[(&str, String)],
) -> reqwest::Response {
    let mut form: Vec<(&str, String)> = fields.to_vec();
    if let Some(c) = csrf {
        form.push(("csrf", c.to_owned()));
    }
    client.post(url).form(&form).send().await.unwrap()
}

/// The team and the workspace are as they were: nothing was written.
async fn assert_untouched(db: &Db, t: &Team, members: &[Uuid]) {
    let now = team(db, t.workspace_id, t.id).await.expect("still there");
    assert_eq!(now.display_name, t.display_name);
    assert_eq!(member_ids(db, t.workspace_id, t.id).await, members);
    let (_, all) = teams::search(
        db,
        t.workspace_id,
        &teams::Search {
            filter: None,
            by_name: true,
            descending: false,
            offset: 0,
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 1, "no team was created");
    let ws = crate::support::ops::workspace(db, "acme").await.unwrap();
    assert!(!ws.scim_teams, "the switch did not move");
}

#[tokio::test]
async fn every_team_form_needs_the_csrf_token() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let bob = member(&app.db, 1, "bob@acme.test", Role::Viewer, None).await;
    let ann = member(&app.db, 1, "ann@acme.test", Role::Viewer, None).await;
    let t = store_team(&app.db, 1, "Design", false, &[ann]).await;
    let admin = sign_in(&app, "acme", &email, &password).await;
    let csrf = csrf_of(&admin, &app.ws_url("acme", "/teams")).await;

    for (path, fields) in team_posts(t.id, ann) {
        for bad in [None, Some("rc_csrf_forged")] {
            let r = post(&admin, app.ws_url("acme", &path), bad, &fields).await;
            assert_eq!(r.status(), 403, "{path} with csrf {bad:?}");
            let body = r.text().await.unwrap();
            assert!(body.contains("This form expired"), "{path}: {body}");
        }
        // From another site, even with the right token.
        let r = admin
            .post(app.ws_url("acme", &path))
            .header("origin", "http://evil.test")
            .form(&[fields.clone(), vec![("csrf", csrf.clone())]].concat())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} from another origin");
    }
    assert_untouched(&app.db, &t, &[ann]).await;
    assert!(!member_ids(&app.db, 1, t.id).await.contains(&bob));

    // The same forms with the token do what they say (so the 403s above were the
    // token's doing).
    let r = post(
        &admin,
        app.ws_url("acme", &format!("/teams/{}/rename", t.id)),
        Some(&csrf),
        &[("name", "Product design".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        team(&app.db, 1, t.id).await.unwrap().display_name,
        "Product design"
    );
    app.stop().await;
}

#[tokio::test]
async fn members_who_are_not_admins_see_teams_but_cannot_change_them() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    member(&app.db, 1, "bob@acme.test", Role::Viewer, None).await;
    let ann = member(&app.db, 1, "ann@acme.test", Role::Viewer, None).await;
    member(
        &app.db,
        1,
        "vic@acme.test",
        Role::Maker,
        Some("maker-password-1"),
    )
    .await;
    let t = store_team(&app.db, 1, "Design", false, &[ann]).await;
    let vic = sign_in(&app, "acme", "vic@acme.test", "maker-password-1").await;

    let list = page(&vic, &app.ws_url("acme", "/teams")).await;
    assert!(
        list.contains("Design") && list.contains(&format!("/teams/{}", t.id)),
        "{list}"
    );
    assert!(
        !list.contains("method=\"post\" action=\"/teams\""),
        "no New team form: {list}"
    );
    let one = page(&vic, &app.ws_url("acme", &format!("/teams/{}", t.id))).await;
    assert!(one.contains("ann@acme.test"), "{one}");
    assert!(
        !one.contains("method=\"post\" action=\"/teams/"),
        "no edit forms for a non-admin: {one}"
    );
    assert!(one.contains("Only admins can change teams"), "{one}");
    // The member page lists the member's teams for anyone signed in.
    let ann_page = page(&vic, &app.ws_url("acme", &format!("/members/{ann}"))).await;
    assert!(
        ann_page.contains(&format!("href=\"/teams/{}\"", t.id)),
        "{ann_page}"
    );

    let csrf = csrf_of(&vic, &app.ws_url("acme", "/teams")).await;
    for (path, fields) in team_posts(t.id, ann) {
        let r = post(&vic, app.ws_url("acme", &path), Some(&csrf), &fields).await;
        assert_eq!(r.status(), 403, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Only admins"), "{path}: {body}");
    }
    assert_untouched(&app.db, &t, &[ann]).await;

    // Signed out: to the sign-in page, nothing shown.
    let anon = app.browser();
    let r = anon
        .get(app.ws_url("acme", &format!("/teams/{}", t.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/signin"), "{}", location(&r));
    app.stop().await;
}

#[tokio::test]
async fn another_workspaces_team_is_not_found() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    app.workspace("globex").await;
    let globex = crate::support::ops::workspace(&app.db, "globex")
        .await
        .unwrap();
    let gina = member(&app.db, globex.id, "gina@globex.test", Role::Viewer, None).await;
    // Same email in acme, so an add by email would find someone.
    member(&app.db, 1, "bob@acme.test", Role::Viewer, None).await;
    let theirs = store_team(&app.db, globex.id, "Globex secret", false, &[gina]).await;
    let admin = sign_in(&app, "acme", &email, &password).await;
    let csrf = csrf_of(&admin, &app.ws_url("acme", "/teams")).await;

    for path in [
        format!("/teams/{}", theirs.id),
        format!("/teams/{}?after={gina}", theirs.id),
        format!("/teams/{}", Uuid::now_v7()),
        "/teams/not-a-uuid".into(),
    ] {
        let r = admin.get(app.ws_url("acme", &path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("no such team") && !body.contains("Globex secret"),
            "{path}: {body}"
        );
    }
    for (path, fields) in team_posts(theirs.id, gina).into_iter().skip(1).take(4) {
        let r = post(&admin, app.ws_url("acme", &path), Some(&csrf), &fields).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let still = team(&app.db, globex.id, theirs.id).await.unwrap();
    assert_eq!(still.display_name, "Globex secret");
    assert_eq!(member_ids(&app.db, globex.id, theirs.id).await, vec![gina]);
    // Nor does acme's list show it.
    let list = page(&admin, &app.ws_url("acme", "/teams?q=secret")).await;
    assert!(!list.contains("Globex secret"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn teams_the_identity_provider_manages_are_read_only() {
    let scim = Scim::start().await;
    let app = &scim.app;
    crate::support::ops::set_scim_teams(&app.db, "acme", true)
        .await
        .unwrap();
    let ada = scim.create("ada@acme.test").await;
    let ada = Uuid::parse_str(ada["id"].as_str().unwrap()).unwrap();
    member(&app.db, 1, "bob@acme.test", Role::Viewer, None).await;
    let a = scim
        .post(
            "/Groups",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Okta Engineering",
                "members": [{"value": ada.to_string()}]
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = Uuid::parse_str(a.body["id"].as_str().unwrap()).unwrap();
    let managed = team(&app.db, 1, id).await.unwrap();
    store_team(&app.db, 1, "Local team", false, &[]).await;

    // A password for the admin (the Scim harness does not hand it out).
    let admin_email = "boss@acme.test";
    member(
        &app.db,
        1,
        admin_email,
        Role::Admin,
        Some("admin-password-1"),
    )
    .await;
    let admin = sign_in(app, "acme", admin_email, "admin-password-1").await;
    let list = page(&admin, &app.ws_url("acme", "/teams")).await;
    let managed_row = list
        .split("<tr>")
        .find(|r| r.contains("Okta Engineering"))
        .expect("listed");
    assert!(
        managed_row.contains("managed by your identity provider"),
        "{managed_row}"
    );
    let local_row = list
        .split("<tr>")
        .find(|r| r.contains("Local team"))
        .unwrap();
    assert!(!local_row.contains("managed by your identity provider"));

    let one = page(&admin, &app.ws_url("acme", &format!("/teams/{id}"))).await;
    assert!(one.contains("managed by your identity provider"), "{one}");
    assert!(one.contains("ada@acme.test"), "{one}");
    assert!(
        !one.contains(&format!("action=\"/teams/{id}/")),
        "no edit controls: {one}"
    );

    let csrf = csrf_of(&admin, &app.ws_url("acme", "/teams")).await;
    for (path, fields) in team_posts(id, ada).into_iter().skip(1).take(4) {
        let r = post(&admin, app.ws_url("acme", &path), Some(&csrf), &fields).await;
        assert_eq!(r.status(), 303, "{path}");
        let back = location(&r);
        assert_eq!(back, format!("/teams/{id}"), "{path}");
        let said = html_unescape(&page(&admin, &app.ws_url("acme", &back)).await);
        assert!(
            said.contains("Not saved: this team is managed by your identity provider"),
            "{path}: {said}"
        );
    }
    let still = team(&app.db, 1, id).await.unwrap();
    assert_eq!(still.display_name, managed.display_name);
    assert_eq!(member_ids(&app.db, 1, id).await, vec![ada]);

    // With the switch off, the pages manage every team again.
    crate::support::ops::set_scim_teams(&app.db, "acme", false)
        .await
        .unwrap();
    let one = page(&admin, &app.ws_url("acme", &format!("/teams/{id}"))).await;
    assert!(!one.contains("managed by your identity provider"), "{one}");
    let r = post(
        &admin,
        app.ws_url("acme", &format!("/teams/{id}/rename")),
        Some(&csrf),
        &[("name", "Engineering".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        team(&app.db, 1, id).await.unwrap().display_name,
        "Engineering"
    );
    scim.app.stop().await;
}

#[tokio::test]
async fn admins_manage_teams_and_the_activity_log_names_them() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    let bob = member(&app.db, 1, "bob@acme.test", Role::Viewer, None).await;
    let admin = sign_in(&app, "acme", &email, &password).await;
    let csrf = csrf_of(&admin, &app.ws_url("acme", "/teams")).await;
    let at = |p: &str| app.ws_url("acme", p);

    let r = post(
        &admin,
        at("/teams"),
        Some(&csrf),
        &[("name", "Design".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let team_path = location(&r);
    let id = Uuid::parse_str(team_path.trim_start_matches("/teams/")).unwrap();
    // The same name again, in other case: refused with a reason, no second team.
    let r = post(
        &admin,
        at("/teams"),
        Some(&csrf),
        &[("name", "DESIGN".into())],
    )
    .await;
    assert_eq!(location(&r), "/teams");
    let said = html_unescape(&page(&admin, &at("/teams")).await);
    assert!(said.contains("already exists"), "{said}");
    assert_eq!(teams::count(&app.db, 1).await.unwrap(), 1);
    // An empty name: refused.
    let r = post(&admin, at("/teams"), Some(&csrf), &[("name", "  ".into())]).await;
    assert_eq!(location(&r), "/teams");
    let said = html_unescape(&page(&admin, &at("/teams")).await);
    assert!(
        said.contains("Not saved: The name must not be empty"),
        "{said}"
    );

    let r = post(
        &admin,
        at(&format!("/teams/{id}/members")),
        Some(&csrf),
        &[("email", "BOB@acme.test".into())],
    )
    .await;
    assert_eq!(location(&r), team_path);
    assert_eq!(member_ids(&app.db, 1, id).await, vec![bob]);
    let r = post(
        &admin,
        at(&format!("/teams/{id}/members")),
        Some(&csrf),
        &[("email", "nobody@acme.test".into())],
    )
    .await;
    assert_eq!(location(&r), team_path);
    let said = html_unescape(&page(&admin, &at(&team_path)).await);
    assert!(said.contains("no member 'nobody@acme.test'"), "{said}");
    post(
        &admin,
        at(&format!("/teams/{id}/rename")),
        Some(&csrf),
        &[("name", "Product design".into())],
    )
    .await;
    post(
        &admin,
        at(&format!("/teams/{id}/members/{bob}/remove")),
        Some(&csrf),
        &[],
    )
    .await;
    assert!(member_ids(&app.db, 1, id).await.is_empty());
    // Delete asks for the confirmation first.
    let r = post(&admin, at(&format!("/teams/{id}/delete")), Some(&csrf), &[]).await;
    assert_eq!(location(&r), team_path);
    assert!(team(&app.db, 1, id).await.is_some(), "not without confirm");
    let r = post(
        &admin,
        at(&format!("/teams/{id}/delete")),
        Some(&csrf),
        &[("confirm", "yes".into())],
    )
    .await;
    assert_eq!(location(&r), "/teams");
    assert!(team(&app.db, 1, id).await.is_none());

    let log = html_unescape(&page(&admin, &at("/activity")).await);
    let rows: Vec<&str> = log.split("<tr>").skip(2).collect();
    let row_of = |op: &str| {
        rows.iter()
            .find(|r| r.contains(&format!("<td>{op}</td>")))
            .unwrap_or_else(|| panic!("no {op} entry: {log}"))
            .to_string()
    };
    assert!(row_of("team create").contains("Design"));
    let add = row_of("team add");
    assert!(
        add.contains("bob@acme.test") && add.contains("Design"),
        "{add}"
    );
    assert!(
        add.contains(&format!("/teams/{id}")),
        "links the team: {add}"
    );
    assert!(row_of("team rename").contains("Product design"));
    assert!(row_of("team remove").contains("bob@acme.test"));
    let delete = row_of("team delete");
    assert!(delete.contains("Product design"), "{delete}");
    assert!(delete.contains(&format!("admin:{email}")), "{delete}");
    app.stop().await;
}

#[tokio::test]
async fn teams_and_their_members_come_in_pages() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    for i in 0..55 {
        store_team(&app.db, 1, &format!("Team {i:02}"), false, &[]).await;
    }
    let mut people = Vec::new();
    for i in 0..52 {
        people.push(
            member(
                &app.db,
                1,
                &format!("p{i:02}@acme.test"),
                Role::Viewer,
                None,
            )
            .await,
        );
    }
    people.sort();
    let big = store_team(&app.db, 1, "Everyone", false, &people).await;
    let admin = sign_in(&app, "acme", &email, &password).await;
    let at = |p: &str| app.ws_url("acme", p);
    let names = |html: &str| -> Vec<String> {
        html.split("<tr>")
            .skip(2)
            .filter_map(|r| {
                let start = r.find("/teams/")?;
                let rest = &r[start..];
                let text = &rest[rest.find('>')? + 1..];
                Some(text[..text.find('<')?].to_owned())
            })
            .collect()
    };

    let first = page(&admin, &at("/teams")).await;
    let shown = names(&first);
    assert_eq!(shown.len(), 50, "{first}");
    assert_eq!(shown[0], "Everyone");
    assert!(first.contains("56 teams in all"), "{first}");
    assert!(!first.contains("rel=\"prev\""));
    let href = |html: &str, rel: &str| -> String {
        let end = html.find(&format!("\" rel=\"{rel}\"")).expect(rel);
        let start = html[..end].rfind("href=\"").unwrap() + 6;
        html_unescape(&html[start..end])
    };
    let second = page(&admin, &at(&href(&first, "next"))).await;
    let rest = names(&second);
    assert_eq!(rest.len(), 6, "{second}");
    assert_eq!(rest.last().unwrap(), "Team 54");
    assert!(!second.contains("rel=\"next\""));
    let back = page(&admin, &at(&href(&second, "prev"))).await;
    assert_eq!(names(&back), shown);

    // Search by a part of the name, any case.
    let found = names(&page(&admin, &at("/teams?q=AM+0")).await);
    assert_eq!(found.len(), 10, "{found:?}");
    assert!(found.iter().all(|n| n.starts_with("Team 0")));

    // The big team's members: 50, then 2, in id order.
    let p1 = page(&admin, &at(&format!("/teams/{}", big.id))).await;
    assert!(p1.contains("52 members"), "{p1}");
    let emails = |html: &str| html.matches("@acme.test</a>").count();
    assert_eq!(emails(&p1), 50);
    let p2 = page(&admin, &at(&href(&p1, "next"))).await;
    assert_eq!(emails(&p2), 2, "{p2}");
    assert!(p2.contains(&format!("/members/{}", people[51])));
    assert!(!p2.contains("rel=\"next\""));
    assert!(p2.contains("rel=\"first\""));
    app.stop().await;
}

#[tokio::test]
async fn the_cli_switches_teams_with_scim() {
    let db_url = crate::support::fresh_database_url().await;
    let bin = env!("CARGO_BIN_EXE_rollcall");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db_url)
            .output()
            .expect("run rollcall")
    };
    let out = run(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "boss@acme.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = Db::connect(&db_url).await.unwrap();
    let switch = || async {
        crate::support::ops::workspace(&db, "acme")
            .await
            .unwrap()
            .scim_teams
    };
    assert!(!switch().await, "off by default");

    let out = run(&["workspace", "scim-teams", "acme", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is on"));
    assert!(switch().await);
    let out = run(&["workspace", "scim-teams", "acme", "off"]);
    assert!(out.status.success());
    assert!(!switch().await);

    let out = run(&["workspace", "scim-teams", "acme", "maybe"]);
    assert!(!out.status.success());
    let out = run(&["workspace", "scim-teams", "nope", "on"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workspace 'nope'"));
}

#[tokio::test]
async fn the_settings_switch_needs_an_admin_and_moves_groups() {
    let app = TestApp::spawn().await;
    let (email, password) = app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let groups = || async {
        app.api()
            .get(app.url("/scim/v2/Groups"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(groups().await, 403);
    let admin = sign_in(&app, "acme", &email, &password).await;
    let settings = page(&admin, &app.ws_url("acme", "/settings/sso")).await;
    assert!(
        settings.contains("Managing teams with SCIM is <strong>off</strong>"),
        "{settings}"
    );
    let csrf = crate::support::form_value(&settings, "csrf").unwrap();
    let r = post(
        &admin,
        app.ws_url("acme", "/settings/scim-teams"),
        Some(&csrf),
        &[("enabled", "on".into())],
    )
    .await;
    assert_eq!(location(&r), "/settings/sso");
    assert_eq!(groups().await, 200);
    let settings = page(&admin, &app.ws_url("acme", "/settings/sso")).await;
    assert!(
        settings.contains("Managing teams with SCIM is <strong>on</strong>"),
        "{settings}"
    );
    post(
        &admin,
        app.ws_url("acme", "/settings/scim-teams"),
        Some(&csrf),
        &[("enabled", "off".into())],
    )
    .await;
    assert_eq!(groups().await, 403);
    app.stop().await;
}
