//! The files other tools read from this repository: the pre-commit hooks and the GitHub
//! Action. Every flag they pass to `secflow` must exist, so a renamed flag cannot silently
//! break a user's CI.

mod common;

use common::{code, repo, secflow, text};

/// The long flags `secflow ARGS --help` documents.
fn flags_of(args: &[&str]) -> Vec<String> {
    let out = secflow(&std::env::temp_dir())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| {
            w.trim_end_matches(',')
                .split(['=', '['])
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn assert_known(command_line: &str, known: &[String], file: &str) {
    for word in command_line.split_whitespace() {
        if word.starts_with("--") {
            assert!(
                known.iter().any(|k| k == word),
                "{file}: `{word}` is not a flag of `secflow scan`"
            );
        }
    }
}

#[test]
fn pre_commit_hooks_and_the_action_pass_only_real_flags() {
    let scan_flags = flags_of(&["scan"]);
    assert!(scan_flags.iter().any(|f| f == "--fail-on"));

    let hooks: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join(".pre-commit-hooks.yaml")).unwrap(),
    )
    .unwrap();
    assert!(!hooks.is_empty());
    for hook in &hooks {
        let entry = hook["entry"].as_str().unwrap();
        assert!(entry.starts_with("secflow scan"), "{entry}");
        assert_known(entry, &scan_flags, ".pre-commit-hooks.yaml");
        assert_eq!(hook["language"].as_str(), Some("system"));
    }

    let action: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("action.yml")).unwrap())
            .unwrap();
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let scan_lines: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(str::lines)
        .filter(|l| l.trim_start().starts_with("secflow scan"))
        .collect();
    assert_eq!(scan_lines.len(), 1, "{scan_lines:?}");
    assert_known(scan_lines[0], &scan_flags, "action.yml");
    assert!(scan_lines[0].contains("--format sarif"));
    assert!(
        steps.iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif"))),
        "the action uploads the SARIF"
    );
}
