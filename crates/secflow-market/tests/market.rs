//! The marketplace end to end on real packages: real components, real keys and signatures,
//! the real sandbox for the health check, a real SQLite database.

use secflow_host::{Host, HostConfig, StateDir};
use secflow_market::documents::{RATING_TYPE, RECEIPT_TYPE, Rating, Receipt};
use secflow_market::{HostSigned, Index, Market, MarketConfig, MarketError, Query, State};
use secflow_trust::{KeyDir, Role, TrustStore};

const DATA_PROCESSOR: &str = "id = \"data-processor\"\nversion = \"VERSION\"\nkind = \"action\"\nname = \"Data processor\"\ndescription = \"Transforms, filters, aggregates and normalizes lists of numbers.\"\ncategories = [\"data\"]\ntags = [\"numbers\"]\ncomponent = \"plugin.wasm\"\n";

const NETWORK: &str = "\n[[capabilities.network]]\nscheme = \"https\"\nhost = \"api.example.com\"\nport = 443\nreason = \"fetches exchange rates to normalize amounts\"\n";

struct Env {
    _dir: tempfile::TempDir,
    host: Host,
    market: Market,
    /// The publisher's own keys, on its own machine.
    keys: KeyDir,
    work: std::path::PathBuf,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(&dir.path().join("server"))),
        actor: "test".into(),
    });
    let market = Market::open(host.clone(), MarketConfig::of(&host))
        .await
        .unwrap();
    let keys = KeyDir::new(dir.path().join("publisher-keys"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    Env {
        host,
        market,
        keys,
        work,
        _dir: dir,
    }
}

impl Env {
    /// A publisher with a namespace and a registered key of the same name.
    async fn publisher(&self, name: &str, namespace: &str) {
        self.market
            .grant_namespaces(name, &[namespace.to_string()], "admin")
            .await
            .unwrap();
        let public = self.keys.generate(name).unwrap();
        self.market
            .add_publisher_key(name, &serde_json::to_string(&public).unwrap(), "admin")
            .await
            .unwrap();
    }

    /// `manifest` with the data processor's component (and extra files), packed and signed
    /// by `key` (unsigned when `None`).
    fn package(&self, manifest: &str, key: Option<&str>, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let dir = tempfile::tempdir_in(&self.work).unwrap();
        std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
        std::fs::copy(
            secflow_plugin_artifacts::DATA_PROCESSOR.component,
            dir.path().join("plugin.wasm"),
        )
        .unwrap();
        for (name, bytes) in extra {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let bytes = secflow_package::pack_dir(dir.path()).unwrap();
        match key {
            None => bytes,
            Some(key) => secflow_trust::add_signature(
                &bytes,
                &self.keys.signing_key(key).unwrap(),
                secflow_trust::now(),
                None,
                &Default::default(),
            )
            .unwrap(),
        }
    }

    fn version(&self, version: &str, extra_manifest: &str) -> Vec<u8> {
        self.package(
            &format!(
                "{}{extra_manifest}",
                DATA_PROCESSOR.replace("VERSION", version)
            ),
            Some("acme"),
            &[],
        )
    }
}

fn refused_check(result: Result<secflow_market::Published, MarketError>) -> (String, String) {
    match result {
        Err(MarketError::Refused { report, message }) => {
            let failed = report.failure().expect("a failed check");
            (failed.name.clone(), message)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What a client does with a downloaded package: trust the pinned marketplace key (and
/// nothing else) and verify.
fn client_verifies(market: &Market, bytes: &[u8], store: &mut TrustStore) -> Vec<String> {
    if store.keys.is_empty() {
        store
            .add_key(market.public_key(), Role::Marketplace, vec!["*".into()], 0)
            .unwrap();
    }
    let v = secflow_trust::verify(
        bytes,
        store,
        secflow_trust::now(),
        &Default::default(),
        Default::default(),
    )
    .unwrap();
    v.refusals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_vet_review_countersign_yank_revoke_and_count() {
    let e = env().await;
    e.publisher("acme", "data").await;

    // A clean first version: every check passes and the policies approve it at once; the
    // file served carries the marketplace's countersignature.
    let v1 = e.version("1.0.0", "");
    let published = e.market.publish("acme", &v1, "api:pub").await.unwrap();
    assert_eq!(published.state, State::Approved, "{:#?}", published.report);
    let names: Vec<&str> = published
        .report
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "signature",
            "namespace",
            "manifest",
            "component",
            "capability-diff",
            "secrets",
            "health",
            "name-similarity"
        ]
    );
    assert!(published.report.health.as_ref().unwrap().ok);
    assert_eq!(
        published.report.decision.as_ref().unwrap().policies,
        ["market.auto-approve"]
    );
    let (_, served_v1) = e.market.package("data-processor", "1.0.0").await.unwrap();
    let mut client = TrustStore::default();
    assert!(client_verifies(&e.market, &served_v1, &mut client).is_empty());
    // The upload alone (publisher signature only) is not trusted by a client that pins
    // only the marketplace.
    assert!(!client_verifies(&e.market, &v1, &mut client).is_empty());

    // Publishing the same bytes again changes nothing; other bytes under the same version
    // are refused: versions are immutable.
    let again = e.market.publish("acme", &v1, "api:pub").await.unwrap();
    assert!(again.unchanged);
    assert_eq!(again.state, State::Approved);
    assert_eq!(again.report.checks.len(), 8, "the stored report");
    let other = e.version("1.0.0", "license = \"MIT\"\n");
    assert!(matches!(
        e.market.publish("acme", &other, "api:pub").await,
        Err(MarketError::Conflict(m)) if m.contains("immutable")
    ));

    // The second version asks for the network: vetting flags the escalation and the
    // policies send it to review, naming why.
    let v2 = e.version("1.1.0", NETWORK);
    let published = e.market.publish("acme", &v2, "api:pub").await.unwrap();
    assert_eq!(published.state, State::Pending);
    assert_eq!(published.report.previous_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        published.report.escalation,
        ["net:https://api.example.com:443"]
    );
    let decision = published.report.decision.unwrap();
    assert!(!decision.auto_approved);
    assert_eq!(
        decision.policies,
        [
            "market.escalation-needs-review",
            "market.powerful-capabilities-need-review"
        ]
    );
    assert!(matches!(
        e.market.package("data-processor", "1.1.0").await,
        Err(MarketError::NotFound(_))
    ));
    // A later version asking for the same is compared with what was approved (1.0.0),
    // not with the pending 1.1.0: it cannot slip past review.
    let v3 = e.version("1.2.0", NETWORK);
    let published = e.market.publish("acme", &v3, "api:pub").await.unwrap();
    assert_eq!(published.state, State::Pending);
    assert_eq!(published.report.previous_version.as_deref(), Some("1.0.0"));
    assert!(!published.report.escalation.is_empty());
    e.market
        .review(
            "data-processor",
            "1.2.0",
            false,
            "one network version at a time",
            "api:reviewer",
        )
        .await
        .unwrap();
    let queue = e.market.queue().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].version.version, "1.1.0");

    // The index lists only what is approved; approving signs a new, higher version.
    let trusted = [ed25519_dalek::VerifyingKey::from_bytes(
        &hex::decode(&e.market.public_key().public)
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap()];
    let now = secflow_trust::now();
    let before = Index::open(&e.market.index().await.unwrap(), &trusted, 1, now, None).unwrap();
    assert_eq!(before.plugins.len(), 1);
    assert_eq!(before.plugins[0].versions.len(), 1);
    // Asked again without a change: the same document.
    assert_eq!(
        e.market.index().await.unwrap(),
        e.market.index().await.unwrap()
    );
    assert!(matches!(
        e.market
            .review("data-processor", "1.1.0", true, " ", "reviewer")
            .await,
        Err(MarketError::Invalid(_))
    ));
    let approved = e
        .market
        .review(
            "data-processor",
            "1.1.0",
            true,
            "the rates API is documented and https only",
            "api:reviewer",
        )
        .await
        .unwrap();
    assert_eq!(approved.state, State::Approved);
    assert!(matches!(
        e.market
            .review("data-processor", "1.1.0", false, "no", "reviewer")
            .await,
        Err(MarketError::Conflict(_))
    ));
    let old_doc = e.market.index().await.unwrap();
    let after = Index::open(&old_doc, &trusted, 1, now, Some(before.version)).unwrap();
    assert!(after.version > before.version);
    assert_eq!(after.plugins[0].versions.len(), 2);
    assert_eq!(
        after.plugins[0].versions[1].capabilities,
        ["net:https://api.example.com:443"]
    );
    let (_, served) = e.market.package("data-processor", "1.1.0").await.unwrap();
    assert!(client_verifies(&e.market, &served, &mut client).is_empty());

    // Yank: still listed (flagged), still served by exact version.
    e.market
        .yank(
            "data-processor",
            "1.1.0",
            true,
            "broken on arm64",
            Some("acme"),
            "api:pub",
        )
        .await
        .unwrap();
    let yanked = Index::open(
        &e.market.index().await.unwrap(),
        &trusted,
        1,
        now,
        Some(after.version),
    )
    .unwrap();
    assert!(yanked.plugins[0].versions[1].yanked);
    assert!(e.market.package("data-processor", "1.1.0").await.is_ok());
    // Another publisher cannot yank it.
    e.publisher("other", "other").await;
    assert!(matches!(
        e.market
            .yank(
                "data-processor",
                "1.0.0",
                true,
                "x",
                Some("other"),
                "api:other"
            )
            .await,
        Err(MarketError::Forbidden(_))
    ));
    // A replayed older index is refused by a client that saw a newer one.
    assert!(matches!(
        Index::open(&old_doc, &trusted, 1, now, Some(yanked.version)),
        Err(secflow_market::documents::DocumentError::Rollback { .. })
    ));

    // Receipts: one count per host and version, however often it installs.
    let host_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let receipt = |version: &str, sha: &str| {
        HostSigned::sign(
            &Receipt {
                kind: RECEIPT_TYPE.into(),
                plugin_id: "data-processor".into(),
                version: version.into(),
                sha256: sha.into(),
                issued_at: now,
            },
            &host_key,
        )
    };
    let v1_sha = e
        .market
        .page("data-processor")
        .await
        .unwrap()
        .versions
        .iter()
        .find(|v| v.version == "1.0.0")
        .unwrap()
        .sha256
        .clone();
    assert!(
        e.market
            .record_install(&receipt("1.0.0", &v1_sha), "anonymous")
            .await
            .unwrap()
    );
    assert!(
        !e.market
            .record_install(&receipt("1.0.0", &v1_sha), "anonymous")
            .await
            .unwrap()
    );
    assert!(matches!(
        e.market
            .record_install(&receipt("1.0.0", &"00".repeat(32)), "anonymous")
            .await,
        Err(MarketError::Invalid(_))
    ));
    let stale = HostSigned::sign(
        &Receipt {
            kind: RECEIPT_TYPE.into(),
            plugin_id: "data-processor".into(),
            version: "1.0.0".into(),
            sha256: v1_sha.clone(),
            issued_at: now - 90 * 86_400,
        },
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    );
    assert!(matches!(
        e.market.record_install(&stale, "anonymous").await,
        Err(MarketError::Invalid(m)) if m.contains("not within")
    ));
    let page = e.market.page("data-processor").await.unwrap();
    assert_eq!(page.downloads.total, 1);
    assert_eq!(page.downloads.last_90_days, 1);
    assert_eq!(page.listing.latest_version, "1.0.0", "1.1.0 is yanked");

    // Ratings only from hosts that sent a receipt.
    let rating = |key: &ed25519_dalek::SigningKey, stars| {
        HostSigned::sign(
            &Rating {
                kind: RATING_TYPE.into(),
                plugin_id: "data-processor".into(),
                stars,
                text: "does what it says".into(),
                issued_at: now,
            },
            key,
        )
    };
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    assert!(matches!(
        e.market.rate("data-processor", &rating(&stranger, 1), "anonymous").await,
        Err(MarketError::Forbidden(m)) if m.contains("no install receipt")
    ));
    e.market
        .rate("data-processor", &rating(&host_key, 4), "anonymous")
        .await
        .unwrap();
    // One per host: a second replaces the first.
    e.market
        .rate("data-processor", &rating(&host_key, 5), "anonymous")
        .await
        .unwrap();
    let page = e.market.page("data-processor").await.unwrap();
    assert_eq!(page.ratings.len(), 1);
    assert_eq!(page.listing.rating, Some(5.0));
    let host_id = page.ratings[0].host_id.clone();
    e.market
        .moderate("data-processor", &host_id, true, "spam", "api:reviewer")
        .await
        .unwrap();
    assert!(
        e.market
            .page("data-processor")
            .await
            .unwrap()
            .ratings
            .is_empty()
    );
    // Posting again does not undo the moderation.
    e.market
        .rate("data-processor", &rating(&host_key, 5), "anonymous")
        .await
        .unwrap();
    let page = e.market.page("data-processor").await.unwrap();
    assert!(page.ratings.is_empty(), "{:?}", page.ratings);

    // Revoke: off the index, not served, and on the signed list a client applies.
    e.market
        .revoke(
            "data-processor",
            "1.0.0",
            "key compromise at the publisher",
            "api:admin",
        )
        .await
        .unwrap();
    assert!(matches!(
        e.market.package("data-processor", "1.0.0").await,
        Err(MarketError::NotFound(m)) if m.contains("revoked")
    ));
    assert!(matches!(
        e.market.record_install(&receipt("1.0.0", &v1_sha), "anonymous").await,
        Err(MarketError::Invalid(m)) if m.contains("revoked")
    ));
    assert!(matches!(
        e.market.publish("acme", &v1, "api:pub").await,
        Err(MarketError::Conflict(m)) if m.contains("revoked")
    ));
    let list = e.market.revocations().await.unwrap();
    assert_eq!(client.import_revocations(&list).unwrap(), 1);
    let refusals = client_verifies(&e.market, &served_v1, &mut client);
    assert!(
        refusals.iter().any(|r| r.contains("revoked")),
        "{refusals:?}"
    );
    let index = Index::open(&e.market.index().await.unwrap(), &trusted, 1, now, None).unwrap();
    assert_eq!(index.plugins[0].versions.len(), 1);
    assert_eq!(index.plugins[0].versions[0].version, "1.1.0");

    // Search and browse.
    let found = e
        .market
        .search(&Query {
            text: Some("numbers".into()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    let none = e
        .market
        .search(&Query {
            kind: Some("detector".into()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    // Every step is in the audit log, and the log verifies.
    let entries = e.host.audit_entries(&Default::default()).await.unwrap();
    for action in [
        "market.publisher",
        "market.publish",
        "market.review",
        "market.yank",
        "market.revoke",
        "market.receipt",
    ] {
        assert!(
            entries.iter().any(|en| en.event.action.as_str() == action),
            "{action} not audited"
        );
    }
    assert!(matches!(
        e.host.audit_verify(None).await.unwrap(),
        secflow_host::Integrity::Intact(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_are_refused_and_recorded() {
    let e = env().await;
    e.publisher("acme", "data").await;
    e.publisher("mallory", "dataa").await;

    // Not a package at all.
    assert!(matches!(
        e.market.publish("acme", b"not a package", "api:pub").await,
        Err(MarketError::Invalid(_))
    ));
    // Unsigned, and signed by a key that is not the publisher's.
    let manifest = DATA_PROCESSOR.replace("VERSION", "1.0.0");
    let unsigned = e.package(&manifest, None, &[]);
    assert_eq!(
        refused_check(e.market.publish("acme", &unsigned, "api:pub").await).0,
        "signature"
    );
    let by_mallory = e.package(&manifest, Some("mallory"), &[]);
    assert_eq!(
        refused_check(e.market.publish("acme", &by_mallory, "api:pub").await).0,
        "signature"
    );
    // Signed by the right publisher but outside its namespaces.
    let outside = e.package(
        &manifest.replace("data-processor", "secrets-detector"),
        Some("acme"),
        &[],
    );
    let (check, message) = refused_check(e.market.publish("acme", &outside, "api:pub").await);
    assert_eq!(check, "namespace");
    assert!(message.contains("outside the namespaces"), "{message}");
    // Mallory's id in acme's namespace.
    let squat = e.package(&manifest, Some("mallory"), &[]);
    let (check, message) = refused_check(e.market.publish("mallory", &squat, "api:m").await);
    assert_eq!(check, "namespace");
    assert!(message.contains("belongs to `acme`"), "{message}");
    // A component that does not implement the kind its manifest declares.
    let wrong_kind = e.package(
        &manifest.replace("\"action\"", "\"detector\""),
        Some("acme"),
        &[],
    );
    assert_eq!(
        refused_check(e.market.publish("acme", &wrong_kind, "api:pub").await).0,
        "component"
    );
    // A publisher that does not exist.
    assert!(matches!(
        e.market.publish("nobody", &unsigned, "api:x").await,
        Err(MarketError::Forbidden(_))
    ));

    // Kept but sent to review: a look-alike id of another publisher, and a secret in the
    // package.
    e.market
        .publish("acme", &e.version("1.0.0", ""), "api:pub")
        .await
        .unwrap();
    let lookalike = e.package(
        &manifest.replace("data-processor", "dataa-processor"),
        Some("mallory"),
        &[],
    );
    let published = e
        .market
        .publish("mallory", &lookalike, "api:m")
        .await
        .unwrap();
    assert_eq!(published.state, State::Pending);
    assert_eq!(published.report.similar_ids, ["data-processor"]);
    assert_eq!(
        published.report.decision.unwrap().policies,
        ["market.typosquat-needs-review"]
    );
    let token: String = "ghp_"
        .chars()
        .chain("R8x2Lq9ZtW4mN7vB1cK5pY3sD6fH0jG2aE8u".chars())
        .collect();
    let leaky = e.package(
        &DATA_PROCESSOR.replace("VERSION", "1.0.1"),
        Some("acme"),
        &[(
            "assets/config.env",
            format!("GITHUB_TOKEN={token}\n").as_bytes(),
        )],
    );
    let published = e.market.publish("acme", &leaky, "api:pub").await.unwrap();
    assert_eq!(published.state, State::Pending);
    assert_eq!(published.report.secrets.len(), 1);
    assert!(!published.report.secrets[0].snippet.contains(&token[4..]));
    assert_eq!(
        published.report.decision.unwrap().policies,
        ["market.secrets-need-review"]
    );

    let entries = e.host.audit_entries(&Default::default()).await.unwrap();
    let refused = entries
        .iter()
        .filter(|en| {
            en.event.action.as_str() == "market.publish"
                && en.event.decision.as_deref() == Some("refused")
        })
        .count();
    assert_eq!(refused, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_have_one_owner() {
    let e = env().await;
    e.publisher("acme", "acme").await;
    assert!(matches!(
        e.market.grant_namespaces("other", &["acme".into()], "admin").await,
        Err(MarketError::Conflict(m)) if m.contains("belongs to publisher `acme`")
    ));
    for bad in ["", "-x", "Acme", "a/b", "../x"] {
        assert!(
            matches!(
                e.market
                    .grant_namespaces("other", &[bad.into()], "admin")
                    .await,
                Err(MarketError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    // A namespace carved out later cannot take over ids someone already published.
    let manifest = DATA_PROCESSOR
        .replace("VERSION", "1.0.0")
        .replace("data-processor", "acme-labs-x");
    let package = e.package(&manifest, Some("acme"), &[]);
    e.market.publish("acme", &package, "api:pub").await.unwrap();
    assert!(matches!(
        e.market.grant_namespaces("other", &["acme-labs".into()], "admin").await,
        Err(MarketError::Conflict(m)) if m.contains("already published")
    ));
    // A key registered to one publisher cannot be claimed by another.
    let public = e.keys.public("acme").unwrap();
    e.market
        .grant_namespaces("other", &["other".into()], "admin")
        .await
        .unwrap();
    assert!(matches!(
        e.market
            .add_publisher_key("other", &serde_json::to_string(&public).unwrap(), "admin")
            .await,
        Err(MarketError::Conflict(_))
    ));
    assert!(matches!(
        e.market.add_publisher_key("other", "{}", "admin").await,
        Err(MarketError::Invalid(_))
    ));
}
