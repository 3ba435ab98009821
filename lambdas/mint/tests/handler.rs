//! The mint Lambda's handler on API Gateway proxy events (HTTP API format 2.0 and REST API, in
//! `fixtures/`, shaped like the examples in AWS's documentation), against moto's IAM: a create
//! makes a user with one key and nothing else, a bad signature makes nothing, a taken name is a
//! 409, a delete removes both, and under a role without CreateAccessKey no user is left behind.

use aws_sdk_iam::error::ProvideErrorMetadata;
use canarykeys_aws::sdk_config;
use canarykeys_aws::testing::Moto;
use canarykeys_core::names;
use canarykeys_mint::apigw::{self, ProxyResponse};
use canarykeys_mint::protocol::{self, CreatedUser, ErrorBody};
use canarykeys_mint::{Config, Mint, MintSecret};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

const SECRET: &str = "mint-test-secret-0123456789";
const V2_CREATE: &str = include_str!("fixtures/http-api-v2-create-user.json");
const V2_DELETE: &str = include_str!("fixtures/http-api-v2-delete-key.json");
const V1_CREATE: &str = include_str!("fixtures/rest-api-v1-create-user.json");

async fn iam_as(moto: &Moto, key: &str, secret: &str) -> aws_sdk_iam::Client {
    let settings = moto.settings_as(key, secret, canarykeys_aws::testing::REGION);
    aws_sdk_iam::Client::new(&sdk_config(&settings).await)
}

async fn admin(moto: &Moto) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await)
}

fn mint(iam: aws_sdk_iam::Client) -> Mint {
    Mint::new(iam, Config::new(MintSecret::new(SECRET).unwrap()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fixture with its `__PLACEHOLDERS__` filled in.
fn fixture(text: &str, fill: &[(&str, &str)]) -> Value {
    let text = fill
        .iter()
        .fold(text.to_owned(), |t, (k, v)| t.replace(k, v));
    serde_json::from_str(&text).unwrap()
}

/// Signs the event as the server would: over method, route path (no stage) and body.
fn signed(mut event: Value, secret: &str, method: &str, path: &str) -> Value {
    let body = event["body"].as_str().unwrap_or_default().to_owned();
    let header = protocol::sign(secret.as_bytes(), now(), method, path, body.as_bytes());
    event["headers"][protocol::SIGNATURE_HEADER] = json!(header);
    event
}

fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = json!(body);
    event
}

async fn invoke(mint: &Mint, event: Value) -> ProxyResponse {
    let event = LambdaEvent::new(event, Context::default());
    let Ok(response) = apigw::handler(mint, event).await;
    response
}

fn error_code(r: &ProxyResponse) -> String {
    let body: ErrorBody = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    body.error.code
}

async fn user_count(iam: &aws_sdk_iam::Client) -> usize {
    iam.list_users().send().await.unwrap().users().len()
}

#[tokio::test]
async fn create_makes_a_user_with_one_key_and_nothing_else() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let mint = mint(admin(&moto).await);
    let event = signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users");
    let r = invoke(&mint, event).await;
    assert_eq!(r.status_code, 201, "{r:?}");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["content-type"], "application/json");
    let created: CreatedUser = serde_json::from_str(&r.body).unwrap();
    assert_eq!(created.username, "svc-sync-ops");
    assert_eq!(created.account_id, "123456789012");
    assert_eq!(created.arn, "arn:aws:iam::123456789012:user/svc-sync-ops");
    canarykeys_core::AccessKeyId::parse(&created.access_key_id).unwrap();
    canarykeys_core::SecretAccessKey::parse(&created.secret_access_key).unwrap();

    let user = "svc-sync-ops";
    iam.get_user().user_name(user).send().await.unwrap();
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    let ids: Vec<_> = keys
        .access_key_metadata()
        .iter()
        .map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids, [Some(created.access_key_id.as_str())]);
    let attached = iam
        .list_attached_user_policies()
        .user_name(user)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
    let inline = iam
        .list_user_policies()
        .user_name(user)
        .send()
        .await
        .unwrap();
    assert!(inline.policy_names().is_empty());
    let groups = iam
        .list_groups_for_user()
        .user_name(user)
        .send()
        .await
        .unwrap();
    assert!(groups.groups().is_empty());
    let tags = iam.list_user_tags().user_name(user).send().await.unwrap();
    assert!(tags.tags().is_empty());
}

