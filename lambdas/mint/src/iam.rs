//! The mint service's IAM calls: a user with one access key and nothing else (no tags, policies or
//! groups, so the key is only implicitly denied), made and unmade as a unit.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iam::Client;
use canarykeys_core::IamUserName;

use crate::protocol::CreatedUser;

/// What kind of failure an IAM call had, by what the caller should be told, not by SDK type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `EntityAlreadyExists`: the user name is taken in the account.
    NameTaken,
    /// `NoSuchEntity`: the user or key is not there.
    NotFound,
    /// Throttling, IAM's own failures, concurrent changes, network trouble: worth retrying.
    Unavailable,
    /// The function's role may not make this call.
    Denied,
    /// An account quota (users per account, keys per user).
    Limit,
    /// IAM refused the input (a name or path it does not accept).
    Invalid,
    /// `DeleteConflict`: the user has something attached that we did not make.
    DeleteConflict,
    Other,
}

/// A failed IAM call: its kind and what IAM said, prefixed with the call's name.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct IamFailure {
    pub kind: Kind,
    pub message: String,
}

impl IamFailure {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

// Codes the SDK's standard retry treats as throttling, plus IAM's own transient ones. The SDK has
// already retried these (3 attempts) by the time we see them.
const UNAVAILABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceFailure",
    "ServiceUnavailable",
    "InternalFailure",
    "ConcurrentModification",
];

fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> IamFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let raw_body = err.raw_response().and_then(|r| r.body().bytes());
    let text = match (&code, err.message(), status, raw_body) {
        (Some(c), Some(m), ..) => format!("IAM {op}: {c}: {m}"),
        (Some(c), None, ..) => format!("IAM {op}: {c}"),
        // A body the SDK could not read a code from: its start says what happened, and holds no
        // request data (the SDK's own rendering would dump the whole raw response).
        (None, _, Some(s), Some(body)) => {
            let body: String = String::from_utf8_lossy(body).chars().take(400).collect();
            format!("IAM {op}: HTTP {s}: {body}")
        }
        _ => format!("IAM {op}: {}", DisplayErrorContext(&err)),
    };
    let kind = match (&err, code.as_deref(), status) {
        (SdkError::TimeoutError(_), ..) => Kind::Unavailable,
        (SdkError::DispatchFailure(e), ..) if e.is_io() || e.is_timeout() => Kind::Unavailable,
        (_, Some("EntityAlreadyExists"), _) => Kind::NameTaken,
        (_, Some("NoSuchEntity"), _) | (_, None, Some(404)) => Kind::NotFound,
        (_, Some("DeleteConflict"), _) => Kind::DeleteConflict,
        (_, Some("LimitExceeded"), _) => Kind::Limit,
        (_, Some("InvalidInput" | "ValidationError"), _) => Kind::Invalid,
        (_, Some(c), _) if UNAVAILABLE.contains(&c) => Kind::Unavailable,
        // Bodies that parse into no code (moto's EC2-style auth errors; an HTML 502) leave only
        // the status to go by.
        (_, Some("AccessDenied"), _) | (_, _, Some(401 | 403)) => Kind::Denied,
        (_, _, Some(429 | 500..=599)) => Kind::Unavailable,
        _ => Kind::Other,
    };
    IamFailure::new(kind, text)
}

/// The 12-digit account of an IAM ARN (`arn:aws:iam::123456789012:user/path/name`).
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// CreateUser, then CreateAccessKey. If anything after CreateUser fails, the user is deleted
/// again, so a failed create leaves nothing behind; the answer then says whether that clean-up
/// worked.
pub async fn create_user_with_key(
    iam: &Client,
    name: &IamUserName,
    path: &str,
) -> Result<CreatedUser, IamFailure> {
    let user = iam
        .create_user()
        .user_name(name.as_str())
        .path(path)
        .send()
        .await
        .map_err(|e| classify("CreateUser", e))?;
    let arn = user.user().map(|u| u.arn().to_owned()).unwrap_or_default();
    let key = match account_of_arn(&arn) {
        None => Err(IamFailure::new(
            Kind::Other,
            format!("IAM CreateUser answered an ARN without an account id: {arn:?}"),
        )),
        Some(_) => iam
            .create_access_key()
            .user_name(name.as_str())
            .send()
            .await
            .map_err(|e| classify("CreateAccessKey", e))
            .and_then(|out| {
                out.access_key.ok_or_else(|| {
                    IamFailure::new(Kind::Other, "IAM CreateAccessKey returned no key")
                })
            }),
    };
    match key {
        Ok(key) => Ok(CreatedUser {
            username: name.to_string(),
            account_id: account_of_arn(&arn).unwrap_or_default().to_owned(),
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            arn,
        }),
        Err(failure) => Err(undo_user(iam, name, failure).await),
    }
}

/// Deletes a user whose key could not be made, keeping `failure` as the answer and saying in it
/// whether the user is gone.
async fn undo_user(iam: &Client, name: &IamUserName, mut failure: IamFailure) -> IamFailure {
    let note = match iam.delete_user().user_name(name.as_str()).send().await {
        Ok(_) => " (the user was deleted again)".to_owned(),
        Err(e) => {
            let why = classify("DeleteUser", e);
            tracing::error!(user = %name, error = %why, "user left behind after a failed create; delete it by hand");
            format!(" (and the user {name} could not be deleted again: {why})")
        }
    };
    failure.message.push_str(&note);
    failure
}

/// DeleteAccessKey, then DeleteUser. What is already gone counts as deleted, so a retried or
/// repeated delete succeeds.
pub async fn delete_user_and_key(
    iam: &Client,
    name: &IamUserName,
    access_key_id: &str,
) -> Result<(), IamFailure> {
    let gone = |r: Result<(), IamFailure>| match r {
        Err(IamFailure {
            kind: Kind::NotFound,
            ..
        }) => Ok(()),
        other => other,
    };
    gone(
        iam.delete_access_key()
            .user_name(name.as_str())
            .access_key_id(access_key_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("DeleteAccessKey", e)),
    )?;
    gone(
        iam.delete_user()
            .user_name(name.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("DeleteUser", e)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_from_arn() {
        assert_eq!(
            account_of_arn("arn:aws:iam::123456789012:user/svc/j.meyer"),
            Some("123456789012")
        );
        assert_eq!(
            account_of_arn("arn:aws-cn:iam::012345678901:user/x"),
            Some("012345678901")
        );
        for bad in [
            "",
            "arn:aws:iam::12:user/x",
            "arn:aws:iam",
            "arn:aws:iam::abcdefghijkl:u",
        ] {
            assert_eq!(account_of_arn(bad), None, "{bad}");
        }
    }
}
