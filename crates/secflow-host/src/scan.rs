//! `scan` as a host operation: which plugins join (bundled, enabled installed ones cleared
//! like `run ID`, and dev ones), their start-up checks, the pipeline, and the after-run path
//! for every plugin that took part. The CLI, the server's scan jobs and the workers all
//! call this.

use crate::{Cleared, Host, HostError, Origin, Result, RunOutcome};
use secflow_audit::{Action as AuditAction, Event};
use secflow_scan::{ScanOptions, ScanPlugin, ScanReport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The plugin that takes extra rule files.
pub const RULES_PLUGIN: &str = "code-patterns";

/// Configuration values per plugin id.
pub type PluginConfigs = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// What to scan and with which plugins.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    pub target: PathBuf,
    /// Plugins from source directories (each stands in for a bundled or installed one with
    /// its id).
    pub dev: Vec<(secflow_manifest::Manifest, Vec<u8>)>,
    /// Run only these plugins (empty: every available one).
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    /// Opt-in bundled plugins that use the network.
    pub with: Vec<String>,
    /// Directories to bind, per plugin id.
    pub mounts: BTreeMap<String, Vec<(String, PathBuf)>>,
    pub configs: PluginConfigs,
    /// Extra rule files for the rules plugin, as `[{"file", "text"}]`.
    pub rules: Option<serde_json::Value>,
    pub options: ScanOptions,
}

/// A finished scan.
#[derive(Debug)]
pub struct ScanOutcome {
    pub report: ScanReport,
    /// Things the user should know (a plugin left out, a dev plugin standing in).
    pub notices: Vec<String>,
    /// Plugins this scan put into quarantine, with the reason.
    pub quarantined: Vec<(String, String)>,
}

impl Host {
    /// Selects, clears, starts and runs the plugins over the target. Every audit event on
    /// the way is recorded, also when the scan fails halfway; a log that cannot be written
    /// fails the scan.
    pub async fn scan(
        &self,
        request: ScanRequest,
        progress: Arc<dyn secflow_scan::Progress>,
    ) -> Result<ScanOutcome> {
        let mut events = Vec::new();
        let target = request.target.display().to_string();
        let result = self.scan_recording(request, progress, &mut events).await;
        if let Err(e) = &result {
            events.push(Event {
                details: serde_json::json!({ "error": e.message }),
                ..self.event(AuditAction::ScanRun, None, "failed", target)
            });
        }
        let recorded = self.record(events).await;
        let outcome = result?;
        recorded
            .map_err(|e| e.context("the scan ran but its audit events could not be recorded"))?;
        Ok(outcome)
    }

