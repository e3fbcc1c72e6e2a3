//! Finding and checking personal data in text (native, so it is tested without a sandbox).

use crate::patterns::{Needs, PATTERNS, Search, Spec};
use regex_automata::dfa::{Automaton, dense::DFA, regex::Regex};
use regex_automata::{Anchored, Input};
use secflow_pdk::Value;

/// What is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Card,
    Iban,
    Phone,
    NationalId,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "email" => Kind::Email,
            "card" => Kind::Card,
            "iban" => Kind::Iban,
            "phone" => Kind::Phone,
            "national-id" => Kind::NationalId,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Phone => "phone",
            Kind::NationalId => "national-id",
        }
    }
}

/// A pattern loaded from the automata `build.rs` compiled ahead (they borrow the
/// component's data; nothing is copied or compiled).
#[derive(Debug)]
// At most seven of these per instance, each loaded once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Pattern {
    /// Searched in one pass: the forward DFA finds where a match ends, the reverse where it
    /// starts.
    Unanchored(Regex<DFA<&'static [u32]>>),
    /// An anchored DFA tried at each ASCII digit, leftmost first (see `Search::AtDigits`).
    AtDigits(DFA<&'static [u32]>),
}

impl Pattern {
    /// The byte ranges of the leftmost-first, non-overlapping matches in `text`.
    fn matches(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let hay = text.as_bytes();
        match self {
            Pattern::Unanchored(regex) => regex.find_iter(hay).map(|m| m.range()).collect(),
            Pattern::AtDigits(dfa) => {
                let mut found = Vec::new();
                let mut at = 0;
                while at < hay.len() {
                    if !hay[at].is_ascii_digit() {
                        at += 1;
                        continue;
                    }
                    // The whole text is the haystack, so the byte before `at` decides the
                    // word boundary at the start.
                    let input = Input::new(hay).range(at..).anchored(Anchored::Yes);
                    match dfa.try_search_fwd(&input) {
                        Ok(Some(end)) if end.offset() > at => {
                            found.push(at..end.offset());
                            at = end.offset();
                        }
                        // Built without quit bytes or size limits: a search cannot fail.
                        Ok(_) | Err(_) => at += 1,
                    }
                }
                found
            }
        }
    }
}

/// What a text holds, counted in one pass: enough to tell that a pattern cannot match it
/// without running the pattern.
#[derive(Debug, Clone, Copy, Default)]
struct Profile {
    digits: usize,
    upper: usize,
    at: bool,
    hyphen: bool,
}

impl Profile {
    fn of(text: &str) -> Profile {
        let mut p = Profile::default();
        for &b in text.as_bytes() {
            match b {
                b'0'..=b'9' => p.digits += 1,
                b'A'..=b'Z' => p.upper += 1,
                b'@' => p.at = true,
                b'-' => p.hyphen = true,
                _ => {}
            }
        }
        p
    }

    /// Whether a text with this profile holds what every match of a pattern needs. Most
    /// prose has few digits and no `@`, and is then never searched at all.
    fn could_match(&self, needs: &Needs) -> bool {
        self.digits >= needs.digits
            && self.upper >= needs.upper
            && (self.at || !needs.at)
            && (self.hyphen || !needs.hyphen)
    }
}

/// A kind, its pattern (loaded when a text first could match it), and the check a match
/// must pass.
#[derive(Debug)]
struct Rule {
    kind: Kind,
    spec: &'static Spec,
    pattern: std::sync::OnceLock<Pattern>,
    check: fn(&str) -> bool,
}

impl Rule {
    fn new(kind: Kind, name: &str, check: fn(&str) -> bool) -> Rule {
        Rule {
            kind,
            spec: spec(name),
            pattern: std::sync::OnceLock::new(),
            check,
        }
    }

    /// The loaded pattern. Loading validates the automata; the `every_pattern_has_automata_
    /// that_load` test guarantees that it succeeds for the automata built with this code.
    fn pattern(&self) -> &Pattern {
        self.pattern
            .get_or_init(|| load(self.spec).expect("built-in automata load"))
    }
}

/// The pattern of `patterns.rs` with this name (every name this file uses is there).
fn spec(name: &str) -> &'static Spec {
    PATTERNS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| unreachable!("no pattern `{name}` in patterns.rs"))
}

/// The rules; each pattern is loaded the first time a text could match it.
#[derive(Debug)]
pub struct Redactor {
    /// In the order they are applied: the most specific first, so a card number is not
    /// taken for a phone number.
    rules: Vec<Rule>,
}

