//! The compiled scanner.

use crate::checks::{check_jwt, is_placeholder_shape, shannon_entropy};
use crate::rules::{self, Check, RawFile, RawGlobal, RawRule};
use crate::text::{Cursor, snippet};
use crate::{Options, RuleError, RuleInfo, SecretMatch};
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::bytes::{CaptureLocations, Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

/// Compile-time limit for one rule's regex program. Generous for hand-written rules, but
/// stops a custom rule like `a{1000}{1000}` from eating memory.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// A compiled rule set. Construction parses the rules and builds the keyword automaton
/// (about 2 ms natively for the built-in rules); each built-in rule's regex is compiled the
/// first time a file needs it. Build one and share it: it is `Send + Sync`, and
/// [`Scanner::scan`] takes `&self`.
#[derive(Debug)]
pub struct Scanner {
    infos: Vec<RuleInfo>,
    rules: Vec<CompiledRule>,
    /// All keywords of all rules, ASCII case-insensitive; `None` if no rule has one.
    keywords: Option<AhoCorasick>,
    /// Keyword pattern index -> rules gated by it.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: they run on every file.
    ungated_rules: Vec<usize>,
    /// Number of rules gated by at least one keyword.
    gated_count: usize,
    allow: GlobalAllow,
}

#[derive(Debug)]
struct CompiledRule {
    regex: LazyRegex,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    /// Used instead of `entropy` for all-hex secrets.
    entropy_hex: Option<f64>,
    check: Option<Check>,
    allow_regexes: LazySet,
    allow_match: LazySet,
    stopwords: Option<AhoCorasick>,
}

#[derive(Debug)]
struct GlobalAllow {
    regexes: LazySet,
    extra: LazySet,
    stopwords: Option<AhoCorasick>,
    stopword_max_len: usize,
    paths: LazySet,
}

/// A regex compiled on first use. The built-in rules are compiled lazily because a scan
/// needs only the few rules whose keywords occur, and a plugin that starts a fresh
/// instance per file would otherwise compile all of them for every file. Rule files from
/// outside are compiled eagerly (`force`) so that errors surface at construction.
#[derive(Debug)]
struct LazyRegex {
    pattern: String,
    cell: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    fn new(pattern: &str) -> Self {
        LazyRegex {
            pattern: pattern.to_owned(),
            cell: OnceLock::new(),
        }
    }

    /// The compiled regex; `None` if it does not compile, which only a rule file that
    /// skipped validation can cause (the built-in one is validated by a unit test).
    fn get(&self) -> Option<&Regex> {
        self.cell
            .get_or_init(|| build_regex(&self.pattern).ok())
            .as_ref()
    }

    /// Compiles now if not yet done, returning the compile error as text.
    fn force(&self) -> Result<&Regex, String> {
        match self.cell.get_or_init(|| build_regex(&self.pattern).ok()) {
            Some(r) => Ok(r),
            // Compile again only to describe the error (this path ends the construction).
            None => Err(build_regex(&self.pattern)
                .err()
                .map_or_else(|| "does not compile".to_owned(), |e| e.to_string())),
        }
    }
}

/// A set of regexes compiled on first use (see [`LazyRegex`]); an empty set matches nothing.
#[derive(Debug)]
struct LazySet {
    patterns: Vec<String>,
    cell: OnceLock<Option<RegexSet>>,
}

impl LazySet {
    fn new(patterns: &[String]) -> Self {
        LazySet {
            patterns: patterns.to_vec(),
            cell: OnceLock::new(),
        }
    }

    fn is_match(&self, text: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        self.cell
            .get_or_init(|| build_set(&self.patterns).ok())
            .as_ref()
            .is_some_and(|s| s.is_match(text))
    }

    /// Compiles now; the error names the offending entry as `field[i]`.
    fn force(&self, rule: Option<&str>, field: &str) -> Result<(), RuleError> {
        if self.patterns.is_empty() || matches!(self.cell.get(), Some(Some(_))) {
            return Ok(());
        }
        let set = build_set(&self.patterns).map_err(|set_err| {
            // Name the offending entry: compile them one by one (only on this error path).
            for (i, p) in self.patterns.iter().enumerate() {
                if let Err(e) = build_regex(p) {
                    return RuleError::new(rule, format!("{field}[{i}]"), e.to_string());
                }
            }
            RuleError::new(rule, field, set_err.to_string())
        })?;
        let _ = self.cell.set(Some(set));
        Ok(())
    }
}

/// A secret found by one rule, before overlaps between rules are resolved.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    rule: usize,
    span: Range<usize>,
    entropy: Option<f64>,
}

