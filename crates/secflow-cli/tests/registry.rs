//! The registry end to end through the `secflow` binary: real signed packages, a real
//! SQLite registry and blob store, real components, real processes (killed with SIGKILL in
//! the crash-consistency test).

mod common;

use common::text;
use secflow_plugin_artifacts as artifacts;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Env {
    tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Env {
    /// A home with two trusted keys: `pub` (publisher) and `market` (marketplace).
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let env = Env { tmp, home };
        env.ok(&["key", "generate", "--name", "pub"]);
        env.ok(&["key", "generate", "--name", "market"]);
        env.ok(&["trust", "add", "pub", "--role", "publisher"]);
        env.ok(&["trust", "add", "market", "--role", "marketplace"]);
        env
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secflow"));
        cmd.env("SECFLOW_HOME", &self.home)
            .env_remove("SECFLOW_LOG")
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.cmd();
        cmd.args(args);
        common::run_with_stdin(cmd, stdin)
    }

    /// The hostile test enricher, signed by `pub` and installed with everything it asks.
    fn install_test_enricher(&self) {
        let manifest =
            std::fs::read_to_string(Path::new(artifacts::TEST_ENRICHER.dir).join("plugin.toml"))
                .unwrap();
        let pkg = self.package(
            "enricher",
            &manifest,
            artifacts::TEST_ENRICHER.component,
            &["pub"],
        );
        self.ok(&["plugin", "install", p(&pkg), "--yes"]);
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} exited {:?}: {}{}",
            out.status.code(),
            text(&out.stderr),
            text(&out.stdout)
        );
        text(&out.stdout)
    }

    /// Runs and asserts the exit code and that stderr names the problem.
    fn fails(&self, args: &[&str], code: i32, needle: &str) -> Output {
        let out = self.run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in: {stderr}"
        );
        out
    }

    /// The README's `secflow run data-processor --action aggregate` of `[1,2,3]`.
    fn sum_with_data_processor(&self) -> Output {
        self.run_stdin(
            &[
                "run",
                "data-processor",
                "--action",
                "aggregate",
                "--input",
                "-",
            ],
            r#"{"data":[1,2,3],"operation":"sum"}"#,
        )
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Packs `manifest` with `component` and signs it with each of `keys`.
    fn package(&self, name: &str, manifest: &str, component: &str, keys: &[&str]) -> PathBuf {
        let dir = self.tmp.path().join("src").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
        std::fs::copy(component, dir.join("plugin.wasm")).unwrap();
        let file = self.tmp.path().join(format!("{name}.sfpkg"));
        self.ok(&[
            "plugin",
            "pack",
            dir.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ]);
        for key in keys {
            self.ok(&["plugin", "sign", file.to_str().unwrap(), "--key", key]);
        }
        file
    }

    /// The data processor at `version`, signed by `pub`.
    fn data_processor(&self, version: &str) -> PathBuf {
        let manifest =
            std::fs::read_to_string(Path::new(artifacts::DATA_PROCESSOR.dir).join("plugin.toml"))
                .unwrap()
                .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
        assert!(manifest.contains(version));
        self.package(
            &format!("dp-{version}"),
            &manifest,
            artifacts::DATA_PROCESSOR.component,
            &["pub"],
        )
    }

    /// The hostile test plugin under id `hostile`, with `extra` manifest text, signed by
    /// `keys`; each distinct combination gets its own file.
    fn hostile(&self, version: &str, extra: &str, keys: &[&str]) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (extra, keys).hash(&mut h);
        self.package(
            &format!("hostile-{version}-{:x}", h.finish()),
            &hostile_manifest(version, extra),
            artifacts::TEST_HOSTILE.component,
            keys,
        )
    }

    fn audit_actions(&self) -> Vec<(String, String, String)> {
        self.ok(&["audit", "log", "--json"])
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["action"].as_str().unwrap_or("").to_string(),
                    v["decision"].as_str().unwrap_or("").to_string(),
                    v["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// `(id, version, state)` of every installed plugin.
    fn installed(&self) -> Vec<(String, String, String)> {
        let list = self.json(&["plugin", "list", "--json"]);
        list.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["origin"] == "installed")
            .map(|p| {
                let state = if p["quarantined"] == true {
                    "quarantined"
                } else if p["pending_approval"] == true {
                    "pending-approval"
                } else if p["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                };
                (
                    p["id"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                    state.to_string(),
                )
            })
            .collect()
    }
}

/// `secflow run hostile --action read-file` of `/data/note.txt`.
fn read_note(env: &Env) -> Output {
    env.run_stdin(
        &[
            "run",
            "hostile",
            "--action",
            "read-file",
            "--input",
            "-",
            "--json",
        ],
        r#"{"path":"/data/note.txt"}"#,
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn install_run_audit_verify_as_the_readme_shows() {
    let env = Env::new();
    let dp = env.data_processor("0.1.0");
    let installed = env.ok(&["plugin", "install", p(&dp), "--yes"]);
    assert!(
        installed.contains("installed data-processor 0.1.0"),
        "{installed}"
    );
    let out = env.sum_with_data_processor();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "6");
    env.ok(&["audit", "verify"]);
    let actions = env.audit_actions();
    for wanted in [
        ("signature.verify", "accepted"),
        ("policy.decision", "allow"),
        ("plugin.install", "ok"),
        ("plugin.load", "ok"),
        ("plugin.invoke", "ok"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, d, _)| (a.as_str(), d.as_str()) == wanted),
            "{wanted:?} in {actions:?}"
        );
    }

    // Stats: one execution, no errors, a last run, average and p95.
    let info = env.json(&["plugin", "info", "data-processor", "--json"]);
    assert_eq!(info["stats"]["executions"], 1);
    assert_eq!(info["stats"]["errors"], 0);
    assert_eq!(info["stats"]["last_outcome"], "ok");
    assert!(info["stats"]["p95_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(info["grant"]["approval"], "--yes");
    assert_eq!(info["plugin"]["signers"][0]["name"], "pub");

    // Health is checked on request and recorded.
    env.ok(&["run", "data-processor", "--health"]);
    let info = env.json(&["plugin", "info", "data-processor", "--json"]);
    assert_eq!(info["health"]["ok"], true);
    let human = env.ok(&["plugin", "info", "data-processor"]);
    assert!(human.contains("health        healthy"), "{human}");
}

#[test]
fn install_upgrade_uninstall_round_trip() {
    let env = Env::new();
    let v1 = env.data_processor("0.1.0");
    let v2 = env.data_processor("0.2.0");
    env.ok(&["plugin", "install", p(&v1), "--yes"]);
    // Installing the same package again changes nothing; another version is an upgrade.
    let again = env.run(&["plugin", "install", p(&v1), "--yes"]);
    assert!(again.status.success());
    assert!(text(&again.stderr).contains("already installed"));
    env.fails(
        &["plugin", "install", p(&v2), "--yes"],
        3,
        "plugin upgrade FILE",
    );

    let up = env.ok(&["plugin", "upgrade", p(&v2), "--yes"]);
    assert!(
        up.contains("upgraded data-processor 0.1.0 -> 0.2.0"),
        "{up}"
    );
    assert_eq!(
        env.installed(),
        [("data-processor".into(), "0.2.0".into(), "enabled".into())]
    );
    let versions = env.json(&["plugin", "versions", "data-processor", "--json"]);
    let listed: Vec<(&str, bool)> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["active"] == true))
        .collect();
    assert_eq!(listed, [("0.2.0", true), ("0.1.0", false)]);
    // Going back needs the explicit override (and the trust store's rollback protection
    // agrees).
    env.fails(&["plugin", "upgrade", p(&v1), "--yes"], 3, "rollback");
    env.ok(&["plugin", "upgrade", p(&v1), "--yes", "--allow-rollback"]);
    assert_eq!(env.installed()[0].1, "0.1.0");

    // Same id and version, other bytes: versions are immutable.
    let mut other =
        std::fs::read_to_string(Path::new(artifacts::DATA_PROCESSOR.dir).join("plugin.toml"))
            .unwrap();
    other = other.replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    other.push_str("\n# a different payload\n");
    let v2b = env.package(
        "dp-0.2.0-other",
        &other,
        artifacts::DATA_PROCESSOR.component,
        &["pub"],
    );
    env.fails(
        &["plugin", "upgrade", p(&v2b), "--yes"],
        3,
        "versions are immutable",
    );

    // A countersignature on the installed payload replaces the stored package and rebinds
    // the grant to both signers; nothing else changes.
    let current = env.tmp.path().join("dp-0.1.0.sfpkg");
    env.ok(&["plugin", "sign", p(&current), "--key", "market"]);
    // (0.1.0 is older than the 0.2.0 the trust store has seen: the override again.)
    env.ok(&[
        "plugin",
        "install",
        p(&current),
        "--yes",
        "--allow-rollback",
    ]);
    let info = env.json(&["plugin", "info", "data-processor", "--json"]);
    assert_eq!(info["plugin"]["signers"].as_array().unwrap().len(), 2);
    assert_eq!(info["grant"]["signers"].as_array().unwrap().len(), 2);
    assert_eq!(info["grant"]["approval"], "--yes");

    // Disable / enable.
    env.ok(&["plugin", "disable", "data-processor"]);
    env.fails(
        &["run", "data-processor", "--action", "aggregate"],
        3,
        "is disabled",
    );
    env.ok(&["plugin", "enable", "data-processor"]);

    let gone = env.ok(&["plugin", "uninstall", "data-processor"]);
    assert!(gone.contains("uninstalled data-processor"), "{gone}");
    assert!(env.installed().is_empty());
    let blobs = env.home.join("blobs/sha256");
    let left: usize = std::fs::read_dir(&blobs)
        .map(|d| {
            d.flatten()
                .map(|sub| std::fs::read_dir(sub.path()).unwrap().count())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "uninstall sweeps the blobs");
    // With the installed one gone, the id runs the plugin bundled with secflow again.
    let out = env.sum_with_data_processor();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "6");
    // A clean reinstall works.
    env.ok(&["plugin", "install", p(&v2), "--yes"]);
    env.ok(&["plugin", "check"]);
    env.ok(&["audit", "verify"]);
    let actions = env.audit_actions();
    for wanted in [
        "plugin.install",
        "plugin.upgrade",
        "plugin.uninstall",
        "plugin.disable",
        "plugin.enable",
    ] {
        assert!(actions.iter().any(|(a, _, _)| a == wanted), "{wanted}");
    }
}

#[test]
fn upgrade_asking_for_more_capabilities_is_held_until_approved() {
    let env = Env::new();
    let v1 = env.hostile("0.1.0", "", &["pub"]);
    let v2 = env.hostile(
        "0.2.0",
        "[[capabilities.filesystem]]\npath = \"/data\"\nreason = \"read the data\"\n",
        &["pub"],
    );
    env.ok(&["plugin", "install", p(&v1), "--yes"]);
    // Without approval (no terminal, no --yes): stored, held and disabled, with the diff
    // shown.
    let out = env.run(&["plugin", "upgrade", p(&v2)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("new since the installed version: fs:/data"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("disabled until the new capabilities are approved"));
    assert_eq!(
        env.installed(),
        [("hostile".into(), "0.2.0".into(), "pending-approval".into())]
    );
    env.fails(
        &["run", "hostile", "--action", "noop"],
        3,
        "not approved yet",
    );
    let perms = env.ok(&["plugin", "permissions", "hostile"]);
    assert!(perms.contains("PENDING"), "{perms}");
    // Another upgrade asking the same as the held one is no way around the approval: a
    // pending grant approved nothing.
    let v2b = env.hostile(
        "0.2.1",
        "[[capabilities.filesystem]]\npath = \"/data\"\nreason = \"read the data\"\n",
        &["pub"],
    );
    env.ok(&["plugin", "upgrade", p(&v2b)]);
    assert_eq!(
        env.installed(),
        [("hostile".into(), "0.2.1".into(), "pending-approval".into())]
    );
    env.fails(
        &["plugin", "enable", "hostile"],
        3,
        "capability-increase-needs-approval",
    );
    env.ok(&["plugin", "enable", "hostile", "--yes"]);
    let data = env.tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mount = format!("/data={}", data.display());
    env.ok(&["run", "hostile", "--action", "noop", "--mount", &mount]);
    let actions = env.audit_actions();
    assert!(actions.iter().any(|(a, d, r)| a == "policy.decision"
        && d == "deny"
        && r.contains("capability-increase-needs-approval")));
    assert!(
        actions
            .iter()
            .any(|(a, d, _)| a == "plugin.upgrade" && d == "held")
    );

    // An upgrade that asks for nothing new carries the grant over and stays enabled.
    let v3 = env.hostile(
        "0.3.0",
        "[[capabilities.filesystem]]\npath = \"/data/\"\nreason = \"reworded\"\n",
        &["pub"],
    );
    env.ok(&["plugin", "upgrade", p(&v3), "--mount", &mount]);
    assert_eq!(env.installed()[0].2, "enabled");
    env.ok(&["run", "hostile", "--action", "noop"]);
    let info = env.json(&["plugin", "info", "hostile", "--json"]);
    assert_eq!(info["grant"]["approval"], "carried-over");
}

#[test]
fn policy_denials_for_each_default_rule() {
    let env = Env::new();
    let denied = |file: &Path, policy: &str| {
        env.fails(&["plugin", "install", p(file), "--yes"], 3, policy);
    };

    // signature-required: an unsigned package needs developer mode.
    let unsigned = env.hostile("0.1.0", "", &[]);
    env.fails(
        &["plugin", "install", p(&unsigned), "--yes"],
        3,
        "the package is unsigned",
    );

    // no-private-network.
    let private = env.package(
        "private",
        &hostile_manifest("0.1.0", "").replace(
            "host = \"allowed.example.com\"",
            "host = \"allowed.example.com\"\nallow-private = true",
        ),
        artifacts::TEST_HOSTILE.component,
        &["pub"],
    );
    denied(&private, "no-private-network");

    // limits-analysis-kinds: a detector asking for two minutes.
    let slow = env.package(
        "slow-detector",
        r#"
id = "slow-detector"
version = "1.0.0"
kind = "detector"
name = "Slow"
description = "Asks for more time than detectors get"
[limits]
timeout-ms = 120000
"#,
        artifacts::TEST_DETECTOR.component,
        &["pub"],
    );
    denied(&slow, "limits-analysis-kinds");

    // limits-proxy-filter and limits-enricher: judged from the manifest at install, before
    // any component is loaded.
    let limited = |id: &str, kind: &str, memory: u32| {
        env.package(
            id,
            &format!(
                "id = \"{id}\"\nversion = \"1.0.0\"\nkind = \"{kind}\"\nname = \"x\"\ndescription = \"x\"\n[limits]\nmemory-mib = {memory}\ntimeout-ms = 1000\n"
            ),
            artifacts::TEST_NOOP.component,
            &["pub"],
        )
    };
    denied(
        &limited("big-filter", "proxy-filter", 256),
        "limits-proxy-filter",
    );
    denied(
        &limited("big-enricher", "enricher", 1024),
        "limits-enricher",
    );

    // publisher-capabilities: writing the filesystem needs a marketplace countersignature.
    let write = "[[capabilities.filesystem]]\npath = \"/out\"\naccess = \"write\"\nreason = \"write reports\"\n";
    let writer = env.hostile("0.1.0", write, &["pub"]);
    denied(&writer, "publisher-capabilities");
    env.ok(&["plugin", "sign", p(&writer), "--key", "market"]);
    env.ok(&["plugin", "install", p(&writer), "--yes"]);
    env.ok(&["plugin", "uninstall", "hostile"]);

    // In developer mode the unsigned package is admitted, and runs.
    env.ok(&["plugin", "install", p(&unsigned), "--yes", "--dev"]);
    env.ok(&["run", "hostile", "--action", "noop"]);
    let explain = env.ok(&["policy", "explain", "hostile"]);
    assert!(explain.contains("unsigned"), "{explain}");
    assert!(explain.contains("run      allow"), "{explain}");

    let actions = env.audit_actions();
    let denials: Vec<&String> = actions
        .iter()
        .filter(|(a, d, _)| a == "policy.decision" && d == "deny")
        .map(|(_, _, r)| r)
        .collect();
    for policy in [
        "no-private-network",
        "limits-analysis-kinds",
        "limits-proxy-filter",
        "limits-enricher",
        "publisher-capabilities",
    ] {
        assert!(denials.iter().any(|r| r.contains(policy)), "{policy}");
    }
    // The statistics count exactly what the log holds.
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(
        stats["policy_violations"].as_u64().unwrap() as usize,
        denials.len(),
        "{stats}"
    );
    let refused_verifications = actions
        .iter()
        .filter(|(a, d, _)| a == "signature.verify" && d == "refused")
        .count();
    assert!(refused_verifications >= 1);
    assert_eq!(
        stats["verification_failures"].as_u64().unwrap() as usize,
        refused_verifications,
        "{stats}"
    );
}

#[test]
fn quarantine_after_repeated_violations_until_released() {
    let env = Env::new();
    let hostile = env.hostile("0.1.0", "", &["pub"]);
    env.ok(&["plugin", "install", p(&hostile), "--yes"]);
    // The default violation-threshold policy refuses after 3 violations.
    for i in 1..=3 {
        let out = env.run(&["run", "hostile", "--action", "loop"]);
        assert_eq!(out.status.code(), Some(4), "run {i}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("timeout"),
            "{}",
            text(&out.stderr)
        );
        let quarantined = text(&out.stderr).contains("is quarantined");
        assert_eq!(quarantined, i == 3, "run {i}: {}", text(&out.stderr));
    }
    env.fails(
        &["run", "hostile", "--action", "noop"],
        3,
        "plugin release hostile",
    );
    assert_eq!(env.installed()[0].2, "quarantined");
    let info = env.json(&["plugin", "info", "hostile", "--json"]);
    assert_eq!(info["plugin"]["violations"], 3);
    assert_eq!(info["stats"]["errors"], 3);
    env.fails(&["plugin", "enable", "hostile"], 3, "quarantined");

    env.ok(&["plugin", "release", "hostile"]);
    env.ok(&["run", "hostile", "--action", "noop"]);
    let actions = env.audit_actions();
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _, _)| a == "sandbox.violation")
            .count(),
        3
    );
    assert!(actions.iter().any(|(a, _, _)| a == "plugin.quarantine"));
    assert!(actions.iter().any(|(a, _, _)| a == "plugin.release"));
    let stats = env.json(&["stats", "--json"]);
    assert_eq!(stats["sandbox_violations"], 3);
}

