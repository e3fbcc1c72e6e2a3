//! Languages and detection by file extension.

use std::fmt;

/// A language a rule can target. Files are assigned a language from their extension only:
/// reading content (shebangs, modelines) would cost a pass over every file and is rarely needed
/// in source trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// `.py`, `.pyw`
    Python,
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
    /// `.ts`, `.tsx`, `.mts`, `.cts`. Kept apart from JavaScript so a rule can target only one
    /// of them; the bundled JavaScript rules list both.
    TypeScript,
    /// `.java`
    Java,
    /// `.go`
    Go,
    /// `.rs`
    Rust,
    /// `.php`, `.phtml`
    Php,
    /// C and C++: `.c`, `.h`, `.cc`, `.cpp`, `.cxx`, `.hpp`, `.hh`, `.hxx`. One language because
    /// headers (`.h`) are shared by both and the weaknesses we match look the same in both.
    C,
    /// Any file, whatever its extension (or none). A rule for `generic` runs on every file.
    Generic,
}

impl Language {
    /// Every language, in a fixed order (also the order of the "known languages" list in errors).
    pub const ALL: [Language; 9] = [
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Java,
        Language::Go,
        Language::Rust,
        Language::Php,
        Language::C,
        Language::Generic,
    ];

    /// Number of languages; sizes per-language tables.
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// The name used in rule files (`languages: [python]`).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
            Language::Java => "java",
            Language::Go => "go",
            Language::Rust => "rust",
            Language::Php => "php",
            Language::C => "c",
            Language::Generic => "generic",
        }
    }

    /// Parses a rule-file language name (exact, lower case).
    pub fn from_name(name: &str) -> Option<Language> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// File extensions (lower case, without the dot) that select this language. Empty for
    /// `generic`, which applies to every file.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Language::Python => &["py", "pyw"],
            Language::JavaScript => &["js", "mjs", "cjs", "jsx"],
            Language::TypeScript => &["ts", "tsx", "mts", "cts"],
            Language::Java => &["java"],
            Language::Go => &["go"],
            Language::Rust => &["rs"],
            Language::Php => &["php", "phtml"],
            Language::C => &["c", "h", "cc", "cpp", "cxx", "hpp", "hh", "hxx"],
            Language::Generic => &[],
        }
    }

    /// The language of a file, from the extension of its last path component (ASCII
    /// case-insensitive; `/` and `\` both separate components). `None` means no specific
    /// language: only `generic` rules apply to such a file.
    pub fn from_path(path: &str) -> Option<Language> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let (stem, ext) = name.rsplit_once('.')?;
        if stem.is_empty() {
            // A dot file such as `.py` has no extension, just a name.
            return None;
        }
        if ext.is_empty() || ext.len() > 5 {
            return None;
        }
        let mut lower = [0u8; 5];
        for (dst, src) in lower.iter_mut().zip(ext.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        let ext = std::str::from_utf8(&lower[..ext.len()]).ok()?;
        Self::ALL
            .into_iter()
            .find(|l| l.extensions().contains(&ext))
    }

    /// Dense index for per-language tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