    async fn scan_recording(
        &self,
        mut request: ScanRequest,
        progress: Arc<dyn secflow_scan::Progress>,
        events: &mut Vec<Event>,
    ) -> Result<ScanOutcome> {
        if !request.target.exists() {
            return Err(HostError::invalid(format!(
                "{}: no such file or directory",
                request.target.display()
            )));
        }
        secflow_scan::walk::check_excludes(&request.target, &request.options.exclude)
            .map_err(HostError::invalid)?;
        let mut notices = Vec::new();
        let candidates = self
            .scan_candidates(&mut request, events, &mut notices)
            .await?;
        let plugins = self.select(candidates, &mut request, events, &mut notices)?;
        if plugins.is_empty() {
            return Err(HostError::invalid(
                "no plugins left to run; check the plugin selection and exclusions",
            ));
        }
        let runtime = self.runtime()?;
        // A plugin that fails to start is left out and the scan goes on, partial; one that
        // refuses its configuration stops it (the user's to fix).
        let (plugins, start_failures) = start(&runtime, plugins).await?;
        if plugins.is_empty() {
            let why: Vec<String> = start_failures
                .iter()
                .map(|(_, f)| format!("{}: {}", f.failure.plugin, f.failure.message))
                .collect();
            return Err(HostError::plugin_failed(format!(
                "no plugin could start: {}",
                why.join("; ")
            )));
        }
        let scan_plugins: Vec<ScanPlugin> = plugins.iter().map(|(_, p)| p.clone()).collect();
        let mut report = secflow_scan::scan(
            &runtime,
            &request.target,
            &scan_plugins,
            &request.options,
            progress,
        )
        .await
        .map_err(|e| HostError::invalid(e.to_string()))?;
        let mut cleared: Vec<Cleared> = plugins.into_iter().map(|(c, _)| c).collect();
        for (c, f) in start_failures {
            notices.push(format!(
                "{} left out of the scan: {}",
                f.failure.plugin, f.failure.message
            ));
            report.partial = true;
            report.errors.push(f.failure);
            report.plugins.push(f.stats);
            cleared.push(c);
        }

        // The after-run path for every plugin that took part.
        let mut quarantined = Vec::new();
        let mut bookkeeping = Vec::new();
        for c in &cleared {
            let Some(stats) = report
                .plugins
                .iter()
                .find(|p| p.id == c.id() && p.origin == c.origin.as_str())
            else {
                continue;
            };
            let failures = report
                .errors
                .iter()
                .filter(|e| e.plugin == c.id())
                .map(|e| crate::Failure {
                    kind: e.kind.clone(),
                    message: e.message.clone(),
                    violation: e.violation,
                    file: e.file.clone(),
                })
                .collect();
            let outcome = RunOutcome {
                duration_us: (stats.time_ms * 1000.0) as u64,
                failures,
                health: None,
                denials: Vec::new(),
                details: serde_json::json!({
                    "call": "scan",
                    "invocations": stats.invocations,
                    "files": stats.files,
                    "findings": stats.findings,
                    "errors": stats.errors,
                    "time_ms": stats.time_ms,
                    "peak_memory_bytes": stats.peak_memory_bytes,
                    "stopped": stats.stopped,
                }),
            };
            // One plugin's bookkeeping failing does not cost the others their records.
            match self.after_run(c, &outcome, events).await {
                Ok(after) => {
                    if let Some(reason) = after.quarantined {
                        quarantined.push((c.id().to_string(), reason));
                    }
                }
                Err(e) => bookkeeping.push(e.context(format!("recording the run of {}", c.id()))),
            }
        }
        events.push(Event {
            details: serde_json::json!({
                "findings": report.summary.findings,
                "by_severity": report.summary.by_severity,
                "files_scanned": report.summary.files_scanned,
                "duration_ms": report.duration_ms,
            }),
            ..self.event(
                AuditAction::ScanRun,
                None,
                if report.partial {
                    "partial"
                } else {
                    "complete"
                },
                report.target.clone(),
            )
        });
        if let Some(e) = bookkeeping.into_iter().next() {
            return Err(e);
        }
        Ok(ScanOutcome {
            report,
            notices,
            quarantined,
        })
    }

