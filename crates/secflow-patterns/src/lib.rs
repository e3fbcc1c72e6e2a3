//! Code-pattern rules and their engine: the core of SecFlow's official code-pattern detector.
//!
//! Rules are regexes matched per line, selected by language (file extension), gated by literal
//! keywords and by path globs, written in the YAML format documented in
//! `docs/code-pattern-rules.md`. A bundled rule set ([`RuleSet::builtin`]) covers common
//! weaknesses in Python, JavaScript/TypeScript, Java, Go, Rust, PHP and C/C++.
//!
//! The crate runs natively (tests, benchmarks, the host) and inside a `wasm32-wasip2` plugin,
//! so the engine uses no threads, files, environment or clock: rule files come in as text and
//! the caller decides about parallelism. Per language, one regex (the alternation of all its
//! patterns) finds candidate lines in a single pass; rules are only evaluated on those lines
//! (see the `engine` module and "How matching works" in the documentation for the measurements
//! behind this). Everything is compiled lazily on first use, because a plugin may be
//! instantiated afresh for every file and would otherwise pay for compiling every rule of every
//! language each time; [`RuleSet::compile_all`] does it up front for long-lived or snapshotted
//! instances.
//!
//! ```
//! use secflow_patterns::RuleSet;
//!
//! let rules = RuleSet::builtin();
//! let found = rules.scan("app/db.py", b"cur.execute(\"SELECT * FROM t WHERE id = \" + uid)\n");
//! assert_eq!(found[0].rule_id, "python.sql-concat");
//! assert_eq!(found[0].line, 1);
//! ```
//!
//! A rule matches lines, but may require evidence on the lines above the match with `context`:
//! the line is reported only if one of the context regexes matches it or one of the
//! `lines-before` (at most 20) lines above it. The context is only checked on lines the rule
//! already matched, so it costs nothing elsewhere. The bundled `insecure-random` rules use it
//! to see that a weak generator makes a secret from the name of the enclosing function:
//!
//! ```
//! use secflow_patterns::RuleSet;
//!
//! let yaml = r#"
//! rules:
//!   - id: acme.javascript.weak-token
//!     message: "Math.random() makes a token; it is predictable."
//!     severity: medium
//!     languages: [javascript]
//!     patterns: ['\bMath\.random\s*\(']
//!     context:
//!       patterns: ['(?i)token|session_?id|secret']
//!       lines-before: 3
//! "#;
//! let rules = RuleSet::from_yaml_files(&[("acme.yaml".into(), yaml.into())], false)?;
//! let js = b"function newSessionId() {\n  return Math.random().toString(36);\n}\n\n\
//!            function shuffle(items) {\n  return items.sort(() => Math.random() - 0.5);\n}\n";
//! let found = rules.scan("server.js", js);
//! assert_eq!((found.len(), found[0].line), (1, 2));
//! # Ok::<(), secflow_patterns::RuleError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod engine;
mod format;
mod glob;
mod language;

use std::fmt;

pub use format::RuleError;
pub use language::Language;

use engine::{LangTable, Rule};
use format::RuleDef;

/// The bundled rule files, embedded at compile time (file name, YAML text).
const BUILTIN_FILES: &[(&str, &str)] = &[
    ("builtin/python.yaml", include_str!("../rules/python.yaml")),
    (
        "builtin/javascript.yaml",
        include_str!("../rules/javascript.yaml"),
    ),
    ("builtin/java.yaml", include_str!("../rules/java.yaml")),
    ("builtin/go.yaml", include_str!("../rules/go.yaml")),
    ("builtin/rust.yaml", include_str!("../rules/rust.yaml")),
    ("builtin/php.yaml", include_str!("../rules/php.yaml")),
    ("builtin/c.yaml", include_str!("../rules/c.yaml")),
];

/// How likely a match of the rule is a true positive (default medium).
pub use secflow_severity::Confidence;
/// How severe a weakness is if the finding is real; the scale every SecFlow report shares.
pub use secflow_severity::Severity;

