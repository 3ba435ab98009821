//! `GatewayMinter` end to end: the mint Lambda's real handler, served on loopback behind a small
//! adapter that turns each HTTP request into an API Gateway HTTP API (payload 2.0) event on a
//! named stage, exactly as API Gateway would, against moto's IAM. Minted keys exist in IAM,
//! revoked ones are gone, taken names conflict, and an unreachable or failing service is
//! `Unavailable` within the retry bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_iam::error::ProvideErrorMetadata;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use canarykeys_aws::testing::Moto;
use canarykeys_aws::{
    sdk_config, GatewayMinter, GatewayRetry, KeyRef, MintError, MintRequest, Minter,
};
use canarykeys_core::{AccountId, IamUserName};
use canarykeys_mint::{apigw, Config, Mint, MintSecret};
use serde_json::json;
use url::Url;

const SECRET: &str = "gateway-test-secret-0123456789";
const STAGE: &str = "live";

fn account() -> AccountId {
    AccountId::parse("123456789012").unwrap()
}

/// What the adapter does to the first `n` requests.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// Answer 503 without reaching the function, as a throttled or failing gateway does.
    Unavailable(usize),
    /// Run the function, then answer 502: its answer is lost on the way back.
    LoseAnswer(usize),
    /// Run the function, then wait this long before answering.
    SlowAnswer(Duration),
}

struct Adapter {
    mint: Mint,
    fault: Fault,
    requests: AtomicUsize,
}

async fn serve_as_api_gateway(
    State(adapter): State<Arc<Adapter>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = adapter.requests.fetch_add(1, Ordering::SeqCst);
    if matches!(adapter.fault, Fault::Unavailable(k) if n < k) {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")]).into_response();
    }
    let headers: serde_json::Map<_, _> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
        .collect();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1",
            "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": n.to_string(), "routeKey": "$default", "stage": STAGE,
            "time": "28/Nov/2026:09:27:19 +0000", "timeEpoch": 1795857839000u64
        },
        "body": String::from_utf8(body.to_vec()).expect("the client sends JSON"),
        "isBase64Encoded": false
    });
    let out = apigw::respond(&adapter.mint, event).await;
    match adapter.fault {
        Fault::LoseAnswer(k) if n < k => return StatusCode::BAD_GATEWAY.into_response(),
        Fault::SlowAnswer(pause) => tokio::time::sleep(pause).await,
        _ => {}
    }
    let mut response = (StatusCode::from_u16(out.status_code).unwrap(), out.body).into_response();
    for (k, v) in out.headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        response.headers_mut().insert(name, v.parse().unwrap());
    }
    response
}

struct Rig {
    _moto: Moto,
    iam: aws_sdk_iam::Client,
    adapter: Arc<Adapter>,
    url: Url,
}

