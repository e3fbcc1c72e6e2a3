use super::*;

const MINIMAL: &str = r#"
id = "demo"
version = "0.1.0"
kind = "action"
name = "Demo"
description = "Does a demo thing."
"#;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text.as_bytes(), Format::Toml, "plugin.toml")
}

#[test]
fn minimal_manifest_parses_and_asks_for_nothing() {
    let m = parse(MINIMAL).unwrap();
    assert_eq!(m.id.as_str(), "demo");
    assert_eq!(m.kind, PluginKind::Action);
    assert_eq!(m.component, "plugin.wasm");
    assert!(m.capabilities.is_empty(), "the default grants nothing");
    assert_eq!(m.limits.resolve(), DEFAULT_LIMITS);
}

#[test]
fn yaml_has_the_same_schema() {
    let yaml = "id: demo\nversion: 1.2.3\nkind: detector\nname: Demo\ndescription: A demo.\n\
                capabilities:\n  network:\n    - host: api.example.com\n      reason: fetch rule updates\n";
    let m = Manifest::parse(yaml.as_bytes(), Format::Yaml, "plugin.yaml").unwrap();
    assert_eq!(m.kind, PluginKind::Detector);
    assert_eq!(m.capabilities.network[0].port(), 443);
    assert_eq!(m.capabilities.network[0].scheme, Scheme::Https);
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let err = parse(&format!("{MINIMAL}\nsurprise = 1\n")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown field `surprise`"), "{text}");
    assert!(text.contains("line 8"), "{text}");
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let text = r#"
id = "demo"
version = "0.1.0"
kind = "action"
name = ""
description = "x"
component = "../escape.wasm"
[[capabilities.network]]
host = "*"
reason = "short"
[limits]
memory-mib = 999999
timeout-ms = 0
"#;
    let err = parse(text).unwrap_err();
    let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
    for expected in [
        "name",
        "component",
        "capabilities.network[0].reason",
        "capabilities.network[0].host",
        "limits.memory-mib",
        "limits.timeout-ms",
    ] {
        assert!(
            fields.contains(&expected),
            "missing {expected} in {fields:?}"
        );
    }
    assert!(err.problems.iter().all(|p| !p.fix.is_empty()));
}

#[test]
fn storage_and_log_limits_have_defaults_and_ceilings() {
    let d = parse(MINIMAL).unwrap().limits.resolve();
    assert_eq!(
        (d.log_lines, d.write_bytes, d.write_files),
        (1000, 64 << 20, 1000)
    );
    let text = format!(
        "{MINIMAL}[capabilities.kv]\nreason = \"keeps a cache of lookups\"\nmax-kib = 2000000\n\
         [limits]\nlog-lines = 100001\nwrite-mib = 5000\nwrite-files = 0\n"
    );
    let err = parse(&text).unwrap_err();
    let problems: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    for (field, needle) in [
        ("capabilities.kv.max-kib", "host ceiling of 1048576 KiB"),
        ("limits.log-lines", "host ceiling of 100000 lines"),
        ("limits.write-mib", "host ceiling of 4096 MiB"),
        ("limits.write-files", "greater than 0"),
    ] {
        assert!(
            problems
                .iter()
                .any(|(f, m)| *f == field && m.contains(needle)),
            "{field}: {problems:?}"
        );
    }
    let ok = format!(
        "{MINIMAL}[capabilities.kv]\nreason = \"keeps a cache of lookups\"\nmax-kib = 4\n\
         [limits]\nlog-lines = 5\nwrite-mib = 2\nwrite-files = 3\n"
    );
    let m = parse(&ok).unwrap();
    let r = m.limits.resolve();
    assert_eq!((r.log_lines, r.write_bytes, r.write_files), (5, 2 << 20, 3));
    assert_eq!(m.capabilities.kv.unwrap().quota_bytes(), 4096);
}

#[test]
fn plugin_id_syntax() {
    for good in ["a", "secret-scanner", "0day", "a-b-c-1"] {
        assert!(PluginId::new(good).is_ok(), "{good}");
    }
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "-a",
        "A",
        "a_b",
        "a.b",
        "a b",
        "ä",
        "../x",
        too_long.as_str(),
    ] {
        assert!(PluginId::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn host_patterns_are_typed_not_globs() {
    let wild = HostPattern::parse("*.example.com").unwrap();
    assert!(wild.matches("api.example.com"));
    assert!(wild.matches("a.b.example.com"));
    assert!(wild.matches("API.Example.COM."));
    assert!(!wild.matches("example.com"));
    assert!(!wild.matches("evilexample.com"));
    assert!(!wild.matches("example.com.evil.net"));
    let exact = HostPattern::parse("api.example.com").unwrap();
    assert!(exact.matches("api.example.com"));
    assert!(!exact.matches("x.api.example.com"));
    let ip = HostPattern::parse("127.0.0.1").unwrap();
    assert!(ip.matches("127.0.0.1"));
    assert!(!ip.matches("127.0.0.2"));
    assert!(HostPattern::parse("[::1]").unwrap().matches("[::1]"));
    for bad in [
        "*",
        "*.com",
        "a.*.com",
        "exa mple.com",
        "-a.com",
        "",
        "*example.com",
    ] {
        assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn guest_paths_are_normalized_and_confined() {
    assert_eq!(
        capability::normalize_guest_path("/data//rules/./x").unwrap(),
        "/data/rules/x"
    );
    for bad in ["data", "/", "/data/../etc", "/a\\b", "/a\nb"] {
        assert!(capability::normalize_guest_path(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn config_is_validated_against_the_schema() {
    let text = format!(
        "{MINIMAL}\n[config-schema]\ntype = \"object\"\nrequired = [\"threshold\"]\n\
         additionalProperties = false\n[config-schema.properties.threshold]\ntype = \"integer\"\nminimum = 1\n"
    );
    let m = parse(&text).unwrap();
    assert!(
        m.validate_config(&serde_json::json!({"threshold": 3}))
            .is_ok()
    );
    let errs = m
        .validate_config(&serde_json::json!({"threshold": 0}))
        .unwrap_err();
    assert!(errs[0].contains("/threshold"), "{errs:?}");
    assert!(m.validate_config(&serde_json::json!({})).is_err());
    assert!(
        m.validate_config(&serde_json::json!({"threshold": 2, "x": 1}))
            .is_err()
    );
    assert!(m.validate_config(&serde_json::json!([1])).is_err());
}

#[test]
fn invalid_config_schema_is_a_manifest_error() {
    let text = format!("{MINIMAL}\n[config-schema]\ntype = 12\n");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.problems[0].field, "config-schema");
}

#[test]
fn host_compatibility_is_checked() {
    let m = parse(&format!("{MINIMAL}\nhost = \">=0.2, <0.3\"\n")).unwrap();
    assert!(m.check_host_compat(&semver::Version::new(0, 2, 5)).is_ok());
    let p = m
        .check_host_compat(&semver::Version::new(0, 1, 0))
        .unwrap_err();
    assert_eq!(p.field, "host");
}

#[test]
fn oversized_and_non_utf8_manifests_are_refused() {
    let big = vec![b'#'; MAX_MANIFEST_BYTES + 1];
    assert!(
        Manifest::parse(&big, Format::Toml, "x")
            .unwrap_err()
            .to_string()
            .contains("limit")
    );
    let err = Manifest::parse(b"id = \"\xff\"", Format::Toml, "x").unwrap_err();
    assert!(err.to_string().contains("UTF-8"));
}

#[test]
fn published_schema_is_up_to_date() {
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema/plugin-manifest.schema.json");
    if std::env::var_os("SECFLOW_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "schema/plugin-manifest.schema.json is stale: run `SECFLOW_BLESS=1 cargo test -p secflow-manifest`"
    );
}
