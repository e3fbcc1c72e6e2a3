//! The YAML rule format: parsing, validation and error reporting.
//!
//! Parsing is typed (`serde`, `deny_unknown_fields`) so that what is accepted is exactly what
//! `docs/code-pattern-rules.md` documents. Only when that fails do we look at the file again as
//! an untyped tree, to name the rule and the field and to suggest a fix: the happy path, which
//! includes loading the bundled rules in every fresh plugin instance, parses once.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::glob::Glob;
use crate::{Confidence, Language, RuleInfo, Severity};

/// Fields of a rule, in documentation order (also used for "did you mean" suggestions).
const RULE_FIELDS: &[&str] = &[
    "id",
    "message",
    "description",
    "help",
    "severity",
    "confidence",
    "cwe",
    "languages",
    "patterns",
    "pattern-not",
    "context",
    "keywords",
    "paths",
    "tests",
];
const REQUIRED_FIELDS: &[&str] = &["id", "message", "severity", "languages", "patterns"];
const PATHS_FIELDS: &[&str] = &["include", "exclude"];
const TESTS_FIELDS: &[&str] = &["match", "no-match"];
const CONTEXT_FIELDS: &[&str] = &["patterns", "lines-before"];
const MAX_ID_LEN: usize = 100;
/// The largest `context.lines-before`: the context window stays small, so checking it on a
/// candidate line stays cheap, and a word further away is rarely about the matched line.
const MAX_CONTEXT_LINES: u32 = 20;

/// An error in a rules file. Its `Display` names the file, the rule (by id, or by position when
/// it has none), the field, what is wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(Box<ErrorDetail>);

/// Boxed so that `Result<_, RuleError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorDetail {
    file: String,
    rule_id: Option<String>,
    rule_index: Option<usize>,
    field: Option<String>,
    problem: String,
    fix: String,
}

impl RuleError {
    fn new(file: &str, problem: impl Into<String>, fix: impl Into<String>) -> RuleError {
        RuleError(Box::new(ErrorDetail {
            file: file.to_string(),
            rule_id: None,
            rule_index: None,
            field: None,
            problem: problem.into(),
            fix: fix.into(),
        }))
    }

    fn rule(mut self, index: usize, id: Option<&str>) -> RuleError {
        self.0.rule_index = Some(index);
        self.0.rule_id = id.map(str::to_string);
        self
    }

    fn rule_named(mut self, id: &str) -> RuleError {
        self.0.rule_id = Some(id.to_string());
        self
    }

    fn field(mut self, field: impl Into<String>) -> RuleError {
        self.0.field = Some(field.into());
        self
    }

    /// The name of the rules file, as passed to [`crate::RuleSet::from_yaml_files`].
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// The id of the offending rule, if the error concerns a rule that has one.
    pub fn rule_id(&self) -> Option<&str> {
        self.0.rule_id.as_deref()
    }

