//! Adds a fleet of live tokens to a server's database through the store, for the scale
//! benchmark (`bench/scale.py`): real-shaped ids, keys, user names and memos, an email channel,
//! sealed with the data directory's own key so every stored secret opens.
//!
//! `cargo run --release -p canarykeys-server --example fleet -- DATA_DIR COUNT ACCOUNT_ID`
//!
//! The database must exist (start the server once on DATA_DIR first). Prints what it added and
//! how long it took; nothing here is asserted.

use canarykeys_core::names::ordinary_user_name;
use canarykeys_core::{
    AccessKeyId, AccountId, Email, ManageSecret, Memo, OutputFormat, Region, SecretAccessKey,
    TokenId, TokenKind,
};
use canarykeys_server::crypto::Sealer;
use canarykeys_store::{SqlStore, TokenRecord};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fleet DATA_DIR COUNT ACCOUNT_ID";
    let dir = std::path::PathBuf::from(args.next().expect(usage));
    let count: usize = args
        .next()
        .expect(usage)
        .parse()
        .expect("COUNT is a number");
    let account = AccountId::parse(&args.next().expect(usage)).expect("a 12-digit account id");
    let sealer = Sealer::load(&dir.join("secret.key"))
        .expect("the data dir's key reads")
        .expect("the data dir has a key: start the server on it once");
    let store = SqlStore::connect(&format!("sqlite:{}", dir.join("canarykeys.db").display()))
        .await
        .expect("the server's database");
    let started = std::time::Instant::now();
    let email = Email::parse("soc@example.com").expect("an email");
    let region = Region::parse("us-east-1").expect("a region");
    // A key id holds 39 random bits beside the account (as AWS's do), so a million of them
    // share one about once: the fleet skips a repeat, as the store would refuse it.
    let mut seen = std::collections::HashSet::new();
    let mut repeats = 0;
    let mut done = 0;
    while done < count {
        let chunk: Vec<TokenRecord> = (done..count.min(done + 50_000))
            .map(|i| {
                let id = TokenId::generate();
                let secret_sealed = sealer.seal(&id, &SecretAccessKey::generate());
                TokenRecord {
                    kind: TokenKind::AwsKeys,
                    memo: Memo::parse(&format!("host{i:07} ~/.aws/credentials")).expect("memo"),
                    email: Some(email.clone()),
                    email_enabled: true,
                    webhook: None,
                    webhook_enabled: false,
                    manage_hash: ManageSecret::generate().hash(),
                    minter: "local".into(),
                    access_key_id: loop {
                        let key = AccessKeyId::generate_for(account);
                        if seen.insert(key.as_str().to_owned()) {
                            break key;
                        }
                        repeats += 1;
                    },
                    secret_sealed,
                    username: ordinary_user_name(),
                    account_id: account,
                    region: region.clone(),
                    output: OutputFormat::Json,
                    created_at: 1_700_000_000_000 + i64::try_from(i).expect("small"),
                    expires_at: None,
                    alerting: Default::default(),
                    id,
                }
            })
            .collect();
        match store.import_tokens(&chunk).await {
            Ok(()) => {}
            // One of the server's own tokens has a key this chunk drew: draw the chunk again.
            Err(canarykeys_store::StoreError::Conflict) => {
                repeats += 1;
                continue;
            }
            Err(e) => panic!("tokens not stored: {e}"),
        }
        done += chunk.len();
    }
    store.close().await;
    println!(
        "added {count} tokens in {:.1} s ({repeats} key ids drawn twice and drawn again)",
        started.elapsed().as_secs_f64()
    );
}
