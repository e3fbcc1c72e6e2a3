//! One denial per default rule, each naming the policy that made it, and the allowed case
//! naming the permit.

use secflow_manifest::{Format, Manifest};
use secflow_policy::{
    Action, CapabilityFacts, LimitFacts, PluginFacts, PolicyDecision, PolicyEngine, PolicyRequest,
};
use std::sync::LazyLock;

static ENGINE: LazyLock<PolicyEngine> = LazyLock::new(PolicyEngine::defaults);

/// A signed, publisher-only detector with modest needs: allowed by the defaults.
fn detector(action: Action) -> PolicyRequest {
    PolicyRequest {
        principal: "alice".to_string(),
        roles: vec!["operator".to_string()],
        action,
        plugin: PluginFacts {
            id: "secrets-detector".to_string(),
            version: "1.0.0".to_string(),
            kind: "detector".to_string(),
            signed: true,
            signer_roles: vec!["publisher".to_string()],
            capabilities: CapabilityFacts {
                network: 1,
                network_private: false,
                filesystem: 1,
                filesystem_write: false,
                kv: true,
            },
            limits: LimitFacts {
                memory_mib: 64,
                timeout_ms: 5_000,
                fuel: 0,
                output_kib: 1024,
                kv_kib: 1024,
                write_mib: 0,
                write_files: 0,
            },
            violations: 0,
            quarantined: false,
        },
        dev: false,
        approved: false,
        capability_increase: false,
        from_marketplace: false,
    }
}

fn decide(req: &PolicyRequest) -> PolicyDecision {
    ENGINE.decide(req)
}

#[track_caller]
fn assert_denied_by(req: &PolicyRequest, id: &str) {
    let d = decide(req);
    assert!(!d.allowed, "expected a denial by {id}: {d:?}");
    assert!(
        d.policies.iter().any(|p| p == id),
        "expected {id} among the deciding policies: {d:?}"
    );
    assert!(d.errors.is_empty(), "{d:?}");
}

#[track_caller]
fn assert_allowed(req: &PolicyRequest) {
    let d = decide(req);
    assert!(d.allowed, "expected an allow: {d:?}");
    assert_eq!(d.policies, ["allow-admitted"], "{d:?}");
    assert!(d.errors.is_empty(), "{d:?}");
}

#[test]
fn signed_detector_is_allowed_for_every_action_naming_the_permit() {
    for action in Action::ALL {
        assert_allowed(&detector(action));
    }
}

#[test]
fn unsigned_install_is_denied_and_allowed_in_dev() {
    let mut req = detector(Action::Install);
    req.plugin.signed = false;
    req.plugin.signer_roles.clear();
    assert_denied_by(&req, "signature-required");
    for action in [Action::Enable, Action::Run] {
        assert_denied_by(
            &PolicyRequest {
                action,
                ..req.clone()
            },
            "signature-required",
        );
    }
    req.dev = true;
    assert_allowed(&req);
}

#[test]
fn private_network_is_denied_even_in_dev() {
    let mut req = detector(Action::Install);
    req.plugin.capabilities.network_private = true;
    assert_denied_by(&req, "no-private-network");
    req.dev = true;
    assert_denied_by(&req, "no-private-network");
}

#[test]
fn unknown_kind_is_denied() {
    for kind in ["miner", "", "Detector", "detector "] {
        let mut req = detector(Action::Install);
        req.plugin.kind = kind.to_string();
        assert_denied_by(&req, "allowed-kinds");
    }
}

#[test]
fn every_manifest_kind_is_allowed_within_its_limits() {
    for kind in secflow_manifest::PluginKind::ALL {
        let mut req = detector(Action::Install);
        req.plugin.kind = kind.as_str().to_string();
        req.plugin.limits.timeout_ms = 2_000;
        assert_allowed(&req);
    }
}

