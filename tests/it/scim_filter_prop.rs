//! Property: for random members and random filters, the database (SQL compiled from
//! the filter) and the in-memory evaluator select exactly the same members. Runs on
//! whichever backend the suite runs on.

use crate::support::TestApp;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rollcall::app::provisioning::{member_data, render};
use rollcall::scim::{filter, resource};
use rollcall::store::members::{self, Search};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const WORDS: &[&str] = &[
    "alpha", "Alpha", "beta", "BETA", "gamma", "al", "a", "zeta_1", "50%", "o'neil", "x\"y", "",
];
const TYPES: &[&str] = &["work", "home", "Work", "other"];

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).copied().unwrap_or("")
}

fn maybe(rng: &mut StdRng, make: impl FnOnce(&mut StdRng) -> Value) -> Option<Value> {
    if rng.gen_bool(0.7) {
        Some(make(rng))
    } else {
        None
    }
}

fn random_member(rng: &mut StdRng, i: usize) -> Value {
    let mut u = serde_json::Map::new();
    u.insert(
        "userName".into(),
        json!(format!(
            "{}{i}@{}.test",
            pick(rng, WORDS).replace(['"', '\'', '%'], ""),
            pick(rng, &["acme", "Globex"])
        )),
    );
    for (k, v) in [
        ("title", maybe(rng, |r| json!(pick(r, WORDS)))),
        ("displayName", maybe(rng, |r| json!(pick(r, WORDS)))),
        (
            "externalId",
            maybe(rng, |r| json!(format!("{}-{i}", pick(r, WORDS)))),
        ),
        ("active", maybe(rng, |r| json!(r.gen_bool(0.5)))),
    ] {
        if let Some(v) = v {
            u.insert(k.into(), v);
        }
    }
    if rng.gen_bool(0.8) {
        u.insert(
            "name".into(),
            json!({"givenName": pick(rng, WORDS), "familyName": pick(rng, WORDS)}),
        );
    }
    let n = rng.gen_range(0..3);
    let primary = rng.gen_range(0..3);
    let emails: Vec<Value> = (0..n)
        .map(|k| json!({"value": format!("{}{k}@{}.org", pick(rng, WORDS).replace(['"', '\'', '%'], ""), i), "type": pick(rng, TYPES), "primary": k == primary}))
        .collect();
    if !emails.is_empty() {
        u.insert("emails".into(), Value::Array(emails));
    }
    if rng.gen_bool(0.6) {
        u.insert(
            "roles".into(),
            json!([{"value": pick(rng, &["admin", "maker", "viewer"]), "type": pick(rng, WORDS)}]),
        );
    }
    if rng.gen_bool(0.6) {
        u.insert(ENT.into(), json!({"department": pick(rng, WORDS), "manager": {"value": pick(rng, &["m1", "M1", "m2"])}}));
    }
    Value::Object(u)
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn random_atom(rng: &mut StdRng, created: &[String]) -> String {
    let string_attrs = [
        "userName",
        "title",
        "displayName",
        "name.givenName",
        "NAME.FAMILYNAME",
        "externalId",
        "emails.value",
        "emails.type",
        "roles.value",
        "roles.type",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    ];
    match rng.gen_range(0..10) {
        0 => format!(
            "{} pr",
            pick(
                rng,
                &[
                    "title",
                    "externalId",
                    "emails",
                    "name.givenName",
                    "roles",
                    ENT,
                    "active",
                    "emails.type"
                ]
            )
        ),
        1 => format!(
            "{} eq {}",
            pick(rng, &["active", "emails.primary", "roles.primary"]),
            pick(rng, &["true", "false", "\"True\""])
        ),
        2 => format!(
            "emails[type eq {} and primary eq {}]",
            quoted(pick(rng, TYPES)),
            pick(rng, &["true", "false"])
        ),
        3 => format!(
            "emails[value {} {} or not (type eq \"home\")]",
            pick(rng, &["co", "sw", "ew"]),
            quoted(pick(rng, WORDS))
        ),
        4 if !created.is_empty() => {
            let t = created.choose(rng).unwrap();
            format!(
                "meta.created {} {}",
                pick(rng, &["gt", "ge", "lt", "le", "eq"]),
                quoted(t)
            )
        }
        _ => {
            let attr = pick(rng, &string_attrs);
            let op = pick(
                rng,
                &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ"],
            );
            let mut v = pick(rng, WORDS).to_owned();
            if attr.to_lowercase().contains("username") && rng.gen_bool(0.5) {
                v = format!("{v}1@acme.test");
            }
            format!("{attr} {op} {}", quoted(&v))
        }
    }
}

fn random_filter(rng: &mut StdRng, depth: u32, created: &[String]) -> String {
    if depth == 0 || rng.gen_bool(0.4) {
        return random_atom(rng, created);
    }
    match rng.gen_range(0..3) {
        0 => format!(
            "{} and {}",
            random_filter(rng, depth - 1, created),
            random_filter(rng, depth - 1, created)
        ),
        1 => format!(
            "({} or {})",
            random_filter(rng, depth - 1, created),
            random_filter(rng, depth - 1, created)
        ),
        _ => format!("not ({})", random_filter(rng, depth - 1, created)),
    }
}

#[tokio::test]
async fn database_and_memory_select_the_same_members() {
    let seed: u64 = std::env::var("PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    println!("PROP_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = TestApp::spawn().await;
    app.workspace("acme").await;
    let ws = crate::support::ops::workspace(&app.db, "acme")
        .await
        .unwrap();

    let mut rendered = Vec::new();
    for i in 0..60 {
        let body = random_member(&mut rng, i);
        let canonical = resource::normalize_user(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        let m = members::create(&app.db, ws.id, &member_data(canonical), None)
            .await
            .unwrap();
        rendered.push(render(&m, &[], &app.base));
    }
    let all = members::search(
        &app.db,
        ws.id,
        &Search {
            filter: None,
            sort: None,
            descending: false,
            offset: 0,
            limit: 1000,
            teams: false,
        },
    )
    .await
    .unwrap()
    .1;
    rendered = all
        .iter()
        .map(|m| render(&m.member, &[], &app.base))
        .collect();
    let created: Vec<String> = rendered
        .iter()
        .map(|r| r["meta"]["created"].as_str().unwrap().to_owned())
        .collect();

    let mut checked = 0;
    for _ in 0..400 {
        let text = random_filter(&mut rng, 3, &created);
        let Ok(f) = filter::parse(&text) else {
            continue;
        };
        let search = Search {
            filter: Some(&f),
            sort: None,
            descending: false,
            offset: 0,
            limit: 1000,
            teams: false,
        };
        let (total, rows) = match members::search(&app.db, ws.id, &search).await {
            Ok(r) => r,
            Err(rollcall::store::StoreError::InvalidFilter(_)) => continue,
            Err(e) => panic!("seed {seed}: {text}: {e}"),
        };
        let in_db: BTreeSet<String> = rows.iter().map(|m| m.member.id.to_string()).collect();
        let in_memory: BTreeSet<String> = rendered
            .iter()
            .filter(|r| filter::matches(&f, r))
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(total as usize, in_db.len());
        assert_eq!(in_db, in_memory, "seed {seed}: filter {text}");
        checked += 1;
    }
    assert!(checked > 300, "too few filters were valid: {checked}");
    app.stop().await;
}
