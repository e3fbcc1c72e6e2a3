//! `secflow scan PATH`: the bundled plugins, enabled installed ones (with their grants) and
//! any `--dev` ones over a target, in the sandbox, reported as a table, JSON, SARIF or HTML.
//!
//! Exit codes: 0 clean (or below `--fail-on`), 1 findings at or above `--fail-on`, 2 usage
//! error, 4 partial scan (a plugin failed or hit a limit) without findings at or above
//! `--fail-on`. A gate fails on both; 1 wins because it is certain (more results could only
//! add findings), while 4 says findings may be missing.

use crate::cli::ScanArgs;
use crate::exit::{Exit, fail};
use crate::home::Home;
use secflow_scan::output::{self, Format};
use secflow_scan::{Baseline, ScanOptions, ScanPlugin};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// The plugin that takes `--rules` files.
const RULES_PLUGIN: &str = "code-patterns";

pub fn run(home: &Home, args: ScanArgs) -> anyhow::Result<Exit> {
    let format: Format = args
        .format
        .parse()
        .map_err(|e: String| fail(Exit::Usage, e))?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 256);
    if !args.path.exists() {
        return Err(fail(
            Exit::Usage,
            format!("{}: no such file or directory", args.path.display()),
        ));
    }
    let baseline = args
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()
        .map_err(|e| fail(Exit::Usage, e))?;

    // Every security-relevant event of the scan (admission of installed plugins, their
    // loads, each plugin's run, each failure and violation, the scan itself) is recorded,
    // also when the scan fails halfway; a log that cannot be written fails the command.
    let mut events: Vec<secflow_audit::Event> = Vec::new();
    let scanned = scan_recording(home, &args, jobs, baseline, &mut events);
    if let Err(e) = &scanned {
        events.push(secflow_audit::Event {
            actor: "scan".into(),
            action: "scan.run".into(),
            plugin: None,
            decision: Some("failed".into()),
            reason: args.path.display().to_string(),
            details: serde_json::json!({ "error": format!("{e:#}") }),
        });
    }
    let audited = super::audit_record(home, events);
    let report = scanned?;
    audited.map_err(|e| {
        fail(
            Exit::Usage,
            format!("the scan ran but its audit events could not be recorded: {e:#}"),
        )
    })?;

    if let Some(path) = &args.write_baseline {
        let baseline = Baseline::from_findings(&report.findings);
        super::write_atomic(path, baseline.to_json().as_bytes())?;
        errln!(
            "wrote a baseline of {} finding(s) to {}",
            baseline.findings.len(),
            path.display()
        );
    }

    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let color = to_terminal && std::env::var_os("NO_COLOR").is_none();
    let rendered = output::render(&report, format, color);
    match &args.output {
        Some(path) => {
            super::write_atomic(path, rendered.as_bytes())?;
            errln!(
                "wrote {} report to {}: {} finding(s){}",
                args.format,
                path.display(),
                report.findings.len(),
                if report.partial { ", partial scan" } else { "" }
            );
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            if let Err(e) = out.write_all(rendered.as_bytes()).and_then(|_| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }

    Ok(match args.fail_on {
        Some(threshold) if report.count_at_least(threshold) > 0 => Exit::Findings,
        _ if report.partial => Exit::PluginFailed,
        _ => Exit::Success,
    })
}

fn audit_events(report: &secflow_scan::ScanReport) -> Vec<secflow_audit::Event> {
    use secflow_audit::{Event, PluginRef};
    let plugin_ref = |id: &str| {
        report
            .plugins
            .iter()
            .find(|p| p.id == id)
            .map(|p| PluginRef {
                id: p.id.clone(),
                version: p.version.clone(),
                digest: p.digest.clone(),
            })
    };
    let mut events: Vec<Event> = report
        .plugins
        .iter()
        .map(|p| Event {
            actor: "scan".into(),
            action: "plugin.invoke".into(),
            plugin: plugin_ref(&p.id),
            decision: Some(if p.errors == 0 { "ok" } else { "error" }.into()),
            reason: p.stopped.clone().unwrap_or_default(),
            details: serde_json::json!({
                "origin": p.origin,
                "invocations": p.invocations,
                "files": p.files,
                "findings": p.findings,
                "errors": p.errors,
                "time_ms": p.time_ms,
                "peak_memory_bytes": p.peak_memory_bytes,
            }),
        })
        .collect();
    events.extend(report.errors.iter().map(|e| {
        Event {
            actor: "scan".into(),
            action: if e.violation {
                "sandbox.violation"
            } else {
                "plugin.error"
            }
            .into(),
            plugin: plugin_ref(&e.plugin),
            decision: Some(e.kind.clone()),
            reason: e.message.clone(),
            details: serde_json::json!({ "file": e.file }),
        }
    }));
    events.push(Event {
        actor: "scan".into(),
        action: "scan.run".into(),
        plugin: None,
        decision: Some(
            if report.partial {
                "partial"
            } else {
                "complete"
            }
            .into(),
        ),
        reason: report.target.clone(),
        details: serde_json::json!({
            "findings": report.summary.findings,
            "by_severity": report.summary.by_severity,
            "files_scanned": report.summary.files_scanned,
            "duration_ms": report.duration_ms,
        }),
    });
    events
}

/// A plugin that may join the scan. Bundled bytes are borrowed from the binary, not copied.
struct Candidate {
    manifest: secflow_manifest::Manifest,
    component: std::borrow::Cow<'static, [u8]>,
    /// `bundled`, `dev` or `installed`.
    origin: &'static str,
    /// The SHA-256 the build pinned, for bundled plugins.
    pinned: Option<&'static str>,
    /// For installed plugins: the checks passed and the stored grant.
    installed: Option<super::registry::Prepared>,
}

/// The kinds a scan runs.
fn scan_kind(kind: secflow_manifest::PluginKind) -> bool {
    use secflow_manifest::PluginKind as K;
    matches!(
        kind,
        K::Detector | K::LogAnalyzer | K::Enricher | K::Analytics
    )
}

/// Enabled installed plugins of the scan's kinds, cleared to run, and the policy engine that
/// cleared them. One that is refused (a revoked signer, a tampered blob, a policy) is left
/// out with a warning, not the scan. Without a registry there is nothing to clear, and the
/// policies are not even loaded: a scan with the bundled plugins does not depend on them.
type Installed = (
    Option<secflow_policy::PolicyEngine>,
    Vec<super::registry::Prepared>,
);

fn installed_plugins(
    home: &Home,
    events: &mut Vec<secflow_audit::Event>,
) -> anyhow::Result<Installed> {
    // A home without a registry has nothing installed; do not create one just to look.
    if !home.root.join("registry.db").exists() {
        return Ok((None, Vec::new()));
    }
    let engine = match super::registry::policy_engine(home) {
        Ok(engine) => engine,
        Err(e) => {
            // Fail closed for installed plugins only; the bundled ones need no admission.
            errln!("warning: installed plugins left out: {e:#}");
            return Ok((None, Vec::new()));
        }
    };
    let out = super::registry::block_on(async {
        let mut registry = super::registry::open(home).await?;
        let listed = registry
            .list()
            .await
            .map_err(super::registry::registry_error)?;
        let bundled: Vec<&str> = secflow_plugin_artifacts::BUNDLED
            .iter()
            .map(|b| b.name)
            .collect();
        let mut out = Vec::new();
        for p in listed {
            let scan_kind = p
                .kind
                .parse::<secflow_manifest::PluginKind>()
                .is_ok_and(scan_kind);
            if !scan_kind || !p.enabled || p.quarantined {
                continue;
            }
            if bundled.contains(&p.id.as_str()) {
                errln!(
                    "warning: installed plugin {} has the id of a bundled plugin; the bundled one runs",
                    p.id
                );
                continue;
            }
            match super::registry::prepare_installed(home, &mut registry, &engine, &p.id, events)
                .await
            {
                Ok(prepared) => out.push(prepared),
                Err(e) => errln!("warning: installed plugin {} left out: {e:#}", p.id),
            }
        }
        anyhow::Ok(out)
    })??;
    Ok((Some(engine), out))
}

/// Selects, checks and runs the plugins, pushing every audit event on the way into
/// `events` (so the caller records them whatever happens), and the registry bookkeeping of
/// installed plugins after the run.
fn scan_recording(
    home: &Home,
    args: &ScanArgs,
    jobs: usize,
    baseline: Option<Baseline>,
    events: &mut Vec<secflow_audit::Event>,
) -> anyhow::Result<secflow_scan::ScanReport> {
    let runtime = super::runtime(home)?;
    // Installed plugins of the scan's kinds join the bundled ones, each cleared by the same
    // checks as `secflow run ID` and run with its stored grant.
    let (engine, installed) = installed_plugins(home, events)?;
    let installed_meta: Vec<(String, String, secflow_registry::admission::Question)> = installed
        .iter()
        .map(|p| {
            (
                p.record.id.clone(),
                p.record.version.clone(),
                p.question.clone(),
            )
        })
        .collect();
    let plugins = select_plugins(&runtime, args, installed, events)?;
    if plugins.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no plugins left to run; check --plugin and --exclude-plugin",
        ));
    }

    let opts = ScanOptions {
        jobs,
        max_file_size: args.max_file_size,
        baseline,
        redact: !args.no_redact,
        ..ScanOptions::default()
    };
    let progress = Progress::new(!args.no_progress && std::io::stderr().is_terminal());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()?;
    // A plugin that fails to start is left out and the scan goes on, partial; one that
    // refuses its configuration stops it (a usage error).
    let (plugins, start_failures) = tokio.block_on(check_health(&runtime, plugins))?;
    if plugins.is_empty() {
        let why: Vec<String> = start_failures
            .iter()
            .map(|f| format!("{}: {}", f.failure.plugin, f.failure.message))
            .collect();
        return Err(fail(
            Exit::PluginFailed,
            format!("no plugin could start: {}", why.join("; ")),
        ));
    }
    let mut report = tokio
        .block_on(secflow_scan::scan(
            &runtime,
            &args.path,
            &plugins,
            &opts,
            progress.clone(),
        ))
        .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    progress.finish();
    for f in start_failures {
        errln!(
            "warning: {} left out of the scan: {}",
            f.failure.plugin,
            secflow_term::escape_line(&f.failure.message)
        );
        report.partial = true;
        report.errors.push(f.failure);
        report.plugins.push(f.stats);
    }
    events.extend(audit_events(&report));
    if let Some(engine) = &engine {
        record_installed_runs(home, engine, &report, installed_meta, events)?;
    }
    Ok(report)
}

