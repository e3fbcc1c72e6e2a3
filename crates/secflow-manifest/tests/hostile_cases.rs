//! Hostile manifests as data: each folder under `tests/cases/` holds a `plugin.toml` and the
//! text its error must contain (`expected-error.txt`). Adding a case is adding a folder.

use secflow_manifest::{Format, Manifest};
use std::path::Path;

#[test]
fn every_hostile_case_is_refused_with_the_expected_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for case in entries {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read(case.join("plugin.toml")).unwrap();
        let expected = std::fs::read_to_string(case.join("expected-error.txt")).unwrap();
        let err = Manifest::parse(&input, Format::Toml, "plugin.toml")
            .expect_err(&format!("case {name} must be refused"))
            .to_string();
        assert!(
            err.contains(expected.trim()),
            "case {name}: expected `{}` in:\n{err}",
            expected.trim()
        );
        assert!(
            err.contains("fix"),
            "case {name}: the error must say what to do:\n{err}"
        );
        count += 1;
    }
    assert!(count >= 20, "found only {count} cases");
}

#[test]
fn the_manifest_in_the_docs_is_valid() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/writing-plugins.md"),
    )
    .unwrap();
    let start = doc.find("```toml\n").expect("a toml block in the docs") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let m = Manifest::parse(&doc.as_bytes()[start..end], Format::Toml, "docs").unwrap();
    assert_eq!(m.capabilities.network[0].port(), 443);
    assert_eq!(m.limits.resolve().fuel, Some(100_000_000));
}
