//! The matching engine.
//!
//! Design (chosen by measurement, see `docs/code-pattern-rules.md`, "How matching works"):
//!
//! 1. Per language, one *scanner* regex: the alternation of every pattern of every rule that
//!    applies to that language. One pass of it over the file finds the candidate lines (lines
//!    where some pattern of some rule matches); most files have none, so for most files this
//!    single lazy-DFA pass is all the work.
//! 2. Only when a candidate line appears are the keyword prefilter (one Aho-Corasick automaton
//!    over the keywords of the language's rules, ASCII case-insensitive, over the raw bytes)
//!    and the path globs evaluated, once per file, to decide which rules are eligible.
//! 3. On a candidate line each eligible rule runs its patterns and, if one matches, its
//!    `pattern-not` regexes, all on the line alone; a rule with `context` then looks for one of
//!    its context regexes on that line and the few lines above it (see [`context_matches`]).
//!    Scanning resumes at the next line.
//!
//! Regexes run over bytes in ASCII mode (see [`crate::format::build_regex`]), which keeps the
//! lazy DFA usable on any input. Everything is compiled on first use and cached.

use std::borrow::Cow;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use regex::bytes::Regex;

use crate::format::{RuleDef, build_regex};
use crate::{PatternMatch, RuleSet};

/// Snippets longer than this (in characters) are cut around the match.
const MAX_SNIPPET_CHARS: usize = 200;
/// How much context before the match a cut snippet keeps.
const SNIPPET_LEAD_CHARS: usize = 60;

/// A rule with its lazily compiled regexes.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) def: RuleDef,
    pub(crate) regexes: OnceLock<RuleRegexes>,
}

/// The regexes of one rule. Patterns stay separate (they only run on candidate lines, so one
/// alternation would save little) so that each can have its own `focus` group.
#[derive(Debug)]
pub(crate) struct RuleRegexes {
    patterns: Vec<PatternRegex>,
    /// `pattern-not` regexes (kept apart too: they also run on candidate lines only).
    not: Vec<Regex>,
    /// `context.patterns` regexes (none without `context`); they run on the lines of the
    /// context window of a line that has matched and was not dropped by `pattern-not`.
    context: Vec<Regex>,
    /// `context.lines-before`.
    lines_before: usize,
}

#[derive(Debug)]
struct PatternRegex {
    regex: Regex,
    /// Index of the capture group named `focus`, whose span is reported instead of the match.
    focus: Option<usize>,
}

/// The name of the capture group that marks the reported part of a match.
pub(crate) const FOCUS_GROUP: &str = "focus";

impl RuleRegexes {
    /// The earliest match of any pattern on `line` (the `focus` span if the pattern has one).
    fn find(&self, line: &[u8]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for p in &self.patterns {
            let span = match p.focus {
                None => p.regex.find(line).map(|m| (m.start(), m.end())),
                Some(group) => p.regex.captures(line).map(|c| {
                    let m = c.get(group).unwrap_or_else(|| c.get(0).expect("group 0"));
                    (m.start(), m.end())
                }),
            };
            if let Some(span) = span
                && best.is_none_or(|b| span.0 < b.0)
            {
                best = Some(span);
            }
        }
        best
    }
}

impl Rule {
    pub(crate) fn new(def: RuleDef) -> Rule {
        Rule {
            def,
            regexes: OnceLock::new(),
        }
    }

    pub(crate) fn regexes(&self) -> &RuleRegexes {
        self.regexes.get_or_init(|| {
            compile_rule(&self.def).unwrap_or_else(|e| {
                // Unreachable: custom rules are compiled while loading (and reported as a
                // `RuleError`), and the `bundled_rules_compile` test compiles the bundled ones.
                panic!("rule `{}` does not compile: {e}", self.def.info.id)
            })
        })
    }
}

/// `(?:a)|(?:b)|...`; a single pattern is used as it is.
fn alternation<'a>(patterns: impl IntoIterator<Item = &'a str>) -> String {
    let patterns: Vec<&str> = patterns.into_iter().collect();
    match patterns.as_slice() {
        [one] => (*one).to_string(),
        many => many
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|"),
    }
}

/// The pattern with its `focus` group made non-capturing, for the language scanner (an
/// alternation cannot contain two groups of the same name). Checked: if the text `(?P<focus>`
/// were anything but that group (say an escaped parenthesis before it), the group count would
/// not drop by one and the pattern is used unchanged.
fn without_focus(pattern: &str) -> Cow<'_, str> {
    let stripped = pattern
        .replace("(?P<focus>", "(?:")
        .replace("(?<focus>", "(?:");
    if stripped == pattern {
        return Cow::Borrowed(pattern);
    }
    match (build_regex(pattern), build_regex(&stripped)) {
        (Ok(a), Ok(b)) if b.captures_len() + 1 == a.captures_len() => Cow::Owned(stripped),
        _ => Cow::Borrowed(pattern),
    }
}

