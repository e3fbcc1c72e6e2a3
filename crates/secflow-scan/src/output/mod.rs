//! Report formats. Each takes a finished [`ScanReport`](crate::ScanReport).

pub mod html;
pub mod sarif;
pub mod table;

use crate::report::ScanReport;
use std::str::FromStr;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Sarif,
    Html,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "html" => Ok(Format::Html),
            _ => Err(format!(
                "unknown format `{s}`; use table, json, sarif or html"
            )),
        }
    }
}

/// The versioned JSON document (`docs/scan-json.md`). Control and bidirectional
/// characters in plugin text are written as `\uXXXX` escapes, so printing the file cannot
/// drive a terminal; the JSON value is the same.
pub fn json(report: &ScanReport) -> String {
    secflow_term::to_json_pretty(report).expect("a scan report serializes") + "\n"
}

/// Renders `report` in `format`. `look` (colors, width) applies to the table only.
pub fn render(report: &ScanReport, format: Format, look: table::Look) -> String {
    match format {
        Format::Table => table::render(report, look),
        Format::Json => json(report),
        Format::Sarif => sarif::render(report),
        Format::Html => html::render(report),
    }
}
