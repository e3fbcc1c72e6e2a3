//! The audit log as host operations use it: the host key that signs its checkpoints, the
//! events every operation records, and the queries `audit` and `stats` make.

use crate::{Host, HostError, Result, StateDir};
use secflow_audit::{Action, AuditLog, Checkpoint, Entry, Event, Filter, PluginRef, VerifyReport};
use secflow_policy::PolicyDecision;

/// Name of the host's own key pair in the key directory.
const HOST_KEY: &str = "secflow-host";

/// The host's signing key, created on first use (0600 in the key directory).
pub(crate) fn host_key(paths: &StateDir) -> Result<ed25519_dalek::SigningKey> {
    let keys = secflow_trust::KeyDir::new(paths.keys());
    if let Ok(key) = keys.signing_key(HOST_KEY) {
        return Ok(key);
    }
    keys.generate(HOST_KEY)
        .and_then(|_| keys.signing_key(HOST_KEY))
        .map_err(|e| HostError::internal(format!("cannot create the host key: {e}")))
}

/// The compile cache's key: derived from the host key with its own label, so it says
/// nothing about the key and stays outside the cache directory.
pub(crate) fn cache_key(paths: &StateDir) -> Result<secflow_runtime::CacheKey> {
    use sha2::{Digest, Sha256};
    let key = host_key(paths)?;
    let mut h = Sha256::new();
    h.update(b"secflow compile-cache key v1\0");
    h.update(key.to_bytes());
    Ok(secflow_runtime::CacheKey(h.finalize().into()))
}

pub(crate) fn plugin_ref(id: &str, version: &str, digest: &str) -> Option<PluginRef> {
    Some(PluginRef {
        id: id.to_string(),
        version: version.to_string(),
        digest: digest.to_string(),
    })
}

/// What verifying the audit log found.
#[derive(Debug, Clone)]
pub enum Integrity {
    Intact(VerifyReport),
    Tampered {
        first_bad_entry: Option<u64>,
        message: String,
    },
}

/// The security summary `stats` shows, read from the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub plugins_loaded: u64,
    pub plugin_runs: u64,
    pub verification_failures: u64,
    pub sandbox_violations: u64,
    pub policy_violations: u64,
    pub events: u64,
    pub events_by_action: std::collections::BTreeMap<String, u64>,
    pub last_event: Option<LastEvent>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastEvent {
    pub seq: u64,
    pub time: String,
    pub action: String,
}

impl Host {
    /// An event of `action` by this host's actor.
    pub(crate) fn event(
        &self,
        action: Action,
        plugin: Option<PluginRef>,
        decision: &str,
        reason: String,
    ) -> Event {
        Event {
            plugin,
            decision: Some(decision.into()),
            reason,
            ..Event::new(self.actor(), action)
        }
    }

    /// The audit event of a policy decision.
    pub(crate) fn decision_event(
        &self,
        action: secflow_policy::Action,
        plugin: Option<PluginRef>,
        decision: &PolicyDecision,
    ) -> Event {
        Event {
            details: serde_json::json!({
                "action": action.as_str(),
                "policies": decision.policies,
                "errors": decision.errors,
            }),
            ..self.event(
                Action::PolicyDecision,
                plugin,
                if decision.allowed { "allow" } else { "deny" },
                format!("{} by {}", action.as_str(), decision.policies.join(", ")),
            )
        }
    }

    pub(crate) async fn audit_log(&self) -> Result<&AuditLog> {
        self.inner
            .audit
            .get_or_try_init(|| async {
                std::fs::create_dir_all(&self.paths().root).map_err(|e| {
                    HostError::internal(format!(
                        "cannot create {}: {e}",
                        self.paths().root.display()
                    ))
                })?;
                AuditLog::open(&self.paths().audit_db(), host_key(self.paths())?)
                    .await
                    .map_err(|e| {
                        HostError::internal(format!(
                            "cannot open {}: {e}",
                            self.paths().audit_db().display()
                        ))
                    })
            })
            .await
    }