#[test]
fn run_uses_the_stored_grant_not_the_manifest() {
    let env = Env::new();
    let data = env.tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted contents").unwrap();
    let hostile = env.hostile(
        "0.1.0",
        "[[capabilities.filesystem]]\npath = \"/data\"\nreason = \"read the data\"\n",
        &["pub"],
    );
    // A label the plugin never asked for is refused, naming what it asks for.
    env.fails(
        &["plugin", "install", p(&hostile), "--grant", "fs:/etc"],
        2,
        "fs:/data",
    );
    // Without a terminal and without --yes/--grant nothing is installed.
    env.fails(&["plugin", "install", p(&hostile)], 2, "--yes");
    let mount = format!("/data={}", data.display());
    env.ok(&[
        "plugin",
        "install",
        p(&hostile),
        "--grant",
        "fs:/data",
        "--mount",
        &mount,
    ]);
    let perms = env.ok(&["plugin", "permissions", "hostile"]);
    assert!(perms.contains("granted fs:/data"), "{perms}");
    assert!(perms.contains("denied  kv"), "{perms}");
    assert!(
        perms.contains("denied  net:https://allowed.example.com:443"),
        "{perms}"
    );

    let read = read_note(&env);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert!(text(&read.stdout).contains("granted contents"));

    // Declared but not granted: denied at run time like anything undeclared.
    let kv = env.run_stdin(
        &[
            "run", "hostile", "--action", "kv-set", "--input", "-", "--json",
        ],
        r#"{"key":"k","value":"v"}"#,
    );
    assert_eq!(kv.status.code(), Some(4), "{}", text(&kv.stdout));
    let denied: serde_json::Value = serde_json::from_slice(&kv.stdout).unwrap();
    assert_eq!(denied["error"]["kind"], "capability-denied", "{denied}");
    assert_eq!(denied["error"]["capability"], "kv", "{denied}");
    let net = env.run_stdin(
        &[
            "run", "hostile", "--action", "http-get", "--input", "-", "--json",
        ],
        r#"{"url":"https://allowed.example.com/"}"#,
    );
    let net_out = text(&net.stdout) + &text(&net.stderr);
    assert_eq!(net.status.code(), Some(4), "{net_out}");
    let v: serde_json::Value = serde_json::from_slice(&net.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "capability-denied", "{v}");
    assert_eq!(v["error"]["capability"], "network", "{v}");
    assert_eq!(
        v["error"]["reason"],
        "request to https://allowed.example.com:443 is not covered by any network grant"
    );
    assert_eq!(v["report"]["http_requests"], 1, "{v}");
    // An upgrade asking for the same keeps the partial grant without asking again: what was
    // declined stays declined, and the directory stays bound where it was.
    let v2 = env.hostile(
        "0.2.0",
        "[[capabilities.filesystem]]\npath = \"/data\"\nreason = \"read the data\"\n",
        &["pub"],
    );
    env.ok(&["plugin", "upgrade", p(&v2)]);
    assert_eq!(env.installed()[0].2, "enabled");
    let perms = env.ok(&["plugin", "permissions", "hostile"]);
    assert!(perms.contains("granted fs:/data"), "{perms}");
    assert!(perms.contains("denied  kv"), "{perms}");
    let read = read_note(&env);
    assert!(
        text(&read.stdout).contains("granted contents"),
        "{}",
        text(&read.stderr)
    );

    // Only granted directories can be re-bound at run time.
    env.fails(
        &["run", "hostile", "--action", "noop", "--mount", "/etc=/etc"],
        2,
        "not granted",
    );
}

