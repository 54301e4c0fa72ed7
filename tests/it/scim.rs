//! The SCIM API as Okta, Entra ID and custom clients use it. Request shapes are
//! replayed literally from ../shared/interop.md.

use crate::support::scim::{Scim, answer, okta_create};
use crate::support::{assert_scim_error, enc};
use reqwest::Method;
use serde_json::{Value, json};

fn filter_path(filter: &str) -> String {
    format!("/Users?filter={}&startIndex=1&count=100", enc(filter))
}

#[tokio::test]
async fn okta_existence_check_create_and_duplicate() {
    let s = Scim::start().await;
    // Not found: the exact empty ListResponse.
    let a = s
        .get("/Users?filter=userName%20eq%20%22a%40b.c%22&startIndex=1&count=100")
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], json!(0));
    assert_eq!(a.body["startIndex"], json!(1));
    assert_eq!(a.body["itemsPerPage"], json!(0));
    assert_eq!(a.body["Resources"], json!([]));

    let created = s.post("/Users", okta_create("a@b.c", "00u1")).await;
    assert_eq!(created.status, 201);
    let u = &created.body;
    assert_eq!(u["userName"], "a@b.c");
    assert_eq!(
        u["name"],
        json!({"givenName": "Ada", "familyName": "Lovelace"})
    );
    assert_eq!(
        u["emails"],
        json!([{"primary": true, "value": "a@b.c", "type": "work"}])
    );
    assert_eq!(u["displayName"], "Ada Lovelace");
    assert_eq!(u["locale"], "en-US");
    assert_eq!(u["externalId"], "00u1");
    assert_eq!(u["active"], true);
    assert_eq!(u["groups"], json!([]));
    assert!(u.get("password").is_none(), "password is never returned");
    // No role sent: the member is a contributor, and the resource says so (Okta's
    // import shows the real role).
    assert_eq!(
        u["roles"],
        json!([{"value": "contributor", "type": "role", "primary": true}]),
        "{u}"
    );
    assert_eq!(u["meta"]["resourceType"], "User");
    let id = u["id"].as_str().unwrap();
    assert_eq!(u["meta"]["location"], s.url(&format!("/Users/{id}")));
    assert_eq!(
        created.headers["etag"],
        u["meta"]["version"].as_str().unwrap()
    );
    assert_eq!(
        created.headers["location"],
        s.url(&format!("/Users/{id}")).as_str()
    );

    // Found, with the userName in capitals.
    let a = s.get(&filter_path("userName eq \"A@B.C\"")).await;
    assert_eq!(a.body["totalResults"], json!(1));
    assert_eq!(a.body["itemsPerPage"], json!(1));
    assert_eq!(a.body["Resources"][0]["id"], id);

    // Duplicate, in another case: 409 uniqueness.
    let dup = s.post("/Users", okta_create("A@B.C", "00u2")).await;
    assert_scim_error(&dup, 409, Some("uniqueness"));
    // Duplicate externalId too.
    let dup = s.post("/Users", okta_create("other@b.c", "00u1")).await;
    assert_scim_error(&dup, 409, Some("uniqueness"));

    // The password was not stored anywhere.
    let m = rollcall::store::members::by_id(&s.app.db, 1, uuid::Uuid::parse_str(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!m.resource.0.to_string().contains("Tr0ub4dor"));
    assert!(m.scim_managed);
    assert_eq!(
        m.role.as_str(),
        "contributor",
        "no role given means contributor"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn okta_get_then_put_round_trip_and_deactivation() {
    let s = Scim::start().await;
    let u = s.create("grace@acme.test").await;
    let id = u["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");

    // Okta GETs the user and PUTs the whole object back, id, meta and groups included.
    let got = s.get(&path).await;
    assert_eq!(got.status, 200);
    let mut back = got.body.clone();
    back["name"]["familyName"] = json!("Hopper");
    let put = s.put(&path, back).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["name"]["familyName"], "Hopper");
    assert_eq!(put.body["name"]["givenName"], "Ada");
    assert_eq!(put.body["id"], id.as_str());
    assert_ne!(
        put.body["meta"]["version"], got.body["meta"]["version"],
        "version changes on every write"
    );

    // Custom Okta apps use PUT even for active.
    let mut off = put.body.clone();
    off["active"] = json!(false);
    assert_eq!(s.put(&path, off).await.body["active"], false);

    // Catalog apps: PATCH with a pathless op whose value is an object.
    for active in [true, false, true] {
        let a = s
            .patch(
                &path,
                json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":active}}]}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["active"], active);
        assert_eq!(
            a.body["name"]["familyName"], "Hopper",
            "other attributes untouched"
        );
    }
    s.app.stop().await;
}

#[tokio::test]
async fn okta_conformance_checks() {
    let s = Scim::start().await;
    // POST with a non-JSON body to discovery endpoints: 405, decided before the body.
    for path in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
        let a = s
            .raw(
                Method::POST,
                path,
                Some("application/scim+json"),
                b"test".to_vec(),
            )
            .await;
        assert_scim_error(&a, 405, None);
    }
    // Unknown id: 404 with the Error schema and a detail.
    let a = s.get("/Users/010000000-0000-0000-0000-000000000000").await;
    assert_scim_error(&a, 404, None);
    let a = s.get(&format!("/Users/{}", uuid::Uuid::now_v7())).await;
    assert_scim_error(&a, 404, None);
    // A bad token: 401, Error schema, "status": "401", WWW-Authenticate.
    let resp = s
        .app
        .api()
        .get(s.url("/Users"))
        .bearer_auth("rc_pat_nope")
        .send()
        .await
        .unwrap();
    let a = answer(resp).await;
    assert_scim_error(&a, 401, None);
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let resp = s.app.api().get(s.url("/Users")).send().await.unwrap();
    assert_scim_error(&answer(resp).await, 401, None);
    // A bare filter: 400 invalidFilter with a detail that says where.
    let a = s.get("/Users?filter=foo").await;
    assert_scim_error(&a, 400, Some("invalidFilter"));
    // Discovery documents.
    let spc = s.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["filter"]["maxResults"], json!(1000));
    let rt = s.get("/ResourceTypes/User").await;
    assert_eq!(rt.body["endpoint"], "/Users");
    let schemas = s.get("/Schemas").await;
    assert_eq!(schemas.body["totalResults"], json!(3));
    let user = s
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    assert_eq!(user.status, 200);
    let roles = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "roles")
        .unwrap();
    let value = roles["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "value")
        .unwrap();
    assert_eq!(
        value["canonicalValues"],
        json!(["admin", "maker", "contributor", "viewer"])
    );
    assert_scim_error(&s.get("/Schemas/urn:nope").await, 404, None);
    // Groups exist, behind the workspace's "Manage teams with SCIM" switch.
    let groups = s.get("/Groups").await;
    assert_scim_error(&groups, 403, None);
    assert!(
        groups.body["detail"]
            .as_str()
            .unwrap()
            .contains("scim-teams")
    );
    s.app.stop().await;
}

