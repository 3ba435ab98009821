//! The minter's logic against an in-memory IAM: account choice, name collisions, rollback after
//! failures and timeouts, a caller that goes away, revoke of what is gone, and config checks.
//! `tests/iam_minter.rs` runs the same paths against moto.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::{rngs::StdRng, SeedableRng};

use super::*;

const ACCOUNT: &str = "123456789012";

/// IAM in memory: users and their keys. The first `taken` CreateUser calls answer
/// `EntityAlreadyExists`; CreateAccessKey waits `key_delay` and then answers `key_error`, if set.
#[derive(Default)]
struct FakeIam {
    users: Mutex<BTreeMap<String, Vec<String>>>,
    taken: AtomicUsize,
    create_user_calls: AtomicUsize,
    key_delay: Duration,
    key_error: Option<fn() -> AwsError>,
}

fn code(op: &'static str, code: &str, status: u16) -> AwsError {
    let detail = ErrorDetail {
        code: Some(code.into()),
        status: Some(status),
        message: None,
    };
    match status {
        404 => AwsError::NotFound {
            op,
            detail,
            source: None,
        },
        400 if code == "Throttling" => AwsError::Throttled {
            op,
            detail,
            source: None,
        },
        _ => AwsError::Other {
            op,
            detail,
            source: None,
        },
    }
}

#[async_trait]
impl IamApi for FakeIam {
    async fn create_user(&self, name: &str, _: &str, _: Option<&str>) -> Result<(), AwsError> {
        self.create_user_calls.fetch_add(1, Ordering::SeqCst);
        let taken = self
            .taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        let mut users = self.users.lock().unwrap();
        if taken.is_ok() || users.contains_key(name) {
            return Err(code("IAM CreateUser", "EntityAlreadyExists", 409));
        }
        users.insert(name.to_owned(), Vec::new());
        Ok(())
    }
    async fn create_access_key(&self, user: &str) -> Result<(String, String), AwsError> {
        tokio::time::sleep(self.key_delay).await;
        if let Some(e) = self.key_error {
            return Err(e());
        }
        let id = AccessKeyId::generate_for(AccountId::parse(ACCOUNT).unwrap()).to_string();
        let mut users = self.users.lock().unwrap();
        let keys = users
            .get_mut(user)
            .ok_or_else(|| code("IAM CreateAccessKey", "NoSuchEntity", 404))?;
        keys.push(id.clone());
        Ok((id, SecretAccessKey::generate().expose().to_owned()))
    }
    async fn list_access_keys(&self, user: &str) -> Result<Vec<String>, AwsError> {
        let users = self.users.lock().unwrap();
        users
            .get(user)
            .cloned()
            .ok_or_else(|| code("IAM ListAccessKeys", "NoSuchEntity", 404))
    }
    async fn delete_access_key(&self, user: &str, key: &str) -> Result<(), AwsError> {
        let mut users = self.users.lock().unwrap();
        let keys = users
            .get_mut(user)
            .ok_or_else(|| code("IAM DeleteAccessKey", "NoSuchEntity", 404))?;
        let before = keys.len();
        keys.retain(|k| k != key);
        if keys.len() == before {
            return Err(code("IAM DeleteAccessKey", "NoSuchEntity", 404));
        }
        Ok(())
    }
    async fn delete_user(&self, user: &str) -> Result<(), AwsError> {
        let mut users = self.users.lock().unwrap();
        match users.get(user).map(Vec::len) {
            None => Err(code("IAM DeleteUser", "NoSuchEntity", 404)),
            Some(0) => {
                users.remove(user);
                Ok(())
            }
            Some(_) => Err(code("IAM DeleteUser", "DeleteConflict", 409)),
        }
    }
}

impl FakeIam {
    fn user_names(&self) -> Vec<String> {
        self.users.lock().unwrap().keys().cloned().collect()
    }
}

fn account(id: &str, weight: u32, api: Arc<dyn IamApi>) -> Account {
    let mut config = DecoyAccount::new(AccountId::parse(id).unwrap(), "us-east-1");
    config.weight = weight;
    Account { config, api }
}

