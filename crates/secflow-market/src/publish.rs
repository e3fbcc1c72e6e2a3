//! Publishing: every upload vetted, then stored approved (and countersigned) or pending
//! review, or refused with its report.

use super::*;

/// The result of a publish.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub plugin_id: String,
    pub version: String,
    pub state: State,
    /// The same package was already published: nothing changed.
    pub unchanged: bool,
    pub report: Report,
}

impl Market {
    /// Vets an upload by `publisher` and stores it approved or pending review; refuses it
    /// (with the report) when a check fails. The same version with the same payload again
    /// changes nothing; with another payload it is refused.
    pub async fn publish(&self, publisher: &str, bytes: &[u8], actor: &str) -> Result<Published> {
        let result = self.vet_and_store(publisher, bytes).await;
        let (decision, reason, plugin, details) = match &result {
            Ok(p) => (
                if p.unchanged {
                    "unchanged"
                } else {
                    p.state.as_str()
                },
                p.report
                    .decision
                    .as_ref()
                    .map(|d| d.policies.join(", "))
                    .unwrap_or_default(),
                Some(PluginRef {
                    id: p.plugin_id.clone(),
                    version: p.version.clone(),
                    digest: p.report.sha256.clone(),
                }),
                summary(&p.report),
            ),
            Err(MarketError::Refused { message, report }) => (
                "refused",
                message.clone(),
                (!report.plugin_id.is_empty()).then(|| PluginRef {
                    id: report.plugin_id.clone(),
                    version: report.version.clone(),
                    digest: report.sha256.clone(),
                }),
                summary(report),
            ),
            Err(e) => ("refused", e.to_string(), None, serde_json::json!({})),
        };
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("publisher".into(), publisher.into());
            map.insert("upload_sha256".into(), secflow_io::sha256_hex(bytes).into());
        }
        self.audit(
            actor,
            Action::MarketPublish,
            plugin,
            decision,
            reason,
            details,
        )
        .await?;
        result
    }

    async fn vet_and_store(&self, publisher_name: &str, bytes: &[u8]) -> Result<Published> {
        let publisher = self.publisher(publisher_name).await.map_err(|_| {
            MarketError::Forbidden(format!(
                "`{}` is not a publisher of this marketplace; an admin grants a namespace first (POST /v1/market/publishers)",
                publisher_name.escape_debug()
            ))
        })?;
        let limits = PackageLimits::default();
        let envelope = secflow_package::Envelope::split(bytes, &limits)
            .map_err(|e| MarketError::Invalid(format!("not a SecFlow package: {e}")))?;
        let mut report = Report {
            plugin_id: String::new(),
            version: String::new(),
            kind: String::new(),
            publisher: publisher_name.to_string(),
            sha256: envelope.digest(),
            size: bytes.len() as u64,
            vetted_at: now(),
            checks: Vec::new(),
            signed_by: Vec::new(),
            capabilities: Vec::new(),
            previous_version: None,
            escalation: Vec::new(),
            imports: Vec::new(),
            secrets: Vec::new(),
            health: None,
            similar_ids: Vec::new(),
            decision: None,
        };
        let refuse = |report: Report| {
            let message = report
                .failure()
                .map_or_else(String::new, |c| format!("{}: {}", c.name, c.summary));
            Err(MarketError::Refused {
                message,
                report: Box::new(report),
            })
        };

        // Signature: by a key registered to this publisher, verified before parsing.
        if publisher.keys.is_empty() {
            report.check(
                "signature",
                Status::Fail,
                format!(
                    "publisher `{publisher_name}` has no registered key; register one (POST /v1/market/publishers/{publisher_name}/keys) and sign with it"
                ),
            );
            return refuse(report);
        }
        let mut trust = TrustStore::default();
        for key in &publisher.keys {
            let file = PublicKeyFile {
                kind: "ed25519".into(),
                key_id: key.key_id.clone(),
                public: key.public_key.clone(),
                name: key.name.clone(),
            };
            trust
                .add_key(&file, Role::Publisher, vec!["*".into()], 0)
                .map_err(secflow_host::HostError::from)?;
        }
        let verification = match secflow_trust::verify(
            bytes,
            &mut trust,
            now(),
            &limits,
            secflow_trust::VerifyOptions {
                allow_rollback: true,
            },
        ) {
            Ok(v) => v,
            Err(e) => {
                report.check(
                    "signature",
                    Status::Fail,
                    format!("unreadable package: {e}"),
                );
                return refuse(report);
            }
        };
        report.signed_by = verification
            .signatures
            .iter()
            .filter(|s| s.status == secflow_trust::SignatureStatus::Valid)
            .map(|s| s.key_id.clone())
            .collect();
        let Some(package) = verification
            .package
            .clone()
            .filter(|_| verification.accepted())
        else {
            report.check(
                "signature",
                Status::Fail,
                format!(
                    "not signed by a key of `{publisher_name}`: {}",
                    verification.refusals.join("; ")
                ),
            );
            return refuse(report);
        };
        report.check(
            "signature",
            Status::Pass,
            format!("signed by {}", report.signed_by.join(", ")),
        );
        let manifest = package.manifest.clone();
        let id = manifest.id.to_string();
        report.plugin_id = id.clone();
        report.version = manifest.version.to_string();
        report.kind = manifest.kind.to_string();
        report.capabilities = secflow_registry::grants::asks(&manifest.capabilities)
            .into_iter()
            .map(|a| vetting::Capability {
                label: a.label,
                reason: a.reason,
            })
            .collect();

        // Namespace: the id is in one of the publisher's namespaces, and no longer prefix
        // owned by someone else claims it.
        match self.store().owner_of(&id).await? {
            Some((owner, ns)) if owner == publisher_name => report.check(
                "namespace",
                Status::Pass,
                format!("{id} is in namespace `{ns}` of {publisher_name}"),
            ),
            Some((owner, ns)) => {
                report.check(
                    "namespace",
                    Status::Fail,
                    format!("{id} is in namespace `{ns}`, which belongs to `{owner}`"),
                );
                return refuse(report);
            }
            None => {
                report.check(
                    "namespace",
                    Status::Fail,
                    format!(
                        "{id} is outside the namespaces of `{publisher_name}` ({}); ids must be a namespace or start with one and `-`",
                        publisher.namespaces.join(", ")
                    ),
                );
                return refuse(report);
            }
        }

        // An id published before stays its first publisher's, whatever namespace an admin
        // carves out later.
        if let Some(owner) = self.store().publisher_of(&id).await?
            && owner != publisher_name
        {
            report.check(
                "namespace",
                Status::Fail,
                format!("{id} was published by `{owner}`: only `{owner}` publishes its versions"),
            );
            return refuse(report);
        }

        // Immutable versions.
        if let Some(existing) = self.store().version(&id, &report.version).await? {
            if existing.sha256 != report.sha256 {
                return Err(MarketError::Conflict(format!(
                    "{id} {} is already published with other contents (payload {}); versions are immutable: publish a new version",
                    existing.version, existing.sha256
                )));
            }
            if existing.revoked_at.is_some() {
                return Err(MarketError::Conflict(format!(
                    "{id} {} was revoked: {}; it cannot be published again",
                    existing.version,
                    existing.revoke_reason.clone().unwrap_or_default()
                )));
            }
            let stored: Report = self
                .store()
                .report(&id, &existing.version)
                .await?
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    secflow_host::HostError::internal(format!(
                        "the stored vetting report of {id} {} is unreadable",
                        existing.version
                    ))
                })?;
            return Ok(Published {
                plugin_id: id,
                version: existing.version.clone(),
                state: existing.state,
                unchanged: true,
                report: stored,
            });
        }
        if !manifest.version.build.is_empty() {
            report.check(
                "manifest",
                Status::Fail,
                format!(
                    "version {} has build metadata, which semver ignores when comparing: publish it without `+{}`",
                    manifest.version, manifest.version.build
                ),
            );
            return refuse(report);
        }
        report.check(
            "manifest",
            Status::Pass,
            format!(
                "{id} {} ({}), host {}",
                report.version, report.kind, manifest.host
            ),
        );

        // The component as the host will load it: imports against declared capabilities,
        // exports against the kind.
        match self
            .inner
            .host
            .validate_component(manifest.clone(), &package.component)
        {
            Ok(plugin) => {
                report.imports = plugin.imports.clone();
                report.check(
                    "component",
                    Status::Pass,
                    format!(
                        "loads as the kind it declares ({}); imports only what it declares ({} interfaces)",
                        report.kind,
                        plugin.imports.len()
                    ),
                );
            }
            Err(e) => {
                report.check("component", Status::Fail, e.to_string());
                return refuse(report);
            }
        }

        // Capability diff against the previous version.
        // Only what a reviewer or the policies approved (and nobody revoked) is a baseline:
        // a version still waiting for review must not make the next one look unchanged.
        let existing = self.store().versions(&id).await?;
        let baseline: Vec<&VersionRow> = existing
            .iter()
            .filter(|v| v.state == State::Approved && v.revoked_at.is_none())
            .collect();
        let previous = baseline
            .iter()
            .rfind(|v| semver_order(&v.version, &report.version).is_lt())
            .or_else(|| baseline.first())
            .copied();
        let first_version = baseline.is_empty();
        if let Some(previous) = previous {
            report.previous_version = Some(previous.version.clone());
            let before: Capabilities =
                serde_json::from_value(previous.capabilities.clone()).unwrap_or_default();
            report.escalation = secflow_registry::grants::increase(&before, &manifest.capabilities);
            if report.escalation.is_empty() {
                report.check(
                    "capability-diff",
                    Status::Pass,
                    format!("asks for nothing beyond {}", previous.version),
                );
            } else {
                report.check(
                    "capability-diff",
                    Status::Warn,
                    format!(
                        "escalation over {}: {}",
                        previous.version,
                        report.escalation.join(", ")
                    ),
                );
            }
        } else {
            report.check(
                "capability-diff",
                Status::Pass,
                "first version: nothing to compare",
            );
        }

        // Secrets in the payload, by SecFlow's own detector.
        let scanner = self
            .inner
            .secrets
            .get_or_init(secflow_secrets::Scanner::builtin);
        for (path, content) in &package.files {
            for m in scanner.scan(path, content) {
                report.secrets.push(vetting::SecretFound {
                    file: path.clone(),
                    rule_id: m.rule_id,
                    line: m.line,
                    snippet: m.snippet,
                });
            }
        }
        if report.secrets.is_empty() {
            report.check(
                "secrets",
                Status::Pass,
                format!("no secrets in {} files", package.files.len()),
            );
        } else {
            report.check(
                "secrets",
                Status::Warn,
                format!(
                    "{} secret(s): {}",
                    report.secrets.len(),
                    report
                        .secrets
                        .iter()
                        .map(|s| format!("{} in {}:{}", s.rule_id, s.file, s.line))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }

        // The health check in the sandbox, granted nothing, under the trial limits.
        let mut trial = manifest.clone();
        vetting::trial_limits(&mut trial);
        let resolved = trial.limits.resolve();
        let cleared =
            secflow_host::Cleared::trial(trial, package.component.clone(), &report.sha256);
        let (inv, _) = self
            .inner
            .host
            .invoke(
                &cleared,
                secflow_runtime::Call::Health,
                &serde_json::json!({}),
                &[],
            )
            .await?;
        let outcome = secflow_host::RunOutcome::of(&inv, true);
        let (ok, message) = outcome.health.clone().unwrap_or((false, String::new()));
        report.health = Some(vetting::TrialHealth {
            ok,
            message: message.clone(),
            duration_us: inv.report.wall_time_us,
            fuel_used: inv.report.fuel_used,
            peak_memory_bytes: inv.report.peak_memory_bytes,
            memory_mib: resolved.memory_bytes >> 20,
            timeout_ms: resolved.timeout_ms,
            fuel: resolved.fuel.unwrap_or(0),
        });
        report.check(
            "health",
            if ok { Status::Pass } else { Status::Warn },
            if ok {
                if message.is_empty() {
                    "healthy in the sandbox with nothing granted".to_string()
                } else {
                    format!("healthy in the sandbox with nothing granted: {message}")
                }
            } else {
                format!("the health check failed in the sandbox: {message}")
            },
        );

        // A new id that looks like an established id of another publisher. Updates of an
        // id the publisher already has are not new names.
        if first_version {
            let others = self.store().ids_not_of(publisher_name).await?;
            report.similar_ids = similar::look_alikes(&id, others.iter().map(String::as_str));
        }
        if !first_version {
            report.check(
                "name-similarity",
                Status::Pass,
                "not a new name: the publisher's own id",
            );
        } else if report.similar_ids.is_empty() {
            report.check("name-similarity", Status::Pass, "no look-alike ids");
        } else {
            report.check(
                "name-similarity",
                Status::Warn,
                format!(
                    "looks like {} of another publisher",
                    report.similar_ids.join(", ")
                ),
            );
        }

        // The policies decide: approve now, or review.
        let policy = secflow_policy::market::MarketPolicy::load(
            &self.inner.host.paths().policy().join("market"),
        );
        let facts = secflow_policy::market::UploadFacts {
            publisher: publisher_name.to_string(),
            id: id.clone(),
            version: report.version.clone(),
            kind: report.kind.clone(),
            first_version,
            escalation: !report.escalation.is_empty(),
            secrets: report.secrets.len() as u64,
            health_ok: ok,
            typosquat: !report.similar_ids.is_empty(),
            capabilities: secflow_policy::PluginFacts::from_manifest(
                &manifest,
                true,
                ["publisher"],
            )
            .capabilities,
        };
        // Policies that do not load send everything to review, with the reason.
        let decision = match &policy {
            Ok(policy) => policy.decide(&facts),
            Err(e) => secflow_policy::PolicyDecision {
                allowed: false,
                policies: vec![secflow_policy::POLICY_CHECK_FAILED.to_string()],
                errors: vec![format!("marketplace policies: {e}")],
            },
        };
        report.decision = Some(vetting::Decision {
            auto_approved: decision.allowed,
            policies: decision.policies.clone(),
            errors: decision.errors.clone(),
        });

        // Store: the upload always; the countersigned file when approved.
        let upload_sha256 = self.write_package(bytes)?;
        let (state, file_sha256) = if decision.allowed {
            (
                State::Approved,
                self.write_package(&self.countersign(bytes)?)?,
            )
        } else {
            (State::Pending, upload_sha256.clone())
        };
        let mut tx = self.store().pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO versions (plugin_id, version, publisher, sha256, upload_sha256, file_sha256, size, kind, name, description, categories, tags, capabilities, dependencies, state, report, decided_by, decided_at, decision_reason, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&report.version)
        .bind(publisher_name)
        .bind(&report.sha256)
        .bind(&upload_sha256)
        .bind(&file_sha256)
        .bind(bytes.len() as i64)
        .bind(&report.kind)
        .bind(&manifest.name)
        .bind(&manifest.description)
        .bind(serde_json::to_string(&manifest.categories).expect("strings"))
        .bind(serde_json::to_string(&manifest.tags).expect("strings"))
        .bind(serde_json::to_string(&manifest.capabilities).expect("capabilities"))
        .bind(
            serde_json::to_string(
                &manifest
                    .dependencies
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
            .expect("strings"),
        )
        .bind(state.as_str())
        .bind(serde_json::to_string(&report).expect("a report serializes"))
        .bind(decision.allowed.then(|| format!("policy:{}", decision.policies.join(","))))
        .bind(decision.allowed.then(|| now() as i64))
        .bind(decision.allowed.then(|| "approved by the marketplace policies".to_string()))
        .bind(report.vetted_at as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Another upload of the same version won the race.
            return Err(MarketError::Conflict(format!(
                "{id} {} was published at the same moment by another upload; versions are immutable",
                report.version
            )));
        }
        if state == State::Approved {
            Store::index_changed(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Published {
            plugin_id: id,
            version: report.version.clone(),
            state,
            unchanged: false,
            report,
        })
    }

    /// Adds the marketplace's countersignature.
    pub(crate) fn countersign(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(secflow_trust::add_signature(
            bytes,
            &self.inner.key,
            now(),
            None,
            &PackageLimits::default(),
        )
        .map_err(secflow_host::HostError::from)?)
    }
}

/// The audit details of a vetting report: what was decided and why, in brief.
fn summary(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "checks": report.checks.iter().map(|c| serde_json::json!({
            "name": c.name, "status": c.status, "summary": c.summary,
        })).collect::<Vec<_>>(),
        "escalation": report.escalation,
        "secrets": report.secrets.len(),
        "similar_ids": report.similar_ids,
        "decision": report.decision,
    })
}