#[tokio::test]
async fn okta_import_pages_through_1000_members() {
    let s = Scim::start().await;
    // Seed through the store for speed; the listing is what is under test.
    for i in 0..999 {
        let body = okta_create(&format!("user{i:04}@acme.test"), &format!("ext{i}"));
        let canonical = rollcall::scim::resource::normalize_user(&body).unwrap();
        rollcall::store::members::create(
            &s.app.db,
            1,
            &rollcall::app::provisioning::member_data(canonical),
            None,
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let a = s.get(&format!("/Users?startIndex={start}&count=100")).await;
        assert_eq!(a.status, 200);
        let total = a.body["totalResults"]
            .as_u64()
            .expect("integer totalResults");
        assert_eq!(total, 1000);
        assert_eq!(a.body["startIndex"].as_u64(), Some(start));
        let page = a.body["Resources"].as_array().unwrap();
        assert_eq!(a.body["itemsPerPage"].as_u64(), Some(page.len() as u64));
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        start += 100;
        if start > total {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        1000,
        "no member twice, none missing: order is stable across pages"
    );

    // With a filter too, pagination stays right.
    let f = enc("userName sw \"user00\"");
    let a = s
        .get(&format!("/Users?filter={f}&startIndex=91&count=5"))
        .await;
    assert_eq!(a.body["totalResults"], json!(100));
    assert_eq!(a.body["itemsPerPage"], json!(5));
    assert_eq!(a.body["Resources"][0]["userName"], "user0090@acme.test");
    // count=0: only the total. startIndex below 1 counts as 1. count capped at 1000.
    let a = s.get("/Users?count=0").await;
    assert_eq!(
        (
            a.body["totalResults"].clone(),
            a.body["itemsPerPage"].clone()
        ),
        (json!(1000), json!(0))
    );
    assert_eq!(a.body["Resources"], json!([]));
    let a = s.get("/Users?startIndex=-5&count=2").await;
    assert_eq!(a.body["startIndex"], json!(1));
    assert_eq!(a.body["itemsPerPage"], json!(2));
    let a = s.get("/Users?count=5000").await;
    assert_eq!(a.body["itemsPerPage"], json!(1000));
    let a = s
        .get("/Users?startIndex=999999999999999999999&count=10")
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["itemsPerPage"], json!(0));
    assert_scim_error(&s.get("/Users?count=ten").await, 400, Some("invalidValue"));
    s.app.stop().await;
}

#[tokio::test]
async fn entra_test_connection_and_lookups() {
    let s = Scim::start().await;
    let guid = uuid::Uuid::new_v4();
    let a = s
        .get(&filter_path(&format!("userName eq \"{guid}\"")))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], json!(0));
    assert_eq!(a.body["Resources"], json!([]));
    let a = s
        .get(&filter_path(&format!("externalId eq \"{guid}\"")))
        .await;
    assert_eq!(a.body["totalResults"], json!(0));

    // Entra's create: enterprise extension, name.formatted, roles: [], application/json.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "a1b2",
        "userName": "Alan.Turing@contoso.test",
        "active": true,
        "displayName": "Alan Turing",
        "emails": [{"primary": true, "type": "work", "value": "Alan.Turing@contoso.test"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Alan Turing", "familyName": "Turing", "givenName": "Alan"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Cryptanalysis", "employeeNumber": "1912"}
    });
    let a = s
        .raw(
            Method::POST,
            "/Users",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["name"]["formatted"], "Alan Turing");
    assert_eq!(
        a.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Cryptanalysis"
    );
    assert!(a.body["schemas"].as_array().unwrap().contains(&json!(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    )));

    for f in [
        "externalId eq \"a1b2\"",
        "userName eq \"alan.turing@contoso.test\"",
        "emails.value eq \"ALAN.TURING@contoso.test\"",
        "emails[type eq \"work\" and primary eq true and value co \"contoso\"]",
        "userName eq \"Alan.Turing@contoso.test\" and active eq true",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1912\"",
    ] {
        let a = s.get(&filter_path(f)).await;
        assert_eq!(a.body["totalResults"], json!(1), "{f}: {}", a.body);
    }
    // externalId is case-exact.
    assert_eq!(
        s.get(&filter_path("externalId eq \"A1B2\"")).await.body["totalResults"],
        json!(0)
    );
    // Duplicate create: 409.
    let a = s
        .raw(Method::POST, "/Users", None, body.to_string().into_bytes())
        .await;
    assert_scim_error(&a, 409, Some("uniqueness"));
    s.app.stop().await;
}

