//! The key index as the parser's gate: a record is built only if matching could find it a
//! token, a heartbeat or a session issue with what the index holds now. It mirrors every place
//! `IngestService::record` looks, and answers "no" only where each of them would answer "no"
//! without a query: so an organisation trail's other accounts cost a hash lookup a record,
//! and nothing is built for them (BENCHMARKS.md, session 12).

use canarykeys_core::cloudtrail::{Gate, Who};
use canarykeys_core::{AccessKeyId, AccountId, IamUserName};

use super::{KeyIndex, Maps};

impl Gate for KeyIndex {
    fn may_match(&self, who: &Who<'_>) -> bool {
        // The server's own GetSessionToken is recorded with its session: the database decides.
        if canarykeys_core::session::may_issue_session(who.event_name, who.event_source, who.failed)
        {
            return true;
        }
        let maps = self.read();
        if let Some(key) = who.access_key_id.and_then(|k| AccessKeyId::parse(k).ok()) {
            // `by_key` and `heartbeat`: indexed, or a key of our accounts (then a query).
            if maps.keys.get(&key).is_some()
                || maps.heartbeat.contains_key(&key)
                || maps.accounts.contains(&key.account_id())
            {
                return true;
            }
            // `by_session`: unless the caller's account is named and none of ours.
            if key.is_session() && caller_may_be_ours(&maps, who.account_id) {
                return true;
            }
        }
        // `by_user`: an IAM user of one of our accounts (then a query).
        let account = who.account_id.or(who.recipient_account_id);
        match (account, who.user_name) {
            (Some(account), Some(user)) => {
                IamUserName::parse(user).is_ok()
                    && AccountId::parse(account).is_ok_and(|a| maps.accounts.contains(&a))
            }
            _ => false,
        }
    }
}

impl KeyIndex {
    /// Whether a session key's record may be a session decoy's: unless it names the caller's
    /// account (`userIdentity.accountId`) and that account is none of ours. Session decoys are
    /// issued to IAM users of our decoy accounts, and CloudTrail names the caller's own account
    /// wherever the call is logged (a call into another account included). A record without
    /// that field is always looked up.
    pub fn session_may_be_ours(&self, caller: Option<&str>) -> bool {
        caller_may_be_ours(&self.read(), caller)
    }
}

fn caller_may_be_ours(maps: &Maps, caller: Option<&str>) -> bool {
    match caller.map(AccountId::parse) {
        Some(Ok(account)) => maps.accounts.contains(&account),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use canarykeys_core::TokenId;
    use canarykeys_store::KeyEntry;

    use super::super::{Change, LateEvents};
    use super::*;
    use crate::clock::ManualClock;

    fn acct(s: &str) -> AccountId {
        AccountId::parse(s).unwrap()
    }

    /// A record of `key` by a caller of `account`, named `user`.
    fn who<'a>(key: &'a str, account: Option<&'a str>, user: Option<&'a str>) -> Who<'a> {
        Who {
            access_key_id: Some(key),
            account_id: account,
            user_name: user,
            event_name: Some("GetCallerIdentity"),
            event_source: Some("sts.amazonaws.com"),
            ..Who::default()
        }
    }

    /// Each place matching looks, with what the index holds: the gate lets a record through
    /// exactly when one of them could find something (or would ask the database).
    #[test]
    fn the_gate_refuses_only_what_matching_would_not_find() {
        let (ours, theirs, beat) = (
            acct("111111111111"),
            acct("222222222222"),
            acct("333333333333"),
        );
        let token = KeyEntry {
            token_id: TokenId::generate(),
            access_key_id: AccessKeyId::generate_for(ours),
            account_id: ours,
            username: IamUserName::parse("svc-backup").unwrap(),
            died_at: None,
        };
        let index = KeyIndex::from_entries(
            std::slice::from_ref(&token),
            &[],
            LateEvents::default(),
            ManualClock::starting_now().shared(),
        );
        let heartbeat = AccessKeyId::generate_for(beat);
        index
            .write()
            .change(Change::Heartbeat(heartbeat.clone(), beat));
        let k = |key: &AccessKeyId| key.to_string();
        let (own, unindexed, foreign, hb) = (
            k(&token.access_key_id),
            k(&AccessKeyId::generate_for(ours)),
            k(&AccessKeyId::generate_for(theirs)),
            k(&heartbeat),
        );
        let (session_foreign, session_ours) = (
            k(&AccessKeyId::generate_session_for(theirs)),
            k(&AccessKeyId::generate_session_for(ours)),
        );
        let (o, t) = (Some("111111111111"), Some("222222222222"));
        let cases: Vec<(&str, Who, bool)> = vec![
            ("the token's key", who(&own, t, None), true),
            ("another key of our account", who(&unindexed, t, None), true),
            (
                "a heartbeat key",
                who(&hb, Some("333333333333"), None),
                true,
            ),
            ("a foreign key", who(&foreign, t, Some("svc-backup")), false),
            (
                "a foreign caller's session",
                who(&session_foreign, t, None),
                false,
            ),
            ("our caller's session", who(&session_foreign, o, None), true),
            (
                "a session, caller unnamed",
                who(&session_foreign, None, None),
                true,
            ),
            ("a session key of ours", who(&session_ours, t, None), true),
            (
                "a user of our account",
                who(&foreign, o, Some("svc-x")),
                true,
            ),
            (
                "a user, recipient ours",
                Who {
                    recipient_account_id: o,
                    ..who(&foreign, None, Some("u"))
                },
                true,
            ),
            ("a caller of ours, no user", who(&foreign, o, None), false),
            (
                "a user name IAM refuses",
                who(&foreign, o, Some("no way")),
                false,
            ),
            ("not a key", who("AKIA-nope", t, None), false),
        ];
        for (what, w, want) in &cases {
            assert_eq!(index.may_match(w), *want, "{what}");
        }
        // A successful GetSessionToken may be the server's own issue, whoever made it.
        let issue = Who {
            event_name: Some("GetSessionToken"),
            ..who(&foreign, t, None)
        };
        assert!(index.may_match(&issue));
        assert!(!index.may_match(&Who {
            failed: true,
            ..issue
        }));
        // A token created later is let through from then on.
        let later = KeyEntry {
            access_key_id: AccessKeyId::generate_for(theirs),
            account_id: theirs,
            ..token.clone()
        };
        let key = k(&later.access_key_id);
        assert!(!index.may_match(&who(&key, t, None)));
        index.write().add(&later);
        assert!(index.may_match(&who(&key, t, None)));
    }
}