/// Serialized DFA bytes aligned for a zero-copy load (`DFA::from_bytes` needs `u32`
/// alignment, which `include_bytes!` does not promise).
#[repr(C)]
struct Aligned<B: ?Sized> {
    _align: [u32; 0],
    bytes: B,
}

macro_rules! automaton {
    ($file:expr) => {{
        static ALIGNED: &Aligned<[u8]> = &Aligned {
            _align: [],
            bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/", $file)),
        };
        &ALIGNED.bytes
    }};
}

/// The forward and reverse automata `build.rs` wrote for a pattern.
macro_rules! both {
    ($name:literal) => {
        (
            automaton!(concat!($name, ".fwd.dfa")),
            Some(automaton!(concat!($name, ".rev.dfa"))),
        )
    };
}

/// The serialized automata of a pattern of `patterns.rs`, by name: forward and reverse,
/// or the one anchored DFA.
fn automata(name: &str) -> (&'static [u8], Option<&'static [u8]>) {
    match name {
        "email" => both!("email"),
        "iban" => both!("iban"),
        "card" => (automaton!("card.anchored.dfa"), None),
        "us-ssn" => both!("us-ssn"),
        "uk-nino" => both!("uk-nino"),
        "es-dni" => both!("es-dni"),
        "phone" => both!("phone"),
        other => unreachable!("no automata for pattern `{other}`"),
    }
}

/// Loads a pattern's automata (validated, not copied).
fn load(spec: &Spec) -> Result<Pattern, String> {
    let name = spec.name;
    let dfa = |bytes: &'static [u8]| {
        DFA::from_bytes(bytes)
            .map(|(dfa, _)| dfa)
            .map_err(|e| format!("the automaton of `{name}` is damaged: {e}"))
    };
    Ok(match (spec.search, automata(name)) {
        (Search::Unanchored, (fwd, Some(rev))) => {
            Pattern::Unanchored(Regex::builder().build_from_dfas(dfa(fwd)?, dfa(rev)?))
        }
        (Search::AtDigits, (anchored, None)) => Pattern::AtDigits(dfa(anchored)?),
        _ => return Err(format!("the automata of `{name}` do not fit its search")),
    })
}