/// What a rule reports, for finding metadata and SARIF rule descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Unique id, conventionally `<language>.<weakness>` (`python.sql-concat`).
    pub id: String,
    /// What is wrong on the matched line and why it matters (SARIF `shortDescription`/message).
    pub message: String,
    /// Longer explanation (SARIF `fullDescription`); empty if the rule file has none.
    pub description: String,
    /// How to fix it, with a safe example (SARIF `help`); empty if the rule file has none.
    pub help: String,
    /// Severity of a true positive.
    pub severity: Severity,
    /// Likelihood that a match is a true positive.
    pub confidence: Confidence,
    /// CWE numbers (`89` for CWE-89).
    pub cwe: Vec<u32>,
    /// Languages the rule applies to.
    pub languages: Vec<Language>,
    /// The rules file the rule came from (`builtin/python.yaml` for bundled rules).
    pub source: String,
}

/// One match of a rule: at most one per rule and line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternMatch {
    /// The [`RuleInfo::id`] of the rule that matched.
    pub rule_id: String,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column of the first character of the match (or of its `focus` group), counted
    /// in characters: UTF-8 characters, and in invalid UTF-8 each byte that does not continue a
    /// sequence.
    pub column: u32,
    /// 1-based column just after the last character of the match (exclusive, like SARIF
    /// `endColumn`); equal to `column` for an empty match.
    pub end_column: u32,
    /// The matched line, trimmed; cut to about 200 characters around the match (with `…`) when
    /// longer.
    pub snippet: String,
}

/// A rule self-test (`tests:` in the rule file) that did not behave as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTestFailure {
    /// The rule under test.
    pub rule_id: String,
    /// The language the case was scanned as (each of the rule's languages is tried).
    pub language: Language,
    /// The test case text.
    pub case: String,
    /// `true` for a `match:` case that found nothing, `false` for a `no-match:` case that
    /// matched.
    pub expected_match: bool,
}

impl fmt::Display for RuleTestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, outcome) = if self.expected_match {
            ("match", "found nothing")
        } else {
            ("no-match", "matched")
        };
        write!(
            f,
            "rule `{}`, {kind} case scanned as {}: {outcome}: {}",
            self.rule_id, self.language, self.case
        )
    }
}

/// A compiled set of rules. Cheap to share across threads (`Send + Sync`); regexes and keyword
/// automata are built on first use and then reused.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    infos: Vec<RuleInfo>,
    tables: [LangTable; Language::COUNT],
}

impl RuleSet {
    /// The bundled rules.
    ///
    /// # Panics
    ///
    /// Only if the embedded rule files are broken, which the crate's tests rule out.
    pub fn builtin() -> RuleSet {
        let mut defs = Vec::new();
        for (file, text) in BUILTIN_FILES {
            defs.extend(
                format::parse_file(file, text, false)
                    .unwrap_or_else(|e| panic!("bundled rules are broken: {e}")),
            );
        }
        RuleSet::from_defs(defs, false).unwrap_or_else(|e| panic!("bundled rules are broken: {e}"))
    }

    /// Loads rule files (`(file name, YAML text)`), optionally after the bundled rules. The
    /// file name only labels errors and [`RuleInfo::source`]. Every regex of these files is
    /// compiled here, so a `RuleSet` that loads never fails later.
    ///
    /// Rule ids must be unique across all files and the bundled rules; a bundled rule cannot be
    /// redefined (give the custom rule its own id).
    pub fn from_yaml_files(
        files: &[(String, String)],
        include_builtin: bool,
    ) -> Result<RuleSet, RuleError> {
        let mut defs = Vec::new();
        if include_builtin {
            for (file, text) in BUILTIN_FILES {
                defs.extend(format::parse_file(file, text, false)?);
            }
        }
        let builtin_count = defs.len();
        for (file, text) in files {
            defs.extend(format::parse_file(file, text, true)?);
        }
        let set = RuleSet::from_defs(defs, true)?;
        for rule in &set.rules[builtin_count..] {
            // Every regex was compiled once during validation; this cannot fail.
            rule.regexes();
        }
        Ok(set)
    }

