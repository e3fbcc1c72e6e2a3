//! Admission and run policy for SecFlow plugins, written in [Cedar](https://www.cedarpolicy.com).
//!
//! The registry asks this crate before it installs, upgrades, enables or runs a plugin; the
//! CLI uses it for `secflow policy check` and `secflow policy explain`. It depends on the
//! manifest crate (for [`PluginFacts::from_manifest`]) and on `cedar-policy`, and on nothing
//! that runs plugins.
//!
//! Why Cedar: policies are data an administrator can read and change without rebuilding the
//! host; they are validated against a typed schema (`schema/secflow.cedarschema`), so a
//! misspelt attribute is caught at load instead of silently never matching; evaluation is
//! default deny with forbid winning; and every decision names the policies that made it, which
//! is what the audit log records.
//!
//! The shipped policy set (`policies/default.cedar`) requires signatures (unsigned plugins
//! only in dev mode), refuses private-network access, allows the seven plugin kinds, caps
//! limits per kind and capabilities per signer role, holds capability-increasing upgrades for
//! approval and keeps quarantined plugins off. Every policy carries an `@id("...")` and a
//! decision reports those ids.
//!
//! Fail closed: an engine whose policies do not pass strict validation ([`PolicyEngine::check`]
//! reports errors) denies every request with the id [`POLICY_CHECK_FAILED`], and a policy that
//! errors while evaluating denies the request it was evaluated for. Cedar itself skips a policy
//! that errors, which for a mistyped `forbid` would mean allowing what it was meant to refuse.
//!
//! Cost: the schema, the validated policy set (split per action, with action scopes decided),
//! the action entities and the sixteen possible contexts are built once in
//! [`PolicyEngine::load`]; [`PolicyEngine::decide`] only builds the two entities (user,
//! plugin) and the request, then lets Cedar evaluate: about 16 µs with the defaults on a
//! 2-core machine (`benches/decide.rs`; the target is 20 µs).
//!
//! Hostile policy files (an administrator's typo or an attacker with write access to the
//! policy directory) give errors naming file and line, never a panic or a stack overflow:
//! files are size-capped, nesting and operator counts are bounded before Cedar's recursive
//! parser sees them, and parsing runs on a thread with a large stack.

pub mod api;
mod error;
mod facts;
pub mod market;
mod source;

pub use error::{PolicyError, PolicyProblem};
pub use facts::{Action, CapabilityFacts, LimitFacts, PluginFacts};

use source::{
    PolicyOrigin, Source, diagnostic_problem, error_chain, load_policy_file, nesting_problem,
    read_policy_dir, validation_problems, write_new,
};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicySet, Request, RestrictedExpression, Schema,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The schema file name inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The file name [`PolicyEngine::install_defaults`] writes the default policies to.
pub const DEFAULT_POLICY_FILE: &str = "default.cedar";
/// Largest policy or schema file read. The defaults are about 4 KiB; a megabyte is thousands
/// of policies. Anything larger is refused before it is read into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most `.cedar` files read from one directory.
pub const MAX_POLICY_FILES: usize = 256;
/// Deepest nesting of brackets and `if` expressions accepted in a policy or schema file.
/// Cedar's parser recurses once per level; a hostile file of a few thousand `(` would
/// otherwise overflow the stack and abort the process. Real policies nest a handful of levels.
pub const MAX_NESTING: usize = 64;
/// Most operator characters and keywords (`.`, `+`, `&&` counts two, `has`, ...) in one
/// policy. Each operator can add a level to the expression tree, and Cedar builds, clones and
/// drops the tree recursively; dropping a 12,000-long `.contains()` chain overflows a 2 MiB
/// stack in an unoptimized build. Real policies use a few dozen.
pub const MAX_OPERATORS: usize = 1024;

/// The id reported when no policy matched (Cedar's default deny).
pub const DEFAULT_DENY: &str = "default-deny";
/// The id reported when the loaded policies fail [`PolicyEngine::check`] with errors: the
/// engine then denies everything until the policies are fixed.
pub const POLICY_CHECK_FAILED: &str = "policy-check-failed";
/// The id reported when the request itself could not be turned into Cedar values.
pub const INVALID_REQUEST: &str = "invalid-request";

