//! The facts a decision is made on: who asks, for what, and about which plugin.
//!
//! These types mirror `schema/secflow.cedarschema` one to one. They are plain data so the
//! registry, the CLI (`secflow policy explain`) and the API can build, show and serialize a
//! request without knowing Cedar.

use secflow_manifest::{Access, HostPattern, Manifest};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// What the principal wants to do with the plugin. Each is a Cedar action
/// `SecFlow::Action::"<name>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Add a plugin that is not installed yet.
    Install,
    /// Replace an installed plugin with another version.
    Upgrade,
    /// Turn an installed plugin on (again).
    Enable,
    /// Invoke an installed plugin.
    Run,
}

impl Action {
    /// Every action, in the order of the schema.
    pub const ALL: [Action; 4] = [
        Action::Install,
        Action::Upgrade,
        Action::Enable,
        Action::Run,
    ];

    /// The Cedar action id (and the CLI spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Enable => "enable",
            Action::Run => "run",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown policy action `{s}`; expected one of: install, upgrade, enable, run"
                )
            })
    }
}

/// What a plugin asks for, reduced to what policies judge. See the `Capabilities` type in
/// the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityFacts {
    /// Number of network grants.
    pub network: u64,
    /// Some network grant may reach loopback, private or link-local addresses.
    pub network_private: bool,
    /// Number of filesystem grants.
    pub filesystem: u64,
    /// Some filesystem grant is read-write.
    pub filesystem_write: bool,
    /// The plugin asks for its key-value store.
    pub kv: bool,
}

/// Resolved limits (manifest values with defaults filled in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitFacts {
    pub memory_mib: u64,
    pub timeout_ms: u64,
    /// Fuel per invocation; 0 means not metered.
    pub fuel: u64,
    pub output_kib: u64,
    /// The key-value store's quota in KiB; 0 when the plugin asks for no store.
    pub kv_kib: u64,
    /// What each writable grant may hold, in MiB and in files; 0 when the plugin asks to
    /// write nowhere.
    pub write_mib: u64,
    pub write_files: u64,
}

/// Everything policies know about one plugin version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFacts {
    pub id: String,
    pub version: String,
    /// Kind as written in manifests (`detector`, `proxy-filter`, ...). A string rather than
    /// `PluginKind` so that the `allowed-kinds` policy, not the type system, decides: a kind
    /// added by a newer manifest format is refused by policy with a clear id.
    pub kind: String,
    /// At least one signature from a trusted key verified over the package bytes.
    pub signed: bool,
    /// Roles of the trusted keys that signed (`publisher`, `marketplace`, ...).
    pub signer_roles: Vec<String>,
    pub capabilities: CapabilityFacts,
    pub limits: LimitFacts,
    /// Sandbox violations recorded so far (the registry's count; 0 for a new install).
    pub violations: u64,
    /// Quarantined until an operator releases it.
    pub quarantined: bool,
}

impl PluginFacts {
    /// The facts of a validated manifest. `signed` and `signer_roles` come from package
    /// verification; `violations` and `quarantined` start at zero and are for the registry
    /// to fill in from its records.
    pub fn from_manifest<I, S>(manifest: &Manifest, signed: bool, signer_roles: I) -> PluginFacts
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let caps = &manifest.capabilities;
        let limits = manifest.limits.resolve();
        let writes = caps.filesystem.iter().any(|f| f.access == Access::Write);
        let mut signer_roles: Vec<String> = signer_roles.into_iter().map(Into::into).collect();
        signer_roles.sort();
        signer_roles.dedup();
        PluginFacts {
            id: manifest.id.as_str().to_string(),
            version: manifest.version.to_string(),
            kind: manifest.kind.as_str().to_string(),
            signed,
            signer_roles,
            capabilities: CapabilityFacts {
                network: caps.network.len() as u64,
                network_private: caps
                    .network
                    .iter()
                    .any(|n| n.allow_private || n.pattern().is_some_and(|p| is_internal(&p))),
                filesystem: caps.filesystem.len() as u64,
                filesystem_write: writes,
                kv: caps.kv.is_some(),
            },
            limits: LimitFacts {
                memory_mib: limits.memory_bytes >> 20,
                timeout_ms: limits.timeout_ms,
                fuel: limits.fuel.unwrap_or(0),
                // Round up so that 1 byte over a KiB boundary is not reported as less.
                output_kib: limits.output_bytes.div_ceil(1024),
                kv_kib: caps.kv.as_ref().map_or(0, |kv| kv.quota_bytes() >> 10),
                write_mib: if writes {
                    limits.write_bytes.div_ceil(1 << 20)
                } else {
                    0
                },
                write_files: if writes { limits.write_files } else { 0 },
            },
            violations: 0,
            quarantined: false,
        }
    }
}

/// Does this host pattern name an internal destination on its face? Names are judged again
/// by the runtime after DNS resolution; this catches what the manifest already says.
fn is_internal(pattern: &HostPattern) -> bool {
    match pattern {
        HostPattern::Ip(ip) => is_internal_ip(*ip),
        HostPattern::Exact(name) | HostPattern::Subdomains(name) => {
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
}