    /// The offending field (`severity`, `patterns[2]`, `paths.include[0]`, ...), if any.
    pub fn field_name(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// What is wrong.
    pub fn problem(&self) -> &str {
        &self.0.problem
    }

    /// What to do about it.
    pub fn fix(&self) -> &str {
        &self.0.fix
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(f, "rules file `{}`", e.file)?;
        match (&e.rule_id, e.rule_index) {
            (Some(id), _) => write!(f, ", rule `{id}`")?,
            (None, Some(i)) => write!(f, ", rule #{} (no id)", i + 1)?,
            (None, None) => {}
        }
        if let Some(field) = &e.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", e.problem)?;
        if !e.fix.is_empty() {
            write!(f, ". Fix: {}", e.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    id: String,
    message: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    help: Option<String>,
    severity: Severity,
    #[serde(default)]
    confidence: Confidence,
    #[serde(default)]
    cwe: Vec<u32>,
    languages: Vec<String>,
    patterns: Vec<String>,
    #[serde(default)]
    pattern_not: Vec<String>,
    #[serde(default)]
    context: Option<RawContext>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    paths: Option<RawPaths>,
    #[serde(default)]
    tests: Option<RawTests>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping `{ patterns: [...], lines-before: N }`"
)]
struct RawContext {
    patterns: Vec<String>,
    #[serde(default)]
    lines_before: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTests {
    #[serde(default, rename = "match")]
    matches: Vec<String>,
    #[serde(default, rename = "no-match")]
    no_match: Vec<String>,
}

/// `paths:` of a rule, compiled.
#[derive(Debug, Clone)]
pub(crate) struct PathFilter {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl PathFilter {
    /// `path` must already be normalized with [`crate::glob::normalize`].
    pub(crate) fn allows(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.is_match(path)))
            && !self.exclude.iter().any(|g| g.is_match(path))
    }
}

/// `context:` of a rule: a candidate line is only reported if one of `patterns` matches that
/// line or one of the `lines_before` lines above it.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) patterns: Vec<String>,
    pub(crate) lines_before: usize,
}

/// `tests:` of a rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleTests {
    pub(crate) matches: Vec<String>,
    pub(crate) no_match: Vec<String>,
}

/// A validated rule whose regexes are not compiled yet.
#[derive(Debug, Clone)]
pub(crate) struct RuleDef {
    pub(crate) info: RuleInfo,
    pub(crate) patterns: Vec<String>,
    pub(crate) pattern_not: Vec<String>,
    pub(crate) context: Option<Context>,
    pub(crate) keywords: Vec<String>,
    pub(crate) paths: Option<PathFilter>,
    pub(crate) tests: RuleTests,
}

/// Builds a regex the way the engine uses it: over bytes, in ASCII mode (`\w`, `\b`, `\s`,
/// `(?i)` are ASCII-only; `.` and negated classes match any byte, so non-UTF-8 files need no
/// decoding), `^`/`$` at line boundaries and `\r\n` treated as one line end (so `$` matches
/// before the `\r` of CRLF files and `.` never eats the `\r`). ASCII mode keeps the NFAs small
/// (compiling is ~10x faster) and lets the lazy DFA run on text containing non-ASCII bytes,
/// where Unicode word boundaries would force the slow fallback engines; a pattern can opt back
/// into Unicode with `(?u)`.
pub(crate) fn build_regex(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .multi_line(true)
        .crlf(true)
        .build()
}

/// Parses and validates one rules file. `check_regexes` compiles every regex once to report
/// errors against the exact pattern; it is skipped for the bundled rules, whose regexes a test
/// compiles, so that loading them stays cheap in every fresh plugin instance.
pub(crate) fn parse_file(
    file: &str,
    text: &str,
    check_regexes: bool,
) -> Result<Vec<RuleDef>, RuleError> {
    let raw: RawFile = match serde_yaml_ng::from_str(text) {
        Ok(raw) => raw,
        Err(err) => return Err(explain_parse_error(file, text, &err)),
    };
    let mut seen = HashSet::new();
    let mut defs = Vec::with_capacity(raw.rules.len());
    for (index, rule) in raw.rules.into_iter().enumerate() {
        let def = validate_rule(file, index, rule, check_regexes)?;
        if !seen.insert(def.info.id.clone()) {
            return Err(RuleError::new(
                file,
                "this rule id is used twice in the file",
                "give every rule its own id",
            )
            .rule(index, Some(&def.info.id))
            .field("id"));
        }
        defs.push(def);
    }
    Ok(defs)
}

fn validate_rule(
    file: &str,
    index: usize,
    raw: RawRule,
    check_regexes: bool,
) -> Result<RuleDef, RuleError> {
    let id = raw.id.clone();
    let err = |field: &str, problem: String, fix: &str| {
        RuleError::new(file, problem, fix)
            .rule(index, Some(&id))
            .field(field)
    };
    if !is_valid_id(&raw.id) {
        return Err(err(
            "id",
            format!("`{}` is not a valid rule id", raw.id),
            "use lower-case kebab-case segments separated by dots, at most 100 characters, \
             conventionally `<language>.<weakness>` such as `python.sql-concat`",
        ));
    }
    if raw.message.trim().is_empty() {
        return Err(err(
            "message",
            "the message is empty".to_string(),
            "say what is wrong on the matched line and why it matters",
        ));
    }
    for (field, value) in [("description", &raw.description), ("help", &raw.help)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(err(
                field,
                format!("`{field}` is empty"),
                "write the text or remove the field",
            ));
        }
    }
    if let Some(pos) = raw.cwe.iter().position(|&c| c == 0) {
        return Err(err(
            &format!("cwe[{pos}]"),
            "0 is not a CWE id".to_string(),
            "use the number of the CWE entry, e.g. `cwe: [89]` for CWE-89",
        ));
    }

