//! The small glob dialect of `paths: { include, exclude }`.
//!
//! Only `*`, `**` and `?` are special; every other character is literal (no `[...]`, no `{a,b}`),
//! which keeps globs unambiguous and the matcher tiny. A glob without `/` matches the file name
//! in any directory (like `.gitignore`); a glob with `/` matches the whole relative path.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**` not followed by `/`: anything, `/` included.
    Any,
    /// `**/`: zero or more whole directories.
    Dirs,
}

/// A compiled glob.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
    /// No `/` in the glob: match against the last path component only.
    name_only: bool,
}

impl Glob {
    /// Compiles a glob; the error says what is wrong with it.
    pub(crate) fn new(glob: &str) -> Result<Glob, String> {
        if glob.is_empty() {
            return Err("the glob is empty".to_string());
        }
        let normalized = normalize(glob);
        let name_only = !normalized.contains('/');
        let chars: Vec<char> = normalized.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    if chars.get(i + 2) == Some(&'*') {
                        return Err("`***` is not a glob; use `*` or `**`".to_string());
                    }
                    if chars.get(i + 2) == Some(&'/') {
                        tokens.push(Token::Dirs);
                        i += 3;
                    } else {
                        tokens.push(Token::Any);
                        i += 2;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::One);
                    i += 1;
                }
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Ok(Glob { tokens, name_only })
    }

    /// Whether `path` (already normalized with [`normalize`]) matches.
    pub(crate) fn is_match(&self, path: &str) -> bool {
        let subject = if self.name_only {
            path.rsplit('/').next().unwrap_or(path)
        } else {
            path
        };
        let text: Vec<char> = subject.chars().collect();
        matches(&self.tokens, &text)
    }
}

/// Makes paths and globs comparable: `\` becomes `/` and leading `./` and `/` are dropped.
pub(crate) fn normalize(path: &str) -> String {
    let mut p = path.replace('\\', "/");
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest.to_string();
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest.to_string();
        } else {
            return p;
        }
    }
}

/// Dynamic programming over (token, text position): linear in their product, so a glob with
/// many stars cannot blow up the way naive backtracking does.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    let n = text.len();
    // `next[j]`: tokens[i + 1..] match text[j..]; `cur[j]`: tokens[i..] match text[j..].
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for token in tokens.iter().rev() {
        for j in (0..=n).rev() {
            cur[j] = match token {
                Token::Char(c) => j < n && text[j] == *c && next[j + 1],
                Token::One => j < n && text[j] != '/' && next[j + 1],
                Token::Star => next[j] || (j < n && text[j] != '/' && cur[j + 1]),
                Token::Any => next[j] || (j < n && cur[j + 1]),
                // Zero directories, or a run of characters ending just after a `/`.
                Token::Dirs => {
                    next[j] || (j < n && (0..n - j).any(|k| text[j + k] == '/' && next[j + k + 1]))
                }
            };
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, path: &str) -> bool {
        Glob::new(glob).unwrap().is_match(&normalize(path))
    }

    #[test]
    fn globs() {
        assert!(m("*.py", "src/app/main.py"));
        assert!(!m("*.py", "src/app/main.pyc"));
        assert!(m("src/*.py", "src/main.py"));
        assert!(!m("src/*.py", "src/app/main.py"));
        assert!(m("src/**/*.py", "src/main.py"));
        assert!(m("src/**/*.py", "src/a/b/main.py"));
        assert!(m("**/tests/**", "pkg/tests/unit/x.py"));
        assert!(m("**/tests/**", "tests/x.py"));
        assert!(!m("**/tests/**", "pkg/contests/x.py"));
        assert!(m("test_?.py", "a/test_1.py"));
        assert!(!m("test_?.py", "a/test_12.py"));
        assert!(m("vendor/**", "./vendor/x/y.go"));
        assert!(m("vendor/**", "vendor\\x\\y.go"));
        assert!(m("*_test.go", "pkg/x_test.go"));
        assert!(!m("*_test.go", "pkg/x.go"));
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a/***/b").is_err());
    }
}
