//! The official plugins embedded in the binary: first-class plugins with origin `bundled`,
//! listed, runnable by id and scanned with, each checked against the digest its build
//! pinned before it is loaded.

use crate::{HostError, Result};

use secflow_manifest::Manifest;

/// An embedded plugin, parsed.
#[derive(Debug, Clone)]
pub struct BundledPlugin {
    /// Shared: a clearance of a bundled plugin on every proxied request takes a reference,
    /// not a copy of the manifest.
    pub manifest: std::sync::Arc<Manifest>,
    pub component: &'static [u8],
    /// SHA-256 of the component, pinned at build time.
    pub sha256: &'static str,
}

/// Every bundled plugin, in the order of `plugins/BUNDLED` (the order enrichers run in).
/// Parsed once per process: the manifests are part of the binary, and a front end that
/// clears a bundled plugin per request (the proxy) must not parse and validate them all
/// each time.
pub fn bundled() -> Result<Vec<BundledPlugin>> {
    parsed().map(<[BundledPlugin]>::to_vec)
}

fn parsed() -> Result<&'static [BundledPlugin]> {
    static PARSED: std::sync::OnceLock<std::result::Result<Vec<BundledPlugin>, String>> =
        std::sync::OnceLock::new();
    match PARSED.get_or_init(parse_bundled) {
        Ok(plugins) => Ok(plugins),
        Err(e) => Err(HostError::internal(e.clone())),
    }
}

fn parse_bundled() -> std::result::Result<Vec<BundledPlugin>, String> {
    secflow_plugin_artifacts::BUNDLED
        .iter()
        .map(|b| {
            let manifest = Manifest::parse(
                b.manifest.as_bytes(),
                secflow_manifest::Format::Toml,
                &format!("bundled plugin {}", b.name),
            )
            .map_err(|e| format!("bundled plugin {}: {e}", b.name))?;
            Ok(BundledPlugin {
                manifest: std::sync::Arc::new(manifest),
                component: b.component,
                sha256: b.sha256,
            })
        })
        .collect()
}

/// The bundled plugin with this id, if there is one.
pub fn bundled_plugin(id: &str) -> Result<Option<BundledPlugin>> {
    Ok(parsed()?
        .iter()
        .find(|b| b.manifest.id.as_str() == id)
        .cloned())
}
