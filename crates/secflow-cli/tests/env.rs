//! `SECFLOW_*` environment variables: each overrides its setting, and the README documents
//! every one the code reads.

mod common;

use common::{repo as repo_root, secflow};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != "node_modules" {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn readme_documents_every_secflow_variable() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (i, _) in text.match_indices("\"SECFLOW_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    assert!(names.contains("SECFLOW_HOME") && names.contains("SECFLOW_POLICY_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's environment table misses {missing:?}"
    );
}

#[test]
fn environment_variables_override_settings_and_flags_win() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    // A fake AWS access key id: a high-severity secret.
    std::fs::write(
        target.join("config.py"),
        "aws_access_key_id = \"AKIAQ3EGRTZD5JXKM7PW\"\n",
    )
    .unwrap();
    let scan = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = secflow(&home);
        cmd.args(["scan", "--plugin", "secrets-detector", "--format", "json"])
            .args(extra)
            .arg(&target);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let plain = scan(&[], &[]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(!report["findings"].as_array().unwrap().is_empty());
    assert_eq!(
        scan(&[("SECFLOW_FAIL_ON", "high")], &[]).status.code(),
        Some(1)
    );
    assert_eq!(
        scan(&[("SECFLOW_FAIL_ON", "high")], &["--fail-on", "critical"])
            .status
            .code(),
        Some(0),
        "the flag wins"
    );
    // A bad value is named like a bad flag.
    let bad = scan(&[("SECFLOW_JOBS", "many")], &[]);
    assert_eq!(bad.status.code(), Some(2));
    // Files above SECFLOW_MAX_FILE_SIZE are skipped: no finding.
    let small = scan(&[("SECFLOW_MAX_FILE_SIZE", "10")], &[]);
    let report: serde_json::Value = serde_json::from_slice(&small.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().is_empty());

    // SECFLOW_POLICY_DIR: policies from elsewhere.
    let policies = tmp.path().join("site-policy");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("site.cedar"),
        "@id(\"site-allow\")\npermit (principal, action, resource);\n",
    )
    .unwrap();
    let out = secflow(&home)
        .args(["policy", "check", "--json"])
        .env("SECFLOW_POLICY_DIR", &policies)
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources = check["sources"].to_string();
    assert!(sources.contains("site.cedar"), "{sources}");
}