    /// Appends events in one durable commit. An operation that cannot record what it did
    /// fails.
    pub async fn record(&self, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self
            .inner
            .audit_failed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(HostError::internal(
                "cannot write the audit log: an earlier commit failed",
            ));
        }
        self.audit_log()
            .await?
            .append_batch(events)
            .await
            .map_err(|e| HostError::internal(format!("cannot write the audit log: {e}")))?;
        Ok(())
    }

    /// Queues `events` for the audit writer's next group commit (within milliseconds, in
    /// order with every record before and after) without waiting for it. For the events
    /// of runs that changed nothing (a live-traffic filter that allowed): a crash in the
    /// next milliseconds can lose them, never a decision. If a queued commit fails, every
    /// later record fails, so the host stops acting rather than act unrecorded.
    pub async fn record_soon(&self, events: Vec<Event>) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.inner.audit_failed.load(Ordering::Relaxed) {
            return Err(HostError::internal(
                "cannot write the audit log: an earlier commit failed",
            ));
        }
        if events.is_empty() {
            return Ok(());
        }
        let permit = self
            .inner
            .audit_backlog
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HostError::internal("the audit backlog is closed"))?;
        let committed = self
            .audit_log()
            .await?
            .enqueue_batch(events)
            .map_err(|e| HostError::internal(format!("cannot write the audit log: {e}")))?;
        let host = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = committed.await {
                host.audit_failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "queued audit events were not recorded");
            }
            drop(permit);
        });
        Ok(())
    }

    /// Waits until every batch queued by [`Host::record_soon`] is committed.
    pub(crate) async fn flush_audit(&self) -> Result<()> {
        let all = self
            .inner
            .audit_backlog
            .acquire_many(crate::AUDIT_BACKLOG)
            .await
            .map_err(|_| HostError::internal("the audit backlog is closed"))?;
        drop(all);
        if self
            .inner
            .audit_failed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(HostError::internal(
                "queued audit events were not recorded (the log stopped taking entries)",
            ));
        }
        Ok(())
    }

    /// Records `events`, then returns `result`; a failure to record wins over success.
    pub(crate) async fn record_then<T>(&self, events: Vec<Event>, result: Result<T>) -> Result<T> {
        let recorded = self.record(events).await;
        let value = result?;
        recorded?;
        Ok(value)
    }

    /// Audit entries, in order.
    pub async fn audit_entries(&self, filter: &Filter) -> Result<Vec<Entry>> {
        Ok(self.audit_log().await?.entries(filter).await?)
    }

    /// A signed checkpoint of the log as it is now.
    pub async fn audit_checkpoint(&self) -> Result<Checkpoint> {
        Ok(self.audit_log().await?.checkpoint().await?)
    }

    /// Proves the log intact (and consistent with `external`, a checkpoint kept elsewhere),
    /// or names the first entry found wrong.
    pub async fn audit_verify(&self, external: Option<&std::path::Path>) -> Result<Integrity> {
        let external = external
            .map(Checkpoint::read)
            .transpose()
            .map_err(|e| HostError::invalid(e.to_string()))?;
        let log = self.audit_log().await?;
        match log.verify(&log.public_key(), external.as_ref()).await {
            Ok(report) => Ok(Integrity::Intact(report)),
            Err(secflow_audit::AuditError::Tampered { seq, message }) => Ok(Integrity::Tampered {
                first_bad_entry: seq,
                message,
            }),
            Err(other) => Err(HostError::invalid(other.to_string())),
        }
    }

    /// The security summary, read from the audit log.
    pub async fn audit_summary(&self) -> Result<Summary> {
        let log = self.audit_log().await?;
        let (counts, last) = log.summary().await?;
        Ok(Summary {
            plugins_loaded: log.distinct_plugins(Action::PluginInvoke).await?,
            plugin_runs: log.count(Action::PluginInvoke, None).await?,
            verification_failures: log.count(Action::SignatureVerify, Some("refused")).await?,
            sandbox_violations: log.count(Action::SandboxViolation, None).await?,
            policy_violations: log.count(Action::PolicyDecision, Some("deny")).await?,
            events: counts.iter().map(|(_, n)| n).sum(),
            events_by_action: counts.into_iter().collect(),
            last_event: last.map(|e| LastEvent {
                seq: e.seq,
                time: e.time,
                action: e.event.action,
            }),
        })
    }
}
