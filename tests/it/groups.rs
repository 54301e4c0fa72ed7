//! SCIM Groups ("teams", issue 14) as Okta Push Groups and Microsoft Entra ID use
//! them. Request shapes are replayed literally from ../shared/interop.md, section
//! "Groups (teams): what Okta and Entra send". Every step is checked with a GET.

use crate::support::scim::{
    Answer, GROUP_SCHEMA, Scim, member_values, okta_create, okta_group, patch_ops,
};
use crate::support::{assert_scim_error, enc, ops, s as txt};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Ids in the order the server must list members: by user id.
fn by_id<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}

/// A PATCH answered the default way: 204 and no body at all.
fn assert_no_content(a: &Answer) {
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(a.body.is_null(), "204 carries no body: {}", a.body);
}

/// `/Groups?filter=...` with the filter encoded.
fn groups_filter(filter: &str) -> String {
    format!("/Groups?filter={}", enc(filter))
}

/// The ids of the teams of a ListResponse, checking its counts.
fn listed_ids(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]),
        "{}",
        a.body
    );
    let rs = a.body["Resources"].as_array().expect("Resources");
    assert_eq!(
        a.body["itemsPerPage"].as_u64(),
        Some(rs.len() as u64),
        "itemsPerPage is the number returned: {}",
        a.body
    );
    rs.iter().map(|r| txt(&r["id"]).to_owned()).collect()
}

async fn user(s: &Scim, name: &str) -> String {
    s.create(&format!("{name}@acme.test")).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn users(s: &Scim, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(user(s, &format!("{prefix}{i:02}")).await);
    }
    ids
}

#[tokio::test]
async fn okta_push_groups_sequence() {
    let s = Scim::start_with_teams().await;
    let u1 = user(&s, "ada").await;
    let u2 = user(&s, "alan").await;
    let u3 = user(&s, "grace").await;

    // Push: create with an empty member list.
    let created = s.post("/Groups", okta_group("Engineering")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let g = &created.body;
    let gid = txt(&g["id"]).to_owned();
    let path = format!("/Groups/{gid}");
    assert_eq!(g["schemas"], json!([GROUP_SCHEMA]));
    assert_eq!(g["displayName"], "Engineering");
    assert_eq!(g["members"], json!([]), "no members: an empty list");
    assert!(g.get("externalId").is_none(), "{g}");
    assert_eq!(g["meta"]["resourceType"], "Group");
    assert_eq!(g["meta"]["location"], s.url(&path));
    assert!(g["meta"]["created"].is_string() && g["meta"]["lastModified"].is_string());
    assert!(
        txt(&g["meta"]["version"]).starts_with("W/\""),
        "weak version: {g}"
    );
    assert_eq!(created.headers["location"], s.url(&path).as_str());
    let got = s.get(&path).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["displayName"], "Engineering");
    assert_eq!(got.body["members"], json!([]));

    // Rename: a pathless replace whose value carries the id, as Okta sends it.
    let a = s
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Engineering Team"}}]}),
        )
        .await;
    assert_no_content(&a);
    let got = s.get(&path).await.body;
    assert_eq!(got["displayName"], "Engineering Team");
    assert_eq!(got["id"], gid.as_str());
    assert_ne!(
        got["meta"]["version"], g["meta"]["version"],
        "a write changes the version"
    );

    // Add members: a list of {value}.
    let a = s
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]}]}),
        )
        .await;
    assert_no_content(&a);
    let got = s.get(&path).await.body;
    let members = got["members"].as_array().unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| txt(&m["value"]).to_owned())
            .collect::<Vec<_>>(),
        by_id(&[&u1, &u2]),
        "members listed by user id: {got}"
    );
    for m in members {
        let id = txt(&m["value"]);
        assert_eq!(
            m,
            &json!({"value": id, "display": "Ada Lovelace", "$ref": s.url(&format!("/Users/{id}")), "type": "User"}),
        );
    }

    // A rename sent together with a membership change.
    let a = s
        .patch(
            &path,
            patch_ops(json!([
                {"op": "replace", "path": "displayName", "value": "Eng"},
                {"op": "add", "path": "members", "value": [{"value": u3}]}
            ])),
        )
        .await;
    assert_no_content(&a);
    let got = s.get(&path).await.body;
    assert_eq!(got["displayName"], "Eng");
    assert_eq!(s.group_members(&gid).await, by_id(&[&u1, &u2, &u3]));

    // Remove by a value filter.
    let a = s
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}]}),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[&u2, &u3]));

    // Full replace of the member list.
    let a = s
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "members", "value": [{"value": u1}, {"value": u3}]}]}),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[&u1, &u3]));

    // The users say which teams they are in.
    let want = json!([{"value": gid, "display": "Eng", "$ref": s.url(&path), "type": "direct"}]);
    assert_eq!(s.get(&format!("/Users/{u3}")).await.body["groups"], want);
    let u2_groups = &s.get(&format!("/Users/{u2}")).await.body["groups"];
    assert!(
        u2_groups.as_array().is_none_or(Vec::is_empty),
        "{u2_groups}"
    );

    // Okta's conformance run lists the groups.
    let list = s.get("/Groups").await;
    assert_eq!(listed_ids(&list), vec![gid.clone()]);
    assert_eq!(list.body["totalResults"], json!(1));

    // Unlink: DELETE. The team is gone; its members are not.
    let a = s.delete(&path).await;
    assert_no_content(&a);
    assert_scim_error(&s.get(&path).await, 404, None);
    for u in [&u1, &u2, &u3] {
        let got = s.get(&format!("/Users/{u}")).await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(
            got.body["groups"].as_array().is_none_or(Vec::is_empty),
            "{}",
            got.body
        );
    }
    assert_scim_error(&s.delete(&format!("/Users/{u1}")).await, 405, None);
    assert_scim_error(&s.delete(&path).await, 404, None);
    assert_eq!(s.get("/Groups").await.body["totalResults"], json!(0));
    s.app.stop().await;
}

