//! Black-box tests of the operator console pages: sign-in required, the overview, the token list
//! with filters, bulk create (CSV in, ZIP out) and bulk delete with CSRF, the alert feed and its
//! live stream, the audit log with export, and API keys shown once.

use std::io::Read;
use std::time::{Duration, Instant};

use canarykeys_testkit::console::{create_operator, ingest, INGEST_SECRET};
use canarykeys_testkit::{spawn_app_with, TestApp};
use serde_json::Value;

const NAME: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// The value of `name="csrf" value="…"` in a page.
fn csrf_in(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn cookie_from(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// A signed-in browser: the CSRF cookie and token, and the session cookie.
struct Operator<'a> {
    app: &'a TestApp,
    cookies: String,
    csrf: String,
}

impl<'a> Operator<'a> {
    async fn sign_in(app: &'a TestApp) -> Operator<'a> {
        let resp = app.http.get(app.url("/login")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let csrf_cookie = cookie_from(&resp, "ck_csrf").expect("login page sets the CSRF cookie");
        let html = resp.text().await.unwrap();
        assert!(html.contains(r#"id="login-form""#) && html.contains(r#"id="sign-in""#));
        let csrf = csrf_in(&html);
        let resp = app
            .http
            .post(app.url("/login"))
            .header("cookie", &csrf_cookie)
            .form(&[
                ("name", NAME),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", "/console"),
            ])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_redirection(), "sign-in: {}", resp.status());
        let session = cookie_from(&resp, "ck_session").expect("sign-in sets a session");
        Operator {
            app,
            cookies: format!("{csrf_cookie}; {session}"),
            csrf,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let url = self.app.url(path);
        self.app
            .http
            .get(url)
            .header("cookie", &self.cookies)
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = self.app.url(path);
        let req = self.app.http.post(url).header("cookie", &self.cookies);
        req.form(form).send().await.unwrap()
    }

    /// Uploads a CSV of memos as the bulk-create form does (multipart, built by hand).
    async fn bulk_create(&self, csrf: &str, csv: &str) -> reqwest::Response {
        let b = "----ckboundary7d3f";
        let mut body = String::new();
        for (name, value) in [
            ("csrf", csrf),
            ("email", "soc@example.com"),
            ("webhook_url", ""),
        ] {
            body += &format!(
                "--{b}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        body += &format!("--{b}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"memos.csv\"\r\ncontent-type: text/csv\r\n\r\n{csv}\r\n--{b}--\r\n");
        let url = self.app.url("/console/tokens/bulk-create");
        let req = self.app.http.post(url).header("cookie", &self.cookies);
        req.header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

async fn app() -> TestApp {
    let app = spawn_app_with(|c| {
        c.ingest.secret = Some(canarykeys_server::config::Secret::new(INGEST_SECRET))
    })
    .await;
    create_operator(&app, NAME, PASSWORD);
    app
}

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            (f.name().to_owned(), s)
        })
        .collect()
}

#[tokio::test]
async fn console_pages_need_a_session() {
    let app = app().await;
    let pages = "/console /console/tokens /console/alerts /console/audit /console/api-keys \
                 /console/alerts/stream /console/audit/export?format=csv";
    for path in pages.split_whitespace() {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{path}: {}", resp.status());
        let to = resp.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
    }
    let resp = app
        .http
        .post(app.url("/console/tokens/bulk-delete"))
        .form(&[("id", "x")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection());
    app.stop().await;
}

#[tokio::test]
async fn bulk_create_zip_filter_delete_and_audit() {
    let app = app().await;
    let op = Operator::sign_in(&app).await;
    let html = op.page("/console/tokens").await;
    let csrf = csrf_in(&html);
    assert_eq!(csrf, op.csrf);

    // Without the CSRF token nothing is made.
    assert_eq!(op.bulk_create("wrong", "memo\nweb01\n").await.status(), 403);

    let resp = op
        .bulk_create(
            &csrf,
            "memo\nweb01 /srv/.env\nci runner\n\"db, <b>prod</b>\"\n",
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let files = unzip(&resp.bytes().await.unwrap());
    let mut dirs: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.split('/').next().unwrap())
        .collect();
    dirs.dedup();
    assert_eq!(dirs.len(), 3, "{files:?}");
    for d in &dirs {
        for f in ["credentials", "config", "manage.txt"] {
            assert!(
                files.iter().any(|(n, _)| *n == format!("{d}/{f}")),
                "{d}/{f} missing"
            );
        }
    }
    let creds = &files
        .iter()
        .find(|(n, _)| n.ends_with("/credentials"))
        .unwrap()
        .1;
    assert!(creds.starts_with("[default]\naws_access_key_id = AKIA"));
    let manage = &files
        .iter()
        .find(|(n, _)| n.ends_with("/manage.txt"))
        .unwrap()
        .1;
    assert!(manage.contains(&format!("{}/manage/", app.address)));

    // The list shows them, escaped, and filters by memo.
    let html = op.page("/console/tokens").await;
    assert!(html.contains("db, &lt;b&gt;prod&lt;&#x2f;b&gt;") && !html.contains("<b>prod"));
    let html = op.page("/console/tokens?q=CI+RUN").await;
    assert!(html.contains("ci runner") && !html.contains("web01"));
    let html = op.page("/console/tokens?status=hits").await;
    assert!(!html.contains("ci runner"));

    // Bulk delete: CSRF checked, then every checked token goes.
    let ids: Vec<&str> = dirs.iter().take(2).copied().collect();
    let resp = op
        .post(
            "/console/tokens/bulk-delete",
            &[("csrf", "nope"), ("id", ids[0])],
        )
        .await;
    assert_eq!(resp.status(), 403);
    let resp = op
        .post(
            "/console/tokens/bulk-delete",
            &[("csrf", &csrf), ("id", ids[0]), ("id", ids[1])],
        )
        .await;
    assert!(resp.status().is_redirection());
    let html = op.page("/console/tokens").await;
    assert!(html.contains("1 of 1 tokens"), "{html}");

    let html = op.page("/console/audit").await;
    assert!(html.contains("tokens.bulk_create") && html.contains("tokens.bulk_delete"));
    let csv = op.page("/console/audit/export?format=csv").await;
    assert!(
        csv.starts_with("time,actor,action,target,details\n")
            && csv.contains(",alice,tokens.bulk_delete,")
    );
    let json: Value =
        serde_json::from_str(&op.page("/console/audit/export?format=json").await).unwrap();
    assert!(json["entries"].as_array().unwrap().len() >= 2);
    app.stop().await;
}

#[tokio::test]
async fn alert_feed_overview_and_live_stream() {
    let app = app().await;
    let op = Operator::sign_in(&app).await;
    let a = app.create_token().await;
    let b = app.create_token().await;
    let key_a = a["aws"]["access_key_id"].as_str().unwrap();
    let key_b = b["aws"]["access_key_id"].as_str().unwrap();
    ingest(&app, key_a, "ev-1", "aws-cli/2 <script>alert(1)</script>").await;

    let resp = op.get("/console/alerts").await;
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("connect-src 'self'") && csp.contains("default-src 'none'"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("GetCallerIdentity") && html.contains("&lt;script&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(html.contains(&format!(
        "/console/tokens?token={}",
        a["id"].as_str().unwrap()
    )));
    let html = op
        .page(&format!(
            "/console/alerts?token={}",
            b["id"].as_str().unwrap()
        ))
        .await;
    assert!(html.contains("No alerts match"));
    let html = op.page("/console/alerts?ip=198.51.100.1").await;
    assert!(html.contains("No alerts match"));
    let html = op
        .page("/console/alerts?ip=203.0.113.7&event=GetCallerIdentity&range=30d")
        .await;
    assert!(!html.contains("No alerts match"));

    let html = op.page("/console").await;
    assert!(html.contains(r#"id="path-api""#) || html.contains(r#"id="path-eventbridge""#));
    assert!(html.contains("203.0.113.7"));

    // The stream sends a hit that arrives after it opened, and only that one.
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut stream = op
        .get(&format!("/console/alerts/stream?after={after}"))
        .await;
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    ingest(&app, key_b, "ev-2", "boto3").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    while !got.contains("boto3") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .expect("the stream sends the new hit in time");
        got.push_str(&String::from_utf8_lossy(
            &chunk.unwrap().expect("stream open"),
        ));
    }
    assert!(
        got.contains("event: hits")
            && !got.contains("ev-1")
            && !got.contains("<script>alert(1)</script>\",\"user"),
        "{got}"
    );
    // An open stream would hold the graceful shutdown until it ends.
    drop(stream);
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revocable() {
    let app = app().await;
    let op = Operator::sign_in(&app).await;
    let resp = op
        .post(
            "/console/api-keys",
            &[("csrf", "x"), ("name", "ci"), ("scope", "tokens:read")],
        )
        .await;
    assert_eq!(resp.status(), 403);
    let resp = op
        .post(
            "/console/api-keys",
            &[
                ("csrf", &op.csrf),
                ("name", "ci"),
                ("scope", "tokens:read"),
                ("scope", "alerts:read"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 201);
    let html = resp.text().await.unwrap();
    let start = html.find(r#"<code id="api-key">"#).unwrap() + 19;
    let key = &html[start..start + html[start..].find('<').unwrap()];
    assert!(key.starts_with("ck_"));
    let list = op.page("/console/api-keys").await;
    assert!(!list.contains(key) && list.contains("tokens:read alerts:read"));
    let id_start = list.find("/console/api-keys/").unwrap() + 18;
    let id = &list[id_start..id_start + list[id_start..].find('/').unwrap()];
    let resp = op
        .post(
            &format!("/console/api-keys/{id}/revoke"),
            &[("csrf", &op.csrf)],
        )
        .await;
    assert!(resp.status().is_redirection());
    assert!(op.page("/console/api-keys").await.contains("revoked"));
    let resp = op
        .post("/console/api-keys", &[("csrf", &op.csrf), ("name", "none")])
        .await;
    assert_eq!(resp.status(), 422);
    app.stop().await;
}
