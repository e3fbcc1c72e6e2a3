//! The command-line interface, defined once as data; `--help` is generated from it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "secflow", version, about = "Run untrusted security plugins in a sandbox", long_about = None)]
pub struct Cli {
    /// State directory: component cache, key-value stores, keys, trust store, audit log, SDK
    /// copy [default: platform data dir]
    #[arg(long, global = true, env = "SECFLOW_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Directory of the Cedar admission policies [default: SECFLOW_HOME/policy]
    #[arg(long, global = true, env = "SECFLOW_POLICY_DIR", value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,

    /// More log output (-v info, -vv debug); SECFLOW_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log lines on stderr as text or as JSON objects (one per line, for log collectors)
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a directory or file with the plugin pipeline and report findings
    Scan(Box<ScanArgs>),
    /// Run a plugin once in the sandbox and print its result
    Run(RunArgs),
    /// Create, build and inspect plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage signing keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage the trust store: which keys may sign which plugins
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Read, checkpoint and verify the tamper-evident audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the admission policies and see what they decide
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve the REST API (docs/api.md) on the same state directory as the CLI
    Serve(Box<ServeArgs>),
    /// Run a reverse proxy that filters live HTTP traffic through installed proxy-filter
    /// plugins (docs/proxy.md), until SIGINT or SIGTERM; SIGHUP reloads the configuration
    Proxy {
        /// The proxy configuration: listen and admin addresses, TLS, limits, routes and
        /// their filters
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Manage API tokens for `secflow serve` (shown once, stored hashed)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Use plugin marketplaces: pin one, search it, apply its revocations
    /// (installs: `secflow plugin install ID --from NAME`)
    #[command(subcommand)]
    Marketplace(MarketplaceCommand),
    /// Security summary from the audit log: plugins, failures, violations, events
    Stats {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Print the version of secflow and of the plugins built into it
    Version {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `secflow completions bash > /etc/bash_completion.d/secflow`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `secflow man > /usr/local/share/man/man1/secflow.1`
    Man,
}

/// An audit time filter, normalized to the log's own format (UTC, microseconds) so that
/// comparing it with stored times is exact whatever offset the user wrote.
fn parse_since(s: &str) -> Result<String, String> {
    let text = s.trim();
    let full = if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let time = parse_rfc3339_with_offset(&full).ok_or_else(|| {
        format!("`{s}` is not a time; use RFC 3339 (2026-11-22T09:30:00Z) or a date (2026-11-22)")
    })?;
    Ok(humantime::format_rfc3339_micros(time).to_string())
}

/// RFC 3339 with `Z` or a `+HH:MM`/`-HH:MM` offset.
fn parse_rfc3339_with_offset(s: &str) -> Option<std::time::SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339(s) {
        return Some(t);
    }
    let (stamp, sign, offset) = match s.len().checked_sub(6).map(|i| s.split_at(i)) {
        Some((stamp, off)) if off.starts_with('+') => (stamp, 1i64, &off[1..]),
        Some((stamp, off)) if off.starts_with('-') => (stamp, -1i64, &off[1..]),
        _ => return None,
    };
    let (h, m) = offset.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let local = humantime::parse_rfc3339(&format!("{stamp}Z")).ok()?;
    let shift = std::time::Duration::from_secs(h * 3600 + m * 60);
    // 11:30+02:00 is 09:30Z.
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the policies in SECFLOW_HOME/policy (or the defaults) against the schema
    Check {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Write the default schema and policies to SECFLOW_HOME/policy to edit them
    Init,
    /// Show what the policies decide for a plugin, and which policies decided it
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "dev"])))]
    Explain {
        /// An installed plugin: judged with its grant, signers, violations and quarantine
        id: Option<String>,
        /// A plugin directory (manifest) to judge before packaging it
        #[arg(long, value_name = "DIR")]
        dev: Option<PathBuf>,
        /// Judge it as signed, by keys of these roles (publisher, marketplace); repeatable
        #[arg(long = "signed-by", value_name = "ROLE")]
        signed_by: Vec<String>,
        /// Judge it in developer mode (unsigned allowed)
        #[arg(long = "dev-mode")]
        dev_mode: bool,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit events, oldest first
    Log {
        /// Only events about this plugin id
        #[arg(long, value_name = "ID")]
        plugin: Option<String>,
        /// Only events at or after this time: RFC 3339 (2026-11-22T09:30:00Z,
        /// 2026-11-22T11:30:00+02:00) or a date (2026-11-22, midnight UTC)
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<String>,
        /// Keep printing new events as they are appended
        #[arg(long)]
        follow: bool,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Prove the log intact; names the first edited, deleted or reordered entry
    Verify {
        /// Also check against a checkpoint kept elsewhere (detects truncation and rewriting)
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint (size and Merkle root) of the log now and print or save it
    Checkpoint {
        /// Write the checkpoint to FILE instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an Ed25519 key pair (the private key is written 0600 and never printed)
    Generate {
        /// Local key name
        #[arg(long)]
        name: String,
    },
    /// List local key pairs
    List {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Print a key's public key file, to share with verifiers
    Export {
        /// Local key name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a key: a local key name or a public key file
    Add {
        /// A local key name or a public key file
        key: String,
        /// What the key may sign: publisher (plugins), marketplace (countersignatures),
        /// revocation (revocation lists)
        #[arg(long, default_value = "publisher", value_parser = parse_role)]
        role: secflow_host::types::Role,
        /// Plugin ids the key may sign, as globs (repeatable)
        #[arg(long = "scope", default_value = "*")]
        scopes: Vec<String>,
    },
    /// Stop trusting a key (by id or name)
    Remove {
        /// Key id or name, as `trust list` shows it
        key: String,
    },
    /// List trusted keys, thresholds and revocations
    List {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Require K distinct trusted signatures for plugin ids matching SCOPE
    Threshold {
        /// Plugin ids the rule applies to, as a glob (e.g. `acme-*`)
        scope: String,
        /// Trusted signatures needed (K)
        required: usize,
    },
    /// Replace key FROM by key TO (local names); FROM signs the rotation and is retired
    Rotate {
        /// Local key to retire (it signs the rotation)
        #[arg(long)]
        from: String,
        /// Local key that takes its place
        #[arg(long)]
        to: String,
    },
    /// Revoke a key id or package digest, signing the list with a local revocation key
    Revoke {
        /// Key id or package sha256 to revoke
        item: String,
        /// Local key with the revocation role
        #[arg(long = "sign-with")]
        sign_with: String,
        /// Revoke from this time (seconds since the epoch); default now, so signatures made
        /// before it stay valid. For a compromised key use 0: every signature it ever made
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, default_value = "revoked by the administrator")]
        reason: String,
        /// Also write the signed list here, for other machines (`trust import`)
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import a signed revocation list or key rotation (offline)
    Import {
        /// The signed document (`trust revoke -o` or a rotation)
        file: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<secflow_host::types::Role, String> {
    s.parse()
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["plugin", "dev"])))]
pub struct RunArgs {
    /// An installed plugin's id: runs its active version with its stored grant
    pub plugin: Option<String>,

    /// Run the plugin straight from its source directory (manifest + built component)
    #[arg(long, value_name = "DIR")]
    pub dev: Option<PathBuf>,

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

    /// Bind a granted guest directory to a host directory (repeatable). For an installed
    /// plugin only directories its grant names can be bound
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

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Directory or file to scan; - scans what is on stdin (as a file named `stdin`)
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// Report format
    #[arg(long, short, default_value = "table", value_parser = ["table", "json", "sarif", "html"])]
    pub format: String,

    /// Write the report to FILE instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Exit 1 when a finding has at least this severity (critical, high, medium, low, info)
    #[arg(long, env = "SECFLOW_FAIL_ON", value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<secflow_scan::Severity>,

    /// Run only these plugins (repeatable; ids)
    #[arg(long = "plugin", value_name = "ID")]
    pub plugins: Vec<String>,

    /// Leave these plugins out (repeatable; ids)
    #[arg(long = "exclude-plugin", value_name = "ID")]
    pub exclude_plugins: Vec<String>,

    /// Also run the plugin in DIR (manifest + built component), e.g. one you are writing
    #[arg(long = "dev", value_name = "DIR")]
    pub dev: Vec<PathBuf>,

    /// Also run an opt-in bundled plugin that uses the network (e.g. nvd-enricher)
    #[arg(long = "with", value_name = "ID")]
    pub with: Vec<String>,

    /// Grant a plugin's declared directory, e.g. kev-epss-enricher:/feeds=./feeds (repeatable).
    /// Bundled plugins that read files run only when their directories are mounted
    #[arg(long = "mount", value_name = "PLUGIN:GUEST=HOST")]
    pub mounts: Vec<String>,

    /// Plugin configuration (repeatable); VALUE is parsed as JSON, else taken as a string
    #[arg(long = "config", short = 'c', value_name = "PLUGIN.KEY=VALUE")]
    pub config: Vec<String>,

    /// Extra code-pattern rule files (*.yaml, *.yml) for the code-patterns detector
    #[arg(long, value_name = "DIR")]
    pub rules: Vec<PathBuf>,

    /// Parallel scan jobs, at least 1 [default: number of cores]
    #[arg(long, short, env = "SECFLOW_JOBS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,

    /// Skip files larger than this (bytes; K, M, G suffixes)
    #[arg(long, default_value = "10M", env = "SECFLOW_MAX_FILE_SIZE", value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Do not report findings recorded in this baseline file
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Record every current finding in FILE as the new baseline
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Show secrets in snippets and messages instead of redacting them
    #[arg(long)]
    pub no_redact: bool,

    /// List only findings of these severities (comma-separated or repeated), e.g.
    /// --severity critical,high; --fail-on still counts every finding
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_severity)]
    pub severity: Vec<secflow_scan::Severity>,

    /// Leave out paths matching this glob (gitignore syntax, relative to PATH; repeatable),
    /// e.g. --exclude 'tests/**'
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Also scan files that .gitignore, .ignore and .secflowignore exclude
    #[arg(long)]
    pub no_ignore: bool,

    /// Ignore the project's .secflow.toml (found upward from PATH, up to the git work
    /// tree's root)
    #[arg(long)]
    pub no_project_config: bool,

    /// Print nothing but the report and errors (no progress, notices or summary lines)
    #[arg(long, short)]
    pub quiet: bool,

    /// Colors in the table: auto (only on a terminal; NO_COLOR and FORCE_COLOR respected),
    /// always or never
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,

    /// No progress bar (it is drawn only on a terminal anyway)
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_severity(s: &str) -> Result<secflow_scan::Severity, String> {
    s.parse()
}

/// `10M`, `512K`, `1G` or a number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{s}` is not a size; use bytes or a K, M or G suffix, e.g. 10M"))
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a buildable plugin crate (manifest, source, test)
    New(NewArgs),
    /// Compile a plugin to a component and validate it against its manifest
    Build(BuildArgs),
    /// Pack a built plugin directory into a reproducible .sfpkg package
    Pack(PackArgs),
    /// Add a signature to a package (others are kept)
    Sign {
        /// Package file (.sfpkg)
        file: PathBuf,
        /// Local key name
        #[arg(long)]
        key: String,
        /// Signature lifetime in days (at least 1: a signature that expires as it is made
        /// would be refused by everyone who verifies it)
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=36500))]
        expires_in_days: Option<u64>,
    },
    /// Verify a package against the trust store (exit 3 when refused)
    Verify {
        /// Package file (.sfpkg)
        file: PathBuf,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
        /// Accept a version older than one already trusted (recorded in the store)
        #[arg(long)]
        allow_rollback: bool,
    },
    /// Print the JSON Schema of plugin.toml / plugin.yaml
    Schema,
    /// Verify, admit by policy, approve and install packages (dependencies first)
    Install(InstallArgs),
    /// Install a newer version of an installed plugin; more capabilities wait for approval
    Upgrade(InstallArgs),
    /// Upgrade plugins installed from a marketplace to the newest version it lists (not
    /// yanked); more capabilities wait for approval as with any upgrade
    Update {
        /// Only this plugin [default: every plugin installed from a marketplace]
        id: Option<String>,
        /// Grant what the new versions ask for more, without a prompt
        #[arg(long, short)]
        yes: bool,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed plugin, its versions, grants and records
    Uninstall {
        /// Plugin id
        id: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Turn an installed plugin on; approves a pending capability increase
    Enable {
        /// Plugin id
        id: String,
        /// Approve a pending capability increase without a prompt
        #[arg(long, short)]
        yes: bool,
    },
    /// Turn an installed plugin off (kept installed)
    Disable {
        /// Plugin id
        id: String,
    },
    /// List the bundled and the installed plugins
    List {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Show an installed plugin: manifest, signatures, grant, stats, health
    Info {
        /// Plugin id
        id: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Search the bundled and installed plugins, or with --remote a marketplace's signed
    /// index, by text, kind, category or tag
    Search {
        /// Matched against id, name, description, categories and tags (case-insensitive)
        text: Option<String>,
        /// Search a marketplace's signed index instead of this host
        #[arg(long)]
        remote: bool,
        /// The marketplace (or mirror directory) for --remote [default: the only one added]
        #[arg(long, value_name = "NAME", requires = "remote")]
        from: Option<String>,
        /// Only plugins of this kind (detector, enricher, analytics, proxy-filter,
        /// log-analyzer, dynamic-tester, action)
        #[arg(long, value_parser = parse_kind)]
        kind: Option<secflow_manifest::PluginKind>,
        /// Only plugins in this category (case-insensitive)
        #[arg(long)]
        category: Option<String>,
        /// Only plugins with this tag (case-insensitive)
        #[arg(long)]
        tag: Option<String>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// List the stored versions of an installed plugin
    Versions {
        /// Plugin id
        id: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Show what an installed plugin asked for and what it was granted
    Permissions {
        /// Plugin id
        id: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Lift a quarantine (and reset the violation count)
    Release {
        /// Plugin id
        id: String,
    },
    /// Install or upgrade every .sfpkg in a directory by the same rules; --watch keeps
    /// admitting new and changed files (invalid ones are skipped with a warning)
    Sync {
        /// Directory of .sfpkg packages
        dir: PathBuf,
        /// Grant what the packages ask for (without it, packages that ask for capabilities
        /// are skipped and upgrades that ask for more are held)
        #[arg(long, short)]
        yes: bool,
        /// Keep watching the directory
        #[arg(long)]
        watch: bool,
        /// Seconds between looks at the directory with --watch
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        interval: f64,
    },
    /// Check the registry's integrity: every stored package present and unmodified
    Check {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Package files (.sfpkg), installed dependencies first, each atomically; or plugin
    /// ids (ID or ID@RANGE) to install from a marketplace (--from), with the dependencies
    /// they need
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The marketplace to install ids from, or a mirror directory written by `secflow
    /// marketplace mirror` (checked against the key of the marketplace it mirrors)
    /// [default: the only one added]
    #[arg(long, value_name = "NAME|DIR")]
    pub from: Option<String>,

    /// Grant every capability the package asks for, without a prompt
    #[arg(long, short)]
    pub yes: bool,

    /// Grant only this capability, as labelled in the listing (repeatable), e.g.
    /// fs:/feeds or net:https://services.nvd.nist.gov:443; the rest is denied at run time
    /// (for an install by id, also what its dependencies are granted)
    #[arg(long = "grant", value_name = "LABEL")]
    pub grants: Vec<String>,

    /// Bind a granted directory to a host directory (repeatable) [default: the same path]
    #[arg(long = "mount", value_name = "GUEST=HOST")]
    pub mounts: Vec<String>,

    /// Developer mode: accept an unsigned package (policies see `dev`)
    #[arg(long)]
    pub dev: bool,

    /// Accept a version older than one already trusted or installed (recorded)
    #[arg(long)]
    pub allow_rollback: bool,

    /// Print JSON instead of text (for scripts)
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; expose it behind TLS)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub bind: std::net::SocketAddr,
    /// PEM certificate chain: serve HTTPS (with --tls-key)
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Requests per second per token (bursts of twice that); 0 turns the limit off
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub rate_limit: u32,
    /// Plugin runs at once across all requests [default: 4 per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_runs: Option<u16>,
    /// Scan jobs running at once
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub scan_workers: u16,
    /// Scan jobs queued or running at most (more are refused with 503)
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub queue: u16,
    /// Allow scan jobs to name paths under DIR on this machine (repeatable); without it
    /// jobs upload an archive
    #[arg(long = "scan-root", value_name = "DIR")]
    pub scan_roots: Vec<PathBuf>,
    /// Largest upload (package or archive), e.g. 256M
    #[arg(long, default_value = "256M", value_parser = parse_size, value_name = "SIZE")]
    pub max_upload: u64,
    /// Whole-request deadline, e.g. 60s
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: std::time::Duration,
    /// Also serve the plugin marketplace (/v1/market/...): publishing with vetting,
    /// review and countersignature, the signed index and revocation list
    #[arg(long)]
    pub marketplace: bool,
}

#[derive(Debug, Subcommand)]
pub enum MarketplaceCommand {
    /// Add a marketplace and pin its key (trusted to countersign and to revoke packages)
    Add {
        /// A short name for it (a-z, 0-9, -)
        name: String,
        /// Its base URL, e.g. https://market.example.com, or file:///DIR for a mirror
        url: String,
        /// Its public key file, obtained out of band (GET /v1/market/key shows it)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// How often its revocation list is fetched (before runs and scans, and by a running
        /// `secflow serve`), 1s to 24h; a revoke reaches this host within it [default: 2m]
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        poll: Option<std::time::Duration>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// List the marketplaces added, with the index version last seen
    List {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Search a marketplace's signed index
    Search {
        /// Words that must all appear in the id, name, description or tags
        #[arg(default_value = "")]
        text: String,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Publish a signed package (a publisher token in SECFLOW_MARKET_TOKEN); prints the
    /// vetting report and whether it was approved or waits for review
    Publish {
        /// The .sfpkg, signed with a key registered to the publisher
        file: PathBuf,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        to: Option<String>,
        /// The API token (a publisher token named like the publisher)
        #[arg(long, env = "SECFLOW_MARKET_TOKEN", hide_env_values = true)]
        token: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Review: list the queue, or approve (countersign) or reject ID@VERSION (a reviewer
    /// token in SECFLOW_MARKET_TOKEN)
    Review {
        /// The version to decide, ID@VERSION; without it, the queue is listed
        target: Option<String>,
        /// Approve it: the marketplace countersigns and lists it
        #[arg(long, conflicts_with = "reject", requires = "reason")]
        approve: bool,
        /// Reject it
        #[arg(long, requires = "reason")]
        reject: bool,
        /// Why (kept with the version and in the audit log)
        #[arg(long)]
        reason: Option<String>,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// The API token (a reviewer token)
        #[arg(long, env = "SECFLOW_MARKET_TOKEN", hide_env_values = true)]
        token: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Rate a plugin this host installed from the marketplace (signed with the host's
    /// identity key; one rating per host and plugin, a new one replaces it)
    Rate {
        /// The plugin id
        id: String,
        /// 1 to 5
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        stars: u8,
        /// A short review
        #[arg(long, default_value = "")]
        text: String,
        /// The marketplace [default: the one it was installed from]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Yank ID@VERSION: version ranges stop picking it, installed copies keep working (a
    /// publisher token for its own versions, or an admin token, in SECFLOW_MARKET_TOKEN)
    Yank {
        /// The version, ID@VERSION
        target: String,
        /// Why (shown with the version and kept in the audit log)
        #[arg(long)]
        reason: String,
        /// Un-yank it instead
        #[arg(long)]
        undo: bool,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// The API token
        #[arg(long, env = "SECFLOW_MARKET_TOKEN", hide_env_values = true)]
        token: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Revoke ID@VERSION: its digest goes on the signed revocation list; clients refuse to
    /// run it and quarantine it at their next poll (a reviewer or admin token in
    /// SECFLOW_MARKET_TOKEN)
    Revoke {
        /// The version, ID@VERSION
        target: String,
        /// Why (kept with the version and in the audit log)
        #[arg(long)]
        reason: String,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// The API token
        #[arg(long, env = "SECFLOW_MARKET_TOKEN", hide_env_values = true)]
        token: String,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Write an air-gapped mirror: the signed index, the revocation list and every listed
    /// package, each checked; read it with `marketplace add NAME file:///DIR --key FILE`
    /// or `--from DIR`
    Mirror {
        /// Directory to write (created; refreshed in place when it holds a mirror)
        dir: PathBuf,
        /// The marketplace [default: the only one added]
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Fetch and apply revocation lists now (also done before runs and scans, and by a
    /// running `secflow serve`, every poll interval); revoked installed plugins are
    /// quarantined
    Sync {
        /// Only this marketplace [default: all]
        name: Option<String>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a hash
    Create {
        /// A name to recognise it by (who or what uses it)
        #[arg(long, default_value = "token")]
        name: String,
        /// What the API policies let it do
        #[arg(long, value_parser = ["viewer", "publisher", "reviewer", "operator", "admin"])]
        role: String,
        /// Lifetime, e.g. 30d or 12h [default: no expiry]
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        expires: Option<std::time::Duration>,
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets)
    List {
        /// Print JSON instead of text (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: every server refuses it from its next request
    Revoke {
        /// The token id (`secflow token list`)
        id: String,
    },
}
