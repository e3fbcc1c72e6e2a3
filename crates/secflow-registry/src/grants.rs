//! Grants: the capabilities a person approved for one exact package (plugin id, version,
//! payload digest and the keys that signed it), and the labels people approve them by.
//!
//! The manifest is a wish list; a plugin installed from the registry runs with its grant,
//! never with its manifest. A grant is approved as a whole (`--yes`, the prompt) or in part
//! (`--grant LABEL`, repeatable): what is left out is denied at run time like anything
//! undeclared.

use secflow_manifest::{Access, Capabilities};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a person approved for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub plugin_id: String,
    pub version: String,
    /// SHA-256 of the package payload: the bytes the signatures cover.
    pub digest: String,
    /// Ids of the trusted keys whose valid signatures admitted the package; empty for an
    /// unsigned package admitted in developer mode. At run time at least one of them must
    /// still verify.
    pub signers: Vec<String>,
    /// The granted subset of the declared capabilities.
    pub capabilities: Capabilities,
    /// Host directory for each granted filesystem path (guest path -> host path); a path
    /// without an entry is bound to the same path on the host.
    #[serde(default)]
    pub mounts: BTreeMap<String, PathBuf>,
    /// How it was approved: `prompt`, `--yes`, `--grant`, or `carried-over` (an upgrade that
    /// asked for nothing new).
    pub approval: String,
    pub approved_by: String,
    pub approved_at: String,
    /// Waiting for a person: an upgrade asked for more than the previous grant.
    #[serde(default)]
    pub pending: bool,
    /// Admitted in developer mode (`--dev`): policies judge its runs as developer runs, so
    /// an unsigned plugin installed that way can run.
    #[serde(default)]
    pub dev: bool,
}

/// One requested capability, as shown to the person approving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ask {
    /// Stable name, accepted by `--grant`: `fs:/feeds`, `fs:/out:write`,
    /// `net:https://api.example.com:443`, `kv`.
    pub label: String,
    /// The plugin author's reason.
    pub reason: String,
}

/// Every capability in `caps`, labelled.
pub fn asks(caps: &Capabilities) -> Vec<Ask> {
    let mut out = Vec::new();
    for fs in &caps.filesystem {
        let write = if fs.access == Access::Write {
            ":write"
        } else {
            ""
        };
        out.push(Ask {
            label: format!("fs:{}{write}", fs.guest_path()),
            reason: fs.reason.clone(),
        });
    }
    for net in &caps.network {
        let private = if net.allow_private { "+private" } else { "" };
        out.push(Ask {
            label: format!("net:{net}{private}"),
            reason: net.reason.clone(),
        });
    }
    if let Some(kv) = &caps.kv {
        out.push(Ask {
            label: "kv".into(),
            reason: kv.reason.clone(),
        });
    }
    out
}

/// The labels of every capability in `caps`, in [`asks`] order.
pub fn labels(caps: &Capabilities) -> Vec<String> {
    asks(caps).into_iter().map(|a| a.label).collect()
}

/// The subset of `declared` that `labels` name. Every label must name a declared
/// capability: a typo must not silently grant less (or be mistaken for more).
pub fn select(declared: &Capabilities, labels: &[String]) -> Result<Capabilities, String> {
    let all = asks(declared);
    for label in labels {
        if !all.iter().any(|a| &a.label == label) {
            let known: Vec<&str> = all.iter().map(|a| a.label.as_str()).collect();
            return Err(if known.is_empty() {
                format!("--grant {label}: the plugin declares no capabilities")
            } else {
                format!(
                    "--grant {label}: the plugin declares no such capability; it asks for {}",
                    known.join(", ")
                )
            });
        }
    }
    let wanted = |label: String| labels.contains(&label);
    let mut labels_iter = all.into_iter().map(|a| a.label);
    let mut out = Capabilities::default();
    for fs in &declared.filesystem {
        if wanted(labels_iter.next().unwrap_or_default()) {
            out.filesystem.push(fs.clone());
        }
    }
    for net in &declared.network {
        if wanted(labels_iter.next().unwrap_or_default()) {
            out.network.push(net.clone());
        }
    }
    if let Some(kv) = &declared.kv
        && wanted(labels_iter.next().unwrap_or_default())
    {
        out.kv = Some(kv.clone());
    }
    Ok(out)
}

fn fs_covered(granted: &Capabilities, fs: &secflow_manifest::FsCapability) -> bool {
    granted.filesystem.iter().any(|g| {
        g.guest_path() == fs.guest_path()
            && (g.access == Access::Write || fs.access == Access::Read)
    })
}

fn net_covered(granted: &Capabilities, net: &secflow_manifest::NetCapability) -> bool {
    granted.network.iter().any(|g| {
        g.scheme == net.scheme
            && g.host.eq_ignore_ascii_case(&net.host)
            && g.port() == net.port()
            && (g.allow_private || !net.allow_private)
    })
}

fn kv_quota(kv: &secflow_manifest::KvCapability) -> u64 {
    kv.max_kib.unwrap_or(1024)
}

