//! Hostile input: hundreds of malformed, oversized, wrongly typed and injected
//! requests. Each gets a 4xx in its protocol's own format (SCIM Error JSON, RFC 6749
//! JSON, an HTML page), never a 5xx; the server stays healthy and nothing stored
//! changes.

use crate::support::scim::okta_create;
use crate::support::{TestApp, enc};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Scim,
    OAuth,
    Html,
}

struct Case {
    /// Replaces the valid bearer token of SCIM cases.
    auth: Option<String>,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    format: Format,
    workspace_host: bool,
    /// The exact answer required, where any 4xx is not enough: status and scimType.
    expect: Option<(u16, Option<&'static str>)>,
}

fn scim(method: Method, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        auth: None,
        method,
        path: format!("/scim/v2{}", path.into()),
        content_type: Some("application/scim+json"),
        body: body.into(),
        format: Format::Scim,
        workspace_host: false,
        expect: None,
    }
}

/// A SCIM case that must be answered `400 invalidValue`: a value of the wrong JSON type.
fn wrong_type(method: Method, path: impl Into<String>, body: &Value) -> Case {
    Case {
        expect: Some((400, Some("invalidValue"))),
        ..scim(method, path, body.to_string())
    }
}

fn oauth(path: &str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        auth: None,
        method: Method::POST,
        path: path.into(),
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.into(),
        format: Format::OAuth,
        workspace_host: false,
        expect: None,
    }
}

fn page(
    method: Method,
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
    workspace_host: bool,
) -> Case {
    Case {
        auth: None,
        method,
        path: path.into(),
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.into(),
        format: Format::Html,
        workspace_host,
        expect: None,
    }
}

