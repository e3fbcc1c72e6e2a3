//! The plugin manifest (`plugin.toml`, or `plugin.yaml` with the same schema): its types,
//! parsing, validation and the capability model.
//!
//! The manifest is the plugin's *request*: who it is, what kind of plugin it is, which
//! capabilities it wants (each with a human reason) and which limits it asks for. Nothing
//! here grants anything; the runtime turns a validated manifest plus the host's decision into
//! a grant. Parsing is strict (unknown fields are rejected) because the manifest arrives from
//! an untrusted author, and every problem names the field at fault and how to fix it.
//!
//! This crate depends only on serde-family crates so that tools (registry, policy, CLI) can
//! read manifests without pulling in the sandbox. The JSON Schema published for editors is
//! generated from these types ([`json_schema`]).

mod capability;
mod error;
mod limits;

pub use capability::{
    Access, Capabilities, FsCapability, HostPattern, KV_DEFAULT_KIB, KV_MAX_KIB_CEILING,
    KvCapability, NetCapability, Scheme, normalize_guest_path,
};
pub use error::{ManifestError, Problem};
pub use limits::{DEFAULT_LIMITS, HOST_CEILINGS, Limits, ResolvedLimits};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The largest manifest file accepted, in bytes. Manifests are small; anything bigger is an
/// attempt to exhaust the parser.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// The version of the plugin interface (`wit/`), which every component must target.
pub const PLUGIN_API_VERSION: &str = "0.1.0";

/// A plugin manifest, exactly as written by the plugin author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "SecFlow plugin manifest")]
pub struct Manifest {
    /// Stable identifier: lowercase letters, digits and dashes, starting with a letter or digit.
    pub id: PluginId,
    /// Semantic version of this plugin release.
    #[schemars(with = "String")]
    pub version: semver::Version,
    /// Which plugin contract the component implements.
    pub kind: PluginKind,
    /// Human-readable name.
    pub name: String,
    /// One or two sentences on what the plugin does.
    pub description: String,
    /// Authors, as `Name <email>`.
    #[serde(default)]
    pub authors: Vec<String>,
    /// SPDX license expression.
    #[serde(default)]
    pub license: Option<String>,
    /// Marketplace categories (e.g. `secrets`, `sast`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Free-form search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Range of SecFlow host versions this plugin works with (semver requirement).
    #[serde(default = "default_host_req")]
    #[schemars(with = "String")]
    pub host: semver::VersionReq,
    /// Path of the WebAssembly component, relative to the manifest.
    #[serde(default = "default_component")]
    pub component: String,
    /// JSON Schema that the plugin's configuration must satisfy before `init` is called.
    #[serde(default)]
    pub config_schema: Option<serde_json::Value>,
    /// Other plugins this one needs, by id, with a semver requirement.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub dependencies: BTreeMap<PluginId, semver::VersionReq>,
    /// Capabilities requested; nothing is granted by default.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Resource limits requested; missing values take the documented defaults.
    #[serde(default)]
    pub limits: Limits,
}

fn default_host_req() -> semver::VersionReq {
    semver::VersionReq::STAR
}

fn default_component() -> String {
    "plugin.wasm".to_string()
}

/// The plugin contracts SecFlow knows. Each maps to one world in `wit/secflow-plugin.wit`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Scans files and emits findings.
    Detector,
    /// Adds data (CWE, CVSS, KEV, ...) to findings.
    Enricher,
    /// Computes metrics and a report over findings.
    Analytics,
    /// Inspects, blocks or modifies HTTP requests and responses in the proxy.
    ProxyFilter,
    /// Turns log entries into findings.
    LogAnalyzer,
    /// Probes a declared target and reports attack results.
    DynamicTester,
    /// Generic actions: `actions()` and `execute(action, params)`.
    Action,
}

impl PluginKind {
    /// Every kind, in the order of the WIT worlds.
    pub const ALL: [PluginKind; 7] = [
        PluginKind::Detector,
        PluginKind::Enricher,
        PluginKind::Analytics,
        PluginKind::ProxyFilter,
        PluginKind::LogAnalyzer,
        PluginKind::DynamicTester,
        PluginKind::Action,
    ];

    /// Whether `secflow scan` runs plugins of this kind: detectors and log analyzers over
    /// files, then enrichers, then analytics. The others run on their own front end (the
    /// proxy, `probe`, `run`).
    pub fn runs_in_scan(self) -> bool {
        match self {
            PluginKind::Detector
            | PluginKind::LogAnalyzer
            | PluginKind::Enricher
            | PluginKind::Analytics => true,
            PluginKind::ProxyFilter | PluginKind::DynamicTester | PluginKind::Action => false,
        }
    }

