//! What a plugin's returned value must look like beyond its WIT type: sizes of the pieces,
//! the form of identifiers, statuses that make sense. A value that breaks these rules is
//! `invalid-output`, so a front end never has to guess what to do with a 10 MB rule id, a
//! CVE id that is not one, or a "block" verdict with status 200.

use crate::bindings as b;
use crate::invoke::Output;

const MAX_RULE_ID: usize = 128;
const MAX_TITLE: usize = 1024;
const MAX_TEXT: usize = 64 << 10;
const MAX_PATH: usize = 4096;
const MAX_LIST: usize = 256;
const MAX_SHORT: usize = 256;

/// Checks a returned value; the error names the first problem found.
pub fn check_output(output: &Output) -> Result<(), String> {
    match output {
        Output::Findings(findings) => check_findings(findings),
        Output::BatchFindings(results) => results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .try_for_each(|f| check_findings(f)),
        Output::Report(report) => {
            for m in &report.metrics {
                check_short("a metric name", &m.name, MAX_SHORT)?;
                if m.labels.len() > MAX_LIST {
                    return Err(format!(
                        "metric `{}` has more than {MAX_LIST} labels",
                        m.name
                    ));
                }
            }
            Ok(())
        }
        Output::RequestVerdict(b::RequestVerdict::Block(block))
        | Output::ResponseVerdict(b::ResponseVerdict::Block(block)) => {
            if !(400..=599).contains(&block.status) {
                return Err(format!(
                    "a block verdict must carry a 4xx or 5xx status, not {}",
                    block.status
                ));
            }
            Ok(())
        }
        Output::ResponseVerdict(b::ResponseVerdict::Modify(resp)) => {
            if !(100..=599).contains(&resp.status) {
                return Err(format!("{} is not an HTTP status", resp.status));
            }
            Ok(())
        }
        Output::AttackResults(results) => results.iter().try_for_each(|r| {
            check_short("an attack id", &r.attack_id, MAX_SHORT)?;
            match &r.finding {
                Some(f) => check_finding(f),
                None => Ok(()),
            }
        }),
        Output::Health(_)
        | Output::Actions(_)
        | Output::Json(_)
        | Output::RequestVerdict(_)
        | Output::ResponseVerdict(_) => Ok(()),
    }
}

fn check_findings(findings: &[b::Finding]) -> Result<(), String> {
    findings.iter().try_for_each(check_finding)
}

fn check_short(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{what} is {} bytes, more than {max}", value.len()));
    }
    Ok(())
}

/// A rule id: 1 to 128 bytes of letters, digits and `._:/-`.
fn valid_rule_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RULE_ID
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:/-".contains(&c))
}

/// `CVE-YYYY-NNNN` with at least four digits in the sequence number.
fn valid_cve(id: &str) -> bool {
    let mut parts = id.splitn(3, '-');
    parts.next() == Some("CVE")
        && parts
            .next()
            .is_some_and(|y| y.len() == 4 && y.bytes().all(|c| c.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|n| (4..=19).contains(&n.len()) && n.bytes().all(|c| c.is_ascii_digit()))
}

pub fn check_finding(f: &b::Finding) -> Result<(), String> {
    if !valid_rule_id(&f.rule_id) {
        return Err(format!(
            "rule id `{}` must be 1 to {MAX_RULE_ID} bytes of letters, digits and `._:/-`",
            f.rule_id.chars().take(64).collect::<String>()
        ));
    }
    let what = |field: &str| format!("the {field} of a `{}` finding", f.rule_id);
    check_short(&what("title"), &f.title, MAX_TITLE)?;
    check_short(&what("message"), &f.message, MAX_TEXT)?;
    if f.cwe_ids.len() > MAX_LIST || f.cve_ids.len() > MAX_LIST || f.tags.len() > MAX_LIST {
        return Err(format!(
            "{} has more than {MAX_LIST} CWE ids, CVE ids or tags",
            what("list")
        ));
    }
    if let Some(bad) = f.cve_ids.iter().find(|c| !valid_cve(c)) {
        return Err(format!(
            "`{}` in {} is not a CVE id (CVE-YYYY-NNNN)",
            bad.chars().take(64).collect::<String>(),
            what("cve-ids")
        ));
    }
    for tag in &f.tags {
        check_short(&what("tags"), tag, MAX_SHORT)?;
    }
    if let Some(v) = &f.cvss_vector {
        check_short(&what("cvss-vector"), v, MAX_SHORT)?;
    }
    if let Some(fp) = &f.fingerprint {
        check_short(&what("fingerprint"), fp, MAX_SHORT)?;
    }
    if f.properties.len() > MAX_LIST {
        return Err(format!(
            "{} has more than {MAX_LIST} entries",
            what("properties")
        ));
    }
    for (k, v) in &f.properties {
        check_short(&what("property names"), k, MAX_SHORT)?;
        check_short(&what("property values"), v, MAX_TEXT)?;
    }
    if let Some(loc) = &f.location {
        check_short(&what("path"), &loc.path, MAX_PATH)?;
        if let Some(snippet) = &loc.snippet {
            check_short(&what("snippet"), snippet, MAX_TEXT)?;
        }
        if loc.end_line != 0 && loc.start_line != 0 && loc.end_line < loc.start_line {
            return Err(format!(
                "{} ends on line {} before it starts on line {}",
                what("location"),
                loc.end_line,
                loc.start_line
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> b::Finding {
        b::Finding {
            rule_id: "aws-access-key".into(),
            title: "t".into(),
            message: "m".into(),
            severity: b::Severity::High,
            confidence: b::Confidence::High,
            cwe_ids: vec![798],
            cve_ids: vec!["CVE-2021-44228".into()],
            cvss_vector: None,
            location: None,
            fingerprint: None,
            tags: vec![],
            properties: vec![],
        }
    }

    #[test]
    fn good_findings_pass_and_bad_ones_name_the_problem() {
        check_finding(&finding()).unwrap();
        type Mutation = fn(&mut b::Finding);
        let cases: [(Mutation, &str); 5] = [
            (|f| f.rule_id = String::new(), "rule id"),
            (|f| f.rule_id = "a b".into(), "rule id"),
            (|f| f.cve_ids = vec!["CVE-21-1".into()], "not a CVE id"),
            (|f| f.title = "x".repeat(MAX_TITLE + 1), "title"),
            (
                |f| {
                    f.location = Some(b::Location {
                        path: "a".into(),
                        start_line: 9,
                        start_column: 0,
                        end_line: 3,
                        end_column: 0,
                        snippet: None,
                    })
                },
                "before it starts",
            ),
        ];
        for (mutate, expected) in cases {
            let mut f = finding();
            mutate(&mut f);
            let err = check_finding(&f).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_block_needs_an_error_status() {
        let ok = Output::RequestVerdict(b::RequestVerdict::Block(b::Block {
            status: 403,
            reason: "no".into(),
        }));
        check_output(&ok).unwrap();
        let bad = Output::RequestVerdict(b::RequestVerdict::Block(b::Block {
            status: 200,
            reason: "looks fine".into(),
        }));
        assert!(check_output(&bad).unwrap_err().contains("4xx or 5xx"));
    }
}
