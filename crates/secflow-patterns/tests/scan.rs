//! Scanning behaviour: languages, encodings, line endings, columns, paths, keywords.

use secflow_patterns::{Language, PatternMatch, RuleSet, Severity};

fn custom(yaml: &str) -> RuleSet {
    RuleSet::from_yaml_files(&[("t.yaml".to_string(), yaml.to_string())], false)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ids(found: &[PatternMatch]) -> Vec<&str> {
    found.iter().map(|m| m.rule_id.as_str()).collect()
}

#[test]
fn language_detection() {
    let cases = [
        ("a.py", Some(Language::Python)),
        ("a.pyw", Some(Language::Python)),
        ("a.js", Some(Language::JavaScript)),
        ("a.mjs", Some(Language::JavaScript)),
        ("a.cjs", Some(Language::JavaScript)),
        ("a.jsx", Some(Language::JavaScript)),
        ("a.ts", Some(Language::TypeScript)),
        ("a.tsx", Some(Language::TypeScript)),
        ("a.mts", Some(Language::TypeScript)),
        ("a.cts", Some(Language::TypeScript)),
        ("A.java", Some(Language::Java)),
        ("a.go", Some(Language::Go)),
        ("a.rs", Some(Language::Rust)),
        ("a.php", Some(Language::Php)),
        ("a.phtml", Some(Language::Php)),
        ("a.c", Some(Language::C)),
        ("a.h", Some(Language::C)),
        ("a.cc", Some(Language::C)),
        ("a.cpp", Some(Language::C)),
        ("a.cxx", Some(Language::C)),
        ("a.hpp", Some(Language::C)),
        ("src/deep/dir/MAIN.PY", Some(Language::Python)),
        ("C:\\src\\x.Java", Some(Language::Java)),
        ("archive.tar.gz", None),
        ("Makefile", None),
        (".py", None),
        ("dir.py/README", None),
        ("a.", None),
    ];
    for (path, expected) in cases {
        assert_eq!(Language::from_path(path), expected, "{path}");
    }
    for lang in Language::ALL {
        assert_eq!(Language::from_name(lang.as_str()), Some(lang));
    }
}

#[test]
fn generic_rules_apply_to_every_file_and_language_rules_only_to_theirs() {
    let set = custom(
        r#"
rules:
  - id: any.fixme
    message: "A FIXME marks a known problem."
    severity: info
    languages: [generic]
    patterns: ['FIXME']
  - id: go.only
    message: "A Go-only rule."
    severity: low
    languages: [go]
    patterns: ['FIXME']
"#,
    );
    assert_eq!(ids(&set.scan("notes.txt", b"FIXME\n")), ["any.fixme"]);
    assert_eq!(ids(&set.scan("Makefile", b"# FIXME\n")), ["any.fixme"]);
    assert_eq!(
        ids(&set.scan("x.go", b"// FIXME\n")),
        ["any.fixme", "go.only"]
    );
    assert_eq!(ids(&set.scan("x.py", b"# FIXME\n")), ["any.fixme"]);
}

#[test]
fn non_utf8_input() {
    let rules = RuleSet::builtin();
    // Latin-1 bytes inside the string and before the call; a lone continuation byte too.
    let content = b"# \xe9t\xe9\n\x80\xff os.system(\"rm \xe9\" + path)\n";
    let found = rules.scan("x.py", content);
    assert_eq!(found.len(), 1, "{found:?}");
    let m = &found[0];
    assert_eq!(
        (m.rule_id.as_str(), m.line),
        ("python.command-injection", 2)
    );
    // `\x80` continues nothing but is not counted as a character start; `\xff` and ` ` are.
    assert_eq!(m.column, 3);
    assert!(
        m.snippet
            .starts_with("\u{FFFD}\u{FFFD} os.system(\"rm \u{FFFD}\""),
        "{}",
        m.snippet
    );
    // Random binary garbage does not panic.
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = rules.scan("x.py", &garbage);
}

#[test]
fn crlf_line_endings() {
    let rules = RuleSet::builtin();
    let content = b"import os\r\n\r\nos.system(cmd)\r\nr = requests.get(url, verify=False)\r\n";
    let found = rules.scan("x.py", content);
    let lines: Vec<(u32, &str, u32, u32)> = found
        .iter()
        .map(|m| (m.line, m.rule_id.as_str(), m.column, m.end_column))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "python.command-injection", 1, 12),
            (4, "python.tls-verify-disabled", 23, 35)
        ]
    );
    assert!(found.iter().all(|m| !m.snippet.contains('\r')));

    // `$` matches before `\r\n`, and `.` does not swallow the `\r`.
    let set = custom(
        r#"
rules:
  - id: t.line-end
    message: "Line ends with a semicolon."
    severity: info
    languages: [generic]
    patterns: ['x.*;$']
"#,
    );
    let found = set.scan("a.txt", b"x = 1;\r\ny = 2\r\nx;\r\n");
    let lines: Vec<u32> = found.iter().map(|m| m.line).collect();
    assert_eq!(lines, [1, 3]);
    assert_eq!(found[0].end_column, 7);
}

