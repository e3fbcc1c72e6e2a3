//! Admission: what every way into the registry (install, upgrade, a watched directory) runs
//! before anything is stored. Signatures are checked on the raw bytes against the trust
//! store before the payload is parsed; then the policy engine decides with the facts of the
//! verified manifest.

use secflow_manifest::{Capabilities, Manifest};
use secflow_package::{Envelope, Package, PackageLimits, read_payload};
use secflow_policy::{Action, PluginFacts, PolicyDecision, PolicyEngine, PolicyRequest};
use secflow_trust::{SignatureStatus, TrustStore, Verification, VerifyOptions};
use serde::{Deserialize, Serialize};

/// A trusted key whose signature admitted a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signer {
    pub key_id: String,
    pub name: Option<String>,
    /// `publisher`, `marketplace`, ...
    pub role: String,
}

/// A package whose signatures verified (or that developer mode admitted unsigned).
#[derive(Debug)]
pub struct Verified {
    pub package: Package,
    /// SHA-256 of the payload: what signatures and grants bind to.
    pub digest: String,
    /// The trusted keys whose valid signatures admitted it; empty when unsigned.
    pub signers: Vec<Signer>,
    /// The trust store's verdict, for display (every signature and its status).
    pub verification: Verification,
    /// Accepting it needed `--allow-rollback`.
    pub rollback_override: bool,
}

/// Why a package was not admitted.
#[derive(Debug, thiserror::Error)]
#[error("{}", reasons.join("; "))]
pub struct Refused {
    pub reasons: Vec<String>,
    /// The trust store's verdict, when the package got that far.
    pub verification: Option<Box<Verification>>,
}

/// Verifies `bytes` against the trust store. In developer mode a package with no signature
/// at all is admitted unsigned (the `signature-required` policy still has its say); a package
/// with a signature that does not verify is refused in every mode, because that is tampering,
/// not development.
pub fn verify_package(
    bytes: &[u8],
    store: &mut TrustStore,
    now: u64,
    dev: bool,
    allow_rollback: bool,
) -> Result<Verified, Refused> {
    let limits = PackageLimits::default();
    let refused = |reasons: Vec<String>, v: Option<Verification>| Refused {
        reasons,
        verification: v.map(Box::new),
    };
    let verification =
        secflow_trust::verify(bytes, store, now, &limits, VerifyOptions { allow_rollback })
            .map_err(|e| refused(vec![e.to_string()], None))?;
    if verification.accepted() {
        let package = verification
            .package
            .clone()
            .ok_or_else(|| refused(vec!["verified package has no payload".into()], None))?;
        let signers = verification
            .signatures
            .iter()
            .filter(|s| s.status == SignatureStatus::Valid)
            .map(|s| Signer {
                key_id: s.key_id.clone(),
                name: s.key_name.clone(),
                role: s.role.map(|r| r.to_string()).unwrap_or_default(),
            })
            .collect();
        return Ok(Verified {
            digest: verification.package_sha256.clone(),
            rollback_override: verification.rollback_override,
            package,
            signers,
            verification,
        });
    }
    let unsigned_only = verification.signatures.is_empty()
        && verification
            .refusals
            .iter()
            .all(|r| r == "the package is unsigned");
    if dev && unsigned_only {
        let envelope =
            Envelope::split(bytes, &limits).map_err(|e| refused(vec![e.to_string()], None))?;
        let package = read_payload(envelope.payload, &limits)
            .map_err(|e| refused(vec![e.to_string()], None))?;
        return Ok(Verified {
            digest: package.digest.clone(),
            package,
            signers: Vec::new(),
            verification,
            rollback_override: false,
        });
    }
    let mut reasons = verification.refusals.clone();
    if unsigned_only {
        reasons.push(
            "sign it (`secflow plugin sign`) with a trusted key, or install it in developer mode with --dev"
                .into(),
        );
    }
    Err(refused(reasons, Some(verification)))
}

/// The facts policies judge: the manifest's, with the capabilities replaced by the granted
/// ones when a grant exists (a plugin runs with its grant, not its wish list), and the
/// registry's violation count and quarantine state.
pub fn facts(
    manifest: &Manifest,
    granted: Option<&Capabilities>,
    signers: &[Signer],
    violations: u64,
    quarantined: bool,
) -> PluginFacts {
    let mut judged;
    let manifest = match granted {
        Some(caps) => {
            judged = manifest.clone();
            judged.capabilities = caps.clone();
            &judged
        }
        None => manifest,
    };
    let mut facts = PluginFacts::from_manifest(
        manifest,
        !signers.is_empty(),
        signers.iter().map(|s| s.role.clone()),
    );
    facts.violations = violations;
    facts.quarantined = quarantined;
    facts
}

/// One policy question about a plugin.
#[derive(Debug, Clone)]
pub struct Question {
    pub principal: String,
    pub action: Action,
    pub facts: PluginFacts,
    pub dev: bool,
    pub approved: bool,
    pub capability_increase: bool,
    /// The package was fetched from a marketplace (install and upgrade only).
    pub from_marketplace: bool,
}

/// Asks the policy engine.
pub fn decide(engine: &PolicyEngine, q: &Question) -> PolicyDecision {
    engine.decide(&PolicyRequest {
        principal: q.principal.clone(),
        roles: Vec::new(),
        action: q.action,
        plugin: q.facts.clone(),
        dev: q.dev,
        approved: q.approved,
        capability_increase: q.capability_increase,
        from_marketplace: q.from_marketplace,
    })
}