    fn from_defs(defs: Vec<RuleDef>, check_duplicates: bool) -> Result<RuleSet, RuleError> {
        if check_duplicates {
            let mut seen: std::collections::HashMap<&str, &str> = Default::default();
            for def in &defs {
                if let Some(first) = seen.insert(&def.info.id, &def.info.source) {
                    return Err(format::duplicate_error(
                        &def.info.source,
                        &def.info.id,
                        first,
                    ));
                }
            }
        }
        let mut tables: [LangTable; Language::COUNT] = Default::default();
        for (index, def) in defs.iter().enumerate() {
            let generic = def.info.languages.contains(&Language::Generic);
            for lang in Language::ALL {
                if generic || def.info.languages.contains(&lang) {
                    let table = &mut tables[lang.index()];
                    table.rules.push(index);
                    table.any_paths |= def.paths.is_some();
                }
            }
        }
        let infos = defs.iter().map(|d| d.info.clone()).collect();
        let rules = defs.into_iter().map(Rule::new).collect();
        Ok(RuleSet {
            rules,
            infos,
            tables,
        })
    }

    /// Metadata of every rule, in load order (bundled rules first).
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&RuleInfo> {
        self.infos.iter().find(|r| r.id == id)
    }

    /// Scans one file and returns at most one match per rule and line, ordered by line, column
    /// and rule id.
    ///
    /// `path` selects the language (by extension; files of no known language get only `generic`
    /// rules) and is matched against the rules' `paths` globs. `content` may be any bytes:
    /// patterns run over the raw bytes in ASCII mode, so invalid UTF-8 needs no decoding pass
    /// and simply never matches a literal; snippets are decoded lossily. Binary files are not
    /// detected here: the caller decides what to scan.
    pub fn scan(&self, path: &str, content: &[u8]) -> Vec<PatternMatch> {
        let lang = Language::from_path(path).unwrap_or(Language::Generic);
        let table = &self.tables[lang.index()];
        if table.rules.is_empty() || content.is_empty() {
            return Vec::new();
        }
        let normalized;
        let path = if table.any_paths {
            normalized = glob::normalize(path);
            Some(normalized.as_str())
        } else {
            None
        };
        self.scan_table(table, path, content, None)
    }

    /// Builds now everything that is otherwise built on first use: each language's scanner and
    /// keyword automaton and every rule's regexes (about 10 ms natively for the bundled rules).
    /// Call it before snapshotting an initialized plugin (e.g. with `wasmtime-wizer`) or in a
    /// long-lived instance, so that no scan pays for compilation; without it a scan compiles only
    /// what its language and its candidate lines need.
    pub fn compile_all(&self) {
        for table in &self.tables {
            table.compile_all(&self.rules);
        }
    }

    /// Runs every rule's `tests:` cases (each as a one-file scan in each of the rule's
    /// languages, with keywords applied and `paths` ignored) and returns the cases that did not
    /// behave as written. Useful to check custom rules before using them.
    pub fn self_test(&self) -> Vec<RuleTestFailure> {
        let mut failures = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            for &lang in &rule.def.info.languages {
                let table = &self.tables[lang.index()];
                let cases = rule
                    .def
                    .tests
                    .matches
                    .iter()
                    .map(|c| (c, true))
                    .chain(rule.def.tests.no_match.iter().map(|c| (c, false)));
                for (case, expected_match) in cases {
                    let found = !self
                        .scan_table(table, None, case.as_bytes(), Some(index))
                        .is_empty();
                    if found != expected_match {
                        failures.push(RuleTestFailure {
                            rule_id: rule.def.info.id.clone(),
                            language: lang,
                            case: case.clone(),
                            expected_match,
                        });
                    }
                }
            }
        }
        failures
    }
}
