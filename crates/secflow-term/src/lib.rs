//! Text a plugin controls (log lines, error and panic messages, captured output, finding
//! text, manifest fields) made safe for a terminal, in plain text and in JSON.
//!
//! A terminal acts on what it is sent: ESC starts a CSI sequence that moves the cursor,
//! recolors or clears the screen, OSC sets the title or writes a hyperlink (OSC 8) that
//! shows one URL and opens another, BEL rings, backspace hides what came before, C1 bytes
//! (U+0080–U+009F) are a second spelling of the same controls, and the bidirectional
//! overrides and isolates (U+202A–U+202E, U+2066–U+2069, and the marks U+200E, U+200F,
//! U+061C) reorder what is displayed ("Trojan Source", CVE-2021-42574). JSON is no shelter:
//! `serde_json` escapes C0 controls but writes DEL, C1 and bidi characters raw, and `jq`
//! or `cat` prints them as they are.
//!
//! [`escape`] and [`escape_line`] show every such character as a visible `\u{..}` escape;
//! [`to_json`] and [`to_json_pretty`] write them as `\uXXXX` escapes, which is still the
//! same JSON value. No dependencies beyond serde; used by the CLI and the report formats.

use std::borrow::Cow;

/// Characters that must not reach a terminal raw: C0 and C1 controls, DEL, and the
/// bidirectional formatting characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a terminal, several lines allowed: every unsafe character but newline and tab
/// is shown as `\u{..}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t')
}

/// Text for one line of a terminal (a table cell, a log line): newlines are escaped too.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\t')
}

/// A `serde_json` formatter that writes unsafe characters serde_json would leave raw (DEL,
/// C1, bidi) as `\uXXXX`.
#[derive(Debug, Clone)]
pub struct SafeFormatter<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for SafeFormatter<F> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                // Every unsafe character serde_json passes through is in the BMP.
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn write_json<T, F>(value: &T, formatter: F) -> serde_json::Result<String>
where
    T: serde::Serialize + ?Sized,
    F: serde_json::ser::Formatter,
{
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeFormatter(formatter));
    value.serialize(&mut ser)?;
    // The formatter writes only ASCII escapes and whole UTF-8 fragments.
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Compact JSON with every unsafe character escaped.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    write_json(value, serde_json::ser::CompactFormatter)
}

/// Pretty JSON (two-space indent, as `serde_json::to_string_pretty`) with every unsafe
/// character escaped.
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    write_json(value, serde_json::ser::PrettyFormatter::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each class: CSI colour, OSC 8 hyperlink with BEL, C1 CSI, bidi override and
    /// isolate, LRM, backspace, DEL, NUL.
    const EVIL: &str = "a\u{1b}[31mred\u{1b}]8;;https://evil.example/\u{7}link\u{1b}]8;;\u{7}\u{9b}2J\u{202e}rev\u{202c}\u{2066}iso\u{2069}\u{200e}\u{8}\u{7f}\u{0}z";

    fn raw_unsafe(text: &str) -> Vec<char> {
        text.chars().filter(|c| is_unsafe(*c)).collect()
    }

    #[test]
    fn plain_text_keeps_no_unsafe_character() {
        let out = escape_line(EVIL);
        assert!(raw_unsafe(&out).is_empty(), "{out:?}");
        assert!(
            out.contains("\\u{1b}[31mred") && out.contains("\\u{202e}rev"),
            "{out}"
        );
        assert_eq!(escape("ok\n\tline"), "ok\n\tline");
        assert_eq!(escape_line("a\nb"), "a\\u{a}b");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw_and_means_the_same() {
        let value = serde_json::json!({ "message": EVIL, "k\u{202e}": [EVIL] });
        for text in [to_json(&value).unwrap(), to_json_pretty(&value).unwrap()] {
            assert!(raw_unsafe(&text).iter().all(|c| *c == '\n'), "{text}");
            assert!(
                text.contains("\\u202e") && text.contains("\\u009b") && text.contains("\\u007f")
            );
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value, "the same JSON value");
        }
        assert_eq!(
            to_json_pretty(&value).unwrap().lines().count(),
            serde_json::to_string_pretty(&value)
                .unwrap()
                .lines()
                .count()
        );
    }
}
