//! Parsing and validation of rule files (format documented in `rules/secrets.toml`).
//!
//! Fields are read by hand from a `toml::Table` rather than through serde derive so that
//! every error can name the rule id and the field, which serde's messages cannot.

use crate::{Confidence, RuleError, Severity};
use toml::{Table, Value};

/// The embedded rule set.
pub(crate) const BUILTIN_RULES: &str = include_str!("../rules/secrets.toml");

/// Default `stopwords-max-length` when a file's allowlist does not set one.
const DEFAULT_STOPWORD_MAX_LEN: usize = 64;

/// A named check implemented in code (`check = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// First segment base64url-decodes to a JSON object with an `alg` other than `none`.
    Jwt,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawAllowlist {
    pub regexes: Vec<String>,
    pub match_regexes: Vec<String>,
    pub stopwords: Vec<String>,
}

/// One rule as written in the file, validated except for regex compilation.
#[derive(Debug, Clone)]
pub(crate) struct RawRule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub help: String,
    pub severity: Severity,
    pub confidence: Confidence,
    pub cwe: u32,
    pub keywords: Vec<String>,
    pub regex: String,
    pub secret_group: Option<usize>,
    pub entropy: Option<f64>,
    pub entropy_hex: Option<f64>,
    pub check: Option<Check>,
    pub allowlist: RawAllowlist,
    // Only the tests read these, but they are part of the format and validated always.
    #[cfg_attr(not(test), allow(dead_code))]
    pub examples: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub counter_examples: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RawGlobal {
    pub regexes: Vec<String>,
    pub stopwords: Vec<String>,
    pub stopword_max_len: usize,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RawFile {
    /// `None` when the file has no `[allowlist]` table.
    pub global: Option<RawGlobal>,
    pub rules: Vec<RawRule>,
}

pub(crate) fn parse_file(text: &str) -> Result<RawFile, RuleError> {
    let table: Table = toml::from_str(text)
        .map_err(|e| RuleError::new(None, "toml", e.to_string().trim_end().to_owned()))?;
    let mut global = None;
    let mut rules = Vec::new();
    for (key, value) in &table {
        match key.as_str() {
            "allowlist" => {
                let t = value
                    .as_table()
                    .ok_or_else(|| RuleError::new(None, "allowlist", "must be a table"))?;
                global = Some(parse_global(t)?);
            }
            "rules" => {
                let arr = value.as_array().ok_or_else(|| {
                    RuleError::new(None, "rules", "must be an array of tables ([[rules]])")
                })?;
                for (i, v) in arr.iter().enumerate() {
                    let t = v.as_table().ok_or_else(|| {
                        RuleError::new(None, format!("rules[{i}]"), "must be a table ([[rules]])")
                    })?;
                    rules.push(parse_rule(t, i)?);
                }
            }
            other => {
                return Err(RuleError::new(
                    None,
                    other,
                    "unknown top-level key (expected `allowlist` or `rules`)",
                ));
            }
        }
    }
    // BTreeSet, not HashSet: a HashSet seeds itself from the OS, which in wasm is a WASI
    // import this pure crate should not need.
    let mut seen = std::collections::BTreeSet::new();
    for r in &rules {
        if !seen.insert(r.id.as_str()) {
            return Err(RuleError::new(Some(&r.id), "id", "duplicate rule id"));
        }
    }
    Ok(RawFile { global, rules })
}

fn parse_global(t: &Table) -> Result<RawGlobal, RuleError> {
    let mut g = RawGlobal {
        regexes: Vec::new(),
        stopwords: Vec::new(),
        stopword_max_len: DEFAULT_STOPWORD_MAX_LEN,
        paths: Vec::new(),
    };
    let f = Fields {
        rule: None,
        prefix: "allowlist.",
    };
    for (key, value) in t {
        match key.as_str() {
            "description" => {
                f.string(key, value)?;
            }
            "regexes" => g.regexes = f.strings(key, value)?,
            "stopwords" => g.stopwords = f.stopwords(key, value)?,
            "stopwords-max-length" => g.stopword_max_len = f.uint(key, value)?,
            "paths" => g.paths = f.strings(key, value)?,
            other => return Err(f.err(other, "unknown field")),
        }
    }
    Ok(g)
}

fn parse_rule(t: &Table, index: usize) -> Result<RawRule, RuleError> {
    let id = match t.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(RuleError::new(
                None,
                format!("rules[{index}].id"),
                "must be a string",
            ));
        }
        None => {
            return Err(RuleError::new(
                None,
                format!("rules[{index}].id"),
                "missing",
            ));
        }
    };
    if !is_kebab_case(&id) {
        return Err(RuleError::new(
            Some(&id),
            "id",
            "must be kebab-case: lowercase ASCII letters and digits separated by single dashes",
        ));
    }
    let f = Fields {
        rule: Some(&id),
        prefix: "",
    };
    let required = |name: &str| t.get(name).ok_or_else(|| f.err(name, "missing"));

    let title = f.nonempty(required("title")?, "title")?;
    let description = f.nonempty(required("description")?, "description")?;
    let help = f.nonempty(required("help")?, "help")?;
    let severity = {
        let s = f.string("severity", required("severity")?)?;
        s.parse::<Severity>().ok().ok_or_else(|| {
            f.err(
                "severity",
                format!("`{s}` is not one of info, low, medium, high, critical"),
            )
        })?
    };
    let confidence = {
        let s = f.string("confidence", required("confidence")?)?;
        s.parse::<Confidence>().ok().ok_or_else(|| {
            f.err(
                "confidence",
                format!("`{s}` is not one of low, medium, high"),
            )
        })?
    };
    let regex = f.nonempty(required("regex")?, "regex")?;

    let mut rule = RawRule {
        id: id.clone(),
        title,
        description,
        help,
        severity,
        confidence,
        cwe: 798,
        keywords: Vec::new(),
        regex,
        secret_group: None,
        entropy: None,
        entropy_hex: None,
        check: None,
        allowlist: RawAllowlist::default(),
        examples: Vec::new(),
        counter_examples: Vec::new(),
    };
    for (key, value) in t {
        match key.as_str() {
            "id" | "title" | "description" | "help" | "severity" | "confidence" | "regex" => {}
            "cwe" => {
                let n = f.uint(key, value)?;
                rule.cwe = u32::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| f.err(key, "must be a positive CWE number"))?;
            }
            "keywords" => {
                let kws = f.strings(key, value)?;
                for (i, k) in kws.iter().enumerate() {
                    if k.is_empty() {
                        return Err(f.err(&format!("keywords[{i}]"), "must not be empty"));
                    }
                    if k.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Err(f.err(
                            &format!("keywords[{i}]"),
                            format!(
                                "`{k}` must be lowercase (keywords match ASCII case-insensitively)"
                            ),
                        ));
                    }
                }
                rule.keywords = kws;
            }
            "secret-group" => rule.secret_group = Some(f.uint(key, value)?),
            "entropy" => rule.entropy = Some(f.entropy(key, value)?),
            "entropy-hex" => rule.entropy_hex = Some(f.entropy(key, value)?),
            "check" => {
                let s = f.string(key, value)?;
                rule.check = Some(match s.as_str() {
                    "jwt" => Check::Jwt,
                    other => {
                        return Err(f.err(key, format!("unknown check `{other}` (known: jwt)")));
                    }
                });
            }
            "allowlist" => {
                let at = value
                    .as_table()
                    .ok_or_else(|| f.err(key, "must be a table"))?;
                let af = Fields {
                    rule: Some(&id),
                    prefix: "allowlist.",
                };
                for (k, v) in at {
                    match k.as_str() {
                        "description" => {
                            af.string(k, v)?;
                        }
                        "regexes" => rule.allowlist.regexes = af.strings(k, v)?,
                        "match-regexes" => rule.allowlist.match_regexes = af.strings(k, v)?,
                        "stopwords" => rule.allowlist.stopwords = af.stopwords(k, v)?,
                        other => return Err(af.err(other, "unknown field")),
                    }
                }
            }
            "examples" => rule.examples = f.strings(key, value)?,
            "counter-examples" => rule.counter_examples = f.strings(key, value)?,
            other => return Err(f.err(other, "unknown field")),
        }
    }
    Ok(rule)
}

