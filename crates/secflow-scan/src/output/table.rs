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

pub fn render(report: &ScanReport, color: bool) -> String {
    let p = Painter { color };
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
        let mut current_path: Option<&str> = None;
        for f in group {
            if current_path != Some(f.path()) {
                current_path = Some(f.path());
                let path = if f.path().is_empty() {
                    "(target)"
                } else {
                    f.path()
                };
                let _ = writeln!(out, "  {}", p.bold(path));
            }
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
            let _ = writeln!(
                out,
                "    {position:<8} {}  {}{}",
                p.paint(severity_style(severity), &f.rule_id),
                f.title,
                p.dim(&cwe)
            );
            if !f.message.is_empty() && f.message != f.title {
                let _ = writeln!(out, "             {}", f.message);
            }
            if let Some(snippet) = f.location.as_ref().and_then(|l| l.snippet.as_deref()) {
                let first = snippet.lines().next().unwrap_or("").trim();
                if !first.is_empty() {
                    let _ = writeln!(out, "             {} {}", p.dim("│"), p.dim(first));
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

    if !report.plugins.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Plugins"));
        let width = report.plugins.iter().map(|p| p.id.len()).max().unwrap_or(0);
        for st in &report.plugins {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<8} {:<13} {:>6} files {:>5} findings {:>3} errors {:>9.1} ms{}",
                st.id,
                st.version,
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
            let _ = writeln!(out, "\n{} {}", p.bold("Analytics:"), a.plugin);
            for line in a.summary_markdown.lines() {
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
                e.plugin,
                e.kind,
                e.file
                    .as_deref()
                    .map(|f| format!(" on {f}"))
                    .unwrap_or_default(),
                e.message
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
