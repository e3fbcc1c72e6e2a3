//! Secret redaction for every output. Plugins are asked to redact their snippets, but a
//! report must not depend on every third-party plugin doing so: the host runs the bundled
//! secret rules natively over each snippet and message and masks what they find, and masks
//! quoted literals in findings about hard-coded credentials.

use crate::model::Finding;
use std::sync::OnceLock;

/// CWE ids of credential weaknesses: the quoted literal on such a line is the credential.
const CREDENTIAL_CWES: [u32; 5] = [259, 321, 522, 547, 798];

/// What a masked secret keeps: enough to recognise it, not enough to use it.
const KEEP: usize = 4;
const MASK: &str = "*****";

/// Masks secrets in text.
#[derive(Debug)]
pub struct Redactor {
    scanner: &'static secflow_secrets::Scanner,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    pub fn new() -> Redactor {
        static SCANNER: OnceLock<secflow_secrets::Scanner> = OnceLock::new();
        Redactor {
            scanner: SCANNER.get_or_init(secflow_secrets::Scanner::builtin),
        }
    }

    /// Masks what the secret rules find in `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push("\n".to_string());
            }
            out.push(self.redact_line(line));
        }
        out.concat()
    }

    fn redact_line(&self, line: &str) -> String {
        let matches = self.scanner.scan("", line.as_bytes());
        if matches.is_empty() {
            return line.to_string();
        }
        let chars: Vec<char> = line.chars().collect();
        let mut masked = vec![false; chars.len()];
        for m in matches {
            let start = (m.column as usize).saturating_sub(1);
            let mut end = (m.end_column as usize).min(chars.len());
            // A match that ends on the closing quote of the literal it sits in keeps that
            // quote: `"Summ*****"`, not `"Summ*****` (and the whole-literal mask of a
            // credential finding then finds the literal).
            if start < end && start < chars.len() {
                let last = chars[end - 1];
                let opened_here = chars[start] == last || (start > 0 && chars[start - 1] == last);
                if matches!(last, '"' | '\'' | '`') && opened_here && end - 1 > start {
                    end -= 1;
                }
            }
            if m.line == 1 && m.end_line == 1 && start < end {
                for flag in &mut masked[(start + KEEP).min(end)..end] {
                    *flag = true;
                }
            }
        }
        mask_runs(&chars, &masked)
    }

    /// Redacts everything a plugin wrote into a finding, in place: snippet, message, title,
    /// tags and property values. In a finding about a hard-coded credential every quoted
    /// literal of the snippet is masked too, whatever the plugin masked already.
    pub fn redact_finding(&self, f: &mut Finding) {
        let credential = f.cwe_ids.iter().any(|c| CREDENTIAL_CWES.contains(c));
        if let Some(snippet) = f.location.as_mut().and_then(|l| l.snippet.as_mut()) {
            let mut text = self.redact(snippet);
            if credential {
                text = mask_quoted(&text);
            }
            *snippet = text;
        }
        if let Some(context) = f.location.as_mut().and_then(|l| l.context.as_mut()) {
            for line in &mut context.lines {
                *line = mask_random_runs(&self.redact(line));
            }
        }
        f.message = self.redact(&f.message);
        f.title = self.redact(&f.title);
        for tag in &mut f.tags {
            *tag = self.redact(tag);
        }
        for value in f.properties.values_mut() {
            *value = self.redact(value);
        }
    }
}

/// Context lines are source lines, so a line some credential finding points at is masked
/// the way that finding's snippet is (every quoted literal), in the context of every
/// finding that shows it, not only its own.
pub fn mask_credential_lines_in_context(findings: &mut [Finding]) {
    use std::collections::HashSet;
    let credential_lines: HashSet<(String, u32)> = findings
        .iter()
        .filter(|f| f.cwe_ids.iter().any(|c| CREDENTIAL_CWES.contains(c)))
        .filter_map(|f| f.location.as_ref())
        .filter(|l| l.start_line > 0)
        .flat_map(|l| {
            let end = l.end_line.clamp(l.start_line, l.start_line + 20);
            (l.start_line..=end).map(|n| (l.path.clone(), n))
        })
        .collect();
    if credential_lines.is_empty() {
        return;
    }
    for f in findings {
        let Some(location) = f.location.as_mut() else {
            continue;
        };
        let Some(context) = location.context.as_mut() else {
            continue;
        };
        for (n, line) in (context.start_line..).zip(context.lines.iter_mut()) {
            if credential_lines.contains(&(location.path.clone(), n)) {
                *line = mask_quoted(line);
            }
        }
    }
}

