//! A self-contained HTML report: inline CSS and SVG charts, no script, no fetch. A
//! Content-Security-Policy of `default-src 'none'` makes that a guarantee rather than a
//! habit, because findings, snippets and analytics markdown come from untrusted plugins
//! and scanned files: all text is escaped, and markdown is rendered with raw HTML disabled
//! and only http(s) links kept.

use crate::model::{Finding, Severity};
use crate::output::table::human_bytes;
use crate::report::ScanReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Text for an HTML text node: control and bidirectional characters (which would reorder
/// what the reader sees) shown as `\u{..}`, then HTML-escaped.
fn esc(text: &str) -> String {
    html_escape::encode_text(&secflow_term::escape(text)).into_owned()
}

/// The same for a double-quoted attribute value.
fn attr(text: &str) -> String {
    html_escape::encode_double_quoted_attribute(&secflow_term::escape(text)).into_owned()
}

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#7b1fa2",
        Severity::High => "#c62828",
        Severity::Medium => "#ef6c00",
        Severity::Low => "#1565c0",
        Severity::Info => "#546e7a",
    }
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f23;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9d1d9;font-size:14px}main{padding:24px 32px;max-width:1200px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin-bottom:20px}
h2{font-size:18px;margin:0 0 12px}h3{font-size:15px;margin:16px 0 8px;font-family:ui-monospace,monospace}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border-radius:8px;padding:10px 16px;color:#fff;min-width:90px}
.card b{display:block;font-size:24px}.charts{display:flex;gap:32px;flex-wrap:wrap}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa}.sev{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px;font-weight:600}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
pre{background:#f6f8fa;padding:6px 8px;border-radius:4px;margin:4px 0 0;white-space:pre-wrap;word-break:break-all}
.src .ln{color:#8c959f;user-select:none}.src .hit{background:#fff1c2;display:inline-block;width:100%}
td code{background:#f6f8fa;padding:0 3px;border-radius:3px}
.muted{color:#57606a}.warn{background:#fff8c5;border-color:#d4a72c}details summary{cursor:pointer}
";

pub fn render(report: &ScanReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("SecFlow scan of {}", report.target);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let s = &report.summary;
    let _ = write!(
        h,
        "<header><h1>{}</h1><p>{} findings · {} files ({}) · {:.2} s · started {} · secflow {}{}</p></header><main>",
        esc(&title),
        s.findings,
        s.files_scanned,
        human_bytes(s.bytes_scanned),
        report.duration_ms as f64 / 1000.0,
        esc(&report.started_at),
        esc(report.tool.version),
        if report.partial {
            " · <b>partial</b>"
        } else {
            ""
        }
    );

    if report.partial {
        let _ = write!(
            h,
            "<section class=\"warn\"><h2>Partial scan: {} plugin error(s)</h2><table><tr><th>Plugin</th><th>Kind</th><th>File</th><th>Message</th></tr>",
            report.errors.len()
        );
        for e in &report.errors {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&e.plugin),
                esc(&e.kind),
                esc(e.file.as_deref().unwrap_or("")),
                esc(&e.message)
            );
        }
        h.push_str("</table></section>");
    }

    // Summary cards and charts.
    h.push_str("<section><h2>Summary</h2><div class=\"cards\">");
    for sev in Severity::ALL {
        let n = s.by_severity.get(&sev).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<div class=\"card\" style=\"background:{}\"><b>{n}</b>{}</div>",
            color(sev),
            sev.as_str()
        );
    }
    // Each count is shown once: the cards carry the severities, the header the totals.
    h.push_str("</div><div class=\"charts\">");
    let mut cwe_counts: BTreeMap<u32, usize> = BTreeMap::new();
    for f in &report.findings {
        for c in &f.cwe_ids {
            *cwe_counts.entry(*c).or_default() += 1;
        }
    }
    let mut cwes: Vec<(u32, usize)> = cwe_counts.into_iter().collect();
    cwes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let cwe_bars: Vec<(String, usize, &str)> = cwes
        .iter()
        .take(10)
        .map(|(c, n)| (format!("CWE-{c}"), *n, "#0969da"))
        .collect();
    if !cwe_bars.is_empty() {
        h.push_str(&bar_chart("Top CWEs", &cwe_bars));
    }
    h.push_str("</div></section>");

    for a in &report.analytics {
        if a.summary_markdown.trim().is_empty() && a.metrics.is_empty() {
            continue;
        }
        let _ = write!(h, "<section><h2>Analytics: {}</h2>", esc(&a.plugin));
        h.push_str(&markdown(&a.summary_markdown));
        h.push_str("</section>");
    }

    // Findings per file.
    h.push_str("<section><h2>Findings</h2>");
    if report.findings.is_empty() {
        h.push_str("<p class=\"muted\">No findings.</p>");
    }
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        by_file.entry(f.path()).or_default().push(f);
    }
    let mut files: Vec<(&str, Vec<&Finding>)> = by_file.into_iter().collect();
    // Files with the worst findings first.
    files.sort_by(|a, b| {
        let worst = |v: &Vec<&Finding>| v.iter().map(|f| f.severity).max();
        worst(&b.1).cmp(&worst(&a.1)).then(a.0.cmp(b.0))
    });
    let documented: std::collections::HashSet<&str> =
        report.rules.iter().map(|r| r.id.as_str()).collect();
    for (path, mut list) in files {
        list.sort_by_key(|f| (f.line(), std::cmp::Reverse(f.severity)));
        let _ = write!(
            h,
            "<h3>{} <span class=\"muted\">({})</span></h3><table><tr><th>Line</th><th>Severity</th><th>Rule</th><th>Finding</th></tr>",
            esc(if path.is_empty() { "(target)" } else { path }),
            list.len()
        );
        for f in list {
            let snippet = f.location.as_ref().map(source).unwrap_or_default();
            let cwes: Vec<String> = f
                .cwe_ids
                .iter()
                .map(|c| {
                    format!(
                        "<a href=\"https://cwe.mitre.org/data/definitions/{c}.html\">CWE-{c}</a>"
                    )
                })
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td><span class=\"sev\" style=\"background:{}\">{}</span></td><td>{}<br><span class=\"muted\">{}</span></td><td><b>{}</b><br>{}{}</td></tr>",
                f.line(),
                color(f.severity),
                f.severity.as_str(),
                rule_link(&f.rule_id, documented.contains(f.rule_id.as_str())),
                cwes.join(" "),
                inline(&f.title),
                if f.message != f.title {
                    inline(&f.message)
                } else {
                    String::new()
                },
                snippet
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    // Rules with their help.
    if !report.rules.is_empty() {
        h.push_str("<section><h2>Rules</h2>");
        for r in &report.rules {
            let _ = write!(
                h,
                "<details id=\"{}\"><summary><code>{}</code> — {}</summary><p>{}</p>{}</details>",
                attr(&rule_anchor(&r.id)),
                esc(&r.id),
                inline(&r.title),
                inline(&r.description),
                markdown(&r.help)
            );
        }
        h.push_str("</section>");
    }

    // Plugin statistics.
    h.push_str("<section><h2>Plugins</h2><table><tr><th>Plugin</th><th>Version</th><th>Kind</th><th>Origin</th><th>Files</th><th>Findings</th><th>Errors</th><th>Time (ms)</th><th>Peak memory</th><th>Digest</th></tr>");
    for p in &report.plugins {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&p.id),
            esc(&p.version),
            esc(&p.kind),
            esc(&p.origin),
            p.files,
            p.findings,
            p.errors,
            p.time_ms,
            human_bytes(p.peak_memory_bytes),
            esc(p.digest.get(..16).unwrap_or(&p.digest))
        );
    }
    h.push_str("</table></section>");

    if !report.skipped.is_empty() {
        let _ = write!(
            h,
            "<section><details><summary>{} skipped file(s)</summary><table>",
            report.skipped.len()
        );
        for sk in &report.skipped {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"muted\">{}</td></tr>",
                esc(&sk.path),
                sk.reason.as_str(),
                esc(&sk.detail)
            );
        }
        h.push_str("</table></details></section>");
    }
    h.push_str("</main></body></html>\n");
    h
}