/// After the scan: each installed plugin's run goes into its registry statistics, and a
/// sandbox violation counts toward its quarantine like one in `secflow run ID`.
fn record_installed_runs(
    home: &Home,
    engine: &secflow_policy::PolicyEngine,
    report: &secflow_scan::ScanReport,
    installed: Vec<(String, String, secflow_registry::admission::Question)>,
    events: &mut Vec<secflow_audit::Event>,
) -> anyhow::Result<()> {
    if installed.is_empty() {
        return Ok(());
    }
    super::registry::block_on(async {
        let mut registry = super::registry::open(home).await?;
        for (id, version, question) in installed {
            // The installed plugin itself, not a --dev one standing in for it.
            let Some(stats) = report
                .plugins
                .iter()
                .find(|p| p.id == id && p.origin == "installed")
            else {
                continue;
            };
            let failures: Vec<_> = report.errors.iter().filter(|e| e.plugin == id).collect();
            let violation = failures.iter().find(|e| e.violation);
            let outcome = failures.first().map_or("ok", |e| e.kind.as_str());
            let count = registry
                .record_run(&secflow_registry::RunRecord {
                    plugin_id: &id,
                    version: &version,
                    duration_us: (stats.time_ms * 1000.0) as u64,
                    outcome,
                    violation: violation.is_some(),
                })
                .await
                .map_err(super::registry::registry_error)?;
            let Some(violation) = violation else {
                continue;
            };
            let mut after = question.clone();
            after.facts.violations = count;
            let next = secflow_registry::admission::decide(engine, &after);
            if !next.allowed {
                let reason = format!(
                    "{count} sandbox violation(s), last: {} during a scan; policy {}",
                    violation.kind,
                    next.policies.join(", ")
                );
                registry
                    .quarantine(&id, &reason)
                    .await
                    .map_err(super::registry::registry_error)?;
                events.push(secflow_audit::Event {
                    actor: "scan".into(),
                    action: "plugin.quarantine".into(),
                    plugin: super::registry::plugin_ref(&id, &version, &stats.digest),
                    decision: Some("quarantined".into()),
                    reason: reason.clone(),
                    details: serde_json::json!({ "violations": count, "policies": next.policies }),
                });
                errln!(
                    "warning: {id} is quarantined ({reason}); it stays off until `secflow plugin release {id}`"
                );
            }
        }
        anyhow::Ok(())
    })?
}