#[tokio::test]
async fn entra_group_shapes() {
    let s = Scim::start_with_teams().await;
    let ids = users(&s, "entra", 5).await;
    let [u1, u2, u3, u4, u5] = [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]];

    // "Test connection"-style lookups of a group that is not there.
    let lookup = |name: &str| {
        format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&format!("displayName eq \"{name}\""))
        )
    };
    let a = s.entra(Method::GET, &lookup("Sales"), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["totalResults"], json!(0));
    assert_eq!(a.body["Resources"], json!([]));

    // Entra's create (Microsoft's SCIM guide), application/json.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Sales",
        "meta": {"resourceType": "Group"}
    });
    let created = s.entra(Method::POST, "/Groups", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let gid = txt(&created.body["id"]).to_owned();
    let path = format!("/Groups/{gid}");
    assert_eq!(
        created.body["externalId"],
        "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    );
    assert_eq!(created.body["members"], json!([]));

    // The lookup by displayName, without members; in any case; and by externalId.
    for name in ["Sales", "sales", "SALES"] {
        let a = s.entra(Method::GET, &lookup(name), None).await;
        assert_eq!(listed_ids(&a), vec![gid.clone()], "{name}");
        assert_eq!(a.body["totalResults"], json!(1));
        let r = &a.body["Resources"][0];
        assert!(
            r.get("members").is_none(),
            "excludedAttributes=members: {r}"
        );
        assert_eq!(r["displayName"], "Sales");
        assert_eq!(r["id"], gid.as_str());
    }
    let a = s
        .entra(
            Method::GET,
            &groups_filter("externalId eq \"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159\""),
            None,
        )
        .await;
    assert_eq!(listed_ids(&a), vec![gid.clone()]);

    // Several members in one Add, capitalised: 204, no body, no member list.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Add", "path": "members",
                                         "value": [{"value": u1}, {"value": u2}, {"value": u3}, {"value": u4}]}]})),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[u1, u2, u3, u4]));

    // Replace displayName, capitalised.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Replace", "path": "displayName",
                                         "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]})),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(
        s.get(&path).await.body["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );

    // The older Remove shape removes only the members it lists.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "Remove", "path": "members", "value": [{"value": u1}]}]})),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(
        s.group_members(&gid).await,
        by_id(&[u2, u3, u4]),
        "Remove with a value list removes only those listed"
    );
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(patch_ops(
                json!([{"op": "Remove", "path": "members", "value": [{"value": u2}, {"value": u3}]}]),
            )),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[u4]));

    // Adding a member already there: no error, nothing changes.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(patch_ops(
                json!([{"op": "Add", "path": "members", "value": [{"value": u4}]}]),
            )),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[u4]));

    // Newer Entra: lowercase ops; a pathless add; several ops in one request.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(patch_ops(
                json!([{"op": "add", "value": {"members": [{"value": u5}, {"value": u1}]}}]),
            )),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[u1, u4, u5]));
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(patch_ops(json!([
                {"op": "Add", "path": "members", "value": [{"value": u2}, {"value": u3}]},
                {"op": "Remove", "path": "members", "value": [{"value": u1}]},
                {"op": "remove", "path": format!("members[value eq \"{u5}\"]")},
                {"op": "Replace", "path": "displayName", "value": "Sales"}
            ]))),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, by_id(&[u2, u3, u4]));
    assert_eq!(s.get(&path).await.body["displayName"], "Sales");

    // GET without members, and the lookup again.
    let a = s
        .entra(
            Method::GET,
            &format!("{path}?excludedAttributes=members"),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.get("members").is_none(), "{}", a.body);
    assert_eq!(a.body["displayName"], "Sales");

    // A client that asks for attributes gets 200 with the resource, projected.
    let a = s
        .patch(
            &format!("{path}?excludedAttributes=members"),
            patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}]}])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["id"], gid.as_str());
    assert_eq!(a.body["displayName"], "Sales");
    assert!(a.body.get("members").is_none(), "{}", a.body);
    let a = s
        .patch(
            &format!("{path}?attributes=displayName"),
            patch_ops(json!([{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["displayName"], "Sales EMEA");
    assert_eq!(a.body["id"], gid.as_str());
    assert!(a.body.get("members").is_none(), "{}", a.body);
    assert_eq!(s.group_members(&gid).await, by_id(&[u1, u2, u3, u4]));

    // `remove` of `members` without a value: every member goes.
    let a = s
        .entra(
            Method::PATCH,
            &path,
            Some(patch_ops(json!([{"op": "Remove", "path": "members"}]))),
        )
        .await;
    assert_no_content(&a);
    assert_eq!(s.group_members(&gid).await, Vec::<String>::new());
    assert_eq!(s.get(&path).await.body["members"], json!([]));
    // And the members themselves are all still there.
    for u in &ids {
        assert_eq!(s.get(&format!("/Users/{u}")).await.status, 200);
    }
    s.app.stop().await;
}

#[tokio::test]
async fn groups_answer_403_until_teams_are_switched_on() {
    let s = Scim::start().await;
    let u = user(&s, "ada").await;
    let some = format!("/Groups/{}", uuid::Uuid::now_v7());
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/Groups".into(), None),
        (
            Method::GET,
            "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22X%22".into(),
            None,
        ),
        (Method::POST, "/Groups".into(), Some(okta_group("Off"))),
        (
            Method::POST,
            "/Groups/.search".into(),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName eq \"X\""}),
            ),
        ),
        (Method::GET, some.clone(), None),
        (Method::PUT, some.clone(), Some(okta_group("Off"))),
        (
            Method::PATCH,
            some.clone(),
            Some(patch_ops(
                json!([{"op": "add", "path": "members", "value": [{"value": u}]}]),
            )),
        ),
        (Method::DELETE, some.clone(), None),
        // Bad input still gets the 403 that says where to switch teams on (the switch
        // is checked before anything is read).
        (Method::GET, "/Groups?filter=nonsense%20attr".into(), None),
        (
            Method::PATCH,
            some.clone(),
            Some(json!({"Operations": "not a list"})),
        ),
    ];
    let all_403 = |label: &'static str| {
        let s = &s;
        let requests = &requests;
        async move {
            for (m, p, b) in requests {
                let a = s.okta(m.clone(), p, b.clone()).await;
                assert_scim_error(&a, 403, None);
                let detail = txt(&a.body["detail"]);
                assert!(
                    detail.contains("Settings > SSO and SCIM")
                        && detail.contains("rollcall workspace scim-teams"),
                    "{label} {m} {p}: {detail}"
                );
            }
        }
    };
    all_403("off by default").await;
    assert_eq!(
        s.get("/Groups?filter=displayName%20eq%20%22Off%22&count=0")
            .await
            .status,
        403
    );

    // On: everything works.
    ops::set_scim_teams(&s.app.db, "acme", true).await.unwrap();
    let g = s.create_group("Switched", &[&u]).await;
    let gid = txt(&g["id"]).to_owned();
    assert_eq!(s.get("/Groups").await.body["totalResults"], json!(1));
    assert_eq!(s.group_members(&gid).await, vec![u.clone()]);

    // Off again: 403 again, and nothing was lost meanwhile.
    ops::set_scim_teams(&s.app.db, "acme", false).await.unwrap();
    all_403("off again").await;
    assert_scim_error(&s.get(&format!("/Groups/{gid}")).await, 403, None);
    // Users keep working while teams are off.
    assert_eq!(s.get(&format!("/Users/{u}")).await.status, 200);
    ops::set_scim_teams(&s.app.db, "acme", true).await.unwrap();
    assert_eq!(s.group_members(&gid).await, vec![u.clone()]);

    // SCIM itself off: /Groups is refused too, whatever the teams switch says.
    ops::set_scim(&s.app.db, "acme", false).await.unwrap();
    assert_scim_error(&s.get("/Groups").await, 403, None);
    assert_scim_error(&s.get(&format!("/Groups/{gid}")).await, 403, None);
    ops::set_scim(&s.app.db, "acme", true).await.unwrap();
    assert_eq!(s.get(&format!("/Groups/{gid}")).await.status, 200);
    s.app.stop().await;
}

