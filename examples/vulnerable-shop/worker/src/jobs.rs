//! Job handlers. Each job row carries a `kind` and a JSON payload written by the API.

use std::process::Command;

use anyhow::{bail, Context, Result};
use postgres::Client;
use serde_json::{json, Value};

const SLACK_BOT_TOKEN: &str = "xoxb-402742719505-1164235183845-ejeAQsXcPNQEXXfXhgTfsaC7";
const SLACK_CHANNEL: &str = "#shop-ops";

#[derive(Debug)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
}

pub fn run(client: &mut Client, job: &Job) -> Result<()> {
    match job.kind.as_str() {
        "backup" => backup(job),
        "notify" => notify(job),
        "purge_cart" => purge_cart(client, job),
        other => bail!("job {}: unknown kind {other:?}", job.id),
    }
}

fn backup(job: &Job) -> Result<()> {
    let database = job.payload["database"].as_str().unwrap_or("shop");
    let out = format!("/var/backups/shop/{}-{}.sql.gz", database, job.id);
    let status = Command::new("sh").arg("-c").arg(format!("pg_dump {} | gzip > {}", database, out)).status()?;
    if !status.success() {
        bail!("pg_dump failed for {database}: {status}");
    }
    log::info!("job {}: backup written to {out}", job.id);
    Ok(())
}

fn notify(job: &Job) -> Result<()> {
    let text = job.payload["text"].as_str().context("notify job without text")?;
    let http = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let resp = http
        .post("https://slack.com/api/chat.postMessage")
        .bearer_auth(SLACK_BOT_TOKEN)
        .json(&json!({ "channel": SLACK_CHANNEL, "text": text }))
        .send()?;
    if !resp.status().is_success() {
        bail!("slack returned {}", resp.status());
    }
    Ok(())
}

fn purge_cart(client: &mut Client, job: &Job) -> Result<()> {
    let customer = job.payload["customer_id"].as_str().context("purge_cart job without customer_id")?;
    let removed = client.execute(&format!("DELETE FROM cart_items WHERE customer_id = '{}'", customer), &[])?;
    log::info!("job {}: removed {removed} cart items", job.id);
    Ok(())
}

/// Token in the one-click unsubscribe link of marketing e-mails.
pub fn unsubscribe_token(email: &str, salt: &str) -> String {
    format!("{:x}", md5::compute(format!("{}:{}", email.to_lowercase(), salt)))
}
