//! The host's decisions about proxy filters, shared by every front end that runs them on
//! live traffic (`secflow proxy` today): which filters may fail open, and the audit event
//! of every decision that is not a plain allow.

use crate::audit::plugin_ref;
use crate::{Cleared, Host, HostError, Result};
use secflow_audit::{Action, Event};
use secflow_manifest::PluginKind;

/// What a filter's failure (error, trap, timeout, limit) does to the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// The exchange is refused (the default).
    Closed,
    /// The exchange goes on as if the filter had allowed it.
    Open,
}

/// Whether a filter's verdicts are applied or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    Enforce,
    /// Records what it would have done; the exchange goes on unchanged.
    Shadow,
}

/// The category or tag that marks a filter as a security control.
pub const SECURITY_MARK: &str = "security";

/// Whether the plugin is marked as a security control (category or tag `security`).
pub fn is_security_filter(cleared: &Cleared) -> bool {
    let m = &cleared.manifest;
    m.categories
        .iter()
        .chain(&m.tags)
        .any(|c| c == SECURITY_MARK)
}

/// Checks that a cleared plugin may be used as a proxy filter with this failure mode: it
/// must be a proxy filter, and a security filter fails open only when the operator said
/// so explicitly (`insecure_fail_open`), since an attacker who can make it fail (a
/// crafted body that times it out) would otherwise walk past it.
pub fn check_filter(
    cleared: &Cleared,
    failure: FailureMode,
    insecure_fail_open: bool,
) -> Result<()> {
    if cleared.manifest.kind != PluginKind::ProxyFilter {
        return Err(HostError::invalid(format!(
            "{} is a {} plugin, not a proxy filter",
            cleared.id(),
            cleared.manifest.kind
        )));
    }
    if failure == FailureMode::Open && is_security_filter(cleared) && !insecure_fail_open {
        return Err(HostError::refused(format!(
            "{} is a security filter (category or tag `{SECURITY_MARK}`): failure = \"open\" would let anything that makes it fail pass unfiltered; keep it closed, or set insecure-fail-open = true to accept that",
            cleared.id()
        )));
    }
    Ok(())
}

/// Checks the limits an operator sets on one filter, tighter than its manifest's: a fuel
/// budget needs a plugin whose manifest meters fuel (`limits.fuel`), since only such a
/// plugin's code is compiled to count it; a silently ignored budget would be worse than
/// none.
pub fn check_tighter(cleared: &Cleared, tighter: &secflow_runtime::Tighter) -> Result<()> {
    if tighter.timeout_ms == Some(0) || tighter.fuel == Some(0) {
        return Err(HostError::invalid(format!(
            "{}: timeout-ms and fuel must be at least 1",
            cleared.id()
        )));
    }
    if tighter.fuel.is_some() && cleared.manifest.limits.fuel.is_none() {
        return Err(HostError::invalid(format!(
            "{}: fuel is set, but its manifest does not meter fuel (no limits.fuel), so no budget can be counted; use timeout-ms, or ask its publisher to meter it",
            cleared.id()
        )));
    }
    Ok(())
}

/// One filter decision on live traffic that is not a plain allow.
#[derive(Debug, Clone)]
pub struct FilterDecision<'a> {
    /// The proxy route's name.
    pub route: &'a str,
    /// `request` or `response`.
    pub phase: &'a str,
    /// `block`, `modify`, `shadow-block`, `shadow-modify`, `error`, `timeout`,
    /// `failed-open`.
    pub decision: &'a str,
    /// The reason code or the filter's own reason.
    pub reason: String,
    pub mode: FilterMode,
    pub failure: FailureMode,
    /// The request line as the proxy received it (method and path, no query values).
    pub request: String,
}

impl Host {
    /// Records that the proxy loaded a configuration (`decision` = `start` or `reload`) or
    /// refused one (`reload-refused`, `reason` saying why): which filters guard live
    /// traffic is a security decision, and a refused reload leaves the previous one in
    /// force, which the log must show as well. `details` names the configuration (its
    /// file and digest, its routes and their filters).
    pub async fn record_proxy_config(
        &self,
        decision: &str,
        reason: String,
        details: serde_json::Value,
    ) -> Result<()> {
        let event = Event {
            details,
            ..self.event(Action::ProxyConfig, None, decision, reason)
        };
        self.record(vec![event]).await
    }

    /// Records filter decisions in the audit log (one commit for all of them).
    pub async fn record_filter_decisions(
        &self,
        decisions: &[(&Cleared, FilterDecision<'_>)],
    ) -> Result<()> {
        if decisions.is_empty() {
            return Ok(());
        }
        let events = decisions
            .iter()
            .map(|(cleared, d)| Event {
                details: serde_json::json!({
                    "route": d.route,
                    "phase": d.phase,
                    "mode": d.mode,
                    "failure": d.failure,
                    "request": d.request,
                }),
                ..self.event(
                    Action::ProxyDecision,
                    plugin_ref(cleared.id(), &cleared.version, &cleared.digest),
                    d.decision,
                    d.reason.clone(),
                )
            })
            .collect();
        self.record(events).await
    }
}