/// The embedded schema, also written by [`PolicyEngine::install_defaults`].
pub const DEFAULT_SCHEMA: &str = include_str!("../schema/secflow.cedarschema");
/// The embedded default policies, also written by [`PolicyEngine::install_defaults`].
pub const DEFAULT_POLICIES: &str = include_str!("../policies/default.cedar");

const BUILTIN_SCHEMA_NAME: &str = "<built-in>/secflow.cedarschema";
const BUILTIN_POLICIES_NAME: &str = "<built-in>/default.cedar";

/// One question for the policy engine: may `principal` do `action` to `plugin`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// The user (or API token owner) asking.
    pub principal: String,
    /// The user's roles, for site policies; the defaults ignore them.
    pub roles: Vec<String>,
    pub action: Action,
    pub plugin: PluginFacts,
    /// Developer mode (`--dev`): unsigned plugins are allowed.
    pub dev: bool,
    /// A person approved this request (prompt, `--yes`, `--grant`).
    pub approved: bool,
    /// The plugin asks for more capabilities than its current grant.
    pub capability_increase: bool,
    /// The package was fetched from a marketplace (`secflow plugin install ID`), not given
    /// as a file: the default policies then require a marketplace countersignature.
    pub from_marketplace: bool,
}

/// The answer, with the policies that gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub allowed: bool,
    /// The `@id`s that determined the decision: the permits that matched when allowed; the
    /// forbids that matched (and any policy that failed to evaluate) when denied;
    /// [`DEFAULT_DENY`] when nothing matched; [`POLICY_CHECK_FAILED`] when the policy set is
    /// invalid.
    pub policies: Vec<String>,
    /// Evaluation errors, or the validation errors that made the engine fail closed.
    pub errors: Vec<String>,
}

impl PolicyDecision {
    pub(crate) fn deny(policy: &str, errors: Vec<String>) -> PolicyDecision {
        PolicyDecision {
            allowed: false,
            policies: vec![policy.to_string()],
            errors,
        }
    }
}

/// A loaded, validated policy set ready to decide.
pub struct PolicyEngine {
    /// The loaded policies split by action, with the action scope already decided (see
    /// [`split_by_action`]): what `decide` evaluates.
    by_action: [PolicySet; 4],
    policy_count: usize,
    authorizer: Authorizer,
    /// The schema's action entities (with any action groups a site schema declares), so that
    /// `action in SecFlow::Action::"group"` works; cloned into every request's entities.
    action_entities: Entities,
    user_type: EntityTypeName,
    plugin_type: EntityTypeName,
    actions: [EntityUid; 4],
    /// The context is four booleans: all sixteen are built once, indexed by
    /// `dev | approved << 1 | capability_increase << 2 | from_marketplace << 3`.
    contexts: [Context; 16],
    problems: Vec<PolicyProblem>,
    fail_closed: bool,
    sources: Vec<String>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("sources", &self.sources)
            .field("policies", &self.policy_count)
            .field("problems", &self.problems.len())
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// The embedded schema and default policies.
    pub fn defaults() -> PolicyEngine {
        Self::from_sources(
            Source {
                name: BUILTIN_SCHEMA_NAME.to_string(),
                text: DEFAULT_SCHEMA.to_string(),
            },
            vec![Source {
                name: BUILTIN_POLICIES_NAME.to_string(),
                text: DEFAULT_POLICIES.to_string(),
            }],
        )
        .expect("the built-in policies load (pinned by a test)")
    }