/// The id of a rule's help in the Rules section.
fn rule_anchor(rule_id: &str) -> String {
    format!("rule-{rule_id}")
}

/// A finding's rule id, linked to the rule's help when the report has it.
fn rule_link(rule_id: &str, documented: bool) -> String {
    if documented {
        format!(
            "<a href=\"#{}\"><code>{}</code></a>",
            attr(&rule_anchor(rule_id)),
            esc(rule_id)
        )
    } else {
        format!("<code>{}</code>", esc(rule_id))
    }
}

/// Plain text with `code spans` rendered as code; everything escaped. An unmatched
/// backtick stays a backtick.
fn inline(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::new();
    // With an even number of parts the last backtick has no partner.
    let paired = if parts.len().is_multiple_of(2) {
        parts.len() - 1
    } else {
        parts.len()
    };
    for (i, part) in parts.iter().enumerate() {
        if i >= paired {
            out.push('`');
            out.push_str(&esc(part));
        } else if i % 2 == 1 && !part.is_empty() {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else if i % 2 == 1 {
            out.push_str("``");
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

/// The source around a finding (its lines marked, numbered), or the plugin's snippet when
/// the scan kept no context.
fn source(location: &crate::model::Location) -> String {
    if let Some(context) = &location.context {
        let last = context.start_line as usize + context.lines.len().saturating_sub(1);
        let digits = last.to_string().len();
        let end = location.end_line.max(location.start_line);
        let mut out = String::from("<pre class=\"src\">");
        for (n, line) in (context.start_line..).zip(&context.lines) {
            let hit = (location.start_line..=end).contains(&n);
            let _ = writeln!(
                out,
                "<span class=\"{}\"><span class=\"ln\">{n:>digits$}</span> {}</span>",
                if hit { "hit" } else { "ctx" },
                esc(line)
            );
        }
        out.push_str("</pre>");
        return out;
    }
    location
        .snippet
        .as_deref()
        .map(|s| format!("<pre>{}</pre>", esc(s)))
        .unwrap_or_default()
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(title: &str, bars: &[(String, usize, &str)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let (label_w, bar_w, row_h) = (90.0, 260.0, 24.0);
    let height = row_h * bars.len() as f64 + 30.0;
    let mut svg = format!(
        "<figure style=\"margin:8px 0\"><figcaption><b>{}</b></figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        label_w + bar_w + 50.0,
        attr(title)
    );
    for (i, (label, n, fill)) in bars.iter().enumerate() {
        let y = 10.0 + i as f64 * row_h;
        let w = bar_w * *n as f64 / max as f64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"{fill}\" rx=\"3\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 12.0,
            esc(label),
            label_w + w + 6.0,
            y + 12.0
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Markdown from plugins, rendered without raw HTML and with only http(s) links.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let text = secflow_term::escape(text);
    let events = Parser::new_ext(&text, Options::ENABLE_TABLES).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let safe = dest_url.starts_with("https://") || dest_url.starts_with("http://");
            Event::Start(Tag::Link {
                link_type,
                dest_url: if safe { dest_url } else { "#".into() },
                title,
                id,
            })
        }
        Event::Start(Tag::Image {
            link_type,
            title,
            id,
            ..
        }) => Event::Start(Tag::Image {
            link_type,
            // Images would be fetches; the CSP blocks them, and we do not emit them.
            dest_url: "".into(),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_are_rendered_and_escaped() {
        assert_eq!(
            inline("use `yaml.safe_load` not `<b>`"),
            "use <code>yaml.safe_load</code> not <code>&lt;b&gt;</code>"
        );
        assert_eq!(inline("a ` b"), "a ` b");
        assert_eq!(inline("`x` and `y"), "<code>x</code> and `y");
    }

    #[test]
    fn context_marks_the_finding_lines() {
        let location = crate::model::Location {
            path: "a.py".into(),
            start_line: 10,
            end_line: 10,
            context: Some(crate::model::Context {
                start_line: 9,
                lines: vec!["a".into(), "<b>".into(), "c".into()],
            }),
            ..Default::default()
        };
        let html = source(&location);
        assert!(
            html.contains("<span class=\"hit\"><span class=\"ln\">10</span> &lt;b&gt;</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"ctx\"><span class=\"ln\"> 9</span> a</span>"),
            "{html}"
        );
    }

    #[test]
    fn markdown_from_plugins_cannot_inject_html() {
        let out = markdown("# Hi\n<script>alert(1)</script>\n[x](javascript:alert(1)) **b**");
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.contains("javascript:"), "{out}");
        assert!(out.contains("<strong>b</strong>"));
    }
}
