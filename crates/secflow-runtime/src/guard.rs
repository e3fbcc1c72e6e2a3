//! What the host refused or stopped during one invocation, recorded where it happened.
//!
//! Limits are enforced in many places: the memory limiter, the host imports, the captured
//! stdout/stderr, the filesystem and key-value glue, the network hook. Each records what it
//! saw in the invocation's [`Guard`] (shared by clones), and the end of the invocation turns
//! the first violation into the typed error, whatever the plugin did with the error it got:
//! a plugin that swallows a refused write still fails with `fs-quota` or
//! `capability-denied`, and the violation is counted.

use crate::budget::BudgetExceeded;
use crate::error::InvokeError;
use std::sync::{Arc, Mutex};

/// A limit or grant the host enforced.
#[derive(Debug, Clone, PartialEq)]
pub enum HostViolation {
    /// Linear memory past the limit (the grow trapped).
    Memory { requested: u64, limit: u64 },
    /// Host log or metrics past their caps (the call trapped).
    Budget(BudgetExceeded),
    /// stdout or stderr past its cap (the write trapped).
    Capture { stream: &'static str, limit: u64 },
    /// The key-value store's quota or value size (the plugin got `quota-exceeded`).
    Kv { what: String, limit: u64 },
    /// A writable grant's quota (the plugin got `quota`).
    FsQuota {
        grant: String,
        what: String,
        limit: u64,
    },
    /// Something the grant does not allow (the plugin got an error code).
    Denied { capability: String, reason: String },
    /// An argument or result that breaks the contract (invalid UTF-8, a finding that does
    /// not validate).
    InvalidOutput { message: String },
}

impl HostViolation {
    /// The typed error the invocation ends with.
    pub fn into_error(self) -> InvokeError {
        match self {
            HostViolation::Memory { requested, limit } => {
                InvokeError::MemoryLimit { limit, requested }
            }
            HostViolation::Budget(BudgetExceeded::Log { what, limit }) => {
                InvokeError::LogLimit { what, limit }
            }
            HostViolation::Budget(BudgetExceeded::Metric { what, limit }) => {
                InvokeError::MetricLimit { what, limit }
            }
            HostViolation::Capture { stream, limit } => InvokeError::LogLimit {
                what: format!("the plugin wrote more than {limit} bytes to {stream}"),
                limit,
            },
            HostViolation::Kv { what, limit } => InvokeError::KvLimit { what, limit },
            HostViolation::FsQuota { grant, what, limit } => {
                InvokeError::FsQuota { grant, what, limit }
            }
            HostViolation::Denied { capability, reason } => {
                InvokeError::CapabilityDenied { capability, reason }
            }
            HostViolation::InvalidOutput { message } => InvokeError::InvalidOutput { message },
        }
    }
}

#[derive(Debug, Default)]
struct GuardState {
    first: Option<HostViolation>,
    /// Every refusal, in order, for the report (`denied: ...` lines).
    denials: Vec<String>,
}

/// The violation recorder of one invocation; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Guard(Arc<Mutex<GuardState>>);

impl Guard {
    /// Records a violation; the first one is what the invocation reports.
    pub fn violate(&self, violation: HostViolation) {
        let mut state = self.0.lock().unwrap();
        if let HostViolation::Denied { capability, reason } = &violation {
            state.denials.push(format!("{capability}: {reason}"));
        }
        tracing::info!(?violation, "plugin stopped or refused by the host");
        state.first.get_or_insert(violation);
    }

    /// Records a refused capability use.
    pub fn deny(&self, capability: &str, reason: impl Into<String>) {
        self.violate(HostViolation::Denied {
            capability: capability.to_string(),
            reason: reason.into(),
        });
    }

    pub fn first_violation(&self) -> Option<HostViolation> {
        self.0.lock().unwrap().first.clone()
    }

    /// Takes the first violation (so a detect session reports it once).
    pub fn take_violation(&self) -> Option<HostViolation> {
        self.0.lock().unwrap().first.take()
    }

    /// Takes the refusals recorded since the last call.
    pub fn take_denials(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().denials)
    }
}
