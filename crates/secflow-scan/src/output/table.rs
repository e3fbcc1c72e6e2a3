//! The terminal report: findings grouped by severity, then by file, then a summary with one
//! line per severity and the plugins' statistics. Colors only when asked (the CLI asks on a
//! TTY, never when piped, never with `NO_COLOR`).

use crate::model::Severity;
use crate::report::ScanReport;
use anstyle::{AnsiColor, Effects, Style};
use std::fmt::Write as _;

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => Style::new()
            .fg_color(Some(AnsiColor::Magenta.into()))
            .effects(Effects::BOLD),
        Severity::High => Style::new()
            .fg_color(Some(AnsiColor::Red.into()))
            .effects(Effects::BOLD),
        Severity::Medium => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Severity::Low => Style::new().fg_color(Some(AnsiColor::Blue.into())),
        Severity::Info => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
    }
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
    fn dim(&self, text: &str) -> String {
        self.paint(Style::new().effects(Effects::DIMMED), text)
    }
    fn bold(&self, text: &str) -> String {
        self.paint(Style::new().effects(Effects::BOLD), text)
    }
}

/// How the table looks: colors, and the width it wraps to (`None`: no wrapping, as when
/// the output is a pipe and `COLUMNS` is unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Look {
    pub color: bool,
    pub width: Option<usize>,
}

/// Columns of a finding's continuation lines (under its title, after the position).
const HANG: &str = "             ";
/// Narrower terminals still get this width: below it, wrapping helps nobody.
const MIN_WIDTH: usize = 40;

pub fn render(report: &ScanReport, look: Look) -> String {
    let p = Painter { color: look.color };
    let width = look.width.map(|w| w.max(MIN_WIDTH));
    let wrap = |first: &str, text: &str| -> String {
        match width {
            Some(width) => textwrap::fill(
                text,
                textwrap::Options::new(width)
                    .initial_indent(first)
                    .subsequent_indent(HANG),
            ),
            None => format!("{first}{text}"),
        }
    };
    let mut out = String::new();
    for severity in Severity::ALL {
        let group: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let heading = format!("{} ({})", severity.as_str().to_uppercase(), group.len());
        let _ = writeln!(out, "{}", p.paint(severity_style(severity), &heading));
        // Grouped by file within the severity, files in the order they first appear (the
        // report is sorted by path within a severity), lines in order within a file.
        let mut by_path: Vec<(&str, Vec<_>)> = Vec::new();
        for f in group {
            match by_path.iter_mut().find(|(path, _)| *path == f.path()) {
                Some((_, list)) => list.push(f),
                None => by_path.push((f.path(), vec![f])),
            }
        }
        for (path, list) in by_path {
            let path = if path.is_empty() { "(target)" } else { path };
            let _ = writeln!(out, "  {}", p.bold(&safe(path)));
            for f in list {
                let position = f
                    .location
                    .as_ref()
                    .filter(|l| l.start_line > 0)
                    .map(|l| format!("{}:{}", l.start_line, l.start_column.max(1)))
                    .unwrap_or_else(|| "-".into());
                let cwe = if f.cwe_ids.is_empty() {
                    String::new()
                } else {
                    let ids: Vec<String> = f.cwe_ids.iter().map(|c| format!("CWE-{c}")).collect();
                    format!(" [{}]", ids.join(", "))
                };
                // A message that starts with the title says it all: print it once.
                let title = safe(&f.title);
                let message = safe(&f.message);
                let (head, rest) = if message.starts_with(title.as_str()) {
                    (message.as_str(), "")
                } else {
                    (title.as_str(), message.as_str())
                };
                let first = format!("    {position:<8} ");
                let text = format!(
                    "{}  {head}{}",
                    p.paint(severity_style(severity), &safe(&f.rule_id)),
                    p.dim(&cwe)
                );
                let _ = writeln!(out, "{}", wrap(&first, &text));
                if !rest.is_empty() {
                    let _ = writeln!(out, "{}", wrap(HANG, rest));
                }
                if let Some(snippet) = f.location.as_ref().and_then(|l| l.snippet.as_deref()) {
                    let line = safe(snippet.lines().next().unwrap_or("").trim());
                    if !line.is_empty() {
                        // Code is cut, not wrapped: a wrapped line of code reads as two.
                        let room = width.map(|w| w.saturating_sub(HANG.len() + 2).max(10));
                        let line = match room {
                            Some(room) if textwrap::core::display_width(&line) > room => {
                                let mut cut = String::new();
                                let mut used = 0;
                                for c in line.chars() {
                                    let w =
                                        textwrap::core::display_width(c.encode_utf8(&mut [0; 4]));
                                    if used + w + 1 > room {
                                        break;
                                    }
                                    used += w;
                                    cut.push(c);
                                }
                                cut + "…"
                            }
                            _ => line,
                        };
                        let _ = writeln!(out, "{HANG}{} {}", p.dim("│"), p.dim(&line));
                    }
                }
            }
        }
        out.push('\n');
    }
    if report.findings.is_empty() {
        let _ = writeln!(out, "No findings.\n");
    }

    let s = &report.summary;
    let _ = writeln!(out, "{}", p.bold("Summary"));
    for severity in Severity::ALL {
        let n = s.by_severity.get(&severity).copied().unwrap_or(0);
        let label = format!("{:<9}", severity.as_str());
        let label = if n > 0 {
            p.paint(severity_style(severity), &label)
        } else {
            p.dim(&label)
        };
        let _ = writeln!(out, "  {label} {n}");
    }
    let skipped: u64 = s.files_skipped.values().sum();
    let mut skipped_detail: Vec<String> = s
        .files_skipped
        .iter()
        .map(|(r, n)| format!("{n} {}", r.as_str()))
        .collect();
    skipped_detail.sort();
    let _ = writeln!(
        out,
        "  {} findings in {} files ({}) scanned in {:.2} s{}{}",
        s.findings,
        s.files_scanned,
        human_bytes(s.bytes_scanned),
        report.duration_ms as f64 / 1000.0,
        if skipped > 0 {
            format!("; {skipped} skipped ({})", skipped_detail.join(", "))
        } else {
            String::new()
        },
        suppressed_note(s.suppressed_inline, s.suppressed_baseline),
    );
    if s.files_ignored > 0 {
        let _ = writeln!(
            out,
            "  {} file(s) left out by ignore files (.gitignore, .ignore, .secflowignore); --no-ignore scans them",
            s.files_ignored
        );
    }

    if !report.plugins.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Plugins"));
        let width = report.plugins.iter().map(|p| p.id.len()).max().unwrap_or(0);
        for st in &report.plugins {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<8} {:<13} {:>6} files {:>5} findings {:>3} errors {:>9.1} ms{}",
                safe(&st.id),
                safe(&st.version),
                st.kind,
                st.files,
                st.findings,
                st.errors,
                st.time_ms,
                st.stopped
                    .as_deref()
                    .map(|s| format!("  ({s})"))
                    .unwrap_or_default(),
            );
        }
    }
    for a in &report.analytics {
        if !a.summary_markdown.trim().is_empty() {
            let _ = writeln!(out, "\n{} {}", p.bold("Analytics:"), safe(&a.plugin));
            for line in markdown_to_text(&a.summary_markdown).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if report.partial {
        let _ = writeln!(
            out,
            "\n{} {} plugin error(s); some results are missing:",
            p.paint(
                Style::new()
                    .fg_color(Some(AnsiColor::Yellow.into()))
                    .effects(Effects::BOLD),
                "Partial scan:"
            ),
            report.errors.len()
        );
        for e in report.errors.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {}{}: {}",
                safe(&e.plugin),
                e.kind,
                e.file
                    .as_deref()
                    .map(|f| format!(" on {}", safe(f)))
                    .unwrap_or_default(),
                safe(&e.message)
            );
        }
        if report.errors.len() > 20 {
            let _ = writeln!(
                out,
                "  … and {} more (see --format json)",
                report.errors.len() - 20
            );
        }
    }
    out
}