    /// Loads `dir/schema.cedarschema` (or the embedded schema if absent) and every
    /// `dir/*.cedar` in name order (or the embedded default policies if `dir` does not exist
    /// or holds no `.cedar` file).
    ///
    /// Fails on unreadable or oversized files, syntax errors, duplicate `@id`s, policy
    /// templates and schemas that do not describe the facts SecFlow supplies; every problem
    /// names its file and line. Validation against the schema does not fail the load: its
    /// results are kept for [`PolicyEngine::check`], and an engine with validation errors
    /// denies everything.
    pub fn load(dir: &Path) -> Result<PolicyEngine, PolicyError> {
        let (schema, policies) = read_policy_dir(
            dir,
            SCHEMA_FILE,
            (BUILTIN_SCHEMA_NAME, DEFAULT_SCHEMA),
            (BUILTIN_POLICIES_NAME, DEFAULT_POLICIES),
        )?;
        Self::from_sources(schema, policies)
    }

    /// Writes the embedded schema and default policies into `dir` (created if needed) as
    /// `schema.cedarschema` and `default.cedar`, for an administrator to edit. Refuses to
    /// overwrite either file: local policy is never replaced behind the administrator's back.
    /// Each file appears whole or not at all, so a crash cannot leave a truncated policy.
    pub fn install_defaults(dir: &Path) -> Result<(), PolicyError> {
        std::fs::create_dir_all(dir).map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = [
            (dir.join(SCHEMA_FILE), DEFAULT_SCHEMA),
            (dir.join(DEFAULT_POLICY_FILE), DEFAULT_POLICIES),
        ];
        for (path, _) in &files {
            if path.symlink_metadata().is_ok() {
                return Err(PolicyError::Exists { path: path.clone() });
            }
        }
        for (path, text) in &files {
            write_new(path, text)?;
        }
        Ok(())
    }

    /// Strict validation of the policies against the schema: unknown entity types, actions
    /// or attributes, type errors, and Cedar's warnings (policies that can never apply,
    /// confusable or bidirectional Unicode). Empty means the policy set is sound.
    pub fn check(&self) -> Vec<PolicyProblem> {
        self.problems.clone()
    }

    /// The files the engine was loaded from (schema first), for `secflow policy check`.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Decides one request. Never panics and never errors: anything unexpected is a denial
    /// that says why.
    pub fn decide(&self, req: &PolicyRequest) -> PolicyDecision {
        if self.fail_closed {
            let errors = self
                .problems
                .iter()
                .filter(|p| !p.warning)
                .map(ToString::to_string)
                .collect();
            return PolicyDecision::deny(POLICY_CHECK_FAILED, errors);
        }
        let (request, entities) = match self.cedar_request(req) {
            Ok(built) => built,
            Err(e) => return PolicyDecision::deny(INVALID_REQUEST, vec![e]),
        };
        let response =
            self.authorizer
                .is_authorized(&request, &self.by_action[req.action.index()], &entities);
        decision_of(&response)
    }

