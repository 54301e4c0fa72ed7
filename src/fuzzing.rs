//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo fuzz,
//! libFuzzer) and for the test that replays their corpora on every CI run
//! (`tests/it/fuzz_corpus.rs`). Each takes arbitrary bytes, runs them through the
//! same pure code a request reaches, and checks the invariants that must hold
//! whatever the input: no panic, errors in the protocol's own form, and results
//! that are stable when fed back in. A broken invariant panics, which is what the
//! fuzzer reports.

use crate::oauth::{self, Scopes};
use crate::scim::{filter, group, patch, resource};
use crate::store::Backend;
use crate::store::oauth::Client;
use crate::store::scim_sql::{self, SqlBuilder};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A member as SCIM clients create them: what the filter and PATCH targets work on.
fn sample_member() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "userName": "Ada.Lovelace@example.com",
        "externalId": "00u1ab2cd3",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": "Ada Lovelace",
        "active": true,
        "title": "Analyst",
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": true},
            {"value": "ada@home.example", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+44 20 7946 0000", "type": "mobile"}],
        "roles": [{"value": "maker", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1815",
            "department": "Engines",
            "manager": {"value": "babbage"}
        }
    })
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The SCIM filter parser, the in-memory evaluator and the SQL compiler for both
/// databases: a filter that parses must evaluate and compile, with one bound
/// parameter per `$n` in the SQL text.
pub fn scim_filter(data: &[u8]) {
    let Some(input) = text(data) else { return };
    // The text as a Group filter, compiled for the teams table.
    if let Ok(parsed) = filter::parse_group(input) {
        check_sql(&parsed, scim_sql::compile_team);
    }
    let Ok(parsed) = filter::parse(input) else {
        return;
    };
    let member = resource::normalize_user(&sample_member()).expect("the sample member is valid");
    let _ = filter::matches(&parsed, &member);
    check_sql(&parsed, scim_sql::compile);
}

/// A compiled filter binds exactly the parameters its SQL text names.
fn check_sql(
    parsed: &filter::Filter,
    compile: fn(&mut SqlBuilder, &filter::Filter) -> Result<String, crate::store::StoreError>,
) {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut b = SqlBuilder::new(backend);
        if let Ok(sql) = compile(&mut b, parsed) {
            for n in 1..=b.binds.len() {
                assert!(sql.contains(&format!("${n}")), "unused bind ${n} in {sql}");
            }
            assert!(
                !sql.contains(&format!("${}", b.binds.len() + 1)),
                "placeholder without a bind in {sql}"
            );
        }
    }
}

/// The PATCH engine applied to a member, as `app::provisioning::patch` does it: parse the
/// PatchOp body, apply it, normalise the result. Whatever comes out must be a valid
/// member: normalising it again changes nothing, and rendering it works. The same
/// body goes through the Group PATCH reader (`app::teams::patch`): it refuses with a
/// 4xx or names only valid member ids and a valid name.
pub fn scim_patch(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match group::parse_patch(&body) {
        Ok(p) => {
            if let Some(name) = &p.display_name {
                assert!(
                    group::check_name(name).is_ok(),
                    "a bad name got through: {name:?}"
                );
            }
        }
        Err(e) => assert!((400..500).contains(&e.status), "{e:?}"),
    }
    let Ok(ops) = patch::parse_request(&body) else {
        return;
    };
    let mut doc = resource::normalize_user(&sample_member()).expect("the sample member is valid");
    if patch::apply(&mut doc, &ops).is_err() {
        return;
    }
    if let Ok(canonical) = resource::normalize_user(&doc) {
        check_canonical(&canonical);
    }
}

/// A POST/PUT body: JSON (as the SCIM body extractor reads it), normalised to the
/// stored form, the indexed facts taken from it, and rendered back.
pub fn scim_user_body(data: &[u8]) {
    if data.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(canonical) = resource::normalize_user(&body) {
        check_canonical(&canonical);
    }
}

fn check_canonical(canonical: &Value) {
    let again = resource::normalize_user(canonical)
        .unwrap_or_else(|e| panic!("a normalised member was refused: {e:?}\n{canonical}"));
    assert_eq!(&again, canonical, "normalising is not idempotent");
    let facts = resource::facts(canonical);
    assert!(!facts.user_name.is_empty(), "a member without a userName");
    let now = OffsetDateTime::UNIX_EPOCH;
    let rendered = resource::render_user(
        canonical,
        &resource::Meta {
            id: "0190c0de-0000-7000-8000-000000000000",
            created: now,
            last_modified: now,
            version: 1,
            location: "http://localhost/scim/v2/Users/0190c0de-0000-7000-8000-000000000000",
            groups: &[],
        },
    );
    assert!(
        rendered.get("password").is_none(),
        "a password was rendered"
    );
}

/// The OAuth form parsers: token and revocation/introspection forms (with an
/// Authorization header taken from the first line of the input), the authorization
/// request's query string against a registered client, and scope strings.
pub fn oauth_forms(data: &[u8]) {
    let (header, form) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (text(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let _ = Scopes::parse(text(data).unwrap_or_default());
    let Ok(params) = oauth::parse_params(form) else {
        return;
    };
    let again = oauth::parse_params(params.to_query().as_bytes())
        .expect("parameters written back as a query parse again");
    assert_eq!(again, params, "parameters do not round-trip");
    let _ = oauth::token::parse_grant(&params);
    if let Ok(creds) = oauth::client::credentials(header, &params) {
        let client = client();
        let _ = oauth::client::authenticate(&creds, Some(&client), OffsetDateTime::UNIX_EPOCH);
    }
    let client = client();
    match oauth::authorize::validate(&params, Some(&client)) {
        Ok(req) => {
            assert!(client.redirect_uris.contains(&req.redirect_uri));
            let _ = oauth::authorize::success_redirect(&req, "rc_ac_code", "http://localhost");
        }
        Err(oauth::authorize::Refusal::Redirect { redirect_uri, .. }) => {
            // Never an open redirect: errors go back only to a registered URI.
            assert!(client.redirect_uris.contains(&redirect_uri));
        }
        Err(oauth::authorize::Refusal::Page(_)) => {}
    }
}

fn client() -> Client {
    Client {
        id: "okta".into(),
        name: "Okta".into(),
        public: false,
        secret_digest: Some(crate::secrets::digest("rc_cs_secret")),
        redirect_uris: vec![
            "https://system-admin.okta.com/admin/app/cpc/rollcall/oauth/callback".into(),
            "http://127.0.0.1:9999/callback".into(),
        ],
        scopes: "scim:read scim:write".into(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        workspace_id: None,
        grant_types: "authorization_code".into(),
        secret_generation: 1,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        created_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_inputs_run() {
        scim_filter(br#"userName eq "ada.lovelace@example.com" and emails[type eq "work"]"#);
        scim_patch(
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#,
        );
        scim_user_body(br#"{"userName":"grace@example.com","active":true}"#);
        oauth_forms(
            b"Basic b2t0YTpyY19jc19zZWNyZXQ=\ngrant_type=refresh_token&refresh_token=rc_rt_x",
        );
    }

    #[test]
    #[should_panic(expected = "normalising is not idempotent")]
    fn a_broken_invariant_panics() {
        let mut m = resource::normalize_user(&sample_member()).unwrap();
        m["active"] = json!("False");
        check_canonical(&m);
    }
}