fn always(_: &str) -> bool {
    true
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// The Luhn check of payment card numbers.
pub fn luhn(candidate: &str) -> bool {
    let d = digits(candidate);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: moved four characters to the end, letters as 10..35, the number mod 97 is 1.
pub fn iban(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => c as u64 - '0' as u64,
            'A'..='Z' => c as u64 - 'A' as u64 + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn ssn(candidate: &str) -> bool {
    let d: String = candidate.chars().filter(char::is_ascii_digit).collect();
    if d.len() != 9 {
        return false;
    }
    let (area, group, serial) = (&d[..3], &d[3..5], &d[5..]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// UK National Insurance number: prefix rules of HMRC (no D, F, I, Q, U, V; second letter
/// not O; not BG, GB, KN, NK, NT, TN, ZZ), suffix A-D.
pub fn nino(candidate: &str) -> bool {
    let c: String = candidate
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if c.len() != 9 {
        return false;
    }
    let b = c.as_bytes();
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIQUVO";
    if bad_first.contains(&b[0]) || bad_second.contains(&b[1]) {
        return false;
    }
    !["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&&c[..2]) && (b'A'..=b'D').contains(&b[8])
}

/// Spanish DNI: eight digits and the letter of their value mod 23.
pub fn dni(candidate: &str) -> bool {
    let c = candidate.to_ascii_uppercase();
    let Ok(number) = c[..8].parse::<u32>() else {
        return false;
    };
    let letters = b"TRWAGMYFPDXBNJZSQVHLCKE";
    c.as_bytes().get(8) == Some(&letters[(number % 23) as usize])
}

impl Redactor {
    /// Every kind and national id.
    pub fn all() -> Redactor {
        Redactor::new(None, None).expect("the built-in patterns compile")
    }

    /// The kinds and national ids named (all when `None`); an unknown name is an error.
    pub fn new(kinds: Option<&[String]>, national: Option<&[String]>) -> Result<Redactor, String> {
        let kinds: Vec<Kind> = match kinds {
            None => vec![
                Kind::Email,
                Kind::Card,
                Kind::Iban,
                Kind::Phone,
                Kind::NationalId,
            ],
            Some(names) => names
                .iter()
                .map(|n| Kind::parse(n).ok_or_else(|| format!("unknown kind `{n}`")))
                .collect::<Result<_, _>>()?,
        };
        let national: Vec<String> = national
            .map(<[String]>::to_vec)
            .unwrap_or_else(|| vec!["us-ssn".into(), "uk-nino".into(), "es-dni".into()]);
        let mut rules: Vec<Rule> = Vec::new();
        if kinds.contains(&Kind::Email) {
            rules.push(Rule::new(Kind::Email, "email", always));
        }
        if kinds.contains(&Kind::Iban) {
            rules.push(Rule::new(Kind::Iban, "iban", iban));
        }
        if kinds.contains(&Kind::Card) {
            rules.push(Rule::new(Kind::Card, "card", luhn));
        }
        if kinds.contains(&Kind::NationalId) {
            for id in &national {
                match id.as_str() {
                    "us-ssn" => rules.push(Rule::new(Kind::NationalId, "us-ssn", ssn)),
                    "uk-nino" => rules.push(Rule::new(Kind::NationalId, "uk-nino", nino)),
                    "es-dni" => rules.push(Rule::new(Kind::NationalId, "es-dni", dni)),
                    other => return Err(format!("unknown national id `{other}`")),
                }
            }
        }
        if kinds.contains(&Kind::Phone) {
            rules.push(Rule::new(Kind::Phone, "phone", always));
        }
        Ok(Redactor { rules })
    }

    /// The text with every checked match replaced; `None` when nothing matched.
    pub fn redact(&self, text: &str) -> Option<String> {
        let mut current = std::borrow::Cow::Borrowed(text);
        let mut profile = Profile::of(text);
        let mut changed = false;
        for rule in &self.rules {
            if !profile.could_match(&rule.spec.needs) {
                continue;
            }
            let mut out = String::new();
            let mut last = 0;
            for m in rule.pattern().matches(&current) {
                // ASCII-only patterns: a match starts and ends on character boundaries.
                if !(rule.check)(&current[m.clone()]) {
                    continue;
                }
                out.push_str(&current[last..m.start]);
                out.push_str("[redacted:");
                out.push_str(rule.kind.label());
                out.push(']');
                last = m.end;
            }
            if last > 0 {
                out.push_str(&current[last..]);
                profile = Profile::of(&out);
                current = std::borrow::Cow::Owned(out);
                changed = true;
            }
        }
        changed.then(|| current.into_owned())
    }

    /// Redacts every string value of a JSON document in place; whether anything changed.
    pub fn redact_json(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.redact(s) {
                Some(redacted) => {
                    *s = redacted;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_json(v) | changed),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |changed, v| self.redact_json(v) | changed),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_has_automata_that_load() {
        for spec in PATTERNS {
            load(spec).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
    }

    /// The automata find exactly what the `regex` crate finds with the same patterns
    /// (ASCII mode), on random text made of near-misses and hits: digit runs with and
    /// without separators, words, mail-like and IBAN-like pieces.
    #[test]
    fn automata_match_the_regex_crate() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: usize| {
            // xorshift64*: deterministic, so a failure reproduces.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % below
        };
        // `#` is a random digit: shapes of each kind, checked or not, next to anything.
        let pieces = [
            "@",
            ".",
            "+",
            "(",
            ")",
            " ",
            "-",
            "_",
            "\n",
            "a",
            "Zq",
            "GB82",
            "DE89",
            "AB",
            "example.com",
            "x.y",
            "WEST",
            "c",
            "é",
            "9",
            "07",
            "415",
            "bob",
            "@mail.io",
            ".org",
            "-x",
            "AB ## ## ## C",
            "QQ######D",
            "###-##-####",
            "GB## WEST #### #### #### ##",
            "DE######################",
            "########Z",
            "+44 ## #### ####",
            "(###) ###-####",
        ];
        for spec in PATTERNS {
            let (name, pattern) = (spec.name, spec.expression);
            let automata = load(spec).unwrap();
            let reference = regex::bytes::Regex::new(&format!("(?-u){pattern}")).unwrap();
            let mut hits = 0;
            for _ in 0..40_000 {
                let mut text = String::new();
                for _ in 0..next(12) {
                    if next(2) == 0 {
                        // Groups of digits (the shapes of cards, SSNs, phones, national
                        // ids) joined by one separator, or by none.
                        let separator = ["", " ", "-", ".", "  "][next(5)];
                        for group in 0..next(5) + 1 {
                            if group > 0 {
                                text.push_str(separator);
                            }
                            for _ in 0..[1, 2, 2, 3, 4, 4, 8, 13, 16][next(9)] {
                                text.push(char::from(b'0' + next(10) as u8));
                            }
                        }
                    } else {
                        for c in pieces[next(pieces.len())].chars() {
                            text.push(match c {
                                '#' => char::from(b'0' + next(10) as u8),
                                c => c,
                            });
                        }
                    }
                }
                let expected: Vec<_> = reference
                    .find_iter(text.as_bytes())
                    .map(|m| m.range())
                    .collect();
                hits += expected.len();
                assert_eq!(automata.matches(&text), expected, "{name} on {text:?}");
                assert!(
                    expected.is_empty() || Profile::of(&text).could_match(&spec.needs),
                    "the profile rules out a match of {name} in {text:?}"
                );
            }
            assert!(
                hits >= 25,
                "{name}: only {hits} matches; the text misses the pattern"
            );
        }
    }

    #[test]
    fn non_ascii_neighbours_do_not_hide_a_match() {
        // ASCII word boundaries: a letter outside ASCII is not a word character, so the
        // card next to it is still found (the Unicode-aware regex kept it).
        assert_eq!(r("é4111111111111111"), "é[redacted:card]");
        assert_eq!(r("naïve bob@example.com ü"), "naïve [redacted:email] ü");
    }

    fn r(text: &str) -> String {
        Redactor::all()
            .redact(text)
            .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn checked_personal_data_is_redacted_and_lookalikes_are_not() {
        assert_eq!(
            r("mail alice.smith+x@example.co.uk now"),
            "mail [redacted:email] now"
        );
        assert_eq!(r("card 4111 1111 1111 1111 ok"), "card [redacted:card] ok");
        assert_eq!(r("card 4111-1111-1111-1111"), "card [redacted:card]");
        // Fails Luhn: an order number, kept.
        assert_eq!(r("order 4111 1111 1111 1112"), "order 4111 1111 1111 1112");
        assert_eq!(
            r("IBAN GB82 WEST 1234 5698 7654 32."),
            "IBAN [redacted:iban]."
        );
        assert_eq!(r("IBAN DE89370400440532013000"), "IBAN [redacted:iban]");
        // One digit off: the mod-97 check fails.
        assert_eq!(
            r("IBAN DE89370400440532013001"),
            "IBAN DE89370400440532013001"
        );
        assert_eq!(r("ssn 123-45-6789"), "ssn [redacted:national-id]");
        assert_eq!(r("not an ssn 666-45-6789"), "not an ssn 666-45-6789");
        assert_eq!(r("nino AB 12 34 56 C"), "nino [redacted:national-id]");
        assert_eq!(r("dni 12345678Z"), "dni [redacted:national-id]");
        assert_eq!(r("not a dni 12345678A"), "not a dni 12345678A");
        assert_eq!(
            r("call +44 20 7946 0958 today"),
            "call [redacted:phone] today"
        );
        assert_eq!(r("call (415) 555-2671"), "call [redacted:phone]");
        for kept in [
            "version 1.2.3",
            "in 2026-12-05 at 10:30",
            "total 1234.56 EUR",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "port 8080",
        ] {
            assert_eq!(r(kept), kept);
        }
    }

    #[test]
    fn json_keeps_its_shape_and_only_strings_change() {
        let mut doc: Value = secflow_pdk::serde_json::from_str(
            r#"{"user":{"email":"bob@example.com","age":41,"cards":["4111111111111111","n/a"]},"count":4111111111111111}"#,
        )
        .unwrap();
        assert!(Redactor::all().redact_json(&mut doc));
        assert_eq!(doc["user"]["email"], "[redacted:email]");
        assert_eq!(doc["user"]["age"], 41);
        assert_eq!(doc["user"]["cards"][0], "[redacted:card]");
        assert_eq!(doc["user"]["cards"][1], "n/a");
        // Numbers are not strings: a JSON number stays (the schema is the caller's).
        assert_eq!(doc["count"], 4111111111111111u64);
    }

    #[test]
    fn configuration_picks_kinds_and_refuses_unknown_names() {
        let only_email = Redactor::new(Some(&["email".into()]), None).unwrap();
        assert_eq!(
            only_email.redact("a@b.io 4111111111111111").unwrap(),
            "[redacted:email] 4111111111111111"
        );
        assert!(Redactor::new(Some(&["passport".into()]), None).is_err());
        assert!(Redactor::new(None, Some(&["fr-nir".into()])).is_err());
    }
}
