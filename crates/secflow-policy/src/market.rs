//! The marketplace's vetting decision: is an upload approved (and countersigned) at once,
//! or does it wait for a reviewer? In Cedar like admission and API policy, in its own
//! namespace (`SecFlowMarket`) and directory (`policy/market/`), with the same guarantees:
//! strict validation against the schema at load, default deny (here: "wait for review"),
//! forbid wins, fail closed on a broken policy set, and the policies that decided named.

use crate::facts::CapabilityFacts;
use crate::source::{
    Source, build_on_large_stack, diagnostic_problem, load_policy_file, nesting_problem,
    read_policy_dir, validation_problems,
};
use crate::{INVALID_REQUEST, POLICY_CHECK_FAILED, PolicyDecision, PolicyError, PolicyProblem};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// The schema file of a marketplace policy directory.
pub const MARKET_SCHEMA_FILE: &str = "market.cedarschema";
/// The embedded marketplace schema.
pub const DEFAULT_MARKET_SCHEMA: &str = include_str!("../schema/market.cedarschema");
/// The embedded marketplace policies.
pub const DEFAULT_MARKET_POLICIES: &str = include_str!("../policies/market.cedar");

const BUILTIN_SCHEMA_NAME: &str = "<built-in>/market.cedarschema";
const BUILTIN_POLICIES_NAME: &str = "<built-in>/market.cedar";

/// What vetting found about one upload: the facts of `Upload` in the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadFacts {
    pub publisher: String,
    pub id: String,
    pub version: String,
    pub kind: String,
    pub first_version: bool,
    pub escalation: bool,
    pub secrets: u64,
    pub health_ok: bool,
    pub typosquat: bool,
    pub capabilities: CapabilityFacts,
}

/// A loaded, validated marketplace policy set.
pub struct MarketPolicy {
    policies: PolicySet,
    authorizer: Authorizer,
    action_entities: Entities,
    publisher_type: EntityTypeName,
    upload_type: EntityTypeName,
    action: EntityUid,
    problems: Vec<PolicyProblem>,
    fail_closed: bool,
    sources: Vec<String>,
}