#[tokio::test]
async fn member_ids_outside_the_workspace_are_invalid_values_and_change_nothing() {
    let s = Scim::start_with_teams().await;
    let u1 = user(&s, "ada").await;
    let u2 = user(&s, "alan").await;
    // A member of another workspace.
    let globex = s.other_workspace("globex", true).await;
    let foreign = s
        .call_as(
            &globex,
            Method::POST,
            "/Users",
            Some(okta_create("grace@globex.test", "g1")),
            &[],
        )
        .await;
    assert_eq!(foreign.status, 201, "{}", foreign.body);
    let foreign = txt(&foreign.body["id"]).to_owned();
    // A team of the other workspace: its id is not a member id of acme either.
    let foreign_team = s
        .call_as(
            &globex,
            Method::POST,
            "/Groups",
            Some(okta_group("Globex")),
            &[],
        )
        .await;
    assert_eq!(foreign_team.status, 201, "{}", foreign_team.body);
    let foreign_team = txt(&foreign_team.body["id"]).to_owned();

    let g = s.create_group("Keep", &[&u1]).await;
    let gid = txt(&g["id"]).to_owned();
    let path = format!("/Groups/{gid}");
    // acme's own team id is not a member id either (nested groups are not provisioned).
    let other_team = txt(&s.create_group("Other", &[]).await["id"]).to_owned();
    let before = s.get(&path).await.body;

    let bad_ids = [
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::new_v4().to_string(),
        foreign.clone(),
        foreign_team.clone(),
        other_team.clone(),
        "not-a-uuid".to_owned(),
        String::new(),
        format!("{u2}x"),
    ];
    for bad in &bad_ids {
        let bodies = [
            // A valid member and an invalid one in one add.
            patch_ops(
                json!([{"op": "add", "path": "members", "value": [{"value": u2}, {"value": bad}]}]),
            ),
            // Capitalised, after a rename in the same request.
            patch_ops(json!([
                {"op": "Replace", "path": "displayName", "value": "Renamed"},
                {"op": "Add", "path": "members", "value": [{"value": u2}]},
                {"op": "Add", "path": "members", "value": [{"value": bad}]}
            ])),
            // A full replace naming it.
            patch_ops(
                json!([{"op": "replace", "path": "members", "value": [{"value": u2}, {"value": bad}]}]),
            ),
            // Pathless add.
            patch_ops(
                json!([{"op": "add", "value": {"members": [{"value": bad}], "displayName": "Renamed"}}]),
            ),
        ];
        for body in bodies {
            let a = s.patch(&path, body.clone()).await;
            assert_scim_error(&a, 400, Some("invalidValue"));
            assert_eq!(
                s.get(&path).await.body,
                before,
                "nothing applied for {bad:?}: {body}"
            );
        }
        // PUT naming it.
        let mut put = okta_group("Renamed");
        put["members"] = member_values(&[&u2, bad]);
        assert_scim_error(&s.put(&path, put).await, 400, Some("invalidValue"));
        assert_eq!(s.get(&path).await.body, before, "PUT with {bad:?}");
        // POST naming it: no team is created.
        let mut post = okta_group("Never");
        post["members"] = member_values(&[&u1, bad]);
        assert_scim_error(&s.post("/Groups", post).await, 400, Some("invalidValue"));
        assert_eq!(
            s.get(&groups_filter("displayName eq \"Never\"")).await.body["totalResults"],
            json!(0),
            "POST with {bad:?} created a team"
        );
    }
    // The foreign member's own team membership is untouched.
    assert_eq!(
        s.call_as(
            &globex,
            Method::GET,
            &format!("/Users/{foreign}"),
            None,
            &[]
        )
        .await
        .status,
        200
    );
    // Control: the valid part alone works.
    assert_no_content(
        &s.patch(
            &path,
            patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u2}]}])),
        )
        .await,
    );
    assert_eq!(s.group_members(&gid).await, by_id(&[&u1, &u2]));
    s.app.stop().await;
}