/// Text from plugins and scanned files, made safe for a terminal: control, escape and
/// bidirectional characters (which could rewrite the screen, the title or the reading
/// order) are shown as `\u{..}` escapes.
pub fn safe(text: &str) -> String {
    secflow_term::escape_line(text).into_owned()
}

/// Plain-text rendering of the small markdown analytics plugins write: emphasis and code
/// marks dropped, tables aligned, separator rows removed. Plugin text never carries escape
/// sequences to the terminal.
pub fn markdown_to_text(markdown: &str) -> String {
    let clean = |s: &str| -> String {
        s.replace("**", "")
            .replace('`', "")
            .replace("\\|", "|")
            .chars()
            .filter(|c| !secflow_term::is_unsafe(*c))
            .collect()
    };
    let mut out = String::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with('|') {
            out.push_str(clean(lines[i]).trim_end());
            out.push('\n');
            i += 1;
            continue;
        }
        // A table: collect its rows, then pad every column to its widest cell.
        let mut rows: Vec<Vec<String>> = Vec::new();
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            let cells: Vec<String> = split_cells(lines[i])
                .iter()
                .map(|c| clean(c.trim()))
                .collect();
            let separator = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')));
            if !separator {
                rows.push(cells);
            }
            i += 1;
        }
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    out
}

/// Cells of a markdown table row; `\\|` is a literal bar inside a cell.
fn split_cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row
        .strip_suffix('|')
        .filter(|r| !r.ends_with('\\'))
        .unwrap_or(row);
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push_str("\\|");
            }
            '|' => cells.push(String::new()),
            other => cells.last_mut().unwrap().push(other),
        }
    }
    cells
}

fn suppressed_note(inline: usize, baseline: usize) -> String {
    match (inline, baseline) {
        (0, 0) => String::new(),
        (i, 0) => format!("; {i} suppressed inline"),
        (0, b) => format!("; {b} in baseline"),
        (i, b) => format!("; {i} suppressed inline, {b} in baseline"),
    }
}

/// `1.5 MB` style sizes (decimal units, as throughput figures are quoted).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_become_aligned_text() {
        let md = "**Risk: 9/100**\n\n| CWE | Name | N |\n|---|---|---:|\n| CWE-79 | XSS \\| web | 3 |\n| CWE-1 | `x` | 10 |\n";
        let text = markdown_to_text(md);
        assert_eq!(
            text,
            "Risk: 9/100\n\nCWE     Name       N\nCWE-79  XSS | web  3\nCWE-1   x          10\n"
        );
        assert!(!markdown_to_text("a\u{1b}[31mred").contains('\u{1b}'));
        assert_eq!(safe("ok\u{1b}]0;pwned\u{7}"), "ok\\u{1b}]0;pwned\\u{7}");
    }
}
