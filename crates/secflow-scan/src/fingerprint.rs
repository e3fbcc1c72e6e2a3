//! Stable finding identities, so a baseline and GitHub's alert tracking survive unrelated
//! edits: a finding keeps its fingerprint when lines are inserted above it, and two identical
//! findings in one file stay distinct through their occurrence index.

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

/// Hex SHA-256 (first 128 bits) of the identity parts, each length-prefixed so no two
/// different tuples hash the same input.
pub fn fingerprint(rule_id: &str, path: &str, snippet: &str, occurrence: u32) -> String {
    let mut hasher = Sha256::new();
    for part in [rule_id.as_bytes(), path.as_bytes(), snippet.as_bytes()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(occurrence.to_le_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Gives every finding without a plugin-supplied fingerprint its stable one, and removes
/// exact duplicates (same rule at the same place, or the same fingerprint twice).
///
/// `snippet_of` returns the normalized source text of a finding (the plugin's snippet or the
/// source line); it must be computed before secrets are redacted from outputs, and be the
/// same from run to run.
pub fn assign_and_dedup(findings: Vec<(Finding, String)>) -> Vec<Finding> {
    let mut seen_places = std::collections::HashSet::new();
    let mut occurrences: HashMap<(String, String, String), u32> = HashMap::new();
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
            let key = (finding.rule_id.clone(), path.clone(), snippet.clone());
            let n = occurrences.entry(key).or_insert(0);
            finding.fingerprint = fingerprint(&finding.rule_id, &path, &snippet, *n);
            *n += 1;
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
        let a = fingerprint("r", "src/x.py", "a = b", 0);
        assert_eq!(a, fingerprint("r", "src/x.py", "a = b", 0));
        assert_ne!(a, fingerprint("r", "src/x.py", "a = b", 1));
        assert_ne!(a, fingerprint("r2", "src/x.py", "a = b", 0));
        // Length prefixes: moving a boundary changes the hash.
        assert_ne!(fingerprint("ab", "c", "", 0), fingerprint("a", "bc", "", 0));
        assert_eq!(a.len(), 32);
    }
}