pub(crate) fn compile_rule(def: &RuleDef) -> Result<RuleRegexes, regex::Error> {
    let patterns = def
        .patterns
        .iter()
        .map(|p| {
            let regex = build_regex(p)?;
            let focus = regex
                .capture_names()
                .position(|name| name == Some(FOCUS_GROUP));
            Ok(PatternRegex { regex, focus })
        })
        .collect::<Result<Vec<_>, regex::Error>>()?;
    let not = def
        .pattern_not
        .iter()
        .map(|p| build_regex(p))
        .collect::<Result<Vec<_>, regex::Error>>()?;
    let (context, lines_before) = match &def.context {
        None => (Vec::new(), 0),
        Some(context) => (
            context
                .patterns
                .iter()
                .map(|p| build_regex(p))
                .collect::<Result<Vec<_>, regex::Error>>()?,
            context.lines_before,
        ),
    };
    Ok(RuleRegexes {
        patterns,
        not,
        context,
        lines_before,
    })
}

/// The rules that apply to files of one language.
#[derive(Debug, Default)]
pub(crate) struct LangTable {
    /// Indices into `RuleSet::rules`: rules of this language plus `generic` rules.
    pub(crate) rules: Vec<usize>,
    /// Whether any of them has `paths:` (if not, the path is never normalized).
    pub(crate) any_paths: bool,
    prepared: OnceLock<Prepared>,
}

/// What a language needs before its first scan.
#[derive(Debug)]
struct Prepared {
    keywords: KeywordIndex,
    scanners: Vec<Scanner>,
}

/// A regex whose matches mark candidate lines for some rules (positions in `LangTable::rules`).
#[derive(Debug)]
struct Scanner {
    regex: Regex,
    rules: Vec<usize>,
}

impl LangTable {
    fn prepared(&self, rules: &[Rule]) -> &Prepared {
        self.prepared.get_or_init(|| {
            let keywords = KeywordIndex::build(rules, &self.rules);
            let sources: Vec<Cow<'_, str>> = self
                .rules
                .iter()
                .flat_map(|&r| rules[r].def.patterns.iter().map(|p| without_focus(p)))
                .collect();
            let all = alternation(sources.iter().map(|s| s.as_ref()));
            let scanners = match build_regex(&all) {
                Ok(regex) => vec![Scanner {
                    regex,
                    rules: (0..self.rules.len()).collect(),
                }],
                // Too large for one program (size limit), or patterns that cannot share one:
                // one scanner per pattern instead, which is slower but equivalent.
                Err(_) => self
                    .rules
                    .iter()
                    .enumerate()
                    .flat_map(|(pos, &r)| {
                        rules[r].regexes().patterns.iter().map(move |p| Scanner {
                            regex: p.regex.clone(),
                            rules: vec![pos],
                        })
                    })
                    .collect(),
            };
            Prepared { keywords, scanners }
        })
    }

    /// Builds everything that is otherwise built on first use.
    pub(crate) fn compile_all(&self, rules: &[Rule]) {
        if self.rules.is_empty() {
            return;
        }
        self.prepared(rules);
        for &r in &self.rules {
            rules[r].regexes();
        }
    }
}

/// One Aho-Corasick automaton over the keywords of all rules of a language, so that deciding
/// which keyword-gated rules may match costs one pass over the file, whatever the number of
/// rules, and no lower-cased copy of the file.
#[derive(Debug)]
struct KeywordIndex {
    /// `None` when no rule has keywords.
    automaton: Option<AhoCorasick>,
    /// Automaton pattern id -> positions in `LangTable::rules` gated by that keyword.
    gated: Vec<Vec<usize>>,
    /// Positions in `LangTable::rules` of rules without keywords (always eligible).
    ungated: Vec<usize>,
    /// Number of rules that have keywords.
    gated_rules: usize,
}

