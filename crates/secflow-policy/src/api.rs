//! Who may call which route of `secflow serve`, in Cedar like admission policy, but in its
//! own namespace (`SecFlowApi`) and directory (`policy/api/`): an API token is not a
//! plugin's signer, and a site can change one policy set without touching the other.
//!
//! The same guarantees as [`PolicyEngine`](crate::PolicyEngine): strict validation against
//! the schema at load, default deny, forbid wins, fail closed on a policy set with errors or
//! a policy that errors while evaluating, and every decision names the policies that made it.

use crate::source::{
    Source, build_on_large_stack, diagnostic_problem, load_policy_file, nesting_problem,
    read_policy_dir, validation_problems,
};
use crate::{INVALID_REQUEST, POLICY_CHECK_FAILED, PolicyDecision, PolicyError, PolicyProblem};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// The schema file of an API policy directory.
pub const API_SCHEMA_FILE: &str = "api.cedarschema";
/// The embedded API schema.
pub const DEFAULT_API_SCHEMA: &str = include_str!("../schema/api.cedarschema");
/// The embedded API policies.
pub const DEFAULT_API_POLICIES: &str = include_str!("../policies/api.cedar");

const BUILTIN_SCHEMA_NAME: &str = "<built-in>/api.cedarschema";
const BUILTIN_POLICIES_NAME: &str = "<built-in>/api.cedar";

/// The roles a token can have, least to most powerful.
pub const ROLES: [&str; 5] = ["viewer", "publisher", "reviewer", "operator", "admin"];

/// Every route action of the API, as named in the schema.
pub const API_ACTIONS: [&str; 31] = [
    "plugins.list",
    "plugins.get",
    "plugins.permissions",
    "scans.get",
    "audit.read",
    "policy.read",
    "trust.read",
    "stats.read",
    "plugins.validate",
    "plugins.install",
    "plugins.upgrade",
    "plugins.uninstall",
    "plugins.enable",
    "plugins.disable",
    "plugins.approve",
    "audit.verify",
    "plugins.run",
    "scans.create",
    "scans.cancel",
    "scans.delete",
    "policy.check",
    "trust.write",
    "audit.checkpoint",
    "tokens.manage",
    "market.publishers",
    "security.read",
    "market.publish",
    "market.yank",
    "market.review",
    "market.revoke",
    "market.moderate",
];

/// One question: may this token do `action` to this resource?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest<'a> {
    pub token_id: &'a str,
    pub token_name: &'a str,
    pub role: &'a str,
    /// One of [`API_ACTIONS`].
    pub action: &'a str,
    /// `plugin`, `scan`, `audit`, `policy`, `trust`, `token`, `system` or `market`.
    pub resource_kind: &'a str,
    /// The plugin id, scan id, ... (`*` for collections).
    pub resource_id: &'a str,
}

/// A loaded, validated API policy set.
pub struct ApiPolicy {
    policies: PolicySet,
    authorizer: Authorizer,
    action_entities: Entities,
    token_type: EntityTypeName,
    resource_type: EntityTypeName,
    actions: HashMap<&'static str, EntityUid>,
    problems: Vec<PolicyProblem>,
    fail_closed: bool,
    sources: Vec<String>,
    /// Decisions already made by this policy set. A request is the whole input of a
    /// decision (the context is empty and nothing depends on time), so the same request
    /// gets the same answer; a server asks the same few questions thousands of times a
    /// second. Edited policies are a new `ApiPolicy` with an empty memo.
    memo: std::sync::Mutex<HashMap<String, PolicyDecision>>,
}

/// Decisions remembered at most; all are forgotten past it.
const MEMO_ENTRIES: usize = 4096;

