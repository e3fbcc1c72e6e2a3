//! The API end to end: a real server on 127.0.0.1 (random port) over a fresh state
//! directory, a real HTTP client, a real signed package, a real scan of the demo uploaded as
//! a .tar.gz.

mod common;

use common::{Server, demo_tar_gz, signed_data_processor};
use std::path::PathBuf;
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn problem(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_run_scan_metrics_audit_and_refusals() {
    let server = Server::start(secflow_server::ServerConfig::default()).await;
    let admin = server.token("admin").await;
    let viewer = server.token("viewer").await;
    let http = client();
    let work = tempfile::tempdir().unwrap();
    let package = signed_data_processor(&server.host, work.path());

    // No token, a bad token: 401 problems.
    let r = http
        .get(format!("{}/v1/plugins", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"secflow\"");
    let (status, body) = problem(r).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("secflow token create"),
        "{body}"
    );
    let r = http
        .get(format!("{}/v1/plugins", server.base))
        .bearer_auth(format!("{admin}0"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 401);

    // A viewer may list, not install: 403 naming the policy.
    let r = http
        .get(format!("{}/v1/plugins?origin=bundled", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "secrets-detector"),
        "{page}"
    );
    let r = http
        .post(format!("{}/v1/plugins?approve=all", server.base))
        .bearer_auth(&viewer)
        .header("content-type", "application/octet-stream")
        .body(package.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["policies"],
        serde_json::json!(["api.viewer-read-only"])
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("api.viewer-read-only"),
        "{body}"
    );

    // The admin installs the signed package and runs it.
    let r = http
        .post(format!("{}/v1/plugins?approve=all", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(package.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{}/v1/plugins/data-processor/run", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"action": "aggregate", "input": {"data": [1, 2, 3], "operation": "sum"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let run: serde_json::Value = r.json().await.unwrap();
    assert_eq!(run["output"], 6, "{run}");
    assert!(
        run["report"]["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{run}"
    );
    // Runs reuse the clearance and the loaded plugin until something they depend on
    // changes: a disable refuses the next run at once, and after the enable it runs again.
    let run_once = |token: String| {
        let (http, base) = (http.clone(), server.base.clone());
        async move {
            http.post(format!("{base}/v1/plugins/data-processor/run"))
                .bearer_auth(token)
                .json(&serde_json::json!({"action": "aggregate", "input": {"data": [1, 2], "operation": "sum"}}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(run_once(admin.clone()).await.status(), 200);
    let r = http
        .post(format!("{}/v1/plugins/data-processor/disable", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (status, body) = problem(run_once(admin.clone()).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    let r = http
        .post(format!("{}/v1/plugins/data-processor/enable", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(run_once(admin.clone()).await.status(), 200);
    // Trust changed elsewhere (the CLI, another process): the next run sees it.
    server
        .host
        .change_trust(secflow_host::TrustChange::Remove {
            key: "publisher".into(),
        })
        .await
        .unwrap();
    let (status, body) = problem(run_once(admin.clone()).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer trusted"),
        "{body}"
    );
    server
        .host
        .change_trust(secflow_host::TrustChange::Add {
            key: "publisher".into(),
            role: secflow_host::types::Role::Publisher,
            scopes: vec!["*".into()],
        })
        .await
        .unwrap();
    assert_eq!(run_once(admin.clone()).await.status(), 200);
    let r = http
        .get(format!("{}/v1/plugins/data-processor", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["plugin"]["id"], "data-processor");
    assert_eq!(info["stats"]["executions"].as_u64(), Some(4), "{info}");
    // A revocation signed elsewhere (the server holds no revocation key), imported over
    // the API: the publisher's key is revoked and the next run refused.
    let offline_home = tempfile::tempdir().unwrap();
    let offline = secflow_host::Host::open(secflow_host::HostConfig {
        state_dir: secflow_host::StateDir::resolve(Some(offline_home.path())),
        actor: "offline".into(),
    });
    let revoker = offline.generate_key("revoker").unwrap();
    offline
        .change_trust(secflow_host::TrustChange::Add {
            key: "revoker".into(),
            role: secflow_host::types::Role::RevocationAuthority,
            scopes: vec!["*".into()],
        })
        .await
        .unwrap();
    let r = http
        .post(format!("{}/v1/trust/keys", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "public_key": serde_json::to_string(&revoker).unwrap(),
            "role": "revocation",
            "scopes": ["*"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let publisher = server.host.public_key("publisher").unwrap();
    let list = offline_home.path().join("revoked.json");
    offline
        .change_trust(secflow_host::TrustChange::Revoke {
            item: publisher.key_id.clone(),
            sign_with: "revoker".into(),
            // Every signature it ever made, not only those from now on.
            from: Some(0),
            reason: "key compromised".into(),
            output: Some(list.clone()),
        })
        .await
        .unwrap();
    let signed: serde_json::Value = serde_json::from_slice(&std::fs::read(&list).unwrap()).unwrap();
    // A viewer may not; a forged signature is refused; the real list is imported.
    let import = |token: String, body: serde_json::Value| {
        let (http, base) = (http.clone(), server.base.clone());
        async move {
            http.post(format!("{base}/v1/trust/lists"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(import(viewer.clone(), signed.clone()).await.status(), 403);
    let mut forged = signed.clone();
    forged["body"] = forged["body"]
        .as_str()
        .unwrap()
        .replace("key compromised", "key compromisee")
        .into();
    let (status, body) = problem(import(admin.clone(), forged).await).await;
    assert_eq!(status, 403, "{body}");
    let r = import(admin.clone(), signed).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (status, body) = problem(run_once(admin.clone()).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer trusted"),
        "{body}"
    );

    // Bad requests: bad JSON, unknown fields, wrong content type, a traversal id.
    let run_url = format!("{}/v1/plugins/data-processor/run", server.base);
    let r = http
        .post(&run_url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    let r = http
        .post(&run_url)
        .bearer_auth(&admin)
        .json(&serde_json::json!({"acton": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("acton"), "{body}");
    let r = http
        .post(&run_url)
        .bearer_auth(&admin)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 415);
    let r = http
        .get(format!("{}/v1/plugins/..%2F..%2Fetc", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    let r = http
        .get(format!("{}/v1/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 404);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = http
        .post(&run_url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    let huge = vec![b' '; 2 << 20];
    let r = http
        .post(&run_url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 413);

    // A scan of the demo uploaded as a .tar.gz, then its SARIF.
    let r = http
        .post(format!("{}/v1/scans", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/gzip")
        .body(demo_tar_gz())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: serde_json::Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let mut state = String::new();
    for _ in 0..600 {
        let r = http
            .get(format!("{}/v1/scans/{id}", server.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        let job: serde_json::Value = r.json().await.unwrap();
        state = job["state"].as_str().unwrap().to_string();
        if state != "queued" && state != "running" {
            assert!(job["summary"]["findings"].as_u64().unwrap() > 20, "{job}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "done");
    let r = http
        .get(format!("{}/v1/scans/{id}/report?format=sarif", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/sarif+json");
    let sarif: serde_json::Value = r.json().await.unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["runs"][0]["results"].as_array().unwrap().len() > 20);
    // Cancelling a finished job changes nothing; deleting it removes the job and its
    // reports (a viewer may not); afterwards it is a 404 everywhere.
    let r = http
        .post(format!("{}/v1/scans/{id}/cancel", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["state"],
        "done"
    );
    let r = http
        .delete(format!("{}/v1/scans/{id}", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 403);
    let r = http
        .delete(format!("{}/v1/scans/{id}", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in [
        format!("/v1/scans/{id}"),
        format!("/v1/scans/{id}/report?format=sarif"),
    ] {
        let r = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r).await.0, 404, "{path}");
    }

    // A hostile archive is refused, naming the entry.
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_cksum();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.append(&header, &b"x"[..]).unwrap();
    let evil = builder.into_inner().unwrap().finish().unwrap();
    let r = http
        .post(format!("{}/v1/scans", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/gzip")
        .body(evil)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("../escape"),
        "{body}"
    );

    // Trust over the API: an operator may read the store but not change it; the admin trusts
    // a second key from its public key file's text, then removes it.
    server.host.generate_key("second").unwrap();
    let public = serde_json::to_string(&server.host.public_key("second").unwrap()).unwrap();
    let add = serde_json::json!({"public_key": public, "role": "publisher", "scopes": ["acme-*"]});
    let operator = server.token("operator").await;
    let r = http
        .post(format!("{}/v1/trust/keys", server.base))
        .bearer_auth(&operator)
        .json(&add)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 403);
    let r = http
        .post(format!("{}/v1/trust/keys", server.base))
        .bearer_auth(&admin)
        .json(&add)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = http
        .get(format!("{}/v1/trust", server.base))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    let store: serde_json::Value = r.json().await.unwrap();
    let key = store["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scopes"] == serde_json::json!(["acme-*"]))
        .expect("the key is trusted");
    let key_id = key["key_id"].as_str().unwrap();
    let r = http
        .delete(format!("{}/v1/trust/keys/{key_id}", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/v1/trust/keys", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"public_key": "not a key", "role": "publisher", "scopes": ["*"]}))
        .send()
        .await
        .unwrap();
    assert!(problem(r).await.0 >= 400);

    // Metrics and the audit log.
    let r = http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let metrics = r.text().await.unwrap();
    for needle in [
        "secflow_http_requests_total{route=\"/v1/plugins/{id}/run\",method=\"POST\",status=\"200\"}",
        "secflow_plugin_invocations_total{plugin=\"data-processor\",outcome=\"ok\"} 4",
        "secflow_denials_total{kind=\"policy\"}",
        "secflow_denials_total{kind=\"unauthenticated\"}",
        "secflow_scans_total{kind=\"done\"} 1",
        "secflow_scan_queue_depth",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    let r = http
        .post(format!("{}/v1/audit/verify", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let verified: serde_json::Value = r.json().await.unwrap();
    assert_eq!(verified["intact"], true, "{verified}");
    let r = http
        .get(format!("{}/v1/audit/events?limit=1000", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = r.json().await.unwrap();
    let denial = events
        .iter()
        .find(|e| e["action"] == "api.deny" && e["details"]["route_action"] == "plugins.install")
        .expect("the viewer's refusal is audited");
    assert!(
        denial["actor"].as_str().unwrap().starts_with("api:"),
        "{denial}"
    );
    assert!(events.iter().any(|e| e["action"] == "plugin.install"));
    assert!(events.iter().any(|e| e["action"] == "scan.run"));
    // Queuing a scan is a mutating call: audited with the token and the job.
    let submitted = events
        .iter()
        .find(|e| e["action"] == "scan.submit" && e["details"]["job"] == id.as_str())
        .expect("the scan submission is audited");
    assert!(
        submitted["actor"].as_str().unwrap().starts_with("api:"),
        "{submitted}"
    );
    for (action, state) in [("scan.cancel", "done"), ("scan.delete", "done")] {
        let event = events
            .iter()
            .find(|e| e["action"] == action && e["details"]["job"] == id.as_str())
            .unwrap_or_else(|| panic!("{action} is audited"));
        assert_eq!(event["details"]["state"], state, "{event}");
    }
    // Several runs of one plugin: each run is an invoke event naming the policies that
    // cleared it; the clearance (its decision) and the load are recorded when made.
    let invokes: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "plugin.invoke" && e["plugin"]["id"] == "data-processor")
        .collect();
    assert!(invokes.len() >= 2, "{invokes:?}");
    assert!(
        invokes.iter().all(|e| e["details"]["cleared_by"]
            .as_array()
            .is_some_and(|p| !p.is_empty())),
        "{invokes:?}"
    );
    // Following the log: what is there, as server-sent events, until `seconds` ends it.
    let r = http
        .get(format!(
            "{}/v1/audit/events/stream?after=0&seconds=1",
            server.base
        ))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let stream = r.text().await.unwrap();
    assert!(stream.contains("event: audit\nid: 1\ndata: {"), "{stream}");
    assert!(
        stream.matches("event: audit").count() >= events.len(),
        "every entry"
    );
    // No token secret anywhere in the log.
    let secret = admin.rsplit('_').next().unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains(secret));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_refused_and_roles_are_enforced() {
    let server = Server::start(secflow_server::ServerConfig::default()).await;
    let http = client();
    let operator = server.token("operator").await;
    let expired = server
        .host
        .create_token("old", "admin", Some(Duration::from_secs(0)))
        .await
        .unwrap()
        .token;
    let url = format!("{}/v1/stats", server.base);
    assert_eq!(
        http.get(&url)
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, body) = problem(http.get(&url).bearer_auth(&expired).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // Operators may not manage tokens.
    let r = http
        .get(format!("{}/v1/tokens", server.base))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["policies"],
        serde_json::json!(["api.administer-admin-only"])
    );
    let id = operator.split('_').nth(1).unwrap().to_string();
    server.host.revoke_token(&id).await.unwrap();
    let (status, body) = problem(http.get(&url).bearer_auth(&operator).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    server.stop().await;
}

/// Every route of the OpenAPI document × every role × no token, an expired and a revoked
/// token: 401 without a valid token; 403 `forbidden` exactly where the API policies' table in
/// docs/api.md says the role may not; never 401/403-forbidden where it may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_of_every_route_and_role() {
    let server = Server::start(secflow_server::ServerConfig {
        rate_limit: 0,
        marketplace: true,
        ..Default::default()
    })
    .await;
    let http = client();
    // The route actions each role may do (docs/api.md).
    let read = [
        "plugins_list",
        "plugins_get",
        "plugins_permissions",
        "scans_list",
        "scans_get",
        "scans_report",
        "audit_events",
        "audit_follow",
        "audit_stats",
        "ops_metrics",
        "trust_list",
        "policy_check",
    ];
    let write_execute = [
        "plugins_validate",
        "plugins_install",
        "plugins_uninstall",
        "plugins_enable",
        "plugins_disable",
        "plugins_run",
        "scans_submit",
        "scans_cancel",
        "scans_delete",
        "audit_verify",
        "policy_explain",
    ];
    let admin_only = [
        "audit_checkpoint",
        "tokens_create",
        "tokens_list",
        "tokens_revoke",
        "trust_add",
        "trust_remove",
        "trust_import",
        "market_publishers",
        "market_grant",
        "market_publisher_key",
        "security_overview",
    ];
    let publish = ["market_publish", "market_yank"];
    let review = [
        "market_queue",
        "market_upload",
        "market_review",
        "market_revoke",
        "market_moderate",
    ];
    let public = [
        "ops_livez",
        "ops_readyz",
        "ops_version",
        "ops_openapi",
        "market_key",
        "market_index",
        "market_revocations",
        "market_search",
        "market_plugin",
        "market_package",
        "market_install",
        "market_rate",
    ];
    let may = |role: &str, op: &str| -> bool {
        match role {
            "admin" => true,
            "operator" => read.contains(&op) || write_execute.contains(&op),
            "publisher" => {
                read.contains(&op)
                    || publish.contains(&op)
                    || ["plugins_validate", "plugins_install"].contains(&op)
            }
            "reviewer" => read.contains(&op) || review.contains(&op),
            "viewer" => read.contains(&op),
            _ => false,
        }
    };
    let mut tokens: Vec<(String, Option<String>)> = Vec::new();
    for role in ["admin", "operator", "publisher", "reviewer", "viewer"] {
        tokens.push((role.to_string(), Some(server.token(role).await)));
    }
    let expired = server
        .host
        .create_token("expired", "admin", Some(Duration::from_secs(0)))
        .await
        .unwrap()
        .token;
    let revoked = server
        .host
        .create_token("revoked", "admin", None)
        .await
        .unwrap();
    server.host.revoke_token(&revoked.info.id).await.unwrap();
    tokens.push(("none".into(), None));
    tokens.push(("expired".into(), Some(expired)));
    tokens.push(("revoked".into(), Some(revoked.token)));

    let doc: serde_json::Value = serde_json::to_value(secflow_server::openapi::document()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(
                read.contains(&id)
                    || write_execute.contains(&id)
                    || admin_only.contains(&id)
                    || publish.contains(&id)
                    || review.contains(&id)
                    || public.contains(&id),
                "{id} ({method} {path}) is in no row of the matrix: add it"
            );
            let url = format!(
                "{}{}",
                server.base,
                path.replace("/v1/plugins/{id}", "/v1/plugins/data-processor")
                    .replace("/v1/scans/{id}", "/v1/scans/scan_0000000000000000")
                    .replace("/v1/tokens/{id}", "/v1/tokens/000000000000")
                    .replace(
                        "/v1/trust/keys/{id}",
                        "/v1/trust/keys/00000000000000000000000000000000",
                    )
                    .replace("{id}", "data-processor")
                    .replace("{version}", "1.0.0")
                    .replace("{host}", "00000000000000000000000000000000")
            );
            // A stream ends when its `seconds` do.
            let url = if id == "audit_follow" {
                format!("{url}?seconds=1")
            } else {
                url
            };
            let json_body = op["requestBody"]["content"]
                .get("application/json")
                .is_some()
                && op["requestBody"]["content"]
                    .get("application/gzip")
                    .is_none();
            for (who, token) in &tokens {
                let mut request = http.request(method.to_uppercase().parse().unwrap(), &url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if op.get("requestBody").is_some() {
                    request = if json_body {
                        request
                            .header("content-type", "application/json")
                            .body("{}")
                    } else {
                        request
                            .header("content-type", "application/octet-stream")
                            .body("")
                    };
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let forbidden = status == 403
                    && body["type"] == format!("{}forbidden", secflow_server::TYPE_BASE);
                let context = format!("{who} {method} {path} -> {status} {body}");
                if public.contains(&id) {
                    assert!(status != 401 && !forbidden, "{context}");
                } else if ["none", "expired", "revoked"].contains(&who.as_str()) {
                    assert_eq!(status, 401, "{context}");
                } else if may(who, id) {
                    assert!(status != 401 && !forbidden, "{context}");
                } else {
                    assert!(forbidden, "{context}");
                    assert!(
                        body["policies"].as_array().is_some_and(|p| !p.is_empty()),
                        "{context}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 24 * 7, "{checked}");
    server.stop().await;
}

/// A slow body (slowloris) gets a timeout problem instead of holding a worker forever, and
/// thousands of connections opened and dropped at once leave the server answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out_and_connection_floods_pass() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(secflow_server::ServerConfig {
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let admin = server.token("admin").await;
    let address = server.base.trim_start_matches("http://").to_string();

    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/plugins/data-processor/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"action\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer
                        .windows(4)
                        .any(|w| w == b"}\r\n\r" || w == b"\"}\n\n")
                        || answer.ends_with(b"}")
                    {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept a slow body open past its deadline"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("problems/timeout"), "{text}");

    // 5,000 connections (each end is a descriptor in this one process), opened and dropped.
    let mut open = Vec::new();
    for _ in 0..5000 {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(stream) => open.push(stream),
            Err(e) => panic!("connect failed after {} connections: {e}", open.len()),
        }
    }
    drop(open);
    let r = client()
        .get(format!("{}/livez", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

/// A run cut off by the request deadline still runs to its end inside the host: the plugin
/// is stopped by its own limit, and the run and its violation are in the audit log and the
/// statistics (dropping the request must not drop the record of what the plugin did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_by_the_request_deadline_is_still_recorded() {
    let server = Server::start(secflow_server::ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let admin = server.token("admin").await;
    let http = client();
    let work = tempfile::tempdir().unwrap();
    let package = common::signed_plugin(
        &server.host,
        work.path(),
        &secflow_plugin_artifacts::TEST_HOSTILE,
        None,
    );
    let r = http
        .post(format!("{}/v1/plugins?approve=all", server.base))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(package)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The plugin loops until its 1 s time limit; the request gives up after 300 ms.
    let r = http
        .post(format!("{}/v1/plugins/test-hostile/run", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"action": "loop"}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(r).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/timeout"),
        "{body}"
    );

    let mut recorded = None;
    for _ in 0..50 {
        let events: Vec<serde_json::Value> = http
            .get(format!(
                "{}/v1/audit/events?plugin=test-hostile&limit=100",
                server.base
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(violation) = events
            .iter()
            .find(|e| e["action"] == "sandbox.violation")
            .cloned()
        {
            assert!(
                events
                    .iter()
                    .any(|e| e["action"] == "plugin.invoke" && e["decision"] == "error"),
                "{events:?}"
            );
            recorded = Some(violation);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let violation = recorded.expect("the cut-off run's violation is audited");
    assert_eq!(violation["decision"], "timeout", "{violation}");
    let info: serde_json::Value = http
        .get(format!("{}/v1/plugins/test-hostile", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["stats"]["executions"], 1, "{info}");
    assert_eq!(info["stats"]["violations"], 1, "{info}");
    server.stop().await;
}

/// A scan of a server-side path: only under an allow-listed root, after resolving `..` and
/// symlinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_scans_stay_under_the_allowed_roots() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let server = Server::start(secflow_server::ServerConfig {
        scan_roots: vec![examples.clone()],
        ..Default::default()
    })
    .await;
    let admin = server.token("admin").await;
    let http = client();
    let submit = |path: String| {
        http.post(format!("{}/v1/scans", server.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "path": path }))
            .send()
    };
    let r = submit(examples.join("vulnerable-shop").display().to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    for outside in [
        "/etc".to_string(),
        examples.join("../crates").display().to_string(),
    ] {
        let (status, body) = problem(submit(outside.clone()).await.unwrap()).await;
        assert_eq!(status, 403, "{outside}: {body}");
        assert_eq!(
            body["type"],
            format!("{}path-not-allowed", secflow_server::TYPE_BASE)
        );
    }
    server.stop().await;
}