#[test]
fn limits_per_kind_allow_the_maximum_and_deny_one_more() {
    // (kinds, policy id, max memory MiB, max timeout ms)
    let table: [(&[&str], &str, u64, u64); 4] = [
        (
            &["detector", "analytics", "log-analyzer"],
            "limits-analysis-kinds",
            512,
            60_000,
        ),
        (&["enricher"], "limits-enricher", 512, 300_000),
        (&["proxy-filter"], "limits-proxy-filter", 128, 2_000),
        (
            &["action", "dynamic-tester"],
            "limits-action-kinds",
            1024,
            300_000,
        ),
    ];
    for (kinds, id, memory, timeout) in table {
        for kind in kinds {
            let mut req = detector(Action::Install);
            req.plugin.kind = kind.to_string();
            req.plugin.limits.memory_mib = memory;
            req.plugin.limits.timeout_ms = timeout;
            assert_allowed(&req);

            let mut over = req.clone();
            over.plugin.limits.memory_mib = memory + 1;
            assert_denied_by(&over, id);

            let mut over = req.clone();
            over.plugin.limits.timeout_ms = timeout + 1;
            assert_denied_by(&over, id);
        }
    }
}

#[test]
fn storage_quotas_have_a_policy_maximum() {
    let mut req = detector(Action::Install);
    req.plugin.limits.kv_kib = 65536;
    req.plugin.limits.write_mib = 1024;
    req.plugin.limits.write_files = 100_000;
    assert_allowed(&req);
    for bump in [
        |r: &mut PolicyRequest| r.plugin.limits.kv_kib += 1,
        |r: &mut PolicyRequest| r.plugin.limits.write_mib += 1,
        |r: &mut PolicyRequest| r.plugin.limits.write_files += 1,
    ] {
        let mut over = req.clone();
        bump(&mut over);
        assert_denied_by(&over, "limits-storage");
        // Also for runs, also in dev mode: a quota is not a developer convenience.
        over.action = Action::Run;
        over.dev = true;
        assert_denied_by(&over, "limits-storage");
    }
}

#[test]
fn absurd_limits_are_denied_not_wrapped() {
    let mut req = detector(Action::Install);
    req.plugin.limits.memory_mib = u64::MAX;
    req.plugin.limits.timeout_ms = u64::MAX;
    req.plugin.violations = u64::MAX;
    assert_denied_by(&req, "limits-analysis-kinds");
}

#[test]
fn publisher_only_plugin_may_not_write_the_filesystem() {
    let mut req = detector(Action::Install);
    req.plugin.capabilities.filesystem_write = true;
    assert_denied_by(&req, "publisher-capabilities");
    // A marketplace countersignature vouches for it.
    req.plugin.signer_roles = vec!["publisher".to_string(), "marketplace".to_string()];
    assert_allowed(&req);
    // So does the developer on their own machine.
    req.plugin.signer_roles = vec!["publisher".to_string()];
    req.dev = true;
    assert_allowed(&req);
}

#[test]
fn publisher_only_plugin_may_ask_for_at_most_four_network_grants() {
    let mut req = detector(Action::Install);
    req.plugin.capabilities.network = 4;
    assert_allowed(&req);
    req.plugin.capabilities.network = 5;
    assert_denied_by(&req, "publisher-capabilities");
    req.plugin.signer_roles.push("marketplace".to_string());
    assert_allowed(&req);
}

#[test]
fn from_a_marketplace_a_countersignature_is_required_to_install_or_upgrade() {
    for action in [Action::Install, Action::Upgrade] {
        let mut req = detector(action);
        req.from_marketplace = true;
        assert_denied_by(&req, "marketplace-countersignature-required");
        // Even in dev mode: a marketplace download is not the developer's own build.
        req.dev = true;
        assert_denied_by(&req, "marketplace-countersignature-required");
        req.dev = false;
        req.plugin.signer_roles.push("marketplace".to_string());
        assert_allowed(&req);
    }
    // The same package given as a file needs only its publisher's signature.
    assert_allowed(&detector(Action::Install));
    // Run and enable judge the installed plugin, not where it came from.
    let mut run = detector(Action::Run);
    run.from_marketplace = true;
    assert_allowed(&run);
}