#[tokio::test]
async fn concurrent_membership_patches_lose_no_member() {
    let s = Scim::start_with_teams().await;
    let ids = users(&s, "race", 32).await;
    let g = s.create_group("Everyone", &[]).await;
    let gid = txt(&g["id"]).to_owned();
    let path = format!("/Groups/{gid}");
    let patch = |ops: Value| {
        let (client, url, token) = (s.app.api(), s.url(&path), s.token.clone());
        tokio::spawn(async move {
            let r = client
                .patch(url)
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .body(patch_ops(ops).to_string())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };

    // 16 at once, each adding a different member.
    let tasks: Vec<_> = ids[..16]
        .iter()
        .map(|u| patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])))
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 204, "{body}");
    }
    let want: Vec<&str> = ids[..16].iter().map(String::as_str).collect();
    assert_eq!(s.group_members(&gid).await, by_id(&want), "none lost");

    // Removals of 8 and additions of 16 more (in batches of 2 and capitalised), at once.
    let mut tasks = Vec::new();
    for u in &ids[..8] {
        tasks.push(patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}]),
        ));
    }
    for pair in ids[16..].chunks(2) {
        tasks.push(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": pair[0]}, {"value": pair[1]}]}]),
        ));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 204, "{body}");
    }
    let want: Vec<&str> = ids[8..].iter().map(String::as_str).collect();
    assert_eq!(
        s.group_members(&gid).await,
        by_id(&want),
        "every concurrent add and remove landed"
    );
    // The users agree.
    for u in &ids[8..] {
        let groups = &s.get(&format!("/Users/{u}")).await.body["groups"];
        assert_eq!(groups[0]["value"], gid.as_str(), "{groups}");
    }

    // Concurrent creates of one name in different cases: exactly one 201.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (client, url, token) = (s.app.api(), s.url("/Groups"), s.token.clone());
        let name = if i % 2 == 0 { "Racers" } else { "RACERS" };
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&okta_group(name))
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
    statuses.sort();
    assert_eq!(statuses, [vec![201], vec![409; 11]].concat());
    s.app.stop().await;
}

#[tokio::test]
async fn conflicts_not_found_preconditions_and_put() {
    let s = Scim::start_with_teams().await;
    let [u1, u2, u3] = [
        user(&s, "ada").await,
        user(&s, "alan").await,
        user(&s, "grace").await,
    ];
    let a_team = s.create_group("Alpha", &[&u1]).await;
    let aid = txt(&a_team["id"]).to_owned();
    let apath = format!("/Groups/{aid}");
    let b_team = s.create_group("Beta", &[]).await;
    let bid = txt(&b_team["id"]).to_owned();
    let bpath = format!("/Groups/{bid}");

    // displayName is required, and unique in the workspace whatever its case.
    for body in [
        json!({"schemas": [GROUP_SCHEMA], "members": []}),
        json!({"schemas": [GROUP_SCHEMA], "displayName": "", "members": []}),
    ] {
        assert_scim_error(&s.post("/Groups", body).await, 400, Some("invalidValue"));
    }
    for name in ["Alpha", "ALPHA", "alpha"] {
        assert_scim_error(
            &s.post("/Groups", okta_group(name)).await,
            409,
            Some("uniqueness"),
        );
    }
    let before_b = s.get(&bpath).await.body;
    for body in [
        patch_ops(json!([{"op": "replace", "path": "displayName", "value": "aLPHA"}])),
        patch_ops(json!([{"op": "replace", "value": {"id": bid, "displayName": "Alpha"}}])),
        patch_ops(json!([{"op": "Replace", "path": "displayName", "value": "ALPHA"}])),
    ] {
        assert_scim_error(&s.patch(&bpath, body).await, 409, Some("uniqueness"));
    }
    assert_scim_error(
        &s.put(&bpath, okta_group("alpha")).await,
        409,
        Some("uniqueness"),
    );
    assert_eq!(s.get(&bpath).await.body, before_b, "a 409 changes nothing");
    // Renaming a team to its own name in another case is no conflict.
    assert_no_content(
        &s.patch(
            &bpath,
            patch_ops(json!([{"op": "replace", "path": "displayName", "value": "BETA"}])),
        )
        .await,
    );
    assert_eq!(s.get(&bpath).await.body["displayName"], "BETA");

    // Unknown ids: 404 with the SCIM error, for every method.
    for id in [
        uuid::Uuid::now_v7().to_string(),
        "not-a-uuid".to_owned(),
        "010000000-0000-0000-0000-000000000000".to_owned(),
    ] {
        let p = format!("/Groups/{id}");
        assert_scim_error(&s.get(&p).await, 404, None);
        assert_scim_error(
            &s.get(&format!("{p}?excludedAttributes=members")).await,
            404,
            None,
        );
        assert_scim_error(
            &s.patch(
                &p,
                patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}]}])),
            )
            .await,
            404,
            None,
        );
        assert_scim_error(&s.put(&p, okta_group("Ghost")).await, 404, None);
        assert_scim_error(&s.delete(&p).await, 404, None);
    }

    // If-Match: a stale version is 412 and changes nothing; the current one works.
    let current = s.get(&apath).await.body;
    let version = txt(&current["meta"]["version"]).to_owned();
    let op = patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u2}]}]));
    for stale in ["W/\"999\"", "W/\"0\"", "\"nope\""] {
        let a = s
            .call_as(
                &s.token,
                Method::PATCH,
                &apath,
                Some(op.clone()),
                &[("if-match", stale)],
            )
            .await;
        assert_scim_error(&a, 412, None);
    }
    assert_eq!(s.get(&apath).await.body, current, "a 412 changes nothing");
    let a = s
        .call_as(
            &s.token,
            Method::PATCH,
            &apath,
            Some(op.clone()),
            &[("if-match", version.as_str())],
        )
        .await;
    assert_no_content(&a);
    // Now that version is stale.
    let a = s
        .call_as(
            &s.token,
            Method::PATCH,
            &apath,
            Some(op),
            &[("if-match", version.as_str())],
        )
        .await;
    assert_scim_error(&a, 412, None);
    assert_eq!(s.group_members(&aid).await, by_id(&[&u1, &u2]));

    // PUT replaces displayName, externalId and the member list.
    let mut put = okta_group("Alpha Prime");
    put["externalId"] = json!("okta-00g1");
    put["members"] = member_values(&[&u3, &u2]);
    let a = s.put(&apath, put).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["displayName"], "Alpha Prime");
    assert_eq!(a.body["externalId"], "okta-00g1");
    assert_eq!(a.body["id"], aid.as_str());
    assert_eq!(
        a.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| txt(&m["value"]).to_owned())
            .collect::<Vec<_>>(),
        by_id(&[&u2, &u3])
    );
    assert_eq!(
        s.get(&apath).await.body,
        a.body,
        "GET shows what PUT answered"
    );
    // Okta's GET-then-PUT round trip, with id and meta, and an empty list.
    let mut back = a.body.clone();
    back["members"] = json!([]);
    back.as_object_mut().unwrap().remove("externalId");
    let a = s.put(&apath, back).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["members"], json!([]));
    assert!(
        a.body.get("externalId").is_none(),
        "PUT replaces: {}",
        a.body
    );
    assert_eq!(s.group_members(&aid).await, Vec::<String>::new());
    s.app.stop().await;
}