impl Scanner {
    /// The built-in rules with default options.
    ///
    /// # Panics
    /// Only if the embedded rule file is broken, which a unit test rules out.
    pub fn builtin() -> Scanner {
        match Scanner::with_options(&Options::default()) {
            Ok(s) => s,
            Err(e) => panic!("embedded rules/secrets.toml is invalid: {e}"),
        }
    }

    /// The built-in rules with `opts` applied. The built-in regexes are compiled lazily,
    /// on the first file that needs them (a unit test compiles and validates all of them
    /// eagerly, so this cannot hide a broken rule); the options are validated now.
    pub fn with_options(opts: &Options) -> Result<Scanner, RuleError> {
        Scanner::load(rules::BUILTIN_RULES, opts, false)
    }

    /// Custom rules in the format of `rules/secrets.toml`, instead of the built-in ones.
    /// A file without an `[allowlist]` table gets the built-in global allowlist
    /// (placeholders, templates, fixture paths), since custom rules need it just as much.
    /// Every regex is compiled now, and errors name the rule id and the field at fault.
    pub fn from_toml(text: &str, opts: &Options) -> Result<Scanner, RuleError> {
        Scanner::load(text, opts, true)
    }

    fn load(text: &str, opts: &Options, validate: bool) -> Result<Scanner, RuleError> {
        let file = rules::parse_file(text)?;
        let global = match file.global.clone() {
            Some(g) => g,
            None => builtin_global()?,
        };
        Scanner::compile(file, global, opts, validate)
    }

    /// The enabled rules, in rule-file order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    /// Scans one file. `path` is only matched against the path allowlist (use `/`
    /// separators; `\` is accepted). `content` may be any bytes. Results are ordered by
    /// position, then rule id.
    pub fn scan(&self, path: &str, content: &[u8]) -> Vec<SecretMatch> {
        self.scan_spans(path, content)
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    /// [`Scanner::scan`] plus each secret's byte range in `content`, for callers that
    /// redact in place (the proxy's `secret-guard`) and for the redaction tests.
    pub fn scan_spans(&self, path: &str, content: &[u8]) -> Vec<(SecretMatch, Range<usize>)> {
        if content.is_empty() || self.path_allowed(path) {
            return Vec::new();
        }
        let mut candidates = Vec::new();
        for r in self.selected_rules(content) {
            self.run_rule(r, content, &mut candidates);
        }
        let winners = self.resolve_overlaps(candidates);
        self.build_matches(content, winners)
    }

    fn path_allowed(&self, path: &str) -> bool {
        let paths = &self.allow.paths;
        if path.contains('\\') {
            paths.is_match(path.replace('\\', "/").as_bytes())
        } else {
            paths.is_match(path.as_bytes())
        }
    }

    /// Rule indices (ascending) whose keywords occur in `content`, plus ungated rules.
    /// One pass of the keyword automaton; stops early once every gated rule is selected.
    pub(crate) fn selected_rules(&self, content: &[u8]) -> Vec<usize> {
        let mut selected = vec![false; self.rules.len()];
        for &r in &self.ungated_rules {
            selected[r] = true;
        }
        if let Some(ac) = &self.keywords {
            let mut seen = vec![false; self.keyword_rules.len()];
            let mut remaining = self.gated_count;
            for m in ac.find_overlapping_iter(content) {
                let k = m.pattern().as_usize();
                if std::mem::replace(&mut seen[k], true) {
                    continue;
                }
                for &r in &self.keyword_rules[k] {
                    if !std::mem::replace(&mut selected[r], true) {
                        remaining -= 1;
                    }
                }
                if remaining == 0 {
                    break;
                }
            }
        }
        selected
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
            .collect()
    }

    pub(crate) fn run_rule(&self, index: usize, content: &[u8], out: &mut Vec<Candidate>) {
        let rule = &self.rules[index];
        let Some(regex) = rule.regex.get() else {
            return;
        };
        let mut locs = regex.capture_locations();
        let mut at = 0;
        while at <= content.len() {
            let Some(m) = regex.captures_read_at(&mut locs, content, at) else {
                break;
            };
            // Rules cannot match the empty string (checked at compile time); stay safe anyway.
            at = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + 1
            };
            let Some(span) = secret_span(rule.secret_group, &locs) else {
                continue;
            };
            if span.is_empty() {
                continue;
            }
            let secret = &content[span.clone()];
            if let Some(entropy) = self.accept(rule, secret, m.as_bytes()) {
                out.push(Candidate {
                    rule: index,
                    span,
                    entropy,
                });
            }
        }
    }

