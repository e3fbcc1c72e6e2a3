//! The admission policies: writing the shipped defaults, checking them, and explaining
//! what they decide for a plugin.

use crate::{Host, HostError, Result};
use secflow_policy::{
    Action, PluginFacts, PolicyDecision, PolicyEngine, PolicyProblem, PolicyRequest,
};

/// What the policies decide for one plugin, action by action.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub plugin: PluginFacts,
    pub decisions: Vec<(Action, PolicyDecision)>,
}

/// The result of checking the policies.
#[derive(Debug, Clone)]
pub struct PolicyCheck {
    pub sources: Vec<String>,
    pub problems: Vec<PolicyProblem>,
}

impl PolicyCheck {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| !p.warning).count()
    }
}

impl Host {
    /// Writes the default schema and policies into the policy directory, to edit.
    pub fn policy_init(&self) -> Result<std::path::PathBuf> {
        let dir = self.paths().policy();
        PolicyEngine::install_defaults(&dir).map_err(|e| HostError::invalid(e.to_string()))?;
        Ok(dir)
    }

    /// Loads the policies afresh and checks them.
    pub fn policy_check(&self) -> Result<PolicyCheck> {
        let engine = PolicyEngine::load(&self.paths().policy())
            .map_err(|e| HostError::invalid(e.to_string()))?;
        Ok(PolicyCheck {
            sources: engine.sources().to_vec(),
            problems: engine.check(),
        })
    }

    /// What the policies decide for a plugin directory's manifest (as if signed by
    /// `signed_by`, in developer mode or not).
    pub fn explain_manifest(
        &self,
        manifest: &secflow_manifest::Manifest,
        signed_by: Vec<String>,
        dev: bool,
    ) -> Result<Explanation> {
        let facts = PluginFacts::from_manifest(manifest, !signed_by.is_empty(), signed_by);
        self.explain(facts, dev, false)
    }

    /// What the policies decide for an installed plugin, as `run` would judge it: its
    /// grant, the signers recorded at install, its violations and quarantine.
    pub async fn explain_installed(&self, id: &str) -> Result<Explanation> {
        let (plugin, record, grant) = self.registry().await?.snapshot(id).await?;
        let facts = secflow_registry::admission::facts(
            &record.manifest,
            Some(&grant.capabilities),
            &record.signers,
            plugin.violations,
            plugin.quarantined,
        );
        self.explain(facts, grant.dev, grant.pending)
    }

    fn explain(&self, plugin: PluginFacts, dev: bool, pending: bool) -> Result<Explanation> {
        let engine = self.policy()?;
        let decisions = Action::ALL
            .into_iter()
            .map(|action| {
                let request = PolicyRequest {
                    principal: self.actor().to_string(),
                    roles: Vec::new(),
                    action,
                    plugin: plugin.clone(),
                    dev,
                    approved: false,
                    capability_increase: pending,
                    from_marketplace: false,
                };
                (action, engine.decide(&request))
            })
            .collect();
        Ok(Explanation { plugin, decisions })
    }
}
