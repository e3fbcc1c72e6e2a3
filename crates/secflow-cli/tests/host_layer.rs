//! What the `secflow-host` layer gives every front end, seen through the CLI: bundled
//! plugins are first-class (listed, runnable by id, audited), reports never replace what is
//! not a regular file, and no output carries an unkeyed digest of a secret.

mod common;

use common::{code, run_with_stdin, secflow, text};
use std::path::{Path, PathBuf};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vulnerable-shop")
}

#[test]
fn a_fresh_home_lists_the_bundled_plugins_and_runs_them_by_id() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let out = secflow(h)
        .args(["plugin", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let origin_of = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["origin"].as_str().unwrap().to_string())
    };
    for id in ["secrets-detector", "code-patterns", "data-processor"] {
        assert_eq!(origin_of(id).as_deref(), Some("bundled"), "{id} in {list}");
    }
    // Listing created no registry.
    assert!(!h.join("registry.db").exists());

    let table = secflow(h).args(["plugin", "list"]).output().unwrap();
    let table = text(&table.stdout);
    assert!(table.contains("ORIGIN"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("data-processor"))
        .unwrap_or_else(|| panic!("{table}"));
    // Columns line up with the header: ORIGIN then STATE.
    let header = table.lines().next().unwrap();
    let column = |name: &str| header.find(name).unwrap();
    assert!(row[column("ORIGIN")..].starts_with("bundled "), "{table}");
    assert!(row[column("STATE")..].starts_with("enabled "), "{table}");

    // The README's example, with only the binary.
    let mut cmd = secflow(h);
    cmd.args([
        "run",
        "data-processor",
        "--action",
        "aggregate",
        "--input",
        "-",
    ]);
    let out = run_with_stdin(cmd, br#"{"data":[1,2,3],"operation":"sum"}"#);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "6");

    let out = secflow(h)
        .args(["run", "secrets-detector", "--health", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["status"], "Healthy", "{health}");

    // Both runs went through the after-run path: audited, with their origin.
    let out = secflow(h)
        .args(["audit", "log", "--json"])
        .output()
        .unwrap();
    let invokes: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "plugin.invoke")
        .collect();
    assert_eq!(invokes.len(), 2, "{invokes:?}");
    assert!(invokes.iter().all(|e| e["details"]["origin"] == "bundled"));
    assert_eq!(invokes[0]["plugin"]["id"], "data-processor");

    // An unknown id names both places it looked.
    let out = secflow(h).args(["run", "no-such-plugin"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("no plugin `no-such-plugin` is bundled or installed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_dev_run_is_audited_like_every_other_run() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dev = common::plugin_dir(
        dir.path(),
        "noop",
        &std::fs::read_to_string(
            Path::new(secflow_plugin_artifacts::TEST_NOOP.dir).join("plugin.toml"),
        )
        .unwrap(),
        secflow_plugin_artifacts::TEST_NOOP.component,
    );
    let out = secflow(home.path())
        .args(["run", "--dev", dev.to_str().unwrap(), "--health"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let log = secflow(home.path())
        .args(["audit", "log", "--json"])
        .output()
        .unwrap();
    let log = text(&log.stdout);
    assert!(
        log.lines()
            .any(|l| l.contains("\"plugin.invoke\"") && l.contains("\"dev\"")),
        "{log}"
    );
}

#[cfg(unix)]
#[test]
fn a_report_never_replaces_what_is_not_a_regular_file() {
    use std::os::unix::fs::FileTypeExt;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let target = demo();

    // A character device: written through, still a device afterwards (as root the old
    // rename made /dev/null a regular file for every program on the machine).
    let out = secflow(h)
        .arg("scan")
        .arg(&target)
        .args(["--plugin", "secrets-detector", "-o", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(
        meta.file_type().is_char_device(),
        "/dev/null is no longer a device"
    );

    // `-o /dev/stdout` with stdout a pipe (as in `secflow scan -o /dev/stdout | jq`): the
    // kernel's FIFO, written through.
    let out = secflow(h)
        .arg("scan")
        .arg(&target)
        .args([
            "--plugin",
            "secrets-detector",
            "--format",
            "json",
            "-o",
            "/dev/stdout",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"findings\""),
        "{}",
        text(&out.stderr)
    );

    // A FIFO: the report goes through it to a reader.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = secflow(h)
        .arg("scan")
        .arg(&target)
        .args(["--plugin", "secrets-detector", "--format", "json", "-o"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let through = reader.join().unwrap();
    assert!(through.contains("\"findings\""), "{through}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // A symlink: the file it names is written; the link stays a link.
    let real = dir.path().join("real.sarif");
    let link = dir.path().join("link.sarif");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = secflow(h)
        .arg("scan")
        .arg(&target)
        .args(["--plugin", "secrets-detector", "--format", "sarif", "-o"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("\"runs\""));

    // A regular file is replaced atomically and readable by others (0644).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "report mode {mode:o}");
}

#[test]
fn no_output_format_carries_a_digest_of_a_secret() {
    use sha2::Digest;
    let home = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    // A weak password in a database URL: an unkeyed hash of it is cracked by guessing.
    let password = "hunter2hunter2";
    let secret_line = format!("DATABASE_URL=postgres://admin:{password}@db.internal:5432/shop\n");
    let token = "ghp_R3alLook1ngT0kenV4lue0123456789abcd";
    std::fs::write(
        target.path().join("settings.env"),
        format!("{secret_line}GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    let digests: Vec<String> = [password, token]
        .iter()
        .map(|s| hex::encode(sha2::Sha256::digest(s.as_bytes())))
        .collect();
    for format in ["table", "json", "sarif", "html"] {
        let out = secflow(home.path())
            .arg("scan")
            .arg(target.path())
            .args(["--plugin", "secrets-detector", "--format", format])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{format}: {}", text(&out.stderr));
        let report = text(&out.stdout);
        assert!(
            report.contains("settings.env"),
            "{format}: no finding\n{report}"
        );
        assert!(
            !report.contains("secret.sha256"),
            "{format} carries secret.sha256"
        );
        for d in &digests {
            assert!(
                !report.to_lowercase().contains(d),
                "{format} carries a digest of a secret"
            );
        }
        assert!(!report.contains(password), "{format} shows the password");
        assert!(!report.contains(token), "{format} shows the token");
    }
}
