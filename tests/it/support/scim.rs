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
