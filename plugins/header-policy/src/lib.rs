//! The official header policy: a request must carry the required headers, none of the
//! forbidden ones, use an allowed method and ask for an allowed path; responses get the
//! configured headers. Only headers, the method and the path are read, never a body, so
//! the filter costs one small call per request.
//!
//! Paths are judged as sent. A path with a dot-segment (`/./`, `/../`, also
//! percent-encoded) or an encoded slash is refused whenever a path allow-list is set: the
//! upstream may resolve it to a path the list does not allow.

use secflow_pdk::prelude::*;
use std::sync::OnceLock;

struct HeaderPolicy;

/// The policy of one instance, from its configuration.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Policy {
    /// Lower-case header names.
    pub required: Vec<String>,
    /// Lower-case header names.
    pub forbidden: Vec<String>,
    /// Upper-case methods; `None` allows any.
    pub methods: Option<Vec<String>>,
    /// Exact paths, or prefixes (entries that ended with `*`, stored without it).
    pub paths: Option<Vec<PathRule>>,
    /// Set on every response: lower-case name and value.
    pub response_headers: Vec<(String, String)>,
}

/// One entry of the path allow-list.
#[derive(Debug, Clone, PartialEq)]
pub enum PathRule {
    Exact(String),
    Prefix(String),
}

/// A refused request: the status and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn names(config: &Value, key: &str) -> Result<Vec<String>, String> {
    let Some(items) = config.get(key) else {
        return Ok(Vec::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| format!("`{key}` must be an array of strings"))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("`{key}` holds a value that is not a non-empty string"))
        })
        .collect()
}

impl Policy {
    /// The policy a configuration describes.
    pub fn from_config(config: &Value) -> Result<Policy, String> {
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
        let methods = config
            .get("methods")
            .map(|_| names(config, "methods"))
            .transpose()?
            .map(|v| v.into_iter().map(|m| m.to_ascii_uppercase()).collect());
        let paths = config
            .get("paths")
            .map(|_| names(config, "paths"))
            .transpose()?
            .map(|v| {
                v.into_iter()
                    .map(|p| match p.strip_suffix('*') {
                        Some(prefix) => PathRule::Prefix(prefix.to_string()),
                        None => PathRule::Exact(p),
                    })
                    .collect::<Vec<_>>()
            });
        if let Some(paths) = &paths {
            for rule in paths {
                let (PathRule::Exact(p) | PathRule::Prefix(p)) = rule;
                if !p.starts_with('/') {
                    return Err(format!("path `{p}` must start with /"));
                }
            }
        }
        let mut response_headers = Vec::new();
        if let Some(table) = config.get("response-headers") {
            let table = table
                .as_object()
                .ok_or("`response-headers` must be a table of strings")?;
            for (name, value) in table {
                let value = value
                    .as_str()
                    .ok_or_else(|| format!("response header `{name}` must be a string"))?;
                response_headers.push((name.to_ascii_lowercase(), value.to_string()));
            }
        }
        Ok(Policy {
            required: lower(names(config, "required-headers")?),
            forbidden: lower(names(config, "forbidden-headers")?),
            methods,
            paths,
            response_headers,
        })
    }

    /// Whether the request may pass.
    pub fn check(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
    ) -> Result<(), Refusal> {
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if let Some(missing) = self.required.iter().find(|n| !has(n)) {
            return Err(Refusal {
                status: 400,
                reason: format!("the request lacks the required header `{missing}`"),
            });
        }
        if let Some(present) = self.forbidden.iter().find(|n| has(n)) {
            return Err(Refusal {
                status: 400,
                reason: format!("the request carries the forbidden header `{present}`"),
            });
        }
        if let Some(methods) = &self.methods
            && !methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return Err(Refusal {
                status: 405,
                reason: format!("method {method} is not allowed here"),
            });
        }
        if let Some(paths) = &self.paths {
            let path = uri.split(['?', '#']).next().unwrap_or(uri);
            if has_dot_segment(path) {
                return Err(Refusal {
                    status: 400,
                    reason: "the path has a dot-segment or an encoded slash; send it normalized"
                        .into(),
                });
            }
            let allowed = paths.iter().any(|rule| match rule {
                PathRule::Exact(p) => path == p,
                PathRule::Prefix(p) => path.starts_with(p.as_str()),
            });
            if !allowed {
                return Err(Refusal {
                    status: 403,
                    reason: format!("path {path} is not allowed here"),
                });
            }
        }
        Ok(())
    }
}

