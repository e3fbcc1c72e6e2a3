//! Compiles the guest workspace in `plugins/` to `wasm32-wasip2` components so that
//! `cargo build` / `cargo test` of the host need no separate step, the way wasmtime's
//! test-programs crate does it. Plugins are always built from source; no binary is committed.

use sha2::{Digest, Sha256};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    // Watch sources only (never a target dir inside the tree, which would rebuild forever).
    for watched in [
        "wit",
        "crates/secflow-pdk/src",
        "crates/secflow-pdk/Cargo.toml",
        // Engines the official plugins share with native benchmarks.
        "crates/secflow-secrets/src",
        "crates/secflow-secrets/rules",
        "crates/secflow-secrets/Cargo.toml",
        "crates/secflow-patterns/src",
        "crates/secflow-patterns/rules",
        "crates/secflow-patterns/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    let members = plugin_dirs(&plugins);
    for dir in &members {
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        // Embedded data (e.g. the CWE catalog) changes the component too.
        println!("cargo:rerun-if-changed={}", dir.join("data").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        // A guest's own build script (e.g. the pii-redactor's automata built ahead).
        println!("cargo:rerun-if-changed={}", dir.join("build.rs").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("plugin.toml").display()
        );
    }

    // A stable target dir next to the host's, so the guest build is incremental across
    // profiles (dev, test, clippy) and never contends for the host's own lock.
    let target_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .map(|t| t.join("secflow-plugins"))
        .unwrap_or_else(|| out_dir.join("secflow-plugins"));

    ensure_wasm_target();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Run from the plugins workspace so its `.cargo/config.toml` (the guest stack size)
    // applies, as it does for `secflow plugin build`.
    cmd.current_dir(&plugins)
        .arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target=wasm32-wasip2")
        .arg("--workspace")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for the host, not the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the plugins workspace");
    if !status.success() {
        panic!(
            "building the guest plugins failed; is the target installed? run `rustup target add wasm32-wasip2`"
        );
    }

    let release = target_dir.join("wasm32-wasip2/release");
    let mut code = String::from(
        "/// Every plugin built from `plugins/`: (directory name, plugin dir, component path).\n",
    );
    code.push_str("pub const ALL: &[(&str, &str, &str)] = &[\n");
    let mut consts = String::new();
    for dir in &members {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let crate_name = crate_name(dir);
        let wasm = release.join(format!("{}.wasm", crate_name.replace('-', "_")));
        assert!(wasm.exists(), "expected component {}", wasm.display());
        writeln!(
            code,
            "    ({name:?}, {:?}, {:?}),",
            dir.display().to_string(),
            wasm.display().to_string()
        )
        .unwrap();
        let ident = name.to_uppercase().replace('-', "_");
        writeln!(
            consts,
            "/// The `{name}` plugin: its source directory and built component.\npub const {ident}: Artifact = Artifact {{ dir: {:?}, component: {:?} }};",
            dir.display().to_string(),
            wasm.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    code.push_str(&consts);

    // The official plugins shipped inside the binary: bytes embedded, digest pinned.
    let bundled_list = plugins.join("BUNDLED");
    println!("cargo:rerun-if-changed={}", bundled_list.display());
    code.push_str("/// The official plugins shipped inside the `secflow` binary, in pipeline order.\npub const BUNDLED: &[Bundled] = &[\n");
    for name in fs::read_to_string(&bundled_list)
        .expect("plugins/BUNDLED")
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
    {
        let dir = plugins.join(name);
        assert!(
            members.contains(&dir),
            "plugins/BUNDLED names `{name}`, which is not a plugin directory"
        );
        let wasm = release.join(format!("{}.wasm", crate_name(&dir).replace('-', "_")));
        let bytes = fs::read(&wasm).unwrap();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(
            code,
            "    Bundled {{ name: {name:?}, manifest: include_str!({:?}), component: include_bytes!({:?}), sha256: {digest:?} }},",
            dir.join("plugin.toml").display().to_string(),
            wasm.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    fs::write(out_dir.join("artifacts.rs"), code).unwrap();
}

/// The guests need the `wasm32-wasip2` standard library. A fresh machine with rustup lacks
/// it; the README promises that the first `cargo run` works anyway, so install it here (the
/// one thing this build installs, and only into the active toolchain) and say so.
fn ensure_wasm_target() {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib").join(TARGET).is_dir());
    if installed {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target for the official plugins (rustup target add {TARGET})"
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("`rustup target add {TARGET}` failed ({s}); run it yourself, then build again")
        }
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}); install the target for your toolchain (with rustup: `rustup target add {TARGET}`)"
        ),
    }
}

fn plugin_dirs(plugins: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(plugins)
        .expect("plugins/ directory")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("plugin.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn crate_name(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("name")?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_string())
        })
        .expect("package name in Cargo.toml")
}
