//! The SCIM API is limited per token (`scim_rate_per_token`, requests per minute, a
//! minute's worth as burst): over it, `429` in the SCIM Error format with
//! `Retry-After`; `X-RateLimit-Limit` and `X-RateLimit-Remaining` on every
//! authenticated answer. Requests are sent concurrently, as a runaway IdP sends them.

use crate::support::TestApp;
use serde_json::{Value, json};
use std::time::Instant;

const LIMIT: u32 = 30;

/// A server with workspace `acme`, SCIM on, and the SCIM limit set to `limit`.
async fn server(limit: u32) -> TestApp {
    let app = TestApp::spawn_with(|s| s.scim_rate_per_token = Some(limit)).await;
    app.workspace("acme").await;
    crate::support::ops::set_scim(&app.db, "acme", true)
        .await
        .unwrap();
    app
}

async fn token(app: &TestApp, name: &str) -> String {
    crate::support::ops::create_api_token(&app.db, "acme", name, name)
        .await
        .unwrap()
}

struct Answer {
    status: u16,
    limit: Option<String>,
    remaining: Option<i64>,
    retry_after: Option<String>,
    content_type: String,
    body: Value,
}

async fn get(client: reqwest::Client, url: String, token: String) -> Answer {
    let resp = client.get(url).bearer_auth(token).send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (limit, remaining, retry_after) = (
        header("x-ratelimit-limit"),
        header("x-ratelimit-remaining").map(|r| r.parse::<i64>().expect("an integer")),
        header("retry-after"),
    );
    let content_type = header("content-type").unwrap_or_default();
    Answer {
        status: resp.status().as_u16(),
        limit,
        remaining,
        retry_after,
        content_type,
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

/// `n` concurrent `GET /scim/v2/Users` with `token`, spread over `apps`.
async fn burst(apps: &[&TestApp], token: &str, n: usize) -> Vec<Answer> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = apps[i % apps.len()];
        tasks.push(tokio::spawn(get(
            app.api(),
            app.url("/scim/v2/Users?count=1"),
            token.to_owned(),
        )));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// What one token bucket of `limit` a minute (a minute's worth as burst) allows in
/// `secs` seconds.
fn bucket_allows(limit: u32, secs: f64) -> usize {
    (f64::from(limit) + f64::from(limit) * secs / 60.0).floor() as usize
}

fn assert_limited(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(
        a.content_type.starts_with("application/scim+json"),
        "{}",
        a.content_type
    );
    assert_eq!(
        a.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(a.body["status"], "429");
    assert!(a.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let retry: u64 = a
        .retry_after
        .as_deref()
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(a.remaining, Some(0));
}

#[tokio::test]
async fn concurrent_requests_over_the_limit_get_429_with_retry_after() {
    let app = server(LIMIT).await;
    let busy = token(&app, "busy").await;
    let started = Instant::now();
    let answers = burst(&[&app], &busy, 2 * LIMIT as usize).await;
    let secs = started.elapsed().as_secs_f64();

    let ok: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(ok.len() + limited.len(), answers.len(), "only 200 and 429");
    // One process: the whole burst, and no more than the bucket refilled meanwhile.
    assert!(
        ok.len() >= LIMIT as usize && ok.len() <= bucket_allows(LIMIT, secs),
        "{} allowed in {secs:.2}s",
        ok.len()
    );
    for a in &limited {
        assert_limited(a);
    }
    for a in answers.iter() {
        assert_eq!(a.limit.as_deref(), Some("30"), "X-RateLimit-Limit");
        assert!(a.remaining.is_some(), "X-RateLimit-Remaining");
    }
    // Every allowed request took one: the remaining counts are all different.
    let mut remaining: Vec<i64> = ok.iter().filter_map(|a| a.remaining).collect();
    remaining.sort_unstable();
    remaining.dedup();
    assert!(remaining.len() >= LIMIT as usize - 1, "{remaining:?}");

    // Another token of the same workspace has its own allowance.
    let other = token(&app, "other").await;
    let a = get(app.api(), app.url("/scim/v2/Users"), other).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.remaining, Some(i64::from(LIMIT) - 1));
    // The busy one is still limited.
    assert_limited(&get(app.api(), app.url("/scim/v2/Users"), busy).await);
    app.stop().await;
}

#[tokio::test]
async fn remaining_decreases_and_every_scim_answer_carries_the_headers() {
    let app = server(LIMIT).await;
    let t = token(&app, "t").await;
    let mut last = i64::MAX;
    for _ in 0..5 {
        let a = get(app.api(), app.url("/scim/v2/Users"), t.clone()).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.limit.as_deref(), Some("30"));
        let r = a.remaining.unwrap();
        assert!(r < last, "{r} after {last}");
        last = r;
    }
    // Error answers count, and carry the headers too.
    let a = get(
        app.api(),
        app.url("/scim/v2/Users/00000000-0000-0000-0000-000000000000"),
        t.clone(),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.limit.as_deref(), Some("30"));
    assert!(a.remaining.unwrap() < last);
    app.stop().await;
}

#[tokio::test]
async fn zero_turns_the_limit_off() {
    let app = server(0).await;
    let t = token(&app, "t").await;
    let answers = burst(&[&app], &t, 100).await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    app.stop().await;
}

/// Two servers on one database (PostgreSQL, or one SQLite file) count together: what
/// they allow stays within the stated bound (one bucket, plus at most one unreported
/// sync share per process, see `store::rate_limits`).
#[tokio::test]
async fn two_servers_on_one_database_stay_within_the_bound() {
    let a = server(LIMIT).await;
    let b = TestApp::spawn_on(&a.database_url, |s| s.scim_rate_per_token = Some(LIMIT)).await;
    let t = token(&a, "shared").await;
    let started = Instant::now();
    let answers = burst(&[&a, &b], &t, 4 * LIMIT as usize).await;
    let secs = started.elapsed().as_secs_f64();
    let ok = answers.iter().filter(|x| x.status == 200).count();
    // The share a process may use before it reports: two seconds' worth, at least one.
    let share = LIMIT.div_ceil(30).max(1) as usize;
    assert!(
        ok <= bucket_allows(LIMIT, secs) + 2 * share,
        "{ok} allowed by two servers in {secs:.2}s"
    );
    assert!(ok >= LIMIT as usize / 2, "{ok} allowed");
    for x in answers.iter().filter(|x| x.status != 200) {
        assert_limited(x);
    }
    // Housekeeping's statement, which also forgets buckets full for a day, runs on
    // this database.
    rollcall::store::rate_limits::delete_old(&a.db)
        .await
        .unwrap();
    b.stop().await;
    a.stop().await;
}
