//! SCIM clients for the tests: a workspace with a token, answers checked to be
//! `application/scim+json`, and the request bodies Okta sends.

use super::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct Scim {
    pub app: TestApp,
    pub token: String,
    client: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Scim {
    /// A server with workspace `acme`, SCIM on, and an API token.
    pub async fn start() -> Scim {
        let app = TestApp::spawn().await;
        app.workspace("acme").await;
        super::ops::set_scim(&app.db, "acme", true).await.unwrap();
        let token = super::ops::create_api_token(&app.db, "acme", "test", "test")
            .await
            .unwrap();
        let client = app.api();
        Scim { app, token, client }
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(&format!("/scim/v2{path}"))
    }

    /// A request as Okta sends it.
    pub async fn okta(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("accept", "application/scim+json")
            .header("user-agent", "Okta SCIM Client 1.0.0");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json; charset=utf-8")
                .body(b.to_string());
        }
        answer(req.send().await.unwrap()).await
    }

    /// A request as Okta sends it, with an optional If-Match (owned arguments, so
    /// many can be made at once).
    pub async fn call(
        &self,
        method: Method,
        path: String,
        body: Value,
        if_match: Option<&str>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, self.url(&path))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json; charset=utf-8")
            .body(body.to_string());
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.okta(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.okta(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.okta(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.okta(Method::PUT, path, Some(body)).await
    }

    /// A request with a raw body and content type of our choosing.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        answer(req.body(body).send().await.unwrap()).await
    }

    pub async fn create(&self, user_name: &str) -> Value {
        let a = self
            .post(
                "/Users",
                okta_create(user_name, &format!("ext-{user_name}")),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }
}

/// The PatchOp message schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A PatchOp message with these operations.
pub fn patch_ops(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// Okta Push Groups' create body: `displayName` and an empty member list.
pub fn okta_group(display_name: &str) -> Value {
    json!({"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": []})
}

/// `[{"value": id}, ...]`: a member list as the identity providers send it.
pub fn member_values(ids: &[&str]) -> Value {
    Value::Array(ids.iter().map(|id| json!({"value": id})).collect())
}

impl Scim {
    /// A server with workspace `acme`, SCIM and "Manage teams with SCIM" on, and an
    /// API token.
    pub async fn start_with_teams() -> Scim {
        let s = Scim::start().await;
        super::ops::set_scim_teams(&s.app.db, "acme", true)
            .await
            .unwrap();
        s
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.okta(Method::DELETE, path, None).await
    }

    /// A request as Entra ID sends it: `Content-Type: application/json`.
    pub async fn entra(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("accept", "application/scim+json");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        answer(req.send().await.unwrap()).await
    }

    /// A request with another token (another workspace's, say) and extra headers.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("accept", "application/scim+json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json; charset=utf-8")
                .body(b.to_string());
        }
        answer(req.send().await.unwrap()).await
    }

    /// Another workspace on the same server with SCIM on (and teams as asked);
    /// returns its API token.
    pub async fn other_workspace(&self, sub: &str, teams: bool) -> String {
        self.app.workspace(sub).await;
        super::ops::set_scim(&self.app.db, sub, true).await.unwrap();
        super::ops::set_scim_teams(&self.app.db, sub, teams)
            .await
            .unwrap();
        super::ops::create_api_token(&self.app.db, sub, "other", "test")
            .await
            .unwrap()
    }

    /// `POST /Groups` (Okta's body, with these members); the 201's resource.
    pub async fn create_group(&self, display_name: &str, members: &[&str]) -> Value {
        let mut body = okta_group(display_name);
        body["members"] = member_values(members);
        let a = self.post("/Groups", body).await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    /// The member ids of a team, in the order the server lists them.
    pub async fn group_members(&self, group_id: &str) -> Vec<String> {
        let a = self.get(&format!("/Groups/{group_id}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members array: {}", a.body))
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if !body.is_null() {
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/scim+json"),
            "SCIM answers are application/scim+json, got {ct:?}: {body}"
        );
    }
    Answer {
        status,
        body,
        headers,
    }
}

/// Okta's create body (interop.md).
pub fn okta_create(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "Tr0ub4dor&3",
        "active": true
    })
}
