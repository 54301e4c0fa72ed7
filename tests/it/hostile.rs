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
        "/Groups/1",
        "/Bulk",
        "/Me",
        "/Users/x/y",
        "/Schemas/urn:nope",
        "/ResourceTypes/Team",
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

/// SCIM Groups (issue 14): `gid` is a team holding member `member`; `other` is a
/// second team, whose name the duplicate cases reuse.
fn group_cases(gid: &str, member: &str, other: &str) -> Vec<Case> {
    let mut c = Vec::new();
    let team = format!("/Groups/{gid}");
    let unknown = "0190aaaa-0000-7000-8000-000000000000";
    let deep_value = {
        let mut v = json!("x");
        for _ in 0..300 {
            v = json!({"value": v});
        }
        v
    };
    let deep_text = {
        let mut s = String::from("{\"displayName\":\"deep\",\"members\":[{\"value\":");
        s.push_str(&"[".repeat(3000));
        s.push_str(&"]".repeat(3000));
        s.push_str("}]}");
        s.into_bytes()
    };
    // Bodies for POST /Groups and PUT of the team: every one must be refused. Each
    // names its own team, so one wrongly accepted shows as 201/200, not as a 409.
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"str\"".to_vec(),
        b"{\"displayName\":".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"displayName\":\"a\x00b\"}".to_vec(),
        deep_json(200),
        deep_json(5000),
        deep_text,
        format!("{{\"displayName\":\"{}\"}}", "g".repeat(1_100_000)).into_bytes(),
        format!(
            "{{\"displayName\":\"huge members\",\"members\":[{}]}}",
            vec![format!("{{\"value\":\"{member}\"}}"); 30_000].join(",")
        )
        .into_bytes(),
        json!({}).to_string().into_bytes(),
        json!({"displayName": 12}).to_string().into_bytes(),
        json!({"displayName": ["a"]}).to_string().into_bytes(),
        json!({"displayName": {"a": 1}}).to_string().into_bytes(),
        json!({"displayName": null}).to_string().into_bytes(),
        json!({"displayName": ""}).to_string().into_bytes(),
        json!({"displayName": "nul\u{0}team"})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-ext-nul", "externalId": "a\u{0}b"})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-ext-num", "externalId": 5})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-str", "members": "everyone"})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-obj", "members": {"value": member}})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-num", "members": 7})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-ints", "members": [1, 2]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-strs", "members": [member]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-vnum", "members": [{"value": 5}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-vnull", "members": [{"value": null}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-varr", "members": [{"value": [member]}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-vobj", "members": [{"value": {"value": member}}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-deep", "members": [{"value": deep_value}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-novalue", "members": [{"display": "no value"}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-bad", "members": [{"value": "not-a-uuid"}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-unknown", "members": [{"value": unknown}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-nul", "members": [{"value": format!("{member}\u{0}")}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-team", "members": [{"value": gid}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-mixed", "members": [{"value": member}, {"value": unknown}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": "g-m-sql", "members": [{"value": "' OR 1=1 --"}]})
            .to_string()
            .into_bytes(),
        json!({"displayName": other.to_uppercase()})
            .to_string()
            .into_bytes(),
    ];
    for b in &bodies {
        c.push(scim(Method::POST, "/Groups", b.clone()));
        c.push(scim(Method::PUT, &team, b.clone()));
    }
    // Member values of the wrong JSON type: exactly 400 invalidValue.
    for body in [
        json!({"displayName": "t-vnum", "members": [{"value": 5}]}),
        json!({"displayName": "t-vbool", "members": [{"value": true}]}),
        json!({"displayName": "t-vnull", "members": [{"value": null}]}),
        json!({"displayName": "t-num", "members": 7}),
        json!({"displayName": 12}),
    ] {
        c.push(wrong_type(Method::POST, "/Groups", &body));
        c.push(wrong_type(Method::PUT, &team, &body));
    }
    // PATCH bodies.
    let m = |v: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v});
    let patches: Vec<Value> = vec![
        json!({}),
        json!({"Operations": []}),
        json!({"Operations": null}),
        json!({"Operations": "add"}),
        json!({"Operations": {"op": "add", "path": "members", "value": [{"value": member}]}}),
        json!({"Operations": 5}),
        m(json!([1])),
        m(json!([null])),
        m(json!([[{"op": "add"}]])),
        m(json!([{"op": "add"}])),
        m(json!([{"op": "add", "path": "members"}])),
        m(json!([{"op": 5, "path": "members", "value": []}])),
        m(json!([{"op": "explode", "path": "members", "value": []}])),
        m(json!([{"op": "add", "path": 5, "value": []}])),
        m(json!([{"op": "add", "path": "", "value": []}])),
        m(json!([{"op": "add", "path": "members[value eq", "value": [{"value": member}]}])),
        m(json!([{"op": "remove", "path": "members[value eq"}])),
        m(json!([{"op": "remove", "path": "members[value eq \"x\""}])),
        m(json!([{"op": "remove", "path": "members[value eq \"x\"]]"}])),
        m(json!([{"op": "remove", "path": "members[]"}])),
        m(json!([{"op": "remove", "path": "members[value zz \"x\"]"}])),
        m(json!([{"op": "remove", "path": "members[value eq \"x\" or]"}])),
        m(json!([{"op": "remove", "path": "members[[value eq \"x\"]]"}])),
        m(json!([{"op": "remove", "path": "members.value.more"}])),
        m(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", "x".repeat(9000))}])),
        m(
            json!([{"op": "remove", "path": format!("{}members[value eq \"x\"]{}", "(".repeat(500), ")".repeat(500))}]),
        ),
        m(json!([{"op": "replace", "path": "nope", "value": "x"}])),
        m(json!([{"op": "replace", "path": "urn:evil:schema:foo", "value": "x"}])),
        m(json!([{"op": "replace", "path": "id", "value": "x"}])),
        m(json!([{"op": "replace", "path": "meta.created", "value": "x"}])),
        m(json!([{"op": "replace", "path": "displayName", "value": null}])),
        m(json!([{"op": "replace", "path": "displayName", "value": ""}])),
        m(json!([{"op": "replace", "path": "displayName", "value": 5}])),
        m(json!([{"op": "replace", "path": "displayName", "value": ["a"]}])),
        m(json!([{"op": "replace", "path": "displayName", "value": "a\u{0}b"}])),
        m(json!([{"op": "replace", "path": "displayName", "value": other.to_lowercase()}])),
        m(json!([{"op": "remove", "path": "displayName"}])),
        m(json!([{"op": "replace", "path": "externalId", "value": 5}])),
        m(json!([{"op": "add", "path": "members", "value": "everyone"}])),
        m(json!([{"op": "add", "path": "members", "value": 5}])),
        m(json!([{"op": "add", "path": "members", "value": [5]}])),
        m(json!([{"op": "add", "path": "members", "value": [member]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": 5}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": null}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": [member]}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": deep_value.clone()}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"display": "no value"}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": "not-a-uuid"}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": unknown}]}])),
        m(json!([{"op": "add", "path": "members", "value": [{"value": gid}]}])),
        m(json!([{"op": "Remove", "path": "members", "value": "everyone"}])),
        m(json!([{"op": "Remove", "path": "members", "value": [{"value": 5}]}])),
        m(
            json!([{"op": "replace", "path": "members", "value": [{"value": member}, {"value": 5}]}]),
        ),
        m(json!([{"op": "replace", "path": "members", "value": {"value": 5}}])),
        m(json!([{"op": "replace", "value": "not an object"}])),
        m(json!([{"op": "replace", "value": ["displayName"]}])),
        m(json!([{"op": "replace", "value": {"displayName": 5}}])),
        m(json!([{"op": "replace", "value": {"members": "x"}}])),
        m(json!([{"op": "add", "value": {"members": [{"value": unknown}]}}])),
        json!({"schemas": ["urn:wrong"], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}),
        // Valid ops first, then one that fails: the whole request fails.
        m(json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": 5}]}
        ])),
        m(json!([
            {"op": "Remove", "path": "members", "value": [{"value": member}]},
            {"op": "Add", "path": "members", "value": [{"value": unknown}]}
        ])),
    ];
    for p in &patches {
        c.push(scim(Method::PATCH, &team, p.to_string()));
    }
    c.push(scim(Method::PATCH, &team, deep_json(3000)));
    c.push(scim(Method::PATCH, &team, b"\xc3\x28".to_vec()));
    c.push(scim(
        Method::PATCH,
        &team,
        format!(
            "{{\"Operations\":[{{\"op\":\"add\",\"path\":\"members\",\"value\":[{}]}}]}}",
            "[".repeat(2000) + &"]".repeat(2000)
        ),
    ));
    // Wrong JSON types in a PATCH: exactly 400 invalidValue.
    for op in [
        json!({"op": "add", "path": "members", "value": [{"value": 5}]}),
        json!({"op": "Add", "path": "members", "value": [{"value": true}]}),
        json!({"op": "replace", "path": "members", "value": [{"value": member}, {"value": 5}]}),
        json!({"op": "replace", "path": "displayName", "value": 5}),
        json!({"op": "replace", "value": {"displayName": 5}}),
    ] {
        c.push(wrong_type(
            Method::PATCH,
            &team,
            &json!({"Operations": [op]}),
        ));
    }
    // Filters on /Groups: malformed, or on attributes a team does not have.
    let filters = [
        "displayName",
        "displayName eq",
        "displayName eq \"x",
        "displayName zz \"x\"",
        "(displayName eq \"x\"",
        "displayName eq \"x\" and",
        "members[value eq",
        "members[value eq \"x\"",
        "members[value eq \"x\"]]",
        "members[]",
        "members[value eq \"x\"].value eq \"y\"",
        "userName eq \"x\"",
        "active eq true",
        "emails.value eq \"x\"",
        "nope eq \"x\"",
        "members.nope eq \"x\"",
        "urn:evil:Group:displayName eq \"x\"",
        "displayName eq 'x'",
        "displayName co 5",
        "displayName eq \"x\" or 1=1 --",
    ];
    for f in filters {
        c.push(scim(
            Method::GET,
            format!("/Groups?filter={}", enc(f)),
            Vec::new(),
        ));
    }
    let deep_filter = format!("{}displayName eq \"x\"{}", "(".repeat(500), ")".repeat(500));
    c.push(scim(
        Method::GET,
        format!("/Groups?filter={}", enc(&deep_filter)),
        Vec::new(),
    ));
    for q in [
        "count=abc",
        "startIndex=1.5",
        "startIndex=NaN",
        "count=%00",
        "filter=%ff%fe",
        "sortBy=nope",
    ] {
        c.push(scim(Method::GET, format!("/Groups?{q}"), Vec::new()));
    }
    for body in [
        json!({"filter": "foo"}).to_string(),
        json!({"filter": "userName eq \"x\""}).to_string(),
        json!({"filter": {"a": 1}}).to_string(),
        json!({"count": "many"}).to_string(),
        "[".to_owned(),
    ] {
        c.push(scim(Method::POST, "/Groups/.search", body));
    }
    // Ids and paths.
    for p in [
        "/Groups/not-a-uuid".to_owned(),
        "/Groups/00000000-0000-0000-0000-000000000000".to_owned(),
        format!("/Groups/{unknown}"),
        format!("/Groups/{member}"),
        "/Groups/..%2f..%2fetc%2fpasswd".to_owned(),
        "/Groups/%00".to_owned(),
        "/Groups/%FF".to_owned(),
        "/Groups/' OR '1'='1".to_owned(),
        format!("/Groups/{gid}/members"),
        format!("/Groups/{}", "a".repeat(10_000)),
    ] {
        c.push(scim(Method::GET, p, Vec::new()));
    }
    for m in [Method::PUT, Method::PATCH, Method::DELETE] {
        for p in ["/Groups/%FF", "/Groups/not-a-uuid"] {
            c.push(scim(
                m.clone(),
                p,
                json!({"displayName": "x", "Operations": [{"op": "remove", "path": "members"}]})
                    .to_string(),
            ));
        }
    }
    // Methods.
    for (m, p) in [
        (Method::POST, team.clone()),
        (Method::PUT, "/Groups".to_owned()),
        (Method::DELETE, "/Groups".to_owned()),
        (Method::PATCH, "/Groups".to_owned()),
        (Method::GET, "/Groups/.search".to_owned()),
        (
            Method::from_bytes(b"PROPFIND").unwrap(),
            "/Groups".to_owned(),
        ),
        (Method::from_bytes(b"BREW").unwrap(), team.clone()),
    ] {
        c.push(scim(m, p, b"test".to_vec()));
    }
    // Content types that are not JSON.
    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        let mut case = scim(Method::POST, "/Groups", b"displayName=x".to_vec());
        case.content_type = Some(ct);
        c.push(case);
    }
    // Users: groups is read-only, whichever way a PATCH names it.
    for op in [
        json!({"op": "add", "path": "groups", "value": [{"value": gid}]}),
        json!({"op": "Replace", "path": "groups", "value": []}),
        json!({"op": "remove", "path": format!("groups[value eq \"{gid}\"]")}),
        json!({"op": "remove", "path": "groups"}),
    ] {
        c.push(Case {
            expect: Some((400, Some("mutability"))),
            ..scim(
                Method::PATCH,
                format!("/Users/{member}"),
                json!({"Operations": [op]}).to_string(),
            )
        });
    }
    c
}

#[tokio::test]
async fn hostile_requests_get_clean_4xx_answers() {
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    crate::support::ops::set_scim_teams(&app.db, "acme", true)
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
    let mut team_ids = Vec::new();
    for (name, members) in [("Keep", vec![json!({"value": id})]), ("Other", vec![])] {
        let team: Value = api
            .post(app.url("/scim/v2/Groups"))
            .bearer_auth(&token)
            .json(
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                          "displayName": name, "members": members}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        team_ids.push(team["id"].as_str().expect("team created").to_owned());
    }
    let snapshot = || async {
        let mut all = Vec::new();
        for path in ["/scim/v2/Users?count=1000", "/scim/v2/Groups?count=1000"] {
            all.push(
                api.get(app.url(path))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap(),
            );
        }
        all
    };
    let before = snapshot().await;

    let mut cases = cases(&id);
    cases.extend(group_cases(&team_ids[0], &id, "Other"));
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
