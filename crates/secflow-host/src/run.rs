//! Loading a cleared plugin, invoking it, and the one after-run path every front end uses:
//! the registry's statistics and health, violations counted toward quarantine (the
//! policies set the threshold), and the audit events of the run.

use crate::audit::plugin_ref;
use crate::{Cleared, Host, HostError, Origin, Result};
use secflow_audit::{Action as AuditAction, Event};
use std::path::PathBuf;

/// One failure during a run (a scan can have several, one per file or batch).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// The runtime's error kind: `timeout`, `memory-limit`, `capability-denied`, ...
    pub kind: String,
    pub message: String,
    /// It broke a sandbox rule (counts toward quarantine).
    pub violation: bool,
    /// The file being processed, in a scan.
    pub file: Option<String>,
}

impl Failure {
    pub fn of(error: &secflow_runtime::InvokeError) -> Failure {
        Failure {
            kind: error.kind().to_string(),
            message: error.to_string(),
            violation: error.is_violation(),
            file: None,
        }
    }
}

/// What a run of one plugin came to, as the after-run path records it.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub duration_us: u64,
    pub failures: Vec<Failure>,
    /// For a health check: healthy, and its message.
    pub health: Option<(bool, String)>,
    /// Capabilities the sandbox denied.
    pub denials: Vec<String>,
    /// Figures for the audit event (call, fuel, memory, bytes, files, findings).
    pub details: serde_json::Value,
}

impl RunOutcome {
    /// The outcome of one invocation.
    pub fn of(inv: &secflow_runtime::Invocation, health_check: bool) -> RunOutcome {
        let r = &inv.report;
        RunOutcome {
            duration_us: r.wall_time_us,
            failures: inv
                .outcome
                .as_ref()
                .err()
                .map(Failure::of)
                .into_iter()
                .collect(),
            health: health_check.then(|| match &inv.outcome {
                Ok(secflow_runtime::Output::Health(h)) => (
                    h.status != secflow_runtime::bindings::HealthStatus::Unhealthy,
                    h.message.clone(),
                ),
                Ok(_) => (true, String::new()),
                Err(e) => (false, e.to_string()),
            }),
            denials: r.denials.clone(),
            details: serde_json::json!({
                "call": r.call,
                "outcome": inv.outcome.as_ref().err().map_or("ok", |e| e.kind()),
                "duration_us": r.wall_time_us,
                "fuel_used": r.fuel_used,
                "peak_memory_bytes": r.peak_memory_bytes,
                "bytes_in": r.bytes_in,
                "bytes_out": r.bytes_out,
                "http_requests": r.http_requests,
            }),
        }
    }
}

/// What the after-run path did.
#[derive(Debug, Clone, Default)]
pub struct AfterRun {
    /// Violations on record for an installed plugin since install or release.
    pub violations: u64,
    /// Set when this run put the plugin into quarantine: the reason.
    pub quarantined: Option<String>,
}

impl Host {
    /// Loads a cleared plugin into the sandbox with its grants (`extra_mounts` re-bind
    /// granted directories). Records the load of an installed plugin, and a refusal.
    pub async fn load(
        &self,
        cleared: &Cleared,
        extra_mounts: &[(String, PathBuf)],
    ) -> Result<secflow_runtime::Plugin> {
        let mut events = Vec::new();
        let result = self.load_recording(cleared, extra_mounts, &mut events);
        self.record_then(events, result).await
    }

    pub(crate) fn load_recording(
        &self,
        cleared: &Cleared,
        extra_mounts: &[(String, PathBuf)],
        events: &mut Vec<Event>,
    ) -> Result<secflow_runtime::Plugin> {
        if cleared.origin == Origin::Bundled
            && secflow_io::sha256_hex(&cleared.component[..]) != cleared.digest
        {
            return Err(HostError::refused(format!(
                "bundled plugin {} does not match its pinned digest; reinstall secflow",
                cleared.id()
            )));
        }
        let grants = cleared.grants(extra_mounts)?;
        let runtime = self.runtime()?;
        let pref = plugin_ref(cleared.id(), &cleared.version, &cleared.digest);
        match runtime.load((*cleared.manifest).clone(), &cleared.component, grants) {
            // The load of an installed plugin is recorded with its grant; bundled and dev
            // plugins' runs are recorded by the after-run path, without a load event each.
            Ok(plugin) if cleared.origin != Origin::Installed => Ok(plugin),
            Ok(plugin) => {
                events.push(Event {
                    details: serde_json::json!({
                        "origin": cleared.origin,
                        "component_sha256": plugin.digest,
                        "compile_cache": format!("{:?}", plugin.cache).to_lowercase(),
                        "imports": plugin.imports,
                        "granted": cleared
                            .grant()
                            .map(|g| secflow_registry::grants::labels(&g.capabilities)),
                    }),
                    ..self.event(AuditAction::PluginLoad, pref, "ok", String::new())
                });
                Ok(plugin)
            }
            Err(e) => {
                events.push(self.event(AuditAction::PluginLoad, pref, "refused", e.to_string()));
                Err(e.into())
            }
        }
    }