    if raw.languages.is_empty() {
        return Err(err(
            "languages",
            "the list is empty".to_string(),
            &format!("list at least one of: {}", known_languages()),
        ));
    }
    let mut languages = Vec::with_capacity(raw.languages.len());
    for (i, name) in raw.languages.iter().enumerate() {
        match Language::from_name(name) {
            Some(lang) if !languages.contains(&lang) => languages.push(lang),
            Some(_) => {}
            None => {
                let hint = match name.to_ascii_lowercase().as_str() {
                    "cpp" | "c++" | "cxx" => " (C++ files belong to `c`)",
                    "js" | "node" => " (use `javascript`)",
                    "ts" => " (use `typescript`)",
                    "py" => " (use `python`)",
                    _ => "",
                };
                return Err(err(
                    &format!("languages[{i}]"),
                    format!("unknown language `{name}`{hint}"),
                    &format!("use one of: {}", known_languages()),
                ));
            }
        }
    }

    if raw.patterns.is_empty() {
        return Err(err(
            "patterns",
            "the list is empty".to_string(),
            "give at least one regex; a line matches if any of them matches",
        ));
    }
    let no_context = Vec::new();
    let context_patterns = raw.context.as_ref().map_or(&no_context, |c| &c.patterns);
    if raw.context.is_some() && context_patterns.is_empty() {
        return Err(err(
            "context.patterns",
            "the list is empty".to_string(),
            "give at least one regex that must match the matched line or a line above it, or \
             remove `context`",
        ));
    }
    if let Some(lines) = raw.context.as_ref().map(|c| c.lines_before)
        && lines > MAX_CONTEXT_LINES
    {
        return Err(err(
            "context.lines-before",
            format!("{lines} lines is more than the maximum of {MAX_CONTEXT_LINES}"),
            &format!(
                "use a number from 0 (the matched line only) to {MAX_CONTEXT_LINES}; context \
                 far from the matched line is rarely about it"
            ),
        ));
    }
    for (field, list) in [
        ("patterns", &raw.patterns),
        ("pattern-not", &raw.pattern_not),
        ("context.patterns", context_patterns),
    ] {
        // `pattern-not` may match an empty line (it only drops lines); the others may not.
        let must_not_match_empty = field != "pattern-not";
        for (i, pattern) in list.iter().enumerate() {
            if pattern.is_empty() {
                let effect = if field == "context.patterns" {
                    "every line would have the context"
                } else {
                    "would match every line"
                };
                return Err(err(
                    &format!("{field}[{i}]"),
                    format!("the regex is empty and {effect}"),
                    "remove it or write the regex",
                ));
            }
            if !check_regexes {
                continue;
            }
            match build_regex(pattern) {
                Ok(re) => {
                    if must_not_match_empty && re.is_match(b"") {
                        let effect = if field == "patterns" {
                            "it would flag every line"
                        } else {
                            "every line would have the context"
                        };
                        return Err(err(
                            &format!("{field}[{i}]"),
                            format!("`{pattern}` matches an empty line, so {effect}"),
                            "make the regex require at least one character, e.g. replace `x*` by `x+`",
                        ));
                    }
                }
                Err(e) => {
                    return Err(err(
                        &format!("{field}[{i}]"),
                        format!("invalid regex: {}", one_line(&e.to_string())),
                        "fix the regex (Rust `regex` syntax: no look-around or backreferences; \
                         in single-quoted YAML write a `'` as `''`)",
                    ));
                }
            }
        }
    }
    for (i, keyword) in raw.keywords.iter().enumerate() {
        if keyword.trim().is_empty() {
            return Err(err(
                &format!("keywords[{i}]"),
                "the keyword is empty".to_string(),
                "remove it; an empty keyword would disable the prefilter",
            ));
        }
    }

