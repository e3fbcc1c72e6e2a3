//! API access: tokens (create, list, revoke, authenticate) and the API policies that say
//! which token may call which route. The server asks here for every request; the CLI's
//! `secflow token` verbs create and revoke through the same operations, so both leave the
//! same audit trail.

use crate::{Host, HostError, Result};
use secflow_audit::{Action, Event};
use secflow_policy::PolicyDecision;
use secflow_policy::api::{ApiPolicy, ApiRequest};
use std::time::Duration;

pub use secflow_tokens::{Identity, NewToken, Refusal, TokenInfo};

/// What a route touches, for the API policies and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ApiResource<'a> {
    /// `plugin`, `scan`, `audit`, `policy`, `trust`, `token` or `system`.
    pub kind: &'a str,
    /// The plugin or scan id; `*` for a collection.
    pub id: &'a str,
}

/// What an API caller did to a scan job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanJobChange {
    Submitted,
    CancelAsked,
    /// A finished job and its results removed.
    Deleted,
}

impl Host {
    /// The directory of the API policies: `policy/api/` beside the admission policies.
    pub fn api_policy_dir(&self) -> std::path::PathBuf {
        self.paths().policy().join("api")
    }

    async fn tokens(&self) -> Result<secflow_tokens::TokenStore> {
        self.inner
            .tokens
            .get_or_try_init(|| async {
                secflow_tokens::TokenStore::open(&self.paths().root)
                    .await
                    .map_err(token_error)
            })
            .await
            .cloned()
    }

    /// Creates an API token with `role`; the secret is in the result and nowhere else.
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        expires_in: Option<Duration>,
    ) -> Result<NewToken> {
        let created = self
            .tokens()
            .await?
            .create(name, role, expires_in, self.actor())
            .await
            .map_err(token_error)?;
        let event = Event {
            details: serde_json::json!({
                "token": created.info.id,
                "name": created.info.name,
                "role": created.info.role,
                "expires_at": created.info.expires_at,
            }),
            ..self.event(
                Action::TokenCreate,
                None,
                "ok",
                format!("token {} ({role})", created.info.id),
            )
        };
        self.record_then(vec![event], Ok(created)).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.tokens().await?.list().await.map_err(token_error)
    }

    /// Revokes a token: the next request with it is refused, in every process.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        let revoked = self.tokens().await?.revoke(id).await.map_err(token_error)?;
        let event = Event {
            details: serde_json::json!({ "token": revoked.id }),
            ..self.event(Action::TokenRevoke, None, "ok", format!("token {id}"))
        };
        self.record_then(vec![event], Ok(revoked)).await
    }

    /// Checks a bearer token. `Ok(Err(_))` is a refusal to report (401), not a failure.
    pub async fn authenticate(
        &self,
        presented: &str,
    ) -> Result<std::result::Result<Identity, Refusal>> {
        self.tokens()
            .await?
            .authenticate(presented)
            .await
            .map_err(token_error)
    }

    /// Asks the API policies whether `who` may do `action` (a route action such as
    /// `plugins.install`) to `resource`. A denial is recorded in the audit log.
    pub async fn authorize(
        &self,
        who: &Identity,
        action: &str,
        resource: ApiResource<'_>,
    ) -> Result<PolicyDecision> {
        let policy = self.inner.api_policy.get(&self.api_policy_dir(), |dir| {
            ApiPolicy::load(dir).map_err(|e| HostError::invalid(e.to_string()))
        })?;
        let decision = policy.decide(&ApiRequest {
            token_id: &who.id,
            token_name: &who.name,
            role: &who.role,
            action,
            resource_kind: resource.kind,
            resource_id: resource.id,
        });
        if !decision.allowed {
            self.record_api_denial(
                action,
                resource,
                format!("{action} refused by {}", decision.policies.join(", ")),
                serde_json::json!({
                    "token": who.id,
                    "role": who.role,
                    "policies": decision.policies,
                    "errors": decision.errors,
                }),
            )
            .await?;
        }
        Ok(decision)
    }

    /// Records a change to a scan job made through the API, with the job's id and what
    /// the caller asked for.
    pub async fn record_scan_job(
        &self,
        change: ScanJobChange,
        job: &str,
        mut details: serde_json::Value,
    ) -> Result<()> {
        if let Some(map) = details.as_object_mut() {
            map.insert("job".into(), job.into());
        }
        let (action, verb) = match change {
            ScanJobChange::Submitted => (Action::ScanSubmit, "queued"),
            ScanJobChange::CancelAsked => (Action::ScanCancel, "cancel asked"),
            ScanJobChange::Deleted => (Action::ScanDelete, "deleted"),
        };
        let event = Event {
            details,
            ..self.event(action, None, "ok", format!("scan job {job} {verb}"))
        };
        self.record(vec![event]).await
    }

    /// Records a refused API request (no token, a bad token, or a policy denial).
    pub async fn record_api_denial(
        &self,
        action: &str,
        resource: ApiResource<'_>,
        reason: String,
        mut details: serde_json::Value,
    ) -> Result<()> {
        if let Some(map) = details.as_object_mut() {
            map.insert("route_action".into(), action.into());
            map.insert(
                "resource".into(),
                format!("{}:{}", resource.kind, resource.id).into(),
            );
        }
        let event = Event {
            details,
            ..self.event(Action::ApiDeny, None, "deny", reason)
        };
        self.record(vec![event]).await
    }
}

fn token_error(e: secflow_tokens::TokenError) -> HostError {
    use secflow_tokens::TokenError as E;
    match e {
        E::NotFound(_) => HostError::not_found(e.to_string()),
        E::UnknownRole(_) | E::BadName(_) => HostError::invalid(e.to_string()),
        E::Store(_) | E::Random(_) => HostError::internal(e.to_string()),
    }
}
