//! The bundled rules on the demo target `examples/vulnerable-shop`: every planted code weakness
//! listed in its `EXPECTED.toml` (`code/` entries) is found, and nothing else is reported.
//!
//! The scan mirrors what the host does, natively: every file except the `.gitignore`d `build/`
//! directory and binary files, with `RuleSet::builtin()`, rule ids prefixed with `code/`. Inline
//! `secflow:ignore` suppression happens in the host, so the `suppressed` entries of the ground
//! truth are reported by the engine and left out of the comparison.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use secflow_patterns::RuleSet;
use serde::Deserialize;

/// (file relative to the demo, `/`-separated; 1-based line; full rule id with `code/`).
type Finding = (String, u32, String);

#[derive(Debug, Deserialize)]
struct Expected {
    clean: Vec<String>,
    ignored: Vec<String>,
    suppressed: Vec<Entry>,
    finding: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    line: u32,
    rule: String,
}

impl Entry {
    fn key(&self) -> Finding {
        (self.file.clone(), self.line, self.rule.clone())
    }
}

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vulnerable-shop")
}

/// Every file under `dir` (paths relative to `root`, `/`-separated), skipping `build/`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if path.is_dir() {
            if rel != "build" {
                walk(root, &path, out);
            }
        } else {
            out.push((rel, path));
        }
    }
}

/// A NUL byte in the first 8 KiB marks a binary file (as git and most scanners decide).
fn is_binary(content: &[u8]) -> bool {
    content[..content.len().min(8192)].contains(&0)
}

#[test]
fn demo_findings_match_the_ground_truth() {
    let root = demo_dir();
    let expected: Expected =
        toml::from_str(&fs::read_to_string(root.join("EXPECTED.toml")).expect("EXPECTED.toml"))
            .expect("EXPECTED.toml parses");
    let want: BTreeSet<Finding> = expected
        .finding
        .iter()
        .filter(|f| f.rule.starts_with("code/"))
        .map(Entry::key)
        .collect();
    let suppressed: BTreeSet<Finding> = expected.suppressed.iter().map(Entry::key).collect();
    assert!(!want.is_empty());

    let rules = RuleSet::builtin();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let mut scanned = 0;
    let mut found = BTreeSet::new();
    let mut found_suppressed = BTreeSet::new();
    for (rel, path) in &files {
        let content = fs::read(path).expect("readable");
        if is_binary(&content) {
            assert!(
                expected.ignored.contains(rel),
                "{rel} is binary but not `ignored`"
            );
            continue;
        }
        assert!(
            !expected.ignored.contains(rel),
            "{rel} is `ignored` but was scanned"
        );
        scanned += 1;
        for m in rules.scan(rel, &content) {
            let key = (rel.clone(), m.line, format!("code/{}", m.rule_id));
            if suppressed.contains(&key) {
                found_suppressed.insert(key);
            } else {
                found.insert(key);
            }
        }
    }
    assert!(scanned > 30, "only {scanned} files scanned");
    // Suppression comments are the host's business: the engine reports those lines.
    assert_eq!(found_suppressed, suppressed);
    for clean in &expected.clean {
        assert!(
            files.iter().any(|(rel, _)| rel == clean),
            "clean file {clean} does not exist"
        );
    }

    let true_positives = found.intersection(&want).count();
    let false_positives: Vec<&Finding> = found.difference(&want).collect();
    let missed: Vec<&Finding> = want.difference(&found).collect();
    let precision = true_positives as f64 / found.len().max(1) as f64;
    let recall = true_positives as f64 / want.len() as f64;
    println!(
        "vulnerable-shop: {scanned} files, {} expected code findings, {} reported, {true_positives} \
         correct: precision {:.1}%, recall {:.1}%",
        want.len(),
        found.len(),
        precision * 100.0,
        recall * 100.0
    );
    let in_clean: Vec<&Finding> = found
        .iter()
        .filter(|(file, _, _)| expected.clean.contains(file))
        .collect();
    assert!(
        in_clean.is_empty(),
        "findings in files that must be clean: {in_clean:#?}"
    );
    assert!(
        false_positives.is_empty() && missed.is_empty(),
        "false positives: {false_positives:#?}\nmissed: {missed:#?}"
    );
}
