//! Tests. Positive examples are never committed as real-looking secrets: rule files hold
//! templates (`{{random:N:CHARSET}}`) that [`expand`] fills from a deterministic
//! generator seeded by rule id, example index and round, so each example is checked with
//! many different random secrets.

use crate::checks::{base64url_decode, check_jwt, is_placeholder_shape, shannon_entropy};
use crate::rules::{BUILTIN_RULES, parse_file};
use crate::text::lossy_char_count;
use crate::{Confidence, Options, RuleError, Scanner, SecretMatch, Severity};
use std::collections::HashSet;
use std::sync::OnceLock;

// ----------------------------------------------------------------------------------------
// Deterministic secrets

/// SplitMix64: tiny, deterministic, good enough to draw characters.
struct Rng(u64);

impl Rng {
    fn seeded(parts: &[&[u8]]) -> Rng {
        // FNV-1a over the parts, then SplitMix64 steps.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in parts {
            for &b in *p {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self, n: usize, charset: &[u8]) -> String {
        (0..n)
            .map(|_| charset[self.below(charset.len())] as char)
            .collect()
    }
}

fn charset(name: &str) -> &'static [u8] {
    match name {
        "alnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "alpha" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "lower" => b"abcdefghijklmnopqrstuvwxyz",
        "digit" => b"0123456789",
        "hex" => b"0123456789abcdef",
        "HEX" => b"0123456789ABCDEF",
        "upperalnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "base32" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "base64" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "base64url" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        "bech32" => b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
        other => panic!("unknown charset `{other}` in an example template"),
    }
}