fn kv_covered(granted: &Capabilities, kv: &secflow_manifest::KvCapability) -> bool {
    granted
        .kv
        .as_ref()
        .is_some_and(|g| kv_quota(g) >= kv_quota(kv))
}

/// What `wanted` asks for beyond `granted`, as labels: new directories, write where read was
/// granted, new network destinations (or private addresses), the key-value store or a larger
/// quota. Reasons do not count: rewording a reason asks for nothing new.
pub fn increase(granted: &Capabilities, wanted: &Capabilities) -> Vec<String> {
    let mut out = Vec::new();
    let wanted_asks = asks(wanted);
    let mut labels = wanted_asks.iter().map(|a| a.label.clone());
    for fs in &wanted.filesystem {
        let label = labels.next().unwrap_or_default();
        if !fs_covered(granted, fs) {
            out.push(label);
        }
    }
    for net in &wanted.network {
        let label = labels.next().unwrap_or_default();
        if !net_covered(granted, net) {
            out.push(label);
        }
    }
    if let Some(kv) = &wanted.kv {
        let label = labels.next().unwrap_or_default();
        match &granted.kv {
            Some(_) if kv_covered(granted, kv) => {}
            Some(_) => out.push(format!("{label} (larger quota)")),
            None => out.push(label),
        }
    }
    out
}

/// The part of `wanted` that `granted` already covers: what an upgrade keeps without asking
/// again. A capability declined before stays declined.
pub fn covered(granted: &Capabilities, wanted: &Capabilities) -> Capabilities {
    Capabilities {
        filesystem: wanted
            .filesystem
            .iter()
            .filter(|f| fs_covered(granted, f))
            .cloned()
            .collect(),
        network: wanted
            .network
            .iter()
            .filter(|n| net_covered(granted, n))
            .cloned()
            .collect(),
        kv: wanted.kv.clone().filter(|kv| kv_covered(granted, kv)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(toml_text: &str) -> Capabilities {
        toml::from_str(toml_text).unwrap()
    }

    const FULL: &str = r#"
        [[filesystem]]
        path = "/feeds"
        reason = "read the feeds"
        [[filesystem]]
        path = "/out"
        access = "write"
        reason = "write the report"
        [[network]]
        host = "api.example.com"
        reason = "look things up"
        [kv]
        reason = "cache"
    "#;

    #[test]
    fn labels_name_every_capability() {
        assert_eq!(
            labels(&caps(FULL)),
            [
                "fs:/feeds",
                "fs:/out:write",
                "net:https://api.example.com:443",
                "kv"
            ]
        );
    }

    #[test]
    fn select_grants_exactly_the_named_subset() {
        let declared = caps(FULL);
        let some = select(&declared, &["fs:/feeds".into(), "kv".into()]).unwrap();
        assert_eq!(some.filesystem.len(), 1);
        assert_eq!(some.filesystem[0].path, "/feeds");
        assert!(some.network.is_empty());
        assert!(some.kv.is_some());
        assert_eq!(select(&declared, &[]).unwrap(), Capabilities::default());
        let err = select(&declared, &["net:https://evil.example:443".into()]).unwrap_err();
        assert!(err.contains("declares no such capability"), "{err}");
        assert!(err.contains("fs:/feeds"), "lists what it asks for: {err}");
    }

    #[test]
    fn increase_sees_new_destinations_write_and_kv_but_not_reworded_reasons() {
        let base = caps(
            r#"
            [[filesystem]]
            path = "/feeds"
            reason = "a"
            [[network]]
            host = "api.example.com"
            reason = "b"
        "#,
        );
        let reworded = caps(
            r#"
            [[filesystem]]
            path = "/feeds/"
            reason = "other words"
            [[network]]
            host = "API.example.com"
            port = 443
            reason = "other words"
        "#,
        );
        assert!(increase(&base, &reworded).is_empty());
        assert!(increase(&base, &Capabilities::default()).is_empty());
        let more = increase(&base, &caps(FULL));
        assert_eq!(more, ["fs:/out:write", "kv"]);
        let write_now = caps(
            r#"
            [[filesystem]]
            path = "/feeds"
            access = "write"
            reason = "a"
            [[network]]
            host = "api.example.com"
            port = 8443
            reason = "b"
        "#,
        );
        assert_eq!(
            increase(&base, &write_now),
            ["fs:/feeds:write", "net:https://api.example.com:8443"]
        );
    }

    #[test]
    fn covered_keeps_only_what_was_granted() {
        let granted = caps(
            r#"
            [[filesystem]]
            path = "/feeds"
            reason = "a"
        "#,
        );
        let kept = covered(&granted, &caps(FULL));
        assert_eq!(kept.filesystem.len(), 1);
        assert_eq!(kept.filesystem[0].path, "/feeds");
        assert!(kept.network.is_empty() && kept.kv.is_none());
        assert_eq!(covered(&caps(FULL), &caps(FULL)), caps(FULL));
    }
}