    /// Builds the Cedar request and the entities it refers to. Per call: two entities, one
    /// context and a clone of the (small) action entity store; nothing is parsed.
    fn cedar_request(&self, req: &PolicyRequest) -> Result<(Request, Entities), String> {
        let parts = self.cedar_parts(req)?;
        let entities = self
            .action_entities
            .clone()
            .add_entities(parts.entities, None)
            .map_err(|e| e.to_string())?;
        // No schema here: `load` already checked that requests of this shape conform.
        let request = Request::new(
            parts.principal,
            self.actions[req.action.index()].clone(),
            parts.resource,
            parts.context,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok((request, entities))
    }

    fn cedar_parts(&self, req: &PolicyRequest) -> Result<CedarParts, String> {
        let principal =
            EntityUid::from_type_name_and_id(self.user_type.clone(), EntityId::new(&req.principal));
        let resource = EntityUid::from_type_name_and_id(
            self.plugin_type.clone(),
            EntityId::new(&req.plugin.id),
        );
        let user = Entity::new(
            principal.clone(),
            HashMap::from([("roles".to_string(), string_set(&req.roles))]),
            HashSet::new(),
        )
        .map_err(|e| format!("user `{}`: {e}", req.principal))?;
        let plugin = Entity::new(resource.clone(), plugin_attrs(&req.plugin)?, HashSet::new())
            .map_err(|e| format!("plugin `{}`: {e}", req.plugin.id))?;
        let context = self.contexts[usize::from(req.dev)
            | usize::from(req.approved) << 1
            | usize::from(req.capability_increase) << 2
            | usize::from(req.from_marketplace) << 3]
            .clone();
        Ok(CedarParts {
            principal,
            resource,
            entities: [user, plugin],
            context,
        })
    }

    /// Parses and validates on a thread with a large stack. Cedar's parser recurses once per
    /// nesting level and has no depth limit of its own; [`MAX_NESTING`] bounds the depth,
    /// and the dedicated stack makes that bound safe whatever stack the caller runs on (a
    /// test thread has 2 MiB; an unoptimized build needs about 55 KiB per bracket level).
    fn from_sources(schema: Source, policies: Vec<Source>) -> Result<Self, PolicyError> {
        source::build_on_large_stack(&schema, &policies, Self::build)
    }

    fn build(schema_src: &Source, policy_srcs: &[Source]) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();

        if let Some(problem) = nesting_problem(schema_src, true) {
            return Err(PolicyError::Invalid(vec![problem]));
        }
        let schema = match Schema::from_cedarschema_str(&schema_src.text) {
            Ok((schema, warnings)) => {
                for w in warnings {
                    problems.push(diagnostic_problem(schema_src, &w, None, true));
                }
                Some(schema)
            }
            Err(e) => {
                problems.push(diagnostic_problem(schema_src, &e, None, false));
                None
            }
        };

        let mut policies = PolicySet::new();
        let mut origins: HashMap<String, PolicyOrigin> = HashMap::new();
        for src in policy_srcs {
            load_policy_file(src, &mut policies, &mut origins, &mut problems);
        }
        let load_errors: Vec<PolicyProblem> =
            problems.iter().filter(|p| !p.warning).cloned().collect();
        if !load_errors.is_empty() {
            return Err(PolicyError::Invalid(load_errors));
        }
        // A schema that failed to parse left a problem, so it is `Some` here.
        let Some(schema) = schema else {
            return Err(PolicyError::Invalid(problems));
        };

        let names = Names::new().map_err(|message| {
            PolicyError::Invalid(vec![PolicyProblem {
                file: schema_src.name.clone(),
                line: None,
                policy: None,
                message,
                warning: false,
            }])
        })?;
        let action_entities = schema.action_entities().map_err(|e| {
            PolicyError::Invalid(vec![PolicyProblem {
                file: schema_src.name.clone(),
                line: None,
                policy: None,
                message: e.to_string(),
                warning: false,
            }])
        })?;
        let by_action = split_by_action(&policies, &names.actions, &action_entities);
        let mut engine = PolicyEngine {
            by_action,
            policy_count: policies.num_of_policies(),
            authorizer: Authorizer::new(),
            action_entities,
            user_type: names.user,
            plugin_type: names.plugin,
            actions: names.actions,
            contexts: all_contexts().map_err(|message| {
                PolicyError::Invalid(vec![PolicyProblem {
                    file: schema_src.name.clone(),
                    line: None,
                    policy: None,
                    message,
                    warning: false,
                }])
            })?,
            problems: Vec::new(),
            fail_closed: false,
            sources: std::iter::once(schema_src)
                .chain(policy_srcs)
                .map(|s| s.name.clone())
                .collect(),
        };
        engine.check_schema_fits(&schema, &schema_src.name)?;

        problems.extend(validation_problems(
            schema,
            &policies,
            &origins,
            policy_srcs,
        ));
        engine.fail_closed = problems.iter().any(|p| !p.warning);
        engine.problems = problems;
        Ok(engine)
    }

