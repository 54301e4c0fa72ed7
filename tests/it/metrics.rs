//! `GET /metrics`: Prometheus text, routes as templates, on the app host only.

use crate::support::scim::Scim;
use serde_json::json;

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let s = Scim::start().await;
    let created = s.create("ada@example.com").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&format!("/Users/{id}")).await.status, 200);
    assert_eq!(s.get("/Users/not-an-id").await.status, 404);
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    assert_eq!(s.patch(&format!("/Users/{id}"), patch).await.status, 200);

    let api = s.app.api();
    let r = api.get(s.app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            "rollcall_http_requests_total{route=\"/scim/v2/Users/{id}\",method=\"GET\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("status=\"404\""), "{text}");
    assert!(!text.contains(&id), "raw ids never become labels");
    assert!(text.contains("rollcall_http_request_duration_seconds_bucket{route=\"/scim/v2/Users\",method=\"POST\",le=\"+Inf\"}"));
    assert!(text.contains("rollcall_scim_writes_total{operation=\"create\",outcome=\"success\"}"));
    assert!(text.contains("rollcall_scim_writes_total{operation=\"patch\",outcome=\"success\"}"));
    assert!(text.contains("rollcall_db_pool_connections{"));

    // By IP too; never on a workspace host.
    let by_ip = api
        .get(format!("http://127.0.0.1:{}/metrics", s.app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_ip.status(), 200);
    let on_ws = api
        .get(s.app.ws_url("acme", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_ws.status(), 404);
}
