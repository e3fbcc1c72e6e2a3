//! Uninstall, enable, disable and release: each a registry change, judged where it needs
//! judging and recorded.

use crate::audit::plugin_ref;
use crate::{Answer, ApprovalRequest, Approver, Host, HostError, Remedy, Result};
use secflow_audit::{Action as AuditAction, Event};
use secflow_policy::Action;
use secflow_registry::admission::{self, Question};
use secflow_registry::grants;

impl Host {
    /// Removes every version of a plugin and its key-value stores. Returns the removed
    /// versions.
    pub async fn uninstall(&self, id: &str) -> Result<Vec<secflow_registry::VersionRecord>> {
        let removed = self.registry().await?.uninstall(id).await?;
        let active = removed.iter().find(|v| v.active).or(removed.first());
        self.record(vec![Event {
            details: serde_json::json!({
                "versions": removed.iter().map(|v| &v.version).collect::<Vec<_>>(),
            }),
            ..self.event(
                AuditAction::PluginUninstall,
                active.and_then(|v| plugin_ref(id, &v.version, &v.digest)),
                "ok",
                format!("uninstalled {id}"),
            )
        }])
        .await?;
        // The plugin's key-value store goes with it (a later install also starts clean).
        self.remove_kv(id);
        Ok(removed)
    }

    /// Turns a plugin on. A grant held for approval is shown to the approver first; the
    /// policies judge with what was approved. Returns the enabled version.
    pub async fn enable(&self, id: &str, approver: &dyn Approver) -> Result<String> {
        let mut events = Vec::new();
        let result = self.enable_inner(id, approver, &mut events).await;
        self.record_then(events, result).await
    }

    async fn enable_inner(
        &self,
        id: &str,
        approver: &dyn Approver,
        events: &mut Vec<Event>,
    ) -> Result<String> {
        let engine = self.policy()?;
        let mut registry = self.registry().await?;
        let (plugin, record, grant) = registry.snapshot(id).await?;
        let pref = plugin_ref(id, &plugin.version, &plugin.digest);
        let mut approval = None;
        if grant.pending {
            let asks = grants::asks(&grant.capabilities);
            let request = ApprovalRequest {
                manifest: &record.manifest,
                signers: &record.signers,
                asks: &asks,
                increase: None,
                installed: Some(&plugin),
                purpose: crate::Purpose::Enable,
            };
            approver.show(&request);
            approval = match approver.standing() {
                Some(via) => Some(via),
                None => match approver.ask(&request) {
                    Answer::Approved { via } => Some(via),
                    Answer::Declined | Answer::CannotAsk => None,
                },
            };
        }
        let approved = !grant.pending || approval.is_some();
        let facts = admission::facts(
            &record.manifest,
            Some(&grant.capabilities),
            &record.signers,
            plugin.violations,
            plugin.quarantined,
        );
        let decision = admission::decide(
            &engine,
            &Question {
                principal: self.actor().to_string(),
                action: Action::Enable,
                facts,
                dev: grant.dev,
                approved,
                capability_increase: grant.pending,
                from_marketplace: false,
            },
        );
        events.push(self.decision_event(Action::Enable, pref.clone(), &decision));
        if !decision.allowed {
            let mut err = HostError::refused(format!(
                "enabling {id} refused by policy {}",
                decision.policies.join(", ")
            ));
            if grant.pending && !approved {
                err = err.with_remedy(Remedy::ApproveOnEnable);
            } else if plugin.quarantined {
                err = err.with_remedy(Remedy::Release { id: id.into() });
            }
            return Err(err);
        }
        if !approved {
            return Err(HostError::refused(format!(
                "{id}: the new capabilities were not approved; nothing changed"
            )));
        }
        let actor = self.actor().to_string();
        registry
            .set_enabled(
                id,
                true,
                &plugin.version,
                approval.as_deref().map(|via| (via, actor.as_str())),
            )
            .await?;
        events.push(self.event(
            AuditAction::PluginEnable,
            pref,
            "ok",
            if grant.pending {
                format!("enabled {id} {}, new capabilities approved", plugin.version)
            } else {
                format!("enabled {id} {}", plugin.version)
            },
        ));
        Ok(plugin.version)
    }

    /// Turns a plugin off.
    pub async fn disable(&self, id: &str) -> Result<()> {
        let mut registry = self.registry().await?;
        let plugin = registry.require(id).await?;
        registry
            .set_enabled(id, false, &plugin.version, None)
            .await?;
        self.record(vec![self.event(
            AuditAction::PluginDisable,
            plugin_ref(id, &plugin.version, &plugin.digest),
            "ok",
            format!("disabled {id}"),
        )])
        .await
    }

    /// Lifts a quarantine and resets the violation count. Returns the violations cleared.
    pub async fn release(&self, id: &str) -> Result<u64> {
        let mut registry = self.registry().await?;
        let plugin = registry.require(id).await?;
        registry.release(id).await?;
        self.record(vec![self.event(
            AuditAction::PluginRelease,
            plugin_ref(id, &plugin.version, &plugin.digest),
            "ok",
            format!(
                "released {id} from quarantine ({} violation(s) cleared)",
                plugin.violations
            ),
        )])
        .await?;
        Ok(plugin.violations)
    }

    /// Quarantines every installed plugin whose active package digest the trust store has
    /// revoked (after importing a revocation list: a marketplace's kill list). Clearance
    /// already refuses to run it; the quarantine says why in `plugin list`. Releasing it
    /// does not help while the digest stays revoked (the next poll quarantines it again):
    /// install another version. Returns the ids quarantined now.
    pub async fn quarantine_revoked(&self) -> Result<Vec<String>> {
        let store = self.trust_store()?;
        let now = secflow_trust::now();
        let mut registry = self.registry().await?;
        let mut quarantined = Vec::new();
        let mut events = Vec::new();
        for plugin in registry.list().await? {
            if plugin.quarantined {
                continue;
            }
            let item = secflow_trust::RevokedItem::PackageSha256(plugin.digest.clone());
            let Some(revocation) = store
                .revocations
                .iter()
                .find(|r| r.item == item && r.from <= now.max(store.latest_time))
            else {
                continue;
            };
            let reason = format!("package revoked: {}", revocation.reason);
            registry.quarantine(&plugin.id, &reason).await?;
            events.push(self.event(
                AuditAction::PluginQuarantine,
                plugin_ref(&plugin.id, &plugin.version, &plugin.digest),
                "quarantined",
                reason,
            ));
            quarantined.push(plugin.id);
        }
        self.record(events).await?;
        Ok(quarantined)
    }
}
