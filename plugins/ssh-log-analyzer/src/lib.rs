//! OpenSSH auth log analyzer: turns `sshd` log entries into findings.
//!
//! - `ssh/brute-force`: at least `brute-force-threshold` failed logins from one address
//!   within `brute-force-window-seconds`; one finding per burst, at its first entry.
//! - `ssh/invalid-user`: logins tried for accounts that do not exist; one finding per address.
//! - `ssh/root-login-attempt`: failed logins as `root`; one finding per address.
//! - `ssh/success-after-failures`: an accepted login for a user and address that failed at
//!   least `success-after-failures-threshold` times within `success-window-seconds` before;
//!   at the first of those failures, naming the line of the success.
//!
//! Timestamps come from the host (syslog `Nov 21 03:14:07` or ISO 8601). Entries without one
//! are treated as simultaneous, so windows then cover the whole source.

use regex::Regex;
use secflow_pdk::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub struct SshLogAnalyzer;

impl Plugin for SshLogAnalyzer {}

/// What one log line says about an authentication.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Failed {
        user: String,
        ip: String,
        invalid: bool,
    },
    Accepted {
        user: String,
        ip: String,
    },
    InvalidUser {
        user: String,
        ip: String,
    },
}

fn patterns() -> &'static (Regex, Regex) {
    static P: OnceLock<(Regex, Regex)> = OnceLock::new();
    P.get_or_init(|| {
        (
            Regex::new(
                r"sshd\[\d+\]: (Failed|Accepted) (?:password|publickey|keyboard-interactive/pam|none) for (invalid user )?(\S*) from (\S+) port",
            )
            .expect("valid regex"),
            Regex::new(r"sshd\[\d+\]: Invalid user (\S*) from (\S+)").expect("valid regex"),
        )
    })
}

/// Parses one sshd message.
pub fn parse(message: &str) -> Option<Event> {
    if !message.contains("sshd[") {
        return None;
    }
    let (auth, invalid) = patterns();
    if let Some(c) = auth.captures(message) {
        let user = c[3].to_string();
        let ip = c[4].to_string();
        return Some(if &c[1] == "Accepted" {
            Event::Accepted { user, ip }
        } else {
            Event::Failed {
                user,
                ip,
                invalid: c.get(2).is_some(),
            }
        });
    }
    invalid.captures(message).map(|c| Event::InvalidUser {
        user: c[1].to_string(),
        ip: c[2].to_string(),
    })
}

/// Seconds since an arbitrary origin, for windows: syslog timestamps have no year, so a
/// month is counted as 31 days (windows of minutes or hours are unaffected).
pub fn seconds(timestamp: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = timestamp.trim();
    let hms = |s: &str| -> Option<i64> {
        let mut parts = s.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let sec: i64 = parts.next()?.get(..2)?.parse().ok()?;
        Some(h * 3600 + m * 60 + sec)
    };
    if let Some(month) = MONTHS.iter().position(|m| t.starts_with(m)) {
        let mut parts = t[3..].split_whitespace();
        let day: i64 = parts.next()?.parse().ok()?;
        return Some((month as i64 * 31 + day) * 86_400 + hms(parts.next()?)?);
    }
    // ISO 8601: YYYY-MM-DD[T ]hh:mm:ss
    let year: i64 = t.get(0..4)?.parse().ok()?;
    let month: i64 = t.get(5..7)?.parse().ok()?;
    let day: i64 = t.get(8..10)?.parse().ok()?;
    Some(((year * 12 + month) * 31 + day) * 86_400 + hms(t.get(11..)?)?)
}

/// Thresholds of the rules (see the config schema in plugin.toml).
#[derive(Debug, Clone)]
pub struct Config {
    pub brute_threshold: usize,
    pub brute_window: i64,
    pub success_threshold: usize,
    pub success_window: i64,
}

/// What is fixed about a rule.
struct Rule {
    id: &'static str,
    title: &'static str,
    severity: Severity,
    cwe: u32,
    help: &'static str,
}

fn setting(key: &str, default: u64) -> u64 {
    config()[key].as_u64().unwrap_or(default)
}

fn finding(
    rule: &Rule,
    source: &str,
    line: u64,
    snippet: &str,
    message: String,
    extra: Vec<(String, String)>,
) -> Finding {
    let mut properties = vec![
        (
            "secflow.rule-description".to_string(),
            rule.title.to_string(),
        ),
        ("secflow.rule-help".to_string(), rule.help.to_string()),
    ];
    properties.extend(extra);
    Finding {
        rule_id: format!("ssh/{}", rule.id),
        title: rule.title.into(),
        message,
        severity: rule.severity,
        confidence: Confidence::High,
        cwe_ids: vec![rule.cwe],
        cve_ids: Vec::new(),
        cvss_vector: None,
        location: Some(Location {
            path: source.to_string(),
            start_line: line as u32,
            start_column: 1,
            end_line: line as u32,
            end_column: 0,
            snippet: Some(snippet.chars().take(200).collect()),
        }),
        fingerprint: None,
        tags: vec!["ssh".into(), "logs".into()],
        properties,
    }
}

