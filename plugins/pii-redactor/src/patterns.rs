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

/// What every match of a pattern contains at least: a text with less is not searched.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub digits: usize,
    pub upper: usize,
    pub at: bool,
    pub hyphen: bool,
}

const NOTHING: Needs = Needs {
    digits: 0,
    upper: 0,
    at: false,
    hyphen: false,
};

/// One pattern: its name (the files its automata are written to), its expression, how it
/// is searched, and what its matches need.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Read by `build.rs` and the tests; the plugin only loads what it compiled to.
    #[allow(dead_code)]
    pub expression: &'static str,
    pub search: Search,
    pub needs: Needs,
}

pub const PATTERNS: &[Spec] = &[
    Spec {
        name: "email",
        expression: r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
        search: Search::Unanchored,
        needs: Needs {
            at: true,
            ..NOTHING
        },
    },
    Spec {
        name: "iban",
        expression: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        search: Search::Unanchored,
        needs: Needs {
            digits: 2,
            upper: 2,
            ..NOTHING
        },
    },
    Spec {
        name: "card",
        expression: r"\b[0-9](?:[ \-]?[0-9]){12,18}\b",
        search: Search::AtDigits,
        needs: Needs {
            digits: 13,
            ..NOTHING
        },
    },
    Spec {
        name: "us-ssn",
        expression: r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        search: Search::Unanchored,
        needs: Needs {
            digits: 9,
            hyphen: true,
            ..NOTHING
        },
    },
    Spec {
        name: "uk-nino",
        expression: r"\b[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]\b",
        search: Search::Unanchored,
        needs: Needs {
            digits: 6,
            ..NOTHING
        },
    },
    Spec {
        name: "es-dni",
        expression: r"\b[0-9]{8}[A-Za-z]\b",
        search: Search::Unanchored,
        needs: Needs {
            digits: 8,
            ..NOTHING
        },
    },
    Spec {
        // International (+ and 8 to 15 digits) or North American (NNN) NNN-NNNN.
        name: "phone",
        expression: r"\+[0-9](?:[ \-.]?\(?[0-9]\)?){7,14}\b|\(?\b[2-9][0-9]{2}\)?[ \-.][0-9]{3}[ \-.][0-9]{4}\b",
        search: Search::Unanchored,
        needs: Needs {
            digits: 8,
            ..NOTHING
        },
    },
];
