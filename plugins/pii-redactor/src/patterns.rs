//! The patterns of the redactor, shared by `build.rs` (which compiles them into automata
//! ahead of time) and the plugin (which loads those automata).
//!
//! They are matched bytewise with ASCII classes and ASCII word boundaries: every pattern
//! matches ASCII only, so a match always starts and ends on a character boundary.

/// How a pattern is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// One pass over the text with a forward and a reverse DFA.
    Unanchored,
    /// An anchored forward DFA tried at each ASCII digit. For a counted repetition with
    /// optional separators the unanchored DFA tracks every overlapping candidate at once and
    /// grows to megabytes (the card pattern: 2.3 MB, minutes to build); anchored, it is a
    /// few kilobytes, and trying each start in turn gives the same leftmost-first matches.
    AtDigits,
}

/// A pattern's name (the file its automata are written to), its expression, and how it is
/// searched.
pub const PATTERNS: &[(&str, &str, Search)] = &[
    (
        "email",
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
        Search::Unanchored,
    ),
    (
        "iban",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        Search::Unanchored,
    ),
    ("card", r"\b[0-9](?:[ \-]?[0-9]){12,18}\b", Search::AtDigits),
    (
        "us-ssn",
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        Search::Unanchored,
    ),
    (
        "uk-nino",
        r"\b[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]\b",
        Search::Unanchored,
    ),
    ("es-dni", r"\b[0-9]{8}[A-Za-z]\b", Search::Unanchored),
    (
        // International (+ and 8 to 15 digits) or North American (NNN) NNN-NNNN.
        "phone",
        r"\+[0-9](?:[ \-.]?\(?[0-9]\)?){7,14}\b|\(?\b[2-9][0-9]{2}\)?[ \-.][0-9]{3}[ \-.][0-9]{4}\b",
        Search::Unanchored,
    ),
];