    /// The plugin loaded for a cleared run: loaded once per clearance (and once per
    /// bundled plugin) and shared by the runs that follow, which then also share the
    /// plugin's concurrency limit. Loading again would build the same sandbox from the same
    /// verified bytes and grants; only the load itself is recorded (a new clearance, after
    /// any change to what it depends on, loads again). Runs with extra mounts, `--dev`
    /// and trial plugins load every time.
    async fn loaded(
        &self,
        cleared: &Cleared,
        extra_mounts: &[(String, PathBuf)],
        events: &mut Vec<Event>,
    ) -> Result<std::sync::Arc<secflow_runtime::Plugin>> {
        use std::sync::Arc;
        if !extra_mounts.is_empty() || matches!(cleared.origin, Origin::Dev | Origin::Trial) {
            return Ok(Arc::new(self.load_recording(
                cleared,
                extra_mounts,
                events,
            )?));
        }
        if cleared.origin == Origin::Bundled {
            // Held while loading: concurrent first runs wait for one load.
            let mut bundled = self.inner.clearances.bundled.lock().await;
            if let Some(plugin) = bundled.get(&cleared.digest) {
                return Ok(plugin.clone());
            }
            let plugin = Arc::new(self.load_recording(cleared, extra_mounts, events)?);
            bundled.insert(cleared.digest.clone(), plugin.clone());
            return Ok(plugin);
        }
        cleared
            .loaded
            .get_or_try_init(|| async {
                Ok(Arc::new(self.load_recording(
                    cleared,
                    extra_mounts,
                    events,
                )?))
            })
            .await
            .cloned()
    }

    /// Loads and invokes a cleared plugin once, then runs the after-run path. The
    /// invocation's own failure is in its outcome, not an error of this operation.
    pub async fn invoke(
        &self,
        cleared: &Cleared,
        call: secflow_runtime::Call,
        config: &serde_json::Value,
        extra_mounts: &[(String, PathBuf)],
    ) -> Result<(secflow_runtime::Invocation, AfterRun)> {
        self.invoke_holding(cleared, call, config, extra_mounts, ())
            .await
    }

    /// [`Host::invoke`], holding `slot` (a front end's execution slot) for the sandboxed
    /// call only: it is released before the statistics and audit events are written, so
    /// the bookkeeping of finished runs, which shares commits, never holds back new ones.
    pub async fn invoke_holding<S>(
        &self,
        cleared: &Cleared,
        call: secflow_runtime::Call,
        config: &serde_json::Value,
        extra_mounts: &[(String, PathBuf)],
        slot: S,
    ) -> Result<(secflow_runtime::Invocation, AfterRun)> {
        self.invoke_recording(cleared, call, config, extra_mounts, slot, None)
            .await
    }

    /// [`Host::invoke`] for live traffic (the proxy's filters): the events of a run that
    /// succeeded are queued for the audit log's next group commit instead of waited for
    /// ([`Host::record_soon`]); a failed run's are waited for as in `invoke`. The caller
    /// records its own decisions on the output (a block, a modification) and waits for
    /// those. Without this, every filter call on every request would wait for an fsync.
    ///
    /// `tighter` lowers the manifest's deadline and fuel for this call (checked with
    /// [`crate::check_tighter`]).
    pub async fn invoke_live(
        &self,
        cleared: &Cleared,
        call: secflow_runtime::Call,
        config: &serde_json::Value,
        tighter: secflow_runtime::Tighter,
    ) -> Result<(secflow_runtime::Invocation, AfterRun)> {
        self.invoke_recording(cleared, call, config, &[], (), Some(tighter))
            .await
    }

    async fn invoke_recording<S>(
        &self,
        cleared: &Cleared,
        call: secflow_runtime::Call,
        config: &serde_json::Value,
        extra_mounts: &[(String, PathBuf)],
        slot: S,
        live: Option<secflow_runtime::Tighter>,
    ) -> Result<(secflow_runtime::Invocation, AfterRun)> {
        let mut events = Vec::new();
        let result = async {
            let health_check = matches!(call, secflow_runtime::Call::Health);
            let plugin = self.loaded(cleared, extra_mounts, &mut events).await?;
            let inv = self
                .runtime()?
                .invoke_within(&plugin, call, config, live.unwrap_or_default())
                .await;
            drop(slot);
            let after = self
                .after_run(cleared, &RunOutcome::of(&inv, health_check), &mut events)
                .await?;
            Ok((inv, after))
        }
        .await;
        match &result {
            Ok((inv, _)) if live.is_some() && inv.outcome.is_ok() => {
                self.record_soon(events).await?;
                result
            }
            _ => self.record_then(events, result).await,
        }
    }

