//! Parses one NVD CVE API 2.0 response (`GET .../cves/2.0?cveId=...`). Pure: tested natively.
//!
//! Only the envelope is strict (an object whose `vulnerabilities` is an array, and a record
//! whose `cve.id` is the CVE asked for). Everything inside the record is read defensively: a
//! field that is missing or of the wrong type is skipped, never an error.

use secflow_pdk::serde_json::{self, Value};

/// Longest description kept, in characters (an ellipsis marks a cut).
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest short text field kept (dates, status, vector, URLs are cut to this).
const MAX_SHORT: usize = 512;

/// The CVSS metric chosen for a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    /// `3.1`, `4.0` or `3.0`.
    pub version: &'static str,
    pub vector: String,
    pub base_score: Option<f64>,
    pub base_severity: Option<String>,
    /// Who scored it (`nvd@nist.gov`, a CNA's address or UUID).
    pub source: Option<String>,
    /// `type` was `Primary`.
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub url: String,
    pub tags: Vec<String>,
}

/// What the plugin uses from one NVD record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NvdRecord {
    pub id: String,
    /// The English description, control characters replaced, cut to
    /// [`MAX_DESCRIPTION_CHARS`].
    pub description: Option<String>,
    pub published: Option<String>,
    pub last_modified: Option<String>,
    /// `vulnStatus`: `Analyzed`, `Modified`, `Awaiting Analysis`, `Rejected`, ...
    pub status: Option<String>,
    pub cvss: Option<Cvss>,
    /// CWE numbers from every weakness entry, deduplicated in order; `NVD-CWE-Other` and
    /// `NVD-CWE-noinfo` are left out.
    pub cwe_ids: Vec<u32>,
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Found(Box<NvdRecord>),
    /// `totalResults` 0 or an empty `vulnerabilities` array.
    NotFound,
}

/// Replaces control characters (terminal escapes, newlines) with spaces and trims.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Cuts `text` to at most `max` characters, marking a cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => {
            let mut cut = text[..end].trim_end().to_string();
            cut.push('…');
            cut
        }
    }
}

fn short(v: Option<&Value>) -> Option<String> {
    let s = clean(v?.as_str()?);
    (!s.is_empty()).then(|| truncate(&s, MAX_SHORT))
}

/// `CWE-79` → 79. Anything else (including `NVD-CWE-Other`, `NVD-CWE-noinfo`) → `None`.
pub fn cwe_number(text: &str) -> Option<u32> {
    let digits = text.trim().strip_prefix("CWE-")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// The metric to use: versions in the order 3.1, 4.0, 3.0, and within one version the first
/// `Primary` entry, else the first entry. Entries whose vector does not start with its
/// version's prefix are ignored.
fn choose_cvss(metrics: &Value) -> Option<Cvss> {
    for (key, version, prefix) in [
        ("cvssMetricV31", "3.1", "CVSS:3.1/"),
        ("cvssMetricV40", "4.0", "CVSS:4.0/"),
        ("cvssMetricV30", "3.0", "CVSS:3.0/"),
    ] {
        let Some(list) = metrics.get(key).and_then(Value::as_array) else {
            continue;
        };
        let candidates: Vec<Cvss> = list
            .iter()
            .filter_map(|m| {
                let data = m.get("cvssData")?;
                let vector = data.get("vectorString")?.as_str()?.trim();
                if !vector.starts_with(prefix)
                    || vector.len() > 256
                    || !vector.bytes().all(|b| b.is_ascii_graphic())
                {
                    return None;
                }
                Some(Cvss {
                    version,
                    vector: vector.to_string(),
                    base_score: data
                        .get("baseScore")
                        .and_then(Value::as_f64)
                        .filter(|s| (0.0..=10.0).contains(s)),
                    // v3/v4 keep baseSeverity inside cvssData; v2 kept it beside.
                    base_severity: short(data.get("baseSeverity"))
                        .or_else(|| short(m.get("baseSeverity"))),
                    source: short(m.get("source")),
                    primary: m.get("type").and_then(Value::as_str) == Some("Primary"),
                })
            })
            .collect();
        if let Some(best) = candidates
            .iter()
            .find(|c| c.primary)
            .or_else(|| candidates.first())
        {
            return Some(best.clone());
        }
    }
    None
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Parses a response body for the CVE `requested` (canonical upper-case id).
pub fn parse_response(body: &[u8], requested: &str) -> Result<Parsed, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(root) = root.as_object() else {
        return Err("not a JSON object".to_string());
    };
    if root.get("totalResults").and_then(Value::as_u64) == Some(0) {
        return Ok(Parsed::NotFound);
    }
    let vulns = root
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .ok_or("no `vulnerabilities` array")?;
    let Some(first) = vulns.first() else {
        return Ok(Parsed::NotFound);
    };
    let cve = first
        .get("cve")
        .filter(|c| c.is_object())
        .ok_or("`vulnerabilities[0].cve` is missing")?;
    let id = cve
        .get("id")
        .and_then(Value::as_str)
        .ok_or("`vulnerabilities[0].cve.id` is missing")?;
    if !id.trim().eq_ignore_ascii_case(requested) {
        return Err(format!(
            "the response is for `{}`, not {requested}",
            truncate(&clean(id), 40)
        ));
    }

    let description = array(cve.get("descriptions"))
        .iter()
        .find(|d| {
            d.get("lang")
                .and_then(Value::as_str)
                .is_some_and(|l| l.eq_ignore_ascii_case("en"))
        })
        .and_then(|d| d.get("value")?.as_str())
        .map(clean)
        .filter(|d| !d.is_empty())
        .map(|d| truncate(&d, MAX_DESCRIPTION_CHARS));

    let mut cwe_ids = Vec::new();
    for weakness in array(cve.get("weaknesses")) {
        for d in array(weakness.get("description")) {
            if let Some(n) = d.get("value").and_then(Value::as_str).and_then(cwe_number)
                && !cwe_ids.contains(&n)
            {
                cwe_ids.push(n);
            }
        }
    }

    let references = array(cve.get("references"))
        .iter()
        .filter_map(|r| {
            let url = short(r.get("url"))?;
            let tags = array(r.get("tags"))
                .iter()
                .filter_map(|t| short(Some(t)))
                .collect();
            Some(Reference { url, tags })
        })
        .collect();

    Ok(Parsed::Found(Box::new(NvdRecord {
        id: requested.to_string(),
        description,
        published: short(cve.get("published")),
        last_modified: short(cve.get("lastModified")),
        status: short(cve.get("vulnStatus")),
        cvss: cve.get("metrics").and_then(choose_cvss),
        cwe_ids,
        references,
    })))
}