    /// Every plugin that may join: bundled ones of the scan's kinds, enabled installed ones
    /// cleared to run (one that is refused is left out with a notice, not the scan), and
    /// dev ones. A dev plugin stands in for a bundled or installed one of its id.
    async fn scan_candidates(
        &self,
        request: &mut ScanRequest,
        events: &mut Vec<Event>,
        notices: &mut Vec<String>,
    ) -> Result<Vec<Cleared>> {
        let mut candidates = Vec::new();
        let bundled = crate::bundled()?;
        for b in &bundled {
            if b.manifest.kind.runs_in_scan() {
                candidates.push(Cleared::bundled(b));
            }
        }
        let dev_ids: Vec<String> = request.dev.iter().map(|(m, _)| m.id.to_string()).collect();
        if let Some(twice) = dev_ids
            .iter()
            .enumerate()
            .find_map(|(i, id)| dev_ids[..i].contains(id).then_some(id))
        {
            return Err(HostError::invalid(format!(
                "two dev plugins have the id `{twice}`; give each its own id"
            )));
        }
        // Installed plugins need the registry and the policies; a host without a registry
        // has nothing installed, and a scan with the bundled plugins does not depend on the
        // policies.
        if self.has_registry() {
            match self.policy() {
                Err(e) => notices.push(format!("installed plugins left out: {e}")),
                Ok(engine) => {
                    let mut registry = self.registry().await?;
                    for p in registry.list().await? {
                        let scan_kind = p
                            .kind
                            .parse::<secflow_manifest::PluginKind>()
                            .is_ok_and(|k| k.runs_in_scan());
                        if !scan_kind || !p.enabled || p.quarantined || dev_ids.contains(&p.id) {
                            continue;
                        }
                        match self
                            .clear_installed(&mut registry, &engine, &p.id, events)
                            .await
                        {
                            // An installed version replaces the bundled plugin of its id
                            // (it passed admission: signatures, policy and approval).
                            Ok(cleared) => {
                                if let Some(i) =
                                    candidates.iter().position(|c| c.id() == cleared.id())
                                {
                                    notices.push(format!(
                                        "installed {} {} replaces the bundled one in this scan",
                                        cleared.id(),
                                        cleared.version
                                    ));
                                    candidates[i] = cleared;
                                } else {
                                    candidates.push(cleared);
                                }
                            }
                            Err(e) => {
                                notices.push(format!("installed plugin {} left out: {e}", p.id))
                            }
                        }
                    }
                }
            }
        }
        candidates.retain(|c| {
            let replaced = dev_ids.iter().any(|d| d == c.id());
            if replaced {
                notices.push(format!(
                    "the dev plugin `{}` stands in for the {} one in this scan",
                    c.id(),
                    c.origin
                ));
            }
            !replaced
        });
        for (manifest, wasm) in std::mem::take(&mut request.dev) {
            candidates.push(Cleared::dev(manifest, wasm));
        }
        Ok(candidates)
    }