    /// The one after-run path: for an installed plugin the run goes into its statistics
    /// (and health), and a sandbox violation counts toward quarantine; for every plugin
    /// the run, each failure and each violation is an audit event. Pushes the events; a
    /// clean run of an installed plugin records them (with every event pushed before) while
    /// its statistics are written, since neither waits for the other.
    pub async fn after_run(
        &self,
        cleared: &Cleared,
        outcome: &RunOutcome,
        events: &mut Vec<Event>,
    ) -> Result<AfterRun> {
        let id = cleared.id();
        let pref = plugin_ref(id, &cleared.version, &cleared.digest);
        let first = outcome.failures.first();
        let violation = outcome.failures.iter().find(|f| f.violation);
        let mut details = outcome.details.clone();
        if let Some(map) = details.as_object_mut() {
            map.insert("origin".into(), cleared.origin.as_str().into());
            if let Some(policies) = cleared.cleared_by() {
                map.insert("cleared_by".into(), policies.into());
            }
        }
        events.push(Event {
            details,
            ..self.event(
                AuditAction::PluginInvoke,
                pref.clone(),
                if first.is_none() { "ok" } else { "error" },
                first.map(|f| f.message.clone()).unwrap_or_default(),
            )
        });

        // The failures are recorded first: whatever the bookkeeping below runs into, the
        // violation that triggered it is in the log.
        let first_failure_event = events.len();
        for failure in &outcome.failures {
            events.push(Event {
                details: serde_json::json!({
                    "file": failure.file,
                    "denials": outcome.denials,
                }),
                ..self.event(
                    if failure.violation {
                        AuditAction::SandboxViolation
                    } else {
                        AuditAction::PluginError
                    },
                    pref.clone(),
                    &failure.kind,
                    failure.message.clone(),
                )
            });
        }

        let mut after = AfterRun::default();
        let (Origin::Installed, Some(question)) = (cleared.origin, cleared.question()) else {
            return Ok(after);
        };
        let run = secflow_registry::Run {
            plugin_id: id.to_string(),
            version: cleared.version.clone(),
            duration_us: outcome.duration_us,
            outcome: first.map_or_else(|| "ok".into(), |f| f.kind.clone()),
            violation: violation.is_some(),
        };
        if outcome.failures.is_empty() && outcome.health.is_none() {
            // A clean run changes nothing the host decides: its statistics are queued
            // (committed within milliseconds, with the runs around it), its audit event
            // is committed before the caller hears back.
            self.run_log().await?.note(run)?;
            after.violations = question.facts.violations;
            return Ok(after);
        }
        after.violations = self.run_log().await?.record(run).await?;
        for event in &mut events[first_failure_event..] {
            if let Some(map) = event.details.as_object_mut() {
                map.insert("violations".into(), after.violations.into());
            }
        }
        if outcome.health.is_none() && violation.is_none() {
            return Ok(after);
        }
        let mut registry = self.registry().await?;
        if let Some((ok, message)) = &outcome.health {
            registry
                .record_health(id, &cleared.version, *ok, message)
                .await?;
        }
        if let Some(violation) = violation {
            // The policies set the threshold: once they refuse the next run, quarantine.
            let engine = self.policy()?;
            let mut next = question.clone();
            next.facts.violations = after.violations;
            let decision = secflow_registry::admission::decide(&engine, &next);
            if !decision.allowed {
                let reason = format!(
                    "{} sandbox violation(s), last: {}; policy {}",
                    after.violations,
                    violation.kind,
                    decision.policies.join(", ")
                );
                registry.quarantine(id, &reason).await?;
                events.push(Event {
                    details: serde_json::json!({
                        "violations": after.violations,
                        "policies": decision.policies,
                    }),
                    ..self.event(
                        AuditAction::PluginQuarantine,
                        pref.clone(),
                        "quarantined",
                        reason.clone(),
                    )
                });
                after.quarantined = Some(reason);
            }
        }
        Ok(after)
    }
}

impl Host {
    /// Loads a component with no grants, the way the host will load it (imports against
    /// declared capabilities, exports against the declared kind), to validate a build.
    pub fn validate_component(
        &self,
        manifest: secflow_manifest::Manifest,
        wasm: &[u8],
    ) -> Result<secflow_runtime::Plugin> {
        Ok(self
            .runtime()?
            .load(manifest, wasm, secflow_runtime::Grants::none())?)
    }
}