impl std::fmt::Debug for ApiPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPolicy")
            .field("sources", &self.sources)
            .field("policies", &self.policies.num_of_policies())
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl ApiPolicy {
    /// The embedded schema and policies.
    pub fn defaults() -> ApiPolicy {
        Self::build(
            &Source {
                name: BUILTIN_SCHEMA_NAME.into(),
                text: DEFAULT_API_SCHEMA.into(),
            },
            &[Source {
                name: BUILTIN_POLICIES_NAME.into(),
                text: DEFAULT_API_POLICIES.into(),
            }],
        )
        .expect("the built-in API policies load (pinned by a test)")
    }

    /// Loads `dir/api.cedarschema` (or the embedded schema) and every `dir/*.cedar` (or the
    /// embedded policies when there is none). Errors name file and line.
    pub fn load(dir: &Path) -> Result<ApiPolicy, PolicyError> {
        let (schema, policies) = read_policy_dir(
            dir,
            API_SCHEMA_FILE,
            (BUILTIN_SCHEMA_NAME, DEFAULT_API_SCHEMA),
            (BUILTIN_POLICIES_NAME, DEFAULT_API_POLICIES),
        )?;
        build_on_large_stack(&schema, &policies, Self::build)
    }

    fn build(schema_src: &Source, policy_srcs: &[Source]) -> Result<ApiPolicy, PolicyError> {
        let invalid = |message: String| {
            PolicyError::Invalid(vec![PolicyProblem {
                file: schema_src.name.clone(),
                line: None,
                policy: None,
                message,
                warning: false,
            }])
        };
        if let Some(problem) = nesting_problem(schema_src, true) {
            return Err(PolicyError::Invalid(vec![problem]));
        }
        let schema = Schema::from_cedarschema_str(&schema_src.text)
            .map(|(schema, _warnings)| schema)
            .map_err(|e| {
                PolicyError::Invalid(vec![diagnostic_problem(schema_src, &e, None, false)])
            })?;
        let mut problems = Vec::new();
        let mut policies = PolicySet::new();
        let mut origins = HashMap::new();
        for src in policy_srcs {
            load_policy_file(src, &mut policies, &mut origins, &mut problems);
        }
        let load_errors: Vec<PolicyProblem> =
            problems.iter().filter(|p| !p.warning).cloned().collect();
        if !load_errors.is_empty() {
            return Err(PolicyError::Invalid(load_errors));
        }
        let token_type =
            EntityTypeName::from_str("SecFlowApi::Token").map_err(|e| invalid(e.to_string()))?;
        let resource_type =
            EntityTypeName::from_str("SecFlowApi::Resource").map_err(|e| invalid(e.to_string()))?;
        let mut actions = HashMap::new();
        for name in API_ACTIONS {
            let uid = EntityUid::from_str(&format!("SecFlowApi::Action::{name:?}"))
                .map_err(|e| invalid(e.to_string()))?;
            actions.insert(name, uid);
        }
        let action_entities = schema
            .action_entities()
            .map_err(|e| invalid(e.to_string()))?;
        let engine = ApiPolicy {
            policies,
            authorizer: Authorizer::new(),
            action_entities,
            token_type,
            resource_type,
            actions,
            problems: Vec::new(),
            fail_closed: false,
            memo: Default::default(),
            sources: std::iter::once(schema_src)
                .chain(policy_srcs)
                .map(|s| s.name.clone())
                .collect(),
        };
        // The schema must describe what the server supplies: a token, every route action.
        let (sample, entities) = engine
            .cedar_request(&ApiRequest {
                token_id: "schema-check",
                token_name: "schema-check",
                role: "admin",
                action: "plugins.list",
                resource_kind: "system",
                resource_id: "*",
            })
            .map_err(&invalid)?;
        drop(sample);
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).map_err(|e| {
            invalid(format!(
                "the schema does not describe the facts the server supplies: {e}; keep the Token and Resource types of the built-in schema"
            ))
        })?;
        for (name, uid) in &engine.actions {
            let principal =
                EntityUid::from_type_name_and_id(engine.token_type.clone(), EntityId::new("x"));
            let resource =
                EntityUid::from_type_name_and_id(engine.resource_type.clone(), EntityId::new("x"));
            Request::new(
                principal,
                uid.clone(),
                resource,
                Context::empty(),
                Some(&schema),
            )
            .map_err(|e| {
                invalid(format!(
                    "the schema does not declare the route action `{name}` for tokens: {e}"
                ))
            })?;
        }
        problems.extend(validation_problems(
            schema,
            &engine.policies,
            &origins,
            policy_srcs,
        ));
        let fail_closed = problems.iter().any(|p| !p.warning);
        Ok(ApiPolicy {
            problems,
            fail_closed,
            ..engine
        })
    }

    /// Validation problems (errors make the engine deny everything).
    pub fn check(&self) -> Vec<PolicyProblem> {
        self.problems.clone()
    }

    /// The files the policies were loaded from, schema first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Decides one request. Never panics: anything unexpected is a denial saying why.
    pub fn decide(&self, req: &ApiRequest<'_>) -> PolicyDecision {
        if self.fail_closed {
            let errors = self
                .problems
                .iter()
                .filter(|p| !p.warning)
                .map(ToString::to_string)
                .collect();
            return PolicyDecision::deny(POLICY_CHECK_FAILED, errors);
        }
        let key = [
            req.token_id,
            req.token_name,
            req.role,
            req.action,
            req.resource_kind,
            req.resource_id,
        ]
        .join("\0");
        if let Some(decision) = self.memo.lock().expect("decision memo").get(&key) {
            return decision.clone();
        }
        let decision = match self.cedar_request(req) {
            Ok((request, entities)) => crate::decision_of(&self.authorizer.is_authorized(
                &request,
                &self.policies,
                &entities,
            )),
            Err(e) => PolicyDecision::deny(INVALID_REQUEST, vec![e]),
        };
        let mut memo = self.memo.lock().expect("decision memo");
        if memo.len() >= MEMO_ENTRIES {
            memo.clear();
        }
        memo.insert(key, decision.clone());
        decision
    }

    fn cedar_request(&self, req: &ApiRequest<'_>) -> Result<(Request, Entities), String> {
        let action = self
            .actions
            .get(req.action)
            .ok_or_else(|| format!("unknown API action `{}`", req.action))?
            .clone();
        let principal =
            EntityUid::from_type_name_and_id(self.token_type.clone(), EntityId::new(req.token_id));
        let resource = EntityUid::from_type_name_and_id(
            self.resource_type.clone(),
            EntityId::new(format!("{}:{}", req.resource_kind, req.resource_id)),
        );
        let token = Entity::new(
            principal.clone(),
            HashMap::from([
                (
                    "role".to_string(),
                    RestrictedExpression::new_string(req.role.to_string()),
                ),
                (
                    "name".to_string(),
                    RestrictedExpression::new_string(req.token_name.to_string()),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let target = Entity::new(
            resource.clone(),
            HashMap::from([(
                "kind".to_string(),
                RestrictedExpression::new_string(req.resource_kind.to_string()),
            )]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let entities = self
            .action_entities
            .clone()
            .add_entities([token, target], None)
            .map_err(|e| e.to_string())?;
        let request = Request::new(principal, action, resource, Context::empty(), None)
            .map_err(|e| e.to_string())?;
        Ok((request, entities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_DENY;

    fn ask(engine: &ApiPolicy, role: &str, action: &str) -> PolicyDecision {
        engine.decide(&ApiRequest {
            token_id: "tok_1",
            token_name: "ci",
            role,
            action,
            resource_kind: "plugin",
            resource_id: "data-processor",
        })
    }

    #[test]
    fn the_default_matrix() {
        let engine = ApiPolicy::defaults();
        assert!(
            engine.check().iter().all(|p| p.warning),
            "{:?}",
            engine.check()
        );
        for action in API_ACTIONS {
            assert!(ask(&engine, "admin", action).allowed, "admin {action}");
            let read = [
                "plugins.list",
                "plugins.get",
                "plugins.permissions",
                "scans.get",
                "audit.read",
                "policy.read",
                "trust.read",
                "stats.read",
            ]
            .contains(&action);
            let admin_only = [
                "trust.write",
                "audit.checkpoint",
                "tokens.manage",
                "market.publishers",
                "security.read",
            ]
            .contains(&action);
            let publish = ["market.publish", "market.yank"].contains(&action);
            let review = ["market.review", "market.revoke", "market.moderate"].contains(&action);
            assert_eq!(
                ask(&engine, "viewer", action).allowed,
                read,
                "viewer {action}"
            );
            assert_eq!(
                ask(&engine, "operator", action).allowed,
                !admin_only && !publish && !review,
                "operator {action}"
            );
            let publisher = read
                || publish
                || ["plugins.validate", "plugins.install", "plugins.upgrade"].contains(&action);
            assert_eq!(
                ask(&engine, "publisher", action).allowed,
                publisher,
                "publisher {action}"
            );
            assert_eq!(
                ask(&engine, "reviewer", action).allowed,
                read || review,
                "reviewer {action}"
            );
            assert!(
                !ask(&engine, "stranger", action).allowed,
                "unknown role {action}"
            );
        }
        let refused = ask(&engine, "viewer", "plugins.install");
        assert_eq!(refused.policies, vec!["api.viewer-read-only".to_string()]);
        let refused = ask(&engine, "operator", "trust.write");
        assert_eq!(
            refused.policies,
            vec!["api.administer-admin-only".to_string()]
        );
        assert_eq!(
            ask(&engine, "stranger", "plugins.list").policies,
            vec![DEFAULT_DENY.to_string()]
        );
        assert_eq!(
            ask(&engine, "admin", "plugins.nope").policies,
            vec![INVALID_REQUEST.to_string()]
        );
    }

    #[test]
    fn a_site_policy_dir_replaces_the_defaults_and_a_broken_one_denies_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.cedar"),
            "@id(\"only-admins\")\npermit(principal, action, resource) when { principal.role == \"admin\" };\n",
        )
        .unwrap();
        let engine = ApiPolicy::load(dir.path()).unwrap();
        assert!(!ask(&engine, "viewer", "plugins.list").allowed);
        assert!(ask(&engine, "admin", "plugins.list").allowed);
        std::fs::write(
            dir.path().join("typo.cedar"),
            "@id(\"typo\")\npermit(principal, action, resource) when { principal.rolle == \"admin\" };\n",
        )
        .unwrap();
        let engine = ApiPolicy::load(dir.path()).unwrap();
        let d = ask(&engine, "admin", "plugins.list");
        assert!(!d.allowed);
        assert_eq!(d.policies, vec![POLICY_CHECK_FAILED.to_string()]);
        std::fs::write(dir.path().join("bad.cedar"), "permit(principal").unwrap();
        let err = ApiPolicy::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.cedar"), "{err}");
    }
}