    /// Applies the selection (only, exclude, with, mounts) and loads each chosen plugin
    /// with its grants and configuration.
    fn select(
        &self,
        candidates: Vec<Cleared>,
        request: &mut ScanRequest,
        events: &mut Vec<Event>,
        notices: &mut Vec<String>,
    ) -> Result<Vec<(Cleared, ScanPlugin)>> {
        let known: Vec<String> = candidates.iter().map(|c| c.id().to_string()).collect();
        let unknown = |what: &str, id: &str| {
            HostError::invalid(format!(
                "{what} names plugin `{id}`, which is not available; available: {}",
                known.join(", ")
            ))
        };
        for id in request
            .only
            .iter()
            .chain(&request.exclude)
            .chain(&request.with)
            .chain(request.mounts.keys())
        {
            if !known.contains(id) {
                return Err(unknown("the plugin selection", id));
            }
        }
        for id in request.configs.keys() {
            if !known.contains(id) {
                return Err(unknown("the configuration", id));
            }
        }
        if let Some(rules) = request.rules.take() {
            request
                .configs
                .entry(RULES_PLUGIN.to_string())
                .or_default()
                .insert("extra-rules".into(), rules);
        }

        let mut plugins = Vec::new();
        for cleared in candidates {
            let id = cleared.id().to_string();
            let origin = cleared.origin;
            let plugin_mounts = request.mounts.remove(&id).unwrap_or_default();
            // Bundled plugins that need something from the user run only when given it:
            // network access (opted in, or named in `only`) or their directories (mounted).
            let caps = &cleared.manifest.capabilities;
            let opted_in = request.with.contains(&id) || request.only.contains(&id);
            let bundled = origin == Origin::Bundled;
            let available = !bundled
                || ((caps.network.is_empty() || opted_in)
                    && caps.filesystem.len() <= plugin_mounts.len());
            if bundled
                && !caps.filesystem.is_empty()
                && !plugin_mounts.is_empty()
                && caps.filesystem.len() > plugin_mounts.len()
            {
                return Err(HostError::invalid(format!(
                    "{id} needs every declared directory mounted"
                )));
            }
            let wanted = available
                && (request.only.is_empty()
                    || request.only.contains(&id)
                    || request.with.contains(&id)
                    || origin == Origin::Dev)
                && (origin != Origin::Installed
                    || request.only.is_empty()
                    || request.only.contains(&id))
                && !request.exclude.contains(&id);
            if !wanted {
                if id == RULES_PLUGIN
                    && request
                        .configs
                        .get(&id)
                        .is_some_and(|c| c.contains_key("extra-rules"))
                {
                    return Err(HostError::invalid(format!(
                        "extra rules need the `{RULES_PLUGIN}` plugin, which is excluded"
                    )));
                }
                continue;
            }
            let plugin = match self.load_recording(&cleared, &plugin_mounts, events) {
                Ok(plugin) => plugin,
                // An installed plugin that no longer loads (a newer host refusing what an
                // older one admitted) is left out like one that fails its checks; bundled
                // and dev ones are the user's to fix.
                Err(e) if origin == Origin::Installed => {
                    notices.push(format!("installed plugin {id} left out: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let config = serde_json::Value::Object(request.configs.remove(&id).unwrap_or_default());
            plugin.check_config(&config).map_err(|errors| {
                HostError::invalid(format!("configuration for {id}: {}", errors.join("; ")))
            })?;
            plugins.push((
                cleared,
                ScanPlugin {
                    plugin: Arc::new(plugin),
                    config,
                    origin: origin.as_str().to_string(),
                },
            ));
        }
        Ok(plugins)
    }
}

/// A plugin that failed its start-up check (`init` and `health`): reported like a failure
/// during the scan.
struct StartFailure {
    stats: secflow_scan::PluginStats,
    failure: secflow_scan::PluginFailure,
}

/// Initializes every plugin once with its configuration before the scan starts, so a bad
/// configuration is one clear error instead of a failure per batch.
async fn start(
    runtime: &secflow_runtime::Runtime,
    plugins: Vec<(Cleared, ScanPlugin)>,
) -> Result<(Vec<(Cleared, ScanPlugin)>, Vec<(Cleared, StartFailure)>)> {
    use secflow_runtime::bindings::{HealthStatus, PluginError};
    use secflow_runtime::{Call, InvokeError, Output};
    // Concurrently: each check compiles the plugin's rules once.
    let mut checks = tokio::task::JoinSet::new();
    for (i, (_, p)) in plugins.iter().enumerate() {
        let (runtime, plugin, config) = (runtime.clone(), p.plugin.clone(), p.config.clone());
        checks.spawn(async move { (i, runtime.invoke(&plugin, Call::Health, &config).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = checks.join_next().await {
        results.push(done.map_err(|e| HostError::internal(format!("a start-up check: {e}")))?);
    }
    results.sort_by_key(|(i, _)| *i);
    let (mut healthy, mut failed) = (Vec::new(), Vec::new());
    for ((cleared, p), (_, inv)) in plugins.into_iter().zip(results) {
        let id = p.plugin.manifest.id.to_string();
        let failure = match inv.outcome {
            Ok(Output::Health(h)) if h.status == HealthStatus::Unhealthy => Some((
                "unhealthy".to_string(),
                format!("the plugin says it is unhealthy: {}", h.message),
                false,
            )),
            Err(InvokeError::Plugin {
                error: PluginError::InvalidConfig(message),
            }) => {
                return Err(HostError::invalid(format!(
                    "plugin {id} rejected its configuration: {message}"
                )));
            }
            Err(e) => Some((e.kind().to_string(), format!("init: {e}"), e.is_violation())),
            Ok(_) => None,
        };
        match failure {
            Some((kind, message, violation)) => failed.push((
                cleared,
                StartFailure {
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
                },
            )),
            None => healthy.push((cleared, p)),
        }
    }
    Ok((healthy, failed))
}
