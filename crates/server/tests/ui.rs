//! Black-box tests of the web UI: forms with CSRF, the result and manage pages, downloads, and
//! escaping of attacker-controlled text in the alert history.

use canarykeys_core::TokenId;
use canarykeys_store::{HitRecord, HitStore, SqlStore};
use canarykeys_testkit::{spawn_app, TestApp};

/// A browser-like session: keeps the CSRF cookie and reads the form's hidden token.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

/// The text between `before` and the next `after`, with the template's HTML escaping undone.
fn extract(html: &str, before: &str, after: &str) -> String {
    let start = html
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} not in page"))
        + before.len();
    let len = html[start..].find(after).unwrap();
    html[start..start + len]
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl<'a> Browser<'a> {
    async fn open(app: &'a TestApp) -> Browser<'a> {
        let resp = app.http.get(app.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let html = resp.text().await.unwrap();
        let csrf = extract(&html, r#"name="csrf" value=""#, "\"");
        Browser { app, cookie, csrf }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.app
            .http
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.app
            .http
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn create(&self, memo: &str) -> String {
        let resp = self
            .post(
                "/tokens",
                &[
                    ("csrf", &self.csrf),
                    ("kind", "aws_keys"),
                    ("memo", memo),
                    ("email", "soc@example.com"),
                    ("webhook_url", ""),
                ],
            )
            .await;
        assert_eq!(resp.status(), 201);
        resp.text().await.unwrap()
    }
}

fn manage_path(result_html: &str) -> String {
    let url = extract(result_html, r#"<a id="manage-url" href=""#, "\"");
    url[url.find("/manage/").unwrap()..].to_owned()
}

#[tokio::test]
async fn home_page_has_the_create_form() {
    let app = spawn_app().await;
    let html = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"id="create-form""#,
        r#"<option value="aws_keys""#,
        "AWS API keys",
        r#"name="email""#,
        r#"name="webhook_url""#,
        r#"name="memo""#,
        r#"id="create""#,
        "where will you plant this?",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
}

#[tokio::test]
async fn create_shows_keys_like_the_console_and_the_manage_link() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let html = b.create("build server ci-07").await;
    let key = extract(&html, r#"<code id="access-key-id">"#, "<");
    let secret = extract(&html, r#"<code id="secret-access-key">"#, "<");
    assert!(key.starts_with("AKIA") && key.len() == 20);
    assert_eq!(secret.len(), 40);
    for needle in [
        "Access key ID",
        "Secret access key",
        "Keep this link",
        "us-east-1",
        "build server ci-07",
        "AWS does not know them",
        r#"data-copy="secret-access-key""#,
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    // The download links and the manage page give the same keys.
    let manage = manage_path(&html);
    let page = b.get(&manage).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(&key) && page.contains(&secret.replace('/', "&#x2f;")));
    assert!(page.contains(r#"id="no-history""#));
    let download = extract(&html, r#"<a id="download-credentials" href=""#, "\"");
    let resp = b.get(&download).await;
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"credentials\""
    );
    assert_eq!(
        resp.text().await.unwrap(),
        format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    );
    let csv = extract(&html, r#"<a id="download-csv" href=""#, "\"");
    assert!(b
        .get(&csv)
        .await
        .text()
        .await
        .unwrap()
        .starts_with("Access key ID,Secret access key\n"));
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let fields = [
        ("kind", "aws_keys"),
        ("memo", "m"),
        ("email", "soc@example.com"),
    ];
    // No cookie at all (a cross-site post under SameSite=Strict), and a wrong token.
    let resp = app
        .http
        .post(app.url("/tokens"))
        .form(&[("csrf", b.csrf.as_str()), fields[0], fields[1], fields[2]])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = b
        .post(
            "/tokens",
            &[
                ("csrf", "x".repeat(43).as_str()),
                fields[0],
                fields[1],
                fields[2],
            ],
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("reload the page"));
    let resp = b.post("/tokens", &fields).await;
    assert_eq!(resp.status(), 403);

    // The manage forms too.
    let manage = manage_path(&b.create("m").await);
    let (id, secret) = manage
        .trim_start_matches("/manage/")
        .split_once("?s=")
        .unwrap();
    let resp = b
        .post(
            &format!("/manage/{id}/delete"),
            &[("s", secret), ("csrf", "nope")],
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(b.get(&manage).await.status(), 200, "not deleted");
}

#[tokio::test]
async fn invalid_form_rerenders_with_messages_and_escaped_values() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let resp = b
        .post(
            "/tokens",
            &[
                ("csrf", &b.csrf),
                ("kind", "aws_keys"),
                ("memo", ""),
                ("email", "\"><script>alert(1)</script>"),
                ("webhook_url", "ftp://x"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"id="errors""#));
    for field in ["memo", "email", "webhook_url"] {
        assert!(
            html.contains(&format!(r#"data-field="{field}""#)),
            "{field}"
        );
    }
    assert!(!html.contains("<script>alert(1)"), "input is escaped");
    assert!(
        html.contains("&lt;script&gt;alert(1)"),
        "and kept for correction"
    );
    assert_eq!(
        extract(
            &html,
            r#"name="webhook_url" type="url" maxlength="1024" value=""#,
            "\""
        ),
        "ftp://x"
    );
}

#[tokio::test]
async fn manage_page_needs_the_secret() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let manage = manage_path(&b.create("m").await);
    let (id, _) = manage
        .trim_start_matches("/manage/")
        .split_once("?s=")
        .unwrap();
    // Without a secret (as alerts link to it) the page asks for one and shows nothing else.
    let unlock = b.get(&format!("/manage/{id}")).await;
    assert_eq!(unlock.status(), 200);
    let html = unlock.text().await.unwrap();
    assert!(html.contains(r#"id="unlock-form""#) && !html.contains("AKIA"));
    for path in [
        format!("/manage/{id}?s=wrong"),
        format!("/manage/{id}?s={}", "A".repeat(43)),
        format!("/manage/{id}/download?format=credentials&s=x"),
    ] {
        let resp = b.get(&path).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn switches_and_delete_work_from_the_manage_page() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let manage = manage_path(&b.create("m").await);
    let (id, secret) = manage
        .trim_start_matches("/manage/")
        .split_once("?s=")
        .unwrap();

    // Unticked box = off.
    let resp = b
        .post(
            &format!("/manage/{id}/channels"),
            &[("s", secret), ("csrf", &b.csrf)],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let page = b.get(&manage).await.text().await.unwrap();
    assert!(
        page.contains(r#"id="email-enabled" name="email_enabled" value="on">"#),
        "unchecked"
    );
    let resp = b
        .post(
            &format!("/manage/{id}/channels"),
            &[("s", secret), ("csrf", &b.csrf), ("email_enabled", "on")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let page = b.get(&manage).await.text().await.unwrap();
    assert!(page.contains(r#"value="on" checked>"#), "checked again");

    let resp = b
        .post(
            &format!("/manage/{id}/delete"),
            &[("s", secret), ("csrf", &b.csrf)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Token deleted"));
    assert_eq!(b.get(&manage).await.status(), 404);
}

#[tokio::test]
async fn alert_history_escapes_attacker_controlled_text() {
    let app = spawn_app().await;
    let b = Browser::open(&app).await;
    let manage = manage_path(&b.create("m").await);
    let (id, _) = manage
        .trim_start_matches("/manage/")
        .split_once("?s=")
        .unwrap();

    // Write a hit straight into the app's database, as the detection pipeline will.
    let store = SqlStore::connect(&format!(
        "sqlite:{}",
        app.data_dir.join("canarykeys.db").display()
    ))
    .await
    .unwrap();
    let hit = HitRecord {
        id: "h1".into(),
        token_id: TokenId::parse(id).unwrap(),
        event_id: "evt-1".into(),
        event_time: 1_764_000_000_000,
        received_at: 1_764_000_060_000,
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "<img src=x onerror=alert(1)>\"'&".into(),
        error_code: None,
        error_message: None,
        account_id: None,
        access_key_id: None,
        tls_host: None,
        vpc_endpoint_id: None,
        request_id: None,
        path: "cloudwatch-logs".into(),
        note: None,
        suppressed: None,
        raw: "{}".into(),
    };
    assert_eq!(store.record_hits(&[hit]).await.unwrap(), [true]);

    let page = b.get(&manage).await.text().await.unwrap();
    assert!(page.contains(r#"id="history""#));
    assert!(page.contains("GetCallerIdentity") && page.contains("203.0.113.7"));
    assert!(!page.contains("<img src=x"), "user agent must be escaped");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[tokio::test]
async fn errors_are_pages_and_the_server_stays_up() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/manage/zzz?s=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .http
        .post(app.url("/tokens"))
        .body("%%%")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    let huge = "a".repeat(200_000);
    let resp = app
        .http
        .post(app.url("/tokens"))
        .form(&[("memo", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let js = app
        .http
        .get(app.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}