    /// Decides whether a secret survives the rule's and the global filters. `Some(e)`
    /// keeps it, with its entropy when the rule has an entropy gate.
    fn accept(&self, rule: &CompiledRule, secret: &[u8], whole: &[u8]) -> Option<Option<f64>> {
        if is_placeholder_shape(secret) {
            return None;
        }
        let min_entropy = match rule.entropy_hex {
            Some(hex) if secret.iter().all(u8::is_ascii_hexdigit) => Some(hex),
            _ => rule.entropy,
        };
        let entropy = match min_entropy {
            Some(min) => {
                let e = shannon_entropy(secret);
                if e < min {
                    return None;
                }
                Some((e * 1000.0).round() / 1000.0)
            }
            None => None,
        };
        if rule.check == Some(Check::Jwt) && !check_jwt(secret) {
            return None;
        }
        if self.allow.regexes.is_match(secret)
            || rule.allow_regexes.is_match(secret)
            || self.allow.extra.is_match(secret)
            || rule.allow_match.is_match(whole)
        {
            return None;
        }
        if rule.stopwords.as_ref().is_some_and(|s| s.is_match(secret)) {
            return None;
        }
        if secret.len() <= self.allow.stopword_max_len
            && self
                .allow
                .stopwords
                .as_ref()
                .is_some_and(|s| s.is_match(secret))
        {
            return None;
        }
        Some(entropy)
    }

    /// Keeps one candidate per region of text. Candidates are ranked by confidence, then
    /// severity, then secret length, then rule order (the order of the rule file), then
    /// position; a candidate overlapping one ranked above it is dropped.
    fn resolve_overlaps(&self, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        candidates.sort_by(|a, b| {
            let (ia, ib) = (&self.infos[a.rule], &self.infos[b.rule]);
            ib.confidence
                .cmp(&ia.confidence)
                .then(ib.severity.cmp(&ia.severity))
                .then(b.span.len().cmp(&a.span.len()))
                .then(a.rule.cmp(&b.rule))
                .then(a.span.start.cmp(&b.span.start))
        });
        // Accepted spans are disjoint, keyed by start: only the nearest one starting
        // before a candidate's end can overlap it.
        let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
        let mut winners = Vec::with_capacity(candidates.len());
        for c in candidates {
            let overlaps = taken
                .range(..c.span.end)
                .next_back()
                .is_some_and(|(_, &end)| end > c.span.start);
            if !overlaps {
                taken.insert(c.span.start, c.span.end);
                winners.push(c);
            }
        }
        winners.sort_by(|a, b| {
            a.span
                .start
                .cmp(&b.span.start)
                .then_with(|| self.infos[a.rule].id.cmp(&self.infos[b.rule].id))
        });
        winners
    }

    fn build_matches(
        &self,
        content: &[u8],
        winners: Vec<Candidate>,
    ) -> Vec<(SecretMatch, Range<usize>)> {
        let mut cursor = Cursor::new(content);
        winners
            .into_iter()
            .map(|c| {
                let (line, column, line_start) = cursor.seek(c.span.start);
                let (end_line, end_column, _) = cursor.seek(c.span.end);
                let m = SecretMatch {
                    rule_id: self.infos[c.rule].id.clone(),
                    line,
                    column,
                    end_line,
                    end_column,
                    snippet: snippet(content, line_start, c.span.start, c.span.end),
                    entropy: c.entropy,
                };
                (m, c.span)
            })
            .collect()
    }

