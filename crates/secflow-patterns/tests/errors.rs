//! Rule-file errors: each names the file, the rule and the field, and says what to do.

use secflow_patterns::{RuleError, RuleSet};

const GOOD: &str = r#"
rules:
  - id: acme.python.todo
    message: "A TODO marks unfinished security work."
    severity: low
    languages: [python]
    patterns: ['#\s*TODO\b']
"#;

fn load(text: &str) -> Result<RuleSet, RuleError> {
    RuleSet::from_yaml_files(&[("custom.yaml".to_string(), text.to_string())], false)
}

fn error(text: &str) -> RuleError {
    match load(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// `GOOD` with one line replaced.
fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replace(from, to)
}

#[test]
fn the_good_file_loads() {
    let set = load(GOOD).unwrap();
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.rules()[0].source, "custom.yaml");
    assert_eq!(set.scan("a.py", b"x = 1  # TODO validate\n").len(), 1);
}

#[test]
fn unknown_field() {
    let e = error(&with("    patterns:", "    patern: x\n    patterns:"));
    assert_eq!(e.file(), "custom.yaml");
    assert_eq!(e.rule_id(), Some("acme.python.todo"));
    assert_eq!(e.field_name(), Some("patern"));
    assert_eq!(
        e.to_string(),
        "rules file `custom.yaml`, rule `acme.python.todo`, field `patern`: unknown field \
         `patern`. Fix: did you mean `patterns`? remove or rename it; known fields: id, message, \
         description, help, severity, confidence, cwe, languages, patterns, pattern-not, \
         context, keywords, paths, tests"
    );
}

#[test]
fn unknown_nested_and_top_level_fields() {
    let e = error(&format!("{GOOD}    tests: {{ matches: ['# TODO'] }}\n"));
    assert_eq!(e.field_name(), Some("tests.matches"));
    assert!(e.to_string().contains("did you mean `match`?"), "{e}");

    let e = error(&format!("{GOOD}    paths: {{ includes: ['src/**'] }}\n"));
    assert_eq!(e.field_name(), Some("paths.includes"));

    let e = error(&format!("version: 2\n{GOOD}"));
    assert_eq!(e.field_name(), Some("version"));
    assert!(
        e.to_string()
            .contains("the only top-level field is `rules`"),
        "{e}"
    );
}

#[test]
fn invalid_regex() {
    let e = error(&with(
        r"patterns: ['#\s*TODO\b']",
        r"patterns: ['ok', 'TODO(']",
    ));
    assert_eq!(e.rule_id(), Some("acme.python.todo"));
    assert_eq!(e.field_name(), Some("patterns[1]"));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "rules file `custom.yaml`, rule `acme.python.todo`, field `patterns[1]`: invalid regex: "
        ),
        "{text}"
    );
    assert!(text.contains("unclosed group"), "{text}");
    assert!(text.contains("Fix: fix the regex"), "{text}");

    // Look-around is not supported by the regex engine; the error says so.
    let e = error(&with(
        r"patterns: ['#\s*TODO\b']",
        r"patterns: ['TODO(?!x)']",
    ));
    assert!(e.to_string().contains("no look-around"), "{e}");

    let e = error(&format!("{GOOD}    pattern-not: ['[z-a]']\n"));
    assert_eq!(e.field_name(), Some("pattern-not[0]"));
}

#[test]
fn pattern_matching_an_empty_line_is_rejected() {
    let e = error(&with(r"patterns: ['#\s*TODO\b']", r"patterns: ['x*']"));
    assert_eq!(e.field_name(), Some("patterns[0]"));
    assert!(e.to_string().contains("would flag every line"), "{e}");
}