/// Replaces every `{{random:N:CHARSET}}`; other `{{...}}` text is kept as written.
fn expand(template: &str, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(i) = rest.find("{{random:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "{{random:".len()..];
        let end = after.find("}}").expect("unterminated {{random:...}}");
        let (n, cs) = after[..end].split_once(':').expect("{{random:N:CHARSET}}");
        let n: usize = n.parse().expect("N in {{random:N:CHARSET}}");
        out.push_str(&rng.string(n, charset(cs)));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn example(rule: &str, kind: &str, index: usize, round: u32, template: &str) -> String {
    let mut rng = Rng::seeded(&[
        rule.as_bytes(),
        kind.as_bytes(),
        &index.to_le_bytes(),
        &round.to_le_bytes(),
    ]);
    expand(template, &mut rng)
}

/// A random secret of `n` characters from `cs`, for tests that need one inline.
fn fake(seed: &str, n: usize, cs: &str) -> String {
    Rng::seeded(&[seed.as_bytes()]).string(n, charset(cs))
}

fn builtin() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(Scanner::builtin)
}

fn ids(found: &[SecretMatch]) -> Vec<&str> {
    found.iter().map(|m| m.rule_id.as_str()).collect()
}

/// Scans and checks the invariants every result must hold: the snippet hides the secret,
/// the hash is of the secret, positions are consistent.
fn scan_checked(scanner: &Scanner, path: &str, content: &[u8]) -> Vec<SecretMatch> {
    let found = scanner.scan_spans(path, content);
    for (m, span) in &found {
        let secret = String::from_utf8_lossy(&content[span.clone()]);
        assert!(
            !m.snippet.contains(secret.as_ref()),
            "snippet leaks the secret of {}: {:?}",
            m.rule_id,
            m.snippet
        );
        assert!(
            m.snippet.contains("*****"),
            "snippet not redacted: {:?}",
            m.snippet
        );
        assert!(
            m.snippet.chars().count() <= 215,
            "snippet too long: {}",
            m.snippet.chars().count()
        );
        assert!((m.line, m.column) < (m.end_line, m.end_column));
    }
    found.into_iter().map(|(m, _)| m).collect()
}

// ----------------------------------------------------------------------------------------
// The rule file

#[test]
fn embedded_rules_parse_and_are_complete() {
    let file = parse_file(BUILTIN_RULES).expect("rules/secrets.toml parses");
    assert!(file.rules.len() >= 45, "only {} rules", file.rules.len());
    let global = file.global.expect("global allowlist");
    assert!(!global.regexes.is_empty() && !global.stopwords.is_empty() && !global.paths.is_empty());
    let mut seen = HashSet::new();
    for r in &file.rules {
        assert!(seen.insert(r.id.clone()), "duplicate id {}", r.id);
        assert!(
            !r.keywords.is_empty(),
            "{}: built-in rules must have keywords",
            r.id
        );
        assert!(!r.examples.is_empty(), "{}: needs examples", r.id);
        assert!(
            !r.counter_examples.is_empty(),
            "{}: needs counter-examples",
            r.id
        );
        assert!(r.description.len() > 60, "{}: description too short", r.id);
        assert!(r.help.len() > 40, "{}: help too short", r.id);
        assert!([798, 321, 522].contains(&r.cwe), "{}: cwe {}", r.id, r.cwe);
        // No committed example may be a complete literal secret: every positive example is
        // a template with random parts.
        for e in &r.examples {
            assert!(
                e.contains("{{random:"),
                "{}: example without a random part: {e}",
                r.id
            );
        }
    }
    // `builtin()` compiles regexes lazily; compiling the same file eagerly proves every
    // regex and allowlist of it compiles and passes validation.
    let eager = Scanner::from_toml(BUILTIN_RULES, &Options::default()).expect("eager compile");
    assert_eq!(eager.rules().len(), file.rules.len());
    let scanner = Scanner::builtin();
    assert_eq!(scanner.rules().len(), file.rules.len());
    let generic = scanner
        .rules()
        .iter()
        .find(|r| r.id == "generic-high-entropy-secret")
        .unwrap();
    assert_eq!(generic.confidence, Confidence::Low);
    assert!(
        scanner
            .rules()
            .iter()
            .filter(|r| r.id != generic.id)
            .all(|r| r.confidence > Confidence::Low)
    );
}

/// Every positive example is found by its rule, with 40 different random secrets each.
#[test]
fn every_rule_finds_its_examples() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    let scanner = builtin();
    for r in &file.rules {
        for (i, t) in r.examples.iter().enumerate() {
            for round in 0..40 {
                let text = example(&r.id, "example", i, round, t);
                let found = scan_checked(scanner, "src/app/config.txt", text.as_bytes());
                assert!(
                    found.iter().any(|m| m.rule_id == r.id),
                    "{} missed its example #{i} round {round}: {text:?}\nfound: {:?}",
                    r.id,
                    ids(&found)
                );
                // Nothing else may claim the same secret.
                let ours: Vec<_> = found.iter().filter(|m| m.rule_id == r.id).collect();
                assert_eq!(ours.len(), 1, "{}: {text:?}", r.id);
                if r.entropy.is_some() {
                    assert!(ours[0].entropy.is_some());
                }
            }
        }
    }
}

/// No counter-example is reported by its rule.
#[test]
fn no_rule_reports_its_counter_examples() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    let scanner = builtin();
    for r in &file.rules {
        for (i, t) in r.counter_examples.iter().enumerate() {
            for round in 0..20 {
                let text = example(&r.id, "counter", i, round, t);
                let found = scan_checked(scanner, "src/app/config.txt", text.as_bytes());
                assert!(
                    !found.iter().any(|m| m.rule_id == r.id),
                    "{} reported counter-example #{i}: {text:?}",
                    r.id
                );
            }
        }
    }
}

/// Rules with keywords must actually contain a keyword in every example (otherwise the
/// prefilter would hide the match), checked without the prefilter's help.
#[test]
fn examples_contain_a_keyword() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    for r in &file.rules {
        for (i, t) in r.examples.iter().enumerate() {
            let text = example(&r.id, "example", i, 0, t).to_ascii_lowercase();
            assert!(
                r.keywords.iter().any(|k| text.contains(k.as_str())),
                "{}: example #{i} has no keyword",
                r.id
            );
        }
    }
}

// ----------------------------------------------------------------------------------------
// Placeholders and allowlists

