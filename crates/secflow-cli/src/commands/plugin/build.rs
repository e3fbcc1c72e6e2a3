//! `secflow plugin build [DIR]`: compile a plugin crate to a `wasm32-wasip2` component, put
//! it where the manifest's `component` points, and validate it the way the host will load
//! it (imports against declared capabilities, exports against the declared kind).

use crate::cli::BuildArgs;
use crate::exit::HostResultExt;
use crate::exit::{Exit, fail};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

pub fn run(host: &secflow_host::Host, args: BuildArgs) -> anyhow::Result<Exit> {
    let dir = args.dir.canonicalize().map_err(|e| {
        fail(
            Exit::Usage,
            format!("cannot open plugin directory {}: {e}", args.dir.display()),
        )
    })?;
    let manifest = secflow_host::read_manifest(&dir).cli()?;
    if !dir.join("Cargo.toml").is_file() {
        return Err(fail(
            Exit::Usage,
            format!(
                "{} has no Cargo.toml; `secflow plugin build` compiles Rust plugins (components from \
                 other languages can be placed at `{}` directly)",
                dir.display(),
                manifest.component
            ),
        ));
    }
    ensure_target()?;
    if let Some(note) = rustflags_drop_the_guest_stack(|k| std::env::var(k).ok()) {
        errln!("warning: {note}");
    }
    let built = cargo_build(&dir)?;
    let wasm = std::fs::read(&built).with_context(|| format!("read {}", built.display()))?;
    let dest = dir.join(&manifest.component);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&dest, &wasm).with_context(|| format!("write {}", dest.display()))?;

    let plugin = host.validate_component(manifest, &wasm).cli()?;
    let m = &plugin.manifest;
    if args.json {
        let summary = serde_json::json!({
            "id": m.id, "version": m.version.to_string(), "kind": m.kind,
            "component": dest, "size": wasm.len(), "sha256": plugin.digest,
            "imports": plugin.imports, "capabilities": m.capabilities,
        });
        outln!("{}", secflow_term::to_json_pretty(&summary)?);
    } else {
        outln!(
            "Built {} {} ({}) -> {}",
            m.id,
            m.version,
            m.kind,
            dest.display()
        );
        outln!("  size     {} KiB", wasm.len() / 1024);
        outln!("  sha256   {}", plugin.digest);
        let caps = &m.capabilities;
        if caps.is_empty() {
            outln!("  grants   none requested");
        }
        for fs in &caps.filesystem {
            outln!("  fs       {} ({:?}): {}", fs.path, fs.access, fs.reason);
        }
        for net in &caps.network {
            outln!("  network  {net}: {}", net.reason);
        }
        if let Some(kv) = &caps.kv {
            outln!("  kv       {}", kv.reason);
        }
    }
    match args.output {
        Some(output) => super::pack::run(&dir, Some(output)),
        None => Ok(Exit::Success),
    }
}

/// Cargo lets `RUSTFLAGS` (or `CARGO_ENCODED_RUSTFLAGS`) replace the rustflags of
/// `.cargo/config.toml`, where the SDK sets the 128 KiB guest stack. The plugin still builds
/// and runs, with Rust's 1 MiB stack and slower fresh instances, so say so.
fn rustflags_drop_the_guest_stack(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let (name, flags) = ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS"]
        .into_iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()).map(|v| (name, v)))?;
    (!flags.contains("stack-size")).then(|| {
        format!(
            "{name} is set, so cargo ignores the rustflags in .cargo/config.toml and the plugin \
             gets Rust's 1 MiB guest stack instead of the SDK's 128 KiB (fresh instances cost \
             about twice as much); add `-C link-arg=-zstack-size=131072` to {name}"
        )
    })
}

/// Installs the wasm32-wasip2 standard library through rustup if it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .context("run rustc (is a Rust toolchain installed?)")?;
    let path = PathBuf::from(String::from_utf8_lossy(&libdir.stdout).trim());
    if libdir.status.success() && path.is_dir() {
        return Ok(());
    }
    errln!("Installing the {TARGET} target with rustup...");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("run rustup")?;
    if !status.success() {
        return Err(fail(
            Exit::Usage,
            format!("could not install the {TARGET} target; run `rustup target add {TARGET}`"),
        ));
    }
    Ok(())
}

/// Runs cargo and returns the path of the component it produced for this package.
fn cargo_build(dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo")?;
    if !output.status.success() {
        return Err(fail(
            Exit::Usage,
            format!("cargo build failed in {}", dir.display()),
        ));
    }
    let manifest = dir.join("Cargo.toml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same_package = msg["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == manifest);
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !(same_package && is_cdylib) {
            continue;
        }
        if let Some(file) = msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"))
        {
            return Ok(PathBuf::from(file));
        }
    }
    Err(fail(
        Exit::Usage,
        format!(
            "cargo built no component for {}; the crate needs `crate-type = [\"cdylib\"]` under [lib]",
            dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::rustflags_drop_the_guest_stack as check;

    #[test]
    fn rustflags_without_a_stack_size_are_named() {
        assert_eq!(check(|_| None), None);
        assert_eq!(check(|_| Some(String::new())), None);
        let note = check(|k| (k == "RUSTFLAGS").then(|| "-Dwarnings".to_string())).unwrap();
        assert!(note.starts_with("RUSTFLAGS is set"), "{note}");
        let note = check(|k| (k == "CARGO_ENCODED_RUSTFLAGS").then(|| "-Dwarnings".into()));
        assert!(note.unwrap().starts_with("CARGO_ENCODED_RUSTFLAGS"));
        let kept = "-C\x1flink-arg=-zstack-size=131072".to_string();
        assert_eq!(check(|_| Some(kept.clone())), None);
    }
}