#[test]
fn capability_increase_upgrade_needs_approval() {
    let mut req = detector(Action::Upgrade);
    req.capability_increase = true;
    assert_denied_by(&req, "capability-increase-needs-approval");
    // Enabling the upgraded version is held the same way.
    assert_denied_by(
        &PolicyRequest {
            action: Action::Enable,
            ..req.clone()
        },
        "capability-increase-needs-approval",
    );
    req.approved = true;
    assert_allowed(&req);
    // Run is judged on the stored grant; the flag does not apply to it.
    let mut run = detector(Action::Run);
    run.capability_increase = true;
    assert_allowed(&run);
}

#[test]
fn quarantined_plugin_may_not_run_or_be_enabled() {
    let mut req = detector(Action::Run);
    req.plugin.quarantined = true;
    assert_denied_by(&req, "quarantined");
    req.action = Action::Enable;
    assert_denied_by(&req, "quarantined");
    // Installing another version is a separate decision (the registry keeps it disabled).
    req.action = Action::Install;
    assert_allowed(&req);
}

#[test]
fn repeated_violations_stop_runs_at_the_threshold() {
    let mut req = detector(Action::Run);
    req.plugin.violations = 2;
    assert_allowed(&req);
    req.plugin.violations = 3;
    assert_denied_by(&req, "violation-threshold");
}

#[test]
fn every_matching_forbid_is_reported_in_order() {
    let mut req = detector(Action::Run);
    req.plugin.signed = false;
    req.plugin.kind = "miner".to_string();
    req.plugin.quarantined = true;
    let d = decide(&req);
    assert!(!d.allowed);
    assert_eq!(
        d.policies,
        ["allowed-kinds", "quarantined", "signature-required"]
    );
}

#[test]
fn roles_and_odd_ids_are_data_not_syntax() {
    let mut req = detector(Action::Run);
    req.principal = "\"; permit(principal, action, resource); //".to_string();
    req.roles = vec!["admin\0".to_string(), String::new()];
    req.plugin.id = "a::\"b\"".to_string();
    assert_allowed(&req);
}

#[test]
fn facts_from_a_manifest() {
    let toml = r#"
id = "net-detector"
version = "1.2.3"
kind = "proxy-filter"
name = "Net"
description = "Looks at traffic."

[[capabilities.network]]
host = "api.example.com"
reason = "fetches rule updates"

[[capabilities.network]]
host = "10.1.2.3"
reason = "talks to the internal scanner"

[[capabilities.filesystem]]
path = "/data/out"
access = "write"
reason = "writes the report files"

[capabilities.kv]
reason = "remembers the last scan"

[limits]
memory-mib = 100
fuel = 5000
"#;
    let manifest = Manifest::parse(toml.as_bytes(), Format::Toml, "plugin.toml").unwrap();
    let facts = PluginFacts::from_manifest(&manifest, true, ["publisher", "marketplace"]);
    assert_eq!(facts.id, "net-detector");
    assert_eq!(facts.version, "1.2.3");
    assert_eq!(facts.kind, "proxy-filter");
    assert!(facts.signed);
    assert_eq!(facts.signer_roles, ["marketplace", "publisher"]);
    assert_eq!(
        facts.capabilities,
        CapabilityFacts {
            network: 2,
            network_private: true,
            filesystem: 1,
            filesystem_write: true,
            kv: true,
        }
    );
    assert_eq!(
        facts.limits,
        LimitFacts {
            memory_mib: 100,
            timeout_ms: 5_000,
            fuel: 5_000,
            output_kib: 1024,
            kv_kib: 1024,
            write_mib: 64,
            write_files: 1000,
        }
    );
    let mut req = detector(Action::Install);
    req.plugin = facts;
    assert_denied_by(&req, "no-private-network");
}

