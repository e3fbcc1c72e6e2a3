//! Inline suppressions: `secflow:ignore RULE[,RULE...]` in a comment on the finding's line,
//! or alone on the line just above it, silences those rules for that line only.

/// Whether `rule_id` is suppressed at 1-based `line` of `content`.
///
/// A rule matches by its full id (`code/python.eval`) or by the part after the plugin
/// namespace (`python.eval`), so a comment stays valid if a plugin is renamed.
pub fn is_suppressed(content: &[u8], line: u32, rule_id: &str) -> bool {
    let lines: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    is_suppressed_in(&lines, line, rule_id)
}

/// [`is_suppressed`] over a file already split into lines (`\n`), for many findings.
pub fn is_suppressed_in(lines: &[&[u8]], line: u32, rule_id: &str) -> bool {
    if line == 0 {
        return false;
    }
    let index = line as usize - 1;
    let previous = index.checked_sub(1).and_then(|i| lines.get(i)).copied();
    let current = lines.get(index).copied();
    if current.is_some_and(|l| names_rule(l, rule_id)) {
        return true;
    }
    // The line above counts only when it holds nothing but the comment.
    previous.is_some_and(|l| {
        let text = String::from_utf8_lossy(l);
        let trimmed = text.trim_start();
        ["#", "//", "/*", "--", ";", "<!--", "*"]
            .iter()
            .any(|c| trimmed.starts_with(c))
            && names_rule(l, rule_id)
    })
}

fn names_rule(line: &[u8], rule_id: &str) -> bool {
    const MARK: &[u8] = b"secflow:ignore";
    let Some(at) = line.windows(MARK.len()).position(|w| w == MARK) else {
        return false;
    };
    let rest = String::from_utf8_lossy(&line[at + MARK.len()..]);
    let short = rule_id.split_once('/').map_or(rule_id, |(_, s)| s);
    rest.split(|c: char| c.is_whitespace() || c == ',')
        .map(|t| t.trim_end_matches(['*', '/', '>', '-']))
        .filter(|t| !t.is_empty())
        .take(16)
        .any(|t| t == rule_id || t == short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_line_and_line_above() {
        let src = b"a\nx = md5(p)  # secflow:ignore code/python.weak-hash\n# secflow:ignore python.eval\neval(x)\neval(y)\n";
        assert!(is_suppressed(src, 2, "code/python.weak-hash"));
        assert!(!is_suppressed(src, 2, "code/python.eval"));
        assert!(is_suppressed(src, 4, "code/python.eval"));
        assert!(!is_suppressed(src, 5, "code/python.eval"));
        assert!(!is_suppressed(src, 0, "code/python.eval"));
        assert!(!is_suppressed(src, 99, "code/python.eval"));
    }

    #[test]
    fn lists_and_block_comments() {
        let src = b"q = 1 /* secflow:ignore a/x, b/y */\n";
        assert!(is_suppressed(src, 1, "a/x"));
        assert!(is_suppressed(src, 1, "b/y"));
        assert!(!is_suppressed(src, 1, "c/z"));
        // Code above that merely mentions the marker does not suppress the next line.
        let src = b"s = \"secflow:ignore a/x\"\nbad()\n";
        assert!(!is_suppressed(src, 2, "a/x"));
    }
}
