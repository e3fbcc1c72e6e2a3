//! The capability model: typed requests that grant nothing by default.
//!
//! Hosts are parsed into scheme/host/port (never matched as glob strings: `*.example.com`
//! matches `api.example.com` but not `evilexample.com` or `example.com`), and filesystem
//! paths into normalized absolute guest paths.

use crate::Problem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Everything a plugin asks for. The default asks for, and so can get, nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// Directories the plugin may read (or write).
    #[serde(default)]
    pub filesystem: Vec<FsCapability>,
    /// Hosts the plugin may send HTTP requests to (through `wasi:http` only).
    #[serde(default)]
    pub network: Vec<NetCapability>,
    /// A private key-value store for this plugin.
    #[serde(default)]
    pub kv: Option<KvCapability>,
}

impl Capabilities {
    /// True when the plugin asks for nothing at all.
    pub fn is_empty(&self) -> bool {
        self.filesystem.is_empty() && self.network.is_empty() && self.kv.is_none()
    }

    pub(crate) fn problems(&self, out: &mut Vec<Problem>) {
        if self.filesystem.len() > 32 || self.network.len() > 64 {
            out.push(Problem::new(
                "capabilities",
                "declares too many entries (at most 32 filesystem and 64 network)",
                "group paths under a common directory and hosts under a `*.` wildcard",
            ));
        }
        for (i, fs) in self.filesystem.iter().enumerate() {
            let field = format!("capabilities.filesystem[{i}]");
            check_reason(&field, &fs.reason, out);
            if let Err(msg) = normalize_guest_path(&fs.path) {
                out.push(Problem::new(
                    format!("{field}.path"),
                    msg,
                    "use an absolute path such as `/data/rules` with no `..`",
                ));
            }
        }
        for (i, net) in self.network.iter().enumerate() {
            let field = format!("capabilities.network[{i}]");
            check_reason(&field, &net.reason, out);
            if let Err(msg) = HostPattern::parse(&net.host) {
                out.push(Problem::new(
                    format!("{field}.host"),
                    msg,
                    "use a host name (`api.example.com`), a leading wildcard (`*.example.com`) or an IP address",
                ));
            }
            if net.port == Some(0) {
                out.push(Problem::new(
                    format!("{field}.port"),
                    "must be between 1 and 65535",
                    "remove it to use the scheme's default port",
                ));
            }
        }
        if let Some(kv) = &self.kv {
            check_reason("capabilities.kv", &kv.reason, out);
            match kv.max_kib {
                Some(0) => out.push(Problem::new(
                    "capabilities.kv.max-kib",
                    "must be greater than 0",
                    "remove it to use the default of 1024 KiB",
                )),
                Some(kib) if kib > KV_MAX_KIB_CEILING => out.push(Problem::new(
                    "capabilities.kv.max-kib",
                    format!(
                        "asks for {kib} KiB, above the host ceiling of {KV_MAX_KIB_CEILING} KiB"
                    ),
                    format!("request at most {KV_MAX_KIB_CEILING} KiB"),
                )),
                _ => {}
            }
        }
    }
}

fn check_reason(field: &str, reason: &str, out: &mut Vec<Problem>) {
    if reason.trim().len() < 8 {
        out.push(Problem::new(
            format!("{field}.reason"),
            "must explain in words why the plugin needs this (at least 8 characters)",
            "write a reason a security reviewer can judge, e.g. \"reads the rule files\"",
        ));
    } else if reason.len() > 512 {
        out.push(Problem::new(
            format!("{field}.reason"),
            "is longer than 512 characters",
            "shorten it",
        ));
    }
}

/// Read-only or read-write access to a directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    #[default]
    Read,
    /// Read and write.
    Write,
}

/// A directory the plugin may open, seen inside the sandbox at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FsCapability {
    /// Absolute path of the directory inside the sandbox. The host binds it to a host
    /// directory (by default the same path on the host).
    pub path: String,
    /// `read` (default) or `write` (read and write).
    #[serde(default)]
    pub access: Access,
    /// Why the plugin needs it, for the person approving the grant.
    pub reason: String,
}

