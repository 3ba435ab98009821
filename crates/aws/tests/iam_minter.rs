//! The `iam` minter against moto's IAM: a minted user is bare (no policies, groups or tags), its
//! key works for the real AWS CLI with moto's request authentication on, revoke removes key and
//! user, a failure after CreateUser leaves no user behind, and name collisions are handled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};

use aws_sdk_iam::Client;
use canarykeys_aws::testing::{Moto, REGION};
use canarykeys_aws::{sdk_config, DecoyAccount, IamMinter, KeyRef, MintError, MintRequest, Minter};
use canarykeys_core::names::NameGenerator;
use canarykeys_core::{AccountId, IamUserName};

const ACCOUNT: &str = "123456789012"; // moto's one account

/// A decoy account at moto, reached with the given static keys.
fn decoy_account(moto: &Moto, key: &str, secret: &str) -> DecoyAccount {
    let mut a = DecoyAccount::new(AccountId::parse(ACCOUNT).unwrap(), REGION);
    a.endpoint_url = Some(moto.url());
    a.access_key_id = Some(key.to_owned());
    a.secret_access_key = Some(secret.to_owned());
    a
}

async fn iam_as(moto: &Moto, key: &str, secret: &str) -> Client {
    Client::new(&sdk_config(&moto.settings_as(key, secret, REGION)).await)
}

async fn user_names(iam: &Client) -> Vec<String> {
    let out = iam.list_users().send().await.unwrap();
    out.users()
        .iter()
        .map(|u| u.user_name().to_owned())
        .collect()
}

/// Switches moto's request authentication on after `free` more unsigned requests (its
/// `/moto-api/reset-auth`, which wants a text/plain body).
fn auth_on_after(moto: &Moto, free: u32) {
    let addr = moto.url().trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    let body = free.to_string();
    write!(
        s,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// With auth on, makes an IAM user allowed everything and returns its keys: the three calls
/// moto lets through unsigned.
async fn bootstrap_admin(moto: &Moto) -> (String, String) {
    auth_on_after(moto, 3);
    let iam = iam_as(moto, "testing", "testing").await;
    iam.create_user().user_name("admin").send().await.unwrap();
    let allow_all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    iam.put_user_policy()
        .user_name("admin")
        .policy_name("all")
        .policy_document(allow_all)
        .send()
        .await
        .unwrap();
    let out = iam
        .create_access_key()
        .user_name("admin")
        .send()
        .await
        .unwrap();
    let key = out.access_key().unwrap();
    (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}

/// The real AWS CLI with only the given key: nothing from the machine's own AWS setup.
fn aws_cli(moto: &Moto, key: &str, secret: &str, args: &[&str]) -> Output {
    Command::new("aws")
        .args(["--endpoint-url", &moto.url(), "--output", "text"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the AWS CLI ({e}); run `bash scripts/test.sh`"))
}

#[tokio::test]
async fn a_minted_user_is_bare_its_key_works_and_revoke_removes_both() {
    let moto = Moto::start();
    let (admin_key, admin_secret) = bootstrap_admin(&moto).await;
    let iam = iam_as(&moto, &admin_key, &admin_secret).await;
    let mut account = decoy_account(&moto, &admin_key, &admin_secret);
    account.path = "/service/".into();
    let minter = IamMinter::new(vec![account], NameGenerator::default_set())
        .await
        .unwrap();
    let key = minter.mint(&MintRequest::default()).await.unwrap();
    let user = key.username.as_str();
    assert_eq!(key.account_id.to_string(), ACCOUNT);
    assert_eq!(
        key.access_key_id.account_id(),
        key.account_id,
        "the key encodes the account"
    );

    let got = iam.get_user().user_name(user).send().await.unwrap();
    let arn = got.user().unwrap().arn().to_owned();
    assert_eq!(arn, format!("arn:aws:iam::{ACCOUNT}:user/service/{user}"));
    assert!(got.user().unwrap().tags().is_empty(), "no tags");
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
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    let ids: Vec<_> = keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids, [key.access_key_id.as_str()]);

    // What someone who found the key would run first. Auth is on: a wrong secret is refused.
    let (id, secret) = (key.access_key_id.as_str(), key.secret_access_key.expose());
    let who = aws_cli(
        &moto,
        id,
        secret,
        &["sts", "get-caller-identity", "--query", "Arn"],
    );
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), arn);
    let wrong = aws_cli(
        &moto,
        id,
        &secret.replace(|_| true, "A"),
        &["sts", "get-caller-identity"],
    );
    assert!(!wrong.status.success());
    // Implicitly denied: the refusal does not say "explicit deny", which would be a tell.
    let denied = aws_cli(&moto, id, secret, &["iam", "list-users"]);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success() && err.contains("AccessDenied"),
        "{err}"
    );
    assert!(!err.contains("explicit deny"), "{err}");

    let r = KeyRef {
        access_key_id: &key.access_key_id,
        username: &key.username,
        account_id: key.account_id,
    };
    minter.revoke(&r).await.unwrap();
    let gone = iam.get_user().user_name(user).send().await.unwrap_err();
    assert_eq!(
        gone.into_service_error().meta().code(),
        Some("NoSuchEntity")
    );
    assert_eq!(user_names(&iam).await, ["admin"]);
    let after = aws_cli(&moto, id, secret, &["sts", "get-caller-identity"]);
    assert!(!after.status.success(), "the key no longer works");
    minter.revoke(&r).await.unwrap(); // already gone: fine
}

#[tokio::test]
async fn a_failure_after_create_user_leaves_no_user_behind() {
    let moto = Moto::start();
    let iam = iam_as(&moto, "testing", "testing").await;
    let account = decoy_account(&moto, "testing", "testing");
    let minter = IamMinter::new(vec![account], NameGenerator::default_set())
        .await
        .unwrap()
        .fail_after_create_user_for_tests();
    let e = minter.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&e, MintError::Refused(m) if m.contains("CreateAccessKey")),
        "{e:?}"
    );
    // The failure came from CreateAccessKey, so CreateUser had succeeded: the user was made
    // and deleted again.
    assert!(
        user_names(&iam).await.is_empty(),
        "the user was deleted again"
    );
}

