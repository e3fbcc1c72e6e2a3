//! The marketplace over HTTP, on a real server on 127.0.0.1: a publisher publishes, vetting
//! sends an escalation to review, a reviewer approves, a client fetches the signed index
//! and the countersigned package, sends its receipt, and sees the revocation.

mod common;

use common::Server;
use secflow_market::documents::{RATING_TYPE, RECEIPT_TYPE, Rating, Receipt};
use secflow_market::{HostSigned, Index, SignedDocument};
use secflow_trust::{KeyDir, PublicKeyFile};

const MANIFEST: &str = "id = \"data-processor\"\nversion = \"VERSION\"\nkind = \"action\"\nname = \"Data processor\"\ndescription = \"Transforms, filters, aggregates and normalizes lists of numbers.\"\ncategories = [\"data\"]\ntags = [\"numbers\"]\ncomponent = \"plugin.wasm\"\n";

const NETWORK: &str = "\n[[capabilities.network]]\nscheme = \"https\"\nhost = \"api.example.com\"\nport = 443\nreason = \"fetches exchange rates\"\n";

fn package(keys: &KeyDir, version: &str, extra: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        format!("{}{extra}", MANIFEST.replace("VERSION", version)),
    )
    .unwrap();
    std::fs::copy(
        secflow_plugin_artifacts::DATA_PROCESSOR.component,
        dir.path().join("plugin.wasm"),
    )
    .unwrap();
    let bytes = secflow_package::pack_dir(dir.path()).unwrap();
    secflow_trust::add_signature(
        &bytes,
        &keys.signing_key("acme").unwrap(),
        secflow_trust::now(),
        None,
        &Default::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_review_install_count_and_revoke_over_http() {
    let server = Server::start(secflow_server::ServerConfig {
        marketplace: true,
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let admin = server.token("admin").await;
    let reviewer = server.token("reviewer").await;
    let viewer = server.token("viewer").await;
    // The admin grants the namespace and registers the publisher's key; a publisher token
    // may not register keys (a stolen token alone would then be enough to publish).
    let (publisher, _keys_dir, keys) = common::market_publisher(&server, &admin).await;
    let public = keys.generate("acme-laptop").unwrap();
    let response = http
        .post(url("/v1/market/publishers/acme/keys"))
        .bearer_auth(&publisher)
        .json(&serde_json::json!({"public_key": serde_json::to_string(&public).unwrap()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Publish: the first version is approved at once, the second (network access) waits.
    let publish = |bytes: Vec<u8>| {
        http.post(url("/v1/market/packages"))
            .bearer_auth(&publisher)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
    };
    let response = publish(package(&keys, "1.0.0", "")).await.unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["state"], "approved", "{body}");
    let response = publish(package(&keys, "1.1.0", NETWORK)).await.unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["state"], "pending", "{body}");
    assert_eq!(
        body["report"]["escalation"],
        serde_json::json!(["net:https://api.example.com:443"])
    );
    // A package outside the namespace is refused by vetting with the report.
    let outside = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("plugin.toml"),
            MANIFEST
                .replace("VERSION", "1.0.0")
                .replace("data-processor", "secrets-scanner"),
        )
        .unwrap();
        std::fs::copy(
            secflow_plugin_artifacts::DATA_PROCESSOR.component,
            dir.path().join("plugin.wasm"),
        )
        .unwrap();
        secflow_trust::add_signature(
            &secflow_package::pack_dir(dir.path()).unwrap(),
            &keys.signing_key("acme").unwrap(),
            secflow_trust::now(),
            None,
            &Default::default(),
        )
        .unwrap()
    };
    let response = publish(outside).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("{}vetting-refused", secflow_server::TYPE_BASE)
    );
    assert!(
        body["report"]["checks"].as_array().unwrap().len() >= 2,
        "{body}"
    );

    // A viewer may not review (the policy is named); a reviewer approves.
    let review = |token: &str| {
        http.post(url(
            "/v1/market/plugins/data-processor/versions/1.1.0/review",
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"decision": "approve", "reason": "the API is documented"}))
        .send()
    };
    let response = review(&viewer).await.unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["policies"],
        serde_json::json!(["api.viewer-read-only"])
    );
    let queue: serde_json::Value = http
        .get(url("/v1/market/queue"))
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queue.as_array().unwrap().len(), 1);
    let response = review(&reviewer).await.unwrap();
    assert_eq!(response.status(), 200);

    // A client: the pinned key, the signed index, the countersigned package.
    let key: PublicKeyFile = http
        .get(url("/v1/market/key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, verifying) = PublicKeyFile::parse(&serde_json::to_string(&key).unwrap()).unwrap();
    let doc: SignedDocument = http
        .get(url("/v1/market/index"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = secflow_trust::now();
    let index = Index::open(&doc, &[verifying], 1, now, None).unwrap();
    let versions = &index.plugins[0].versions;
    assert_eq!(versions.len(), 2);
    let response = http
        .get(url(
            "/v1/market/plugins/data-processor/versions/1.0.0/package",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(secflow_io::sha256_hex(&bytes), versions[0].file_sha256);

    // Receipts count once per host; a rating needs one.
    let host_key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let receipt = HostSigned::sign(
        &Receipt {
            kind: RECEIPT_TYPE.into(),
            plugin_id: "data-processor".into(),
            version: "1.0.0".into(),
            sha256: versions[0].sha256.clone(),
            issued_at: now,
        },
        &host_key,
    );
    for expected in [201, 200] {
        let response = http
            .post(url("/v1/market/installs"))
            .json(&receipt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let rating = HostSigned::sign(
        &Rating {
            kind: RATING_TYPE.into(),
            plugin_id: "data-processor".into(),
            stars: 1,
            text: "never installed it".into(),
            issued_at: now,
        },
        &stranger,
    );
    let response = http
        .post(url("/v1/market/plugins/data-processor/ratings"))
        .json(&rating)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let page: serde_json::Value = http
        .get(url("/v1/market/plugins/data-processor"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["downloads"]["total"], 1, "{page}");
    assert_eq!(
        page["capabilities"][0]["reason"], "fetches exchange rates",
        "{page}"
    );

    // Revoke: the digest is on the signed list a client imports.
    let response = http
        .post(url(
            "/v1/market/plugins/data-processor/versions/1.0.0/revoke",
        ))
        .bearer_auth(&reviewer)
        .json(&serde_json::json!({"reason": "malware found"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: serde_json::Value = http
        .get(url("/v1/market/revocations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["body"]
            .as_str()
            .unwrap()
            .contains(versions[0].sha256.as_str()),
        "{list}"
    );
    let response = http
        .get(url(
            "/v1/market/plugins/data-processor/versions/1.0.0/package",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Who did what is in the audit log, by token.
    let entries = server
        .host
        .audit_entries(&Default::default())
        .await
        .unwrap();
    let published: Vec<_> = entries
        .iter()
        .filter(|e| e.event.action.as_str() == "market.publish")
        .collect();
    assert_eq!(published.len(), 3);
    assert!(published.iter().all(|e| e.event.actor.starts_with("api:")));
    server.stop().await;
}

/// Anonymous writes are limited per client network before the shared budget: a client
/// flooding receipts gets 429 while another address still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_flooding_anonymous_writes_does_not_starve_another() {
    let server = Server::start(secflow_server::ServerConfig {
        marketplace: true,
        ..Default::default()
    })
    .await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let url = format!("{}/v1/market/installs", server.base);
    let send = |client: &reqwest::Client| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let flooder = from([127, 0, 0, 1]);
    let mut limited = 0;
    for _ in 0..60 {
        let status = send(&flooder).await.unwrap().status();
        if status == 429 {
            limited += 1;
        } else {
            assert_eq!(status, 400, "a malformed receipt");
        }
    }
    assert!(limited >= 20, "only {limited} of 60 were limited");
    let other = from([127, 0, 0, 2]);
    assert_eq!(send(&other).await.unwrap().status(), 400);
}