    /// The kebab-case name used in manifests, on the command line and as the WIT world name.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Detector => "detector",
            PluginKind::Enricher => "enricher",
            PluginKind::Analytics => "analytics",
            PluginKind::ProxyFilter => "proxy-filter",
            PluginKind::LogAnalyzer => "log-analyzer",
            PluginKind::DynamicTester => "dynamic-tester",
            PluginKind::Action => "action",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = PluginKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown plugin kind `{s}`; expected one of: {}",
                    all.join(", ")
                )
            })
    }
}

/// A plugin id: `^[a-z0-9][a-z0-9-]*$`, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PluginId(String);

impl JsonSchema for PluginId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PluginId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9-]*$",
            "maxLength": PluginId::MAX_LEN,
            "description": "Lowercase letters, digits and dashes, starting with a letter or digit."
        })
    }
}

impl PluginId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks the id syntax.
    pub fn new(id: &str) -> Result<Self, String> {
        let valid_start = id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let valid_rest = id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if id.is_empty() || id.len() > Self::MAX_LEN || !valid_start || !valid_rest {
            return Err(format!(
                "invalid plugin id `{}`: use 1 to {} lowercase letters, digits and dashes, \
                 starting with a letter or digit (e.g. `secret-scanner`)",
                id.escape_debug(),
                Self::MAX_LEN
            ));
        }
        Ok(PluginId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PluginId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PluginId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The format a manifest is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// Picks the format from a file name (`plugin.toml`, `plugin.yaml`, `plugin.yml`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// The manifest file names looked for in a plugin directory, in order.
pub const MANIFEST_FILE_NAMES: [&str; 3] = ["plugin.toml", "plugin.yaml", "plugin.yml"];

/// Finds the manifest file in a plugin directory.
pub fn find_manifest(dir: &Path) -> Option<std::path::PathBuf> {
    MANIFEST_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

impl Manifest {
    /// Parses and validates manifest bytes. `origin` names the file in error messages.
    pub fn parse(bytes: &[u8], format: Format, origin: &str) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::single(
                origin,
                Problem::new(
                    "",
                    format!(
                        "manifest is {} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit",
                        bytes.len()
                    ),
                    "keep the manifest small; move large data into asset files",
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            ManifestError::single(
                origin,
                Problem::new(
                    "",
                    format!("manifest is not valid UTF-8 (at byte {})", e.valid_up_to()),
                    "save the file as UTF-8",
                ),
            )
        })?;
        let manifest: Manifest = match format {
            Format::Toml => toml::from_str(text).map_err(|e| {
                let field = e
                    .span()
                    .map(|s| describe_toml_position(text, s.start))
                    .unwrap_or_default();
                ManifestError::single(
                    origin,
                    Problem::new(field, e.message().to_string(), "fix the TOML at that place"),
                )
            })?,
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| {
                let field = e
                    .location()
                    .map(|l| format!("line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default();
                ManifestError::single(
                    origin,
                    Problem::new(field, e.to_string(), "fix the YAML at that place"),
                )
            })?,
        };
        let problems = manifest.problems();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Reads and validates the manifest file at `path`.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let origin = path.display().to_string();
        let format = Format::from_path(path).ok_or_else(|| {
            ManifestError::single(
                &origin,
                Problem::new(
                    "",
                    "unknown manifest file extension",
                    "name the manifest plugin.toml or plugin.yaml",
                ),
            )
        })?;
        let meta = std::fs::metadata(path).map_err(|e| {
            ManifestError::single(
                &origin,
                Problem::new("", format!("cannot read manifest: {e}"), "check the path"),
            )
        })?;
        if meta.len() > MAX_MANIFEST_BYTES as u64 {
            return Err(ManifestError::single(
                &origin,
                Problem::new(
                    "",
                    format!(
                        "manifest is {} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit",
                        meta.len()
                    ),
                    "keep the manifest small",
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| {
            ManifestError::single(
                &origin,
                Problem::new("", format!("cannot read manifest: {e}"), "check the path"),
            )
        })?;
        Manifest::parse(&bytes, format, &origin)
    }

    /// Semantic checks serde cannot express. Returns every problem, not just the first.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(Problem::new(
                "name",
                "must not be empty",
                "give the plugin a human-readable name",
            ));
        }
        if self.name.len() > 128 {
            out.push(Problem::new(
                "name",
                "is longer than 128 characters",
                "shorten it",
            ));
        }
        if self.description.trim().is_empty() {
            out.push(Problem::new(
                "description",
                "must not be empty",
                "say in a sentence what the plugin does",
            ));
        }
        if self.description.len() > 4096 {
            out.push(Problem::new(
                "description",
                "is longer than 4096 characters",
                "shorten it",
            ));
        }
        for (field, list) in [("categories", &self.categories), ("tags", &self.tags)] {
            if list.len() > 32 {
                out.push(Problem::new(
                    field,
                    "has more than 32 entries",
                    "keep the most relevant ones",
                ));
            }
            for (i, v) in list.iter().enumerate() {
                if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control()) {
                    out.push(Problem::new(
                        format!("{field}[{i}]"),
                        "must be 1 to 64 printable characters",
                        "use short words such as `secrets`",
                    ));
                }
            }
        }
        check_component_path(&self.component, &mut out);
        if let Some(schema) = &self.config_schema
            && let Err(e) = jsonschema::validator_for(schema)
        {
            out.push(Problem::new(
                "config-schema",
                format!("is not a valid JSON Schema: {e}"),
                "write a JSON Schema (draft 2020-12) object describing the config",
            ));
        }
        for id in self.dependencies.keys() {
            if id == &self.id {
                out.push(Problem::new(
                    format!("dependencies.{id}"),
                    "a plugin cannot depend on itself",
                    "remove the entry",
                ));
            }
        }
        self.capabilities.problems(&mut out);
        self.limits.problems(&mut out);
        out
    }

    /// Checks the host version against the manifest's `host` requirement.
    pub fn check_host_compat(&self, host_version: &semver::Version) -> Result<(), Problem> {
        if self.host.matches(host_version) {
            Ok(())
        } else {
            Err(Problem::new(
                "host",
                format!(
                    "plugin requires SecFlow {} but this is SecFlow {host_version}",
                    self.host
                ),
                "use a plugin release built for this SecFlow version, or upgrade SecFlow",
            ))
        }
    }

    /// Validates a configuration value against `config-schema`. Without a schema any JSON
    /// object is accepted. Returns one message per violation, each naming the config key.
    /// Compiles the schema on each call: hot paths keep a [`ConfigValidator`] instead.
    pub fn validate_config(&self, config: &serde_json::Value) -> Result<(), Vec<String>> {
        self.config_validator()?.validate(config)
    }

    /// Compiles `config-schema` once, for validating many configurations.
    pub fn config_validator(&self) -> Result<ConfigValidator, Vec<String>> {
        let schema = match &self.config_schema {
            None => None,
            Some(schema) => Some(
                jsonschema::validator_for(schema)
                    .map_err(|e| vec![format!("the plugin's config-schema is invalid: {e}")])?,
            ),
        };
        Ok(ConfigValidator { schema })
    }
}

/// A compiled `config-schema`.
#[derive(Debug)]
pub struct ConfigValidator {
    schema: Option<jsonschema::Validator>,
}

impl ConfigValidator {
    /// Checks a configuration: it must be a JSON object that satisfies the schema, if any.
    pub fn validate(&self, config: &serde_json::Value) -> Result<(), Vec<String>> {
        if !config.is_object() {
            return Err(vec!["configuration must be a JSON object".to_string()]);
        }
        let Some(validator) = &self.schema else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(config)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    format!("config: {e}")
                } else {
                    format!("config{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn check_component_path(component: &str, out: &mut Vec<Problem>) {
    let path = Path::new(component);
    let bad = component.is_empty()
        || path.is_absolute()
        || component.contains('\\')
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if bad {
        out.push(Problem::new(
            "component",
            format!(
                "`{}` is not a relative path inside the plugin directory",
                component.escape_debug()
            ),
            "use a path such as `plugin.wasm` with no `..` or leading `/`",
        ));
    } else if !component.ends_with(".wasm") {
        out.push(Problem::new(
            "component",
            format!("`{component}` does not end in .wasm"),
            "point at the WebAssembly component file",
        ));
    }
}

/// Turns a byte offset into "line L, column C: `the line`" for TOML errors, so the message
/// shows the key at fault even when the parser only knows a position.
fn describe_toml_position(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let source: String = text
        .lines()
        .nth(line - 1)
        .unwrap_or("")
        .trim()
        .chars()
        .take(80)
        .collect();
    format!("line {line}, column {column}: {source}")
}

/// The JSON Schema of the manifest, generated from these types, for editors and CI.
///
/// Object keys are sorted, so the published file is the same whichever crates share the
/// build: another crate enabling serde_json's `preserve_order` would otherwise reorder it.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    sorted(serde_json::to_value(schema).expect("a generated schema serializes"))
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