impl FsCapability {
    /// The normalized guest path (validated manifests only).
    pub fn guest_path(&self) -> String {
        normalize_guest_path(&self.path).unwrap_or_else(|_| self.path.clone())
    }
}

/// Normalizes an absolute guest path: collapses `.` and duplicate slashes, refuses `..`.
pub fn normalize_guest_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{}` is not an absolute path", path.escape_debug()));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("contains control characters or backslashes".to_string());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{path}` contains `..`")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("granting the whole filesystem (`/`) is not allowed".to_string());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// URL scheme of an outgoing request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Https,
    /// Plain HTTP: only when asked for explicitly.
    Http,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Permission to send HTTP requests to one scheme/host/port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetCapability {
    /// `https` (default) or `http`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Host name, `*.` wildcard for subdomains, or an IP address.
    pub host: String,
    /// Port; defaults to 443 for https and 80 for http.
    #[serde(default)]
    pub port: Option<u16>,
    /// Allow the host name to resolve to loopback, private, link-local or other internal
    /// addresses. Off by default: a granted public name that resolves inward is refused.
    #[serde(default)]
    pub allow_private: bool,
    /// Why the plugin needs it.
    pub reason: String,
}

impl NetCapability {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.scheme.default_port())
    }

    /// The parsed host pattern (validated manifests only).
    pub fn pattern(&self) -> Option<HostPattern> {
        HostPattern::parse(&self.host).ok()
    }
}

impl fmt::Display for NetCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}",
            self.scheme.as_str(),
            self.host,
            self.port()
        )
    }
}

/// A typed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this DNS name (lowercase, no trailing dot).
    Exact(String),
    /// Any name strictly below this domain: `*.example.com` holds `example.com` here.
    Subdomains(String),
    /// This IP address. Granting an internal address by IP is an explicit grant of it.
    Ip(IpAddr),
}

impl HostPattern {
    pub fn parse(host: &str) -> Result<HostPattern, String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bracketless = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bracketless.parse::<IpAddr>() {
            return Ok(HostPattern::Ip(ip));
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        if name.contains('*') {
            return Err(format!(
                "`{host}`: `*` is only allowed as the whole first label (`*.example.com`)"
            ));
        }
        if name.is_empty() || name.len() > 253 {
            return Err(format!("`{host}` is not a valid host name"));
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "`{host}` is not a valid host name (label `{label}`)"
                ));
            }
        }
        if wildcard && !name.contains('.') {
            return Err(format!(
                "`{host}` would match every name under a top-level domain; name a registrable domain"
            ));
        }
        Ok(if wildcard {
            HostPattern::Subdomains(name.to_string())
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    /// Does this pattern allow `host` (a name or an IP literal as it appears in a URL)?
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bracketless = host.trim_start_matches('[').trim_end_matches(']');
        match self {
            HostPattern::Ip(ip) => bracketless.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            HostPattern::Exact(name) => host == *name,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }
}

/// Default size of a key-value store, in KiB.
pub const KV_DEFAULT_KIB: u64 = 1024;
/// Largest key-value store a manifest may ask for, in KiB (1 GiB). Policies set a lower
/// maximum (the default policy allows 64 MiB).
pub const KV_MAX_KIB_CEILING: u64 = 1 << 20;

/// A per-plugin key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvCapability {
    /// Largest total size of the store in KiB (default 1024, at most 1048576; the default
    /// policy allows 65536). Each entry costs its key, its value and 32 bytes.
    #[serde(default)]
    pub max_kib: Option<u64>,
    /// Why the plugin needs it.
    pub reason: String,
}

impl KvCapability {
    /// The store's quota in bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.max_kib.unwrap_or(KV_DEFAULT_KIB) << 10
    }
}