const BRUTE_FORCE: Rule = Rule {
    id: "brute-force",
    title: "SSH brute-force attack",
    severity: Severity::High,
    cwe: 307,
    help: "Block the address (fail2ban, firewall), disable password authentication (`PasswordAuthentication no`) and allow only keys; rate-limit SSH with `MaxStartups` and `MaxAuthTries`.",
};
const INVALID_USER: Rule = Rule {
    id: "invalid-user",
    title: "SSH logins for non-existent users",
    severity: Severity::Medium,
    cwe: 204,
    help: "Someone is probing for account names. Block the address, and make sure default and service accounts cannot log in over SSH (`AllowUsers`/`AllowGroups`).",
};
const ROOT_LOGIN: Rule = Rule {
    id: "root-login-attempt",
    title: "SSH login attempts as root",
    severity: Severity::Medium,
    cwe: 250,
    help: "Set `PermitRootLogin no` in sshd_config, log in as a named user and use sudo; block addresses that keep trying.",
};
const SUCCESS_AFTER_FAILURES: Rule = Rule {
    id: "success-after-failures",
    title: "SSH login succeeded after many failures",
    severity: Severity::Critical,
    cwe: 307,
    help: "Treat the account as possibly compromised: check the session's activity, rotate its credentials and keys, and disable password authentication.",
};

/// Analyzes the entries of one log source.
pub fn analyze(source: &str, entries: &[LogEntry], cfg: &Config) -> Vec<Finding> {
    struct Seen<'a> {
        line: u64,
        time: Option<i64>,
        event: Event,
        text: &'a str,
    }
    let events: Vec<Seen> = entries
        .iter()
        .filter_map(|e| {
            Some(Seen {
                line: e.line,
                time: e.timestamp.as_deref().and_then(seconds),
                event: parse(&e.message)?,
                text: &e.message,
            })
        })
        .collect();
    let within = |a: Option<i64>, b: Option<i64>, window: i64| match (a, b) {
        (Some(a), Some(b)) => (b - a).abs() <= window,
        _ => true,
    };
    let mut out = Vec::new();

    // Brute force: failed logins per address, in bursts.
    let mut failures_by_ip: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in &events {
        if let Event::Failed { ip, .. } = &s.event {
            failures_by_ip.entry(ip).or_default().push(s);
        }
    }
    for (ip, fails) in &failures_by_ip {
        let mut i = 0;
        while i < fails.len() {
            // The burst: every failure within the window of its first one.
            let mut j = i;
            while j + 1 < fails.len() && within(fails[i].time, fails[j + 1].time, cfg.brute_window)
            {
                j += 1;
            }
            let count = j - i + 1;
            if count >= cfg.brute_threshold {
                let mut users: Vec<&str> = fails[i..=j]
                    .iter()
                    .filter_map(|s| match &s.event {
                        Event::Failed { user, .. } => Some(user.as_str()),
                        _ => None,
                    })
                    .collect();
                users.sort();
                users.dedup();
                let span = match (fails[i].time, fails[j].time) {
                    (Some(a), Some(b)) => format!(" within {} s", b - a),
                    _ => String::new(),
                };
                out.push(finding(
                    &BRUTE_FORCE,
                    source,
                    fails[i].line,
                    fails[i].text,
                    format!(
                        "{count} failed SSH logins from {ip}{span} (users: {}), lines {}-{}",
                        users.join(", "),
                        fails[i].line,
                        fails[j].line
                    ),
                    vec![
                        ("source.ip".into(), ip.to_string()),
                        ("attempts".into(), count.to_string()),
                    ],
                ));
                i = j + 1;
            } else {
                i += 1;
            }
        }
    }

    // Invalid users and root attempts: one finding per address.
    let mut invalid: BTreeMap<&str, (u64, &str, Vec<&str>)> = BTreeMap::new();
    let mut root: BTreeMap<&str, (u64, &str, usize)> = BTreeMap::new();
    for s in &events {
        match &s.event {
            Event::InvalidUser { user, ip }
            | Event::Failed {
                user,
                ip,
                invalid: true,
            } => {
                let e = invalid.entry(ip).or_insert((s.line, s.text, Vec::new()));
                if !e.2.contains(&user.as_str()) {
                    e.2.push(user);
                }
            }
            Event::Failed { user, ip, .. } if user == "root" => {
                root.entry(ip).or_insert((s.line, s.text, 0)).2 += 1;
            }
            _ => {}
        }
    }
    for (ip, (line, text, users)) in invalid {
        out.push(finding(
            &INVALID_USER,
            source,
            line,
            text,
            format!(
                "{ip} tried {} non-existent account(s): {}",
                users.len(),
                users.join(", ")
            ),
            vec![("source.ip".into(), ip.to_string())],
        ));
    }
    for (ip, (line, text, count)) in root {
        out.push(finding(
            &ROOT_LOGIN,
            source,
            line,
            text,
            format!("{count} failed login(s) as root from {ip}"),
            vec![
                ("source.ip".into(), ip.to_string()),
                ("attempts".into(), count.to_string()),
            ],
        ));
    }

    // Success after failures.
    for (k, s) in events.iter().enumerate() {
        let Event::Accepted { user, ip } = &s.event else {
            continue;
        };
        let before: Vec<&Seen> = events[..k]
            .iter()
            .filter(|p| {
                matches!(&p.event, Event::Failed { user: u, ip: i, .. } if u == user && i == ip)
                    && within(p.time, s.time, cfg.success_window)
            })
            .collect();
        if before.len() >= cfg.success_threshold {
            out.push(finding(
                &SUCCESS_AFTER_FAILURES,
                source,
                before[0].line,
                before[0].text,
                format!(
                    "{user} logged in from {ip} (line {}) after {} failed attempts",
                    s.line,
                    before.len()
                ),
                vec![
                    ("source.ip".into(), ip.to_string()),
                    ("user".into(), user.to_string()),
                    ("success.line".into(), s.line.to_string()),
                ],
            ));
        }
    }
    out
}