#[tokio::test]
async fn name_collisions_conflict_or_draw_again() {
    let moto = Moto::start();
    let iam = iam_as(&moto, "testing", "testing").await;
    iam.create_user()
        .user_name("terraform-ci")
        .send()
        .await
        .unwrap();
    // A names file that makes exactly one name, so a second draw must collide.
    let one = NameGenerator::from_toml("templates = ['{a}']\n[words]\na = ['deploy-bot']").unwrap();
    let minter = IamMinter::new(vec![decoy_account(&moto, "testing", "testing")], one)
        .await
        .unwrap();

    let given = MintRequest {
        username: Some(IamUserName::parse("terraform-ci").unwrap()),
        account: None,
    };
    let e = minter.mint(&given).await.unwrap_err();
    assert!(matches!(e, MintError::Conflict(_)), "{e:?}");

    let first = minter.mint(&MintRequest::default()).await.unwrap();
    assert_eq!(first.username.as_str(), "deploy-bot");
    let conflicts_before = moto.log_text().matches("\" 409 ").count();
    let e = minter.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&e, MintError::Refused(m) if m.contains("were taken")),
        "{e:?}"
    );
    let tries = moto.log_text().matches("\" 409 ").count() - conflicts_before;
    assert_eq!(
        tries, 5,
        "a taken generated name is drawn again, five times in all"
    );
    let mut users = user_names(&iam).await;
    users.sort();
    assert_eq!(
        users,
        ["deploy-bot", "terraform-ci"],
        "existing users are left alone"
    );
}