#[test]
fn private_destinations_are_recognized_in_manifests() {
    let base = "id = \"p\"\nversion = \"0.1.0\"\nkind = \"detector\"\nname = \"P\"\n\
                description = \"A plugin.\"\n[[capabilities.network]]\nreason = \"reaches a host\"\n";
    let cases = [
        ("host = \"api.example.com\"", false),
        ("host = \"93.184.216.34\"", false),
        ("host = \"2606:4700::1111\"", false),
        ("host = \"api.example.com\"\nallow-private = true", true),
        ("host = \"127.0.0.1\"", true),
        ("host = \"169.254.169.254\"", true),
        ("host = \"192.168.1.1\"", true),
        ("host = \"100.64.0.1\"", true),
        ("host = \"0.0.0.0\"", true),
        ("host = \"::1\"", true),
        ("host = \"fd00::1\"", true),
        ("host = \"fe80::1\"", true),
        ("host = \"::ffff:10.0.0.1\"", true),
        ("host = \"localhost\"", true),
        ("host = \"app.localhost\"", true),
    ];
    for (line, private) in cases {
        let text = format!("{base}{line}\n");
        let manifest = Manifest::parse(text.as_bytes(), Format::Toml, "plugin.toml")
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let facts = PluginFacts::from_manifest(&manifest, true, ["publisher"]);
        assert_eq!(facts.capabilities.network_private, private, "{line}");
    }
}

#[test]
fn default_manifest_limits_pass_except_for_proxy_filters() {
    let toml = "id = \"p\"\nversion = \"0.1.0\"\nkind = \"detector\"\nname = \"P\"\n\
                description = \"A plugin.\"\n";
    let manifest = Manifest::parse(toml.as_bytes(), Format::Toml, "plugin.toml").unwrap();
    for kind in secflow_manifest::PluginKind::ALL {
        let mut manifest = manifest.clone();
        manifest.kind = kind;
        let mut req = detector(Action::Install);
        req.plugin = PluginFacts::from_manifest(&manifest, true, ["publisher"]);
        if kind == secflow_manifest::PluginKind::ProxyFilter {
            // The manifest default timeout (5 s) is too long for the request path.
            assert_denied_by(&req, "limits-proxy-filter");
            manifest.limits.timeout_ms = Some(2_000);
            req.plugin = PluginFacts::from_manifest(&manifest, true, ["publisher"]);
        }
        assert_allowed(&req);
    }
}

/// The plugins this repository ships must pass the policies it ships, signed by a publisher
/// key alone.
#[test]
fn bundled_plugins_pass_the_default_policies() {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let mut seen = 0;
    for entry in std::fs::read_dir(&plugins).unwrap() {
        let path = entry.unwrap().path().join("plugin.toml");
        if !path.is_file() {
            continue;
        }
        let manifest = Manifest::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        for action in Action::ALL {
            let mut req = detector(action);
            req.plugin = PluginFacts::from_manifest(&manifest, true, ["publisher"]);
            let d = decide(&req);
            assert!(d.allowed, "{}: {d:?}", path.display());
        }
        seen += 1;
    }
    assert!(
        seen >= 5,
        "found only {seen} bundled plugins under {}",
        plugins.display()
    );
}

#[test]
fn engine_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyEngine>();
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| decide(&detector(Action::Run)).allowed))
        .collect();
    assert!(handles.into_iter().all(|h| h.join().unwrap()));
}

#[test]
fn action_names_round_trip() {
    for action in Action::ALL {
        assert_eq!(action.as_str().parse::<Action>(), Ok(action));
    }
    let err = "delete".parse::<Action>().unwrap_err();
    assert!(err.contains("install, upgrade, enable, run"), "{err}");
}