impl LogAnalyzer for SshLogAnalyzer {
    fn analyze_logs(source: String, entries: Vec<LogEntry>) -> Result<Vec<Finding>, PluginError> {
        let cfg = Config {
            brute_threshold: setting("brute-force-threshold", 10) as usize,
            brute_window: setting("brute-force-window-seconds", 60) as i64,
            success_threshold: setting("success-after-failures-threshold", 5) as usize,
            success_window: setting("success-window-seconds", 3600) as i64,
        };
        Ok(analyze(&source, &entries, &cfg))
    }
}

secflow_pdk::export_log_analyzer!(SshLogAnalyzer);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: u64, ts: &str, msg: &str) -> LogEntry {
        LogEntry {
            line,
            timestamp: Some(ts.into()),
            message: format!("gw sshd[1]: {msg}"),
        }
    }

    fn cfg() -> Config {
        Config {
            brute_threshold: 5,
            brute_window: 60,
            success_threshold: 3,
            success_window: 3600,
        }
    }

    #[test]
    fn parses_sshd_lines() {
        assert_eq!(
            parse(
                "h sshd[9]: Failed password for invalid user oracle from 198.51.100.23 port 22 ssh2"
            ),
            Some(Event::Failed {
                user: "oracle".into(),
                ip: "198.51.100.23".into(),
                invalid: true
            })
        );
        assert_eq!(
            parse(
                "h sshd[9]: Accepted publickey for bob from 10.0.0.2 port 5 ssh2: ED25519 SHA256:x"
            ),
            Some(Event::Accepted {
                user: "bob".into(),
                ip: "10.0.0.2".into()
            })
        );
        assert_eq!(parse("h CRON[1]: session opened for user root"), None);
        assert_eq!(
            seconds("Nov 21 03:14:07").unwrap() - seconds("Nov 21 03:13:07").unwrap(),
            60
        );
        assert_eq!(
            seconds("2026-11-21T03:14:07Z").unwrap() - seconds("2026-11-21 03:13:07").unwrap(),
            60
        );
    }

    #[test]
    fn bursts_probes_root_and_success_after_failures() {
        let mut entries = Vec::new();
        for i in 0..6 {
            entries.push(entry(
                i + 1,
                &format!("Nov 21 03:14:{:02}", i * 5),
                "Failed password for root from 203.0.113.45 port 1 ssh2",
            ));
        }
        // Slow failures (one per 2 minutes) are not a burst, but count before a success.
        for i in 0..3 {
            entries.push(entry(
                10 + i,
                &format!("Nov 21 04:{:02}:00", i * 2),
                "Failed password for deploy from 192.0.2.77 port 1 ssh2",
            ));
        }
        entries.push(entry(
            20,
            "Nov 21 04:07:00",
            "Accepted password for deploy from 192.0.2.77 port 1 ssh2",
        ));
        entries.push(entry(
            21,
            "Nov 21 05:00:00",
            "Invalid user admin from 198.51.100.23 port 1",
        ));
        entries.push(entry(
            22,
            "Nov 21 05:00:09",
            "Invalid user test from 198.51.100.23 port 1",
        ));
        entries.push(entry(
            23,
            "Nov 21 06:00:00",
            "Failed password for carol from 10.0.0.9 port 1 ssh2",
        ));
        entries.push(entry(
            24,
            "Nov 21 06:00:05",
            "Accepted password for carol from 10.0.0.9 port 1 ssh2",
        ));

        let found: Vec<(String, u32)> = analyze("auth.log", &entries, &cfg())
            .into_iter()
            .map(|f| (f.rule_id, f.location.unwrap().start_line))
            .collect();
        assert!(found.contains(&("ssh/brute-force".into(), 1)), "{found:?}");
        assert!(
            found.contains(&("ssh/root-login-attempt".into(), 1)),
            "{found:?}"
        );
        assert!(
            found.contains(&("ssh/invalid-user".into(), 21)),
            "{found:?}"
        );
        assert!(
            found.contains(&("ssh/success-after-failures".into(), 10)),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
    }
}