/// Context lines were not judged by any rule: a token the rules do not know sits on the
/// line next to one they found as often as not. So every run of 20 or more token
/// characters that looks random (letters and digits mixed, high entropy) keeps its first
/// four characters and is masked. Identifiers and words do not look random; hashes in
/// code do, and lose their tail in the HTML report only.
fn mask_random_runs(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut masked = vec![false; chars.len()];
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '.');
    let mut i = 0;
    while i < chars.len() {
        if !token(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && token(chars[i]) {
            i += 1;
        }
        let run = &chars[start..i];
        if run.len() >= 20 && looks_random(run) {
            for flag in &mut masked[(start + KEEP).min(i)..i] {
                *flag = true;
            }
        }
    }
    mask_runs(&chars, &masked)
}

/// Digits and letters mixed, and at least 3.5 bits of entropy per character.
fn looks_random(run: &[char]) -> bool {
    let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = run.iter().filter(|c| c.is_ascii_alphabetic()).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for c in run {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = run.len() as f64;
    let entropy: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.5
}

/// Replaces every run of masked characters with one `*****`.
fn mask_runs(chars: &[char], masked: &[bool]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut in_mask = false;
    for (c, m) in chars.iter().zip(masked) {
        if *m {
            if !in_mask {
                out.push_str(MASK);
            }
            in_mask = true;
        } else {
            out.push(*c);
            in_mask = false;
        }
    }
    out
}

/// Masks the content of quoted string literals of 4 or more characters entirely: a short
/// password's first characters are a large part of it.
fn mask_quoted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        let q = chars[i];
        let closing = matches!(q, '"' | '\'' | '`')
            .then(|| chars[i + 1..].iter().position(|&c| c == q))
            .flatten();
        if let Some(len) = closing {
            if len >= 4 {
                for flag in &mut masked[i + 1..i + 1 + len] {
                    *flag = true;
                }
            }
            i += len + 2;
            continue;
        }
        i += 1;
    }
    mask_runs(&chars, &masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_credentials_are_masked_whole() {
        assert_eq!(
            mask_quoted(r#"conn("admin", "hunter22") + ''"#),
            r#"conn("*****", "*****") + ''"#
        );
        assert_eq!(mask_quoted("x = 'ab'"), "x = 'ab'");
    }

    #[test]
    fn a_mask_keeps_the_closing_quote_and_one_line_shows_one_mask() {
        use crate::model::{Finding, Location, Severity};
        let line = r#"ADMIN_PASSWORD = "Summer2019!shop""#;
        let r = Redactor::new();
        let out = r.redact(line);
        assert!(out.ends_with('"'), "{out}");
        assert!(!out.contains("Summer2019"), "{out}");
        // Two plugins report the line: one as it is, one already masked its own way. The
        // report shows one mask for both.
        let finding = |snippet: &str| Finding {
            rule_id: "r".into(),
            title: "t".into(),
            message: String::new(),
            severity: Severity::High,
            cwe_ids: vec![798],
            location: Some(Location {
                path: "auth.py".into(),
                start_line: 16,
                start_column: 1,
                end_line: 16,
                end_column: 1,
                snippet: Some(snippet.to_string()),
                context: None,
            }),
            confidence: crate::Confidence::High,
            cve_ids: Vec::new(),
            cvss_vector: None,
            fingerprint: String::new(),
            plugin: "p".into(),
            tags: Vec::new(),
            properties: Default::default(),
        };
        let mut raw = finding(line);
        let mut premasked = finding(r#"ADMIN_PASSWORD = "Summ*****""#);
        r.redact_finding(&mut raw);
        r.redact_finding(&mut premasked);
        let shown = |f: &Finding| f.location.as_ref().unwrap().snippet.clone().unwrap();
        assert_eq!(shown(&raw), r#"ADMIN_PASSWORD = "*****""#);
        assert_eq!(shown(&raw), shown(&premasked));
    }

    #[test]
    fn random_looking_runs_are_masked_in_context() {
        let line = "GITHUB_TOKEN=ghp_R3alLook1ngT0kenV4lue0123456789abcd";
        let out = mask_random_runs(line);
        assert!(!out.contains("R3alLook"), "{out}");
        assert!(out.starts_with("GITHUB_TOKEN=ghp_"), "{out}");
        for kept in [
            "let configuration_manager_instance = build_configuration();",
            "https://example.com/some/long/path/to/a/page.html",
            "version = 2024-01-01",
        ] {
            assert_eq!(mask_random_runs(kept), kept);
        }
    }

    #[test]
    fn provider_tokens_are_masked() {
        let token = format!("ghp_{}", "Zx7Qk2Lm9Np4Rt6Vw8Yb1Cd3Fg5Hj0Ks2Mn4P");
        let line = format!("token = \"{token}\"");
        let out = Redactor::new().redact(&line);
        assert!(!out.contains(&token), "{out}");
        assert!(out.contains("ghp_"), "{out}");
    }
}