impl KeywordIndex {
    fn build(rules: &[Rule], table: &[usize]) -> KeywordIndex {
        let mut keywords: Vec<&str> = Vec::new();
        let mut gated: Vec<Vec<usize>> = Vec::new();
        let mut ungated = Vec::new();
        for (pos, &rule) in table.iter().enumerate() {
            let kws = &rules[rule].def.keywords;
            if kws.is_empty() {
                ungated.push(pos);
                continue;
            }
            for kw in kws {
                // One automaton pattern per distinct keyword (ASCII case-insensitively).
                match keywords.iter().position(|k| k.eq_ignore_ascii_case(kw)) {
                    Some(i) => gated[i].push(pos),
                    None => {
                        keywords.push(kw);
                        gated.push(vec![pos]);
                    }
                }
            }
        }
        let automaton = if keywords.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&keywords)
                .ok()
        };
        if automaton.is_none() {
            // No keywords, or (in theory) too many for the automaton: every rule is eligible.
            ungated = (0..table.len()).collect();
            gated.clear();
        }
        let gated_rules = table.len() - ungated.len();
        KeywordIndex {
            automaton,
            gated,
            ungated,
            gated_rules,
        }
    }

    /// Marks in `eligible` (indexed like `LangTable::rules`) the rules whose keywords occur in
    /// `text`, and the rules without keywords. Stops early once every rule is marked.
    fn activate(&self, text: &[u8], eligible: &mut [bool]) {
        for &pos in &self.ungated {
            eligible[pos] = true;
        }
        let Some(automaton) = &self.automaton else {
            return;
        };
        let mut remaining = self.gated_rules;
        for m in automaton.find_overlapping_iter(text) {
            for &pos in &self.gated[m.pattern().as_usize()] {
                if !eligible[pos] {
                    eligible[pos] = true;
                    remaining -= 1;
                }
            }
            if remaining == 0 {
                break;
            }
        }
    }
}

/// One rule's match before line numbers are known.
#[derive(Debug, Clone, Copy)]
struct Hit {
    rule: usize,
    line_start: usize,
    line_end: usize,
    start: usize,
    end: usize,
}

impl RuleSet {
    /// Scans `text` with the rules of `table`. `path` (normalized) is `None` when path filters
    /// are to be ignored (no rule has any, or a self-test); `only` restricts the scan to one
    /// rule (self-tests).
    pub(crate) fn scan_table(
        &self,
        table: &LangTable,
        path: Option<&str>,
        text: &[u8],
        only: Option<usize>,
    ) -> Vec<PatternMatch> {
        if table.rules.is_empty() || text.is_empty() {
            return Vec::new();
        }
        let prepared = table.prepared(&self.rules);
        // Decided on the first candidate line: most files have none and never pay for it.
        let mut eligible: Option<Vec<bool>> = None;
        let mut hits = Vec::new();
        for scanner in &prepared.scanners {
            // Per rule (position in `scanner.rules`): where the lines known to have no context end
            // (see `context_matches`). Candidate lines come in file order, so each line is checked
            // for context about once, however dense the candidates and wide the windows.
            let mut no_context_before: Vec<usize> = Vec::new();
            let mut pos = 0;
            while pos <= text.len() {
                let Some(m) = scanner.regex.find_at(text, pos) else {
                    break;
                };
                let eligible = eligible.get_or_insert_with(|| {
                    self.eligible_rules(table, &prepared.keywords, path, text, only)
                });
                if !scanner.rules.iter().any(|&p| eligible[p]) {
                    break;
                }
                let (line_start, line_end, next_line) = line_around(text, m.start());
                let line = &text[line_start..line_end];
                for (i, &p) in scanner.rules.iter().enumerate() {
                    if !eligible[p] {
                        continue;
                    }
                    let rule = table.rules[p];
                    let regexes = self.rules[rule].regexes();
                    let Some((start, end)) = regexes.find(line) else {
                        continue;
                    };
                    if regexes.not.iter().any(|not| not.is_match(line)) {
                        continue;
                    }
                    if !regexes.context.is_empty() {
                        if no_context_before.is_empty() {
                            no_context_before = vec![0; scanner.rules.len()];
                        }
                        let window = Window {
                            line_start,
                            line_end,
                            lines_before: regexes.lines_before,
                        };
                        let known = &mut no_context_before[i];
                        if !context_matches(&regexes.context, text, window, known) {
                            continue;
                        }
                    }
                    hits.push(Hit {
                        rule,
                        line_start,
                        line_end,
                        start: line_start + start,
                        end: line_start + end,
                    });
                }
                pos = next_line;
            }
        }
        self.finish(text, hits)
    }

    /// Which rules of `table` may report in this file: keywords present, path allowed.
    fn eligible_rules(
        &self,
        table: &LangTable,
        keywords: &KeywordIndex,
        path: Option<&str>,
        text: &[u8],
        only: Option<usize>,
    ) -> Vec<bool> {
        let mut eligible = vec![false; table.rules.len()];
        keywords.activate(text, &mut eligible);
        for (p, &rule) in table.rules.iter().enumerate() {
            if only.is_some_and(|o| o != rule) {
                eligible[p] = false;
            }
            if let (true, Some(path), Some(filter)) =
                (eligible[p], path, &self.rules[rule].def.paths)
            {
                eligible[p] = filter.allows(path);
            }
        }
        eligible
    }

