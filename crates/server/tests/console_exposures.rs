//! Exposures in the operator console, black-box over HTTP: the banner on the overview and the
//! token list (and one token's view), and the alert feed's `kind` filter. AWS's text quotes
//! whoever published the key, so hostile descriptions and locations must stay escaped text, and
//! only an http(s) location may become a link.

use canarykeys_testkit::console::{create_operator, ingest, INGEST_SECRET};
use canarykeys_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};

const NAME: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
/// Its first address-like word, the location, is a `javascript:` URL carrying markup.
const HOSTILE: &str =
    "Key found at javascript://%0Aalert(document.cookie)<img/src=x/onerror=alert(1)> \
    <script>alert(2)</script> *bold* <!channel>";
const SAFE: &str = "Your key was found publicly available on GitHub at \
    https://github.com/example-org/notes/blob/main/.env . Please review.";
/// `https://github.com/example-org/notes/blob/main/.env` as minijinja writes it in an
/// attribute (`/` as `&#x2f;`, which browsers read back).
const SAFE_HREF: &str =
    "href=\"https:&#x2f;&#x2f;github.com&#x2f;example-org&#x2f;notes&#x2f;blob&#x2f;main&#x2f;.env\"";

fn cookie_from(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// Signs in through the login form; returns the cookies of the session.
async fn sign_in(app: &TestApp) -> String {
    let resp = app.http.get(app.url("/login")).send().await.unwrap();
    let csrf_cookie = cookie_from(&resp, "ck_csrf");
    let html = resp.text().await.unwrap();
    let start = html.find(r#"name="csrf" value=""#).unwrap() + 19;
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let resp = app
        .http
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("name", NAME), ("password", PASSWORD), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "sign-in: {}", resp.status());
    format!("{csrf_cookie}; {}", cookie_from(&resp, "ck_session"))
}

async fn get(app: &TestApp, cookies: &str, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(app.url(path))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn page(app: &TestApp, cookies: &str, path: &str) -> String {
    let (status, html) = get(app, cookies, path).await;
    assert_eq!(status, 200, "GET {path}: {html}");
    html
}

async fn token(app: &TestApp, memo: &str) -> (String, String) {
    let resp = app
        .post_token(&json!({"memo": memo, "email": "soc@example.com"}))
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    let key = v["aws"]["access_key_id"].as_str().unwrap().to_owned();
    (v["id"].as_str().unwrap().to_owned(), key)
}

async fn health(app: &TestApp, key: &str, arn: &str, description: &str) {
    let event = json!({
        "version": "0", "id": format!("eb-{arn}"), "detail-type": "AWS Health Event",
        "source": "aws.health", "account": "123456789012", "time": "2026-11-28T09:12:44Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "eventArn": arn, "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
            "eventTypeCategory": "issue", "startTime": "Sat, 28 Nov 2026 09:05:00 GMT",
            "eventDescription": [{"language": "en_US", "latestDescription": description}],
            "affectedEntities": [{"entityValue": key}],
        }
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/events"))
        .bearer_auth(INGEST_SECRET)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["health"]["new_exposures"], 1, "{report}");
}

/// Whatever the page holds of the hostile text, it is escaped and never a live link.
fn inert(html: &str) {
    for raw in [
        "<img",
        "<script>alert(2)",
        "<!channel>",
        "href=\"javascript",
    ] {
        assert!(!html.contains(raw), "{raw} reached the page raw");
    }
    assert!(html.contains("&lt;script&gt;alert(2)&lt;&#x2f;script&gt;"));
}

/// Three tokens: one exposed with hostile text, one exposed at a GitHub URL, one only used.
async fn setup() -> (TestApp, String, [(String, String); 3]) {
    let app = spawn_app_with(|c| {
        c.ingest.secret = Some(canarykeys_server::config::Secret::new(INGEST_SECRET))
    })
    .await;
    create_operator(&app, NAME, PASSWORD);
    let hostile = token(&app, "hostile <b>memo</b>").await;
    let safe = token(&app, "notes repo").await;
    let used = token(&app, "build box").await;
    health(
        &app,
        &hostile.1,
        "arn:aws:health:global::event/RISK/A/1",
        HOSTILE,
    )
    .await;
    health(&app, &safe.1, "arn:aws:health:global::event/RISK/A/2", SAFE).await;
    ingest(&app, &used.1, "evt-used-1", "aws-cli/2.15").await;
    let cookies = sign_in(&app).await;
    (app, cookies, [hostile, safe, used])
}

#[tokio::test]
async fn overview_and_token_list_show_exposure_banners() {
    let (app, cookies, [hostile, safe, used]) = setup().await;

    let overview = page(&app, &cookies, "/console").await;
    assert!(overview.contains(r#"id="exposures""#), "{overview}");
    assert!(overview.contains("Keys found in public (2)"));
    assert_eq!(overview.matches("banner exposure").count(), 2);
    assert!(overview.contains(SAFE_HREF), "{overview}");
    assert!(overview.contains("hostile &lt;b&gt;memo&lt;&#x2f;b&gt;"));
    inert(&overview);

    let list = page(&app, &cookies, "/console/tokens").await;
    assert!(list.contains(r#"id="exposed-tokens""#), "{list}");
    assert!(list.contains(&format!(r#"id="exposed-{}""#, hostile.0)));
    assert!(list.contains(&format!(r#"id="exposed-{}""#, safe.0)));
    assert!(!list.contains(&format!(r#"id="exposed-{}""#, used.0)));
    assert!(list.contains(SAFE_HREF));
    inert(&list);

    // One token's view (the feed links here) shows only its own banner.
    let one = page(&app, &cookies, &format!("/console/tokens?token={}", safe.0)).await;
    assert_eq!(one.matches("banner exposure").count(), 1);
    assert!(one.contains(SAFE_HREF));
    let one = page(
        &app,
        &cookies,
        &format!("/console/tokens?token={}", hostile.0),
    )
    .await;
    assert_eq!(one.matches("banner exposure").count(), 1);
    assert!(!one.contains(SAFE_HREF));
    assert!(one.contains("<code>javascript:&#x2f;&#x2f;%0Aalert(document.cookie)&lt;img"));
    inert(&one);
    let quiet = page(&app, &cookies, &format!("/console/tokens?token={}", used.0)).await;
    assert!(!quiet.contains("banner exposure") && !quiet.contains("exposed-tokens"));
    app.stop().await;
}

#[tokio::test]
async fn alert_feed_filters_by_kind() {
    let (app, cookies, [hostile, safe, used]) = setup().await;

    // The default, and kind=hit: hits only, with the live stream.
    for path in ["/console/alerts", "/console/alerts?kind=hit"] {
        let hits = page(&app, &cookies, path).await;
        assert_eq!(hits.matches(r#"class="hit""#).count(), 1, "{hits}");
        assert!(hits.contains(r#"id="live-status""#));
        assert!(!hits.contains(r#"id="exposure-feed""#));
    }

    let feed = page(&app, &cookies, "/console/alerts?kind=exposure").await;
    assert!(feed.contains(r#"id="exposure-feed""#), "{feed}");
    assert_eq!(feed.matches(r#"class="exposure""#).count(), 2);
    assert!(!feed.contains(r#"class="hit""#) && !feed.contains(r#"id="live-status""#));
    for column in [
        "health",
        "AWS_RISK_CREDENTIALS_EXPOSED",
        "2026-",
        "first seen",
    ] {
        assert!(
            feed.to_lowercase().contains(&column.to_lowercase()),
            "{column}"
        );
    }
    assert!(feed.contains(SAFE_HREF));
    assert!(feed.contains("<code>javascript:&#x2f;&#x2f;%0Aalert(document.cookie)&lt;img"));
    inert(&feed);

    // The token filter applies to exposures too.
    let one = page(
        &app,
        &cookies,
        &format!("/console/alerts?kind=exposure&token={}", safe.0),
    )
    .await;
    assert_eq!(one.matches(r#"class="exposure""#).count(), 1);
    assert!(one.contains(SAFE_HREF) && !one.contains(&hostile.0));
    let none = page(
        &app,
        &cookies,
        &format!("/console/alerts?kind=exposure&token={}", used.0),
    )
    .await;
    assert!(none.contains("No exposures match."));

    // An unknown kind is a clear 400, not an empty page.
    let (status, body) = get(&app, &cookies, "/console/alerts?kind=bogus").await;
    assert_eq!(status, 400);
    assert!(body.contains("kind must be hit or exposure"), "{body}");
    app.stop().await;
}