    fn compile(
        file: RawFile,
        global: RawGlobal,
        opts: &Options,
        validate: bool,
    ) -> Result<Scanner, RuleError> {
        for id in &opts.disabled_rules {
            if !file.rules.iter().any(|r| &r.id == id) {
                return Err(RuleError::new(
                    Some(id),
                    "disabled_rules",
                    "no rule has this id",
                ));
            }
        }
        let paths = match &opts.allow_paths {
            Some(p) => p.clone(),
            None => global.paths.clone(),
        };
        let allow = GlobalAllow {
            regexes: LazySet::new(&global.regexes),
            extra: LazySet::new(&opts.extra_allowlist),
            stopwords: stopword_matcher(&global.stopwords),
            stopword_max_len: global.stopword_max_len,
            paths: LazySet::new(&paths),
        };
        // The host's options are always checked now; the rule file's own lists only when
        // asked to (see `Scanner::with_options`).
        allow.extra.force(None, "extra_allowlist")?;
        if opts.allow_paths.is_some() {
            allow.paths.force(None, "allow_paths")?;
        } else if validate {
            allow.paths.force(None, "allowlist.paths")?;
        }
        if validate {
            allow.regexes.force(None, "allowlist.regexes")?;
        }
        if !opts.min_entropy_delta.is_finite() {
            return Err(RuleError::new(
                None,
                "min_entropy_delta",
                "must be a finite number",
            ));
        }

        let mut infos = Vec::new();
        let mut rules = Vec::new();
        let mut keyword_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut ungated_rules = Vec::new();
        let mut gated_count = 0;
        for raw in file.rules {
            if opts.disabled_rules.contains(&raw.id) {
                continue;
            }
            let index = rules.len();
            rules.push(compile_rule(&raw, opts, validate)?);
            if raw.keywords.is_empty() {
                ungated_rules.push(index);
            } else {
                gated_count += 1;
                for k in &raw.keywords {
                    let next = keyword_rules.len();
                    let ki = *keyword_index.entry(k.clone()).or_insert(next);
                    if ki == next {
                        keyword_rules.push(Vec::new());
                    }
                    if !keyword_rules[ki].contains(&index) {
                        keyword_rules[ki].push(index);
                    }
                }
            }
            infos.push(RuleInfo {
                id: raw.id,
                title: raw.title,
                description: raw.description,
                help: raw.help,
                severity: raw.severity,
                confidence: raw.confidence,
                cwe: raw.cwe,
            });
        }
        let keywords = if keyword_rules.is_empty() {
            None
        } else {
            let mut patterns = vec![String::new(); keyword_rules.len()];
            for (k, &i) in &keyword_index {
                patterns[i] = k.clone();
            }
            // A DFA: the fastest search kind, and with ~150 short keywords still small.
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&patterns)
                .map_err(|e| RuleError::new(None, "keywords", e.to_string()))?;
            Some(ac)
        };
        Ok(Scanner {
            infos,
            rules,
            keywords,
            keyword_rules,
            ungated_rules,
            gated_count,
            allow,
        })
    }
}

/// The secret of a match: the explicit group, else the first group that took part, else
/// the whole match.
fn secret_span(group: Option<usize>, locs: &CaptureLocations) -> Option<Range<usize>> {
    if let Some(g) = group {
        return locs.get(g).map(|(s, e)| s..e);
    }
    if locs.len() > 1 {
        for g in 1..locs.len() {
            if let Some((s, e)) = locs.get(g) {
                return Some(s..e);
            }
        }
        return None;
    }
    locs.get(0).map(|(s, e)| s..e)
}

fn builtin_global() -> Result<RawGlobal, RuleError> {
    rules::parse_file(rules::BUILTIN_RULES)?
        .global
        .ok_or_else(|| {
            RuleError::new(
                None,
                "allowlist",
                "the built-in rule file has no [allowlist]",
            )
        })
}

/// Regexes are compiled for bytes with Unicode off: `\w`, `\s`, `\b` are ASCII and every
/// pattern stays on the DFA engines (a Unicode `\b` would force the slow PikeVM).
fn build_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

fn build_set(patterns: &[String]) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT * 4)
        .build()
}

fn stopword_matcher(words: &[String]) -> Option<AhoCorasick> {
    if words.is_empty() {
        return None;
    }
    // Plain words cannot fail to build; treat a failure as "no stopwords" rather than
    // panic, it would only make the scanner report more.
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(words)
        .ok()
}

fn compile_rule(raw: &RawRule, opts: &Options, validate: bool) -> Result<CompiledRule, RuleError> {
    let id = Some(raw.id.as_str());
    let rule = CompiledRule {
        regex: LazyRegex::new(&raw.regex),
        secret_group: raw.secret_group,
        entropy: raw.entropy.map(|e| (e + opts.min_entropy_delta).max(0.0)),
        entropy_hex: raw
            .entropy_hex
            .map(|e| (e + opts.min_entropy_delta).max(0.0)),
        check: raw.check,
        allow_regexes: LazySet::new(&raw.allowlist.regexes),
        allow_match: LazySet::new(&raw.allowlist.match_regexes),
        stopwords: stopword_matcher(&raw.allowlist.stopwords),
    };
    if validate {
        let regex = rule
            .regex
            .force()
            .map_err(|e| RuleError::new(id, "regex", e.to_string()))?;
        if regex.is_match(b"") {
            return Err(RuleError::new(id, "regex", "matches the empty string"));
        }
        if let Some(g) = raw.secret_group
            && g >= regex.captures_len()
        {
            return Err(RuleError::new(
                id,
                "secret-group",
                format!(
                    "group {g} does not exist (the regex has {} capture groups)",
                    regex.captures_len() - 1
                ),
            ));
        }
        rule.allow_regexes.force(id, "allowlist.regexes")?;
        rule.allow_match.force(id, "allowlist.match-regexes")?;
    }
    Ok(rule)
}