/// The bundled plugins minus exclusions, plus `--dev` ones, each loaded with its config.
fn select_plugins(
    runtime: &secflow_runtime::Runtime,
    args: &ScanArgs,
    installed: Vec<super::registry::Prepared>,
    events: &mut Vec<secflow_audit::Event>,
) -> anyhow::Result<Vec<ScanPlugin>> {
    let mut candidates: Vec<Candidate> = Vec::new();
    for b in secflow_plugin_artifacts::BUNDLED {
        let manifest = secflow_manifest::Manifest::parse(
            b.manifest.as_bytes(),
            secflow_manifest::Format::Toml,
            &format!("bundled plugin {}", b.name),
        )
        .map_err(|e| fail(Exit::Usage, format!("bundled plugin {}: {e}", b.name)))?;
        candidates.push(Candidate {
            manifest,
            component: b.component.into(),
            origin: "bundled",
            pinned: Some(b.sha256),
            installed: None,
        });
    }
    for dir in &args.dev {
        let (manifest, wasm) = super::read_plugin_dir(dir)?;
        candidates.push(Candidate {
            manifest,
            component: wasm.into(),
            origin: "dev",
            pinned: None,
            installed: None,
        });
    }
    for prepared in installed {
        candidates.push(Candidate {
            manifest: prepared.manifest.clone(),
            component: prepared.component.clone().into(),
            origin: "installed",
            pinned: None,
            installed: Some(prepared),
        });
    }
    // One plugin per id in a scan: fingerprints, statistics and quarantine are keyed by id.
    // A `--dev` plugin stands in for a bundled or installed one of the same id (the
    // developer is testing a new version of it); two `--dev` ones cannot share an id.
    let dev_ids: Vec<String> = candidates
        .iter()
        .filter(|c| c.origin == "dev")
        .map(|c| c.manifest.id.to_string())
        .collect();
    if let Some(twice) = dev_ids
        .iter()
        .enumerate()
        .find_map(|(i, id)| dev_ids[..i].contains(id).then_some(id))
    {
        return Err(fail(
            Exit::Usage,
            format!("two --dev plugins have the id `{twice}`; give each its own id"),
        ));
    }
    candidates.retain(|c| {
        let replaced = c.origin != "dev" && dev_ids.contains(&c.manifest.id.to_string());
        if replaced {
            errln!(
                "note: the --dev plugin `{}` stands in for the {} one in this scan",
                c.manifest.id,
                c.origin
            );
        }
        !replaced
    });
    let known: Vec<String> = candidates
        .iter()
        .map(|c| c.manifest.id.to_string())
        .collect();
    let mut mounts = parse_mounts(&args.mounts)?;
    let unknown = |what: &str, id: &str| {
        fail(
            Exit::Usage,
            format!(
                "{what} names plugin `{id}`, which is not available; available: {}",
                known.join(", ")
            ),
        )
    };
    for id in args
        .plugins
        .iter()
        .chain(&args.exclude_plugins)
        .chain(&args.with)
        .chain(mounts.keys())
    {
        if !known.contains(id) {
            return Err(unknown("--plugin, --exclude-plugin, --with or --mount", id));
        }
    }
    let mut configs = parse_plugin_config(&args.config)?;
    for id in configs.keys() {
        if !known.contains(id) {
            return Err(unknown("--config", id));
        }
    }
    if !args.rules.is_empty() {
        let files = read_rule_files(&args.rules)?;
        configs
            .entry(RULES_PLUGIN.to_string())
            .or_default()
            .insert("extra-rules".into(), files);
    }

    let mut plugins = Vec::new();
    for Candidate {
        manifest,
        component: wasm,
        origin,
        pinned,
        installed,
    } in candidates
    {
        let id = manifest.id.to_string();
        let plugin_mounts = mounts.remove(&id).unwrap_or_default();
        // Bundled plugins that need something from the user run only when given it: network
        // access (`--with`, or naming it in `--plugin`) or their directories (`--mount`).
        let caps = &manifest.capabilities;
        let opted_in = args.with.contains(&id) || args.plugins.contains(&id);
        let available = origin != "bundled"
            || ((caps.network.is_empty() || opted_in)
                && caps.filesystem.len() <= plugin_mounts.len());
        if origin == "bundled"
            && !caps.filesystem.is_empty()
            && !plugin_mounts.is_empty()
            && caps.filesystem.len() > plugin_mounts.len()
        {
            return Err(fail(
                Exit::Usage,
                format!("{id} needs every declared directory mounted; see `secflow scan --help`"),
            ));
        }
        let wanted = available
            && (args.plugins.is_empty()
                || args.plugins.contains(&id)
                || args.with.contains(&id)
                || origin == "dev")
            && (origin == "bundled"
                || origin == "dev"
                || args.plugins.is_empty()
                || args.plugins.contains(&id))
            && !args.exclude_plugins.contains(&id);
        if !wanted {
            if configs.contains_key(&id) && id == RULES_PLUGIN && !args.rules.is_empty() {
                return Err(fail(
                    Exit::Usage,
                    format!("--rules needs the `{RULES_PLUGIN}` plugin, which is excluded"),
                ));
            }
            continue;
        }
        if let Some(pinned) = pinned {
            // The embedded bytes must be the build the binary pinned.
            if secflow_runtime::cache::digest(&wasm) != pinned {
                return Err(fail(
                    Exit::Refused,
                    format!(
                        "bundled plugin {id} does not match its pinned digest; reinstall secflow"
                    ),
                ));
            }
        }
        // An installed plugin gets its stored grant (a --mount re-binds a granted directory
        // only); bundled and --dev ones what they declare.
        let grants = match &installed {
            Some(prepared) => prepared.grants(&plugin_mounts)?,
            None => {
                let grants = secflow_runtime::Grants::all_declared(&manifest, &plugin_mounts)
                    .map_err(|e| fail(Exit::Usage, format!("{id}: {e}")))?;
                // A bundled plugin's store is its own; a --dev plugin keeps the dev store
                // `all_declared` gives it.
                match origin {
                    "bundled" => {
                        grants.with_kv_namespace(secflow_runtime::KvNamespace::bundled(&id))
                    }
                    _ => grants,
                }
            }
        };
        let plugin = match (super::load(runtime, manifest, &wasm, grants), &installed) {
            (Ok(plugin), _) => plugin,
            // An installed plugin that no longer loads (a newer host refusing what an older
            // one admitted) is left out like one that fails its checks, and the refusal is
            // recorded; bundled and --dev ones are the user's to fix.
            (Err(e), Some(prepared)) => {
                errln!("warning: installed plugin {id} left out: {e:#}");
                events.push(secflow_audit::Event {
                    actor: "scan".into(),
                    action: "plugin.load".into(),
                    plugin: super::registry::plugin_ref(
                        &id,
                        &prepared.record.version,
                        &prepared.record.digest,
                    ),
                    decision: Some("refused".into()),
                    reason: format!("{e:#}"),
                    details: serde_json::json!({}),
                });
                continue;
            }
            (Err(e), None) => return Err(e),
        };
        let config = serde_json::Value::Object(configs.remove(&id).unwrap_or_default());
        plugin.check_config(&config).map_err(|errors| {
            fail(
                Exit::Usage,
                format!("--config for {id}: {}", errors.join("; ")),
            )
        })?;
        plugins.push(ScanPlugin {
            plugin: Arc::new(plugin),
            config,
            origin: origin.to_string(),
        });
    }
    Ok(plugins)
}

