//! Conventions a user of Semgrep, Trivy or gitleaks expects from the command line.

mod common;

use common::{code, secflow, text};

#[test]
fn bad_values_are_refused_before_anything_runs() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // No zero jobs: a scan with no workers would hang or do nothing.
    let out = secflow(h)
        .args(["scan", ".", "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--jobs"),
        "{}",
        text(&out.stderr)
    );

    // `--since` takes a time, not any string compared as text.
    for bad in [
        "yesterday",
        "2026-13-01",
        "2026-11-22T25:00:00Z",
        "1700000000",
    ] {
        let out = secflow(h)
            .args(["audit", "log", "--since", bad])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "--since {bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("is not a time"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn since_compares_times_not_text() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // One event now.
    let out = secflow(h)
        .args(["run", "secrets-detector", "--health"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let count = |since: &str| {
        let out = secflow(h)
            .args(["audit", "log", "--json", "--since", since])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{since}: {}", text(&out.stderr));
        text(&out.stdout).lines().count()
    };
    assert!(count("2000-01-01") > 0);
    assert_eq!(count("2999-01-01T00:00:00Z"), 0);
    // The same instant written with an offset far east: still in the past, so everything.
    assert!(count("2000-01-01T09:00:00+09:00") > 0);
    assert_eq!(count("2999-01-01T09:00:00+09:00"), 0);
}

#[test]
fn version_names_the_build_and_its_bundled_plugins() {
    let home = tempfile::tempdir().unwrap();
    let out = secflow(home.path())
        .args(["version", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let plugins = v["bundled_plugins"].as_array().unwrap();
    assert!(plugins.iter().any(|p| p["id"] == "secrets-detector"));
    assert!(
        plugins
            .iter()
            .all(|p| p["sha256"].as_str().is_some_and(|s| s.len() == 64))
    );
}

#[test]
fn the_security_specifications_variables_are_recognized() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let with = |name: &str, value: &str, args: &[&str]| {
        secflow(h).env(name, value).args(args).output().unwrap()
    };
    // The two switches that would turn SecFlow off are refused with the reason.
    for (name, why) in [
        (
            "SECFLOW_SIGNATURE_VERIFICATION",
            "cannot turn verification off",
        ),
        ("SECFLOW_SANDBOX_ENABLED", "cannot turn the sandbox off"),
    ] {
        for value in ["false", "0", "off"] {
            let out = with(name, value, &["plugin", "list"]);
            assert_eq!(code(&out), 2, "{name}={value}");
            assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
        }
        // Leaving them on is fine.
        let out = with(name, "true", &["plugin", "list"]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }

    // Unsigned plugins only in developer mode.
    let out = with(
        "SECFLOW_ALLOW_UNSIGNED_PLUGINS",
        "true",
        &["plugin", "install", "missing.sfpkg"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("applies only in developer mode"),
        "{}",
        text(&out.stderr)
    );
    // With --dev the install goes on (and fails on the missing file, not on the variable).
    let out = with(
        "SECFLOW_ALLOW_UNSIGNED_PLUGINS",
        "true",
        &["plugin", "install", "missing.sfpkg", "--dev"],
    );
    assert!(
        text(&out.stderr).contains("cannot read missing.sfpkg"),
        "{}",
        text(&out.stderr)
    );

    // The audit log level takes a level.
    let out = with("SECFLOW_AUDIT_LOG_LEVEL", "loud", &["plugin", "list"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("is not a level"));
    let out = with("SECFLOW_AUDIT_LOG_LEVEL", "WARNING", &["plugin", "list"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));

    // The policy location: a directory is used, a file is refused with what to do.
    let policies = tempfile::tempdir().unwrap();
    let out = with(
        "SECFLOW_SECURITY_POLICY_FILE",
        policies.path().to_str().unwrap(),
        &["policy", "init"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // `policy init` wrote the defaults where the variable points.
    assert!(std::fs::read_dir(policies.path()).unwrap().count() > 0);
    let file = policies.path().join("one.cedar");
    std::fs::write(&file, "permit(principal, action, resource);").unwrap();
    let out = with(
        "SECFLOW_SECURITY_POLICY_FILE",
        file.to_str().unwrap(),
        &["policy", "check"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("is a file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn severity_exclude_no_ignore_and_quiet_shape_a_scan() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    // A critical secret, and a medium weakness; one copy in an ignored directory and one
    // under tests/.
    let key = "AKIAQ3EGUMC5HOWD4VXZ";
    std::fs::write(
        t.join("config.py"),
        format!("AWS_ACCESS_KEY_ID = \"{key}\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(t.join("tests")).unwrap();
    std::fs::write(t.join("tests/fixture.py"), format!("KEY = \"{key}\"\n")).unwrap();
    std::fs::create_dir_all(t.join("build")).unwrap();
    std::fs::write(t.join("build/out.py"), format!("KEY = \"{key}\"\n")).unwrap();
    std::fs::write(t.join(".gitignore"), "build/\n").unwrap();
    std::fs::write(
        t.join("app.py"),
        "import hashlib\nh = hashlib.md5(password.encode()).hexdigest()\n",
    )
    .unwrap();

    let files = |extra: &[&str]| -> (Vec<String>, Vec<String>) {
        let out = secflow(h)
            .arg("scan")
            .arg(t)
            .args(["--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{extra:?}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let findings = report["findings"].as_array().unwrap();
        let mut paths: Vec<String> = findings
            .iter()
            .map(|f| f["location"]["path"].as_str().unwrap().to_string())
            .collect();
        paths.sort();
        paths.dedup();
        let mut severities: Vec<String> = findings
            .iter()
            .map(|f| f["severity"].as_str().unwrap().to_string())
            .collect();
        severities.sort();
        severities.dedup();
        (paths, severities)
    };

    let (paths, severities) = files(&[]);
    assert!(paths.contains(&"config.py".to_string()), "{paths:?}");
    assert!(paths.contains(&"app.py".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("build/")), "{paths:?}");
    assert!(severities.len() > 1, "{severities:?}");

    let (paths, _) = files(&["--no-ignore"]);
    assert!(paths.contains(&"build/out.py".to_string()), "{paths:?}");

    let (paths, _) = files(&["--exclude", "tests/**"]);
    assert!(!paths.iter().any(|p| p.starts_with("tests/")), "{paths:?}");
    assert!(paths.contains(&"config.py".to_string()), "{paths:?}");

    let (_, severities) = files(&["--severity", "critical,high"]);
    assert!(
        severities.iter().all(|s| s == "critical" || s == "high"),
        "{severities:?}"
    );
    assert!(!severities.is_empty());

    // A malformed glob is the user's to fix.
    let out = secflow(h)
        .arg("scan")
        .arg(t)
        .args(["--exclude", "a[b"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("exclude pattern `a[b`"),
        "{}",
        text(&out.stderr)
    );

    // -q: the report on stdout, nothing on stderr.
    let report = t.join("report.json");
    let out = secflow(h)
        .arg("scan")
        .arg(t)
        .args(["--format", "json", "-q", "-o"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(text(&out.stderr), "", "quiet printed on stderr");
    assert!(report.is_file());
}

#[test]
fn a_project_file_sets_scan_defaults_that_flags_override() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let key = "AKIAQ3EGUMC5HOWD4VXZ";
    // A git work tree: the file is searched for up to its root.
    std::fs::create_dir_all(p.join(".git")).unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::create_dir_all(p.join("vendor")).unwrap();
    std::fs::write(
        p.join("src/config.py"),
        format!("AWS_ACCESS_KEY_ID = \"{key}\"\n"),
    )
    .unwrap();
    std::fs::write(p.join("vendor/lib.py"), format!("KEY = \"{key}\"\n")).unwrap();
    std::fs::write(
        p.join(".secflow.toml"),
        "[scan]\nformat = \"json\"\nfail-on = \"high\"\nexclude = [\"vendor/**\"]\nplugins = [\"secrets-detector\"]\n",
    )
    .unwrap();

    // Found upward from a target below it: JSON, the gate, the exclusion.
    let out = secflow(h).arg("scan").arg(p.join("src")).output().unwrap();
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["findings"].as_array().unwrap().is_empty());
    let out = secflow(h).arg("scan").arg(p).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["location"]["path"]
                .as_str()
                .unwrap()
                .starts_with("vendor/")),
        "{report}"
    );

    // A flag wins over the file, and so does an environment variable.
    let out = secflow(h)
        .arg("scan")
        .arg(p)
        .args(["--format", "sarif", "--fail-on", "critical"])
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("\"runs\""));
    // An environment variable wins over the file too: the file's tiny size limit skips
    // every file, SECFLOW_MAX_FILE_SIZE lifts it.
    std::fs::write(
        p.join(".secflow.toml"),
        "[scan]\nformat = \"json\"\nmax-file-size = \"10\"\n",
    )
    .unwrap();
    let count = |env: Option<&str>| {
        let mut cmd = secflow(h);
        if let Some(v) = env {
            cmd.env("SECFLOW_MAX_FILE_SIZE", v);
        }
        let out = cmd.arg("scan").arg(p).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
        report["findings"].as_array().unwrap().len()
    };
    assert_eq!(count(None), 0);
    assert!(count(Some("10M")) > 0);

    // A symlinked project file is not read (it could point anywhere on the machine).
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("settings"),
        "[scan]\nformat = \"sarif\"\n",
    )
    .unwrap();
    std::fs::remove_file(p.join(".secflow.toml")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("settings"), p.join(".secflow.toml")).unwrap();
    let out = secflow(h).arg("scan").arg(p).output().unwrap();
    assert!(
        !text(&out.stdout).contains("\"runs\""),
        "a symlinked project file was used"
    );
    std::fs::remove_file(p.join(".secflow.toml")).unwrap();

    // What would widen the scan is not accepted from a project file.
    std::fs::write(
        p.join(".secflow.toml"),
        "[scan]\nmount = [\"kev-epss-enricher:/feeds=/etc\"]\n",
    )
    .unwrap();
    let out = secflow(h).arg("scan").arg(p).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains(".secflow.toml") && text(&out.stderr).contains("mount"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs the secflow binary as an unprivileged user when the tests run as root (root reads
/// any file, so nothing would be unreadable): a copy of the binary in a directory that user
/// can reach, through `setpriv`.
#[cfg(unix)]
fn unprivileged(dir: &std::path::Path) -> std::process::Command {
    use std::os::unix::fs::PermissionsExt;
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    if !is_root {
        return secflow(&home);
    }
    let bin = dir.join("secflow");
    std::fs::copy(env!("CARGO_BIN_EXE_secflow"), &bin).unwrap();
    for p in [dir, home.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .env("SECFLOW_HOME", &home)
        .env("HOME", &home)
        .env_remove("SECFLOW_LOG")
        .env_remove("SECFLOW_FAIL_ON");
    cmd
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_or_directory_makes_the_scan_partial_and_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = root.path().join("target");
    std::fs::create_dir_all(target.join("locked-dir")).unwrap();
    std::fs::write(target.join("ok.py"), "print('fine')\n").unwrap();
    std::fs::write(
        target.join("secret.env"),
        "AWS_ACCESS_KEY_ID=AKIAQ3EGUMC5HOWD4VXZ\n",
    )
    .unwrap();
    std::fs::write(target.join("locked-dir/inner.py"), "x = 1\n").unwrap();
    for (p, mode) in [
        (target.as_path(), 0o755),
        (target.join("ok.py").as_path(), 0o644),
        (target.join("secret.env").as_path(), 0o000),
        (target.join("locked-dir").as_path(), 0o000),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = unprivileged(root.path())
        .arg("scan")
        .arg(&target)
        .args(["--format", "json", "--plugin", "secrets-detector"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 4, "a partial scan exits 4: {stderr}");
    assert!(stderr.contains("could not read secret.env"), "{stderr}");
    assert!(stderr.contains("locked-dir"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["partial"], true);
    assert_eq!(
        report["summary"]["files_skipped"]["unreadable"], 2,
        "{report}"
    );
}

#[test]
fn scan_dash_reads_stdin() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = secflow(home.path());
    cmd.args([
        "scan",
        "-",
        "--format",
        "json",
        "--plugin",
        "secrets-detector",
    ]);
    let out = common::run_with_stdin(cmd, "AWS_ACCESS_KEY_ID=AKIAQ3EGUMC5HOWD4VXZ\n");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["target"], "-");
    let findings = report["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    assert_eq!(findings[0]["location"]["path"], "stdin");
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let home = tempfile::tempdir().unwrap();
    // `head -1` closes the pipe after the first line; secflow must not panic on the rest.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' plugin list | head -1; '{}' version | head -1",
            env!("CARGO_BIN_EXE_secflow"),
            env!("CARGO_BIN_EXE_secflow")
        ))
        .env("SECFLOW_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(text(&out.stdout).starts_with("ID"), "{}", text(&out.stdout));
}