#[test]
fn placeholders_are_ignored() {
    let scanner = builtin();
    let cases = [
        "aws_access_key_id = AKIAXXXXXXXXXXXXXXXX\n",
        "password = \"changeme\"\n",
        "password = \"${DB_PASSWORD}\"\n",
        "DB_PASSWORD=${DB_PASSWORD}\n",
        "api_key: \"your-api-key-goes-here\"\n",
        "token = \"<YOUR_TOKEN_HERE>\"\n",
        "secret: \"{{ .Values.secret }}\"\n",
        "secret = \"dummy-secret-value-123\"\n",
        "api_key = \"1234567890abcdef1234\"\n",
        "token = \"****************\"\n",
        "GITHUB_TOKEN=ghp_000000000000000000000000000000000000\n",
        "password: \"test-password-12345\"\n",
        "password = \"abcdefghijklmnopqrstuvwxyz\"\n",
        "secret_key = \"example-secret-key-1234\"\n",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\n",
        "token = \"sk_live_...\"\n",
    ];
    for c in cases {
        let found = scan_checked(scanner, "src/settings.py", c.as_bytes());
        assert!(found.is_empty(), "{c:?} reported: {:?}", ids(&found));
    }
}

#[test]
fn default_path_allowlist_and_override() {
    let secret = format!("GITHUB_TOKEN=ghp_{}\n", fake("path", 36, "alnum"));
    let scanner = builtin();
    for p in [
        "testdata/env",
        "pkg/x/testdata/a.txt",
        "web/__fixtures__/a.json",
        "spec/fixtures/a.yml",
        "package-lock.json",
        "sub/Cargo.lock",
        "go.sum",
    ] {
        assert!(
            scanner.scan(p, secret.as_bytes()).is_empty(),
            "{p} should be skipped"
        );
    }
    for p in [
        "src/main.rs",
        "demo/app/.env",
        "tests/test_api.py",
        "pkg/api_test.go",
        "C:\\repo\\src\\env",
    ] {
        assert_eq!(
            scanner.scan(p, secret.as_bytes()).len(),
            1,
            "{p} should be scanned"
        );
    }
    assert_eq!(
        scanner.scan("a\\testdata\\x", secret.as_bytes()).len(),
        0,
        "backslashes normalised"
    );

    let everything = Scanner::with_options(&Options {
        allow_paths: Some(vec![]),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(everything.scan("testdata/env", secret.as_bytes()).len(), 1);
    let custom = Scanner::with_options(&Options {
        allow_paths: Some(vec!["^vendor/".into()]),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(custom.scan("testdata/env", secret.as_bytes()).len(), 1);
    assert!(custom.scan("vendor/env", secret.as_bytes()).is_empty());
}

#[test]
fn options_disable_allowlist_and_entropy() {
    let token = format!("ghp_{}", fake("opts", 36, "alnum"));
    let text = format!("GITHUB_TOKEN={token}\n");

    let off = Scanner::with_options(&Options {
        disabled_rules: vec!["github-pat".into()],
        ..Options::default()
    })
    .unwrap();
    assert!(off.rules().iter().all(|r| r.id != "github-pat"));
    // The generic rule still sees the assignment once the provider rule is gone.
    assert_eq!(
        ids(&off.scan("a.env", text.as_bytes())),
        ["generic-high-entropy-secret"]
    );

    let allow = Scanner::with_options(&Options {
        extra_allowlist: vec![format!("^{token}$")],
        ..Options::default()
    })
    .unwrap();
    assert!(allow.scan("a.env", text.as_bytes()).is_empty());

    let strict = Scanner::with_options(&Options {
        min_entropy_delta: 3.0,
        ..Options::default()
    })
    .unwrap();
    assert!(strict.scan("a.env", text.as_bytes()).is_empty());

    let err = Scanner::with_options(&Options {
        disabled_rules: vec!["no-such-rule".into()],
        ..Options::default()
    })
    .unwrap_err();
    assert_eq!(
        (err.rule_id.as_deref(), err.field.as_str()),
        (Some("no-such-rule"), "disabled_rules")
    );
    let err = Scanner::with_options(&Options {
        extra_allowlist: vec!["(".into()],
        ..Options::default()
    })
    .unwrap_err();
    assert_eq!(err.field, "extra_allowlist[0]");
}

// ----------------------------------------------------------------------------------------
// Overlaps

#[test]
fn generic_rule_loses_to_provider_rule() {
    let token = format!("ghp_{}", fake("overlap", 36, "alnum"));
    let text = format!("github_token = \"{token}\"\n");
    let found = scan_checked(builtin(), "x.py", text.as_bytes());
    assert_eq!(ids(&found), ["github-pat"]);
    // The generic rule alone would have reported it.
    let generic_only = Scanner::with_options(&Options {
        disabled_rules: builtin()
            .rules()
            .iter()
            .map(|r| r.id.clone())
            .filter(|id| id != "generic-high-entropy-secret")
            .collect(),
        ..Options::default()
    })
    .unwrap();
    assert_eq!(
        ids(&generic_only.scan("x.py", text.as_bytes())),
        ["generic-high-entropy-secret"]
    );

    // A token used as a URL password: url-basic-auth (medium) loses to github-pat (high).
    let url = format!("git clone https://x-access-token:{token}@github.com/o/r.git\n");
    assert_eq!(
        ids(&builtin().scan("ci.sh", url.as_bytes())),
        ["github-pat"]
    );
    // A database URL: database-url-password (high) beats url-basic-auth; same span.
    let db = format!(
        "DATABASE_URL=postgres://app:{}@db.acme-corp.net/app\n",
        fake("db", 16, "alnum")
    );
    assert_eq!(
        ids(&builtin().scan(".env", db.as_bytes())),
        ["database-url-password"]
    );
}

#[test]
fn gcp_service_account_beats_private_key() {
    let body: Vec<String> = (0..4)
        .map(|i| fake(&format!("gcp{i}"), 64, "base64"))
        .collect();
    let json = format!(
        "{{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE{}\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"a@b.iam.gserviceaccount.com\"\n}}\n",
        body.join("\\n")
    );
    let found = scan_checked(builtin(), "key.json", json.as_bytes());
    assert_eq!(ids(&found), ["gcp-service-account-key"]);
    assert_eq!(found[0].line, 3);
    // Without the service-account marker it is still a private key.
    let plain = json.replace("service_account", "other");
    assert_eq!(
        ids(&builtin().scan("key.json", plain.as_bytes())),
        ["private-key"]
    );
}

// ----------------------------------------------------------------------------------------
// Positions, snippets, odd input

#[test]
fn line_and_column_with_crlf_and_multibyte() {
    let token = format!("ghp_{}", fake("pos", 36, "alnum"));
    // Line 3; before the token: "  é€😀 = \"" is 2 + 3 chars + 4 = 9 chars (16 bytes).
    let text = format!("first line\r\nsecond line ünïcödé\r\n  é€😀 = \"{token}\"\r\nlast\r\n");
    let found = scan_checked(builtin(), "a.txt", text.as_bytes());
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!((m.line, m.column), (3, 10));
    assert_eq!((m.end_line, m.end_column), (3, 10 + 40));
    assert_eq!(m.snippet, "é€😀 = \"ghp_*****\"");
}

#[test]
fn multi_line_secret_positions_and_snippet() {
    let lines: Vec<String> = (0..3)
        .map(|i| fake(&format!("pem{i}"), 64, "base64"))
        .collect();
    let text = format!(
        "# key\n-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let found = scan_checked(builtin(), "id_rsa", text.as_bytes());
    assert_eq!(ids(&found), ["private-key"]);
    let m = &found[0];
    // The secret is the body: from line 3 column 1 to the start of the END line.
    assert_eq!((m.line, m.column, m.end_line, m.end_column), (3, 1, 6, 1));
    assert_eq!(m.snippet, format!("{}*****…", &lines[0][..4]));
}

#[test]
fn non_utf8_and_binary_input() {
    let token = format!("ghp_{}", fake("bin", 36, "alnum"));
    let mut content = vec![0xff, 0xfe, b'x', 0x80, b'\n', 0xc3];
    content.extend_from_slice(b"\x00\x01 token = \"");
    content.extend_from_slice(token.as_bytes());
    content.extend_from_slice(b"\"\xff\n");
    let found = scan_checked(builtin(), "blob.bin", &content);
    assert_eq!(ids(&found), ["github-pat"]);
    // Line 2 starts with an invalid byte (1 char), NUL, SOH, " token = \"" (10 chars).
    assert_eq!((found[0].line, found[0].column), (2, 14));
    assert!(found[0].snippet.contains("ghp_*****"));
    assert_eq!(lossy_char_count(&[0xff, 0xfe, b'a', 0xe2, 0x82]), 4);
}

#[test]
fn empty_and_tiny_input() {
    assert!(builtin().scan("a", b"").is_empty());
    assert!(builtin().scan("a", b"\n").is_empty());
    assert!(builtin().scan("a", b"token").is_empty());
    assert!(
        builtin()
            .scan("a", b"-----BEGIN RSA PRIVATE KEY-----")
            .is_empty()
    );
}

#[test]
fn huge_single_line() {
    // 8 MB on one line with secrets far apart: positions, snippets and speed must not
    // depend on the line's length (no quadratic work per match).
    let mut line = String::with_capacity(8 << 20);
    let mut expected = Vec::new();
    let mut rng = Rng::seeded(&[b"huge"]);
    for i in 0..40 {
        while line.len() < (i + 1) * 200_000 {
            line.push_str("var a=b+c;function f(x){return x*2};");
        }
        let token = format!("ghp_{}", rng.string(36, charset("alnum")));
        line.push_str(&format!("t=\"{token}\";"));
        expected.push(line.len() - token.len() - 2);
    }
    let found = scan_checked(builtin(), "bundle.min.js", line.as_bytes());
    assert_eq!(found.len(), expected.len());
    for (m, start) in found.iter().zip(&expected) {
        assert_eq!((m.line, m.column as usize), (1, start + 1));
        assert!(m.snippet.starts_with('…'), "{}", m.snippet);
        assert!(m.snippet.contains("t=\"ghp_*****\";"), "{}", m.snippet);
        assert!(m.snippet.chars().count() <= 202);
    }
}

#[test]
fn redaction_keeps_at_most_four_chars() {
    use crate::text::redact;
    assert_eq!(redact("ghp_abcdefghijklmnop"), "ghp_*****");
    assert_eq!(redact("abcdefgh"), "ab*****");
    assert_eq!(redact("abc"), "*****");
    // The secret twice on one line: both copies are hidden.
    let pw = fake("twice", 20, "alnum");
    let text = format!("password = \"{pw}\" # was {pw}\n");
    let found = scan_checked(builtin(), "a.py", text.as_bytes());
    assert_eq!(found.len(), 1);
    assert!(!found[0].snippet.contains(&pw));
}

// ----------------------------------------------------------------------------------------
// Custom rule files

const CUSTOM: &str = r#"
[[rules]]
id = "acme-token"
title = "ACME token"
description = "An ACME internal token."
help = "Revoke it in the ACME console."
severity = "high"
confidence = "high"
keywords = ["acme_"]
regex = '''\b(acme_[a-z0-9]{20})\b'''
entropy = 3.0
"#;

#[test]
fn custom_rules_work_and_inherit_the_global_allowlist() {
    let s = Scanner::from_toml(CUSTOM, &Options::default()).unwrap();
    assert_eq!(s.rules().len(), 1);
    assert_eq!(s.rules()[0].cwe, 798);
    assert_eq!(s.rules()[0].severity.as_str(), "high");
    let t = format!("x = acme_{}\n", fake("acme", 20, "hex"));
    assert_eq!(ids(&s.scan("a", t.as_bytes())), ["acme-token"]);
    assert!(
        s.scan("testdata/a", t.as_bytes()).is_empty(),
        "default path allowlist applies"
    );
    assert!(
        s.scan("a", b"x = acme_exampleexample1234\n").is_empty(),
        "stopwords apply"
    );
}

#[test]
fn custom_rule_errors_name_rule_and_field() {
    let bad_regex = CUSTOM.replace(r"\b(acme_[a-z0-9]{20})\b", r"(acme_[a-z0-9]{20}");
    let e = Scanner::from_toml(&bad_regex, &Options::default()).unwrap_err();
    assert_eq!(e.rule_id.as_deref(), Some("acme-token"));
    assert_eq!(e.field, "regex");
    assert!(
        e.to_string()
            .starts_with("rule `acme-token`, field `regex`: "),
        "{e}"
    );

    let cases: &[(&str, &str, &str)] = &[
        ("severity = \"high\"", "severity = \"hgih\"", "severity"),
        ("confidence = \"high\"", "confidence = 3", "confidence"),
        ("entropy = 3.0", "entropy = 9.5", "entropy"),
        (
            "entropy = 3.0",
            "entropy = 3.0\nsecret-group = 2",
            "secret-group",
        ),
        ("entropy = 3.0", "entropy = 3.0\ncheck = \"luhn\"", "check"),
        ("entropy = 3.0", "entropy = 3.0\nbogus = 1", "bogus"),
        (
            "keywords = [\"acme_\"]",
            "keywords = [\"ACME_\"]",
            "keywords[0]",
        ),
        ("title = \"ACME token\"\n", "", "title"),
        (
            "entropy = 3.0",
            "entropy = 3.0\nallowlist = { regexes = [\"ok\", \"[\"] }",
            "allowlist.regexes[1]",
        ),
        (
            "regex = '''\\b(acme_[a-z0-9]{20})\\b'''",
            "regex = '''(acme_)?'''",
            "regex",
        ),
    ];
    for (from, to, field) in cases {
        let text = CUSTOM.replace(from, to);
        assert_ne!(text, CUSTOM, "{from}");
        let e = Scanner::from_toml(&text, &Options::default()).unwrap_err();
        assert_eq!(e.rule_id.as_deref(), Some("acme-token"), "{e}");
        assert_eq!(e.field, *field, "{e}");
    }

    let e = Scanner::from_toml(
        &CUSTOM.replace("acme-token", "Acme Token"),
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(
        (e.rule_id.as_deref(), e.field.as_str()),
        (Some("Acme Token"), "id")
    );
    let e = Scanner::from_toml(&format!("{CUSTOM}{CUSTOM}"), &Options::default()).unwrap_err();
    assert_eq!(e.field, "id");
    let e = Scanner::from_toml("rules = [", &Options::default()).unwrap_err();
    assert_eq!((e.rule_id, e.field.as_str()), (None, "toml"));
}

// ----------------------------------------------------------------------------------------
// Helpers

#[test]
fn checks() {
    assert!(shannon_entropy(b"aaaa") == 0.0);
    assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    assert!(is_placeholder_shape(b"xxxxxxxx"));
    assert!(is_placeholder_shape(b"sk_live_0000000000000000"));
    assert!(!is_placeholder_shape(b"sk_live_0000a00000000000"));
    assert_eq!(
        base64url_decode(b"eyJhbGciOiJIUzI1NiJ9").unwrap(),
        br#"{"alg":"HS256"}"#
    );
    assert!(check_jwt(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"));
    assert!(!check_jwt(b"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.sig"));
    assert!(!check_jwt(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"));
    assert!(!check_jwt(b"eyJ!!!.x.y"));
    assert_eq!(Severity::Critical.as_str(), "critical");
    assert!(Severity::Critical > Severity::High);
}

#[test]
fn scanner_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Scanner>();
}

#[test]
fn rule_error_display() {
    let e = RuleError {
        rule_id: None,
        field: "toml".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "field `toml`: bad");
}

// ----------------------------------------------------------------------------------------
// A source-like corpus

/// Lines of ordinary code that mention credentials without containing any.
const BENIGN: &[&str] = &[
    "fn main() {",
    "    let token = lexer.next_token()?;",
    "    if password.len() < MIN_PASSWORD_LEN { return Err(Error::WeakPassword); }",
    "    let secret_name = format!(\"{}-db-password\", env);",
    "// See https://docs.corp.invalid/auth/tokens for how tokens are issued.",
    "import os, sys, json",
    "API_KEY = os.environ[\"API_KEY\"]",
    "    password = getpass.getpass(prompt=\"Password: \")",
    "const apiKey = process.env.API_KEY;",
    "    headers: { Authorization: `Bearer ${token}` },",
    "password_field.set_placeholder(\"Enter your password\")",
    "    # TODO: rotate the secret every 90 days",
    "  db_password: ${DB_PASSWORD}",
    "  secret_key_ref: { name: app-secrets, key: api-token }",
    "export function hashPassword(pw: string): Promise<string> {",
    "  return bcrypt.hash(pw, 12);",
    "}",
    "    let x = [0x5f, 0x3a, 0x91, 0xc2, 0x00, 0xff];",
    "SELECT id, name, password_hash FROM users WHERE id = $1;",
    "<input type=\"password\" name=\"password\" autocomplete=\"current-password\">",
    "    assert_eq!(parse(\"key=value\"), Ok((\"key\", \"value\")));",
    "    url = \"https://api.github.com/repos/{owner}/{repo}/issues\"",
    "integrity sha512-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08==",
    "    for (i, tok) in tokens.iter().enumerate() { println!(\"{i}: {tok:?}\"); }",
    "func (c *Client) Authenticate(ctx context.Context, token string) error {",
    "\tsecretKey := cfg.Get(\"SECRET_KEY\")",
    "    self.access_key = access_key",
    "    token_type: \"Bearer\",",
    "  - name: AWS_SECRET_ACCESS_KEY",
    "    valueFrom: { secretKeyRef: { name: aws, key: secret } }",
];

#[test]
fn five_megabyte_corpus() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    let mut rng = Rng::seeded(&[b"corpus"]);
    let mut content = String::with_capacity(5_300_000);
    let mut planted: Vec<(u32, String)> = Vec::new();
    let mut line_no = 0u32;
    let mut next_rule = 0;
    while content.len() < 5_000_000 {
        // Mostly benign code, and now and then one example of the next rule.
        for _ in 0..40 {
            content.push_str(BENIGN[rng.below(BENIGN.len())]);
            content.push('\n');
            line_no += 1;
        }
        let r = &file.rules[next_rule % file.rules.len()];
        let text = example(
            &r.id,
            "corpus",
            next_rule,
            0,
            &r.examples[next_rule / file.rules.len() % r.examples.len()],
        );
        next_rule += 1;
        planted.push((line_no + 1, r.id.clone()));
        line_no += text.matches('\n').count() as u32 + u32::from(!text.ends_with('\n'));
        content.push_str(&text);
        if !text.ends_with('\n') {
            content.push('\n');
        }
    }
    assert!(content.len() >= 5_000_000);
    let found = scan_checked(builtin(), "src/big.rs", content.as_bytes());
    let mut missing = Vec::new();
    for (line, id) in &planted {
        // The secret is on the example's first line, or later for multi-line examples.
        if !found
            .iter()
            .any(|m| &m.rule_id == id && m.line >= *line && m.line <= line + 8)
        {
            missing.push((line, id));
        }
    }
    assert!(missing.is_empty(), "missed planted secrets: {missing:?}");
    let unexpected: Vec<_> = found
        .iter()
        .filter(|m| {
            !planted
                .iter()
                .any(|(l, id)| &m.rule_id == id && m.line >= *l && m.line <= l + 8)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "false positives in benign code: {unexpected:#?}"
    );
}

/// Throughput on the same kind of corpus. Run with
/// `cargo test -p secflow-secrets --release -- --ignored --nocapture throughput`.
#[test]
#[ignore = "benchmark; run in release mode"]
fn throughput() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    let mut rng = Rng::seeded(&[b"bench"]);
    // 5,000 files of about 10 KB; one in ten holds a secret.
    let files: Vec<String> = (0..5000)
        .map(|f| {
            let mut s = String::with_capacity(11_000);
            while s.len() < 10_000 {
                s.push_str(BENIGN[rng.below(BENIGN.len())]);
                s.push('\n');
            }
            if f % 10 == 0 {
                let r = &file.rules[rng.below(file.rules.len())];
                s.push_str(&example(&r.id, "bench", f, 0, &r.examples[0]));
                s.push('\n');
            }
            s
        })
        .collect();
    let total: usize = files.iter().map(String::len).sum();
    let scanner = Scanner::builtin();
    let start = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..3 {
        for (i, f) in files.iter().enumerate() {
            n += scanner.scan(&format!("src/f{i}.rs"), f.as_bytes()).len();
        }
    }
    let secs = start.elapsed().as_secs_f64() / 3.0;
    println!(
        "{} files, {:.1} MB, {:.3} s per pass, {:.0} MB/s one core, {} findings",
        files.len(),
        total as f64 / 1e6,
        secs,
        total as f64 / 1e6 / secs,
        n / 3
    );

    let t = std::time::Instant::now();
    let s = Scanner::builtin();
    println!(
        "Scanner::builtin() {:.1} ms ({} rules)",
        t.elapsed().as_secs_f64() * 1e3,
        s.rules().len()
    );
}

#[test]
#[ignore = "profiling aid"]
fn profile_rules() {
    let file = parse_file(BUILTIN_RULES).unwrap();
    let mut rng = Rng::seeded(&[b"bench"]);
    let files: Vec<String> = (0..5000)
        .map(|f| {
            let mut s = String::with_capacity(11_000);
            while s.len() < 10_000 {
                s.push_str(BENIGN[rng.below(BENIGN.len())]);
                s.push('\n');
            }
            if f % 10 == 0 {
                let r = &file.rules[rng.below(file.rules.len())];
                s.push_str(&example(&r.id, "bench", f, 0, &r.examples[0]));
                s.push('\n');
            }
            s
        })
        .collect();
    let total: usize = files.iter().map(String::len).sum();
    let scanner = Scanner::builtin();
    let t = std::time::Instant::now();
    let mut sel = vec![0usize; scanner.rules().len()];
    for f in &files {
        for r in scanner.selected_rules(f.as_bytes()) {
            sel[r] += 1;
        }
    }
    let ac = t.elapsed().as_secs_f64();
    println!("keyword pass: {:.0} MB/s", total as f64 / 1e6 / ac);
    let mut times = Vec::new();
    for (i, info) in scanner.rules().iter().enumerate() {
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        for f in &files {
            scanner.run_rule(i, f.as_bytes(), &mut out);
        }
        let s = t.elapsed().as_secs_f64();
        times.push((s, info.id.clone(), sel[i]));
    }
    times.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    for (s, id, n) in times.iter().take(15) {
        println!(
            "{id:32} {:7.0} MB/s over all files; selected for {n} files",
            total as f64 / 1e6 / s
        );
    }
}

#[test]
#[ignore = "needs a corpus directory"]
fn real_corpus() {
    let dirs = std::env::var("SECFLOW_CORPUS").expect("SECFLOW_CORPUS");
    let limit: usize = std::env::var("SECFLOW_CORPUS_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        << 20;
    let mut files = Vec::new();
    let mut total = 0;
    let mut stack: Vec<std::path::PathBuf> = dirs.split(':').map(Into::into).collect();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            if p.is_dir() {
                stack.push(p);
            } else if total < limit
                && let Ok(data) = std::fs::read(&p)
                && data.len() < 2 << 20
            {
                total += data.len();
                files.push((p.display().to_string(), data));
            }
        }
    }
    let scanner = Scanner::builtin();
    let t = std::time::Instant::now();
    let mut found = Vec::new();
    for (p, data) in &files {
        for m in scanner.scan(p, data) {
            found.push((p.clone(), m));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} files, {:.1} MB, {:.0} MB/s one core, {} findings",
        files.len(),
        total as f64 / 1e6,
        total as f64 / 1e6 / secs,
        found.len()
    );
    let mut by_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, m) in &found {
        *by_rule.entry(m.rule_id.as_str()).or_default() += 1;
    }
    println!("{by_rule:#?}");
    for (p, m) in found.iter().take(300) {
        println!(
            "{}:{}:{} {} {:?} {}",
            p, m.line, m.column, m.rule_id, m.entropy, m.snippet
        );
    }
}
