//! Stable finding identities, so a baseline and GitHub's alert tracking survive unrelated
//! edits: a finding keeps its fingerprint when lines are inserted above it, and two identical
//! findings in one file stay distinct through their occurrence index.
//!
//! The host computes every fingerprint, and each one covers the id of the plugin that
//! reported the finding. A plugin's own `fingerprint` value is only an input, namespaced by
//! its id: no plugin can produce another plugin's fingerprint, so deduplication (which never
//! compares findings of two plugins) cannot be used to erase another plugin's finding.

use crate::model::Finding;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Collapses whitespace runs so re-indenting or re-wrapping does not change identity.
pub fn normalize_snippet(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `\`-separated or `./`-prefixed paths name the same file as their clean form.
pub fn normalize_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Hex SHA-256 (first 128 bits) of length-prefixed parts, so no two different tuples hash
/// the same input.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The fingerprint the host gives a finding: the reporting plugin, the rule, the
/// normalized path and snippet, and the occurrence index among identical findings.
pub fn fingerprint(
    plugin: &str,
    rule_id: &str,
    path: &str,
    snippet: &str,
    occurrence: u32,
) -> String {
    digest(&[
        b"secflow.finding.v2",
        plugin.as_bytes(),
        rule_id.as_bytes(),
        path.as_bytes(),
        snippet.as_bytes(),
        &occurrence.to_le_bytes(),
    ])
}

/// The fingerprint of a finding whose plugin supplied an identity of its own: that value,
/// namespaced by the plugin's id.
pub fn namespaced(plugin: &str, supplied: &str) -> String {
    digest(&[
        b"secflow.finding.plugin-supplied.v2",
        plugin.as_bytes(),
        supplied.as_bytes(),
    ])
}

/// Gives every finding its host-computed fingerprint (a plugin-supplied value only through
/// [`namespaced`]), and removes exact duplicates *of one plugin*: the same rule at the same
/// place with the same message, or the same fingerprint twice. Findings of two plugins are
/// never compared.
///
/// `snippet_of` returns the normalized source text of a finding (the plugin's snippet or the
/// source line); it must be computed before secrets are redacted from outputs, and be the
/// same from run to run.
pub fn assign_and_dedup(findings: Vec<(Finding, String)>) -> Vec<Finding> {
    let mut seen_places = std::collections::HashSet::new();
    let mut occurrences: HashMap<(String, String, String, String), u32> = HashMap::new();
    let mut seen_fingerprints = std::collections::HashSet::new();
    let mut sorted = findings;
    // Occurrence indexes count in source order.
    sorted.sort_by(|(a, _), (b, _)| {
        (
            a.path(),
            a.line(),
            a.location.as_ref().map(|l| l.start_column),
        )
            .cmp(&(
                b.path(),
                b.line(),
                b.location.as_ref().map(|l| l.start_column),
            ))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    let mut out = Vec::with_capacity(sorted.len());
    for (mut finding, snippet) in sorted {
        let place = (
            finding.plugin.clone(),
            finding.rule_id.clone(),
            finding
                .location
                .clone()
                .map(|l| (l.path, l.start_line, l.start_column)),
            finding.message.clone(),
        );
        if !seen_places.insert(place) {
            continue;
        }
        if finding.fingerprint.is_empty() {
            let path = normalize_path(finding.path());
            let key = (
                finding.plugin.clone(),
                finding.rule_id.clone(),
                path.clone(),
                snippet.clone(),
            );
            let n = occurrences.entry(key).or_insert(0);
            finding.fingerprint =
                fingerprint(&finding.plugin, &finding.rule_id, &path, &snippet, *n);
            *n += 1;
        } else {
            finding.fingerprint = namespaced(&finding.plugin, &finding.fingerprint);
        }
        if seen_fingerprints.insert(finding.fingerprint.clone()) {
            out.push(finding);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_path_forms_do_not_change_identity() {
        assert_eq!(normalize_snippet("  a =\t b  + c "), "a = b + c");
        assert_eq!(normalize_path("./src//x\\y.py"), "src/x/y.py");
        let a = fingerprint("p", "r", "src/x.py", "a = b", 0);
        assert_eq!(a, fingerprint("p", "r", "src/x.py", "a = b", 0));
        assert_ne!(a, fingerprint("p", "r", "src/x.py", "a = b", 1));
        assert_ne!(a, fingerprint("p", "r2", "src/x.py", "a = b", 0));
        assert_ne!(
            a,
            fingerprint("q", "r", "src/x.py", "a = b", 0),
            "plugin is part of it"
        );
        // Length prefixes: moving a boundary changes the hash.
        assert_ne!(
            fingerprint("p", "ab", "c", "", 0),
            fingerprint("p", "a", "bc", "", 0)
        );
        assert_eq!(a.len(), 32);
    }

    fn finding(plugin: &str, line: u32, supplied: &str) -> (Finding, String) {
        let f = Finding {
            rule_id: "r".into(),
            title: "t".into(),
            message: "m".into(),
            severity: crate::model::Severity::High,
            confidence: crate::model::Confidence::High,
            cwe_ids: vec![],
            cve_ids: vec![],
            cvss_vector: None,
            location: Some(crate::model::Location {
                path: "a.py".into(),
                start_line: line,
                ..Default::default()
            }),
            fingerprint: supplied.into(),
            plugin: plugin.into(),
            tags: vec![],
            properties: Default::default(),
        };
        (f, "x = 1".into())
    }

    #[test]
    fn a_plugin_cannot_collide_with_another_plugins_fingerprint() {
        let victim = assign_and_dedup(vec![finding("victim", 3, "")]);
        let stolen = victim[0].fingerprint.clone();
        // The attacker supplies the victim's fingerprint, and even reports the same rule at
        // the same place: both findings stay.
        let both = assign_and_dedup(vec![
            finding("attacker", 1, &stolen),
            finding("attacker", 3, ""),
            finding("victim", 3, ""),
        ]);
        assert_eq!(both.len(), 3);
        assert!(
            both.iter()
                .any(|f| f.plugin == "victim" && f.fingerprint == stolen)
        );
        assert!(both.iter().filter(|f| f.fingerprint == stolen).count() == 1);
        // One plugin's own duplicates are still removed.
        let dup = assign_and_dedup(vec![finding("p", 3, ""), finding("p", 3, "")]);
        assert_eq!(dup.len(), 1);
    }
}