impl std::fmt::Debug for MarketPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketPolicy")
            .field("sources", &self.sources)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl MarketPolicy {
    /// The embedded schema and policies.
    pub fn defaults() -> MarketPolicy {
        Self::build(
            &Source {
                name: BUILTIN_SCHEMA_NAME.into(),
                text: DEFAULT_MARKET_SCHEMA.into(),
            },
            &[Source {
                name: BUILTIN_POLICIES_NAME.into(),
                text: DEFAULT_MARKET_POLICIES.into(),
            }],
        )
        .expect("the built-in marketplace policies load (pinned by a test)")
    }

    /// Loads `dir/market.cedarschema` (or the embedded schema) and every `dir/*.cedar` (or
    /// the embedded policies when there is none). Errors name file and line.
    pub fn load(dir: &Path) -> Result<MarketPolicy, PolicyError> {
        let (schema, policies) = read_policy_dir(
            dir,
            MARKET_SCHEMA_FILE,
            (BUILTIN_SCHEMA_NAME, DEFAULT_MARKET_SCHEMA),
            (BUILTIN_POLICIES_NAME, DEFAULT_MARKET_POLICIES),
        )?;
        build_on_large_stack(&schema, &policies, Self::build)
    }

    fn build(schema_src: &Source, policy_srcs: &[Source]) -> Result<MarketPolicy, PolicyError> {
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
        let engine = MarketPolicy {
            policies,
            authorizer: Authorizer::new(),
            action_entities: schema
                .action_entities()
                .map_err(|e| invalid(e.to_string()))?,
            publisher_type: EntityTypeName::from_str("SecFlowMarket::Publisher")
                .map_err(|e| invalid(e.to_string()))?,
            upload_type: EntityTypeName::from_str("SecFlowMarket::Upload")
                .map_err(|e| invalid(e.to_string()))?,
            action: EntityUid::from_str("SecFlowMarket::Action::\"auto-approve\"")
                .map_err(|e| invalid(e.to_string()))?,
            problems: Vec::new(),
            fail_closed: false,
            sources: std::iter::once(schema_src)
                .chain(policy_srcs)
                .map(|s| s.name.clone())
                .collect(),
        };
        // The schema must describe what vetting supplies.
        let (request, entities) = engine
            .cedar_request(&UploadFacts::default())
            .map_err(&invalid)?;
        Entities::from_entities(entities.iter().cloned(), Some(&schema)).map_err(|e| {
            invalid(format!(
                "the schema does not describe the facts vetting supplies: {e}; keep the Publisher and Upload types of the built-in schema"
            ))
        })?;
        Request::new(
            request.principal().cloned().expect("a known principal"),
            engine.action.clone(),
            request.resource().cloned().expect("a known resource"),
            Context::empty(),
            Some(&schema),
        )
        .map_err(|e| {
            invalid(format!(
                "the schema does not declare the action `auto-approve` for publishers and uploads: {e}"
            ))
        })?;
        problems.extend(validation_problems(
            schema,
            &engine.policies,
            &origins,
            policy_srcs,
        ));
        let fail_closed = problems.iter().any(|p| !p.warning);
        Ok(MarketPolicy {
            problems,
            fail_closed,
            ..engine
        })
    }

    /// Validation problems (errors make every upload wait for review).
    pub fn check(&self) -> Vec<PolicyProblem> {
        self.problems.clone()
    }

    /// The files the policies were loaded from, schema first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// May this upload be approved without a reviewer? A denial names the forbids that
    /// matched: the reasons it waits for review.
    pub fn decide(&self, upload: &UploadFacts) -> PolicyDecision {
        if self.fail_closed {
            let errors = self
                .problems
                .iter()
                .filter(|p| !p.warning)
                .map(ToString::to_string)
                .collect();
            return PolicyDecision::deny(POLICY_CHECK_FAILED, errors);
        }
        match self.cedar_request(upload) {
            Ok((request, entities)) => crate::decision_of(&self.authorizer.is_authorized(
                &request,
                &self.policies,
                &entities,
            )),
            Err(e) => PolicyDecision::deny(INVALID_REQUEST, vec![e]),
        }
    }

    fn cedar_request(&self, upload: &UploadFacts) -> Result<(Request, Entities), String> {
        let principal = EntityUid::from_type_name_and_id(
            self.publisher_type.clone(),
            EntityId::new(&upload.publisher),
        );
        let resource = EntityUid::from_type_name_and_id(
            self.upload_type.clone(),
            EntityId::new(format!("{}@{}", upload.id, upload.version)),
        );
        let publisher = Entity::new(
            principal.clone(),
            HashMap::from([(
                "name".to_string(),
                RestrictedExpression::new_string(upload.publisher.clone()),
            )]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let caps = &upload.capabilities;
        let capabilities = crate::record([
            ("network", crate::long(caps.network)),
            (
                "network_private",
                RestrictedExpression::new_bool(caps.network_private),
            ),
            ("filesystem", crate::long(caps.filesystem)),
            (
                "filesystem_write",
                RestrictedExpression::new_bool(caps.filesystem_write),
            ),
            ("kv", RestrictedExpression::new_bool(caps.kv)),
        ])?;
        let string = |s: &str| RestrictedExpression::new_string(s.to_string());
        let attrs = HashMap::from([
            ("id".to_string(), string(&upload.id)),
            ("version".to_string(), string(&upload.version)),
            ("kind".to_string(), string(&upload.kind)),
            (
                "first_version".to_string(),
                RestrictedExpression::new_bool(upload.first_version),
            ),
            (
                "escalation".to_string(),
                RestrictedExpression::new_bool(upload.escalation),
            ),
            ("secrets".to_string(), crate::long(upload.secrets)),
            (
                "health_ok".to_string(),
                RestrictedExpression::new_bool(upload.health_ok),
            ),
            (
                "typosquat".to_string(),
                RestrictedExpression::new_bool(upload.typosquat),
            ),
            ("capabilities".to_string(), capabilities),
        ]);
        let target =
            Entity::new(resource.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;
        let entities = self
            .action_entities
            .clone()
            .add_entities([publisher, target], None)
            .map_err(|e| e.to_string())?;
        let request = Request::new(
            principal,
            self.action.clone(),
            resource,
            Context::empty(),
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok((request, entities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> UploadFacts {
        UploadFacts {
            publisher: "acme".into(),
            id: "acme-scanner".into(),
            version: "1.0.0".into(),
            kind: "detector".into(),
            first_version: true,
            health_ok: true,
            ..UploadFacts::default()
        }
    }

    #[test]
    fn a_clean_upload_is_approved_and_each_finding_sends_it_to_review_by_name() {
        let engine = MarketPolicy::defaults();
        assert!(
            engine.check().iter().all(|p| p.warning),
            "{:?}",
            engine.check()
        );
        let decision = engine.decide(&clean());
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.policies, ["market.auto-approve"]);
        type Change = fn(&mut UploadFacts);
        let cases: [(&str, Change); 6] = [
            ("market.escalation-needs-review", |u| u.escalation = true),
            ("market.secrets-need-review", |u| u.secrets = 2),
            ("market.failed-health-needs-review", |u| u.health_ok = false),
            ("market.typosquat-needs-review", |u| u.typosquat = true),
            ("market.powerful-capabilities-need-review", |u| {
                u.capabilities.network = 1
            }),
            ("market.powerful-capabilities-need-review", |u| {
                u.capabilities.filesystem_write = true
            }),
        ];
        for (policy, change) in cases {
            let mut upload = clean();
            change(&mut upload);
            let decision = engine.decide(&upload);
            assert!(!decision.allowed, "{policy}");
            assert_eq!(decision.policies, [policy]);
        }
        // Reading files and a key-value store alone do not need a person.
        let mut upload = clean();
        upload.capabilities.filesystem = 2;
        upload.capabilities.kv = true;
        assert!(engine.decide(&upload).allowed);
    }

    #[test]
    fn a_site_policy_replaces_the_defaults_and_a_broken_one_sends_everything_to_review() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.cedar"),
            "@id(\"review-first-versions\")\nforbid(principal, action, resource) when { resource.first_version };\n\
             @id(\"approve\")\npermit(principal, action, resource);\n",
        )
        .unwrap();
        let engine = MarketPolicy::load(dir.path()).unwrap();
        assert_eq!(engine.decide(&clean()).policies, ["review-first-versions"]);
        let mut later = clean();
        later.first_version = false;
        later.capabilities.network = 3;
        assert!(engine.decide(&later).allowed);
        std::fs::write(
            dir.path().join("typo.cedar"),
            "@id(\"typo\")\npermit(principal, action, resource) when { resource.helth_ok };\n",
        )
        .unwrap();
        let engine = MarketPolicy::load(dir.path()).unwrap();
        let decision = engine.decide(&later);
        assert!(!decision.allowed);
        assert_eq!(decision.policies, [POLICY_CHECK_FAILED]);
        std::fs::write(dir.path().join("bad.cedar"), "permit(principal").unwrap();
        let err = MarketPolicy::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.cedar"), "{err}");
    }
}