/// `PLUGIN:GUEST=HOST` pairs, grouped by plugin; the host directory must exist.
fn parse_mounts(
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<(String, std::path::PathBuf)>>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, std::path::PathBuf)>> =
        Default::default();
    for pair in pairs {
        let bad = || {
            fail(
                Exit::Usage,
                format!(
                    "--mount `{pair}` is not PLUGIN:GUEST=HOST (e.g. kev-epss-enricher:/feeds=./feeds)"
                ),
            )
        };
        let (plugin, rest) = pair.split_once(':').ok_or_else(bad)?;
        let (guest, host) = rest.split_once('=').ok_or_else(bad)?;
        let host = std::path::PathBuf::from(host);
        if !host.is_dir() {
            return Err(fail(
                Exit::Usage,
                format!("--mount {pair}: {} is not a directory", host.display()),
            ));
        }
        out.entry(plugin.to_string())
            .or_default()
            .push((guest.to_string(), host));
    }
    Ok(out)
}

type PluginConfigs = std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// Initializes every plugin once with its configuration before the scan starts, so a bad
/// `--config` or `--rules` file is one clear error instead of a failure per batch.
async fn check_health(
    runtime: &secflow_runtime::Runtime,
    plugins: Vec<ScanPlugin>,
) -> anyhow::Result<(Vec<ScanPlugin>, Vec<StartFailure>)> {
    use secflow_runtime::bindings::{HealthStatus, PluginError};
    use secflow_runtime::{Call, InvokeError, Output};
    // Concurrently: each check compiles the plugin's rules once.
    let mut checks = tokio::task::JoinSet::new();
    for (i, p) in plugins.iter().enumerate() {
        let (runtime, plugin, config) = (runtime.clone(), p.plugin.clone(), p.config.clone());
        checks.spawn(async move { (i, runtime.invoke(&plugin, Call::Health, &config).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = checks.join_next().await {
        results.push(done?);
    }
    results.sort_by_key(|(i, _)| *i);
    let (mut healthy, mut failed) = (Vec::new(), Vec::new());
    for (p, (_, inv)) in plugins.into_iter().zip(results) {
        let id = p.plugin.manifest.id.to_string();
        let failure = match inv.outcome {
            Ok(Output::Health(h)) if h.status == HealthStatus::Unhealthy => Some((
                "unhealthy".to_string(),
                format!("the plugin says it is unhealthy: {}", h.message),
                false,
            )),
            // A configuration the plugin refuses is the user's to fix, before anything runs.
            Err(InvokeError::Plugin {
                error: PluginError::InvalidConfig(message),
            }) => {
                return Err(fail(
                    Exit::Usage,
                    format!("plugin {id} rejected its configuration: {message}"),
                ));
            }
            Err(e) => Some((e.kind().to_string(), format!("init: {e}"), e.is_violation())),
            Ok(_) => None,
        };
        match failure {
            // Left out of the scan, which goes on without it and is partial.
            Some((kind, message, violation)) => failed.push(StartFailure {
                stats: secflow_scan::PluginStats {
                    id: id.clone(),
                    version: p.plugin.manifest.version.to_string(),
                    kind: p.plugin.manifest.kind.to_string(),
                    digest: p.plugin.digest.clone(),
                    origin: p.origin.clone(),
                    invocations: 1,
                    errors: 1,
                    time_ms: inv.report.wall_time_us as f64 / 1000.0,
                    peak_memory_bytes: inv.report.peak_memory_bytes,
                    stopped: Some("failed to start; left out of the scan".into()),
                    ..Default::default()
                },
                failure: secflow_scan::PluginFailure {
                    plugin: id,
                    file: None,
                    kind,
                    message,
                    violation,
                },
            }),
            None => healthy.push(p),
        }
    }
    Ok((healthy, failed))
}

/// A plugin that failed its start-up check (`init` and `health`): reported like a failure
/// during the scan.
struct StartFailure {
    stats: secflow_scan::PluginStats,
    failure: secflow_scan::PluginFailure,
}

/// `PLUGIN.KEY=VALUE` pairs, grouped by plugin.
fn parse_plugin_config(pairs: &[String]) -> anyhow::Result<PluginConfigs> {
    let mut out = PluginConfigs::new();
    for pair in pairs {
        let bad = || {
            fail(
                Exit::Usage,
                format!(
                    "--config `{pair}` is not PLUGIN.KEY=VALUE (e.g. secrets-detector.disabled-rules='[\"jwt\"]')"
                ),
            )
        };
        let (target, value) = pair.split_once('=').ok_or_else(bad)?;
        let (plugin, key) = target.split_once('.').ok_or_else(bad)?;
        if plugin.is_empty() || key.is_empty() {
            return Err(bad());
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        out.entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value);
    }
    Ok(out)
}

/// Rule files of `--rules` directories, as `[{"file": name, "text": yaml}]`.
fn read_rule_files(dirs: &[std::path::PathBuf]) -> anyhow::Result<serde_json::Value> {
    let mut files = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            fail(
                Exit::Usage,
                format!(
                    "--rules {}: {e}; pass a directory of *.yaml rule files",
                    dir.display()
                ),
            )
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(fail(
                Exit::Usage,
                format!("--rules {}: no *.yaml or *.yml files in it", dir.display()),
            ));
        }
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("cannot read rule file {}: {e}", path.display()),
                )
            })?;
            files.push(serde_json::json!({
                "file": display_name(&path),
                "text": text,
            }));
        }
    }
    Ok(serde_json::Value::Array(files))
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// The progress bar: files, bytes and files/s, on stderr, only on a terminal.
#[derive(Debug)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Arc<Progress> {
        let bar = enabled.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} scanning: {pos} files, {msg} ({per_sec}) {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        Arc::new(Progress { bar })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl secflow_scan::Progress for Progress {
    fn scanned(&self, files: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(files);
            bar.set_message(secflow_scan::output::table::human_bytes(bytes));
        }
    }
}
