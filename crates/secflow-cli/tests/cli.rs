//! The `secflow` binary end to end: real processes, real components, exit codes of the CLI
//! contract.

mod common;

use common::{assert_fails, plugin_dir, run_with_stdin, secflow, text};
use secflow_plugin_artifacts as artifacts;
use std::path::{Path, PathBuf};

fn data_processor(root: &Path) -> PathBuf {
    let manifest =
        std::fs::read_to_string(Path::new(artifacts::DATA_PROCESSOR.dir).join("plugin.toml"))
            .unwrap();
    plugin_dir(root, "dp", &manifest, artifacts::DATA_PROCESSOR.component)
}

#[test]
fn run_dev_transforms_numbers_as_the_readme_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_processor(tmp.path());
    let mut cmd = secflow(&tmp.path().join("home"));
    cmd.args(["run", "--dev"])
        .arg(&dir)
        .args(["--action", "transform", "--input", "-", "--json"]);
    let out = run_with_stdin(cmd, r#"{"data":[1,2,3],"operation":"multiply","factor":2}"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value, serde_json::json!([2, 4, 6]));

    for (action, input, expected) in [
        (
            "aggregate",
            r#"{"data":[1,2,3],"operation":"sum"}"#,
            serde_json::json!(6),
        ),
        (
            "filter",
            r#"{"data":[1,5,3],"operation":"less","threshold":3}"#,
            serde_json::json!([1]),
        ),
        (
            "normalize",
            r#"{"data":[0,5,10]}"#,
            serde_json::json!([0, 0.5, 1]),
        ),
    ] {
        let mut cmd = secflow(&tmp.path().join("home"));
        cmd.args(["run", "--dev"])
            .arg(&dir)
            .args(["--action", action, "--input", "-", "--json"]);
        let out = run_with_stdin(cmd, input);
        assert!(out.status.success(), "{action}: {}", text(&out.stderr));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
            expected,
            "{action}"
        );
    }
}

