//! Pure parsers for the two feeds, plus a bounded file reader. Nothing here calls the host,
//! so all of it is tested natively.
//!
//! - CISA KEV catalog, JSON: `{"catalogVersion": ..., "vulnerabilities": [{"cveID": ...,
//!   "vendorProject", "product", "vulnerabilityName", "dateAdded", "dueDate",
//!   "knownRansomwareCampaignUse", "requiredAction", ...}]}`. Unknown fields are ignored.
//! - FIRST EPSS scores, CSV as plain text (decompress the published `.csv.gz` first): an
//!   optional comment line `#model_version:...,score_date:...`, the header
//!   `cve,epss,percentile`, then one row per CVE with two numbers between 0 and 1.

use secflow_pdk::serde_json;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Largest feed file read (the real KEV catalog is about 1.5 MB, the EPSS CSV about 10 MB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Longest EPSS CSV line accepted (a real row is about 30 bytes).
pub const MAX_LINE_BYTES: usize = 1024;

/// Most KEV entries kept (the real catalog has about 1,500).
pub const MAX_KEV_ENTRIES: usize = 100_000;

/// Most EPSS rows kept (the real file has about 300,000, one per published CVE).
pub const MAX_EPSS_ROWS: usize = 1_000_000;

/// A CVE id packed into an integer: year in the high bits, sequence number in the low 40.
pub type CveKey = u64;

/// Parses `CVE-YYYY-NNNN...` (any case, surrounding spaces allowed) into a key. Refuses
/// anything else, including sequence numbers of five or more digits with a leading zero,
/// so that every key has exactly one canonical spelling ([`cve_string`]).
pub fn cve_key(id: &str) -> Option<CveKey> {
    let id = id.trim();
    if !id.get(..4)?.eq_ignore_ascii_case("CVE-") {
        return None;
    }
    let (year, seq) = id[4..].split_once('-')?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !(4..=12).contains(&seq.len()) || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seq.len() > 4 && seq.starts_with('0') {
        return None;
    }
    let year: u64 = year.parse().ok()?;
    let seq: u64 = seq.parse().ok()?;
    if seq >= 1 << 40 {
        return None;
    }
    Some(year << 40 | seq)
}

/// The canonical spelling of a key (`CVE-2021-44228`).
pub fn cve_string(key: CveKey) -> String {
    format!("CVE-{:04}-{:04}", key >> 40, key & ((1 << 40) - 1))
}

/// One catalog entry, as given in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevEntry {
    pub cve: String,
    pub vendor_project: String,
    pub product: String,
    pub vulnerability_name: String,
    pub date_added: String,
    pub due_date: String,
    /// `Known` or `Unknown` in the real catalog.
    pub ransomware: String,
    pub required_action: String,
}

#[derive(Debug, Default)]
pub struct Kev {
    pub catalog_version: Option<String>,
    pub entries: HashMap<CveKey, KevEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCatalog {
    #[serde(default)]
    catalog_version: Option<String>,
    vulnerabilities: KevEntries,
}

/// The `vulnerabilities` array, turned into the map entry by entry (the raw entries are
/// never all held at once).
struct KevEntries(HashMap<CveKey, KevEntry>);

impl<'de> Deserialize<'de> for KevEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KevEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of KEV entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<KevEntries, A::Error> {
                use serde::de::Error;
                let mut entries = HashMap::new();
                let mut i = 0usize;
                while let Some(v) = seq.next_element::<RawKev>()? {
                    if i == MAX_KEV_ENTRIES {
                        return Err(A::Error::custom(format!(
                            "more than {MAX_KEV_ENTRIES} entries in `vulnerabilities`"
                        )));
                    }
                    let key = cve_key(&v.cve_id).ok_or_else(|| {
                        A::Error::custom(format!(
                            "vulnerabilities[{i}].cveID: `{}` is not a CVE id",
                            clip(&v.cve_id)
                        ))
                    })?;
                    if v.date_added.trim().is_empty() {
                        return Err(A::Error::custom(format!(
                            "vulnerabilities[{i}].dateAdded: is empty"
                        )));
                    }
                    let text = |s: Option<String>| s.unwrap_or_default().trim().to_string();
                    entries.entry(key).or_insert(KevEntry {
                        cve: cve_string(key),
                        vendor_project: text(v.vendor_project),
                        product: text(v.product),
                        vulnerability_name: text(v.vulnerability_name),
                        date_added: v.date_added.trim().to_string(),
                        due_date: text(v.due_date),
                        ransomware: text(v.known_ransomware_campaign_use),
                        required_action: text(v.required_action),
                    });
                    i += 1;
                }
                Ok(KevEntries(entries))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKev {
    #[serde(rename = "cveID")]
    cve_id: String,
    #[serde(default)]
    vendor_project: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    vulnerability_name: Option<String>,
    date_added: String,
    #[serde(default)]
    due_date: Option<String>,
    #[serde(default)]
    known_ransomware_campaign_use: Option<String>,
    #[serde(default)]
    required_action: Option<String>,
}

fn refuse_gzip(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err("is gzip-compressed; decompress it first (e.g. `gunzip`)".to_string());
    }
    Ok(())
}

/// Parses the KEV catalog. Errors name the line and column, and the field (missing or
/// mistyped) or the entry index and field (a `cveID` that is not a CVE id).
pub fn parse_kev(bytes: &[u8]) -> Result<Kev, String> {
    refuse_gzip(bytes)?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    // serde would also read a struct from an array of its fields: refuse that shape here.
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii_whitespace())
        && bytes[at] == b'['
    {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(format!(
            "is not a valid KEV catalog: expected an object with `vulnerabilities`, found an array at line {line}"
        ));
    }
    let raw: RawCatalog =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a valid KEV catalog: {e}"))?;
    Ok(Kev {
        catalog_version: raw.catalog_version,
        entries: raw.vulnerabilities.0,
    })
}

