//! `secflow plugin new NAME --kind KIND`: a buildable plugin crate with a manifest, a sample
//! implementation of the kind's trait, and a unit test.

use crate::cli::NewArgs;
use crate::exit::{Exit, fail};
use secflow_manifest::{PluginId, PluginKind};

pub fn run(host: &secflow_host::Host, args: NewArgs) -> anyhow::Result<Exit> {
    let id = PluginId::new(&args.name).map_err(|e| fail(Exit::Usage, e))?;
    let dir = args.path.join(id.as_str());
    if dir.exists() {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} already exists; pick another name or remove it",
                dir.display()
            ),
        ));
    }
    let sdk = crate::sdk::install(&host.paths().sdk()).map_err(|e| {
        fail(
            Exit::Usage,
            format!(
                "cannot install the plugin SDK under {}: {e}",
                host.paths().sdk().display()
            ),
        )
    })?;
    std::fs::create_dir_all(dir.join("src"))?;
    let crate_name = id.as_str().to_string();
    std::fs::write(dir.join("Cargo.toml"), cargo_toml(&crate_name, &sdk))?;
    std::fs::write(dir.join("plugin.toml"), manifest(&id, args.kind))?;
    std::fs::write(dir.join("src/lib.rs"), source(args.kind))?;
    std::fs::write(dir.join(".gitignore"), "/target\n/plugin.wasm\n")?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
    outln!("Created {} plugin `{id}` in {}", args.kind, dir.display());
    outln!("Next: secflow plugin build {}", dir.display());
    Ok(Exit::Success)
}

/// The guest build settings of the SDK (the 128 KiB guest stack), the same file the
/// example plugins are built with.
const CARGO_CONFIG: &str = include_str!("../../../../../plugins/.cargo/config.toml");

/// The scaffold's files, one per kind for the source, kept as files under
/// `crates/secflow-cli/templates/` and embedded at compile time. `{{name}}`-style
/// placeholders are filled in by [`fill`].
const CARGO_TOML: &str = include_str!("../../../templates/rust/Cargo.toml");
const MANIFEST: &str = include_str!("../../../templates/plugin.toml");

/// The sample implementation of each kind.
fn kind_source(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Action => include_str!("../../../templates/rust/action.rs"),
        PluginKind::Detector => include_str!("../../../templates/rust/detector.rs"),
        PluginKind::Enricher => include_str!("../../../templates/rust/enricher.rs"),
        PluginKind::Analytics => include_str!("../../../templates/rust/analytics.rs"),
        PluginKind::ProxyFilter => include_str!("../../../templates/rust/proxy-filter.rs"),
        PluginKind::LogAnalyzer => include_str!("../../../templates/rust/log-analyzer.rs"),
        PluginKind::DynamicTester => include_str!("../../../templates/rust/dynamic-tester.rs"),
    }
}

/// Replaces each `{{key}}` in `template` with its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

fn cargo_toml(name: &str, sdk: &std::path::Path) -> String {
    let sdk = format!("{:?}", sdk.display().to_string());
    fill(CARGO_TOML, &[("name", name), ("sdk", &sdk)])
}

fn manifest(id: &PluginId, kind: PluginKind) -> String {
    fill(MANIFEST, &[("id", id.as_str()), ("kind", kind.as_str())])
}

fn source(kind: PluginKind) -> String {
    format!(
        "//! A SecFlow {kind} plugin. Build: `secflow plugin build .`\n\nuse secflow_pdk::prelude::*;\n\npub struct MyPlugin;\n\nimpl Plugin for MyPlugin {{}}\n\n{}",
        kind_source(kind)
    )
}