    /// The host supplies exactly the facts in [`PolicyRequest`]. A site schema that renames
    /// or retypes them would make every policy evaluate against values it does not describe;
    /// refuse it at load, with Cedar's explanation, instead.
    fn check_schema_fits(&self, schema: &Schema, schema_file: &str) -> Result<(), PolicyError> {
        let sample = PolicyRequest {
            principal: "schema-check".to_string(),
            roles: vec!["admin".to_string()],
            action: Action::Install,
            plugin: PluginFacts {
                id: "schema-check".to_string(),
                version: "0.0.0".to_string(),
                kind: "detector".to_string(),
                signer_roles: vec!["publisher".to_string()],
                ..PluginFacts::default()
            },
            dev: false,
            approved: false,
            capability_increase: false,
            from_marketplace: false,
        };
        let misfit = |message: String| {
            PolicyError::Invalid(vec![PolicyProblem {
                file: schema_file.to_string(),
                line: None,
                policy: None,
                message: format!(
                    "the schema does not describe the facts SecFlow supplies: {message}; \
                     keep the User, Plugin and context attributes of the built-in schema"
                ),
                warning: false,
            }])
        };
        let parts = self.cedar_parts(&sample).map_err(&misfit)?;
        Entities::from_entities(parts.entities, Some(schema))
            .map_err(|e| misfit(error_chain(&e)))?;
        for action in &self.actions {
            Request::new(
                parts.principal.clone(),
                action.clone(),
                parts.resource.clone(),
                parts.context.clone(),
                Some(schema),
            )
            .map_err(|e| misfit(error_chain(&e)))?;
        }
        Ok(())
    }
}

/// A Cedar response as a decision, failing closed: a policy that errors denies (Cedar
/// itself would skip it, which for a mistyped `forbid` means allowing what it was meant to
/// refuse), and the policies named are the ones that decided.
pub(crate) fn decision_of(response: &cedar_policy::Response) -> PolicyDecision {
    let diagnostics = response.diagnostics();
    let mut policies: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    let mut errors = Vec::new();
    let mut erroring = Vec::new();
    for err in diagnostics.errors() {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = err;
        erroring.push(e.policy_id().to_string());
        errors.push(err.to_string());
    }
    let allowed = response.decision() == Decision::Allow && errors.is_empty();
    if !errors.is_empty() {
        // The matching permits did not decide alone: report the erroring policies with the
        // forbids, and drop permits that no longer determine anything.
        if response.decision() == Decision::Allow {
            policies.clear();
        }
        erroring.sort();
        erroring.dedup();
        policies.extend(erroring);
    } else if policies.is_empty() {
        policies.push(DEFAULT_DENY.to_string());
    }
    policies.sort();
    PolicyDecision {
        allowed,
        policies,
        errors,
    }
}

/// Splits the policy set into one set per action, holding only the policies whose action
/// scope admits that action, each with its action scope replaced by `action` (any).
///
/// Why: Cedar evaluates every policy in the set and checks scopes as part of the condition,
/// and an `action in [...]` scope costs about as much as the rest of a typical policy. For a
/// request whose action is known, the scope is decided here once: a policy whose scope
/// excludes the action can neither match nor error (the scope is conjoined before the body),
/// and one whose scope admits it behaves exactly as if unscoped. Action groups declared by a
/// site schema are honoured through the schema's action hierarchy.
fn split_by_action(
    policies: &PolicySet,
    actions: &[EntityUid; 4],
    hierarchy: &Entities,
) -> [PolicySet; 4] {
    let mut sets: [PolicySet; 4] = Default::default();
    for policy in policies.policies() {
        let admits = |action: &EntityUid, scope: &EntityUid| {
            action == scope || hierarchy.is_ancestor_of(scope, action)
        };
        let applies: [bool; 4] = match policy.action_constraint() {
            ActionConstraint::Any => [true; 4],
            ActionConstraint::Eq(scope) => actions.each_ref().map(|a| admits(a, &scope)),
            ActionConstraint::In(scopes) => actions
                .each_ref()
                .map(|a| scopes.iter().any(|scope| admits(a, scope))),
        };
        let evaluated = match policy.action_constraint() {
            ActionConstraint::Any => policy.clone(),
            // If the conversion fails the scoped policy is used as is: slower, same result.
            _ => without_action_scope(policy).unwrap_or_else(|| policy.clone()),
        };
        for (set, applies) in sets.iter_mut().zip(applies) {
            if applies {
                // Ids are unique in `policies`, so adding cannot fail.
                let _ = set.add(evaluated.clone());
            }
        }
    }
    sets
}

