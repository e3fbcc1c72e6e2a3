//! Who is calling: a bearer token checked by the host (constant time, revocation seen by
//! every process), a per-token rate limit, and then, per route, the API policies. Tokens
//! never reach a log line or an audit event; their public id does.

use crate::AppState;
use crate::problem::{ApiResult, Problem};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secflow_host::{ApiResource, Host, Identity};

/// An authenticated caller, with a host handle that records it as the actor.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub host: Host,
}

/// A refusal to authenticate: 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct Unauthenticated(Problem);

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let is_401 = self.0.status == 401;
        let mut response = self.0.into_response();
        if is_401 {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"secflow\""),
            );
        }
        response
    }
}

impl From<Problem> for Unauthenticated {
    fn from(p: Problem) -> Self {
        Unauthenticated(p)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Caller, Unauthenticated> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        Caller::with_token(parts, state, presented)
            .await
            .map_err(Unauthenticated::from)
    }
}

impl Caller {
    /// The caller that `presented` (a token from the `Authorization` header, or the
    /// dashboard's session cookie) identifies: authenticated by the host, rate limited per
    /// token. Failures are counted and audited (rate limited) as unauthenticated requests.
    pub(crate) async fn with_token(
        parts: &Parts,
        state: &AppState,
        presented: Option<&str>,
    ) -> Result<Caller, Problem> {
        let Some(presented) = presented else {
            state.denied_unauthenticated(parts, "no bearer token").await;
            return Err(Problem::unauthorized(
                "this route needs a token: send `Authorization: Bearer sft_...` (create one with `secflow token create`)",
            ));
        };
        let identity = match state
            .host
            .authenticate(presented)
            .await
            .map_err(Problem::from)?
        {
            Ok(identity) => identity,
            Err(refusal) => {
                state
                    .denied_unauthenticated(parts, &refusal.to_string())
                    .await;
                return Err(Problem::unauthorized(format!(
                    "{refusal}; use a valid token"
                )));
            }
        };
        if let Some(wait) = state.limits.check_rate(&identity.id) {
            state.metrics.denied("rate-limit");
            return Err(Problem::rate_limited(wait));
        }
        let host = state.host.acting_as(&format!("api:{}", identity.id));
        Ok(Caller { identity, host })
    }
}

impl Caller {
    /// Asks the API policies; a refusal is a 403 naming the policies (and an audit event).
    pub async fn allow(
        &self,
        state: &AppState,
        action: &str,
        resource: ApiResource<'_>,
    ) -> ApiResult<()> {
        let decision = self
            .host
            .authorize(&self.identity, action, resource)
            .await?;
        if decision.allowed {
            return Ok(());
        }
        state.metrics.denied("policy");
        Err(Problem::forbidden(
            format!(
                "token {} (role {}) may not {action} on {}:{}: refused by {}",
                self.identity.id,
                self.identity.role,
                resource.kind,
                resource.id,
                decision.policies.join(", ")
            ),
            &decision.policies,
        ))
    }
}
