//! Helpers shared by the access tests (`access.rs`, `access_keys.rs`): an operators-mode app,
//! the services over its data dir, and sign-in as a browser would do it.

use canarykeys_server::Services;
use serde_json::{json, Value};

use crate::app::{self, spawn_app_with, TestApp};

pub const PASSWORD: &str = "correct horse battery";
/// A CSRF token the test plays as its browser's cookie and form field alike.
pub fn csrf() -> String {
    "c".repeat(43)
}

pub async fn operators_app() -> TestApp {
    spawn_app_with(|c| c.access.create = "operators".into()).await
}

/// The app's services over the same data directory, as the CLI would open them.
pub async fn services(app: &TestApp) -> Services {
    Services::open(&app::test_config(&app.data_dir))
        .await
        .unwrap()
}

pub fn session_from(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("ck_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
}

pub async fn post_login(
    app: &TestApp,
    name: &str,
    password: &str,
    cookies: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/login"))
        .header("cookie", cookies)
        .form(&[
            ("name", name),
            ("password", password),
            ("csrf", &csrf()),
            ("next", "/console/tokens"),
        ])
        .send()
        .await
        .unwrap()
}

pub async fn login(app: &TestApp, name: &str) -> String {
    let resp = post_login(app, name, PASSWORD, &format!("ck_csrf={}", csrf())).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console/tokens");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
    session_from(&resp).expect("a session cookie")
}

pub async fn get(
    app: &TestApp,
    path: &str,
    auth: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(key) = auth {
        req = req.bearer_auth(key);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("ck_session={c}"));
    }
    req.send().await.unwrap()
}

pub fn memo() -> Value {
    json!({"kind": "aws_keys", "memo": "ci runner ~/.aws", "email": "soc@example.com"})
}
