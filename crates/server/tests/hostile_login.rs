//! Strangers at `/login`. Every attempt at a real operator costs an argon2id hash (19 MiB), so a
//! flood from many addresses must not hold more hashes than the server's bound: memory stays
//! flat and ingest keeps answering. A lockout after failed guesses stops the strangers, not the
//! operator: a right password from an address the operator has signed in from still works.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canarykeys_server::config::Secret;
use canarykeys_testkit::access::{csrf, services, session_from, PASSWORD};
use canarykeys_testkit::{spawn_app_with, TestApp};

const INGEST: &str = "hostile-login-ingest-secret-0123";
/// The whole test process (server and 300 clients) stays under this during the flood.
const RSS_BOUND_MIB: u64 = 256;
/// A deadline for an ingest under the flood, not a timing claim.
const ANSWERED: Duration = Duration::from_secs(10);

async fn app() -> TestApp {
    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
        c.ingest.secret = Some(Secret::new(INGEST));
    })
    .await;
    services(&app)
        .await
        .access
        .create_operator("carol", PASSWORD)
        .await
        .unwrap();
    app
}

/// A browser at `source` (a loopback address of its own).
fn client_from(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn try_login(
    http: &reqwest::Client,
    app: &TestApp,
    password: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(app.url("/login"))
        .header("cookie", format!("ck_csrf={}", csrf()))
        .form(&[
            ("name", "carol"),
            ("password", password),
            ("csrf", &csrf()),
            ("next", "/console"),
        ])
        .send()
        .await
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test]
async fn a_login_flood_from_300_addresses_holds_memory_and_ingest_answers() {
    let app = Arc::new(app().await);
    let busy = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(8);
    let flooders: Vec<_> = (0..300u32)
        .map(|i| {
            let (app, busy) = (app.clone(), busy.clone());
            let source = IpAddr::from([127, 0, 10 + (i / 200) as u8, (i % 200 + 1) as u8]);
            tokio::spawn(async move {
                let http = client_from(source);
                while Instant::now() < until {
                    if let Ok(resp) = try_login(&http, &app, "not the password").await {
                        if resp.status() == 429 && resp.headers().contains_key("retry-after") {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    let mut peak = 0;
    let mut ingests = 0;
    while Instant::now() < until {
        peak = peak.max(rss_mib());
        let resp = app
            .http
            .post(app.url("/ingest/v1/cloudtrail"))
            .bearer_auth(INGEST)
            .timeout(ANSWERED)
            .body(r#"{"Records":[]}"#)
            .send()
            .await
            .expect("ingest answered during the login flood");
        assert_eq!(resp.status(), 200);
        ingests += 1;
    }
    for f in flooders {
        f.await.unwrap();
    }
    peak = peak.max(rss_mib());
    assert!(ingests > 0);
    assert!(
        peak < RSS_BOUND_MIB,
        "resident memory peaked at {peak} MiB during the flood (bound {RSS_BOUND_MIB} MiB)"
    );
    assert!(
        busy.load(Ordering::Relaxed) > 0,
        "some sign-ins found every hash slot busy and were told to retry"
    );
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_operator_out_of_an_address_it_knows() {
    let app = app().await;
    let home = client_from(IpAddr::from([127, 0, 20, 1]));
    let stranger = client_from(IpAddr::from([127, 0, 20, 2]));
    // The operator signs in once from home: that address is now known.
    let first = try_login(&home, &app, PASSWORD).await.unwrap();
    assert_eq!(first.status(), 303);
    // A stranger guesses five times: the operator is locked...
    for _ in 0..4 {
        let r = try_login(&stranger, &app, "guess guess guess")
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let fifth = try_login(&stranger, &app, "guess guess guess")
        .await
        .unwrap();
    assert_eq!(fifth.status(), 429);
    // ...for strangers, even with the right password...
    let r = try_login(&stranger, &app, PASSWORD).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(session_from(&r).is_none());
    // ...but not from home.
    let again = try_login(&home, &app, PASSWORD).await.unwrap();
    assert_eq!(again.status(), 303);
    assert!(session_from(&again).is_some());
    // A wrong password from home is still wrong.
    let wrong = try_login(&home, &app, "not it at all").await.unwrap();
    assert_eq!(wrong.status(), 401);
}
