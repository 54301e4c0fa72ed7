//! Crash safety: the real server binary is killed with SIGKILL in the middle of a
//! write load, 20 times, and restarted on the same database. Every write it
//! acknowledged is there afterwards, whole: the member and its email index agree.

use crate::support::fresh_database_url;
use crate::support::scim::okta_create;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Server {
    child: Child,
    base: String,
}

fn start(bin: &str, db: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    // The load is far over the default SCIM rate limit on one token, and this test is
    // about crash safety, not the limiter: it is turned off.
    let config = std::env::temp_dir().join(format!("rollcall-crash-{port}.toml"));
    std::fs::write(&config, "scim_rate_per_token = 0\n").expect("config file");
    let child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--base-url",
            &format!("http://localhost:{port}"),
        ])
        .env("ROLLCALL_DATABASE_URL", db)
        .env("ROLLCALL_CONFIG", &config)
        .env("ROLLCALL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rollcall");
    Server { child, base }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {base} did not become ready");
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let bin = env!("CARGO_BIN_EXE_rollcall");
    let db = fresh_database_url().await;
    let cli = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("ROLLCALL_DATABASE_URL", &db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    cli(&[
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--admin-email",
        "admin@acme.test",
    ]);
    cli(&["workspace", "scim", "acme", "on"]);
    let token = cli(&["token", "create", "--workspace", "acme"]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();

    for round in 0..20 {
        let mut server = start(bin, &db);
        wait_ready(&client, &server.base).await;
        let mut load = Vec::new();
        for worker in 0..6 {
            let (client, base, token, acked) = (
                client.clone(),
                server.base.clone(),
                token.clone(),
                acked.clone(),
            );
            load.push(tokio::spawn(async move {
                for n in 0.. {
                    let user = format!("r{round}w{worker}n{n}@acme.test");
                    let mut body = okta_create(&user, &format!("x-{round}-{worker}-{n}"));
                    body["emails"] = serde_json::json!([
                        {"value": user, "type": "work", "primary": true},
                        {"value": format!("home.{user}"), "type": "home"}
                    ]);
                    let Ok(resp) = client
                        .post(format!("{base}/scim/v2/Users"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if resp.status() != 201 {
                        return;
                    }
                    let Ok(v) = resp.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .push((v["id"].as_str().unwrap().to_owned(), user));
                }
            }));
        }
        // Kill at a different point each round, while writes are in flight.
        tokio::time::sleep(Duration::from_millis(60 + (round * 37) % 200)).await;
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        for l in load {
            let _ = l.await;
        }
    }

    // Restart once more and check every acknowledged write, whole.
    let mut server = start(bin, &db);
    wait_ready(&client, &server.base).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the load wrote too little to mean anything: {}",
        acked.len()
    );
    let get = |path: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for (id, user) in &acked {
        let u = get(format!("{}/scim/v2/Users/{id}", server.base)).await;
        assert_eq!(
            u["userName"],
            user.as_str(),
            "acknowledged member {id} missing or changed: {u}"
        );
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(2), "{u}");
    }
    // No half-written member: every stored member's emails are in the index.
    let all = get(format!(
        "{}/scim/v2/Users?count=1000&attributes=emails",
        server.base
    ))
    .await;
    let total = all["totalResults"].as_u64().unwrap();
    assert!(
        total as usize > acked.len(),
        "admin + acknowledged (+ maybe unacknowledged)"
    );
    let mut checked = 0;
    let mut start_index = 1;
    while start_index <= total {
        let page = get(format!(
            "{}/scim/v2/Users?count=1000&startIndex={start_index}",
            server.base
        ))
        .await;
        for u in page["Resources"].as_array().unwrap() {
            for e in u["emails"].as_array().into_iter().flatten() {
                let f = rollcall::http::pages::urlencode(&format!(
                    "emails.value eq \"{}\"",
                    e["value"].as_str().unwrap()
                ));
                let found = get(format!("{}/scim/v2/Users?filter={f}", server.base)).await;
                assert_eq!(
                    found["Resources"][0]["id"], u["id"],
                    "email index out of step for {u}"
                );
            }
            checked += 1;
        }
        start_index += 1000;
    }
    assert_eq!(checked as u64, total);
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