#[test]
fn revoked_signer_and_tampered_blob_stop_an_installed_plugin() {
    let env = Env::new();
    let dp = env.data_processor("0.1.0");
    env.ok(&["plugin", "install", p(&dp), "--yes"]);
    let record = env.json(&["plugin", "versions", "data-processor", "--json"]);
    assert_eq!(record[0]["active"], true);

    // Flip a byte of the stored package: run and check refuse it.
    let blobs = env.home.join("blobs/sha256");
    let blob = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .next()
        .unwrap()
        .path();
    let original = std::fs::read(&blob).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(&blob, &bad).unwrap();
    env.fails(
        &["run", "data-processor", "--action", "aggregate"],
        3,
        "modified on disk",
    );
    env.fails(&["plugin", "check"], 3, "modified on disk");
    std::fs::write(&blob, &original).unwrap();
    env.ok(&["plugin", "check"]);

    // Revoke the signer: the installed plugin no longer runs.
    env.ok(&["key", "generate", "--name", "rev"]);
    env.ok(&["trust", "add", "rev", "--role", "revocation"]);
    let key_id = record[0]["signers"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&[
        "trust",
        "revoke",
        &key_id,
        "--sign-with",
        "rev",
        "--from",
        "0",
    ]);
    env.fails(
        &["run", "data-processor", "--action", "aggregate"],
        3,
        "no longer trusted",
    );
}

