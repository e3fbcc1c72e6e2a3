//! The bundled rules: they load, compile strictly, carry complete metadata, cover the promised
//! weaknesses and pass their own `tests:` cases.

use std::collections::{BTreeMap, BTreeSet};

use secflow_patterns::{Language, RuleSet};

const WEAKNESSES: &[&str] = &[
    "sql-concat",
    "command-injection",
    "eval",
    "insecure-deserialization",
    "weak-hash",
    "insecure-random",
    "tls-verify-disabled",
    "hardcoded-credential",
];

const FILES: &[(&str, &str)] = &[
    ("python.yaml", include_str!("../rules/python.yaml")),
    ("javascript.yaml", include_str!("../rules/javascript.yaml")),
    ("java.yaml", include_str!("../rules/java.yaml")),
    ("go.yaml", include_str!("../rules/go.yaml")),
    ("rust.yaml", include_str!("../rules/rust.yaml")),
    ("php.yaml", include_str!("../rules/php.yaml")),
    ("c.yaml", include_str!("../rules/c.yaml")),
];

#[test]
fn bundled_rules_pass_their_self_tests() {
    let failures = RuleSet::builtin().self_test();
    assert!(
        failures.is_empty(),
        "{} failing self-test case(s):\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `builtin()` skips regex validation for speed; loading the same files as custom rules runs
/// every check (each regex compiles, none matches an empty line), and `compile_all` builds the
/// language scanners.
#[test]
fn bundled_rules_compile() {
    let files: Vec<(String, String)> = FILES
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    let strict = RuleSet::from_yaml_files(&files, false).unwrap_or_else(|e| panic!("{e}"));
    let builtin = RuleSet::builtin();
    builtin.compile_all();
    assert_eq!(strict.rules().len(), builtin.rules().len());
}

#[test]
fn bundled_rule_ids_and_metadata() {
    let rules = RuleSet::builtin();
    assert!(
        rules.rules().len() >= 45,
        "only {} rules",
        rules.rules().len()
    );
    let texts: Vec<&str> = FILES.iter().map(|(_, t)| *t).collect();
    for rule in rules.rules() {
        let (lang, weakness) = rule.id.split_once('.').expect("id has a dot");
        let lang = Language::from_name(lang).unwrap_or_else(|| panic!("{}: language", rule.id));
        assert!(WEAKNESSES.contains(&weakness), "{}: weakness", rule.id);
        assert_eq!(rule.languages[0], lang, "{}: first language", rule.id);
        assert!(!rule.cwe.is_empty(), "{}: cwe", rule.id);
        assert!(!rule.description.is_empty(), "{}: description", rule.id);
        assert!(!rule.help.is_empty(), "{}: help", rule.id);
        assert!(rule.message.len() > 40, "{}: message too short", rule.id);
        assert!(rule.source.starts_with("builtin/"), "{}: source", rule.id);
        // Every rule has keywords (they make the rule cheap on files that cannot match).
        let block = texts
            .iter()
            .find_map(|t| {
                t.split("  - id: ")
                    .find(|b| b.starts_with(&format!("{}\n", rule.id)))
            })
            .unwrap();
        assert!(block.contains("\n    keywords: ["), "{}: keywords", rule.id);
        let tests = &block[block.find("\n    tests:").expect("tests")..];
        let (matches, no_match) = tests.split_once("no-match:").expect("no-match cases");
        assert!(
            matches.contains("\n        - "),
            "{}: no match case",
            rule.id
        );
        assert!(
            no_match.contains("\n        - "),
            "{}: no no-match case",
            rule.id
        );
    }
}

#[test]
fn bundled_rules_cover_every_language_and_weakness() {
    let rules = RuleSet::builtin();
    let mut by_lang: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for rule in rules.rules() {
        let (lang, weakness) = rule.id.split_once('.').unwrap();
        by_lang.entry(lang).or_default().insert(weakness);
    }
    let all: BTreeSet<&str> = WEAKNESSES.iter().copied().collect();
    let without = |skip: &[&str]| -> BTreeSet<&str> {
        all.iter().copied().filter(|w| !skip.contains(w)).collect()
    };
    assert_eq!(by_lang["python"], all);
    assert_eq!(by_lang["javascript"], all);
    assert_eq!(by_lang["java"], all);
    assert_eq!(by_lang["php"], all);
    assert_eq!(
        by_lang["go"],
        without(&["eval", "insecure-deserialization"])
    );
    assert_eq!(
        by_lang["rust"],
        without(&["eval", "insecure-deserialization"])
    );
    assert_eq!(by_lang["c"], without(&["eval", "insecure-deserialization"]));
    let js = rules.rule("javascript.sql-concat").unwrap();
    assert_eq!(js.languages, [Language::JavaScript, Language::TypeScript]);
}

/// A realistic multi-line file per language: the expected rules fire on the expected lines and
/// the safe lines stay quiet.
#[test]
fn bundled_rules_on_whole_files() {
    let rules = RuleSet::builtin();
    let py = "\
import os, subprocess, hashlib, random, secrets, yaml

def handler(request, cursor):
    name = request.args['name']
    cursor.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)
    cursor.execute(\"SELECT * FROM users WHERE name = %s\", (name,))
    os.system('convert ' + name)
    cfg = yaml.safe_load(open('c.yml'))
    token = secrets.token_hex(16)
    # password = \"hunter2hunter2\"
    return hashlib.sha256(name.encode()).hexdigest()
";
    let found: Vec<(u32, String)> = rules
        .scan("app/views.py", py.as_bytes())
        .into_iter()
        .map(|m| (m.line, m.rule_id))
        .collect();
    assert_eq!(
        found,
        [
            (5, "python.sql-concat".to_string()),
            (7, "python.command-injection".to_string())
        ]
    );

    let ts = "const q = `SELECT * FROM t WHERE id = ${id}`;\nconst agent = new https.Agent({ rejectUnauthorized: false });\n";
    let ids: Vec<String> = rules
        .scan("src/api.ts", ts.as_bytes())
        .into_iter()
        .map(|m| m.rule_id)
        .collect();
    assert_eq!(
        ids,
        ["javascript.sql-concat", "javascript.tls-verify-disabled"]
    );

    // Rules only run on their own language: no Python rule fires on a `.go` file (Go rules
    // may: `# password = "..."` is not a comment in Go).
    let as_go = rules.scan("main.go", py.as_bytes());
    assert!(
        as_go.iter().all(|m| m.rule_id.starts_with("go.")),
        "{as_go:?}"
    );
    assert!(rules.scan("README", py.as_bytes()).is_empty());
}