async fn rig(fault: Fault) -> Rig {
    let moto = Moto::start();
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    let mint = Mint::new(iam.clone(), Config::new(MintSecret::new(SECRET).unwrap()));
    let adapter = Arc::new(Adapter {
        mint,
        fault,
        requests: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .fallback(serve_as_api_gateway)
        .with_state(adapter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The invoke URL of a named stage, as the CloudFormation output gives it.
    let url = Url::parse(&format!("http://{addr}/{STAGE}/")).unwrap();
    Rig {
        _moto: moto,
        iam,
        adapter,
        url,
    }
}

fn fast() -> GatewayRetry {
    GatewayRetry {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn minter(url: &Url, secret: &str) -> GatewayMinter {
    GatewayMinter::new(
        url.clone(),
        secret.into(),
        account(),
        Duration::from_secs(10),
    )
    .unwrap()
    .with_retry(fast())
}

fn named(name: &str) -> MintRequest {
    MintRequest {
        username: Some(IamUserName::parse(name).unwrap()),
        ..MintRequest::default()
    }
}

#[tokio::test]
async fn mints_real_users_and_revokes_them() {
    let rig = rig(Fault::None).await;
    let m = minter(&rig.url, SECRET);
    assert_eq!((m.name(), m.keys_valid_at_aws()), ("gateway", true));
    let key = m.mint(&MintRequest::default()).await.unwrap();
    assert_eq!(key.account_id, account());
    // moto, like AWS, encodes the account in the key id.
    assert_eq!(key.access_key_id.account_id(), account());
    canarykeys_core::names::check_no_tells(key.username.as_str()).unwrap();
    let user = key.username.as_str();
    rig.iam.get_user().user_name(user).send().await.unwrap();
    let keys = rig
        .iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = keys
        .access_key_metadata()
        .iter()
        .map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids, [Some(key.access_key_id.as_str())]);

    let key_ref = KeyRef {
        access_key_id: &key.access_key_id,
        username: &key.username,
        account_id: key.account_id,
    };
    m.revoke(&key_ref).await.unwrap();
    let err = rig.iam.get_user().user_name(user).send().await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchEntity"));
    // Revoking what is gone is no error.
    m.revoke(&key_ref).await.unwrap();
}

#[tokio::test]
async fn a_taken_caller_name_is_a_conflict() {
    let rig = rig(Fault::None).await;
    let m = minter(&rig.url, SECRET);
    // Every character IAM allows in a name, none escaped in the path that is sent and signed.
    let name = "ci+deploy=prod,eu@ops_1.x-y";
    let key = m.mint(&named(name)).await.unwrap();
    assert_eq!(key.username.as_str(), name);
    let err = m.mint(&named(name)).await.unwrap_err();
    assert!(
        matches!(&err, MintError::Conflict(n) if n == name),
        "{err:?}"
    );
    let key_ref = KeyRef {
        access_key_id: &key.access_key_id,
        username: &key.username,
        account_id: key.account_id,
    };
    m.revoke(&key_ref).await.unwrap();
    assert!(rig
        .iam
        .list_users()
        .send()
        .await
        .unwrap()
        .users()
        .is_empty());
}

#[test]
fn urls_must_be_https_except_to_loopback_and_secrets_long() {
    let new = |url: &str, secret: &str| {
        let url = Url::parse(url).unwrap();
        GatewayMinter::new(url, secret.into(), account(), Duration::from_secs(1))
    };
    assert!(new(
        "https://abc.execute-api.us-east-1.amazonaws.com/live/",
        SECRET
    )
    .is_ok());
    assert!(new("http://127.0.0.1:9000", SECRET).is_ok());
    for bad in [
        "http://mint.example.com",
        "https://u:p@h",
        "https://h/?a=1",
        "https://h/#f",
    ] {
        assert!(new(bad, SECRET).is_err(), "{bad}");
    }
    assert!(new("https://h", "short").is_err());
    let shown = format!("{:?}", new("https://h", SECRET).unwrap());
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test]
async fn other_accounts_and_wrong_secrets_are_refused() {
    let rig = rig(Fault::None).await;
    let m = minter(&rig.url, SECRET);
    let elsewhere = MintRequest {
        account: Some(AccountId::parse("210987654321").unwrap()),
        ..MintRequest::default()
    };
    let err = m.mint(&elsewhere).await.unwrap_err();
    assert!(matches!(err, MintError::UnknownAccount(_)), "{err:?}");
    assert_eq!(rig.adapter.requests.load(Ordering::SeqCst), 0);

    let wrong = minter(&rig.url, "not-the-secret-0123456789");
    let err = wrong.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&err, MintError::Refused(m) if m.contains("401")),
        "{err:?}"
    );
    // A 401 is final: one request, no retries.
    assert_eq!(rig.adapter.requests.load(Ordering::SeqCst), 1);
    let users = rig.iam.list_users().send().await.unwrap();
    assert!(users.users().is_empty());
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let rig = rig(Fault::Unavailable(2)).await;
    let key = minter(&rig.url, SECRET)
        .mint(&named("j.novak"))
        .await
        .unwrap();
    assert_eq!(key.username.as_str(), "j.novak");
    assert_eq!(rig.adapter.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_lost_answer_is_not_blamed_on_the_caller() {
    // The first create runs but its answer is lost; the retry finds the name taken. That is our
    // own doing, so it must not come back as the caller's Conflict.
    let rig = rig(Fault::LoseAnswer(1)).await;
    let err = minter(&rig.url, SECRET)
        .mint(&named("j.novak"))
        .await
        .unwrap_err();
    assert!(matches!(err, MintError::Unavailable(_)), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("j.novak"), "{source}");
}

#[tokio::test]
async fn a_caller_that_goes_away_leaves_nothing_behind() {
    let rig = rig(Fault::SlowAnswer(Duration::from_millis(700))).await;
    let m = minter(&rig.url, SECRET);
    // The caller gives up while the user and key exist but the answer is still on its way.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), m.mint(&named("j.novak"))).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let users = rig.iam.list_users().send().await.unwrap().users().len();
        let requests = rig.adapter.requests.load(Ordering::SeqCst);
        if users == 0 && requests == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{users} users after {requests} requests"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable_within_the_bound() {
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = Url::parse(&format!("http://{closed}/{STAGE}")).unwrap();
    let m = minter(&url, SECRET);
    let started = Instant::now();
    let err = m.mint(&MintRequest::default()).await.unwrap_err();
    assert!(matches!(err, MintError::Unavailable(_)), "{err:?}");
    let why = std::error::Error::source(&err).unwrap().to_string();
    assert!(why.contains("3 attempts"), "{why}");
    let name = IamUserName::parse("j.novak").unwrap();
    let key = canarykeys_core::AccessKeyId::generate_for(account());
    let key_ref = KeyRef {
        access_key_id: &key,
        username: &name,
        account_id: account(),
    };
    let err = m.revoke(&key_ref).await.unwrap_err();
    assert!(matches!(err, MintError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