    /// Turns hits into matches: line numbers (one forward pass over the text, counting only up
    /// to the last hit), character columns and snippets, ordered by line, column and rule id.
    fn finish(&self, text: &[u8], mut hits: Vec<Hit>) -> Vec<PatternMatch> {
        hits.sort_by_key(|h| (h.line_start, h.start, h.rule));
        // Per-pattern fallback scanners can find the same rule on the same line twice.
        hits.dedup_by_key(|h| (h.line_start, h.rule));
        let mut line = 1usize;
        let mut counted_to = 0usize;
        let mut out: Vec<PatternMatch> = Vec::with_capacity(hits.len());
        for hit in hits {
            line += text[counted_to..hit.line_start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted_to = hit.line_start;
            let line_text = &text[hit.line_start..hit.line_end];
            let column = count_chars(&line_text[..hit.start - hit.line_start]) + 1;
            let end_column = count_chars(&line_text[..hit.end - hit.line_start]) + 1;
            out.push(PatternMatch {
                rule_id: self.rules[hit.rule].def.info.id.clone(),
                line: saturate(line),
                column: saturate(column),
                end_column: saturate(end_column),
                snippet: snippet(line_text, hit.start - hit.line_start),
            });
        }
        out.sort_by(|a, b| (a.line, a.column, &a.rule_id).cmp(&(b.line, b.column, &b.rule_id)));
        out
    }
}

/// The line containing byte `at`: (start, end without `\n` or `\r\n`, start of the next line).
fn line_around(text: &[u8], at: usize) -> (usize, usize, usize) {
    let start = text[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let newline = text[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| at + i);
    let end = if newline > start && text[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    (start, end, newline + 1)
}

/// The context window of a matched line: the line `text[line_start..line_end]` and the
/// `lines_before` lines above it.
#[derive(Debug, Clone, Copy)]
struct Window {
    line_start: usize,
    line_end: usize,
    lines_before: usize,
}

/// Whether one of the `context` regexes matches a line of the window (fewer lines at the start of
/// the file). Each line is matched on its own, without its line end, like the rule's patterns;
/// the nearest lines are tried first.
///
/// `no_context_before` is where the earlier windows of the same rule that had no context end
/// (0 at first); windows must come in file order. The lines of this window that start before it
/// have no context: they belong to such an earlier window, since an earlier window starts no
/// lower. Reaching one ends the search. A window without context moves it to its own end.
fn context_matches(
    context: &[Regex],
    text: &[u8],
    window: Window,
    no_context_before: &mut usize,
) -> bool {
    let (mut start, mut end) = (window.line_start, window.line_end);
    for _ in 0..=window.lines_before {
        if start < *no_context_before {
            break;
        }
        let line = &text[start..end];
        if context.iter().any(|re| re.is_match(line)) {
            return true;
        }
        if start == 0 {
            break;
        }
        // `start - 1` is the `\n` that ends the line above; drop its `\r` too.
        let newline = start - 1;
        end = if newline > 0 && text[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        start = text[..newline]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    }
    *no_context_before = window.line_end;
    false
}

/// Characters in UTF-8 text: bytes that do not continue a multi-byte sequence. For invalid
/// UTF-8 each stray byte that is not a continuation byte counts as one character, close to what
/// a lossy decoder shows, and an offset inside a character never splits it.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The trimmed line (decoded lossily), or about [`MAX_SNIPPET_CHARS`] characters of it around
/// the match, marked with `…` where cut.
fn snippet(line: &[u8], match_offset: usize) -> String {
    let decoded = String::from_utf8_lossy(line);
    let trimmed = decoded.trim();
    let total = trimmed.chars().count();
    if total <= MAX_SNIPPET_CHARS {
        return trimmed.to_string();
    }
    // Character index of the match in `trimmed` (exact for valid UTF-8, close otherwise).
    let leading = decoded.chars().take_while(|c| c.is_whitespace()).count();
    let match_char = count_chars(&line[..match_offset]).saturating_sub(leading);
    let start = match_char
        .saturating_sub(SNIPPET_LEAD_CHARS)
        .min(total - MAX_SNIPPET_CHARS);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(trimmed.chars().skip(start).take(MAX_SNIPPET_CHARS));
    if start + MAX_SNIPPET_CHARS < total {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let text = b"a\r\nbb\nccc";
        assert_eq!(line_around(text, 0), (0, 1, 3));
        assert_eq!(line_around(text, 4), (3, 5, 6));
        assert_eq!(line_around(text, 7), (6, 9, 10));
    }

    #[test]
    fn snippets() {
        assert_eq!(snippet(b"   x = 1  ", 3), "x = 1");
        let long = format!("{}MATCH{}", "a".repeat(300), "b".repeat(300));
        let s = snippet(long.as_bytes(), 300);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("MATCH"));
        assert_eq!(s.chars().count(), MAX_SNIPPET_CHARS + 2);
        let tail = format!("{}MATCH", "a".repeat(300));
        let s = snippet(tail.as_bytes(), 300);
        assert!(s.ends_with("MATCH") && s.starts_with('…'), "{s}");
    }

    /// The bundled rules of every language share one scanner (no silent per-pattern fallback).
    #[test]
    fn bundled_languages_have_one_scanner() {
        let set = RuleSet::builtin();
        for (table, lang) in set.tables.iter().zip(crate::Language::ALL) {
            if lang == crate::Language::Generic {
                assert!(table.rules.is_empty());
                continue;
            }
            assert_eq!(table.prepared(&set.rules).scanners.len(), 1, "{lang}");
        }
    }

    #[test]
    fn focus_groups_are_stripped_only_when_they_are_groups() {
        assert_eq!(without_focus("a(?P<focus>b)c"), "a(?:b)c");
        assert_eq!(without_focus("a(?<focus>b)c"), "a(?:b)c");
        assert_eq!(without_focus("a(b)c"), "a(b)c");
        // An escaped parenthesis followed by `?P<focus>` text is not a group: unchanged.
        assert_eq!(without_focus(r"\(?P<focus>"), r"\(?P<focus>");
    }

    /// `context_matches` for the line of `text` that contains byte `at`, with nothing known.
    fn has_context(pattern: &str, text: &[u8], at: usize, lines_before: usize) -> bool {
        let (line_start, line_end, _) = line_around(text, at);
        let window = Window {
            line_start,
            line_end,
            lines_before,
        };
        let regexes = [build_regex(pattern).unwrap()];
        context_matches(&regexes, text, window, &mut 0)
    }

    #[test]
    fn context_window_covers_the_line_and_the_lines_above() {
        let text = b"token\r\n\nb\r\nc\nx = call()\n";
        let at = text.len() - 3;
        // The matched line itself is always part of the window.
        assert!(has_context("call", text, at, 0));
        assert!(!has_context("token", text, at, 3));
        assert!(has_context("token", text, at, 4));
        // Lines are matched without their line ends (`$` before `\r\n`), one at a time.
        assert!(has_context("^b$", text, at, 2));
        assert!(has_context("^$", text, at, 3));
        assert!(!has_context(r"c\s+x", text, at, 4));
        // More lines than the file has above the line: the window stops at the first line.
        assert!(!has_context("nothing", text, at, 20));
        assert!(has_context("^token$", text, at, 20));
        // The first line of a file.
        assert!(has_context("tok", text, 0, 5));
    }

    /// Known context-free lines are skipped, and the answers stay those of a fresh search,
    /// whichever lines are candidates.
    #[test]
    fn context_free_lines_are_remembered() {
        let text = b"a\nctx\nb\nc\nd\ne\nf\nctx\ng\n";
        let regexes = [build_regex("ctx").unwrap()];
        let lines: Vec<(usize, usize)> = {
            let mut v = Vec::new();
            let mut at = 0;
            while at < text.len() {
                let (s, e, next) = line_around(text, at);
                v.push((s, e));
                at = next;
            }
            v
        };
        // Every subset of the lines as candidate lines, in file order.
        for (mask, lines_before) in
            (0..1u32 << lines.len()).flat_map(|m| (0..4).map(move |b| (m, b)))
        {
            let mut known = 0;
            for (i, &(line_start, line_end)) in lines.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                let window = Window {
                    line_start,
                    line_end,
                    lines_before,
                };
                let fresh = lines[i.saturating_sub(lines_before)..=i]
                    .iter()
                    .any(|&(s, e)| &text[s..e] == b"ctx");
                assert_eq!(
                    context_matches(&regexes, text, window, &mut known),
                    fresh,
                    "line {i}, lines_before {lines_before}, candidates {mask:b}"
                );
            }
        }
    }

    #[test]
    fn chars_are_counted_per_character() {
        assert_eq!(count_chars("héllo".as_bytes()), 5);
        assert_eq!(count_chars(b"\xff\xfeab"), 4);
    }
}