#[test]
fn duplicate_ids() {
    let twice = format!("{GOOD}{}", GOOD.replace("rules:\n", ""));
    let e = error(&twice);
    assert_eq!(e.rule_id(), Some("acme.python.todo"));
    assert_eq!(e.field_name(), Some("id"));
    assert!(e.to_string().contains("used twice in the file"), "{e}");

    let files = [
        ("a.yaml".to_string(), GOOD.to_string()),
        ("b.yaml".to_string(), GOOD.to_string()),
    ];
    let e = RuleSet::from_yaml_files(&files, false).unwrap_err();
    assert_eq!(e.file(), "b.yaml");
    assert_eq!(
        e.to_string(),
        "rules file `b.yaml`, rule `acme.python.todo`, field `id`: rule id `acme.python.todo` is \
         already defined in `a.yaml`. Fix: give every rule its own id"
    );

    let clash = with("acme.python.todo", "python.eval");
    let e = RuleSet::from_yaml_files(&[("c.yaml".to_string(), clash)], true).unwrap_err();
    assert!(
        e.to_string()
            .contains("already defined in `builtin/python.yaml`")
            && e.to_string().contains("bundled rules cannot be redefined"),
        "{e}"
    );
}

#[test]
fn unknown_language() {
    let e = error(&with("languages: [python]", "languages: [python, cobol]"));
    assert_eq!(e.field_name(), Some("languages[1]"));
    assert_eq!(
        e.to_string(),
        "rules file `custom.yaml`, rule `acme.python.todo`, field `languages[1]`: unknown language \
         `cobol`. Fix: use one of: python, javascript, typescript, java, go, rust, php, c, generic"
    );
    let e = error(&with("languages: [python]", "languages: [cpp]"));
    assert!(e.to_string().contains("C++ files belong to `c`"), "{e}");
}

#[test]
fn bad_severity_and_confidence() {
    let e = error(&with("severity: low", "severity: hgh"));
    assert_eq!(e.rule_id(), Some("acme.python.todo"));
    assert_eq!(e.field_name(), Some("severity"));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "rules file `custom.yaml`, rule `acme.python.todo`, field `severity`: unknown variant `hgh`"
        ),
        "{text}"
    );
    assert!(text.contains("at line 5"), "{text}");
    assert!(
        text.ends_with("Fix: use one of: info, low, medium, high, critical"),
        "{text}"
    );

    let e = error(&with(
        "severity: low",
        "severity: low\n    confidence: sure",
    ));
    assert_eq!(e.field_name(), Some("confidence"));
    assert!(
        e.to_string()
            .ends_with("Fix: use one of: low, medium, high"),
        "{e}"
    );
}

#[test]
fn wrong_types_missing_fields_and_syntax() {
    let e = error(&format!("{GOOD}    cwe: [89, sql]\n"));
    assert_eq!(e.field_name(), Some("cwe[1]"));
    assert!(e.to_string().contains("e.g. `cwe: [89]`"), "{e}");

    let e = error(&with("    severity: low\n", ""));
    assert_eq!(e.field_name(), Some("severity"));
    assert!(
        e.to_string()
            .contains("the required field `severity` is missing"),
        "{e}"
    );

    let e = error(&with("  - id: acme.python.todo\n", "  - message2: x\n"));
    assert_eq!(e.rule_id(), None);
    assert!(
        e.to_string()
            .starts_with("rules file `custom.yaml`, rule #1 (no id)"),
        "{e}"
    );

    let e = error("rules:\n  - id: [unclosed\n");
    assert!(e.to_string().contains("not valid YAML"), "{e}");
    assert_eq!(e.rule_id(), None);

    let e = error("- id: x\n");
    assert!(
        e.to_string().contains("start the file with `rules:`"),
        "{e}"
    );
}

#[test]
fn semantic_checks() {
    let e = error(&with("id: acme.python.todo", "id: Acme_Todo"));
    assert_eq!(e.field_name(), Some("id"));
    assert!(e.to_string().contains("kebab-case"), "{e}");

    let e = error(&format!("{GOOD}    paths: {{ include: ['src/***/x'] }}\n"));
    assert_eq!(e.field_name(), Some("paths.include[0]"));

    let e = error(&format!("{GOOD}    keywords: ['']\n"));
    assert_eq!(e.field_name(), Some("keywords[0]"));

    let e = error(&with(r"patterns: ['#\s*TODO\b']", "patterns: []"));
    assert_eq!(e.field_name(), Some("patterns"));
}

