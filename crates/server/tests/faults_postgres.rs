//! Fault suite: PostgreSQL restarted under load. The test runs its own throwaway cluster
//! (initdb/pg_ctl, as `scripts/test.sh` does), so the machine's shared server is never stopped.
//! While the database is gone the server keeps running and answers 503 with `Retry-After` (not a
//! 500, not a crash); once it is back the server recovers by itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::smtp_sink::free_port;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "faults-postgres-ingest-secret";

/// A PostgreSQL cluster of this test's own, in a temp directory.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn pg(&self, tool: &str) -> Command {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        cmd.arg("-D").arg(self.dir.path().join("data"));
        cmd
    }

    fn init() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries in /usr/lib/postgresql (apt install postgresql)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").is_file())
            .max()
            .expect("a PostgreSQL version with pg_ctl");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
        };
        run(cluster
            .pg("initdb")
            .args(["-U", "postgres", "--auth=trust"])
            .stdout(std::process::Stdio::null()));
        cluster
    }

    fn start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        run(self
            .pg("pg_ctl")
            .args(["-w", "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &opts, "start"])
            .stdout(std::process::Stdio::null()));
    }

    /// As a crash or a failover would: no clean shutdown of the sessions.
    fn stop(&self) {
        run(self
            .pg("pg_ctl")
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null()));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg("pg_ctl")
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

async fn ingest(app: &TestApp, token: &Value, event_id: &str) -> reqwest::Response {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
            "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.44", "eventID": event_id
    });
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .expect("the server answers while the database is gone")
}

#[tokio::test]
async fn the_server_answers_503_while_postgres_is_down_and_recovers() {
    let cluster = Cluster::init();
    cluster.start();
    let url = cluster.url();
    let app = spawn_app_with(|c: &mut Config| {
        c.database_url = Some(url.clone());
        c.encryption_key = Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
        c.ingest.secret = Some(Secret::new(INGEST));
    })
    .await;
    let token = app.create_token().await;
    for n in 0..5 {
        assert_eq!(
            ingest(&app, &token, &format!("pg-before-{n}"))
                .await
                .status(),
            200
        );
    }

    cluster.stop();
    let mut statuses = Vec::new();
    // Each answer waits out the pool's acquire timeout, so two are enough to see the status.
    for n in 0..2 {
        let resp = ingest(&app, &token, &format!("pg-down-{n}")).await;
        let status = resp.status().as_u16();
        if status == 503 {
            assert!(
                resp.headers().contains_key("retry-after"),
                "503 says when to retry"
            );
        }
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(|s| *s == 503),
        "while the database is gone every answer is 503: {statuses:?}"
    );

    cluster.start();
    let back = Instant::now();
    let mut n = 0;
    wait_for("ingest works again after PostgreSQL is back", WAIT, || {
        n += 1;
        let (app, token) = (&app, &token);
        async move {
            let resp = ingest(app, token, &format!("pg-after-{n}")).await;
            (resp.status() == 200).then_some(())
        }
    })
    .await;
    let recovery = back.elapsed();
    println!(
        "faults: postgres restart: {statuses:?} while down, recovered {recovery:?} after restart"
    );
    let (id, secret) = canarykeys_testkit::id_and_secret(&token);
    let page: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/hits?limit=500"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["total"].as_u64().unwrap() >= 6, "{page}");
    app.stop().await;
    drop(cluster);
}
