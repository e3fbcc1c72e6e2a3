//! `secflow plugin pack DIR [-o FILE]`: the reproducible `.sfpkg` package of a built plugin.

use crate::exit::HostResultExt;
use crate::exit::{Exit, fail};
use std::path::{Path, PathBuf};

pub fn run(dir: &Path, output: Option<PathBuf>) -> anyhow::Result<Exit> {
    let manifest = secflow_host::read_manifest(dir).cli()?;
    let package = secflow_package::pack_dir(dir).map_err(|e| fail(Exit::Usage, e.to_string()))?;
    let output = output
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.sfpkg", manifest.id, manifest.version)));
    let envelope =
        secflow_package::Envelope::split(&package, &secflow_package::PackageLimits::default())
            .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    let digest = envelope.digest();
    super::super::write_output(&output, &package)?;
    outln!(
        "Packed {} {} -> {} ({} bytes, sha256 {digest})",
        manifest.id,
        manifest.version,
        output.display(),
        package.len()
    );
    Ok(Exit::Success)
}