    let paths = match raw.paths {
        None => None,
        Some(paths) => {
            let mut compiled = PathFilter {
                include: Vec::new(),
                exclude: Vec::new(),
            };
            for (name, globs, out) in [
                ("include", &paths.include, &mut compiled.include),
                ("exclude", &paths.exclude, &mut compiled.exclude),
            ] {
                for (i, g) in globs.iter().enumerate() {
                    let glob = Glob::new(g).map_err(|problem| {
                        err(
                            &format!("paths.{name}[{i}]"),
                            format!("invalid glob `{g}`: {problem}"),
                            "use `*` (within a directory), `**` (across directories) and `?`",
                        )
                    })?;
                    out.push(glob);
                }
            }
            Some(compiled)
        }
    };
    let tests = raw
        .tests
        .map(|t| RuleTests {
            matches: t.matches,
            no_match: t.no_match,
        })
        .unwrap_or_default();

    Ok(RuleDef {
        info: RuleInfo {
            id: raw.id,
            message: raw.message,
            description: raw.description.unwrap_or_default(),
            help: raw.help.unwrap_or_default(),
            severity: raw.severity,
            confidence: raw.confidence,
            cwe: raw.cwe,
            languages,
            source: file.to_string(),
        },
        patterns: raw.patterns,
        pattern_not: raw.pattern_not,
        context: raw.context.map(|c| Context {
            patterns: c.patterns,
            lines_before: c.lines_before as usize,
        }),
        keywords: raw.keywords,
        paths,
        tests,
    })
}

fn is_valid_id(id: &str) -> bool {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    id.len() <= MAX_ID_LEN && id.contains('.') && id.split('.').all(segment_ok)
}

fn known_languages() -> String {
    Language::ALL
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns a failed typed parse into an error that names the rule and the field. The untyped
/// tree gives the rule id and lets us check field names ourselves (with a suggestion); for
/// type errors serde_yaml_ng's message starts with the path (`rules[3].cwe[0]: ...`), which we
/// split into rule and field.
fn explain_parse_error(file: &str, text: &str, err: &serde_yaml_ng::Error) -> RuleError {
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(doc) => doc,
        Err(syntax) => {
            return RuleError::new(
                file,
                format!("not valid YAML: {syntax}"),
                "check indentation and quoting; regexes are easiest in single quotes, where a `'` \
                 is written `''`",
            );
        }
    };
    if let Some(structural) = check_structure(file, &doc) {
        return structural;
    }
    let message = err.to_string();
    let Some(rest) = message.strip_prefix("rules[") else {
        return RuleError::new(
            file,
            message,
            "the file must be a mapping with a `rules:` list of rules",
        );
    };
    let Some((index, rest)) = rest
        .split_once(']')
        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
    else {
        return RuleError::new(file, message.clone(), "see docs/code-pattern-rules.md");
    };
    let id = rule_id_at(&doc, index);
    let (field, problem) = match rest.strip_prefix('.') {
        Some(path) => match path.split_once(": ") {
            Some((field, problem)) => (Some(field.to_string()), problem.to_string()),
            None => (None, path.to_string()),
        },
        None => (None, rest.trim_start_matches(':').trim().to_string()),
    };
    let fix = match field
        .as_deref()
        .map(|f| f.split(['[', '.']).next().unwrap_or(f))
    {
        Some("severity") => "use one of: info, low, medium, high, critical",
        Some("confidence") => "use one of: low, medium, high",
        Some("cwe") => "write a list of CWE numbers, e.g. `cwe: [89]`",
        Some("languages" | "patterns" | "pattern-not" | "keywords") => {
            "write a list of strings, e.g. `[python]` or `['regex']`"
        }
        Some("paths") => "write `paths: { include: ['glob', ...], exclude: ['glob', ...] }`",
        Some("context") => {
            "write `context: { patterns: ['regex', ...], lines-before: N }` with N from 0 to 20"
        }
        Some("tests") => "write `tests: { match: ['line', ...], no-match: ['line', ...] }`",
        _ => "see docs/code-pattern-rules.md for the rule format",
    };
    let mut error = RuleError::new(file, problem, fix).rule(index, id.as_deref());
    if let Some(field) = field {
        error = error.field(field);
    }
    error
}