#[tokio::test]
async fn filters_pages_and_projections() {
    let s = Scim::start_with_teams().await;
    let [u1, u2, u3] = [
        user(&s, "ada").await,
        user(&s, "alan").await,
        user(&s, "grace").await,
    ];
    // 25 teams; team k has externalId ext-k; u1 is in every third, u2 in team 7.
    let mut all = Vec::new();
    for k in 0..25 {
        let mut members: Vec<&str> = Vec::new();
        if k % 3 == 0 {
            members.push(&u1);
        }
        if k == 7 {
            members.push(&u2);
        }
        let mut body = okta_group(&format!("Team {k:02}"));
        body["externalId"] = json!(format!("ext-{k}"));
        body["members"] = member_values(&members);
        let a = s.post("/Groups", body).await;
        assert_eq!(a.status, 201, "{}", a.body);
        all.push(txt(&a.body["id"]).to_owned());
    }
    let every_third: BTreeSet<String> = all.iter().step_by(3).cloned().collect();

    // Pages of 10: totals, counts, stable order, every team once.
    let mut seen = Vec::new();
    for (start, n) in [(1, 10), (11, 10), (21, 5)] {
        let a = s
            .get(&format!(
                "/Groups?startIndex={start}&count=10&excludedAttributes=members"
            ))
            .await;
        let page = listed_ids(&a);
        assert_eq!(page.len(), n, "{}", a.body);
        assert_eq!(a.body["totalResults"], json!(25));
        assert_eq!(a.body["startIndex"], json!(start));
        assert!(
            a.body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.get("members").is_none())
        );
        seen.extend(page);
    }
    // Walked again (with members this time): the same order.
    let mut again = Vec::new();
    for start in [1, 11, 21] {
        again.extend(listed_ids(
            &s.get(&format!("/Groups?startIndex={start}&count=10")).await,
        ));
    }
    assert_eq!(again, seen, "the order is stable");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 25, "no team twice, none missing");
    assert_eq!(
        unique,
        all.iter().collect::<BTreeSet<_>>(),
        "exactly the teams created"
    );
    let a = s.get("/Groups?count=0").await;
    assert_eq!(
        (
            a.body["totalResults"].clone(),
            a.body["itemsPerPage"].clone()
        ),
        (json!(25), json!(0))
    );
    let a = s.get("/Groups?startIndex=26&count=10").await;
    assert_eq!(listed_ids(&a), Vec::<String>::new());
    assert_eq!(a.body["totalResults"], json!(25));

    // Filters.
    let found = |f: String| {
        let s = &s;
        async move {
            let a = s.get(&groups_filter(&f)).await;
            let ids: BTreeSet<String> = listed_ids(&a).into_iter().collect();
            assert_eq!(a.body["totalResults"], json!(ids.len()), "{f}: {}", a.body);
            ids
        }
    };
    let one = |i: usize| BTreeSet::from([all[i].clone()]);
    assert_eq!(found("displayName eq \"Team 04\"".into()).await, one(4));
    assert_eq!(found("displayName eq \"team 04\"".into()).await, one(4));
    assert_eq!(found("DisplayName eq \"TEAM 04\"".into()).await, one(4));
    assert_eq!(found("externalId eq \"ext-9\"".into()).await, one(9));
    assert_eq!(found(format!("id eq \"{}\"", all[12])).await, one(12));
    assert_eq!(found(format!("members.value eq \"{u2}\"")).await, one(7));
    assert_eq!(found(format!("members[value eq \"{u2}\"]")).await, one(7));
    assert_eq!(
        found(format!("members.value eq \"{u1}\"")).await,
        every_third
    );
    assert_eq!(
        found(format!("members[value eq \"{u1}\"]")).await,
        every_third
    );
    assert_eq!(
        found(format!("members.value eq \"{u3}\"")).await,
        BTreeSet::new()
    );
    assert_eq!(
        found(format!("members.value eq \"{}\"", uuid::Uuid::now_v7())).await,
        BTreeSet::new()
    );
    assert_eq!(
        found(format!(
            "members.value eq \"{u1}\" and displayName eq \"Team 03\""
        ))
        .await,
        one(3)
    );
    assert_eq!(
        found(format!(
            "members.value eq \"{u1}\" and displayName eq \"Team 04\""
        ))
        .await,
        BTreeSet::new()
    );
    assert_eq!(
        found("displayName eq \"Team 01\" or externalId eq \"ext-2\"".into()).await,
        BTreeSet::from([all[1].clone(), all[2].clone()])
    );
    assert_eq!(
        found(format!(
            "(members.value eq \"{u2}\" or id eq \"{}\") and externalId eq \"ext-7\"",
            all[8]
        ))
        .await,
        one(7)
    );
    assert_eq!(
        found("displayName eq \"Team 99\"".into()).await,
        BTreeSet::new()
    );
    // A member's filter with paging: the counts stay right.
    let a = s
        .get(&format!(
            "{}&startIndex=3&count=2",
            groups_filter(&format!("members.value eq \"{u1}\""))
        ))
        .await;
    assert_eq!(listed_ids(&a).len(), 2);
    assert_eq!(a.body["totalResults"], json!(every_third.len()));
    // The same through POST /Groups/.search.
    let a = s
        .post(
            "/Groups/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": format!("members[value eq \"{u2}\"]"),
                   "excludedAttributes": ["members"], "startIndex": 1, "count": 10}),
        )
        .await;
    assert_eq!(listed_ids(&a), vec![all[7].clone()]);
    assert!(a.body["Resources"][0].get("members").is_none());
    // Unknown attributes and broken filters: 400 invalidFilter.
    for f in [
        "userName eq \"x\"",
        "nope eq \"x\"",
        "displayName",
        "members[value eq \"x\"",
        "displayName eq \"x\" and",
    ] {
        assert_scim_error(&s.get(&groups_filter(f)).await, 400, Some("invalidFilter"));
    }

    // Projections on one team and on lists.
    let p7 = format!("/Groups/{}", all[7]);
    let a = s.get(&format!("{p7}?attributes=displayName")).await;
    assert_eq!(a.status, 200);
    let keys: BTreeSet<&str> = a
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["id", "schemas", "displayName"]),
        "{}",
        a.body
    );
    let a = s.get(&format!("{p7}?excludedAttributes=members")).await;
    assert!(a.body.get("members").is_none() && a.body.get("meta").is_some());
    assert_eq!(a.body["externalId"], "ext-7");
    let a = s.get(&format!("{p7}?attributes=members")).await;
    assert_eq!(
        a.body["members"].as_array().map(Vec::len),
        Some(1),
        "{}",
        a.body
    );
    assert!(a.body.get("displayName").is_none(), "{}", a.body);
    let a = s
        .get(&format!(
            "{}&attributes=displayName,externalId",
            groups_filter("externalId eq \"ext-3\"")
        ))
        .await;
    let r = &a.body["Resources"][0];
    assert_eq!(r["displayName"], "Team 03");
    assert!(r.get("members").is_none() && r.get("meta").is_none(), "{r}");
    s.app.stop().await;
}