fn minter(api: Arc<dyn IamApi>) -> IamMinter {
    IamMinter::from_parts(vec![account(ACCOUNT, 1, api)], NameGenerator::default_set()).unwrap()
}

fn named(name: &str) -> MintRequest {
    MintRequest {
        username: Some(IamUserName::parse(name).unwrap()),
        account: None,
    }
}

#[tokio::test]
async fn mints_and_revokes_a_bare_user() {
    let iam = Arc::new(FakeIam::default());
    let m = minter(iam.clone());
    let key = m.mint(&MintRequest::default()).await.unwrap();
    assert_eq!(iam.user_names(), [key.username.to_string()]);
    assert_eq!(key.account_id.to_string(), ACCOUNT);
    check_no_tells(key.username.as_str()).unwrap();
    let r = KeyRef {
        access_key_id: &key.access_key_id,
        username: &key.username,
        account_id: key.account_id,
    };
    m.revoke(&r).await.unwrap();
    assert!(iam.user_names().is_empty());
    m.revoke(&r).await.unwrap(); // already gone: fine
}

#[tokio::test]
async fn a_taken_generated_name_is_replaced_and_a_taken_given_name_conflicts() {
    let iam = Arc::new(FakeIam {
        taken: AtomicUsize::new(2),
        ..FakeIam::default()
    });
    let m = minter(iam.clone());
    m.mint(&MintRequest::default()).await.unwrap();
    assert_eq!(iam.create_user_calls.load(Ordering::SeqCst), 3);

    m.mint(&named("terraform-ci")).await.unwrap();
    let e = m.mint(&named("terraform-ci")).await.unwrap_err();
    assert!(matches!(e, MintError::Conflict(_)), "{e:?}");
    assert_eq!(iam.user_names().len(), 2, "the existing user is left alone");

    iam.taken.store(NAME_TRIES, Ordering::SeqCst);
    let e = m.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&e, MintError::Refused(m) if m.contains("were taken")),
        "{e:?}"
    );
    let e = m.mint(&named("honeypot-user")).await.unwrap_err();
    assert!(matches!(e, MintError::Refused(_)), "{e:?}");
}