/// One EPSS number with the number of decimals it was written with, so it can be written
/// back exactly as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    pub value: f64,
    /// Decimals in the file; `u8::MAX` when it was not plain decimal notation.
    pub decimals: u8,
}

impl Number {
    fn parse(text: &str) -> Option<Number> {
        let text = text.trim();
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            return None;
        }
        let value: f64 = text.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        let decimals = if text.bytes().any(|b| b"eE+-".contains(&b)) {
            u8::MAX
        } else {
            match text.split_once('.') {
                Some((_, frac)) => u8::try_from(frac.len()).unwrap_or(u8::MAX),
                None => 0,
            }
        };
        Some(Number { value, decimals })
    }

    /// The number as written in the file.
    pub fn text(&self) -> String {
        if self.decimals == u8::MAX {
            format!("{}", self.value)
        } else {
            format!("{:.*}", usize::from(self.decimals), self.value)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpssEntry {
    pub score: Number,
    pub percentile: Number,
}

#[derive(Debug, Default)]
pub struct Epss {
    pub model_version: Option<String>,
    pub score_date: Option<String>,
    pub entries: HashMap<CveKey, EpssEntry>,
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// Parses an EPSS CSV. Errors name the 1-based line and, for a bad value, the field.
pub fn parse_epss(bytes: &[u8]) -> Result<Epss, String> {
    refuse_gzip(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("line {line}: is not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rows_estimate = bytes.iter().filter(|&&b| b == b'\n').count().min(400_000);
    let mut out = Epss {
        entries: HashMap::with_capacity(rows_estimate),
        ..Epss::default()
    };
    let mut header_seen = false;
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("line {n}: is longer than {MAX_LINE_BYTES} bytes"));
        }
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if !header_seen {
                for part in comment.split(',') {
                    match part.split_once(':') {
                        Some(("model_version", v)) => out.model_version = Some(v.trim().into()),
                        Some(("score_date", v)) => out.score_date = Some(v.trim().into()),
                        _ => {}
                    }
                }
            }
            continue;
        }
        if !header_seen {
            let fields: Vec<String> = line.split(',').map(|f| f.trim().to_lowercase()).collect();
            if fields != ["cve", "epss", "percentile"] {
                return Err(format!(
                    "line {n}: expected the header `cve,epss,percentile`, found `{}`",
                    clip(line)
                ));
            }
            header_seen = true;
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 3 {
            return Err(format!(
                "line {n}: expected 3 fields (cve,epss,percentile), found {}",
                fields.len()
            ));
        }
        let key = cve_key(fields[0]).ok_or_else(|| {
            format!(
                "line {n}: field `cve`: `{}` is not a CVE id",
                clip(fields[0])
            )
        })?;
        let number = |name: &str, text: &str| {
            Number::parse(text)
                .filter(|v| (0.0..=1.0).contains(&v.value))
                .ok_or_else(|| {
                    format!(
                        "line {n}: field `{name}`: `{}` is not a number between 0 and 1",
                        clip(text)
                    )
                })
        };
        if out.entries.len() == MAX_EPSS_ROWS {
            return Err(format!("line {n}: more than {MAX_EPSS_ROWS} rows"));
        }
        let score = number("epss", fields[1])?;
        let percentile = number("percentile", fields[2])?;
        out.entries.insert(key, EpssEntry { score, percentile });
    }
    if !header_seen {
        return Err("missing the header line `cve,epss,percentile`".to_string());
    }
    Ok(out)
}

/// What [`read_feed`] found.
#[derive(Debug)]
pub enum Feed {
    /// The file could not be opened (missing, or its directory not granted): the reason.
    Missing(String),
    Data(Vec<u8>),
}

/// Reads a whole file, refusing one larger than `max` bytes without reading past the limit.
/// Errors are messages without the path (the caller adds it).
pub fn read_feed(path: &Path, max: u64) -> Result<Feed, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(Feed::Missing(e.to_string())),
    };
    let too_big = |len: u64| {
        format!(
            "is {len} bytes{}, over the {} MiB limit for a feed file",
            if len > max + 1 { "" } else { " or more" },
            max >> 20
        )
    };
    let mut capacity = 0;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err("is a directory, not a file".to_string());
        }
        if meta.len() > max {
            return Err(too_big(meta.len()));
        }
        capacity = meta.len() as usize + 1;
    }
    let mut data = Vec::with_capacity(capacity);
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if data.len() as u64 > max {
        return Err(too_big(data.len() as u64));
    }
    Ok(Feed::Data(data))
}
