//! A look at who made a call, taken before a record is built. An organisation trail is almost
//! all other accounts' calls: building each of them whole (a dozen owned fields and its text)
//! only for matching to drop it cost a fifth of a firehose's time in the allocator. A [`Gate`]
//! sees the few fields matching reads, borrowed from the parsed item, and says whether the
//! record could be one the caller wants; one it refuses is counted, never built.
//!
//! A gate must answer "no" only when it is sure: a record it refuses is never matched. The
//! parser refuses nothing on its own ([`Open`]); the server's gate is its key index's answer.

use super::fields::{IdentityFields, Loose};

/// The fields of a record that decide whether it may be a decoy's use, as the record itself
/// would hold them: non-empty strings (anything else is `None`), NUL characters already replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Who<'a> {
    /// `userIdentity.accessKeyId`.
    pub access_key_id: Option<&'a str>,
    /// `userIdentity.accountId`: the caller's account.
    pub account_id: Option<&'a str>,
    /// `userIdentity.userName`.
    pub user_name: Option<&'a str>,
    /// `recipientAccountId`: the account the call was logged in.
    pub recipient_account_id: Option<&'a str>,
    pub event_name: Option<&'a str>,
    pub event_source: Option<&'a str>,
    /// Whether `errorCode` is set: a failed call.
    pub failed: bool,
}

/// Says whether a record may be wanted; see the module docs.
pub trait Gate: Send + Sync {
    /// `false` only when the record can be no use of anything the caller matches.
    fn may_match(&self, who: &Who<'_>) -> bool;
}

/// The gate that lets every record through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Gate for Open {
    fn may_match(&self, _: &Who<'_>) -> bool {
        true
    }
}

/// A string field as [`super::Record`] keeps it: non-empty text, or nothing.
fn text<'a>(v: &'a Option<Loose<'_>>) -> Option<&'a str> {
    v.as_ref().and_then(Loose::as_str).filter(|s| !s.is_empty())
}

impl<'a> Who<'a> {
    /// The fields of a record whose members were lifted into `f` with identity `id`.
    pub(super) fn of(f: &'a super::fields::Fields<'_>, id: &'a IdentityFields<'_>) -> Self {
        Self {
            access_key_id: text(&id.access_key_id),
            account_id: text(&id.account_id),
            user_name: text(&id.user_name),
            recipient_account_id: text(&f.recipient_account_id),
            event_name: text(&f.event_name),
            event_source: text(&f.event_source),
            failed: text(&f.error_code).is_some(),
        }
    }
}