fn is_kebab_case(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Typed access to fields, producing errors that name the rule and the field.
struct Fields<'a> {
    rule: Option<&'a str>,
    prefix: &'static str,
}

impl Fields<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> RuleError {
        RuleError::new(self.rule, format!("{}{field}", self.prefix), message)
    }

    fn string(&self, field: &str, v: &Value) -> Result<String, RuleError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.err(field, "must be a string"))
    }

    fn nonempty(&self, v: &Value, field: &str) -> Result<String, RuleError> {
        let s = self.string(field, v)?;
        if s.trim().is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        Ok(s)
    }

    fn uint(&self, field: &str, v: &Value) -> Result<usize, RuleError> {
        v.as_integer()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(field, "must be a non-negative integer"))
    }

    fn entropy(&self, field: &str, v: &Value) -> Result<f64, RuleError> {
        let e = match v {
            Value::Float(x) => *x,
            Value::Integer(n) => *n as f64,
            _ => return Err(self.err(field, "must be a number")),
        };
        if !(0.0..=8.0).contains(&e) {
            return Err(self.err(field, "must be between 0 and 8 bits per byte"));
        }
        Ok(e)
    }

    fn strings(&self, field: &str, v: &Value) -> Result<Vec<String>, RuleError> {
        let arr = v
            .as_array()
            .ok_or_else(|| self.err(field, "must be an array of strings"))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.err(&format!("{field}[{i}]"), "must be a string"))
            })
            .collect()
    }

    fn stopwords(&self, field: &str, v: &Value) -> Result<Vec<String>, RuleError> {
        let words = self.strings(field, v)?;
        if let Some(i) = words.iter().position(|w| w.is_empty()) {
            return Err(self.err(&format!("{field}[{i}]"), "must not be empty"));
        }
        Ok(words)
    }
}