fn deep_json(depth: usize) -> Vec<u8> {
    let mut s = String::new();
    for _ in 0..depth {
        s.push_str("{\"a\":");
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    s.into_bytes()
}

fn cases(id: &str) -> Vec<Case> {
    let mut c = Vec::new();
    let user = format!("/Users/{id}");
    // Malformed and hostile bodies on every SCIM write.
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"str\"".to_vec(),
        b"{\"userName\":".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"userName\":\"a\x00b@x.test\"}".to_vec(),
        deep_json(200),
        deep_json(5000),
        format!("{{\"userName\":\"{}\"}}", "a".repeat(1_100_000)).into_bytes(),
        json!({"userName": 12}).to_string().into_bytes(),
        json!({"userName": ["a"]}).to_string().into_bytes(),
        json!({"userName": {"a": 1}}).to_string().into_bytes(),
        json!({"userName": ""}).to_string().into_bytes(),
        json!({"userName": "x@y", "emails": [1, 2]}).to_string().into_bytes(),
        json!({"userName": "x@y", "name": "flat"}).to_string().into_bytes(),
        json!({"userName": "x@y", "active": "sometimes"}).to_string().into_bytes(),
        json!({"userName": "x@y", "active": 2}).to_string().into_bytes(),
        json!({"userName": "x@y", "roles": [{"value": "root"}]}).to_string().into_bytes(),
        json!({"userName": "x@y", "roles": [{"value": "admin", "primary": true}, {"value": "viewer", "primary": true}]}).to_string().into_bytes(),
        json!({"userName": "x@y", "emails": [{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}).to_string().into_bytes(),
        json!({"userName": "x@y", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "flat"}).to_string().into_bytes(),
        json!({"userName": "admin@acme.test"}).to_string().into_bytes(),
        json!({"userName": "nul\u{0}@acme.test"}).to_string().into_bytes(),
        json!({"userName": "ok@acme.test", "title": "a\u{0}b"}).to_string().into_bytes(),
        json!({"userName": "ADMIN@ACME.TEST"}).to_string().into_bytes(),
    ];
    for b in &bodies {
        c.push(scim(Method::POST, "/Users", b.clone()));
        c.push(scim(Method::PUT, &user, b.clone()));
    }
    // PATCH bodies.
    let patches: Vec<Value> = vec![
        json!({}),
        json!({"Operations": []}),
        json!({"Operations": "replace"}),
        json!({"Operations": [1]}),
        json!({"Operations": [{"op": "replace"}]}),
        json!({"Operations": [{"op": "explode", "path": "title", "value": "x"}]}),
        json!({"Operations": [{"op": "remove"}]}),
        json!({"Operations": [{"op": "replace", "path": "", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "nope", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "emails[", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "emails[type eq]", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "emails[type eq \"work\"]].value", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "name.givenName.more", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "urn:evil:schema:foo", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "meta.created", "value": "x"}]}),
        json!({"Operations": [{"op": "add", "path": "groups", "value": [{"value": "g"}]}]}),
        json!({"Operations": [{"op": "remove", "path": "userName"}]}),
        json!({"Operations": [{"op": "replace", "path": "userName", "value": null}]}),
        json!({"Operations": [{"op": "replace", "path": "active", "value": "perhaps"}]}),
        json!({"Operations": [{"op": "replace", "path": "roles[primary eq true].value", "value": "god"}]}),
        json!({"Operations": [{"op": "replace", "path": "emails[type eq \"nope\" or value co \"z\"].value", "value": "x@y"}]}),
        json!({"Operations": [{"op": "replace", "path": "title", "value": {"nested": true}}]}),
        json!({"Operations": [{"op": "replace", "value": "not an object"}]}),
        json!({"Operations": [{"op": "replace", "path": format!("emails[value eq \"{}\"]", "x".repeat(9000)), "value": "x"}]}),
        json!({"schemas": ["urn:wrong"], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}),
        json!({"Operations": [{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "bogus", "value": 1}]}),
    ];
    for p in &patches {
        c.push(scim(Method::PATCH, &user, p.to_string()));
    }
    c.push(scim(Method::PATCH, &user, deep_json(3000)));
    c.push(scim(Method::PATCH, &user, b"\xc3\x28".to_vec()));
    // Values of the wrong JSON type for an attribute of the schema: 400 invalidValue
    // on POST, PUT and PATCH alike, and nothing stored. Each body has its own userName,
    // so a body wrongly accepted shows as 201/200 rather than hiding behind a 409.
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let typed: Vec<(&str, Value)> = vec![
        ("externalId", json!(123)),
        ("externalId", json!(true)),
        ("externalId", json!({"value": "e"})),
        ("externalId", json!(["e"])),
        ("displayName", json!(5)),
        ("title", json!(false)),
        ("nickName", json!({"a": "b"})),
        ("name", json!(["Ada"])),
        ("name", json!(7)),
        ("name", json!({"givenName": 5})),
        ("name", json!({"familyName": ["Lovelace"]})),
        ("emails", json!("a@acme.test")),
        ("emails", json!(["a@acme.test"])),
        ("emails", json!([{"value": "a@acme.test", "type": 1}])),
        ("phoneNumbers", json!(5551234)),
        ("roles", json!("admin")),
        ("roles", json!(["admin"])),
        ("roles", json!([{"value": 1}])),
        ("active", json!([true])),
        ("active", json!({"value": true})),
        ("name.givenName", json!(5)),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
            json!(9),
        ),
        (ent, json!({"employeeNumber": 12345})),
        (ent, json!({"department": ["Ops"]})),
        (ent, json!({"manager": "mgr-1"})),
        (ent, json!({"manager": 42})),
        (ent, json!({"manager": {"value": 42}})),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
            json!(1.5),
        ),
    ];
    for (i, (key, value)) in typed.iter().enumerate() {
        let mut body = json!({"userName": format!("typed{i}@acme.test")});
        body[*key] = value.clone();
        c.push(wrong_type(Method::POST, "/Users", &body));
        c.push(wrong_type(Method::PUT, &user, &body));
    }
    // Capitalised names are the same attributes, with the same types.
    c.push(wrong_type(Method::POST, "/Users", &json!({"UserName": 12})));
    c.push(wrong_type(Method::PUT, &user, &json!({"userName": 12})));
    c.push(wrong_type(
        Method::PUT,
        &user,
        &json!({"userName": "keep@acme.test", "ExternalID": 12}),
    ));
    let typed_patches: Vec<Value> = vec![
        json!({"op": "replace", "path": "userName", "value": 123}),
        json!({"op": "Replace", "path": "UserName", "value": 123}),
        json!({"op": "replace", "path": "userName", "value": ["x@acme.test"]}),
        json!({"op": "replace", "path": "userName", "value": {"value": "x@acme.test"}}),
        json!({"op": "add", "path": "userName", "value": true}),
        json!({"op": "replace", "path": "externalId", "value": 5}),
        json!({"op": "replace", "path": "displayName", "value": 5}),
        json!({"op": "replace", "path": "title", "value": ["CTO"]}),
        json!({"op": "replace", "path": "name", "value": ["Ada"]}),
        json!({"op": "replace", "path": "name", "value": "Ada"}),
        json!({"op": "replace", "path": "name", "value": {"givenName": 5}}),
        json!({"op": "replace", "path": "name.givenName", "value": 5}),
        json!({"op": "replace", "path": "name.givenName", "value": ["Ada"]}),
        json!({"op": "add", "path": "emails", "value": "a@acme.test"}),
        json!({"op": "add", "path": "emails", "value": ["a@acme.test"]}),
        json!({"op": "replace", "path": "emails", "value": [{"value": 5}]}),
        json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": 5}),
        json!({"op": "replace", "path": "emails[type eq \"work\"]", "value": "a@acme.test"}),
        json!({"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": 5551234}),
        json!({"op": "add", "path": "roles", "value": "admin"}),
        json!({"op": "replace", "path": "roles[primary eq \"True\"].value", "value": 1}),
        json!({"op": "replace", "path": "active", "value": 1}),
        json!({"op": "replace", "path": "active", "value": [false]}),
        json!({"op": "replace", "path": format!("{ent}:employeeNumber"), "value": 42}),
        json!({"op": "replace", "path": format!("{ent}:manager"), "value": "mgr-1"}),
        json!({"op": "replace", "path": format!("{ent}:manager"), "value": 42}),
        json!({"op": "replace", "path": format!("{ent}:manager.value"), "value": 42}),
        json!({"op": "replace", "value": {"userName": 123}}),
        json!({"op": "replace", "value": {"externalId": 123}}),
        json!({"op": "replace", "value": {"name.givenName": 5}}),
        json!({"op": "replace", "value": {"name": ["Ada"]}}),
        json!({"op": "replace", "value": {"emails": "a@acme.test"}}),
        json!({"op": "replace", "value": {format!("{ent}:department"): 5}}),
        json!({"op": "replace", "value": {ent: {"employeeNumber": 7}}}),
        json!({"op": "add", "path": ent, "value": {"division": false}}),
    ];
    for op in &typed_patches {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
        c.push(wrong_type(Method::PATCH, &user, &body));
    }
    // A later op of the wrong type undoes the earlier, valid ones.
    c.push(wrong_type(
        Method::PATCH,
        &user,
        &json!({"Operations": [
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "replace", "path": "userName", "value": 123}
        ]}),
    ));
    // Filters: malformed and injections.
    let filters = [
        "foo",
        "userName",
        "userName eq",
        "userName eq \"x",
        "userName zz \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\")",
        "userName eq \"x\" and",
        "or userName eq \"x\"",
        "not userName eq \"x\"",
        "emails[type eq \"work\"",
        "emails[[type eq \"w\"]]",
        "emails[type eq \"w\"].value eq \"x\"",
        "name eq \"x\"",
        "active gt true",
        "userName eq true and",
        "meta.created gt \"yesterday\"",
        "password eq \"x\"",
        "groups eq \"x\"",
        "id sw \"0\"",
        "unknownAttr eq \"x\"",
        "urn:evil:User:userName eq \"x\"",
        "userName eq 'x'",
        "userName eq \"\\q\"",
        "userName eq \"x\" and (",
        "title pr pr",
        "emails[value eq \"x\"] and",
        "not (",
        "userName ge",
        "userName co 5",
        "active eq \"maybe\"",
        "emails[]",
        "emails[type eq \"w\" and]",
        "()",
        "userName eq null and",
        "meta.lastModified gt 12",
        "userName eq \"a\\u0000b\"",
        "userName eq \"x\" or 1=1 --",
    ];
    for f in filters {
        c.push(scim(
            Method::GET,
            format!("/Users?filter={}", enc(f)),
            Vec::new(),
        ));
    }
    let deep_filter = format!("{}userName eq \"x\"{}", "(".repeat(500), ")".repeat(500));
    c.push(scim(
        Method::GET,
        format!("/Users?filter={}", enc(&deep_filter)),
        Vec::new(),
    ));
    c.push(scim(
        Method::GET,
        format!(
            "/Users?filter={}",
            enc(&"userName eq \"x\" and ".repeat(2000))
        ),
        Vec::new(),
    ));
    // Pagination and query parameters.
    for q in [
        "count=abc",
        "startIndex=1.5",
        "count=1e9",
        "startIndex=NaN",
        "sortBy=nope",
        "sortOrder=sideways",
        "count=%00",
        "filter=%ff%fe",
    ] {
        c.push(scim(Method::GET, format!("/Users?{q}"), Vec::new()));
    }
    c.push(scim(
        Method::POST,
        "/Users/.search",
        json!({"filter": "foo"}).to_string(),
    ));
    c.push(scim(
        Method::POST,
        "/Users/.search",
        json!({"count": "many"}).to_string(),
    ));
    c.push(scim(
        Method::POST,
        "/Users/.search",
        json!({"filter": {"a": 1}}).to_string(),
    ));
    c.push(scim(Method::POST, "/Users/.search", b"[".to_vec()));
    // Ids and paths.
    for p in [
        "/Users/not-a-uuid",
        "/Users/00000000-0000-0000-0000-000000000000",
        "/Users/..%2f..%2fetc%2fpasswd",
        "/Users/%00",
        "/Users/' OR '1'='1",
        "/Users/1;DROP TABLE members",
        "/Groups",
        "/Groups/1",
        "/Bulk",
        "/Me",
        "/Users/x/y",
        "/Schemas/urn:nope",
        "/ResourceTypes/Group",
    ] {
        c.push(scim(Method::GET, p, Vec::new()));
    }
    // Ids that are not UTF-8 once percent-decoded.
    for p in [
        "/Users/%FF",
        "/Users/%C3%28",
        "/Users/a%80b",
        "/ResourceTypes/%FF",
        "/Schemas/%FE%FF",
    ] {
        c.push(scim(Method::GET, p, Vec::new()));
    }
    for m in [Method::PUT, Method::PATCH, Method::DELETE] {
        c.push(scim(
            m,
            "/Users/%FF",
            json!({"userName": "x@acme.test"}).to_string(),
        ));
    }
    c.push(scim(
        Method::GET,
        format!("/Users/{}", "a".repeat(10_000)),
        Vec::new(),
    ));
    // Methods.
    for (m, p) in [
        (Method::DELETE, user.clone()),
        (Method::POST, user.clone()),
        (Method::PUT, "/Users".into()),
        (Method::DELETE, "/Users".into()),
        (Method::PATCH, "/Users".into()),
        (Method::PUT, "/ServiceProviderConfig".into()),
        (Method::DELETE, "/Schemas".into()),
        (Method::PATCH, "/ResourceTypes".into()),
        (Method::GET, "/Users/.search".into()),
        (Method::from_bytes(b"PROPFIND").unwrap(), "/Users".into()),
        (Method::from_bytes(b"BREW").unwrap(), user.clone()),
    ] {
        c.push(scim(m, p, b"test".to_vec()));
    }
    // Bad credentials: 401 in the SCIM format.
    for auth in [
        "".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Basic YTpi".to_owned(),
        "bearer rc_pat_nope".to_owned(),
        format!("Bearer {}", "x".repeat(20_000)),
        "Bearer rc_at_expired".to_owned(),
        "Bearer rc_rt_not_an_access_token".to_owned(),
        "Token rc_pat_x".to_owned(),
        "Bearer a b c".to_owned(),
    ] {
        let mut case = scim(Method::GET, "/Users", Vec::new());
        case.auth = Some(auth);
        c.push(case);
    }
    // Content types that are not JSON at all.
    for ct in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ] {
        let mut case = scim(Method::POST, "/Users", b"userName=x".to_vec());
        case.content_type = Some(ct);
        c.push(case);
    }
    // OAuth endpoints.
    let oauth_bodies = [
        "",
        "grant_type=",
        "grant_type=password&username=a&password=b",
        "grant_type=client_credentials",
        "grant_type=authorization_code",
        "grant_type=authorization_code&code=x&redirect_uri=http://localhost:9/cb",
        "grant_type=refresh_token",
        "grant_type=refresh_token&refresh_token=rc_rt_nope",
        "grant_type=authorization_code&grant_type=refresh_token",
        "client_id=x&client_secret=y&grant_type=refresh_token&refresh_token=z",
        "%ff%fe=1",
        "grant_type=%00",
        "a=b&&&&===",
        "grant_type=authorization_code&code=' OR 1=1 --",
    ];
    for b in oauth_bodies {
        c.push(oauth("/oauth2/token", b));
    }
    c.push(oauth(
        "/oauth2/token",
        format!(
            "grant_type=refresh_token&refresh_token={}",
            "r".repeat(100_000)
        ),
    ));
    for b in [
        "",
        "token=x",
        "token=x&client_id=nope",
        "token_type_hint=refresh_token",
    ] {
        c.push(oauth("/oauth2/revoke", b));
        c.push(oauth("/oauth2/introspect", b));
    }
    // Authorization endpoint errors are pages (no redirect to an unchecked URI).
    for q in [
        "",
        "response_type=code",
        "client_id=nope&redirect_uri=http://evil.example/cb&response_type=code",
        "client_id=%00",
        "client_id=x&client_id=y",
        "redirect_uri=javascript:alert(1)",
    ] {
        c.push(page(
            Method::GET,
            format!("/oauth2/authorize?{q}"),
            Vec::new(),
            false,
        ));
    }
    // Pages: sign-in and forms with hostile input.
    for b in [
        "",
        "email=a",
        "email=a&password=b",
        "email=a&password=b&csrf=forged",
        "email=%ff&password=%00&csrf=x",
        &format!("email={}&password=x&csrf=y", "a".repeat(200_000)),
    ] {
        c.push(page(Method::POST, "/signin", b.as_bytes().to_vec(), true));
    }
    for (m, p, b) in [
        (Method::POST, "/signout", ""),
        (Method::POST, "/settings/scim", "enabled=on"),
        (Method::POST, "/settings/api/tokens", "name=x"),
        (Method::POST, "/settings/apps/1/revoke", "csrf=x"),
        (Method::POST, "/members/not-a-uuid", "csrf=x"),
        (Method::GET, "/members/' OR 1=1", ""),
        (Method::GET, "/..%2f..%2fetc/passwd", ""),
        (Method::GET, "/nope", ""),
    ] {
        c.push(page(m, p, b.as_bytes().to_vec(), true));
    }
    c.push(page(Method::POST, "/", b"subdomain=%ff%fe".to_vec(), false));
    c.push(page(
        Method::POST,
        "/",
        format!("subdomain={}", "a".repeat(100_000)).into_bytes(),
        false,
    ));
    c.push(page(Method::POST, "/", b"nothing=here".to_vec(), false));
    c
}