fn rule_id_at(doc: &Value, index: usize) -> Option<String> {
    doc.get("rules")?
        .get(index)?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// Checks the shape of the document: the top-level mapping, the rule list, field names and
/// required fields. Returns `None` when the problem is elsewhere (a value of the wrong type).
fn check_structure(file: &str, doc: &Value) -> Option<RuleError> {
    let shape_fix = "start the file with `rules:` followed by a list of rules";
    let Some(top) = doc.as_mapping() else {
        return Some(RuleError::new(
            file,
            "the file is not a YAML mapping",
            shape_fix,
        ));
    };
    for key in top.keys() {
        let name = key_name(key);
        if name != "rules" {
            return Some(
                RuleError::new(
                    file,
                    format!("unknown top-level field `{name}`"),
                    "the only top-level field is `rules`",
                )
                .field(name),
            );
        }
    }
    let Some(rules) = top.get("rules") else {
        return Some(RuleError::new(file, "there is no `rules:` list", shape_fix).field("rules"));
    };
    let Some(rules) = rules.as_sequence() else {
        return Some(
            RuleError::new(
                file,
                "`rules` is not a list",
                "write each rule as a `- id: ...` item",
            )
            .field("rules"),
        );
    };
    for (index, rule) in rules.iter().enumerate() {
        let id = rule.get("id").and_then(Value::as_str);
        let Some(map) = rule.as_mapping() else {
            return Some(
                RuleError::new(
                    file,
                    "the rule is not a mapping",
                    "write the rule as `- id: ...` followed by its fields",
                )
                .rule(index, id),
            );
        };
        for key in map.keys() {
            let name = key_name(key);
            if !RULE_FIELDS.contains(&name.as_str()) {
                return Some(unknown_field(file, &name, RULE_FIELDS).rule(index, id));
            }
        }
        for required in REQUIRED_FIELDS {
            if !map.contains_key(*required) {
                return Some(
                    RuleError::new(
                        file,
                        format!("the required field `{required}` is missing"),
                        format!(
                            "add `{required}:` (required: {})",
                            REQUIRED_FIELDS.join(", ")
                        ),
                    )
                    .rule(index, id)
                    .field(*required),
                );
            }
        }
        for (field, known) in [
            ("paths", PATHS_FIELDS),
            ("tests", TESTS_FIELDS),
            ("context", CONTEXT_FIELDS),
        ] {
            if let Some(sub) = map.get(field).and_then(Value::as_mapping) {
                for key in sub.keys() {
                    let name = key_name(key);
                    if !known.contains(&name.as_str()) {
                        return Some(
                            unknown_field(file, &name, known)
                                .rule(index, id)
                                .field(format!("{field}.{name}")),
                        );
                    }
                }
            }
        }
        if let Some(context) = map.get("context").and_then(Value::as_mapping)
            && !context.contains_key("patterns")
        {
            return Some(
                RuleError::new(
                    file,
                    "the required field `context.patterns` is missing",
                    "add `patterns:` to `context` (the regexes of which one must match the \
                     matched line or a line above it), or remove `context`",
                )
                .rule(index, id)
                .field("context.patterns"),
            );
        }
    }
    None
}

fn unknown_field(file: &str, name: &str, known: &[&str]) -> RuleError {
    let suggestion = closest(name, known)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    RuleError::new(
        file,
        format!("unknown field `{name}`"),
        format!(
            "{suggestion}remove or rename it; known fields: {}",
            known.join(", ")
        ),
    )
    .field(name)
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".to_string()),
    }
}

/// The known name with the smallest edit distance, if it is close enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A rule id defined in two files (or in a file and the bundled rules).
pub(crate) fn duplicate_error(file: &str, id: &str, first_file: &str) -> RuleError {
    RuleError::new(
        file,
        format!("rule id `{id}` is already defined in `{first_file}`"),
        if first_file.starts_with("builtin/") {
            "bundled rules cannot be redefined; give your rule its own id (for example with your \
             organisation as a prefix, `acme.python.sql-concat`)"
        } else {
            "give every rule its own id"
        },
    )
    .rule_named(id)
    .field("id")
}