#[test]
fn columns_count_characters_and_line_numbers_count_lines() {
    let set = custom(
        r#"
rules:
  - id: t.secret
    message: "Secret marker."
    severity: high
    languages: [generic]
    patterns: ['SECRET']
"#,
    );
    let content = "first\n\nça é SECRET ✓ SECRET\nlast SECRET".as_bytes();
    let found = set.scan("a.txt", content);
    // One match per rule and line: the first on line 3.
    let got: Vec<(u32, u32, u32)> = found
        .iter()
        .map(|m| (m.line, m.column, m.end_column))
        .collect();
    assert_eq!(got, [(3, 6, 12), (4, 6, 12)]);
    assert_eq!(found[0].snippet, "ça é SECRET ✓ SECRET");
}

#[test]
fn long_lines_are_cut_around_the_match() {
    let rules = RuleSet::builtin();
    let line = format!(
        "var a = [{}]; eval(userInput); var b = [{}];\n",
        "1,".repeat(400),
        "2,".repeat(400)
    );
    let found = rules.scan("bundle.min.js", line.as_bytes());
    assert_eq!(found.len(), 1);
    let s = &found[0].snippet;
    assert!(s.contains("eval(userInput)"), "{s}");
    assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    assert!(s.chars().count() <= 202, "{}", s.chars().count());
    // `var a = [` + 400 × `1,` + `]; ` precede `eval`.
    assert_eq!(found[0].column, 9 + 800 + 3 + 1);
}

#[test]
fn path_include_and_exclude_globs() {
    let set = custom(
        r#"
rules:
  - id: t.scoped
    message: "Scoped rule."
    severity: medium
    languages: [python]
    patterns: ['danger\(']
    paths:
      include: ['src/**', '*.pyw']
      exclude: ['**/tests/**', 'test_*.py']
"#,
    );
    let hit = |p: &str| !set.scan(p, b"danger()\n").is_empty();
    assert!(hit("src/app/x.py"));
    assert!(hit("./src/x.py"));
    assert!(hit("src\\win\\x.py"));
    assert!(hit("tools/gui.pyw"));
    assert!(!hit("lib/x.py"));
    assert!(!hit("src/app/tests/x.py"));
    assert!(!hit("src/test_x.py"));
    // Self-tests ignore paths.
    assert!(set.self_test().is_empty());
}

#[test]
fn keywords_gate_rules_by_file() {
    let set = custom(
        r#"
rules:
  - id: t.gated
    message: "Gated rule."
    severity: low
    languages: [generic]
    keywords: [Magic]
    patterns: ['call\(\)']
"#,
    );
    assert!(set.scan("a.txt", b"call()\n").is_empty());
    // The keyword may be anywhere in the file, in any ASCII case.
    let found = set.scan("a.txt", b"call()\n# mAgIc\n");
    assert_eq!((found.len(), found[0].line), (1, 1));
}

