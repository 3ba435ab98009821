//! Access control, black-box: who may create tokens in `operators` and `open` mode, and
//! sign-in with its lockout, rate limit, CSRF and session rotation.

use canarykeys_testkit::access::*;
use canarykeys_testkit::{spawn_app, spawn_app_with};
use serde_json::Value;

#[tokio::test]
async fn without_a_session_or_key_the_api_says_401_and_pages_redirect_to_sign_in() {
    let app = operators_app().await;
    let resp = app.post_token(&memo()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "unauthenticated"
    );
    for path in ["/api/v1/tokens", "/api/v1/alerts"] {
        assert_eq!(get(&app, path, None, None).await.status(), 401, "{path}");
        // A made-up key and a made-up session are no better.
        let fake = format!("ck_{}", "x".repeat(43));
        assert_eq!(
            get(&app, path, Some(&fake), None).await.status(),
            401,
            "{path}"
        );
        assert_eq!(
            get(&app, path, None, Some(&"y".repeat(43))).await.status(),
            401
        );
    }
    let home = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 303);
    assert!(home.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?next="));
    let form = app
        .http
        .post(app.url("/tokens"))
        .header("cookie", format!("ck_csrf={}", csrf()))
        .form(&[
            ("csrf", csrf().as_str()),
            ("kind", "aws_keys"),
            ("memo", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 303);
    assert!(form.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
}

#[tokio::test]
async fn open_mode_allows_anonymous_creation() {
    let app = spawn_app().await;
    assert_eq!(app.post_token(&memo()).await.status(), 201);
    assert_eq!(
        app.http.get(app.url("/")).send().await.unwrap().status(),
        200
    );
    // Listing everything still needs an operator.
    assert_eq!(get(&app, "/api/v1/tokens", None, None).await.status(), 401);
}

#[tokio::test]
async fn a_signed_in_operator_creates_from_the_form_and_lists_via_the_session() {
    let app = operators_app().await;
    services(&app)
        .await
        .access
        .create_operator("alice", PASSWORD)
        .await
        .unwrap();
    let session = login(&app, "alice").await;
    assert_eq!(get(&app, "/", None, Some(&session)).await.status(), 200);
    let resp = app
        .http
        .post(app.url("/api/v1/tokens"))
        .header("cookie", format!("ck_session={session}"))
        .json(&memo())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let list: Value = get(&app, "/api/v1/tokens", None, Some(&session))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn wrong_passwords_lock_the_operator_and_logins_are_rate_limited() {
    let app = operators_app().await;
    let svc = services(&app).await;
    svc.access.create_operator("bob", PASSWORD).await.unwrap();
    let cookies = format!("ck_csrf={}", csrf());
    for _ in 0..4 {
        assert_eq!(
            post_login(&app, "bob", "wrong password!", &cookies)
                .await
                .status(),
            401
        );
    }
    // The fifth failure locks; then even the right password is refused.
    let fifth = post_login(&app, "bob", "wrong password!", &cookies).await;
    assert_eq!(fifth.status(), 429);
    let right = post_login(&app, "bob", PASSWORD, &cookies).await;
    assert_eq!(right.status(), 429);
    assert!(session_from(&right).is_none());
    let audit = svc.access.list_audit(50, 0).await;
    assert!(audit
        .iter()
        .any(|e| e.action == "operator.lockout" && e.target == "bob"));

    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
        c.access.login_per_minute = 3;
    })
    .await;
    services(&app)
        .await
        .access
        .create_operator("carol", PASSWORD)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            post_login(&app, "nobody", "whatever", &cookies)
                .await
                .status(),
            401
        );
    }
    // The address is out of attempts: a right password does not get through either.
    assert_eq!(
        post_login(&app, "carol", PASSWORD, &cookies).await.status(),
        429
    );
}

#[tokio::test]
async fn the_session_id_is_new_at_every_sign_in_and_ends_at_sign_out() {
    let app = operators_app().await;
    services(&app)
        .await
        .access
        .create_operator("dora", PASSWORD)
        .await
        .unwrap();
    let planted = "p".repeat(43);
    let resp = post_login(
        &app,
        "dora",
        PASSWORD,
        &format!("ck_csrf={}; ck_session={planted}", csrf()),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let session = session_from(&resp).unwrap();
    assert_ne!(session, planted);
    assert_eq!(session.len(), 43);
    assert_eq!(
        get(&app, "/api/v1/tokens", None, Some(&planted))
            .await
            .status(),
        401
    );
    assert_eq!(
        get(&app, "/api/v1/tokens", None, Some(&session))
            .await
            .status(),
        200
    );
    // A second sign-in gets another id again.
    let again = login(&app, "dora").await;
    assert_ne!(again, session);

    // Sign-out needs the CSRF token…
    let no_csrf = app
        .http
        .post(app.url("/logout"))
        .header("cookie", format!("ck_session={session}"))
        .form(&[("csrf", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(
        get(&app, "/api/v1/tokens", None, Some(&session))
            .await
            .status(),
        200
    );
    // …and with it ends the session at once.
    let out = app
        .http
        .post(app.url("/logout"))
        .header(
            "cookie",
            format!("ck_csrf={}; ck_session={session}", csrf()),
        )
        .form(&[("csrf", csrf().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        get(&app, "/api/v1/tokens", None, Some(&session))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn sign_in_needs_the_csrf_token_and_next_stays_on_this_server() {
    let app = operators_app().await;
    services(&app)
        .await
        .access
        .create_operator("erin", PASSWORD)
        .await
        .unwrap();
    // No cookie, and a cookie that does not match the field: both refused, no session.
    for cookies in ["", "ck_csrf=dddddddddddddddddddddddddddddddddddddddddd0"] {
        let resp = post_login(&app, "erin", PASSWORD, cookies).await;
        assert_eq!(resp.status(), 403);
        assert!(session_from(&resp).is_none());
    }
    let resp = app
        .http
        .post(app.url("/login"))
        .header("cookie", format!("ck_csrf={}", csrf()))
        .form(&[
            ("name", "erin"),
            ("password", PASSWORD),
            ("csrf", &csrf()),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console");
}