#[tokio::test]
async fn users_list_their_teams_read_only() {
    let s = Scim::start_with_teams().await;
    let u = user(&s, "ada").await;
    let plain = s
        .post("/Users", json!({"userName": "plain@acme.test"}))
        .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    // No role given: the effective role is said.
    let roles = plain.body["roles"].as_array().expect("roles").clone();
    assert_eq!(roles.len(), 1, "{}", plain.body);
    assert_eq!(roles[0]["value"], "contributor");
    assert_eq!(roles[0]["primary"], true);
    assert!(roles[0]["type"].is_string(), "{}", plain.body);
    assert_eq!(
        s.get(&format!("/Users/{u}")).await.body["roles"][0]["value"],
        "contributor"
    );
    let plain = txt(&plain.body["id"]).to_owned();

    let g1 = s.create_group("Design", &[&u, &plain]).await;
    let g2 = s.create_group("Research", &[&u]).await;
    let (g1, g2) = (txt(&g1["id"]).to_owned(), txt(&g2["id"]).to_owned());
    // display: the user's displayName, or their userName without one.
    let members = s.get(&format!("/Groups/{g1}")).await.body["members"].clone();
    let display = |id: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["value"] == id)
            .map(|m| m["display"].clone())
    };
    assert_eq!(display(&u), Some(json!("Ada Lovelace")));
    assert_eq!(display(&plain), Some(json!("plain@acme.test")));

    let groups_of = |body: &Value| {
        let mut g: Vec<Value> = body["groups"].as_array().cloned().unwrap_or_default();
        g.sort_by_key(|e| e["value"].as_str().unwrap_or_default().to_owned());
        g
    };
    let entry = |id: &str, name: &str| json!({"value": id, "display": name, "$ref": s.url(&format!("/Groups/{id}")), "type": "direct"});
    let mut want = vec![entry(&g1, "Design"), entry(&g2, "Research")];
    want.sort_by_key(|e| e["value"].as_str().unwrap().to_owned());
    let upath = format!("/Users/{u}");
    let got = s.get(&upath).await.body;
    assert_eq!(groups_of(&got), want);
    // In list responses too.
    let list = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"ada@acme.test\"")
        ))
        .await;
    assert_eq!(groups_of(&list.body["Resources"][0]), want);
    // On a page of the whole list, and in the root search; not when excluded.
    let page = s.get("/Users?startIndex=1&count=50").await.body;
    let ada = |body: &Value| {
        body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == u.as_str())
            .cloned()
            .unwrap()
    };
    assert_eq!(groups_of(&ada(&page)), want);
    let root = s
        .post("/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"ada@acme.test\""}))
        .await
        .body;
    assert_eq!(groups_of(&ada(&root)), want);
    let without = s
        .get(&format!(
            "/Users?excludedAttributes=groups&filter={}",
            enc("userName eq \"ada@acme.test\"")
        ))
        .await
        .body;
    assert!(ada(&without).get("groups").is_none(), "{without}");
    // A rename shows on the user.
    assert_no_content(
        &s.patch(
            &format!("/Groups/{g2}"),
            patch_ops(json!([{"op": "replace", "path": "displayName", "value": "R&D"}])),
        )
        .await,
    );
    let mut want = vec![entry(&g1, "Design"), entry(&g2, "R&D")];
    want.sort_by_key(|e| e["value"].as_str().unwrap().to_owned());
    assert_eq!(groups_of(&s.get(&upath).await.body), want);

    // groups is changed on the team, never through the user: 400 mutability.
    let before = s.get(&upath).await.body;
    for op in [
        json!({"op": "add", "path": "groups", "value": [{"value": g1}]}),
        json!({"op": "Add", "path": "groups", "value": [{"value": g2}]}),
        json!({"op": "replace", "path": "groups", "value": []}),
        json!({"op": "remove", "path": "groups"}),
        json!({"op": "remove", "path": format!("groups[value eq \"{g1}\"]")}),
        json!({"op": "replace", "path": "groups.display", "value": "x"}),
        json!({"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:groups", "value": []}),
    ] {
        let a = s.patch(&upath, patch_ops(json!([op]))).await;
        assert_scim_error(&a, 400, Some("mutability"));
    }
    assert_eq!(s.get(&upath).await.body, before, "nothing changed");

    // Okta's PUT carries groups: []; it is ignored, like any groups in a PUT or POST.
    let mut put = before.clone();
    put["groups"] = json!([]);
    put["title"] = json!("Engineer");
    let a = s.put(&upath, put).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["title"], "Engineer");
    assert_eq!(groups_of(&a.body), want, "PUT's groups: [] is ignored");
    let mut put = a.body.clone();
    put["groups"] = json!([{"value": g1}]);
    let a = s.put(&upath, put).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(groups_of(&a.body), want);
    let mut post = okta_create("joiner@acme.test", "ext-joiner");
    post["groups"] = json!([{"value": g1}]);
    let joined = s.post("/Users", post).await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    assert!(groups_of(&joined.body).is_empty(), "{}", joined.body);
    assert_eq!(s.group_members(&g1).await, by_id(&[&u, &plain]));

    // Deactivating keeps the memberships.
    let a = s
        .patch(
            &upath,
            patch_ops(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["active"], false);
    assert_eq!(groups_of(&a.body), want, "the PATCH answer has the groups");
    assert_eq!(groups_of(&s.get(&upath).await.body), want);
    assert_eq!(s.group_members(&g1).await, by_id(&[&u, &plain]));
    assert_eq!(s.group_members(&g2).await, vec![u.clone()]);
    // DELETE of a user is still refused; deleting a team leaves the user.
    assert_scim_error(&s.delete(&upath).await, 405, None);
    assert_no_content(&s.delete(&format!("/Groups/{g1}")).await);
    assert_eq!(
        groups_of(&s.get(&upath).await.body),
        vec![entry(&g2, "R&D")]
    );
    s.app.stop().await;
}

