//! Run clearance shared across processes: a host that reuses a clearance without reading
//! the registry (the registry file unchanged since it was made) still refuses the next run
//! as soon as another process disables the plugin, and run statistics written elsewhere do
//! not cost it that reuse.

use secflow_host::{
    Answer, ApprovalRequest, Approver, CallRequest, Host, HostConfig, InstallMode, InstallRequest,
    Package, StateDir, TrustChange,
};
use std::path::Path;
use std::time::Duration;

struct Yes;

impl Approver for Yes {
    fn standing(&self) -> Option<String> {
        Some("test".into())
    }
    fn ask(&self, _request: &ApprovalRequest<'_>) -> Answer {
        Answer::CannotAsk
    }
}

fn open(home: &Path, actor: &str) -> Host {
    Host::open(HostConfig {
        state_dir: StateDir::resolve(Some(home)),
        actor: actor.into(),
    })
}

/// Installs the no-op test plugin, signed by a key the host trusts.
async fn install_noop(host: &Host, dir: &Path) {
    let a = secflow_plugin_artifacts::TEST_NOOP;
    let plugin = dir.join("noop");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(
        Path::new(a.dir).join("plugin.toml"),
        plugin.join("plugin.toml"),
    )
    .unwrap();
    std::fs::copy(a.component, plugin.join("plugin.wasm")).unwrap();
    let package = dir.join("noop.sfpkg");
    std::fs::write(&package, secflow_package::pack_dir(&plugin).unwrap()).unwrap();
    host.generate_key("test").unwrap();
    host.change_trust(TrustChange::Add {
        key: "test".into(),
        role: secflow_host::types::Role::Publisher,
        scopes: vec!["*".into()],
    })
    .await
    .unwrap();
    host.sign_package(&package, "test", None).unwrap();
    host.install(
        InstallRequest {
            packages: vec![Package {
                source: "test".into(),
                bytes: std::fs::read(&package).unwrap(),
                from_marketplace: false,
            }],
            mode: InstallMode::Install,
            select: Vec::new(),
            mounts: Vec::new(),
            dev: false,
            allow_rollback: false,
        },
        &Yes,
    )
    .await
    .unwrap();
}

/// Clears and runs the no-op plugin's `echo` once.
async fn run(host: &Host) -> secflow_host::Result<()> {
    let cleared = host.clear("test-noop").await?;
    let call = secflow_host::build_call(
        cleared.manifest.kind,
        CallRequest {
            action: Some("echo".into()),
            input: Some(("input".into(), br#"{"n":1}"#.to_vec())),
            ..Default::default()
        },
    )?;
    let (inv, _) = host
        .invoke(&cleared, call, &serde_json::json!({}), &[])
        .await?;
    inv.outcome.expect("the no-op plugin runs");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_by_another_process_refuses_the_next_run_of_a_cached_clearance() {
    let home = tempfile::tempdir().unwrap();
    let server = open(home.path(), "api:server");
    install_noop(&server, home.path()).await;
    // Another process on the same state directory: its own connections and caches.
    let cli = open(home.path(), "cli:admin");

    run(&server).await.unwrap();
    // A registry file's stamp stands for its content only once it is two seconds old.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    run(&server).await.unwrap();
    let before = server.clearances_without_registry_read();
    run(&server).await.unwrap();
    run(&server).await.unwrap();
    assert_eq!(
        server.clearances_without_registry_read(),
        before + 2,
        "runs reuse the clearance without a registry read while the registry is unchanged"
    );

    // Runs elsewhere write statistics (their own file): the reuse goes on.
    run(&cli).await.unwrap();
    cli.flush().await.unwrap();
    run(&server).await.unwrap();
    assert_eq!(server.clearances_without_registry_read(), before + 3);

    // The other process disables the plugin: the very next run here is refused.
    cli.disable("test-noop").await.unwrap();
    let refused = run(&server).await.unwrap_err();
    assert!(refused.to_string().contains("disabled"), "{refused}");
    assert_eq!(server.clearances_without_registry_read(), before + 3);

    // Enabled again: it runs again.
    cli.enable("test-noop", &Yes).await.unwrap();
    run(&server).await.unwrap();
    server.flush().await.unwrap();
    let stats = server.info("test-noop").await.unwrap().stats;
    assert_eq!(stats.executions, 7, "{stats:?}");
}
