//! A client host against a real marketplace server on 127.0.0.1, against an evil mirror
//! that replays an old index and serves tampered bytes, and through an air-gapped mirror
//! directory.

use secflow_host::{Answer, ApprovalRequest, Approver, Host, HostConfig, InstallMode, StateDir};
use secflow_market::Market;
use secflow_market_client::{Client, ClientError};
use std::time::Duration;

struct Yes;

impl Approver for Yes {
    fn standing(&self) -> Option<String> {
        Some("--yes".into())
    }
    fn ask(&self, _: &ApprovalRequest<'_>) -> Answer {
        Answer::Approved {
            via: "--yes".into(),
        }
    }
}

fn host(dir: &std::path::Path) -> Host {
    Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(dir)),
        actor: "test".into(),
    })
}

/// The marketplace server with `data-processor` 1.0.0 published and approved; returns its
/// base URL, its market, and the stop handle.
async fn server(dir: &std::path::Path) -> (String, Market, tokio::sync::oneshot::Sender<()>) {
    let (base, market, stop, _) = server_with_host(dir).await;
    (base, market, stop)
}

async fn server_with_host(
    dir: &std::path::Path,
) -> (String, Market, tokio::sync::oneshot::Sender<()>, Host) {
    let server_host = host(&dir.join("server"));
    let server_host_copy = server_host.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = secflow_server::AppState::open(
        server_host.acting_as("api:server"),
        secflow_server::ServerConfig {
            marketplace: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let market = state.market.clone().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        secflow_server::serve(
            state,
            listener,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    });
    market
        .grant_namespaces("acme", &["data".into()], "admin")
        .await
        .unwrap();
    let keys = secflow_trust::KeyDir::new(dir.join("publisher-keys"));
    let public = keys.generate("acme").unwrap();
    market
        .add_publisher_key("acme", &serde_json::to_string(&public).unwrap(), "admin")
        .await
        .unwrap();
    let plugin = dir.join("plugin");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(
        std::path::Path::new(secflow_plugin_artifacts::DATA_PROCESSOR.dir).join("plugin.toml"),
        plugin.join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(
        secflow_plugin_artifacts::DATA_PROCESSOR.component,
        plugin.join("plugin.wasm"),
    )
    .unwrap();
    let signed = secflow_trust::add_signature(
        &secflow_package::pack_dir(&plugin).unwrap(),
        &keys.signing_key("acme").unwrap(),
        secflow_trust::now(),
        None,
        &Default::default(),
    )
    .unwrap();
    let published = market.publish("acme", &signed, "api:acme").await.unwrap();
    assert_eq!(published.state, secflow_market::State::Approved);
    (base, market, stop, server_host_copy)
}

/// A mirror that serves a fixed (old) index and tampered package bytes.
async fn evil_mirror(old_index: String, tampered: Vec<u8>) -> String {
    evil_mirror_with(old_index, tampered, String::new()).await
}

/// The same, and `revocations` where the revocation list belongs.
async fn evil_mirror_with(old_index: String, tampered: Vec<u8>, revocations: String) -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/v1/market/index", get(move || async move { old_index }))
        .route(
            "/v1/market/revocations",
            get(move || async move { revocations }),
        )
        .route(
            "/v1/market/plugins/{id}/versions/{version}/package",
            get(move || async move { tampered }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn point_at(client_home: &std::path::Path, url: &str) {
    let path = client_home.join("marketplaces.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["marketplaces"][0]["url"] = url.into();
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_by_id_count_once_refuse_a_replayed_index_and_apply_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let key_text = serde_json::to_string(market.public_key()).unwrap();

    // A client pins the marketplace and installs by id; the plugin is cleared to run.
    let home = dir.path().join("client");
    let client_host = host(&home);
    let client = Client::new(client_host.clone());
    client.add("main", &base, &key_text).await.unwrap();
    assert!(matches!(
        client.add("main", &base, &key_text).await,
        Err(ClientError::Invalid(_))
    ));
    let old_index = serde_json::to_string(&market.index().await.unwrap()).unwrap();
    let installed = client
        .install(
            "main",
            "data-processor@^0.1",
            InstallMode::Install,
            &[],
            &Yes,
        )
        .await
        .unwrap();
    assert_eq!(installed.version, "0.1.0");
    assert_eq!(installed.receipt, Ok(true));
    let cleared = client_host.clear("data-processor").await.unwrap();
    assert!(
        cleared
            .grant()
            .unwrap()
            .signers
            .contains(&market.public_key().key_id),
        "admitted on the marketplace's countersignature"
    );
    // The same host installing again is not counted again.
    client_host.uninstall("data-processor").await.unwrap();
    let again = client
        .install("main", "data-processor", InstallMode::Install, &[], &Yes)
        .await
        .unwrap();
    assert_eq!(again.receipt, Ok(false));
    assert_eq!(
        market.page("data-processor").await.unwrap().downloads.total,
        1
    );
    assert!(matches!(
        client
            .install("main", "data-processor@^2", InstallMode::Install, &[], &Yes)
            .await,
        Err(ClientError::NotFound(_))
    ));

    // A change on the server signs a newer index; the client sees it, and from then on a
    // mirror replaying the older index is refused, as is a tampered download.
    market
        .yank("data-processor", "0.1.0", true, "testing", None, "admin")
        .await
        .unwrap();
    market
        .yank("data-processor", "0.1.0", false, "testing", None, "admin")
        .await
        .unwrap();
    client.index("main").await.unwrap();
    let (_, good) = market.package("data-processor", "0.1.0").await.unwrap();
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mirror = evil_mirror(old_index, tampered).await;
    point_at(&home, &mirror);
    let err = client.index("main").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("rollback")),
        "{err}"
    );
    point_at(&home, &base);

    // Revoke: the next poll imports the list, quarantines the plugin, and clearance
    // refuses it.
    market
        .revoke("data-processor", "0.1.0", "malware", "admin")
        .await
        .unwrap();
    let synced = client.sync_due(None).await;
    assert_eq!(synced.len(), 1, "never synced, so due");
    let synced = synced.into_iter().next().unwrap().unwrap();
    assert_eq!(synced.quarantined, ["data-processor"]);
    assert!(client_host.clear("data-processor").await.is_err());
    // Polled again within the interval: nothing is fetched.
    assert!(client.sync_due(None).await.is_empty());
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_download_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let key_text = serde_json::to_string(market.public_key()).unwrap();
    let home = dir.path().join("client");
    let client = Client::new(host(&home));
    client.add("main", &base, &key_text).await.unwrap();
    // The mirror serves the current signed index (it cannot forge one) with other bytes.
    let index = serde_json::to_string(&market.index().await.unwrap()).unwrap();
    let (_, good) = market.package("data-processor", "0.1.0").await.unwrap();
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mirror = evil_mirror(index, tampered).await;
    point_at(&home, &mirror);
    let err = client
        .install("main", "data-processor", InstallMode::Install, &[], &Yes)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("does not match the signed index")),
        "{err}"
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_review_from_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop, server_host) = server_with_host(dir.path()).await;
    let publisher = server_host
        .create_token("acme", "publisher", None)
        .await
        .unwrap()
        .token;
    let reviewer = server_host
        .create_token("rev", "reviewer", None)
        .await
        .unwrap()
        .token;
    let client = Client::new(host(&dir.path().join("client")));
    client
        .add(
            "main",
            &base,
            &serde_json::to_string(market.public_key()).unwrap(),
        )
        .await
        .unwrap();
    // A second version asking for the network, signed by the publisher's key.
    let plugin = dir.path().join("plugin");
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    std::fs::write(
        plugin.join("plugin.toml"),
        format!("{manifest}\n[[capabilities.network]]\nscheme = \"https\"\nhost = \"rates.example.com\"\nport = 443\nreason = \"fetches exchange rates\"\n"),
    )
    .unwrap();
    let keys = secflow_trust::KeyDir::new(dir.path().join("publisher-keys"));
    let signed = secflow_trust::add_signature(
        &secflow_package::pack_dir(&plugin).unwrap(),
        &keys.signing_key("acme").unwrap(),
        secflow_trust::now(),
        None,
        &Default::default(),
    )
    .unwrap();
    // The wrong token is refused; the publisher's goes to review.
    assert!(matches!(
        client.publish("main", signed.clone(), &reviewer).await,
        Err(ClientError::Refused(_))
    ));
    let published = client.publish("main", signed, &publisher).await.unwrap();
    assert_eq!(published["state"], "pending", "{published}");
    let queue = client.queue("main", &reviewer).await.unwrap();
    assert_eq!(queue.as_array().unwrap().len(), 1);
    let decided = client
        .review(
            "main",
            "data-processor",
            "0.2.0",
            true,
            "rates API is fine",
            &reviewer,
        )
        .await
        .unwrap();
    assert_eq!(decided["state"], "approved");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_served_as_the_revocation_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let home = dir.path().join("client");
    let client_host = host(&home);
    let client = Client::new(client_host.clone());
    client
        .add(
            "main",
            &base,
            &serde_json::to_string(market.public_key()).unwrap(),
        )
        .await
        .unwrap();
    // Signed by the pinned key itself, but a rotation: it would move the pin elsewhere.
    let server_keys = secflow_trust::KeyDir::new(dir.path().join("server").join("keys"));
    let other = secflow_trust::KeyDir::new(dir.path().join("other-keys"));
    let new_key = other.generate("elsewhere").unwrap();
    let rotation = secflow_trust::lists::sign_rotation(
        &server_keys.signing_key("marketplace").unwrap(),
        &new_key,
        secflow_trust::now(),
    );
    let mirror = evil_mirror_with(
        String::new(),
        Vec::new(),
        serde_json::to_string(&rotation).unwrap(),
    )
    .await;
    point_at(&home, &mirror);
    let err = client.sync("main").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("not a revocation list")),
        "{err}"
    );
    let store = client_host.trust_store().unwrap();
    assert!(store.key(&new_key.key_id).is_none());
    assert!(
        store
            .key(&market.public_key().key_id)
            .unwrap()
            .retired_at
            .is_none()
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketplace_that_is_down_is_polled_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let home = dir.path().join("client");
    let client = Client::new(host(&home));
    client
        .add(
            "main",
            &base,
            &serde_json::to_string(market.public_key()).unwrap(),
        )
        .await
        .unwrap();
    let _ = stop.send(());
    // Nothing listens on port 9 of loopback.
    point_at(&home, "http://127.0.0.1:9");
    let first = client.sync_due(None).await;
    assert_eq!(first.len(), 1);
    assert!(matches!(first[0], Err(ClientError::Unreachable { .. })));
    assert!(
        client.sync_due(None).await.is_empty(),
        "not before the next interval"
    );
    assert_eq!(client.sync_due(Some(Duration::ZERO)).await.len(), 1);
}

