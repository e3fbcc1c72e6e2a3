//! A real server on 127.0.0.1 (random port) over a fresh state directory, for the tests.

use secflow_host::{Host, HostConfig, StateDir};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Server {
    pub base: String,
    pub host: Host,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _home: tempfile::TempDir,
}

impl Server {
    pub async fn start(config: secflow_server::ServerConfig) -> Server {
        let home = tempfile::tempdir().unwrap();
        let host = Host::open(HostConfig {
            state_dir: StateDir::resolve(Some(home.path())),
            actor: "test".into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = secflow_server::AppState::open(host.acting_as("api:server"), config)
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            secflow_server::serve(
                state,
                listener,
                async {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        });
        Server {
            base,
            host,
            stop: Some(stop),
            task: Some(task),
            _home: home,
        }
    }

    pub async fn token(&self, role: &str) -> String {
        self.host
            .create_token(role, role, None)
            .await
            .unwrap()
            .token
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// The data-processor plugin packed and signed by a key the host trusts.
#[allow(dead_code)] // not every test binary installs a plugin
pub fn signed_data_processor(host: &Host, dir: &Path) -> Vec<u8> {
    signed_plugin(host, dir, &secflow_plugin_artifacts::DATA_PROCESSOR, None)
}

/// A test plugin packed (with `manifest` instead of its own, if given) and signed by the
/// `publisher` key, which the host is made to trust on first use.
#[allow(dead_code)]
pub fn signed_plugin(
    host: &Host,
    dir: &Path,
    artifact: &secflow_plugin_artifacts::Artifact,
    manifest: Option<&str>,
) -> Vec<u8> {
    let name = Path::new(artifact.dir).file_name().unwrap();
    let plugin = dir.join(name);
    std::fs::create_dir_all(&plugin).unwrap();
    match manifest {
        Some(text) => std::fs::write(plugin.join("plugin.toml"), text).unwrap(),
        None => {
            std::fs::copy(
                Path::new(artifact.dir).join("plugin.toml"),
                plugin.join("plugin.toml"),
            )
            .unwrap();
        }
    }
    std::fs::copy(artifact.component, plugin.join("plugin.wasm")).unwrap();
    let package = plugin.with_extension("sfpkg");
    std::fs::write(&package, secflow_package::pack_dir(&plugin).unwrap()).unwrap();
    if host.public_key("publisher").is_err() {
        host.generate_key("publisher").unwrap();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            runtime
                .block_on(host.change_trust(secflow_host::TrustChange::Add {
                    key: "publisher".into(),
                    role: secflow_host::types::Role::Publisher,
                    scopes: vec!["*".into()],
                }))
                .unwrap()
        });
    }
    host.sign_package(&package, "publisher", None).unwrap();
    std::fs::read(&package).unwrap()
}

#[allow(dead_code)]
/// The demo project (`examples/vulnerable-shop`) as a .tar.gz, the way a client uploads a target.
pub fn demo_tar_gz() -> Vec<u8> {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/vulnerable-shop");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.append_dir_all(".", &demo).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A marketplace publisher `acme` owning the namespace `data`, its signing key `acme`
/// registered by `admin`; returns its publisher token and its keys (held by the caller).
#[allow(dead_code)]
pub async fn market_publisher(
    server: &Server,
    admin: &str,
) -> (String, tempfile::TempDir, secflow_trust::KeyDir) {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/market/publishers", server.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "acme", "namespaces": ["data"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let keys = secflow_trust::KeyDir::new(dir.path());
    let public = keys.generate("acme").unwrap();
    let r = http
        .post(format!("{}/v1/market/publishers/acme/keys", server.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"public_key": serde_json::to_string(&public).unwrap()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = server
        .host
        .create_token("acme", "publisher", None)
        .await
        .unwrap()
        .token;
    (token, dir, keys)
}
