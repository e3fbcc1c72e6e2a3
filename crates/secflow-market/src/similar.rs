//! Typosquatting: is a new plugin id a look-alike of another publisher's id?
//!
//! Two checks, as package registries learned them the hard way: one edit apart
//! (Damerau-Levenshtein, so a swap of two letters counts as one) for ids long enough that one
//! edit is not a different word, and the same "skeleton" once look-alike characters are
//! folded (`0`/`o`, `1`/`l`/`i`, `rn`/`m`, `vv`/`w`) and separators dropped (`secrets-scan`
//! and `secretsscan`).

/// Ids shorter than this are not compared by edit distance (`ab` and `ac` are different
/// names, not typos); the skeleton still applies.
const MIN_EDIT_LEN: usize = 5;

/// The look-alike skeleton of an id.
pub fn skeleton(id: &str) -> String {
    let folded: String = id
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| match c {
            '0' => 'o',
            '1' | 'i' => 'l',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            c => c,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

/// The ids in `others` that `id` looks like (itself excluded).
pub fn look_alikes<'a>(id: &str, others: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let own = skeleton(id);
    let mut out: Vec<String> = others
        .into_iter()
        .filter(|other| *other != id)
        .filter(|other| {
            skeleton(other) == own
                || (id.len().min(other.len()) >= MIN_EDIT_LEN
                    && strsim::damerau_levenshtein(id, other) <= 1)
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_are_found_and_different_names_are_not() {
        let existing = ["secrets-detector", "cwe-enricher", "data-processor", "ab"];
        for squat in [
            "secrets-detectr",
            "secrest-detector",
            "secrets-detect0r",
            "secretsdetector",
            "secrets-detecter",
            "cwe-enrlcher",
            "data-pr0cess0r",
            "data-procesor",
        ] {
            assert!(
                !look_alikes(squat, existing).is_empty(),
                "{squat} should look like an existing id"
            );
        }
        for fine in [
            "secrets-scanner",
            "cve-enricher-x",
            "ac",
            "data",
            "log-processor",
        ] {
            assert!(
                look_alikes(fine, existing).is_empty(),
                "{fine}: {:?}",
                look_alikes(fine, existing)
            );
        }
        // An id is not its own look-alike.
        assert!(look_alikes("cwe-enricher", existing).is_empty());
    }
}