#[tokio::test]
async fn entra_patch_shapes() {
    let s = Scim::start().await;
    let u = s.create("kay@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let op = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});

    // Capitalised ops and string booleans.
    for (v, want) in [
        ("False", false),
        ("True", true),
        ("false", false),
        ("true", true),
    ] {
        let a = s
            .patch(
                &path,
                op(json!([{"op": "Replace", "path": "active", "value": v}])),
            )
            .await;
        assert_eq!(a.body["active"], want, "{v}: {}", a.body);
    }
    let a = s
        .patch(
            &path,
            op(json!([{"op": "Add", "path": "active", "value": "False"}])),
        )
        .await;
    assert_eq!(a.body["active"], false);

    // emails[type eq "work"].value updates the work email, no literal attribute.
    let a = s.patch(&path, op(json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "kay.new@acme.test"}]))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["emails"],
        json!([{"primary": true, "type": "work", "value": "kay.new@acme.test"}])
    );
    assert!(a.body.as_object().unwrap().keys().all(|k| !k.contains('[')));
    assert_eq!(
        s.get(&filter_path("emails.value eq \"kay.new@acme.test\""))
            .await
            .body["totalResults"],
        json!(1)
    );

    // name.familyName, userName, the enterprise extension, the primary role.
    let a = s
        .patch(
            &path,
            op(json!([
                {"op": "Replace", "path": "name.familyName", "value": "Jones"},
                {"op": "Replace", "path": "userName", "value": "kay.jones@acme.test"},
                {"op": "Add", "path": format!("{ent}:employeeNumber"), "value": "42"},
                {"op": "Add", "path": format!("{ent}:manager"), "value": {"value": "mgr-1"}},
                {"op": "Replace", "path": "roles[primary eq \"True\"].value", "value": "Admin"}
            ])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"]["familyName"], "Jones");
    assert_eq!(a.body["name"]["givenName"], "Ada", "other name parts kept");
    assert_eq!(a.body["userName"], "kay.jones@acme.test");
    assert_eq!(a.body[ent]["employeeNumber"], "42");
    assert_eq!(a.body[ent]["manager"]["value"], "mgr-1");
    assert_eq!(
        a.body["roles"],
        json!([{"value": "admin", "type": "role", "primary": true}])
    );

    // Newer Entra: lowercase ops, pathless replace with dotted and URN keys.
    let a = s
        .patch(
            &path,
            op(json!([{"op": "replace", "value": {"name.givenName": "Katherine", format!("{ent}:department"): "Ops", "active": true}}])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["name"],
        json!({"givenName": "Katherine", "familyName": "Jones"})
    );
    assert_eq!(a.body[ent]["department"], "Ops");
    assert_eq!(a.body[ent]["employeeNumber"], "42");

    // Manager replaced as a list, then removed; an attribute removed by path.
    let a = s.patch(&path, op(json!([{"op": "Replace", "path": format!("{ent}:manager"), "value": [{"value": "mgr-2"}]}]))).await;
    assert_eq!(a.body[ent]["manager"]["value"], "mgr-2");
    let a = s
        .patch(&path, op(json!([{"op": "Remove", "path": format!("{ent}:manager")}, {"op": "Remove", "path": "locale"}])))
        .await;
    assert!(a.body[ent].get("manager").is_none(), "{}", a.body);
    assert!(a.body.get("locale").is_none());
    // The core URN-qualified roles path.
    let a = s
        .patch(&path, op(json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:roles", "value": [{"value": "maker", "primary": "True"}]}])))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let primary: Vec<_> = a.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["primary"] == true)
        .collect();
    assert_eq!(primary.len(), 1);
    assert_eq!(primary[0]["value"], "maker");
    s.app.stop().await;
}

#[tokio::test]
async fn patch_errors_leave_the_member_unchanged() {
    let s = Scim::start().await;
    let u = s.create("lin@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let before = s.get(&path).await.body;
    let op = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let cases = [
        (
            op(
                json!([{"op": "replace", "path": "name.givenName", "value": "Changed"}, {"op": "replace", "path": "nope", "value": 1}]),
            ),
            "invalidPath",
        ),
        (
            op(json!([{"op": "replace", "path": "id", "value": "x"}])),
            "mutability",
        ),
        (
            op(json!([{"op": "remove", "path": "userName"}])),
            "mutability",
        ),
        (
            op(
                json!([{"op": "replace", "path": "roles[primary eq true].value", "value": "owner"}]),
            ),
            "invalidValue",
        ),
        (
            op(
                json!([{"op": "replace", "path": "emails[type eq \"home\" or primary eq false].value", "value": "x@y"}]),
            ),
            "noTarget",
        ),
        (
            op(json!([{"op": "frobnicate", "path": "title", "value": "x"}])),
            "",
        ),
    ];
    for (body, scim_type) in cases {
        let a = s.patch(&path, body).await;
        assert_eq!(a.status, 400, "{}", a.body);
        if !scim_type.is_empty() {
            assert_eq!(a.body["scimType"], scim_type, "{}", a.body);
        }
    }
    assert_eq!(
        s.get(&path).await.body,
        before,
        "a failed PATCH changes nothing"
    );
    // Bad bodies.
    assert_scim_error(
        &s.raw(
            Method::PATCH,
            &path,
            Some("application/scim+json"),
            b"{not json".to_vec(),
        )
        .await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(
        &s.raw(Method::POST, "/Users", None, vec![b' '; 4]).await,
        400,
        Some("invalidSyntax"),
    );
    let huge = format!("{{\"userName\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    assert_scim_error(
        &s.raw(
            Method::POST,
            "/Users",
            Some("application/json"),
            huge.into_bytes(),
        )
        .await,
        413,
        None,
    );
    assert_scim_error(
        &s.post(
            "/Users",
            json!({"userName": "x@y", "roles": [{"value": "owner"}]}),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &s.post("/Users", json!({"name": {"givenName": "No userName"}}))
            .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &s.post("/Users", json!({"userName": "x@y", "active": "maybe"}))
            .await,
        400,
        Some("invalidValue"),
    );
    assert_eq!(s.get(&path).await.body, before);
    s.app.stop().await;
}

/// Issue 12, item 10: a value of the wrong JSON type changed the stored member (a
/// number for `userName` was stored as its text). Each write method refuses it with
/// `400 invalidValue`, and a GET after shows the member as it was.
#[tokio::test]
async fn values_of_the_wrong_type_are_refused_and_change_nothing() {
    let s = Scim::start().await;
    let u = s.create("ola@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let before = s.get(&path).await.body;
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let patch = |op: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
    let mut put = okta_create("ola@acme.test", "ext-ola@acme.test");
    put["externalId"] = json!(42);
    for a in [
        s.patch(
            &path,
            patch(json!({"op": "replace", "path": "userName", "value": 123})),
        )
        .await,
        s.patch(
            &path,
            patch(json!({"op": "replace", "value": {"userName": 123}})),
        )
        .await,
        s.patch(
            &path,
            patch(json!({"op": "add", "path": "name", "value": ["Ola"]})),
        )
        .await,
        s.patch(
            &path,
            patch(json!({"op": "add", "path": "emails", "value": "ola@home.test"})),
        )
        .await,
        s.patch(
            &path,
            patch(json!({"op": "replace", "path": format!("{ent}:manager"), "value": 7})),
        )
        .await,
        s.put(&path, put).await,
        s.put(&path, json!({"userName": "ola@acme.test", "name": "Ola"}))
            .await,
    ] {
        assert_scim_error(&a, 400, Some("invalidValue"));
    }
    assert_eq!(s.get(&path).await.body, before, "nothing stored changed");
    let a = s
        .post(
            "/Users",
            json!({"userName": "num@acme.test", "externalId": 7}),
        )
        .await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    let found = s.get(&filter_path("userName eq \"num@acme.test\"")).await;
    assert_eq!(found.body["totalResults"], json!(0), "nothing created");
    s.app.stop().await;
}

#[tokio::test]
async fn etags_if_match_and_no_deletion() {
    let s = Scim::start().await;
    let u = s.create("mo@acme.test").await;
    let id = u["id"].as_str().unwrap();
    let path = format!("/Users/{id}");
    let etag = u["meta"]["version"].as_str().unwrap().to_owned();
    let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]});

    let req = |tag: &str| {
        s.app
            .api()
            .patch(s.url(&path))
            .bearer_auth(&s.token)
            .header("if-match", tag)
            .json(&op)
    };
    let ok = answer(req(&etag).send().await.unwrap()).await;
    assert_eq!(ok.status, 200);
    let newer = ok.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(newer, etag);
    let stale = answer(req(&etag).send().await.unwrap()).await;
    assert_scim_error(&stale, 412, None);
    assert_eq!(answer(req("*").send().await.unwrap()).await.status, 200);

    // DELETE is refused, and the member is still there.
    let a = s.okta(Method::DELETE, &path, None).await;
    assert_scim_error(&a, 405, None);
    assert!(a.body["detail"].as_str().unwrap().contains("active"));
    assert_eq!(s.get(&path).await.status, 200);
    s.app.stop().await;
}

#[tokio::test]
async fn inactive_members_are_found_and_not_recreated() {
    let s = Scim::start().await;
    let u = s.create("gone@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    s.patch(&path, json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]})).await;
    let a = s.get(&filter_path("userName eq \"gone@acme.test\"")).await;
    assert_eq!(a.body["totalResults"], json!(1));
    assert_eq!(a.body["Resources"][0]["active"], false);
    assert_eq!(s.get(&path).await.body["active"], false);
    assert_eq!(
        s.get(&filter_path("active eq false")).await.body["totalResults"],
        json!(1)
    );
    s.app.stop().await;
}

#[tokio::test]
async fn queries_sort_project_and_search() {
    let s = Scim::start().await;
    for name in ["carol", "alice", "bob"] {
        s.create(&format!("{name}@acme.test")).await;
    }
    let a = s
        .get("/Users?sortBy=userName&sortOrder=descending&attributes=userName")
        .await;
    let names: Vec<_> = a.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "carol@acme.test",
            "bob@acme.test",
            "alice@acme.test",
            "admin@acme.test"
        ]
    );
    let r = &a.body["Resources"][0];
    assert!(r.get("id").is_some() && r.get("emails").is_none(), "{r}");
    let a = s
        .get("/Users?filter=userName%20sw%20%22a%22&excludedAttributes=emails,name")
        .await;
    assert_eq!(a.body["totalResults"], json!(2));
    assert!(
        a.body["Resources"][0].get("emails").is_none()
            && a.body["Resources"][0].get("userName").is_some()
    );
    let a = s
        .post(
            "/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName co \"o\" and not (userName sw \"b\")", "startIndex": 1, "count": 10, "attributes": ["userName"]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let names: Vec<_> = a.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol@acme.test"]);
    assert_scim_error(
        &s.get("/Users?sortBy=nope").await,
        400,
        Some("invalidValue"),
    );
    s.app.stop().await;
}

#[tokio::test]
async fn parallel_creates_of_one_user_name_give_exactly_one_201() {
    let s = Scim::start().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = s.app.api();
        let url = s.url("/Users");
        let token = s.token.clone();
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 {
                "race@acme.test"
            } else {
                "RACE@acme.test"
            };
            client
                .post(url)
                .bearer_auth(token)
                .json(&okta_create(name, &format!("x{i}")))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            201 => created += 1,
            409 => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (1, 49));
    assert_eq!(
        s.get(&filter_path("userName eq \"race@acme.test\""))
            .await
            .body["totalResults"],
        json!(1)
    );
    s.app.stop().await;
}

#[tokio::test]
async fn scim_switch_scopes_and_tenant_isolation() {
    let s = Scim::start().await;
    let u = s.create("iso@acme.test").await;
    let id = u["id"].as_str().unwrap().to_owned();
    // Another workspace with its own token sees nothing of acme.
    s.app.workspace("globex").await;
    crate::support::ops::set_scim(&s.app.db, "globex", true)
        .await
        .unwrap();
    let other = crate::support::ops::create_api_token(&s.app.db, "globex", "t", "t")
        .await
        .unwrap();
    let get = |path: String, token: String| {
        let client = s.app.api();
        let url = s.url(&path);
        async move { answer(client.get(url).bearer_auth(token).send().await.unwrap()).await }
    };
    assert_eq!(get(format!("/Users/{id}"), other.clone()).await.status, 404);
    let list = get("/Users".into(), other.clone()).await;
    assert_eq!(
        list.body["totalResults"],
        json!(1),
        "only globex's admin: {}",
        list.body
    );
    let patch = s
        .app
        .api()
        .patch(s.url(&format!("/Users/{id}")))
        .bearer_auth(&other)
        .json(&json!({"Operations": [{"op": "replace", "value": {"active": false}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);
    assert_eq!(s.get(&format!("/Users/{id}")).await.body["active"], true);

    // SCIM off: 403 that says where to switch it on.
    crate::support::ops::set_scim(&s.app.db, "acme", false)
        .await
        .unwrap();
    let a = s.get("/Users").await;
    assert_scim_error(&a, 403, None);
    assert!(a.body["detail"].as_str().unwrap().contains("SSO and SCIM"));
    crate::support::ops::set_scim(&s.app.db, "acme", true)
        .await
        .unwrap();
    assert_eq!(s.get("/Users").await.status, 200);

    // A revoked token: 401.
    let tokens = rollcall::store::tokens::list(&s.app.db, 1).await.unwrap();
    rollcall::store::tokens::revoke(&s.app.db, 1, tokens[0].id)
        .await
        .unwrap();
    assert_scim_error(&s.get("/Users").await, 401, None);
    s.app.stop().await;
}

#[tokio::test]
async fn writes_are_recorded_in_the_activity_log() {
    let s = Scim::start().await;
    let u = s.create("log@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    s.patch(
        &path,
        json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
    )
    .await;
    s.post("/Users", okta_create("LOG@acme.test", "dup")).await;
    let log = rollcall::store::activity::recent(&s.app.db, 1, None, false, 10)
        .await
        .unwrap();
    let lines: Vec<_> = log
        .iter()
        .map(|a| (a.operation.as_str(), a.status, a.detail.as_str()))
        .collect();
    assert_eq!(lines[0].0, "create");
    assert_eq!(lines[0].1, 409);
    assert_eq!(lines[1], ("patch", 200, "replace active"));
    assert_eq!(lines[2], ("create", 200, "created"));
    assert!(log.iter().all(|a| a.actor.starts_with("token:rc_pat_")));
    let failures = rollcall::store::activity::recent(&s.app.db, 1, None, true, 10)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].user_name.as_deref(), Some("LOG@acme.test"));
    s.app.stop().await;
}

#[tokio::test]
async fn a_burst_of_writes_is_logged_entry_for_entry() {
    // More writes at once than one multi-row INSERT of the activity writer holds.
    let s = Scim::start().await;
    let mut tasks = Vec::new();
    for i in 0..150 {
        let (client, url, token) = (s.app.api(), s.url("/Users"), s.token.clone());
        tasks.push(tokio::spawn(async move {
            let body = okta_create(&format!("burst{i}@acme.test"), &format!("ext{i}"));
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let log = rollcall::store::activity::recent(&s.app.db, 1, None, false, 500)
        .await
        .unwrap();
    let mut names: Vec<String> = log
        .iter()
        .filter(|a| a.operation == "create" && a.status == 200)
        .filter_map(|a| a.user_name.clone())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..150).map(|i| format!("burst{i}@acme.test")).collect();
    want.sort();
    assert_eq!(names, want);
    s.app.stop().await;
}

#[tokio::test]
async fn parallel_patches_lose_nothing_and_if_match_lets_one_win() {
    let s = Scim::start().await;
    let u = s.create("busy@acme.test").await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());

    // 20 concurrent PATCHes, each adding its own phone number: all of them land.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (client, url, token) = (s.app.api(), s.url(&path), s.token.clone());
        tasks.push(tokio::spawn(async move {
            let op = json!({"Operations": [{"op": "add", "path": "phoneNumbers", "value": [{"value": format!("+1 555 01{i:02}"), "type": "work"}]}]});
            client.patch(url).bearer_auth(token).json(&op).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let now = s.get(&path).await.body;
    assert_eq!(
        now["phoneNumbers"].as_array().unwrap().len(),
        20,
        "no lost update: {now}"
    );
    assert_eq!(now["meta"]["version"], "W/\"21\"");

    // 10 concurrent PATCHes that all say If-Match: the current version. One wins.
    let etag = now["meta"]["version"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (client, url, token, etag) = (s.app.api(), s.url(&path), s.token.clone(), etag.clone());
        tasks.push(tokio::spawn(async move {
            let op = json!({"Operations": [{"op": "replace", "path": "title", "value": format!("t{i}")}]});
            client.patch(url).bearer_auth(token).header("if-match", etag).json(&op).send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [vec![200], vec![412; 9]].concat());
    s.app.stop().await;
}

/// PostgreSQL writes member changes many to a transaction (`store::member_batch`).
/// A batch that holds a conflicting rename, a stale If-Match and an unknown id gives
/// each of those its own error and makes every other change; a batch of good
/// changes is committed together. (On SQLite the same requests give the same
/// answers, one transaction each.)
#[tokio::test]
async fn a_change_that_fails_in_a_batch_fails_alone() {
    let s = Scim::start().await;
    let db = s.app.db.clone();
    let taken = s.create("taken@acme.test").await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let u = s.create(&format!("batch{i}@acme.test")).await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let pg = db.backend() == rollcall::store::Backend::Postgres;
    let active = |on: bool| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "active", "value": on}]})
    };
    // Every request queued first, then the writers let go: one batch on PostgreSQL.
    let all_at_once = |asks: Vec<(Method, String, Value, Option<&'static str>)>| {
        let db = db.clone();
        let s = &s;
        async move {
            db.pause_batched_writes(true);
            let n = asks.len();
            let queued =
                crate::support::release_when_queued(&db, n, |db| db.member_write_batches().0);
            let calls = asks
                .into_iter()
                .map(|(method, path, body, if_match)| s.call(method, path, body, if_match));
            tokio::join!(futures_util::future::join_all(calls), queued).0
        }
    };

    let mut asks = vec![
        (
            Method::PUT,
            format!("/Users/{}", ids[0]),
            okta_create(taken["userName"].as_str().unwrap(), "ext-renamed"),
            None,
        ),
        (
            Method::PATCH,
            format!("/Users/{}", ids[1]),
            active(false),
            Some("W/\"99\""),
        ),
        (
            Method::PATCH,
            format!("/Users/{}", uuid::Uuid::now_v7()),
            active(false),
            None,
        ),
    ];
    for id in &ids[3..] {
        asks.push((Method::PATCH, format!("/Users/{id}"), active(false), None));
    }
    let n = asks.len();
    let answers = all_at_once(asks).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses[..3], [409, 412, 404], "{:?}", answers[0].body);
    assert!(statuses[3..].iter().all(|s| *s == 200), "{statuses:?}");
    for (i, id) in ids.iter().enumerate() {
        let now = s.get(&format!("/Users/{id}")).await.body;
        assert_eq!(now["active"], i < 3, "member {i}: {now}");
        assert_eq!(now["userName"], format!("batch{i}@acme.test"));
    }
    if pg {
        let (_, tried, _, split) = db.member_write_batches();
        assert_eq!(tried, n, "all {n} changes were tried together");
        assert_eq!(
            split, 1,
            "the failing batch was made again change by change"
        );
    }

    // Good changes only: committed together.
    let asks: Vec<_> = ids[3..]
        .iter()
        .map(|id| (Method::PATCH, format!("/Users/{id}"), active(true), None))
        .collect();
    let n = asks.len();
    for a in all_at_once(asks).await {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["active"], true);
        assert_eq!(a.body["meta"]["version"], "W/\"3\"");
    }
    if pg {
        let (_, _, written, split) = db.member_write_batches();
        assert_eq!(written, n, "{n} changes committed together");
        assert_eq!(split, 1);
    }
    s.app.stop().await;
}

/// PostgreSQL reads lookups of one member by a unique key many to a statement
/// (`store::member_reads`): existence checks by userName (any case) and by
/// externalId, `id eq`, `GET /Users/{id}`, misses, and keys of another workspace's
/// member, all waiting together, each get their own answer. (On SQLite the same
/// requests give the same answers, one statement each.)
#[tokio::test]
async fn lookups_read_together_each_get_their_own_member() {
    let s = Scim::start_with_teams().await;
    let db = s.app.db.clone();
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(s.create(&format!("look{i}@acme.test")).await);
    }
    let id = |i: usize| users[i]["id"].as_str().unwrap().to_owned();
    let team = s.create_group("Readers", &[&id(2)]).await;
    // The same userName and externalId in another workspace: never an answer here.
    let other = s.other_workspace("beta", false).await;
    let mut theirs = Vec::new();
    for (user_name, external_id) in [
        ("stranger@acme.test", "ext-stranger"),
        ("look0@acme.test", "ext-look0@acme.test"),
    ] {
        let body = okta_create(user_name, external_id);
        let a = s
            .call_as(&other, Method::POST, "/Users", Some(body), &[])
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        theirs.push(a.body["id"].as_str().unwrap().to_owned());
    }
    let their_id = &theirs[0];

    let filter = |f: String| format!("/Users?filter={}", enc(&f));
    // (path, the id of the member it must find, or none)
    let asks: Vec<(String, Option<String>)> = vec![
        (
            filter("userName eq \"LOOK1@Acme.Test\"".into()),
            Some(id(1)),
        ),
        (
            filter("externalId eq \"ext-look2@acme.test\"".into()),
            Some(id(2)),
        ),
        (filter(format!("id eq \"{}\"", id(3))), Some(id(3))),
        (format!("/Users/{}", id(0)), Some(id(0))),
        (
            filter("userName eq \"look0@acme.test\"".into()),
            Some(id(0)),
        ),
        (filter("userName eq \"nobody@acme.test\"".into()), None),
        (filter("externalId eq \"EXT-LOOK2@acme.test\"".into()), None),
        (filter("userName eq \"stranger@acme.test\"".into()), None),
        (filter("externalId eq \"ext-stranger\"".into()), None),
        (filter(format!("id eq \"{their_id}\"")), None),
        (format!("/Users/{their_id}"), None),
    ];
    let n = asks.len();
    db.pause_batched_reads(true);
    let queued = crate::support::release_when_queued(&db, n, |db| db.member_read_batches().0);
    let calls = asks.iter().map(|(path, _)| s.get(path));
    let answers = tokio::join!(futures_util::future::join_all(calls), queued).0;

    for ((path, want), a) in asks.iter().zip(&answers) {
        let found = if path.contains("filter=") {
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            let found = a.body["Resources"].as_array().cloned().unwrap_or_default();
            assert_eq!(a.body["totalResults"], found.len(), "{path}: {}", a.body);
            assert!(found.len() <= 1, "{path}: {}", a.body);
            found.into_iter().next()
        } else if a.status == 404 {
            None
        } else {
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            Some(a.body.clone())
        };
        let got = found.as_ref().map(|u| u["id"].as_str().unwrap().to_owned());
        assert_eq!(&got, want, "{path}: {:?}", found);
        // Each answer is the member as a lone GET renders it, teams included.
        if let Some(found) = found {
            let alone = s.get(&format!("/Users/{}", got.unwrap())).await;
            assert_eq!(found, alone.body, "{path}");
        }
    }
    let groups = &answers[1].body["Resources"][0]["groups"];
    assert_eq!(groups[0]["value"], team["id"], "{groups}");
    if db.backend() == rollcall::store::Backend::Postgres {
        let (queued, tried, read, _) = db.member_read_batches();
        assert_eq!(queued, 0);
        assert!(
            tried >= n && read >= n,
            "one statement for the {n}: {tried} {read}"
        );
    }
    s.app.stop().await;
}

/// `totalResults` of an unfiltered list (each page of an import) counts every
/// member at once, whatever its id says about its age: here one inserted, after the
/// workspace was counted, with an id minted ten minutes ago (by a process whose
/// clock is behind, or a write that took that long to commit). On PostgreSQL the
/// count's rows (one per INSERT) are folded into one as they pile up.
#[tokio::test]
async fn the_member_count_counts_every_member_at_once() {
    use rollcall::store::sql::sql;
    let s = Scim::start().await;
    let db = s.app.db.clone();
    for i in 0..3 {
        s.create(&format!("count{i}@acme.test")).await;
    }
    let total = || async {
        let a = s.get("/Users?count=1").await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["totalResults"].as_i64().unwrap()
    };
    // The admin the workspace was made with, and the three.
    assert_eq!(total().await, 4);

    let ws = crate::support::ops::workspace(&db, "acme").await.unwrap();
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let late = rollcall::store::cursors::v7_floor(now_ms - 600_000);
    let inserted = db
        .execute(
            sql(
                "INSERT INTO members (id, workspace_id, user_name, user_name_ci, role, active, \
                 scim_managed, resource, created_at, updated_at, version) \
                 SELECT $1, workspace_id, 'late@acme.test', 'late@acme.test', role, active, \
                 scim_managed, resource, created_at, updated_at, version \
                 FROM members WHERE workspace_id = $2 LIMIT 1",
            )
            .bind(late)
            .bind(ws.id),
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    assert_eq!(total().await, 5, "the late member is counted");

    // Past the fold's threshold: the total stays exact through the folds.
    for i in 3..80 {
        s.create(&format!("count{i}@acme.test")).await;
    }
    assert_eq!(total().await, 82);
    if db.backend() == rollcall::store::Backend::Postgres {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let rows: i64 = db
                .read_one(
                    sql("SELECT COUNT(*) FROM member_count_deltas WHERE workspace_id = $1")
                        .bind(ws.id),
                )
                .await
                .unwrap();
            if rows == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{rows} count rows never folded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(total().await, 82);
    let everyone = s.get("/Users?count=200").await;
    assert_eq!(everyone.body["Resources"].as_array().unwrap().len(), 82);
    s.app.stop().await;
}