#[test]
fn pattern_not_and_multiple_patterns() {
    let set = custom(
        r#"
rules:
  - id: t.either
    message: "Either pattern."
    severity: low
    languages: [generic]
    patterns: ['alpha', 'beta']
    pattern-not: ['^\s*#', 'safe']
"#,
    );
    let found = set.scan("a.txt", b"beta then alpha\n# alpha\nalpha safe\nx beta\n");
    let got: Vec<(u32, u32)> = found.iter().map(|m| (m.line, m.column)).collect();
    // Line 1 reports the earliest of the patterns; lines 2 and 3 are excluded.
    assert_eq!(got, [(1, 1), (4, 3)]);
}

#[test]
fn focus_group_sets_the_reported_span() {
    let set = custom(
        r#"
rules:
  - id: t.focus
    message: "Bare call, not a method."
    severity: low
    languages: [generic]
    patterns: ['(?:^|[^\w.])(?P<focus>run\()', 'other(?<focus>Call)\(']
    tests: { match: ['x = run(1)', 'otherCall()'], no-match: ['obj.run(1)'] }
"#,
    );
    let found = set.scan(
        "a.txt",
        b"x = run(1)
  otherCall()
obj.run(2)
",
    );
    let got: Vec<(u32, u32, u32)> = found
        .iter()
        .map(|m| (m.line, m.column, m.end_column))
        .collect();
    assert_eq!(got, [(1, 5, 9), (2, 8, 12)]);
    assert!(set.self_test().is_empty());
}

#[test]
fn context_on_the_line_or_the_lines_above() {
    let set = custom(
        r#"
rules:
  - id: t.weak-rng
    message: "A weak RNG makes a secret."
    severity: medium
    languages: [generic]
    patterns: ['\bweak_rng\(\)']
    pattern-not: ['^\s*#', 'jitter']
    context:
      patterns: ['(?i)token', 'secret']
      lines-before: 2
    tests:
      match:
        - 'token = weak_rng()'
        - |
          def new_token():
              return weak_rng()
      no-match:
        - 'n = weak_rng()'
        - |
          # token

          x = 1
          return weak_rng()
"#,
    );
    assert!(set.self_test().is_empty(), "{:?}", set.self_test());
    let text = "\
# Session TOKEN helpers                    1
x = weak_rng()                           # 2: context 1 line above
y = weak_rng()                           # 3: context 2 lines above
z = weak_rng()                           # 4: context 3 lines above, too far
secret = weak_rng()                      # 5: context on the line itself
a = 1                                    # 6
b = 2                                    # 7
c = weak_rng()                           # 8: line 5 is 3 lines above
d = weak_rng() # token, but jitter       # 9: pattern-not wins over context
# token = weak_rng()                     # 10: a comment, excluded (but is context)
e = weak_rng()                           # 11: context from the comment above
";
    let lines: Vec<u32> = set
        .scan("x.txt", text.as_bytes())
        .iter()
        .map(|m| m.line)
        .collect();
    assert_eq!(lines, [2, 3, 5, 11]);
    // A line that only has the context is not a finding; the first line has no lines above.
    assert!(set.scan("x.txt", b"token\n").is_empty());
    assert_eq!(set.scan("x.txt", b"weak_rng() token").len(), 1);
    // CRLF files: `$` in a context pattern matches before `\r\n`, and empty lines count.
    let crlf = custom(
        r#"
rules:
  - id: t.crlf
    message: "A call after a line ending in a colon."
    severity: low
    languages: [generic]
    patterns: ['call\(']
    context: { patterns: [':$'], lines-before: 2 }
"#,
    );
    let found = crlf.scan("x.txt", b"setup:\r\n\r\ncall()\r\nx\r\n\r\n\r\ncall()\r\n");
    let lines: Vec<u32> = found.iter().map(|m| m.line).collect();
    assert_eq!(lines, [3]);
    // Without `lines-before` the context must be on the matched line.
    let same_line = custom(
        r#"
rules:
  - id: t.same-line
    message: "A call with a token on the same line."
    severity: low
    languages: [generic]
    patterns: ['call\(']
    context: { patterns: ['token'] }
"#,
    );
    assert!(same_line.scan("x.txt", b"token\ncall()\n").is_empty());
    assert_eq!(same_line.scan("x.txt", b"call(token)\n").len(), 1);
}