/// Packs and signs (as publisher `acme`) the test plugin directory with its manifest
/// changed by `edit`.
fn sign_variant(dir: &std::path::Path, edit: impl FnOnce(String) -> String) -> Vec<u8> {
    let plugin = dir.join("plugin");
    let variant = dir.join(format!("variant-{}", rand_suffix()));
    std::fs::create_dir_all(&variant).unwrap();
    std::fs::copy(plugin.join("plugin.wasm"), variant.join("plugin.wasm")).unwrap();
    let manifest = edit(std::fs::read_to_string(plugin.join("plugin.toml")).unwrap());
    std::fs::write(variant.join("plugin.toml"), manifest).unwrap();
    let keys = secflow_trust::KeyDir::new(dir.join("publisher-keys"));
    secflow_trust::add_signature(
        &secflow_package::pack_dir(&variant).unwrap(),
        &keys.signing_key("acme").unwrap(),
        secflow_trust::now(),
        None,
        &Default::default(),
    )
    .unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `data-report` VERSION, which needs `data-processor ^0.1`.
fn data_report(dir: &std::path::Path, version: &str) -> Vec<u8> {
    sign_variant(dir, |m| {
        format!(
            "{}\n[dependencies]\ndata-processor = \"^0.1\"\n",
            m.replace("id = \"data-processor\"", "id = \"data-report\"")
                .replace("name = \"Data processor\"", "name = \"Data report\"")
                .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_resolved_remotely_and_update_takes_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let published = market
        .publish("acme", &data_report(dir.path(), "0.1.0"), "api:acme")
        .await
        .unwrap();
    assert_eq!(published.state, secflow_market::State::Approved);
    let client_host = host(&dir.path().join("client"));
    let client = Client::new(client_host.clone());
    client
        .add(
            "main",
            &base,
            &serde_json::to_string(market.public_key()).unwrap(),
        )
        .await
        .unwrap();
    // data-report needs data-processor, which comes along from the same index.
    let installed = client
        .install("main", "data-report", InstallMode::Install, &[], &Yes)
        .await
        .unwrap();
    let ids: Vec<&str> = installed.admitted.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["data-processor", "data-report"]);
    assert!(client_host.clear("data-report").await.is_ok());
    assert!(client_host.clear("data-processor").await.is_ok());
    assert_eq!(
        market.page("data-processor").await.unwrap().downloads.total,
        1,
        "the dependency's install is counted too"
    );

    // Nothing newer: update changes nothing. A new version: update takes it.
    let nothing = client.update(None, &Yes).await.unwrap();
    assert_eq!(nothing.len(), 2);
    assert!(nothing.iter().all(|u| u.upgraded_to.is_none()));
    market
        .publish("acme", &data_report(dir.path(), "0.2.0"), "api:acme")
        .await
        .unwrap();
    let updated = client.update(Some("data-report"), &Yes).await.unwrap();
    assert_eq!(updated[0].upgraded_to.as_deref(), Some("0.2.0"));
    let info = client_host.info("data-report").await.unwrap();
    assert_eq!(info.plugin.version, "0.2.0");
    // A plugin installed from a file is not the client's to update.
    assert!(matches!(
        client.update(Some("nothing-like-it"), &Yes).await,
        Err(ClientError::NotFound(_))
    ));
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_air_gapped_mirror_gets_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (base, market, stop) = server(dir.path()).await;
    let key_text = serde_json::to_string(market.public_key()).unwrap();
    let online = Client::new(host(&dir.path().join("online")));
    online.add("main", &base, &key_text).await.unwrap();
    let mirror = dir.path().join("mirror");
    let first = online.mirror("main", &mirror).await.unwrap();
    assert_eq!((first.packages, first.downloaded), (1, 1));
    let again = online.mirror("main", &mirror).await.unwrap();
    assert_eq!(
        (again.packages, again.downloaded),
        (1, 0),
        "kept, digest checked"
    );

    // An air-gapped host reads the mirror as a marketplace with the same pinned key.
    let gapped_host = host(&dir.path().join("gapped"));
    let gapped = Client::new(gapped_host.clone());
    let url = reqwest_url(&mirror);
    gapped.add("corp", &url, &key_text).await.unwrap();
    let installed = gapped
        .install("corp", "data-processor", InstallMode::Install, &[], &Yes)
        .await
        .unwrap();
    assert_eq!(installed.version, "0.1.0");
    assert!(installed.receipt.is_err(), "a mirror takes no receipts");
    assert!(gapped_host.clear("data-processor").await.is_ok());

    // A host that knows the marketplace online can name the mirror directory instead.
    let other_host = host(&dir.path().join("other"));
    let other = Client::new(other_host.clone());
    other.add("main", &base, &key_text).await.unwrap();
    let from_dir = other
        .install(
            mirror.to_str().unwrap(),
            "data-processor",
            InstallMode::Install,
            &[],
            &Yes,
        )
        .await
        .unwrap();
    assert_eq!(from_dir.marketplace, "main");

    // A host that never pinned this marketplace's key gets nothing from the directory.
    let stranger = Client::new(host(&dir.path().join("stranger")));
    let err = stranger.index(mirror.to_str().unwrap()).await.unwrap_err();
    assert!(matches!(&err, ClientError::Refused(_)), "{err}");
    let foreign = secflow_trust::KeyDir::new(dir.path().join("foreign"))
        .generate("foreign")
        .unwrap();
    stranger
        .add("x", &base, &serde_json::to_string(&foreign).unwrap())
        .await
        .unwrap();
    let err = stranger.index(mirror.to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("no added marketplace has that key")),
        "{err}"
    );

    // A package changed in the mirror is refused.
    let package = mirror
        .join("packages")
        .join("data-processor")
        .join("0.1.0.sfpkg");
    let good = std::fs::read(&package).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&package, &bad).unwrap();
    gapped_host.uninstall("data-processor").await.unwrap();
    let err = gapped
        .install("corp", "data-processor", InstallMode::Install, &[], &Yes)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("does not match the signed index")),
        "{err}"
    );
    std::fs::write(&package, &good).unwrap();
    gapped
        .install("corp", "data-processor", InstallMode::Install, &[], &Yes)
        .await
        .unwrap();

    // A revoke reaches the air-gapped host with the next mirror refresh.
    market
        .revoke("data-processor", "0.1.0", "malware", "admin")
        .await
        .unwrap();
    let before_revoke = std::fs::read(mirror.join("index.json")).unwrap();
    let refreshed = online.mirror("main", &mirror).await.unwrap();
    assert_eq!((refreshed.packages, refreshed.removed), (0, 1));
    let synced = gapped.sync("corp").await.unwrap();
    assert_eq!(synced.quarantined, ["data-processor"]);
    assert!(gapped_host.clear("data-processor").await.is_err());

    // An older copy of the mirror's index put back (the revoked version listed again) is
    // a rollback.
    gapped.index("corp").await.unwrap();
    std::fs::write(mirror.join("index.json"), before_revoke).unwrap();
    let err = gapped.index("corp").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(m) if m.contains("rollback")),
        "{err}"
    );
    let _ = stop.send(());
}