/// The same policy with `action` unconstrained, through Cedar's JSON form.
fn without_action_scope(policy: &Policy) -> Option<Policy> {
    let mut json = policy.to_json().ok()?;
    *json.get_mut("action")? = serde_json::json!({ "op": "All" });
    Policy::from_json(Some(policy.id().clone()), json).ok()
}

fn all_contexts() -> Result<[Context; 16], String> {
    let mut contexts = Vec::with_capacity(16);
    for bits in 0..16usize {
        let flag = |bit: usize| RestrictedExpression::new_bool(bits & (1 << bit) != 0);
        contexts.push(
            Context::from_pairs([
                ("dev".to_string(), flag(0)),
                ("approved".to_string(), flag(1)),
                ("capability_increase".to_string(), flag(2)),
                ("from_marketplace".to_string(), flag(3)),
            ])
            .map_err(|e| e.to_string())?,
        );
    }
    contexts
        .try_into()
        .map_err(|_| "sixteen contexts".to_string())
}

/// The pieces of one request before they are put together.
struct CedarParts {
    principal: EntityUid,
    resource: EntityUid,
    entities: [Entity; 2],
    context: Context,
}

/// Cedar names the engine uses, parsed once.
struct Names {
    user: EntityTypeName,
    plugin: EntityTypeName,
    actions: [EntityUid; 4],
}

impl Names {
    fn new() -> Result<Names, String> {
        let ty = |s: &str| EntityTypeName::from_str(s).map_err(|e| e.to_string());
        let action_type = ty("SecFlow::Action")?;
        let action = |a: Action| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
        };
        Ok(Names {
            user: ty("SecFlow::User")?,
            plugin: ty("SecFlow::Plugin")?,
            actions: Action::ALL.map(action),
        })
    }
}

pub(crate) fn long(v: u64) -> RestrictedExpression {
    // Cedar's Long is i64; saturating keeps "more than any limit" true for absurd values.
    RestrictedExpression::new_long(i64::try_from(v).unwrap_or(i64::MAX))
}

fn string_set(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .iter()
            .map(|s| RestrictedExpression::new_string(s.clone())),
    )
}

pub(crate) fn record(
    fields: impl IntoIterator<Item = (&'static str, RestrictedExpression)>,
) -> Result<RestrictedExpression, String> {
    RestrictedExpression::new_record(fields.into_iter().map(|(k, v)| (k.to_string(), v)))
        .map_err(|e| e.to_string())
}

fn plugin_attrs(p: &PluginFacts) -> Result<HashMap<String, RestrictedExpression>, String> {
    let caps = &p.capabilities;
    let limits = &p.limits;
    let capabilities = record([
        ("network", long(caps.network)),
        (
            "network_private",
            RestrictedExpression::new_bool(caps.network_private),
        ),
        ("filesystem", long(caps.filesystem)),
        (
            "filesystem_write",
            RestrictedExpression::new_bool(caps.filesystem_write),
        ),
        ("kv", RestrictedExpression::new_bool(caps.kv)),
    ])?;
    let limits = record([
        ("memory_mib", long(limits.memory_mib)),
        ("timeout_ms", long(limits.timeout_ms)),
        ("fuel", long(limits.fuel)),
        ("output_kib", long(limits.output_kib)),
        ("kv_kib", long(limits.kv_kib)),
        ("write_mib", long(limits.write_mib)),
        ("write_files", long(limits.write_files)),
    ])?;
    Ok(HashMap::from([
        (
            "id".to_string(),
            RestrictedExpression::new_string(p.id.clone()),
        ),
        (
            "version".to_string(),
            RestrictedExpression::new_string(p.version.clone()),
        ),
        (
            "kind".to_string(),
            RestrictedExpression::new_string(p.kind.clone()),
        ),
        (
            "signed".to_string(),
            RestrictedExpression::new_bool(p.signed),
        ),
        ("signer_roles".to_string(), string_set(&p.signer_roles)),
        ("capabilities".to_string(), capabilities),
        ("limits".to_string(), limits),
        ("violations".to_string(), long(p.violations)),
        (
            "quarantined".to_string(),
            RestrictedExpression::new_bool(p.quarantined),
        ),
    ]))
}