#[test]
fn dependencies_resolve_and_cycles_are_reported() {
    let env = Env::new();
    let manifest = |id: &str, deps: &str| {
        format!(
            "id = \"{id}\"\nversion = \"1.0.0\"\nkind = \"action\"\nname = \"{id}\"\ndescription = \"x\"\n[dependencies]\n{deps}\n"
        )
    };
    let component = artifacts::TEST_NOOP.component;
    let base = env.package("base", &manifest("base", ""), component, &["pub"]);
    let app = env.package(
        "app",
        &manifest("app", "base = \"^1\""),
        component,
        &["pub"],
    );
    env.fails(
        &["plugin", "install", p(&app), "--yes"],
        3,
        "needs base ^1, which is not installed; install base first",
    );
    // Together: the dependency goes first.
    env.ok(&["plugin", "install", p(&app), p(&base), "--yes"]);
    assert_eq!(env.installed().len(), 2);
    env.fails(
        &["plugin", "uninstall", "base"],
        3,
        "app 1.0.0 depends on base ^1; uninstall app first",
    );
    env.ok(&["plugin", "uninstall", "app"]);
    env.ok(&["plugin", "uninstall", "base"]);

    let x = env.package("x", &manifest("x", "y = \"*\""), component, &["pub"]);
    let y = env.package("y", &manifest("y", "x = \"*\""), component, &["pub"]);
    env.fails(
        &["plugin", "install", p(&x), p(&y), "--yes"],
        3,
        "dependency cycle: x -> y -> x",
    );
    assert!(env.installed().is_empty(), "nothing installed");
}

