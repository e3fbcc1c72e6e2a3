//! One module per command (`plugin` verbs one file each). Commands parse, ask and print;
//! every decision is a `secflow-host` operation.

mod audit;
mod keys;
mod marketplace;
mod plugin;
mod policy;
mod proxy;
mod run;
mod scan;
mod serve;
mod token;
mod trust;

use crate::cli::{Cli, Command, PluginCommand};
use crate::exit::Exit;
use secflow_host::{Host, HostConfig, StateDir};

/// Who the audit log says acted: the local user running the CLI.
fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let mut state_dir = StateDir::resolve(cli.home.as_deref());
    state_dir.policy_dir = cli.policy_dir.clone();
    let host = Host::open(HostConfig {
        state_dir,
        actor: actor(),
    });
    let host = &host;
    let exit = command(host, cli);
    // A clean run's statistics are queued, not waited for: committed before the CLI exits.
    if let Err(e) = host.flush_blocking() {
        eprintln!("warning: {}", secflow_term::escape(&e.to_string()));
    }
    exit
}

fn command(host: &Host, cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Scan(args) => scan::run(host, *args),
        Command::Run(args) => run::run(host, args),
        Command::Key(cmd) => keys::run(host, cmd),
        Command::Trust(cmd) => trust::run(host, cmd),
        Command::Audit(cmd) => audit::run(host, cmd),
        Command::Policy(cmd) => policy::run(host, cmd),
        Command::Serve(args) => serve::run(host, *args),
        Command::Proxy { config } => proxy::run(host, &config),
        Command::Token(cmd) => token::run(host, cmd),
        Command::Marketplace(cmd) => marketplace::run(host, cmd),
        Command::Stats { json } => audit::stats(host, json),
        Command::Version { json } => version(json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut crate::cli::Cli::command(),
                "secflow",
                &mut std::io::stdout(),
            );
            Ok(Exit::Success)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut std::io::stdout())?;
            Ok(Exit::Success)
        }
        Command::Plugin(cmd) => match cmd {
            PluginCommand::New(args) => plugin::new::run(host, args),
            PluginCommand::Build(args) => plugin::build::run(host, args),
            PluginCommand::Pack(args) => plugin::pack::run(&args.dir, args.output),
            PluginCommand::Sign {
                file,
                key,
                expires_in_days,
            } => trust::sign(host, &file, &key, expires_in_days),
            PluginCommand::Verify {
                file,
                json,
                allow_rollback,
            } => trust::verify(host, &file, json, allow_rollback),
            PluginCommand::Install(args) => {
                plugin::install::run(host, args, secflow_host::InstallMode::Install)
            }
            PluginCommand::Upgrade(args) => {
                plugin::install::run(host, args, secflow_host::InstallMode::Upgrade)
            }
            PluginCommand::Sync {
                dir,
                yes,
                watch,
                interval,
            } => plugin::sync::run(host, &dir, yes, watch, interval),
            PluginCommand::Update { id, yes, json } => {
                plugin::install::update(host, id.as_deref(), yes, json)
            }
            PluginCommand::Uninstall { id, json } => plugin::uninstall::run(host, &id, json),
            PluginCommand::Enable { id, yes } => plugin::enable::run(host, &id, yes),
            PluginCommand::Disable { id } => plugin::disable::run(host, &id),
            PluginCommand::Release { id } => plugin::release::run(host, &id),
            PluginCommand::List { json } => plugin::list::list(host, json),
            PluginCommand::Search {
                text,
                remote: true,
                from,
                kind,
                category,
                tag,
                json,
            } => marketplace::search_remote(
                host,
                from,
                text.unwrap_or_default(),
                kind.map(|k| k.as_str().to_string()),
                category,
                tag,
                json,
            ),
            PluginCommand::Search {
                text,
                kind,
                category,
                tag,
                json,
                ..
            } => plugin::list::search(
                host,
                secflow_host::types::SearchQuery {
                    text,
                    kind: kind.map(|k| k.as_str().to_string()),
                    category,
                    tag,
                },
                json,
            ),
            PluginCommand::Info { id, json } => plugin::info::run(host, &id, json),
            PluginCommand::Versions { id, json } => plugin::versions::run(host, &id, json),
            PluginCommand::Permissions { id, json } => plugin::permissions::run(host, &id, json),
            PluginCommand::Check { json } => plugin::check::run(host, json),
            PluginCommand::Schema => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&secflow_manifest::json_schema())?
                );
                Ok(Exit::Success)
            }
        },
    }
}

/// `secflow version`: this build and the plugins built into it (with the digests the build
/// pinned).
fn version(json: bool) -> anyhow::Result<Exit> {
    use crate::exit::HostResultExt;
    let bundled = secflow_host::bundled().cli()?;
    if json {
        let plugins: Vec<_> = bundled
            .iter()
            .map(|b| {
                serde_json::json!({
                    "id": b.manifest.id, "version": b.manifest.version.to_string(),
                    "kind": b.manifest.kind, "sha256": b.sha256,
                })
            })
            .collect();
        outln!(
            "{}",
            secflow_term::to_json_pretty(&serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "bundled_plugins": plugins,
            }))?
        );
    } else {
        outln!("secflow {}", env!("CARGO_PKG_VERSION"));
        for b in &bundled {
            outln!(
                "  {:<20} {:<8} {:<13} sha256 {}",
                b.manifest.id,
                b.manifest.version,
                b.manifest.kind,
                &b.sha256[..16]
            );
        }
    }
    Ok(Exit::Success)
}

/// Writes a report, baseline, checkpoint or package: durable, 0644, and never replacing a
/// device, FIFO or socket (`-o /dev/null` stays a device).
pub fn write_output(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use crate::exit::HostResultExt;
    secflow_host::write_file(path, bytes, false).cli()
}