#[tokio::test]
async fn an_unconfigured_account_is_refused() {
    let moto = Moto::start();
    let iam = iam_as(&moto, "testing", "testing").await;
    let minter = IamMinter::new(
        vec![decoy_account(&moto, "testing", "testing")],
        NameGenerator::default_set(),
    )
    .await
    .unwrap();
    let elsewhere = MintRequest {
        username: None,
        account: Some(AccountId::parse("210987654321").unwrap()),
    };
    let e = minter.mint(&elsewhere).await.unwrap_err();
    assert!(matches!(e, MintError::UnknownAccount(_)), "{e:?}");
    assert!(user_names(&iam).await.is_empty());
    let chosen = MintRequest {
        username: None,
        account: Some(AccountId::parse(ACCOUNT).unwrap()),
    };
    assert_eq!(
        minter.mint(&chosen).await.unwrap().account_id.to_string(),
        ACCOUNT
    );
}

#[tokio::test]
async fn a_configured_role_is_assumed_for_the_iam_calls() {
    let moto = Moto::start();
    let iam = iam_as(&moto, "testing", "testing").await;
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = iam
        .create_role()
        .role_name("ops-automation")
        .assume_role_policy_document(trust);
    let arn = role.send().await.unwrap().role().unwrap().arn().to_owned();

    // Auth off: STS AssumeRole answers with session credentials, which sign the IAM calls.
    let via_role = |key: &str, secret: &str| DecoyAccount {
        role_arn: Some(arn.clone()),
        ..decoy_account(&moto, key, secret)
    };
    let names = NameGenerator::default_set;
    let minter = IamMinter::new(vec![via_role("testing", "testing")], names())
        .await
        .unwrap();
    let minted = minter.mint(&MintRequest::default()).await.unwrap();
    iam.get_user()
        .user_name(minted.username.as_str())
        .send()
        .await
        .unwrap();
    let r = KeyRef {
        access_key_id: &minted.access_key_id,
        username: &minted.username,
        account_id: minted.account_id,
    };
    minter.revoke(&r).await.unwrap();
    assert!(user_names(&iam).await.is_empty());

    // Auth on, moto refuses AssumeRole even to a user allowed everything (a gap in moto). That
    // shows the IAM calls wait on the role: the same user mints directly, but not through it.
    let (admin_key, admin_secret) = bootstrap_admin(&moto).await;
    let direct = decoy_account(&moto, &admin_key, &admin_secret);
    let minter = IamMinter::new(vec![direct], names()).await.unwrap();
    minter.mint(&MintRequest::default()).await.unwrap();
    let minter = IamMinter::new(vec![via_role(&admin_key, &admin_secret)], names())
        .await
        .unwrap();
    let e = minter.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&e, MintError::Refused(m) if m.contains("loading credentials")),
        "{e:?}"
    );
}

/// moto's GetAccountSummary says `UsersQuota` 5000 and counts the users it holds; a headroom of
/// 4997 makes that a quota of three users here. Minting stops before the headroom is touched,
/// with the account, the count and the quota in the error, and nothing is created.
#[tokio::test]
async fn minting_stops_short_of_the_iam_user_quota() {
    let moto = Moto::start();
    let iam = iam_as(&moto, "testing", "testing").await;
    // One user that is not a decoy (the heartbeat identity, say) counts too.
    iam.create_user()
        .user_name("heartbeat")
        .send()
        .await
        .unwrap();
    let mut account = decoy_account(&moto, "testing", "testing");
    account.user_headroom = 4997;
    let minter = IamMinter::new(vec![account], NameGenerator::default_set())
        .await
        .unwrap();
    let q = minter
        .user_quota(AccountId::parse(ACCOUNT).unwrap())
        .await
        .unwrap()
        .expect("the iam minter reads the quota");
    assert_eq!((q.users, q.quota, q.headroom), (1, 5000, 4997));
    minter.mint(&MintRequest::default()).await.unwrap();
    minter.mint(&MintRequest::default()).await.unwrap();
    let e = minter.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(
            e,
            MintError::UserQuota {
                users: 3,
                quota: 5000,
                headroom: 4997,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(ACCOUNT), "{e}");
    assert_eq!(user_names(&iam).await.len(), 3, "nothing more was created");
}