#[tokio::test]
async fn discovery_describes_groups() {
    let s = Scim::start_with_teams().await;
    let rts = s.get("/ResourceTypes").await;
    assert_eq!(rts.status, 200);
    let list: Vec<Value> = rts.body["Resources"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| rts.body.as_array().cloned().unwrap_or_default());
    let group = list
        .iter()
        .find(|r| r["id"] == "Group" || r["name"] == "Group")
        .unwrap_or_else(|| panic!("no Group resource type: {}", rts.body));
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], GROUP_SCHEMA);
    let rt = s.get("/ResourceTypes/Group").await;
    assert_eq!(rt.status, 200, "{}", rt.body);
    assert_eq!(rt.body["endpoint"], "/Groups");
    assert_eq!(rt.body["schema"], GROUP_SCHEMA);

    let schemas = s.get("/Schemas").await;
    let all = schemas.body["Resources"].as_array().unwrap();
    assert!(
        all.iter().any(|sc| sc["id"] == GROUP_SCHEMA),
        "{}",
        schemas.body
    );
    let sc = s.get(&format!("/Schemas/{GROUP_SCHEMA}")).await;
    assert_eq!(sc.status, 200, "{}", sc.body);
    let attrs = sc.body["attributes"].as_array().unwrap();
    let attr = |name: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {}", sc.body))
    };
    assert_eq!(attr("displayName")["type"], "string");
    let members = attr("members");
    assert_eq!(members["multiValued"], true);
    let subs: BTreeSet<&str> = members["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for sub in ["value", "display", "$ref", "type"] {
        assert!(subs.contains(sub), "members.{sub}: {}", sc.body);
    }
    // The user schema says groups is read-only.
    let user = s
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    let groups = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "groups")
        .unwrap_or_else(|| panic!("no groups in the User schema: {}", user.body));
    assert_eq!(groups["mutability"], "readOnly");
    s.app.stop().await;
}

