//! The command-line interface, defined once as data; `--help` is generated from it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "secflow", version, about = "Run untrusted security plugins in a sandbox", long_about = None)]
pub struct Cli {
    /// State directory: caches, key-value stores, SDK copy [default: platform data dir]
    #[arg(long, global = true, env = "SECFLOW_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// More log output (-v info, -vv debug); SECFLOW_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a plugin once in the sandbox and print its result
    Run(RunArgs),
    /// Create, build and inspect plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the plugin straight from its source directory (manifest + built component)
    #[arg(long, value_name = "DIR")]
    pub dev: PathBuf,

    /// Action to execute (action plugins); without it, list the plugin's actions
    #[arg(long, value_name = "NAME")]
    pub action: Option<String>,

    /// Input: a file, or - for stdin. Its meaning depends on the kind: action params (JSON),
    /// the file to scan (detector), findings (enricher, analytics; JSON array), log lines
    /// (log-analyzer), {"request":..,"response":..} (proxy-filter), a target (dynamic-tester)
    #[arg(long, short, value_name = "FILE|-")]
    pub input: Option<String>,

    /// Configuration value (repeatable); VALUE is parsed as JSON, else taken as a string
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    pub config: Vec<String>,

    /// Bind a granted guest directory to a host directory (repeatable)
    #[arg(long = "mount", value_name = "GUEST=HOST")]
    pub mounts: Vec<String>,

    /// Call the plugin's health check instead
    #[arg(long, conflicts_with = "action")]
    pub health: bool,

    /// Machine-readable output: the plugin's output as JSON (or the error as JSON)
    #[arg(long)]
    pub json: bool,

    /// Also print the resource report (wall time, fuel, peak memory, bytes, HTTP, denials)
    #[arg(long)]
    pub report: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a buildable plugin crate (manifest, source, test)
    New(NewArgs),
    /// Compile a plugin to a component and validate it against its manifest
    Build(BuildArgs),
    /// Pack a built plugin directory into a reproducible .sfpkg package
    Pack(PackArgs),
    /// Print the JSON Schema of plugin.toml / plugin.yaml
    Schema,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Plugin id (lowercase letters, digits, dashes); also the directory name
    pub name: String,

    /// Plugin kind
    #[arg(long, short, value_parser = parse_kind, default_value = "action")]
    pub kind: secflow_manifest::PluginKind,

    /// Parent directory to create the plugin in
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Plugin directory (with plugin.toml or plugin.yaml)
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Also pack the built plugin into this .sfpkg file
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print the build summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Plugin directory (manifest + built component)
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Package file to write [default: ID-VERSION.sfpkg]
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<secflow_manifest::PluginKind, String> {
    s.parse()
}
