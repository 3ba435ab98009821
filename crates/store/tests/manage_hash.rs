//! Replacing a token's manage secret (`AuditedWrite::SetManageHash`), on both backends: the new
//! hash is stored with its audit entry, the old one no longer matches, and a missing token
//! writes nothing, not even the entry.

use canarykeys_core::{ManageSecret, TokenId};
use canarykeys_store::{
    AccessStore, AuditRecord, AuditedStore, AuditedWrite, SqlStore, TokenStore,
};

// Only its token is needed here.
#[allow(dead_code)]
mod support;

fn entry(id: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at: 5_000,
        actor: "cli".into(),
        action: "token.manage_secret".into(),
        target: "t".into(),
        details: String::new(),
    }
}

async fn manage_hash_replaced(store: &SqlStore) {
    let old = ManageSecret::generate();
    let mut t = support::token(1_000);
    t.manage_hash = old.hash();
    store.insert_token(&t).await.unwrap();

    let new = ManageSecret::generate();
    let write = AuditedWrite::SetManageHash {
        id: &t.id,
        hash: &new.hash(),
    };
    assert!(store.write_audited(write, &entry("m1")).await.unwrap());
    let got = store.get_token(&t.id).await.unwrap().unwrap();
    assert!(new.verify(&got.manage_hash));
    assert!(!old.verify(&got.manage_hash));
    assert_eq!(
        store.list_audit(10, 0).await.unwrap()[0].action,
        "token.manage_secret"
    );

    let missing = TokenId::generate();
    let write = AuditedWrite::SetManageHash {
        id: &missing,
        hash: &new.hash(),
    };
    assert!(!store.write_audited(write, &entry("m2")).await.unwrap());
    assert_eq!(store.list_audit(10, 0).await.unwrap().len(), 1);
}

canarykeys_testkit::on_both_backends!(manage_hash_replaced);