#[test]
fn a_match_running_across_lines_is_confirmed_on_its_own_line() {
    // `\s*` may cross a newline in a whole-file search; a rule still only matches within a line.
    let set = custom(
        r#"
rules:
  - id: t.call
    message: "Call with an argument."
    severity: low
    languages: [generic]
    patterns: ['run\s*\(\s*\w']
"#,
    );
    let found = set.scan("a.txt", b"run(\n  x)\nrun( y)\n");
    let lines: Vec<u32> = found.iter().map(|m| m.line).collect();
    assert_eq!(lines, [3]);
}

#[test]
fn results_are_ordered_and_custom_rules_join_the_builtin_ones() {
    let files = [(
        "acme.yaml".to_string(),
        r#"
rules:
  - id: acme.python.print
    message: "print() left in production code."
    severity: info
    confidence: high
    cwe: [489]
    languages: [python]
    patterns: ['\bprint\(']
    tests: { match: ['print(x)'], no-match: ['pprint(x)'] }
"#
        .to_string(),
    )];
    let set = RuleSet::from_yaml_files(&files, true).unwrap();
    assert!(set.rules().len() > 45);
    let info = set.rule("acme.python.print").unwrap();
    assert_eq!(
        (info.severity, info.cwe.as_slice()),
        (Severity::Info, &[489][..])
    );
    assert_eq!(info.severity.as_str(), "info");
    let found = set.scan("x.py", b"print(eval(x))\nos.system(cmd); print(1)\n");
    let got: Vec<(u32, u32, &str)> = found
        .iter()
        .map(|m| (m.line, m.column, m.rule_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, 1, "acme.python.print"),
            (1, 7, "python.eval"),
            (2, 1, "python.command-injection"),
            (2, 17, "acme.python.print"),
        ]
    );
    assert!(set.self_test().is_empty());
}

#[test]
fn self_test_reports_cases_that_misbehave() {
    let set = custom(
        r#"
rules:
  - id: t.weak
    message: "A rule whose tests are wrong."
    severity: low
    languages: [python, go]
    keywords: [foo]
    patterns: ['foo\(']
    tests:
      match: ['foo(1)', 'bar(1)']
      no-match: ['foo (1)', 'foo(2)']
"#,
    );
    let failures = set.self_test();
    let described: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        described,
        [
            "rule `t.weak`, match case scanned as python: found nothing: bar(1)",
            "rule `t.weak`, no-match case scanned as python: matched: foo(2)",
            "rule `t.weak`, match case scanned as go: found nothing: bar(1)",
            "rule `t.weak`, no-match case scanned as go: matched: foo(2)",
        ]
    );
}

#[test]
fn empty_input_and_compile_all() {
    let rules = RuleSet::builtin();
    rules.compile_all();
    assert!(rules.scan("x.py", b"").is_empty());
    assert!(rules.scan("x.py", b"\n\n\n").is_empty());
}

#[test]
fn rule_set_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
    let rules = std::sync::Arc::new(RuleSet::builtin());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let rules = rules.clone();
            std::thread::spawn(move || rules.scan("x.go", b"cfg.InsecureSkipVerify = true\n").len())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 1);
    }
}
