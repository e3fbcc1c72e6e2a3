//! The plugin SDK (`secflow-pdk`) embedded in the binary, so `secflow plugin new` works on a
//! machine with nothing but `secflow` and a Rust toolchain. The copy is written under
//! `SECFLOW_HOME/sdk/secflow-pdk-<version>-<hash>/` and scaffolded plugins point at it.

use std::path::{Path, PathBuf};

const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../secflow-pdk/Cargo.toml")),
    ("src/lib.rs", include_str!("../../secflow-pdk/src/lib.rs")),
    (
        "src/bindings.rs",
        include_str!("../../secflow-pdk/src/bindings.rs"),
    ),
    ("src/http.rs", include_str!("../../secflow-pdk/src/http.rs")),
    (
        "wit/secflow-plugin.wit",
        include_str!("../../../wit/secflow-plugin.wit"),
    ),
];

/// Writes the SDK under `sdk_root` if this exact version is not there yet; returns its path.
pub fn install(sdk_root: &Path) -> std::io::Result<PathBuf> {
    let mut all = Vec::new();
    for (name, text) in FILES {
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(text.as_bytes());
    }
    let hash = &secflow_io::sha256_hex(&all)[..12];
    let dir = sdk_root.join(format!("secflow-pdk-{}-{hash}", env!("CARGO_PKG_VERSION")));
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(sdk_root)?;
    let tmp = tempfile::tempdir_in(sdk_root)?;
    for (name, text) in FILES {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().expect("relative file has a parent"))?;
        std::fs::write(path, text)?;
    }
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            let _ = tmp.keep();
            Ok(dir)
        }
        // Another process installed it first.
        Err(_) if dir.join("Cargo.toml").is_file() => Ok(dir),
        Err(e) => Err(e),
    }
}