#[test]
fn search_versions_and_info_describe_installed_plugins() {
    let env = Env::new();
    env.ok(&[
        "plugin",
        "install",
        p(&env.data_processor("0.1.0")),
        "--yes",
    ]);
    env.ok(&[
        "plugin",
        "install",
        p(&env.hostile("0.1.0", "", &["pub"])),
        "--yes",
    ]);
    // Installed plugins only (the bundled ones are listed and searched too).
    let ids = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["origin"] == "installed")
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(env.json(&["plugin", "search", "NUMBERS", "--json"])),
        ["data-processor"]
    );
    assert_eq!(
        ids(env.json(&["plugin", "search", "--tag", "attack", "--json"])),
        ["hostile"]
    );
    assert_eq!(
        ids(env.json(&["plugin", "search", "--category", "testing", "--json"])),
        ["hostile"]
    );
    assert_eq!(
        ids(env.json(&["plugin", "search", "--kind", "action", "--json"])).len(),
        2
    );
    assert!(ids(env.json(&["plugin", "search", "--kind", "detector", "--json"])).is_empty());
    let table = env.ok(&["plugin", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("hostile") && table.contains("enabled"),
        "{table}"
    );
    env.fails(&["plugin", "info", "nope"], 2, "nope is not installed");
}

#[test]
fn concurrent_installs_of_the_same_plugin_leave_one_install() {
    let env = Env::new();
    let dp = env.data_processor("0.1.0");
    let children: Vec<_> = (0..6)
        .map(|_| {
            env.cmd()
                .args(["plugin", "install", p(&dp), "--yes"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(
        env.installed(),
        [("data-processor".into(), "0.1.0".into(), "enabled".into())]
    );
    env.ok(&["plugin", "check"]);
    env.ok(&["audit", "verify"]);
    let installs = env
        .audit_actions()
        .into_iter()
        .filter(|(a, _, _)| a == "plugin.install")
        .count();
    assert_eq!(installs, 1, "one install recorded");
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_at_random_points_leaves_the_old_or_the_new_state() {
    let env = Env::new();
    let v1 = env.data_processor("0.1.0");
    let v2 = env.data_processor("0.2.0");
    // Calibrate: how long the slowest operation takes uncontended on this machine. Kills
    // are spread over 1.5 times that, so they land before, during and after the commit.
    let mut typical = Duration::ZERO;
    for args in [
        vec!["plugin", "install", p(&v1), "--yes"],
        vec!["plugin", "upgrade", p(&v2), "--yes"],
        vec!["plugin", "uninstall", "data-processor"],
    ] {
        let started = Instant::now();
        env.ok(&args);
        typical = typical.max(started.elapsed());
    }
    let span_us = (typical.as_micros() as u64 * 3 / 2).max(1_000);

    let seed = std::env::var("SECFLOW_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ec_f10e);
    let mut rng = XorShift(seed);
    let (mut old_states, mut new_states) = (0, 0);
    for round in 0..45 {
        let before = env.installed();
        let version = before.first().map(|(_, v, _)| v.clone());
        let (args, after): (Vec<&str>, Option<&str>) = match version.as_deref() {
            // After an uninstall, 0.1.0 is older than the 0.2.0 the trust store has seen.
            None => (
                vec!["plugin", "install", p(&v1), "--yes", "--allow-rollback"],
                Some("0.1.0"),
            ),
            Some("0.1.0") => (vec!["plugin", "upgrade", p(&v2), "--yes"], Some("0.2.0")),
            _ => (vec!["plugin", "uninstall", "data-processor"], None),
        };
        let delay = Duration::from_micros(rng.next() % span_us);
        let mut child = env
            .cmd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let now: Option<String> = env.installed().first().map(|(_, v, _)| v.clone());
        let label = format!("round {round} (seed {seed}): {args:?} killed after {delay:?}");
        if now == version {
            old_states += 1;
        } else {
            assert_eq!(now.as_deref(), after, "{label}: neither old nor new state");
            new_states += 1;
        }
        // Whatever the state, it is whole: every stored package present and intact, the
        // grant there, the audit chain unbroken.
        let check = env.run(&["plugin", "check"]);
        assert!(check.status.success(), "{label}: {}", text(&check.stderr));
        if let Some(v) = &now {
            let perms = env.json(&["plugin", "permissions", "data-processor", "--json"]);
            assert_eq!(perms["grant"]["version"], v.as_str(), "{label}");
        }
    }
    env.ok(&["audit", "verify"]);
    eprintln!(
        "kill -9: {old_states} old state(s), {new_states} new state(s); typical op {typical:?}"
    );
    // The kills landed on both sides of the commit.
    assert!(
        old_states > 0 && new_states > 0,
        "old {old_states}, new {new_states} (typical op {typical:?})"
    );
    // And the registry still works normally afterwards.
    if env.installed().is_empty() {
        env.ok(&["plugin", "install", p(&v1), "--yes", "--allow-rollback"]);
    }
    let out = env.sum_with_data_processor();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The hostile test plugin's manifest under id `hostile`, plus `extra` text.
fn hostile_manifest(version: &str, extra: &str) -> String {
    format!(
        r#"
id = "hostile"
version = "{version}"
kind = "action"
name = "Hostile"
description = "Attacks the sandbox"
categories = ["testing"]
tags = ["attack"]

[[capabilities.network]]
host = "allowed.example.com"
reason = "the granted host of the attack tests"

[capabilities.kv]
reason = "a private store"
{extra}
[limits]
memory-mib = 32
timeout-ms = 300
"#
    )
}

#[test]
fn sync_admits_a_directory_and_watch_hot_reloads_new_packages() {
    let env = Env::new();
    let drop = env.tmp.path().join("plugins");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::copy(env.data_processor("0.1.0"), drop.join("a-dp-0.1.0.sfpkg")).unwrap();
    // A tampered package and a file that is no package at all: skipped, the rest go on.
    let mut bad = std::fs::read(env.hostile("0.1.0", "", &["pub"])).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(drop.join("b-hostile.sfpkg"), bad).unwrap();
    std::fs::write(drop.join("c-junk.sfpkg"), b"not a package").unwrap();
    let out = env.run(&["plugin", "sync", p(&drop), "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("warning: skipped") && stderr.contains("b-hostile.sfpkg"),
        "{stderr}"
    );
    assert!(stderr.contains("c-junk.sfpkg"), "{stderr}");
    assert_eq!(
        env.installed(),
        [("data-processor".into(), "0.1.0".into(), "enabled".into())]
    );

    // Watching: a newer version dropped in is admitted and upgrades; the older one left in
    // the directory is left alone.
    std::fs::remove_file(drop.join("b-hostile.sfpkg")).unwrap();
    std::fs::remove_file(drop.join("c-junk.sfpkg")).unwrap();
    let mut watcher = env
        .cmd()
        .args(["plugin", "sync", p(&drop), "--watch", "--interval", "0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::copy(env.data_processor("0.2.0"), drop.join("d-dp-0.2.0.sfpkg")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if env.installed().first().map(|p| p.1.as_str()) == Some("0.2.0") {
            break;
        }
        assert!(Instant::now() < deadline, "the watcher never upgraded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    env.ok(&["plugin", "check"]);
    env.ok(&["audit", "verify"]);
}

#[test]
fn scan_runs_installed_detectors_with_their_grant_and_counts_their_violations() {
    let env = Env::new();
    let manifest =
        std::fs::read_to_string(Path::new(artifacts::TEST_DETECTOR.dir).join("plugin.toml"))
            .unwrap()
            .replace(
                "component = \"test_detector.wasm\"",
                "component = \"plugin.wasm\"",
            );
    let detector = env.package(
        "test-detector",
        &manifest,
        artifacts::TEST_DETECTOR.component,
        &["pub"],
    );
    env.ok(&["plugin", "install", p(&detector), "--yes"]);
    let target = env.tmp.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("a.txt"), "TEST-FINDING:high\n").unwrap();
    let scan = |extra: &[&str]| {
        let mut args = vec!["scan", target.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = scan(&["--plugin", "test-detector"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plugins = report["plugins"].to_string();
    assert!(plugins.contains("\"installed\""), "{plugins}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 1, "{report}");
    let info = env.json(&["plugin", "info", "test-detector", "--json"]);
    assert_eq!(info["stats"]["executions"], 1);

    // A violation during a scan counts like one in `secflow run`.
    std::fs::write(target.join("b.txt"), "LOOP-NOW\n").unwrap();
    let out = scan(&["--plugin", "test-detector"]);
    assert_eq!(out.status.code(), Some(4), "partial: {}", text(&out.stderr));
    let info = env.json(&["plugin", "info", "test-detector", "--json"]);
    assert_eq!(info["plugin"]["violations"], 1);
    // Disabled: left out of the scan (the bundled plugins still run).
    env.ok(&["plugin", "disable", "test-detector"]);
    env.fails(
        &[
            "scan",
            target.to_str().unwrap(),
            "--plugin",
            "test-detector",
        ],
        2,
        "not available",
    );
}

#[test]
fn a_dev_plugin_claiming_an_installed_plugins_id_sees_an_empty_store() {
    let env = Env::new();
    let hostile = env.hostile("0.1.0", "", &["pub"]);
    env.ok(&["plugin", "install", p(&hostile), "--yes"]);
    let kv = |args: &[&str], input: &str| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--input", "-", "--json"]);
        let out = env.run_stdin(&all, input);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stderr),
            text(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    kv(
        &["run", "hostile", "--action", "kv-set"],
        r#"{"key":"secret","value":"installed-data"}"#,
    );
    let installed_get = || {
        kv(
            &["run", "hostile", "--action", "kv-get"],
            r#"{"key":"secret"}"#,
        )
    };
    assert_eq!(installed_get(), "installed-data");

    // An unsigned copy claiming the same id, run from a directory.
    let dev = env.tmp.path().join("dev-hostile");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("plugin.toml"), hostile_manifest("0.1.0", "")).unwrap();
    std::fs::copy(artifacts::TEST_HOSTILE.component, dev.join("plugin.wasm")).unwrap();
    let dev_dir = dev.to_str().unwrap();
    let seen = kv(
        &["run", "--dev", dev_dir, "--action", "kv-get"],
        r#"{"key":"secret"}"#,
    );
    assert_eq!(
        seen,
        serde_json::Value::Null,
        "the installed plugin's store is not visible"
    );
    kv(
        &["run", "--dev", dev_dir, "--action", "kv-set"],
        r#"{"key":"secret","value":"overwritten-by-dev"}"#,
    );
    assert_eq!(installed_get(), "installed-data", "nor writable");

    // Uninstalling removes the installed plugin's store, not the dev one.
    env.ok(&["plugin", "uninstall", "hostile"]);
    assert!(!env.home.join("kv/installed/hostile").exists());
    assert_eq!(
        kv(
            &["run", "--dev", dev_dir, "--action", "kv-get"],
            r#"{"key":"secret"}"#
        ),
        "overwritten-by-dev"
    );
}

#[test]
fn an_installed_hostile_enricher_cannot_defeat_fail_on() {
    let env = Env::new();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vulnerable-shop");
    let scan = |env: &Env| -> (Option<i32>, serde_json::Value) {
        let out = env.run(&["scan", p(&demo), "--fail-on", "high", "--format", "json"]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    };
    let (code, clean) = scan(&env);
    assert_eq!(code, Some(1), "the demo has high findings");

    // An enricher that drops every high and critical finding, signed and installed.
    env.install_test_enricher();
    let (code, report) = scan(&env);
    assert_eq!(
        code,
        Some(1),
        "--fail-on high still fires: {}",
        report["errors"]
    );
    assert_eq!(
        report["findings"], clean["findings"],
        "every finding survives, unchanged"
    );
    let errors = report["errors"].as_array().unwrap();
    let tampering: Vec<_> = errors
        .iter()
        .filter(|e| e["plugin"] == "test-enricher")
        .collect();
    assert!(!tampering.is_empty(), "{errors:?}");
    assert!(
        tampering
            .iter()
            .all(|e| e["kind"] == "invalid-output" && e["violation"] == true)
    );
    // Counted like any violation: the third scan quarantines it.
    scan(&env);
    let (_, third) = scan(&env);
    assert!(
        third["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["plugin"] == "test-enricher")
    );
    let list = env.json(&["plugin", "list", "--json"]);
    let enricher = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "test-enricher" && p["origin"] == "installed")
        .unwrap();
    assert_eq!(enricher["quarantined"], true, "{list}");
    assert!(
        env.audit_actions()
            .iter()
            .any(|(a, d, _)| a == "sandbox.violation" && d == "invalid-output")
    );
}

#[test]
fn an_installed_plugin_that_fails_to_start_is_left_out_and_counted() {
    let env = Env::new();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vulnerable-shop");
    let scan = |extra: &[&str]| -> (Option<i32>, serde_json::Value) {
        let mut args = vec!["scan", p(&demo), "--format", "json"];
        args.extend(extra);
        let out = env.run(&args);
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
        (out.status.code(), doc)
    };
    let (_, clean) = scan(&[]);
    env.install_test_enricher();
    // Its init allocates without bound: it cannot start. The scan goes on without it.
    let (code, report) = scan(&["--config", "test-enricher.mode=hoard-init"]);
    assert_eq!(code, Some(4), "partial, no --fail-on: {}", report["errors"]);
    assert_eq!(report["partial"], true);
    assert_eq!(
        report["findings"], clean["findings"],
        "the other plugins ran"
    );
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["plugin"], "test-enricher");
    assert_eq!(errors[0]["kind"], "memory-limit");
    assert_eq!(errors[0]["violation"], true);
    let info = env.json(&["plugin", "info", "test-enricher", "--json"]);
    assert_eq!(info["plugin"]["violations"], 1, "{info}");
    assert!(
        env.audit_actions()
            .iter()
            .any(|(a, d, _)| a == "sandbox.violation" && d == "memory-limit")
    );
}