#[tokio::test]
async fn repeated_members_and_no_op_changes() {
    let s = Scim::start_with_teams().await;
    let [u1, u2] = [user(&s, "ada").await, user(&s, "alan").await];
    // One member twice in a create, an add and a replace: listed once.
    let g = s.create_group("Twice", &[&u1, &u1]).await;
    let gid = txt(&g["id"]).to_owned();
    let path = format!("/Groups/{gid}");
    assert_eq!(s.group_members(&gid).await, vec![u1.clone()]);
    assert_no_content(
        &s.patch(
            &path,
            patch_ops(
                json!([{"op": "add", "path": "members", "value": [{"value": u2}, {"value": u2}]}]),
            ),
        )
        .await,
    );
    assert_eq!(s.group_members(&gid).await, by_id(&[&u1, &u2]));
    assert_no_content(
        &s.patch(
            &path,
            patch_ops(json!([{"op": "replace", "path": "members", "value": [{"value": u2}, {"value": u2}]}])),
        )
        .await,
    );
    assert_eq!(s.group_members(&gid).await, vec![u2.clone()]);

    // Adding a member already there changes nothing, not even the version.
    let before = s.get(&path).await.body;
    assert_no_content(
        &s.patch(
            &path,
            patch_ops(json!([{"op": "Add", "path": "members", "value": [{"value": u2}]}])),
        )
        .await,
    );
    assert_eq!(
        s.get(&path).await.body,
        before,
        "a no-op add changes nothing"
    );

    // externalId is compared exactly; displayName ignoring case.
    let mut body = okta_group("Cased");
    body["externalId"] = json!("Ext-A1");
    assert_eq!(s.post("/Groups", body).await.status, 201);
    for (f, n) in [
        ("externalId eq \"Ext-A1\"", 1),
        ("externalId eq \"EXT-A1\"", 0),
        ("displayName eq \"cASED\"", 1),
    ] {
        assert_eq!(
            s.get(&groups_filter(f)).await.body["totalResults"],
            json!(n),
            "{f}"
        );
    }
    // 40 members in one PATCH, all listed in id order.
    let many = users(&s, "bulk", 40).await;
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_no_content(
        &s.patch(
            &path,
            patch_ops(json!([{"op": "add", "path": "members", "value": member_values(&refs)}])),
        )
        .await,
    );
    let mut want = refs.clone();
    want.push(&u2);
    assert_eq!(s.group_members(&gid).await, by_id(&want));
    s.app.stop().await;
}

#[tokio::test]
async fn membership_patches_racing_a_delete_and_renames_racing_each_other() {
    let s = Scim::start_with_teams().await;
    let ids = users(&s, "racer", 16).await;
    let send = |method: Method, path: String, body: Option<Value>| {
        let (client, url, token) = (s.app.api(), s.url(&path), s.token.clone());
        tokio::spawn(async move {
            let mut req = client.request(method, url).bearer_auth(token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };

    // 16 adds and a DELETE at once: each add lands before the delete (204) or finds
    // the team gone (404); nothing fails, and no membership outlives the team.
    for round in 0..3 {
        let g = s.create_group(&format!("Doomed {round}"), &[]).await;
        let path = format!("/Groups/{}", txt(&g["id"]));
        let mut tasks = Vec::new();
        for (i, u) in ids.iter().enumerate() {
            if i == 8 {
                tasks.push(send(Method::DELETE, path.clone(), None));
            }
            tasks.push(send(
                Method::PATCH,
                path.clone(),
                Some(patch_ops(
                    json!([{"op": "add", "path": "members", "value": [{"value": u}]}]),
                )),
            ));
        }
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert!(
                status == 204 || status == 404,
                "round {round}: {status} {body}"
            );
        }
        assert_scim_error(&s.get(&path).await, 404, None);
        for u in &ids {
            let groups = &s.get(&format!("/Users/{u}")).await.body["groups"];
            assert!(
                groups.as_array().is_none_or(Vec::is_empty),
                "round {round}: a membership outlived its team: {groups}"
            );
        }
    }

    // Two teams renamed to one name (in different cases) at once: one wins, one 409.
    for round in 0..5 {
        let a = txt(&s.create_group(&format!("Left {round}"), &[]).await["id"]).to_owned();
        let b = txt(&s.create_group(&format!("Right {round}"), &[]).await["id"]).to_owned();
        let want = format!("Merged {round}");
        let tasks = [
            send(
                Method::PATCH,
                format!("/Groups/{a}"),
                Some(patch_ops(
                    json!([{"op": "replace", "path": "displayName", "value": want}]),
                )),
            ),
            send(
                Method::PATCH,
                format!("/Groups/{b}"),
                Some(patch_ops(
                    json!([{"op": "Replace", "value": {"id": b, "displayName": want.to_uppercase()}}]),
                )),
            ),
        ];
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap().0);
        }
        statuses.sort();
        assert_eq!(statuses, [204, 409], "round {round}");
        let found = s
            .get(&groups_filter(&format!("displayName eq \"{want}\"")))
            .await;
        assert_eq!(found.body["totalResults"], json!(1), "{}", found.body);
    }
    s.app.stop().await;
}

/// PostgreSQL: a member whose change is in flight (its row locked with the store's
/// own statement, on a connection of the test's, as a member write holds it until
/// its commit) can join a team meanwhile. The membership's foreign-key check needs
/// only that the member stays; it waited for the whole change while the lock was
/// `FOR UPDATE`.
#[tokio::test]
async fn a_member_being_changed_can_join_a_team() {
    use rollcall::store::{Backend, plans};
    use sqlx::Connection;
    let s = Scim::start_with_teams().await;
    if s.app.db.backend() != Backend::Postgres {
        s.app.stop().await;
        return;
    }
    let u = txt(&s.create("ada@acme.test").await["id"]).to_owned();
    let g = txt(&s.create_group("All", &[]).await["id"]).to_owned();
    let ws = ops::workspace(&s.app.db, "acme").await.unwrap();
    let lock = plans::hot_queries(Backend::Postgres, ws.id)
        .unwrap()
        .into_iter()
        .find(|q| q.name == "member locked for a change")
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&s.app.database_url)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    let locked = sqlx::query(&lock.sql)
        .bind(ws.id)
        .bind(uuid::Uuid::parse_str(&u).unwrap())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);
    let add = patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u}]}]));
    let added = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.patch(&format!("/Groups/{g}"), add),
    )
    .await;
    tx.rollback().await.unwrap();
    let added = added.expect("joining the team waited for the member's change");
    assert_no_content(&added);
    assert_eq!(s.group_members(&g).await, [u]);
    s.app.stop().await;
}