#[tokio::test]
async fn rest_api_events_and_paths_work_too() {
    let moto = Moto::start();
    let mint = mint(admin(&moto).await);
    let r = invoke(
        &mint,
        signed(fixture(V1_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    assert_eq!(r.status_code, 201, "{r:?}");
    let created: CreatedUser = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        created.arn,
        "arn:aws:iam::123456789012:user/service/j.okafor"
    );
    // No name given: the service picks an ordinary one.
    let event = with_body(fixture(V1_CREATE, &[]), "{}");
    let r = invoke(&mint, signed(event, SECRET, "POST", "/users")).await;
    assert_eq!(r.status_code, 201, "{r:?}");
    let created: CreatedUser = serde_json::from_str(&r.body).unwrap();
    names::check_no_tells(&created.username).unwrap();
}

#[tokio::test]
async fn without_a_good_signature_nothing_is_created() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let mint = mint(admin(&moto).await);
    let unsigned = fixture(V2_CREATE, &[]);
    let wrong_secret = signed(
        unsigned.clone(),
        "another-secret-0123456789",
        "POST",
        "/users",
    );
    let other_body = with_body(
        signed(unsigned.clone(), SECRET, "POST", "/users"),
        r#"{"username":"svc-sync-prod"}"#,
    );
    let as_delete = signed(unsigned.clone(), SECRET, "DELETE", "/users");
    let mut stale = unsigned.clone();
    stale["headers"][protocol::SIGNATURE_HEADER] = json!(protocol::sign(
        SECRET.as_bytes(),
        now() - 600,
        "POST",
        "/users",
        br#"{"username":"svc-sync-ops"}"#
    ));
    for (what, event) in [
        ("unsigned", unsigned),
        ("wrong secret", wrong_secret),
        ("other body", other_body),
        ("signed as a DELETE", as_delete),
        ("stale", stale),
    ] {
        let r = invoke(&mint, event).await;
        assert_eq!(r.status_code, 401, "{what}: {r:?}");
        assert_eq!(error_code(&r), "unauthorized", "{what}");
    }
    assert_eq!(user_count(&iam).await, 0);
}

#[tokio::test]
async fn a_taken_name_is_a_409_that_leaves_the_first_user_alone() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let mint = mint(admin(&moto).await);
    let first = invoke(
        &mint,
        signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    assert_eq!(first.status_code, 201, "{first:?}");
    let created: CreatedUser = serde_json::from_str(&first.body).unwrap();
    let again = invoke(
        &mint,
        signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    assert_eq!(again.status_code, 409, "{again:?}");
    assert_eq!(error_code(&again), "name_taken");
    let keys = iam
        .list_access_keys()
        .user_name("svc-sync-ops")
        .send()
        .await
        .unwrap();
    assert_eq!(keys.access_key_metadata().len(), 1);
    assert_eq!(
        keys.access_key_metadata()[0].access_key_id(),
        Some(created.access_key_id.as_str())
    );
}

#[tokio::test]
async fn delete_removes_key_and_user_and_is_repeatable() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let mint = mint(admin(&moto).await);
    let r = invoke(
        &mint,
        signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    let created: CreatedUser = serde_json::from_str(&r.body).unwrap();
    let fill = [
        ("__USERNAME__", created.username.as_str()),
        ("__ACCESS_KEY_ID__", created.access_key_id.as_str()),
    ];
    let path = protocol::key_path(&created.username, &created.access_key_id);
    for round in 0..2 {
        let event = signed(fixture(V2_DELETE, &fill), SECRET, "DELETE", &path);
        let r = invoke(&mint, event).await;
        assert_eq!(r.status_code, 204, "round {round}: {r:?}");
        assert!(r.body.is_empty());
    }
    let err = iam
        .get_user()
        .user_name(&created.username)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchEntity"));
    assert_eq!(user_count(&iam).await, 0);
}

#[tokio::test]
async fn bad_names_routes_and_methods_are_refused() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let mint = mint(admin(&moto).await);
    for (body, status) in [
        (r#"{"username":"honeypot-user"}"#, 422),
        (r#"{"username":"has space"}"#, 422),
        (r#"{"username":"ok","path":"/ggcanary/"}"#, 422),
        (r#"{"username":"ok","path":"no-slashes"}"#, 422),
        (r#"{"usrename":"ok"}"#, 400),
        ("not json", 400),
    ] {
        let event = with_body(fixture(V2_CREATE, &[]), body);
        let r = invoke(&mint, signed(event, SECRET, "POST", "/users")).await;
        assert_eq!(r.status_code, status, "{body}: {r:?}");
    }
    let mut get = fixture(V2_CREATE, &[]);
    get["requestContext"]["http"]["method"] = json!("GET");
    let r = invoke(&mint, signed(get, SECRET, "GET", "/users")).await;
    assert_eq!(
        (r.status_code, r.headers.get("allow").map(String::as_str)),
        (405, Some("POST"))
    );
    let mut elsewhere = fixture(V2_CREATE, &[]);
    elsewhere["rawPath"] = json!("/admin");
    let r = invoke(&mint, signed(elsewhere, SECRET, "POST", "/admin")).await;
    assert_eq!(r.status_code, 404, "{r:?}");
    let r = invoke(&mint, json!({"Records": []})).await;
    assert_eq!(r.status_code, 400, "{r:?}");
    assert_eq!(user_count(&iam).await, 0);
}

/// An identity in moto with an inline policy allowing `actions`. On `*`: moto checks actions
/// only, always against resource `*`, so the template's `user/*` scoping cannot be tried here.
async fn identity(iam: &aws_sdk_iam::Client, name: &str, actions: &[&str]) -> (String, String) {
    iam.create_user().user_name(name).send().await.unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    iam.put_user_policy()
        .user_name(name)
        .policy_name("p")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key.unwrap();
    (key.access_key_id, key.secret_access_key)
}

#[tokio::test]
async fn the_template_role_suffices_and_a_failed_key_leaves_no_user() {
    let moto = Moto::start();
    let iam = admin(&moto).await;
    let (admin_id, admin_secret) = identity(&iam, "admin", &["*"]).await;
    // The actions deploy/cloudformation/mint-gateway.yaml grants, and the same without one.
    let all = [
        "iam:CreateUser",
        "iam:CreateAccessKey",
        "iam:DeleteAccessKey",
        "iam:DeleteUser",
        "iam:GetUser",
    ];
    let (role_id, role_secret) = identity(&iam, "minter", &all).await;
    let (weak_id, weak_secret) = identity(&iam, "weak", &[all[0], all[2], all[3], all[4]]).await;
    // From here on moto checks every signature and policy, as AWS does.
    let switched = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.url()))
        .header("content-type", "text/plain")
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(switched.status().is_success(), "{switched:?}");
    let iam = iam_as(&moto, &admin_id, &admin_secret).await;

    let weak = mint(iam_as(&moto, &weak_id, &weak_secret).await);
    let r = invoke(
        &weak,
        signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    assert_eq!(r.status_code, 403, "{r:?}");
    assert_eq!(error_code(&r), "iam_access_denied");
    assert!(r.body.contains("deleted again"), "{}", r.body);
    let err = iam
        .get_user()
        .user_name("svc-sync-ops")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchEntity"), "{err:?}");

    let role = mint(iam_as(&moto, &role_id, &role_secret).await);
    let r = invoke(
        &role,
        signed(fixture(V2_CREATE, &[]), SECRET, "POST", "/users"),
    )
    .await;
    assert_eq!(r.status_code, 201, "{r:?}");
    let created: CreatedUser = serde_json::from_str(&r.body).unwrap();
    let fill = [
        ("__USERNAME__", created.username.as_str()),
        ("__ACCESS_KEY_ID__", created.access_key_id.as_str()),
    ];
    let path = protocol::key_path(&created.username, &created.access_key_id);
    let r = invoke(
        &role,
        signed(fixture(V2_DELETE, &fill), SECRET, "DELETE", &path),
    )
    .await;
    assert_eq!(r.status_code, 204, "{r:?}");
    assert_eq!(user_count(&iam).await, 3, "admin, minter and weak only");
}