#[tokio::test]
async fn hostile_requests_get_clean_4xx_answers() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    let token = crate::support::ops::create_api_token(&app.db, "acme", "t", "t")
        .await
        .unwrap();
    let api = app.api();
    let created: Value = api
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&token)
        .json(&okta_create("keep@acme.test", "keep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let snapshot = || async {
        api.get(app.url("/scim/v2/Users?count=1000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = snapshot().await;

    let cases = cases(&id);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let url = if case.workspace_host {
            app.ws_url("acme", &case.path)
        } else {
            app.url(&case.path)
        };
        let mut req = api
            .request(case.method.clone(), url)
            .body(case.body.clone());
        match (&case.auth, case.format) {
            (Some(a), _) if !a.is_empty() => req = req.header("authorization", a),
            (Some(_), _) => {}
            (None, Format::Scim) => req = req.bearer_auth(&token),
            (None, _) => {}
        }
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!(
                    "{} {}: transport error {e}",
                    case.method,
                    short(&case.path)
                ));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let ok_status =
            (400..500).contains(&status) || (case.format == Format::Html && status == 303);
        let ok_format = match case.format {
            Format::Scim => {
                ct.starts_with("application/scim+json")
                    && serde_json::from_str::<Value>(&text).is_ok_and(|v| {
                        v["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error"
                            && v["status"] == json!(status.to_string())
                            && v["detail"].as_str().is_some_and(|d| !d.is_empty())
                    })
            }
            Format::OAuth => {
                ct.starts_with("application/json")
                    && serde_json::from_str::<Value>(&text)
                        .is_ok_and(|v| v["error"].is_string() || v["active"] == false)
            }
            Format::Html => {
                status == 303 || (ct.starts_with("text/html") && text.contains("<html"))
            }
        };
        // Revocation and introspection answer 200 for unknown tokens (RFC 7009, 7662).
        let rfc_200 = case.format == Format::OAuth && status == 200 && ok_format;
        let as_expected = case.expect.is_none_or(|(want, scim_type)| {
            status == want
                && scim_type.is_none_or(|t| {
                    serde_json::from_str::<Value>(&text).is_ok_and(|v| v["scimType"] == t)
                })
        });
        if !(ok_status || rfc_200) || !ok_format || !as_expected {
            let body = String::from_utf8_lossy(&case.body);
            failures.push(format!(
                "{} {} [{}] -> {status} {ct}: {}",
                case.method,
                short(&case.path),
                short(&body),
                short(&text)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Valid filters that carry injection text are just strings: bound, matching nothing.
    for f in [
        "userName eq \"x'; DROP TABLE members; --\"",
        "userName eq \"\\u00ff\" or title co \"%_\\\\\"",
        "externalId eq \"1 OR 1=1\"",
    ] {
        let r: Value = api
            .get(app.url(&format!("/scim/v2/Users?filter={}", enc(f))))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["totalResults"], json!(0), "{f}: {r}");
    }

    let health = api.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "still healthy");
    assert_eq!(snapshot().await, before, "nothing stored changed");
    app.stop().await;
}

fn short(s: &str) -> String {
    let s: String = s.chars().take(120).collect();
    s.replace('\n', " ")
}
