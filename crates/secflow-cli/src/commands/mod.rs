//! One module per command.

mod audit;
mod keys;
mod plugin;
mod policy;
pub mod registry;
mod run;
mod scan;
mod trust;

use crate::cli::{Cli, Command, PluginCommand};
use crate::exit::Exit;
use crate::home::Home;
pub use audit::record as audit_record;

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let mut home = Home::resolve(cli.home.as_deref());
    home.policy_dir = cli.policy_dir.clone();
    match cli.command {
        Command::Scan(args) => scan::run(&home, args),
        Command::Run(args) => run::run(&home, args),
        Command::Plugin(PluginCommand::New(args)) => plugin::new::run(&home, args),
        Command::Plugin(PluginCommand::Build(args)) => plugin::build::run(&home, args),
        Command::Plugin(PluginCommand::Pack(args)) => plugin::pack::run(&args.dir, args.output),
        Command::Plugin(PluginCommand::Sign {
            file,
            key,
            expires_in_days,
        }) => trust::sign(&home, &file, &key, expires_in_days),
        Command::Plugin(PluginCommand::Verify {
            file,
            json,
            allow_rollback,
        }) => trust::verify(&home, &file, json, allow_rollback),
        Command::Key(cmd) => keys::run(&home, cmd),
        Command::Trust(cmd) => trust::run(&home, cmd),
        Command::Audit(cmd) => audit::run(&home, cmd),
        Command::Policy(cmd) => policy::run(&home, cmd),
        Command::Stats { json } => audit::stats(&home, json),
        Command::Plugin(PluginCommand::Install(args)) => {
            registry::install(&home, args, registry::Mode::Install)
        }
        Command::Plugin(PluginCommand::Upgrade(args)) => {
            registry::install(&home, args, registry::Mode::Upgrade)
        }
        Command::Plugin(PluginCommand::Sync {
            dir,
            yes,
            watch,
            interval,
        }) => registry::sync(&home, &dir, yes, watch, interval),
        Command::Plugin(PluginCommand::Uninstall { id, json }) => {
            registry::uninstall(&home, &id, json)
        }
        Command::Plugin(PluginCommand::Enable { id, yes }) => registry::enable(&home, &id, yes),
        Command::Plugin(PluginCommand::Disable { id }) => registry::disable(&home, &id),
        Command::Plugin(PluginCommand::List { json }) => registry::list(&home, json),
        Command::Plugin(PluginCommand::Info { id, json }) => registry::info(&home, &id, json),
        Command::Plugin(PluginCommand::Search {
            text,
            kind,
            category,
            tag,
            json,
        }) => registry::search(
            &home,
            secflow_registry::SearchQuery {
                text,
                kind: kind.map(|k| k.as_str().to_string()),
                category,
                tag,
            },
            json,
        ),
        Command::Plugin(PluginCommand::Versions { id, json }) => {
            registry::versions(&home, &id, json)
        }
        Command::Plugin(PluginCommand::Permissions { id, json }) => {
            registry::permissions(&home, &id, json)
        }
        Command::Plugin(PluginCommand::Release { id }) => registry::release(&home, &id),
        Command::Plugin(PluginCommand::Check { json }) => registry::check(&home, json),
        Command::Plugin(PluginCommand::Schema) => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&secflow_manifest::json_schema())?
            );
            Ok(Exit::Success)
        }
    }
}

/// Runs a future to completion on a single-threaded runtime: the commands that talk to the
/// registry and the audit log do one thing at a time.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

/// A runtime configured from the home directory. The compile cache is authenticated with
/// a key derived from the host key (`keys/`, mode 0600), never stored in the cache.
pub fn runtime(home: &Home) -> anyhow::Result<secflow_runtime::Runtime> {
    let config = secflow_runtime::RuntimeConfig {
        cache_dir: Some(home.component_cache()),
        cache_key: Some(audit::cache_key(home)?),
        kv_dir: Some(home.kv()),
        ..Default::default()
    };
    secflow_runtime::Runtime::new(config)
        .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e:#}"))
}

/// Reads and validates the manifest of a plugin directory (exit code 2 when missing or invalid).
pub fn read_manifest(dir: &std::path::Path) -> anyhow::Result<secflow_manifest::Manifest> {
    let manifest_path = secflow_manifest::find_manifest(dir).ok_or_else(|| {
        crate::exit::fail(
            Exit::Usage,
            format!(
                "no plugin.toml or plugin.yaml in {}; create one with `secflow plugin new`",
                dir.display()
            ),
        )
    })?;
    secflow_manifest::Manifest::from_file(&manifest_path)
        .map_err(|e| crate::exit::fail(Exit::Usage, e.to_string()))
}

/// Reads a plugin directory: its manifest and component bytes.
pub fn read_plugin_dir(
    dir: &std::path::Path,
) -> anyhow::Result<(secflow_manifest::Manifest, Vec<u8>)> {
    let manifest = read_manifest(dir)?;
    let component = dir.join(&manifest.component);
    let wasm = std::fs::read(&component).map_err(|e| {
        crate::exit::fail(
            Exit::Usage,
            format!(
                "cannot read the component {}: {e}; build it with `secflow plugin build {}`",
                component.display(),
                dir.display()
            ),
        )
    })?;
    Ok((manifest, wasm))
}

/// Loads a plugin into the runtime, mapping refusals to exit code 3.
pub fn load(
    runtime: &secflow_runtime::Runtime,
    manifest: secflow_manifest::Manifest,
    wasm: &[u8],
    grants: secflow_runtime::Grants,
) -> anyhow::Result<secflow_runtime::Plugin> {
    runtime.load(manifest, wasm, grants).map_err(|e| {
        let code = if e.is_refusal() {
            Exit::Refused
        } else {
            Exit::Usage
        };
        crate::exit::fail(code, e.to_string())
    })
}

/// Writes a file through a temporary file and a rename, so a crash never leaves half of it.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| {
        crate::exit::fail(
            Exit::Usage,
            format!("cannot write in {}: {e}", parent.display()),
        )
    })?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| {
        crate::exit::fail(Exit::Usage, format!("cannot write {}: {e}", path.display()))
    })?;
    Ok(())
}
