//! Requested resource limits, their documented defaults and the host's ceilings.

use crate::Problem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits a plugin asks for. Every field is optional; [`Limits::resolve`] fills in the
/// defaults. A request above the host ceiling is a manifest error, not a silent clamp, so the
/// author learns the real bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Linear memory, in MiB, for the whole instance (default 64, at most 1024).
    pub memory_mib: Option<u64>,
    /// Wall-clock deadline per invocation, in milliseconds (default 5000, at most 300000).
    pub timeout_ms: Option<u64>,
    /// Fuel budget per invocation for deterministic metering (default: not metered).
    pub fuel: Option<u64>,
    /// Largest value an invocation may return, in KiB (default 1024, at most 65536).
    pub output_kib: Option<u64>,
    /// Largest `host.log` output per invocation, and separately the largest stdout and
    /// stderr captured, in KiB (default 64, at most 4096). Each log line costs its text, its
    /// fields and 64 bytes.
    pub log_kib: Option<u64>,
    /// Most `host.log` lines per invocation (default 1000, at most 100000).
    pub log_lines: Option<u64>,
    /// Most bytes each writable filesystem grant may hold, in MiB (default 64, at most
    /// 4096). The host refuses a write that would go past it.
    pub write_mib: Option<u64>,
    /// Most files and directories each writable filesystem grant may hold (default 1000,
    /// at most 1000000).
    pub write_files: Option<u64>,
    /// Outgoing HTTP requests per invocation (default 16, at most 1000).
    pub http_requests: Option<u32>,
    /// Largest HTTP response body, in KiB (default 1024, at most 65536).
    pub http_response_kib: Option<u64>,
}

/// Limits with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedLimits {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub fuel: Option<u64>,
    pub output_bytes: u64,
    pub log_bytes: u64,
    pub log_lines: u64,
    pub http_requests: u32,
    pub http_response_bytes: u64,
    /// Per writable filesystem grant.
    pub write_bytes: u64,
    /// Per writable filesystem grant: files, directories and links.
    pub write_files: u64,
}

/// The largest values the host allows a manifest to request.
pub const HOST_CEILINGS: ResolvedLimits = ResolvedLimits {
    memory_bytes: 1024 << 20,
    timeout_ms: 300_000,
    fuel: Some(1 << 40),
    output_bytes: 64 << 20,
    log_bytes: 4 << 20,
    log_lines: 100_000,
    http_requests: 1000,
    http_response_bytes: 64 << 20,
    write_bytes: 4 << 30,
    write_files: 1_000_000,
};

/// The values used when a manifest does not ask.
pub const DEFAULT_LIMITS: ResolvedLimits = ResolvedLimits {
    memory_bytes: 64 << 20,
    timeout_ms: 5_000,
    fuel: None,
    output_bytes: 1 << 20,
    log_bytes: 64 << 10,
    log_lines: 1000,
    http_requests: 16,
    http_response_bytes: 1 << 20,
    write_bytes: 64 << 20,
    write_files: 1000,
};

impl Limits {
    pub(crate) fn problems(&self, out: &mut Vec<Problem>) {
        let c = HOST_CEILINGS;
        let checks: [(&str, Option<u64>, u64, &str); 10] = [
            (
                "limits.memory-mib",
                self.memory_mib,
                c.memory_bytes >> 20,
                "MiB",
            ),
            ("limits.timeout-ms", self.timeout_ms, c.timeout_ms, "ms"),
            (
                "limits.fuel",
                self.fuel,
                c.fuel.unwrap_or(u64::MAX),
                "units",
            ),
            (
                "limits.output-kib",
                self.output_kib,
                c.output_bytes >> 10,
                "KiB",
            ),
            ("limits.log-kib", self.log_kib, c.log_bytes >> 10, "KiB"),
            ("limits.log-lines", self.log_lines, c.log_lines, "lines"),
            (
                "limits.write-mib",
                self.write_mib,
                c.write_bytes >> 20,
                "MiB",
            ),
            (
                "limits.write-files",
                self.write_files,
                c.write_files,
                "files",
            ),
            (
                "limits.http-requests",
                self.http_requests.map(u64::from),
                u64::from(c.http_requests),
                "requests",
            ),
            (
                "limits.http-response-kib",
                self.http_response_kib,
                c.http_response_bytes >> 10,
                "KiB",
            ),
        ];
        for (field, value, max, unit) in checks {
            match value {
                Some(0) if field != "limits.http-requests" => out.push(Problem::new(
                    field,
                    "must be greater than 0",
                    "remove it to use the default",
                )),
                Some(v) if v > max => out.push(Problem::new(
                    field,
                    format!("asks for {v} {unit}, above the host ceiling of {max} {unit}"),
                    format!("request at most {max} {unit}"),
                )),
                _ => {}
            }
        }
    }

    /// Fills in defaults. Call only on limits that passed validation.
    pub fn resolve(&self) -> ResolvedLimits {
        let d = crate::limits::DEFAULT_LIMITS;
        ResolvedLimits {
            memory_bytes: self.memory_mib.map_or(d.memory_bytes, |v| v << 20),
            timeout_ms: self.timeout_ms.unwrap_or(d.timeout_ms),
            fuel: self.fuel.or(d.fuel),
            output_bytes: self.output_kib.map_or(d.output_bytes, |v| v << 10),
            log_bytes: self.log_kib.map_or(d.log_bytes, |v| v << 10),
            log_lines: self.log_lines.unwrap_or(d.log_lines),
            write_bytes: self.write_mib.map_or(d.write_bytes, |v| v << 20),
            write_files: self.write_files.unwrap_or(d.write_files),
            http_requests: self.http_requests.unwrap_or(d.http_requests),
            http_response_bytes: self
                .http_response_kib
                .map_or(d.http_response_bytes, |v| v << 10),
        }
    }
}