#[tokio::test]
async fn failures_after_create_user_leave_nothing_behind() {
    let iam = Arc::new(FakeIam::default());
    let m = minter(iam.clone()).fail_after_create_user_for_tests();
    let e = m.mint(&MintRequest::default()).await.unwrap_err();
    assert!(
        matches!(&e, MintError::Refused(m) if m.contains("CreateAccessKey")),
        "{e:?}"
    );
    assert!(iam.user_names().is_empty());

    let throttled = Arc::new(FakeIam {
        key_error: Some(|| code("IAM CreateAccessKey", "Throttling", 400)),
        ..FakeIam::default()
    });
    let e = minter(throttled.clone())
        .mint(&MintRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(e, MintError::Unavailable(_)), "{e:?}");
    assert!(throttled.user_names().is_empty());

    let slow = Arc::new(FakeIam {
        key_delay: Duration::from_secs(5),
        ..FakeIam::default()
    });
    let m = minter(slow.clone()).with_timeout(Duration::from_millis(200));
    let e = m.mint(&MintRequest::default()).await.unwrap_err();
    assert!(matches!(e, MintError::Unavailable(_)), "{e:?}");
    assert!(
        slow.user_names().is_empty(),
        "rolled back after the time bound"
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_leaves_nothing_behind() {
    let iam = Arc::new(FakeIam {
        key_delay: Duration::from_millis(300),
        ..FakeIam::default()
    });
    let m = minter(iam.clone());
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), m.mint(&MintRequest::default())).await;
    assert!(gave_up.is_err());
    assert_eq!(
        iam.user_names().len(),
        1,
        "the mint goes on without its caller"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(iam.user_names().is_empty(), "and then deletes what it made");
}

#[tokio::test]
async fn revoke_deletes_keys_it_was_not_told_of() {
    let iam = Arc::new(FakeIam::default());
    let m = minter(iam.clone());
    let user = IamUserName::parse("svc-backup-prod").unwrap();
    iam.create_user(user.as_str(), "/", None).await.unwrap();
    iam.create_access_key(user.as_str()).await.unwrap();
    let stale = AccessKeyId::generate_for(AccountId::parse(ACCOUNT).unwrap());
    let r = KeyRef {
        access_key_id: &stale,
        username: &user,
        account_id: AccountId::parse(ACCOUNT).unwrap(),
    };
    m.revoke(&r).await.unwrap();
    assert!(iam.user_names().is_empty());
    let other = KeyRef {
        account_id: AccountId::parse("210987654321").unwrap(),
        ..r
    };
    assert!(matches!(
        m.revoke(&other).await,
        Err(MintError::UnknownAccount(_))
    ));
}

#[test]
fn accounts_are_drawn_by_weight_or_chosen() {
    let api: Arc<dyn IamApi> = Arc::new(FakeIam::default());
    let (a, b, c) = ("111111111111", "222222222222", "333333333333");
    let accounts = vec![
        account(a, 1, api.clone()),
        account(b, 3, api.clone()),
        account(c, 0, api),
    ];
    let m = IamMinter::from_parts(accounts, NameGenerator::default_set()).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut counts = BTreeMap::new();
    for _ in 0..10_000 {
        let id = m
            .inner
            .choose(None, &mut rng)
            .unwrap()
            .config
            .account_id
            .to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    // 3 in 4 for b: 7,500 with a standard deviation of about 43.
    assert!((7_300..7_700).contains(&counts[b]), "{counts:?}");
    assert!(!counts.contains_key(c), "weight 0 is never drawn");
    let chosen = m
        .inner
        .choose(Some(AccountId::parse(c).unwrap()), &mut rng)
        .unwrap();
    assert_eq!(chosen.config.account_id.to_string(), c);
    let unknown = m
        .inner
        .choose(Some(AccountId::parse("444444444444").unwrap()), &mut rng);
    assert!(matches!(unknown, Err(MintError::UnknownAccount(_))));
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let id = AccountId::parse(ACCOUNT).unwrap();
    let names = NameGenerator::default_set;
    let refused = |r: Result<IamMinter, MintError>| matches!(r, Err(MintError::Refused(_)));
    let base = DecoyAccount::new(id, "us-east-1");
    assert!(refused(IamMinter::new(vec![], names()).await));
    assert!(refused(
        IamMinter::new(vec![base.clone(), base.clone()], names()).await
    ));
    assert!(refused(
        IamMinter::new(
            vec![DecoyAccount {
                weight: 0,
                ..base.clone()
            }],
            names()
        )
        .await
    ));
    for path in ["/SpaceCrab/", "/canary/", "service", "/a b/"] {
        let a = DecoyAccount {
            path: path.into(),
            ..base.clone()
        };
        assert!(refused(IamMinter::new(vec![a], names()).await), "{path}");
    }
    for boundary in [
        "not-an-arn",
        "arn:aws:iam::123456789012:policy/decoy-boundary",
    ] {
        let a = DecoyAccount {
            permissions_boundary: Some(boundary.into()),
            ..base.clone()
        };
        assert!(
            refused(IamMinter::new(vec![a], names()).await),
            "{boundary}"
        );
    }
    let half = DecoyAccount {
        access_key_id: Some("AKIAEXAMPLE".into()),
        ..base.clone()
    };
    assert!(refused(IamMinter::new(vec![half], names()).await));
    let ok = DecoyAccount {
        path: "/service/".into(),
        secret_access_key: Some("s3cr3t".into()),
        access_key_id: Some("AKIAEXAMPLE".into()),
        ..base
    };
    assert!(!format!("{ok:?}").contains("s3cr3t"));
    let m = IamMinter::new(vec![ok], names()).await.unwrap();
    assert_eq!((m.name(), m.keys_valid_at_aws()), ("iam", true));
}