#[test]
fn run_dev_exit_codes_follow_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = data_processor(tmp.path());

    // A plugin-reported error (bad operation) is a plugin failure: 4, with the error as JSON.
    let mut cmd = secflow(&home);
    cmd.args(["run", "--dev"])
        .arg(&dir)
        .args(["--action", "transform", "--input", "-", "--json"]);
    let out = run_with_stdin(cmd, r#"{"data":[1],"operation":"explode","factor":1}"#);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["error"]["kind"], "plugin");
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("unknown operation `explode`")
    );

    // Input that is not JSON is a usage error: 2, naming the input.
    let mut cmd = secflow(&home);
    cmd.args(["run", "--dev"])
        .arg(&dir)
        .args(["--action", "transform", "--input", "-"]);
    let out = run_with_stdin(cmd, "not json");
    assert_fails(&out, 2, "the input <stdin> is not JSON");

    // A directory without a manifest: 2 with what to do.
    let out = secflow(&home)
        .args(["run", "--dev"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_fails(&out, 2, "secflow plugin new");

    // A component that imports what its manifest does not declare is refused: 3.
    let manifest = "id = \"sneaky\"\nversion = \"0.1.0\"\nkind = \"action\"\nname = \"Sneaky\"\ndescription = \"Hides its network use.\"\n";
    let sneaky = plugin_dir(
        tmp.path(),
        "sneaky",
        manifest,
        artifacts::TEST_HOSTILE.component,
    );
    let out = secflow(&home)
        .args(["run", "--dev"])
        .arg(&sneaky)
        .args(["--action", "noop"])
        .output()
        .unwrap();
    assert_fails(&out, 3, "refused");
    assert!(
        text(&out.stderr).contains("wasi:http/") || text(&out.stderr).contains("secflow:plugin/kv"),
        "names the undeclared import: {}",
        text(&out.stderr)
    );

    // A limit hit is a plugin failure: 4, and the JSON error names the kind.
    let hostile_manifest =
        std::fs::read_to_string(Path::new(artifacts::TEST_HOSTILE.dir).join("plugin.toml"))
            .unwrap();
    let hostile = plugin_dir(
        tmp.path(),
        "hostile",
        &hostile_manifest,
        artifacts::TEST_HOSTILE.component,
    );
    let out = secflow(&home)
        .args(["run", "--dev"])
        .arg(&hostile)
        .args(["--action", "recurse", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["error"]["kind"], "stack-overflow");
}

#[test]
fn second_run_uses_the_compile_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = data_processor(tmp.path());
    for _ in 0..2 {
        let out = secflow(&home)
            .args(["run", "--dev"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("transform"), "lists the actions");
    }
    let entries: Vec<_> = std::fs::read_dir(home.join("cache/components"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one compiled artifact, reused: {entries:?}"
    );
}

/// The inputs `run --dev` gets for each scaffolded kind, and what the output must contain.
fn kind_case(kind: &str, root: &Path) -> (Vec<String>, Option<String>, &'static str) {
    let file = root.join(format!("input-{kind}"));
    let write = |s: &str| {
        std::fs::write(&file, s).unwrap();
        Some(file.display().to_string())
    };
    let finding = r#"[{"rule_id":"r","title":"t","message":"m","severity":"High","confidence":"High","cwe_ids":[],"cve_ids":[],"cvss_vector":null,"location":null,"fingerprint":null,"tags":[],"properties":[]}]"#;
    match kind {
        "action" => (
            vec!["--action".into(), "greet".into()],
            write(r#"{"name":"Ada"}"#),
            "Hello, Ada!",
        ),
        "detector" => (
            vec![],
            write("x = 1\n# FIXME-SECURITY check auth\n"),
            "fixme-security",
        ),
        "enricher" => (vec![], write(finding), "enriched"),
        "analytics" => (vec![], write(finding), "high or critical"),
        "proxy-filter" => (
            vec![],
            write(r#"{"request":{"method":"GET","uri":"/admin/x","headers":[],"body":[]}}"#),
            "admin area is closed",
        ),
        "log-analyzer" => (
            vec![],
            write("sshd[1]: Failed password for root from 10.0.0.1\n"),
            "failed-login",
        ),
        "dynamic-tester" => (
            vec![],
            write(
                r#"{"kind":"http-api","url":"http://example.test","description":"demo","properties":[]}"#,
            ),
            "plaintext-endpoint",
        ),
        other => panic!("no case for {other}"),
    }
}

#[test]
fn plugin_new_build_run_works_for_every_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // Scaffolded crates share one target dir so the SDK's dependencies compile once.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    for kind in secflow_manifest::PluginKind::ALL {
        let kind = kind.as_str();
        let name = format!("demo-{kind}");
        let out = secflow(&home)
            .args(["plugin", "new", &name, "--kind", kind, "--path"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "new {kind}: {}", text(&out.stderr));
        let dir = tmp.path().join(&name);
        assert!(dir.join("plugin.toml").is_file() && dir.join("src/lib.rs").is_file());
        // The SDK's guest stack, which keeps a fresh instance inside the memory the host
        // resets in place.
        let cargo_config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
        assert!(
            cargo_config.contains("-zstack-size=131072"),
            "{cargo_config}"
        );

        let out = secflow(&home)
            .args(["plugin", "build"])
            .arg(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(out.status.success(), "build {kind}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("Built {name} 0.1.0 ({kind})")),
            "{}",
            text(&out.stdout)
        );

        let (extra, input, expected) = kind_case(kind, tmp.path());
        let mut cmd = secflow(&home);
        cmd.args(["run", "--dev"])
            .arg(&dir)
            .args(&extra)
            .arg("--json");
        if let Some(input) = input {
            cmd.args(["--input", &input]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "run {kind}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(expected),
            "run {kind}: {}",
            text(&out.stdout)
        );

        let out = secflow(&home)
            .args(["run", "--dev"])
            .arg(&dir)
            .args(["--health", "--json", "--report"])
            .output()
            .unwrap();
        assert!(
            text(&out.stdout).contains("Healthy"),
            "health {kind}: {}",
            text(&out.stdout)
        );
        // Built with the SDK's 128 KiB guest stack: with Rust's default 1 MiB stack the
        // linear memory alone would start above 1 MiB.
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let peak = report["report"]["peak_memory_bytes"].as_u64().unwrap();
        assert!(
            peak < 1 << 20,
            "{kind}: peak memory {peak} B; built without the SDK's guest stack?"
        );
    }
    // `plugin new` refuses to overwrite and refuses bad ids.
    let out = secflow(&home)
        .args(["plugin", "new", "demo-action", "--path"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = secflow(&home)
        .args(["plugin", "new", "Bad_Name", "--path"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid plugin id"));
}

#[test]
fn plugin_build_refuses_a_component_using_undeclared_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let out = secflow(&home)
        .args(["plugin", "new", "netty", "--kind", "action", "--path"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tmp.path().join("netty");
    // The code uses outgoing HTTP, but the manifest declares no network capability.
    let src = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap().replace(
        "Ok(json!(format!(\"Hello, {name}!\")))",
        "let r = secflow_pdk::http::get(name).map_err(|e| failed(e.to_string()))?;\n                Ok(json!(r.status))",
    );
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    let out = secflow(&home)
        .args(["plugin", "build"])
        .arg(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert_fails(&out, 3, "capabilities.network");
}

#[test]
fn plugin_schema_is_the_published_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = secflow(tmp.path())
        .args(["plugin", "schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let published: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/plugin-manifest.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, published);
}

#[test]
fn run_dev_mount_binds_only_declared_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("rules.txt"), "rule-1").unwrap();
    let manifest = std::fs::read_to_string(
        Path::new(artifacts::TEST_HOSTILE.dir).join("plugin.toml"),
    )
    .unwrap()
        + "\n[[capabilities.filesystem]]\npath = \"/rules\"\nreason = \"reads the rule files\"\n";
    let dir = plugin_dir(
        tmp.path(),
        "hostile",
        &manifest,
        artifacts::TEST_HOSTILE.component,
    );
    let mount = format!("/rules={}", data.display());
    let mut cmd = secflow(&home);
    cmd.args(["run", "--dev"]).arg(&dir).args([
        "--action",
        "read-file",
        "--input",
        "-",
        "--json",
        "--mount",
        &mount,
    ]);
    let out = run_with_stdin(cmd, r#"{"path":"/rules/rules.txt"}"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "\"rule-1\"");

    let out = secflow(&home)
        .args(["run", "--dev"])
        .arg(&dir)
        .args(["--action", "noop", "--mount", "/etc=/etc"])
        .output()
        .unwrap();
    assert_fails(&out, 2, "declares no filesystem capability");
}

#[test]
fn plugin_pack_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = data_processor(tmp.path());
    let a = tmp.path().join("a.sfpkg");
    let b = tmp.path().join("b.sfpkg");
    for out in [&a, &b] {
        let res = secflow(&home)
            .args(["plugin", "pack"])
            .arg(&dir)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        assert!(res.status.success(), "{}", text(&res.stderr));
        assert!(
            text(&res.stdout).contains("sha256"),
            "{}",
            text(&res.stdout)
        );
    }
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a, b, "same inputs, same bytes");
    assert!(a.starts_with(secflow_package::MAGIC));
    // Without a built component there is nothing to pack: exit 2 with the fix.
    std::fs::remove_file(dir.join("plugin.wasm")).unwrap();
    let res = secflow(&home)
        .args(["plugin", "pack"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_fails(&res, 2, "secflow plugin build");
}

#[test]
fn sign_trust_verify_as_the_readme_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = data_processor(tmp.path());
    let pkg = tmp.path().join("dp.sfpkg");
    let ok = |args: &[&str]| {
        let out = secflow(&home)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let generated = ok(&["key", "generate", "--name", "pub"]);
    assert!(
        generated.contains("key id") && !generated.contains("seed"),
        "never prints the secret"
    );
    ok(&[
        "plugin",
        "pack",
        dir.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
    ]);
    // A signature that expires as it is made is a usage error, and nothing is written.
    let before = std::fs::read(&pkg).unwrap();
    let out = secflow(&home)
        .args(["plugin", "sign"])
        .arg(&pkg)
        .args(["--key", "pub", "--expires-in-days", "0"])
        .output()
        .unwrap();
    assert_fails(&out, 2, "--expires-in-days");
    assert_eq!(
        std::fs::read(&pkg).unwrap(),
        before,
        "the package is untouched"
    );
    // Signed by a key nobody trusts yet: refused.
    ok(&["plugin", "sign", pkg.to_str().unwrap(), "--key", "pub"]);
    let out = secflow(&home)
        .args(["plugin", "verify"])
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout).contains("untrusted"),
        "{}",
        text(&out.stdout)
    );

    ok(&["trust", "add", "pub", "--role", "publisher", "--scope", "*"]);
    let report = ok(&["plugin", "verify", pkg.to_str().unwrap()]);
    assert!(report.contains("verdict: accepted"), "{report}");
    let json = ok(&["plugin", "verify", pkg.to_str().unwrap(), "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["verdict"], "accepted");
    assert_eq!(
        value["verification"]["signatures"][0]["status"]["status"],
        "valid"
    );

    // Any changed byte: exit 3.
    let original = std::fs::read(&pkg).unwrap();
    for pos in [0, 20, original.len() / 2, original.len() - 10] {
        let mut bad = original.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&pkg, &bad).unwrap();
        let out = secflow(&home)
            .args(["plugin", "verify"])
            .arg(&pkg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "byte {pos}");
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(
            said.contains("refused")
                || said.contains("not a SecFlow package")
                || said.contains("malformed")
                || said.contains("not canonical"),
            "byte {pos}: says why: {said}"
        );
    }
}
