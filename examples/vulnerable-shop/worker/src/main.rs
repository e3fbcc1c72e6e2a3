//! shop-worker: polls the `jobs` table and runs queued jobs one at a time.
//!
//! The database connection uses TLS with certificate verification, credentials come from
//! the environment and every query is parameterized.

mod jobs;

use std::env;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use native_tls::TlsConnector;
use postgres::Client;
use postgres_native_tls::MakeTlsConnector;
use sha2::{Digest, Sha256};

const POLL_INTERVAL: Duration = Duration::from_secs(5);
const BATCH_SIZE: i64 = 10;

fn connect() -> Result<Client> {
    let password = env::var("DB_PASSWORD").context("DB_PASSWORD must be set")?;
    let mut config = postgres::Config::new();
    config
        .host(&env::var("DB_HOST").unwrap_or_else(|_| "db.internal".to_string()))
        .user("shop_worker")
        .password(&password)
        .dbname("shop");
    let connector = MakeTlsConnector::new(TlsConnector::new()?);
    Ok(config.connect(connector)?)
}

fn revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn payload_digest(payload: &serde_json::Value) -> String {
    format!("{:x}", Sha256::digest(payload.to_string().as_bytes()))
}

fn heartbeat(http: &reqwest::blocking::Client) {
    if let Ok(url) = env::var("HEARTBEAT_URL") {
        if let Err(err) = http.post(url).timeout(Duration::from_secs(3)).send() {
            log::warn!("heartbeat failed: {err}");
        }
    }
}

fn main() -> Result<()> {
    env_logger::init();
    let mut client = connect()?;
    let http = reqwest::blocking::Client::builder()
        .https_only(true)
        .build()?;
    log::info!("shop-worker {} started", revision());

    loop {
        heartbeat(&http);
        let rows = client.query(
            "SELECT id, kind, payload FROM jobs WHERE status = $1 ORDER BY id LIMIT $2",
            &[&"queued", &BATCH_SIZE],
        )?;
        for row in rows {
            let job = jobs::Job {
                id: row.get(0),
                kind: row.get(1),
                payload: row.get(2),
            };
            let digest = payload_digest(&job.payload);
            let status = match jobs::run(&mut client, &job) {
                Ok(()) => "done",
                Err(err) => {
                    log::error!("job {} ({}) failed: {err:#}", job.id, digest);
                    "failed"
                }
            };
            client.execute(
                "UPDATE jobs SET status = $1, finished_at = now() WHERE id = $2",
                &[&status, &job.id],
            )?;
        }
        thread::sleep(POLL_INTERVAL);
    }
}
