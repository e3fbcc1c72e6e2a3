//! Finding and checking personal data in text (native, so it is tested without a sandbox).

use regex::Regex;
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

/// A kind, its pattern, and the check a match must pass.
type Rule = (Kind, Regex, fn(&str) -> bool);

/// The patterns, compiled once per instance.
#[derive(Debug)]
pub struct Redactor {
    /// In the order they are applied: the most specific first, so a card number is not
    /// taken for a phone number.
    rules: Vec<Rule>,
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
        let compile = |pattern: &str| Regex::new(pattern).map_err(|e| e.to_string());
        let mut rules: Vec<Rule> = Vec::new();
        if kinds.contains(&Kind::Email) {
            rules.push((
                Kind::Email,
                compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b")?,
                always,
            ));
        }
        if kinds.contains(&Kind::Iban) {
            rules.push((
                Kind::Iban,
                compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")?,
                iban,
            ));
        }
        if kinds.contains(&Kind::Card) {
            rules.push((
                Kind::Card,
                compile(r"\b[0-9](?:[ \-]?[0-9]){12,18}\b")?,
                luhn,
            ));
        }
        if kinds.contains(&Kind::NationalId) {
            for id in &national {
                match id.as_str() {
                    "us-ssn" => rules.push((
                        Kind::NationalId,
                        compile(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b")?,
                        ssn,
                    )),
                    "uk-nino" => rules.push((
                        Kind::NationalId,
                        compile(r"\b[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]\b")?,
                        nino,
                    )),
                    "es-dni" => {
                        rules.push((Kind::NationalId, compile(r"\b[0-9]{8}[A-Za-z]\b")?, dni))
                    }
                    other => return Err(format!("unknown national id `{other}`")),
                }
            }
        }
        if kinds.contains(&Kind::Phone) {
            rules.push((
                Kind::Phone,
                // International (+ and 8 to 15 digits) or North American (NNN) NNN-NNNN.
                compile(r"\+[0-9](?:[ \-.]?\(?[0-9]\)?){7,14}\b|\(?\b[2-9][0-9]{2}\)?[ \-.][0-9]{3}[ \-.][0-9]{4}\b")?,
                always,
            ));
        }
        Ok(Redactor { rules })
    }

    /// The text with every checked match replaced; `None` when nothing matched.
    pub fn redact(&self, text: &str) -> Option<String> {
        let mut current = std::borrow::Cow::Borrowed(text);
        let mut changed = false;
        for (kind, pattern, check) in &self.rules {
            let mut out = String::with_capacity(current.len());
            let mut last = 0;
            let mut hit = false;
            for m in pattern.find_iter(&current) {
                if !check(m.as_str()) {
                    continue;
                }
                out.push_str(&current[last..m.start()]);
                out.push_str("[redacted:");
                out.push_str(kind.label());
                out.push(']');
                last = m.end();
                hit = true;
            }
            if hit {
                out.push_str(&current[last..]);
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