/// Whether a path holds `.` or `..` as a segment (also percent-encoded, any case) or an
/// encoded slash or backslash: forms an upstream may resolve to another path.
pub fn has_dot_segment(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return true;
    }
    lower.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

static POLICY: OnceLock<Policy> = OnceLock::new();

fn policy() -> &'static Policy {
    POLICY.get_or_init(Policy::default)
}

impl Plugin for HeaderPolicy {
    fn init(config: &Value) -> Result<(), PluginError> {
        let policy = Policy::from_config(config).map_err(PluginError::InvalidConfig)?;
        let _ = POLICY.set(policy);
        Ok(())
    }
}

impl ProxyFilter for HeaderPolicy {
    fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        Ok(
            match policy().check(&request.method, &request.uri, &request.headers) {
                Ok(()) => RequestVerdict::Allow,
                Err(refusal) => RequestVerdict::Block(Block {
                    status: refusal.status,
                    reason: refusal.reason,
                }),
            },
        )
    }

    fn on_response(
        _request: HttpRequest,
        mut response: HttpResponse,
    ) -> Result<ResponseVerdict, PluginError> {
        let add = &policy().response_headers;
        let missing = add.iter().any(|(name, value)| {
            !response
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(name) && v == value)
        });
        if !missing {
            return Ok(ResponseVerdict::Allow);
        }
        response
            .headers
            .retain(|(k, _)| !add.iter().any(|(name, _)| k.eq_ignore_ascii_case(name)));
        response.headers.extend(add.iter().cloned());
        Ok(ResponseVerdict::Modify(response))
    }
}

secflow_pdk::export_proxy_filter!(HeaderPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use secflow_pdk::serde_json::json;

    fn headers(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| (n.to_string(), "x".into())).collect()
    }

    fn policy() -> Policy {
        Policy::from_config(&json!({
            "required-headers": ["Authorization"],
            "forbidden-headers": ["x-debug"],
            "methods": ["get", "POST"],
            "paths": ["/v1/chat/*", "/health"],
        }))
        .unwrap()
    }

    #[test]
    fn an_empty_policy_allows_everything() {
        let p = Policy::from_config(&json!({})).unwrap();
        assert_eq!(p.check("DELETE", "/../x", &[]), Ok(()));
    }

    #[test]
    fn a_request_within_the_policy_passes() {
        let p = policy();
        let h = headers(&["authorization"]);
        assert_eq!(p.check("GET", "/v1/chat/completions?x=1", &h), Ok(()));
        assert_eq!(p.check("post", "/health", &h), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_its_status() {
        let p = policy();
        let status = |m: &str, u: &str, h: &[&str]| p.check(m, u, &headers(h)).unwrap_err().status;
        assert_eq!(status("GET", "/health", &[]), 400);
        assert_eq!(status("GET", "/health", &["authorization", "X-Debug"]), 400);
        assert_eq!(status("DELETE", "/health", &["authorization"]), 405);
        assert_eq!(status("GET", "/admin", &["authorization"]), 403);
        assert_eq!(status("GET", "/health/x", &["authorization"]), 403);
    }

    #[test]
    fn dot_segments_cannot_walk_out_of_the_allow_list() {
        let p = policy();
        let h = headers(&["authorization"]);
        for path in [
            "/v1/chat/../../admin",
            "/v1/chat/%2e%2e/%2E%2E/admin",
            "/v1/chat/.%2e/admin",
            "/v1/chat/./x",
            "/v1/chat/..%2fadmin",
            "/v1/chat/..%5cadmin",
            "/v1/chat/..\\admin",
        ] {
            assert_eq!(p.check("GET", path, &h).unwrap_err().status, 400, "{path}");
        }
        assert_eq!(p.check("GET", "/v1/chat/a..b/.well", &h), Ok(()));
    }

    #[test]
    fn bad_configurations_name_the_fault() {
        assert!(
            Policy::from_config(&json!({"paths": ["v1/*"]}))
                .unwrap_err()
                .contains("must start with /")
        );
        assert!(
            Policy::from_config(&json!({"methods": "GET"}))
                .unwrap_err()
                .contains("`methods` must be an array")
        );
        assert!(
            Policy::from_config(&json!({"response-headers": {"x": 1}}))
                .unwrap_err()
                .contains("`x` must be a string")
        );
    }

    #[test]
    fn an_empty_allow_list_allows_nothing() {
        let p = Policy::from_config(&json!({"methods": [], "paths": []})).unwrap();
        assert_eq!(p.check("GET", "/", &[]).unwrap_err().status, 405);
    }
}
