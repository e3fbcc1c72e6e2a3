//! Positions and snippets, computed only for matches.

/// Longest snippet, in characters, before cutting around the secret.
const SNIPPET_MAX_CHARS: usize = 200;
/// Characters of context kept before the secret when a line is cut.
const SNIPPET_MAX_BEFORE: usize = 100;
/// What replaces the hidden part of a secret.
const MASK: &str = "*****";

/// Number of characters in `bytes` decoded lossily: each invalid UTF-8 sequence counts as
/// one (it becomes one U+FFFD), as editors and `String::from_utf8_lossy` show it.
pub(crate) fn lossy_char_count(bytes: &[u8]) -> usize {
    if bytes.is_ascii() {
        return bytes.len();
    }
    bytes
        .utf8_chunks()
        .map(|c| c.valid().chars().count() + usize::from(!c.invalid().is_empty()))
        .sum()
}

/// Walks forward through a file turning byte offsets into 1-based line and column.
/// Offsets must be asked for in non-decreasing order, so all positions of a file cost one
/// pass over the bytes up to the last match, however long its lines are.
pub(crate) struct Cursor<'a> {
    content: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    /// Characters between `line_start` and `pos`.
    col_chars: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(content: &'a [u8]) -> Self {
        Cursor {
            content,
            pos: 0,
            line: 1,
            line_start: 0,
            col_chars: 0,
        }
    }

    /// Moves to `to` (>= the previous offset) and returns (line, column, line start).
    pub(crate) fn seek(&mut self, to: usize) -> (u32, u32, usize) {
        debug_assert!(to >= self.pos);
        let to = to.max(self.pos).min(self.content.len());
        let seg = &self.content[self.pos..to];
        match seg.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.line += seg.iter().filter(|&&b| b == b'\n').count();
                self.line_start = self.pos + last + 1;
                self.col_chars = lossy_char_count(&self.content[self.line_start..to]);
            }
            None => self.col_chars += lossy_char_count(seg),
        }
        self.pos = to;
        (
            saturate(self.line),
            saturate(self.col_chars + 1),
            self.line_start,
        )
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How many leading characters of a secret of `chars` characters a snippet may show: at
/// most 4, and at most a quarter, so short passwords are not half revealed.
fn shown_chars(chars: usize) -> usize {
    (chars / 4).min(4)
}

/// The redacted form of a secret: its first characters (see [`shown_chars`]) and a mask.
pub(crate) fn redact(secret: &str) -> String {
    let n = secret.chars().count();
    let mut out: String = secret.chars().take(shown_chars(n)).collect();
    out.push_str(MASK);
    out
}

/// The line holding `start`, with `content[start..end]` redacted, trimmed and cut to about
/// [`SNIPPET_MAX_CHARS`] characters around the secret. A secret spanning lines is cut at
/// its first line end. Any other copy of the secret on the line is redacted too, so the
/// snippet never contains the whole secret. Only a bounded window of the line is decoded,
/// so a file that is one enormous line costs no more per match than a normal one.
pub(crate) fn snippet(content: &[u8], line_start: usize, start: usize, end: usize) -> String {
    let line_end = content[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(content.len(), |i| start + i);
    let multiline = end > line_end;

    // Byte windows wide enough for the character budgets (a character is at most 4 bytes).
    let pre_lo = char_boundary_forward(
        content,
        start.saturating_sub(4 * SNIPPET_MAX_BEFORE).max(line_start),
        start,
    );
    let suf_lo = end.min(line_end);
    let suf_hi = char_boundary_back(
        content,
        (suf_lo + 4 * SNIPPET_MAX_CHARS).min(line_end),
        suf_lo,
    );

    let secret_text = String::from_utf8_lossy(&content[start..end]);
    let masked = redact(&secret_text);
    let prefix = String::from_utf8_lossy(&content[pre_lo..start]);
    let prefix = if pre_lo == line_start {
        prefix.trim_start()
    } else {
        &prefix[..]
    };
    let suffix = if multiline {
        String::new()
    } else {
        String::from_utf8_lossy(&content[suf_lo..suf_hi]).into_owned()
    };
    let suffix = suffix.trim_end();

    let prefix_chars = prefix.chars().count();
    let masked_chars = masked.chars().count();
    let suffix_chars = suffix.chars().count();
    let keep_before = if prefix_chars + masked_chars + suffix_chars > SNIPPET_MAX_CHARS {
        prefix_chars.min(SNIPPET_MAX_BEFORE)
    } else {
        prefix_chars
    };
    let room_after = SNIPPET_MAX_CHARS.saturating_sub(keep_before + masked_chars);

    let mut out = String::with_capacity(4 * SNIPPET_MAX_CHARS);
    if keep_before < prefix_chars || pre_lo > line_start {
        out.push('…');
    }
    out.extend(prefix.chars().skip(prefix_chars - keep_before));
    out.push_str(&masked);
    out.extend(suffix.chars().take(room_after));
    if multiline || suffix_chars > room_after || suf_hi < line_end {
        // More follows (the rest of a multi-line secret, or of the line); say so.
        out.push('…');
    }
    if !secret_text.is_empty() && out.contains(secret_text.as_ref()) {
        let replacement = if masked.contains(secret_text.as_ref()) {
            MASK.to_owned()
        } else {
            masked
        };
        out = out.replace(secret_text.as_ref(), &replacement);
    }
    out
}

/// Moves `i` forward (not past `limit`) off UTF-8 continuation bytes.
fn char_boundary_forward(content: &[u8], mut i: usize, limit: usize) -> usize {
    while i < limit && (content[i] & 0xC0) == 0x80 {
        i += 1;
    }
    i
}

/// Moves `i` back (not below `limit`) off UTF-8 continuation bytes.
fn char_boundary_back(content: &[u8], mut i: usize, limit: usize) -> usize {
    while i > limit && i < content.len() && (content[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}