/// `GOOD` plus a `context:` block (given as the YAML flow mapping after `context: `).
fn with_context(context: &str) -> String {
    format!("{GOOD}    context: {context}\n")
}

#[test]
fn a_valid_context_loads() {
    let set = load(&with_context(
        "{ patterns: ['(?i)security'], lines-before: 20 }",
    ))
    .unwrap();
    assert_eq!(
        set.scan("a.py", b"# security\nx = 1\n# TODO check\n").len(),
        1
    );
    let set = load(&with_context("{ patterns: ['(?i)security'] }")).unwrap();
    assert!(set.scan("a.py", b"# security\n# TODO check\n").is_empty());
}

#[test]
fn invalid_context() {
    // The window is limited.
    let e = error(&with_context("{ patterns: ['x'], lines-before: 21 }"));
    assert_eq!(e.rule_id(), Some("acme.python.todo"));
    assert_eq!(e.field_name(), Some("context.lines-before"));
    assert_eq!(
        e.to_string(),
        "rules file `custom.yaml`, rule `acme.python.todo`, field `context.lines-before`: 21 \
         lines is more than the maximum of 20. Fix: use a number from 0 (the matched line only) \
         to 20; context far from the matched line is rarely about it"
    );
    // Not a number of lines.
    for bad in ["-1", "three", "2.5"] {
        let e = error(&with_context(&format!(
            "{{ patterns: ['x'], lines-before: {bad} }}"
        )));
        assert_eq!(e.field_name(), Some("context.lines-before"), "{bad}: {e}");
        assert!(
            e.to_string()
                .ends_with("Fix: write `context: { patterns: ['regex', ...], lines-before: N }` with N from 0 to 20"),
            "{bad}: {e}"
        );
    }

    // Patterns are required, not empty, valid and do not match an empty line.
    let e = error(&with_context("{ lines-before: 3 }"));
    assert_eq!(e.field_name(), Some("context.patterns"));
    assert!(
        e.to_string()
            .contains("the required field `context.patterns` is missing"),
        "{e}"
    );
    let e = error(&with_context("{ patterns: [], lines-before: 3 }"));
    assert_eq!(e.field_name(), Some("context.patterns"));
    assert!(e.to_string().contains("the list is empty"), "{e}");
    let e = error(&with_context("{ patterns: ['ok', 'tok('] }"));
    assert_eq!(e.field_name(), Some("context.patterns[1]"));
    assert!(e.to_string().contains("invalid regex"), "{e}");
    let e = error(&with_context("{ patterns: ['\\s*'] }"));
    assert_eq!(e.field_name(), Some("context.patterns[0]"));
    assert!(
        e.to_string()
            .contains("matches an empty line, so every line would have the context"),
        "{e}"
    );
    let e = error(&with_context("{ patterns: [''] }"));
    assert_eq!(e.field_name(), Some("context.patterns[0]"));
    assert!(
        e.to_string()
            .contains("the regex is empty and every line would have the context"),
        "{e}"
    );
    let e = error(&with_context("{ patterns: 'token' }"));
    assert_eq!(e.field_name(), Some("context.patterns"), "{e}");

    // Typos and a wrong shape.
    let e = error(&with_context("{ pattern: ['x'] }"));
    assert_eq!(e.field_name(), Some("context.pattern"));
    assert!(e.to_string().contains("did you mean `patterns`?"), "{e}");
    let e = error(&with_context("{ patterns: ['x'], lines-above: 2 }"));
    assert_eq!(e.field_name(), Some("context.lines-above"));
    assert!(
        e.to_string().contains("did you mean `lines-before`?"),
        "{e}"
    );
    let e = error(&with_context("token"));
    assert_eq!(e.field_name(), Some("context"));
    assert!(
        e.to_string().contains(
            "invalid type: string \"token\", expected a mapping `{ patterns: [...], \
             lines-before: N }`"
        ),
        "{e}"
    );
    assert!(e.to_string().contains("Fix: write `context: {"), "{e}");
}

#[test]
fn error_is_a_std_error() {
    fn takes(_: &dyn std::error::Error) {}
    takes(&error("rules: 3\n"));
}
