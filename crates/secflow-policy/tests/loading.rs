//! Loading policy directories: defaults, round trips, site policies, `check`, and hostile
//! files that must give clear errors and never panic or overflow the stack.

use secflow_policy::{
    Action, CapabilityFacts, DEFAULT_POLICIES, DEFAULT_SCHEMA, LimitFacts, MAX_FILE_BYTES,
    POLICY_CHECK_FAILED, PluginFacts, PolicyEngine, PolicyError, PolicyRequest,
};
use std::fs;

fn request(action: Action, kind: &str) -> PolicyRequest {
    PolicyRequest {
        principal: "alice".to_string(),
        roles: vec![],
        action,
        plugin: PluginFacts {
            id: "p".to_string(),
            version: "1.0.0".to_string(),
            kind: kind.to_string(),
            signed: true,
            signer_roles: vec!["publisher".to_string()],
            capabilities: CapabilityFacts::default(),
            limits: LimitFacts {
                memory_mib: 64,
                timeout_ms: 1_000,
                fuel: 0,
                output_kib: 1024,
                kv_kib: 0,
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

/// Loads `files` (name, contents) from a fresh directory and returns the error text.
fn load_error(files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    match PolicyEngine::load(dir.path()) {
        Ok(engine) => panic!("expected a load error, got {engine:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_defaults_pass_strict_validation() {
    let engine = PolicyEngine::defaults();
    assert_eq!(engine.check(), []);
    assert_eq!(
        engine.sources(),
        ["<built-in>/secflow.cedarschema", "<built-in>/default.cedar"]
    );
}

#[test]
fn every_default_policy_has_an_id() {
    let ids: Vec<&str> = DEFAULT_POLICIES
        .lines()
        .filter_map(|l| l.strip_prefix("@id(\""))
        .map(|l| l.trim_end_matches("\")"))
        .collect();
    let statements = DEFAULT_POLICIES
        .lines()
        .filter(|l| l.starts_with("forbid") || l.starts_with("permit"))
        .count();
    assert_eq!(ids.len(), statements, "{ids:?}");
    assert!(ids.contains(&"allow-admitted"));
}

#[test]
fn a_missing_or_empty_directory_means_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let missing = PolicyEngine::load(&dir.path().join("nope")).unwrap();
    assert_eq!(missing.sources(), PolicyEngine::defaults().sources());
    let empty = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(empty.sources(), PolicyEngine::defaults().sources());
    assert!(empty.decide(&request(Action::Run, "detector")).allowed);
}

#[test]
fn install_defaults_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join("home/policy");
    PolicyEngine::install_defaults(&policy_dir).unwrap();
    assert_eq!(
        fs::read_to_string(policy_dir.join("schema.cedarschema")).unwrap(),
        DEFAULT_SCHEMA
    );
    assert_eq!(
        fs::read_to_string(policy_dir.join("default.cedar")).unwrap(),
        DEFAULT_POLICIES
    );
    let loaded = PolicyEngine::load(&policy_dir).unwrap();
    assert_eq!(loaded.check(), []);
    assert_eq!(
        loaded.sources(),
        [
            policy_dir.join("schema.cedarschema").display().to_string(),
            policy_dir.join("default.cedar").display().to_string()
        ]
    );
    let defaults = PolicyEngine::defaults();
    for kind in ["detector", "miner", "proxy-filter"] {
        for action in Action::ALL {
            let mut req = request(action, kind);
            req.plugin.limits.timeout_ms = 3_000;
            assert_eq!(
                loaded.decide(&req),
                defaults.decide(&req),
                "{kind} {action}"
            );
        }
    }
}

#[test]
fn install_defaults_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    PolicyEngine::install_defaults(dir.path()).unwrap();
    let err = PolicyEngine::install_defaults(dir.path()).unwrap_err();
    assert!(matches!(err, PolicyError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("schema.cedarschema"), "{err}");

    // An edited policy file alone also blocks it, and nothing is written.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("default.cedar"), "// mine\n").unwrap();
    let err = PolicyEngine::install_defaults(other.path()).unwrap_err();
    assert!(err.to_string().contains("default.cedar"), "{err}");
    assert!(!other.path().join("schema.cedarschema").exists());
    assert_eq!(
        fs::read_to_string(other.path().join("default.cedar")).unwrap(),
        "// mine\n"
    );
}

#[test]
fn site_policies_add_to_the_defaults_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    PolicyEngine::install_defaults(dir.path()).unwrap();
    fs::write(
        dir.path().join("site.cedar"),
        r#"
// Only admins may install action plugins.
@id("site-actions-need-admin")
forbid (principal, action == SecFlow::Action::"install", resource)
when { resource.kind == "action" && !principal.roles.contains("admin") };
"#,
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(engine.check(), []);
    let mut req = request(Action::Install, "action");
    let d = engine.decide(&req);
    assert!(!d.allowed);
    assert_eq!(d.policies, ["site-actions-need-admin"]);
    req.roles = vec!["admin".to_string()];
    assert!(engine.decide(&req).allowed);
    // Scoped to install: running is unaffected.
    req.roles.clear();
    req.action = Action::Run;
    assert!(engine.decide(&req).allowed);
}

#[test]
fn action_groups_in_a_site_schema_are_honoured() {
    let schema = DEFAULT_SCHEMA.replace(
        "  action install, upgrade, enable, run appliesTo {",
        "  action admit;\n  action install, upgrade, enable in [admit] appliesTo {\n    \
         principal: [User],\n    resource: [Plugin],\n    context: RequestContext,\n  };\n  \
         action run appliesTo {",
    );
    assert_ne!(schema, DEFAULT_SCHEMA);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    fs::write(dir.path().join("default.cedar"), DEFAULT_POLICIES).unwrap();
    fs::write(
        dir.path().join("site.cedar"),
        "@id(\"no-new-testers\")\nforbid (principal, action in SecFlow::Action::\"admit\", resource)\n\
         when { resource.kind == \"dynamic-tester\" };\n",
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(engine.check(), []);
    for action in [Action::Install, Action::Upgrade, Action::Enable] {
        let d = engine.decide(&request(action, "dynamic-tester"));
        assert_eq!(d.policies, ["no-new-testers"], "{action}: {d:?}");
    }
    assert!(
        engine
            .decide(&request(Action::Run, "dynamic-tester"))
            .allowed
    );
}

#[test]
fn check_names_file_line_and_id_of_an_unknown_attribute_and_the_engine_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("00-defaults.cedar"), DEFAULT_POLICIES).unwrap();
    let site = dir.path().join("site.cedar");
    fs::write(
        &site,
        "// a typo in a forbid must not silently allow\n\
         @id(\"too-many-hosts\")\n\
         forbid (principal, action, resource)\n\
         when { resource.capabilites.network > 2 };\n",
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    let problems = engine.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!(p.file, site.display().to_string());
    assert_eq!(p.policy.as_deref(), Some("too-many-hosts"));
    assert_eq!(p.line, Some(4));
    assert!(!p.warning);
    assert!(p.message.contains("capabilites"), "{}", p.message);
    assert!(
        p.message.contains("did you mean `capabilities`"),
        "{}",
        p.message
    );
    let shown = p.to_string();
    assert!(
        shown.starts_with(&format!("{}:4: policy `too-many-hosts`: ", site.display())),
        "{shown}"
    );

    let d = engine.decide(&request(Action::Run, "detector"));
    assert!(!d.allowed);
    assert_eq!(d.policies, [POLICY_CHECK_FAILED]);
    assert!(d.errors[0].contains("too-many-hosts"), "{d:?}");
}

#[test]
fn check_reports_type_errors_unknown_actions_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("p.cedar"),
        "@id(\"ok\")\npermit (principal, action, resource);\n\
         @id(\"wrong-type\")\nforbid (principal, action, resource) when { resource.kind == 1 };\n\
         @id(\"wrong-action\")\nforbid (principal, action == SecFlow::Action::\"instal\", resource);\n",
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    let problems = engine.check();
    let errors: Vec<_> = problems.iter().filter(|p| !p.warning).collect();
    assert!(
        errors
            .iter()
            .any(|p| p.policy.as_deref() == Some("wrong-type") && p.line == Some(4)),
        "{problems:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|p| p.policy.as_deref() == Some("wrong-action") && p.message.contains("instal")),
        "{problems:#?}"
    );
}

#[test]
fn a_warning_alone_does_not_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.cedar"), DEFAULT_POLICIES).unwrap();
    fs::write(
        dir.path().join("b.cedar"),
        "@id(\"never\")\nforbid (principal, action, resource) when { false };\n",
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    let problems = engine.check();
    assert!(
        !problems.is_empty() && problems.iter().all(|p| p.warning),
        "{problems:?}"
    );
    assert!(problems[0].to_string().contains("warning: policy `never`"));
    assert!(engine.decide(&request(Action::Run, "detector")).allowed);
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let text = load_error(&[(
        "bad.cedar",
        b"@id(\"a\")\npermit (principal, action, resource);\n\n@id(\"b\")\nforbid (principal action, resource);\n",
    )]);
    assert!(text.contains("bad.cedar:5: "), "{text}");
}

#[test]
fn several_syntax_errors_are_all_listed() {
    let text = load_error(&[
        (
            "a.cedar",
            b"permit (principal, action, resource) when { 1 + };\n",
        ),
        ("b.cedar", b"forbid (principal, action, resource\n"),
    ]);
    assert!(text.contains("2 problems"), "{text}");
    assert!(text.contains("a.cedar:1: "), "{text}");
    assert!(text.contains("b.cedar"), "{text}");
}

#[test]
fn an_empty_policy_file_is_an_error_not_a_silent_default() {
    for contents in [&b""[..], b"   \n// only a comment\n"] {
        let text = load_error(&[("empty.cedar", contents)]);
        assert!(text.contains("empty.cedar"), "{text}");
        assert!(text.contains("contains no policies"), "{text}");
    }
}

#[test]
fn an_oversized_file_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let big = "// padding\n".repeat((MAX_FILE_BYTES as usize / 11) + 10);
    fs::write(dir.path().join("big.cedar"), big).unwrap();
    let err = PolicyEngine::load(dir.path()).unwrap_err();
    assert!(matches!(err, PolicyError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("big.cedar"), "{err}");
}

#[test]
fn a_large_valid_file_loads() {
    let mut text = String::from(DEFAULT_POLICIES);
    for i in 0..2_000 {
        text.push_str(&format!(
            "@id(\"block-{i}\")\nforbid (principal, action, resource) when {{ resource.id == \"bad-{i}\" }};\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("many.cedar"), text).unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(engine.check(), []);
    let mut req = request(Action::Run, "detector");
    assert!(engine.decide(&req).allowed);
    req.plugin.id = "bad-1999".to_string();
    assert_eq!(engine.decide(&req).policies, ["block-1999"]);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // Each of these overflows an unoptimized parser's stack on a 2 MiB test thread when
    // a few hundred levels deep; they are refused by the shape check instead.
    let cases = [
        format!("{}true{}", "(".repeat(5_000), ")".repeat(5_000)),
        format!("{}1{}.contains(1)", "[".repeat(5_000), "]".repeat(5_000)),
        format!(
            "{}true{}",
            "if true then ".repeat(5_000),
            " else false".repeat(5_000)
        ),
        format!("[1]{}", ".contains(1)".repeat(20_000)),
        format!("1{} > 0", " + 1".repeat(20_000)),
        format!("resource{} == 1", ".a".repeat(50_000)),
    ];
    for body in cases {
        let text =
            format!("@id(\"deep\")\npermit (principal, action, resource) when {{ {body} }};\n");
        let message = load_error(&[("deep.cedar", text.as_bytes())]);
        assert!(message.contains("deep.cedar:2: "), "{message}");
        assert!(
            message.contains("deep, more than the limit") || message.contains("operators"),
            "{message}"
        );
    }
}

#[test]
fn moderate_nesting_still_works() {
    let body = format!("{}resource.signed{}", "(".repeat(40), ")".repeat(40));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.cedar"), DEFAULT_POLICIES).unwrap();
    fs::write(
        dir.path().join("b.cedar"),
        format!("@id(\"nested\")\nforbid (principal, action, resource) when {{ {body} }};\n"),
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(engine.check(), []);
    assert_eq!(
        engine.decide(&request(Action::Run, "detector")).policies,
        ["nested"]
    );
}

#[test]
fn long_operator_chains_evaluate_on_a_small_stack() {
    // Under the operator limit, evaluated on a thread with a 2 MiB stack.
    let body = format!("resource.limits.fuel{} > 0", " + 1".repeat(900));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.cedar"), DEFAULT_POLICIES).unwrap();
    fs::write(
        dir.path().join("b.cedar"),
        format!("@id(\"chain\")\nforbid (principal, action, resource) when {{ {body} }};\n"),
    )
    .unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(engine.check(), []);
    let d = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || engine.decide(&request(Action::Run, "detector")))
        .unwrap()
        .join()
        .unwrap();
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.policies, ["chain"], "{d:?}");
}

#[test]
fn binary_garbage_is_an_error() {
    let text = load_error(&[("junk.cedar", b"\xff\xfe\x00permit")]);
    assert!(text.contains("junk.cedar"), "{text}");
    assert!(text.contains("UTF-8"), "{text}");
}

#[test]
fn duplicate_ids_name_both_places() {
    let text = load_error(&[
        (
            "a.cedar",
            b"@id(\"same\")\npermit (principal, action, resource);\n",
        ),
        (
            "b.cedar",
            b"\n\n@id(\"same\")\nforbid (principal, action, resource);\n",
        ),
    ]);
    assert!(text.contains("b.cedar:3: policy `same`"), "{text}");
    assert!(text.contains("a.cedar:1"), "{text}");
}

#[test]
fn reserved_bad_and_missing_ids() {
    let text = load_error(&[(
        "a.cedar",
        b"@id(\"default-deny\")\npermit (principal, action, resource);\n",
    )]);
    assert!(text.contains("reserves"), "{text}");
    let text = load_error(&[(
        "a.cedar",
        b"@id(\"\")\npermit (principal, action, resource);\n",
    )]);
    assert!(text.contains("empty @id"), "{text}");
    let text = load_error(&[(
        "a.cedar",
        b"@id(\"two\nlines\")\npermit (principal, action, resource);\n",
    )]);
    assert!(text.contains("control characters"), "{text}");

    // Without an @id a policy is named by where it is.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anon.cedar");
    fs::write(&file, "\npermit (principal, action, resource);\n").unwrap();
    let engine = PolicyEngine::load(dir.path()).unwrap();
    assert_eq!(
        engine.decide(&request(Action::Run, "detector")).policies,
        [format!("{}:2", file.display())]
    );
}

#[test]
fn templates_are_refused() {
    let text = load_error(&[(
        "t.cedar",
        b"@id(\"tmpl\")\npermit (principal == ?principal, action, resource);\n",
    )]);
    assert!(text.contains("template"), "{text}");
    assert!(text.contains("tmpl"), "{text}");
}

#[test]
fn a_broken_schema_names_its_line() {
    let text = load_error(&[(
        "schema.cedarschema",
        b"namespace SecFlow {\n  entity User;\n  entity Plugin = { id: Strin };\n}\n",
    )]);
    assert!(text.contains("schema.cedarschema:3: "), "{text}");
    assert!(text.contains("Strin"), "{text}");

    let text = load_error(&[("schema.cedarschema", b"namespace SecFlow {\n  entity\n")]);
    assert!(text.contains("schema.cedarschema"), "{text}");
}

#[test]
fn a_schema_that_does_not_describe_the_facts_is_refused() {
    let schema = DEFAULT_SCHEMA.replace("    quarantined: Bool,\n", "");
    assert_ne!(schema, DEFAULT_SCHEMA);
    let text = load_error(&[("schema.cedarschema", schema.as_bytes())]);
    assert!(text.contains("does not describe the facts"), "{text}");
    assert!(text.contains("quarantined"), "{text}");

    let schema = DEFAULT_SCHEMA.replace("dev: Bool", "dev: Long");
    let text = load_error(&[("schema.cedarschema", schema.as_bytes())]);
    assert!(text.contains("does not describe the facts"), "{text}");
}

#[test]
fn a_policy_dir_that_is_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy");
    fs::write(&file, "x").unwrap();
    let err = PolicyEngine::load(&file).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err}");
}

/// Mutations of the default policies and schema (truncations, byte flips, spliced
/// fragments): every one loads or fails with a message; none panics.
#[test]
fn mutated_files_never_panic() {
    let mut seed: u64 = 0x5EC_F10;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let fragments: [&[u8]; 10] = [
        b"(",
        b")",
        b"\"",
        b"@id(",
        b"when {",
        b"}",
        b";",
        b"\\u{",
        b"?principal",
        b"\xff",
    ];
    let dir = tempfile::tempdir().unwrap();
    for round in 0..120 {
        let (name, original) = if round % 4 == 3 {
            ("schema.cedarschema", DEFAULT_SCHEMA.as_bytes())
        } else {
            ("default.cedar", DEFAULT_POLICIES.as_bytes())
        };
        let mut bytes = original.to_vec();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 3 {
                0 => bytes.truncate(at),
                1 => {
                    if at < bytes.len() {
                        bytes[at] = (next() % 256) as u8;
                    }
                }
                _ => {
                    let fragment = fragments[(next() as usize) % fragments.len()];
                    bytes.splice(at..at, fragment.iter().copied());
                }
            }
        }
        let _ = fs::remove_file(dir.path().join("schema.cedarschema"));
        let _ = fs::remove_file(dir.path().join("default.cedar"));
        fs::write(dir.path().join(name), &bytes).unwrap();
        match PolicyEngine::load(dir.path()) {
            Ok(engine) => {
                let _ = engine.check();
                let _ = engine.decide(&request(Action::Install, "detector"));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn problems_serialize_for_json_output() {
    let problem = secflow_policy::PolicyProblem {
        file: "p.cedar".to_string(),
        line: Some(3),
        policy: Some("x".to_string()),
        message: "m".to_string(),
        warning: false,
    };
    let json = serde_json::to_value(&problem).unwrap();
    assert_eq!(json["line"], 3);
    assert_eq!(problem.to_string(), "p.cedar:3: policy `x`: m");
}

#[test]
fn a_fifo_or_directory_in_place_of_a_file_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("schema.cedarschema")).unwrap();
    let err = PolicyEngine::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");

    #[cfg(unix)]
    {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("schema.cedarschema");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            let err = PolicyEngine::load(dir.path()).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        // A FIFO named *.cedar is not a policy file and is skipped.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.cedar");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            let engine = PolicyEngine::load(dir.path()).unwrap();
            assert!(engine.sources()[1].starts_with("<built-in>"));
        }
    }
}

#[test]
fn install_defaults_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    PolicyEngine::install_defaults(dir.path()).unwrap();
    let _ = PolicyEngine::install_defaults(dir.path());
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["default.cedar", "schema.cedarschema"]);
}