fn reqwest_url(dir: &std::path::Path) -> String {
    format!("file://{}", dir.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_marketplace_the_countersignature_is_required_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_base, market, stop) = server(dir.path()).await;
    // This host trusts the publisher's key itself, so the package verifies without the
    // marketplace; coming from a marketplace, the default policy still wants its
    // countersignature.
    let client_host = host(&dir.path().join("client"));
    let publisher_key = secflow_trust::KeyDir::new(dir.path().join("publisher-keys"))
        .public("acme")
        .unwrap();
    client_host
        .change_trust(secflow_host::TrustChange::AddPublicKey {
            text: serde_json::to_string(&publisher_key).unwrap(),
            role: secflow_trust::Role::Publisher,
            scopes: vec!["data-*".into()],
        })
        .await
        .unwrap();
    let only_publisher = sign_variant(dir.path(), |m| m);
    let request = |from_marketplace: bool| secflow_host::InstallRequest {
        packages: vec![secflow_host::Package {
            source: "test".into(),
            bytes: only_publisher.clone(),
            from_marketplace,
        }],
        mode: InstallMode::Install,
        select: Vec::new(),
        mounts: Vec::new(),
        dev: false,
        allow_rollback: false,
    };
    let err = client_host.install(request(true), &Yes).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("marketplace-countersignature-required"),
        "{err}"
    );
    client_host.install(request(false), &Yes).await.unwrap();
    // The marketplace's own file, countersigned, is admitted from the marketplace.
    client_host.uninstall("data-processor").await.unwrap();
    client_host
        .change_trust(secflow_host::TrustChange::AddPublicKey {
            text: serde_json::to_string(market.public_key()).unwrap(),
            role: secflow_trust::Role::Marketplace,
            scopes: vec!["*".into()],
        })
        .await
        .unwrap();
    let (_, countersigned) = market.package("data-processor", "0.1.0").await.unwrap();
    let mut req = request(true);
    req.packages[0].bytes = countersigned;
    client_host.install(req, &Yes).await.unwrap();
    let _ = stop.send(());
}
