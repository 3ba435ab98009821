//! `IamKeyUsage` against moto's IAM: a fresh key is never used, using it (S3 from the Rust SDK,
//! STS from the real AWS CLI, the attacker's usual first call) shows up with service and region,
//! and unknown, deleted or unauthorised lookups are classified.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use canarykeys_aws::testing::Moto;
use canarykeys_aws::{sdk_config, AwsError, IamKeyUsage, KeyUsage};
use canarykeys_core::AccessKeyId;

fn now_millis() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// Creates an IAM user with one access key in moto; returns (key id, secret).
async fn decoy_key(moto: &Moto, user: &str) -> (AccessKeyId, String) {
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    iam.create_user().user_name(user).send().await.unwrap();
    let out = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let key = out.access_key().expect("CreateAccessKey returns the key");
    let id = AccessKeyId::parse(key.access_key_id()).expect("moto mints AKIA… ids");
    (id, key.secret_access_key().to_owned())
}

/// `aws sts get-caller-identity` with the decoy key, as someone who found it would run it.
fn cli_get_caller_identity(moto: &Moto, id: &AccessKeyId, secret: &str, region: &str) {
    let out = Command::new("aws")
        .args(["--endpoint-url", &moto.url(), "sts", "get-caller-identity"])
        .env("AWS_ACCESS_KEY_ID", id.as_str())
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", region)
        // Nothing from the machine's own AWS setup may leak into the call.
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the AWS CLI ({e}); run `bash scripts/test.sh`, which installs it")
        });
    assert!(
        out.status.success(),
        "aws sts get-caller-identity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_key_is_never_used_until_it_is_used() {
    let moto = Moto::start();
    let usage = IamKeyUsage::new(&sdk_config(&moto.settings()).await);
    let (id, secret) = decoy_key(&moto, "svc-backup-prod").await;
    assert_eq!(usage.last_used(&id).await.unwrap(), None);

    // Use it from the Rust SDK: S3 ListBuckets signed with the decoy key for eu-west-2.
    let before = now_millis();
    let thief = sdk_config(&moto.settings_as(id.as_str(), &secret, "eu-west-2")).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&thief)
            .force_path_style(true)
            .build(),
    );
    s3.list_buckets().send().await.unwrap();
    let after = now_millis();

    let used = usage.last_used(&id).await.unwrap().expect("used by now");
    assert_eq!(used.service.as_deref(), Some("s3"));
    assert_eq!(used.region.as_deref(), Some("eu-west-2"));
    // moto reports whole seconds or better; allow for that rounding.
    assert!(
        (before - 1000..=after + 1000).contains(&used.at_millis),
        "{before} <= {} <= {after}",
        used.at_millis
    );

    // Then with the AWS CLI and STS: last-used moves to the newer call.
    cli_get_caller_identity(&moto, &id, &secret, "ap-southeast-2");
    let again = usage.last_used(&id).await.unwrap().expect("still used");
    assert_eq!(again.service.as_deref(), Some("sts"), "{again:?}");
    assert!(again.region.is_some(), "{again:?}");
    assert!(again.at_millis >= used.at_millis, "{again:?} vs {used:?}");
    println!("after the CLI's STS call moto says: {again:?}");
}

#[tokio::test]
async fn unknown_and_deleted_keys_are_not_found() {
    let moto = Moto::start();
    let usage = IamKeyUsage::new(&sdk_config(&moto.settings()).await);

    let unknown = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
    let err = usage.last_used(&unknown).await.unwrap_err();
    println!("moto answered for an unknown key: {err}");
    assert!(matches!(err, AwsError::NotFound { .. }), "{err:?}");
    assert_eq!(err.detail().code.as_deref(), Some("NoSuchEntity"), "{err}");
    assert_eq!(err.detail().status, Some(404), "{err}");

    // A revoked decoy (key deleted) reads the same as one that never existed.
    let (id, _) = decoy_key(&moto, "jenkins-deploy").await;
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    iam.delete_access_key()
        .user_name("jenkins-deploy")
        .access_key_id(id.as_str())
        .send()
        .await
        .unwrap();
    let err = usage.last_used(&id).await.unwrap_err();
    assert!(matches!(err, AwsError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn credentials_aws_does_not_know_are_denied() {
    // With auth on, moto refuses our fake admin key the way AWS refuses an unknown key. Its error
    // body is EC2-style, which the SDK parses into no code: the 403 alone must classify it.
    let moto = Moto::start_with_auth();
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRET";
    let settings = moto.settings_as(
        "AKIAIOSFODNN7EXAMPLE",
        secret,
        canarykeys_aws::testing::REGION,
    );
    let usage = IamKeyUsage::new(&sdk_config(&settings).await);
    let any = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
    let err = usage.last_used(&any).await.unwrap_err();
    println!("moto (auth on) answered: {err}");
    assert!(matches!(err, AwsError::Denied { .. }), "{err:?}");
    assert_eq!(err.detail().status, Some(403), "{err}");
    assert!(!err.is_transient());
    // Neither the message nor the debug form (with the SDK error and raw response) has the secret.
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
}
