//! Reading policy and schema files, refusing hostile shapes before Cedar parses them, and
//! turning Cedar's diagnostics into problems that name file, line and policy.

use crate::{
    DEFAULT_DENY, INVALID_REQUEST, MAX_FILE_BYTES, MAX_NESTING, MAX_OPERATORS, POLICY_CHECK_FAILED,
    PolicyError, PolicyProblem,
};
use cedar_policy::{PolicyId, PolicySet};
use miette::Diagnostic;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// A file's name (as shown in problems) and text.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Where each policy came from, for problems.
#[derive(Debug, Clone)]
pub(crate) struct PolicyOrigin {
    pub(crate) file: String,
    pub(crate) line: usize,
}

/// Creates `path` with `text`, atomically and never over an existing file: the text is
/// written and synced to a temporary file in the same directory, which is then hard-linked
/// to `path` (a link fails if `path` exists, where a rename would replace it).
pub(crate) fn write_new(path: &Path, text: &str) -> Result<(), PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::hard_link(&tmp, path).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => PolicyError::Exists {
                path: path.to_path_buf(),
            },
            _ => io(source),
        })
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`]; `None` if it does not exist.
pub(crate) fn read_limited(path: &Path) -> Result<Option<String>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
        // Opening a FIFO would block until someone writes to it; a device could be endless.
        Ok(meta) if !meta.is_file() => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        Ok(_) => {}
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    let too_large = |size| PolicyError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_FILE_BYTES,
    };
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    // `take` guards against a file that grows after the size check (or a device file).
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        PolicyError::Invalid(vec![PolicyProblem {
            file: path.display().to_string(),
            line: Some(line_of(&String::from_utf8_lossy(e.as_bytes())[..], offset)),
            policy: None,
            message: format!("not valid UTF-8 (at byte {offset}); save the file as UTF-8"),
            warning: false,
        }])
    })
}

/// Parses one policy file and adds its policies, renamed to their `@id`, to `set`.
pub(crate) fn load_policy_file(
    src: &Source,
    set: &mut PolicySet,
    origins: &mut HashMap<String, PolicyOrigin>,
    problems: &mut Vec<PolicyProblem>,
) {
    let problem = |line: Option<usize>, policy: Option<String>, message: String| PolicyProblem {
        file: src.name.clone(),
        line,
        policy,
        message,
        warning: false,
    };
    if let Some(problem) = nesting_problem(src, false) {
        problems.push(problem);
        return;
    }
    let parsed = match PolicySet::from_str(&src.text) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for e in errors.iter() {
                problems.push(diagnostic_problem(src, e, None, false));
            }
            return;
        }
    };
    for template in parsed.templates() {
        problems.push(problem(
            None,
            template.annotation("id").map(str::to_string),
            "is a template (it uses ?principal or ?resource); SecFlow does not link templates, \
             so it would never apply: write a static policy"
                .to_string(),
        ));
    }
    if parsed.num_of_policies() == 0 && parsed.num_of_templates() == 0 {
        problems.push(problem(
            None,
            None,
            "contains no policies; add policies or delete the file (with no .cedar file at all \
             the built-in defaults apply)"
                .to_string(),
        ));
        return;
    }
    // Cedar numbers policies `policy0`, `policy1`, ... in source order; walk them in that
    // order so each one's text can be found after the previous one's to learn its line.
    let mut in_order: Vec<_> = parsed.policies().collect();
    in_order.sort_by_key(|p| {
        AsRef::<str>::as_ref(p.id())
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    let mut cursor = 0;
    for policy in in_order {
        let offset = policy
            .to_cedar()
            .and_then(|text| src.text[cursor..].find(&text).map(|i| cursor + i));
        if let Some(o) = offset {
            cursor = o + 1;
        }
        let line = offset.map_or(1, |o| line_of(&src.text, o));
        let id = match policy.annotation("id").map(str::trim) {
            Some("") => {
                problems.push(problem(Some(line), None, "has an empty @id".to_string()));
                continue;
            }
            Some(id) if id.len() > 128 || id.chars().any(char::is_control) => {
                problems.push(problem(
                    Some(line),
                    None,
                    "has an @id longer than 128 characters or with control characters; \
                     decisions and the audit log show it, so keep it a short name"
                        .to_string(),
                ));
                continue;
            }
            Some(id) => id.to_string(),
            // Still reportable and unique: where it is.
            None => format!("{}:{line}", src.name),
        };
        if [DEFAULT_DENY, POLICY_CHECK_FAILED, INVALID_REQUEST].contains(&id.as_str()) {
            problems.push(problem(
                Some(line),
                Some(id.clone()),
                "uses an @id SecFlow reserves for its own decisions; rename it".to_string(),
            ));
            continue;
        }
        if let Some(first) = origins.get(&id) {
            problems.push(problem(
                Some(line),
                Some(id.clone()),
                format!(
                    "the @id is already used at {}:{}; policy ids must be unique",
                    first.file, first.line
                ),
            ));
            continue;
        }
        if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
            problems.push(problem(Some(line), Some(id), e.to_string()));
            continue;
        }
        origins.insert(
            id,
            PolicyOrigin {
                file: src.name.clone(),
                line,
            },
        );
    }
}

pub(crate) fn nesting_problem(src: &Source, schema: bool) -> Option<PolicyProblem> {
    let (offset, message) = shape_problem(&src.text, schema)?;
    Some(PolicyProblem {
        file: src.name.clone(),
        line: Some(line_of(&src.text, offset)),
        policy: None,
        message,
        warning: false,
    })
}

/// A validation error or warning for one policy, located in its file.
pub(crate) fn policy_problem(
    origin: Option<&PolicyOrigin>,
    sources: &[Source],
    diag: &dyn Diagnostic,
    id: &PolicyId,
    warning: bool,
) -> PolicyProblem {
    let (file, line) = match origin {
        Some(o) => {
            // Cedar's spans point into the text the policy was parsed from, the whole file.
            let label_line = sources
                .iter()
                .find(|s| s.name == o.file)
                .and_then(|s| first_label_line(&s.text, diag))
                .filter(|&l| l >= o.line);
            (o.file.clone(), Some(label_line.unwrap_or(o.line)))
        }
        None => (String::from("<policies>"), None),
    };
    // Cedar names the policy in its message too; the problem already does.
    let message = diagnostic_message(diag).replace(&format!("for policy `{id}`, "), "");
    PolicyProblem {
        file,
        line,
        policy: Some(id.to_string()),
        message,
        warning,
    }
}

pub(crate) fn diagnostic_problem(
    src: &Source,
    diag: &dyn Diagnostic,
    policy: Option<String>,
    warning: bool,
) -> PolicyProblem {
    PolicyProblem {
        file: src.name.clone(),
        line: first_label_line(&src.text, diag),
        policy,
        message: diagnostic_message(diag),
        warning,
    }
}

/// Cedar's message plus its hint ("did you mean ...?") when it gives one.
fn diagnostic_message(diag: &dyn Diagnostic) -> String {
    let mut message = diag.to_string();
    if let Some(help) = diag.help() {
        message.push_str(&format!(" ({help})"));
    }
    message
}

fn first_label_line(text: &str, diag: &dyn Diagnostic) -> Option<usize> {
    let label = diag.labels()?.next()?;
    (label.offset() <= text.len()).then(|| line_of(text, label.offset()))
}

/// An error and its causes, `: `-separated (Cedar's top-level messages are often generic,
/// e.g. "entity does not conform to the schema", with the detail in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the first place where a file is shaped to exhaust the stack: deeper than
/// [`MAX_NESTING`] (brackets, `<` `>` in schemas for `Set<...>`, and every `if` in the
/// statement, since `if a then if b then ...` nests without brackets), or a statement with
/// more than [`MAX_OPERATORS`] operators (each one can add a level to the expression tree,
/// which is built, cloned and dropped recursively). Over-counting is deliberate: cheap and
/// conservative. Strings and `//` comments are skipped.
fn shape_problem(text: &str, schema: bool) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let word_at = |i: usize, word: &[u8]| {
        bytes[i..].starts_with(word)
            && (i == 0 || !is_ident(bytes[i - 1]))
            && !bytes.get(i + word.len()).is_some_and(|&b| is_ident(b))
    };
    let (mut brackets, mut ifs, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => brackets += 1,
            b'<' if schema => brackets += 1,
            b')' | b']' | b'}' => brackets = brackets.saturating_sub(1),
            b'>' if schema => brackets = brackets.saturating_sub(1),
            b';' if brackets == 0 => (ifs, operators) = (0, 0),
            b'.' | b'+' | b'-' | b'*' | b'!' | b'<' | b'>' | b'=' | b'&' | b'|' if !schema => {
                operators += 1;
            }
            b'i' if !schema && word_at(i, b"if") => ifs += 1,
            b'h' | b'l' | b'i'
                if !schema
                    && [&b"has"[..], b"like", b"in", b"is"]
                        .iter()
                        .any(|w| word_at(i, w)) =>
            {
                operators += 1;
            }
            _ => {}
        }
        if brackets + ifs > MAX_NESTING {
            return Some((
                i,
                format!(
                    "nests brackets and `if` expressions {} deep, more than the limit of \
                     {MAX_NESTING}; split the expression or the policy",
                    brackets + ifs
                ),
            ));
        }
        if operators > MAX_OPERATORS {
            return Some((
                i,
                format!(
                    "has more than {MAX_OPERATORS} operators in one policy; split it into \
                     several policies"
                ),
            ));
        }
        i += 1;
    }
    None
}

/// Strict validation of `policies` against `schema`: every error and warning as a problem
/// naming the file and line the policy came from.
pub(crate) fn validation_problems(
    schema: cedar_policy::Schema,
    policies: &PolicySet,
    origins: &HashMap<String, PolicyOrigin>,
    policy_srcs: &[Source],
) -> Vec<PolicyProblem> {
    let result = cedar_policy::Validator::new(schema)
        .validate(policies, cedar_policy::ValidationMode::Strict);
    let by_id = |id: &PolicyId| origins.get(AsRef::<str>::as_ref(id));
    let mut problems = Vec::new();
    for e in result.validation_errors() {
        problems.push(policy_problem(
            by_id(e.policy_id()),
            policy_srcs,
            e,
            e.policy_id(),
            false,
        ));
    }
    for w in result.validation_warnings() {
        problems.push(policy_problem(
            by_id(w.policy_id()),
            policy_srcs,
            w,
            w.policy_id(),
            true,
        ));
    }
    problems
}

/// Reads a policy directory: `dir/<schema_file>` (else `builtin_schema`) and every
/// `dir/*.cedar` in name order (else `builtin_policies` when there is none). At most
/// [`MAX_POLICY_FILES`](crate::MAX_POLICY_FILES) files, each size-capped; a missing
/// directory means the built-ins.
pub(crate) fn read_policy_dir(
    dir: &Path,
    schema_file: &str,
    builtin_schema: (&str, &str),
    builtin_policies: (&str, &str),
) -> Result<(Source, Vec<Source>), PolicyError> {
    let builtin = |(name, text): (&str, &str)| Source {
        name: name.to_string(),
        text: text.to_string(),
    };
    let schema_path = dir.join(schema_file);
    let schema = match read_limited(&schema_path)? {
        Some(text) => Source {
            name: schema_path.display().to_string(),
            text,
        },
        None => builtin(builtin_schema),
    };
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io(source)),
        Ok(entries) => {
            for entry in entries {
                let path = entry.map_err(io)?.path();
                if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                    paths.push(path);
                    if paths.len() > crate::MAX_POLICY_FILES {
                        return Err(PolicyError::TooManyFiles {
                            dir: dir.to_path_buf(),
                            limit: crate::MAX_POLICY_FILES,
                        });
                    }
                }
            }
        }
    }
    paths.sort();
    let mut policies = Vec::with_capacity(paths.len());
    for path in paths {
        // A file deleted between listing and reading is simply not loaded.
        if let Some(text) = read_limited(&path)? {
            policies.push(Source {
                name: path.display().to_string(),
                text,
            });
        }
    }
    if policies.is_empty() {
        policies.push(builtin(builtin_policies));
    }
    Ok((schema, policies))
}

/// Stack of the thread that parses and builds a policy set: Cedar's parser recurses per
/// nesting level (nesting is bounded first, see [`nesting_problem`]).
const LOAD_STACK_BYTES: usize = 32 << 20;

/// Builds a policy set from `schema` and `policies` on a thread with a large stack: the one
/// way every policy set (admission, API, marketplace) is loaded.
pub(crate) fn build_on_large_stack<T: Send>(
    schema: &Source,
    policies: &[Source],
    build: impl FnOnce(&Source, &[Source]) -> Result<T, PolicyError> + Send,
) -> Result<T, PolicyError> {
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("secflow-policy-load".to_string())
            .stack_size(LOAD_STACK_BYTES)
            .spawn_scoped(scope, || build(schema, policies))
            .map(|handle| handle.join())
    });
    match outcome {
        Ok(Ok(result)) => result,
        // Never seen; a Cedar bug on hostile input must still not take the host down.
        Ok(Err(_panic)) => Err(PolicyError::Invalid(vec![PolicyProblem {
            file: policies
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            line: None,
            policy: None,
            message: "the Cedar parser failed on these files (an internal error); \
                      simplify them and report the input"
                .to_string(),
            warning: false,
        }])),
        // Parsing on the caller's (possibly small) stack could abort the process on a
        // hostile file, so a missing thread is an error, not a fallback.
        Err(e) => Err(PolicyError::Io {
            path: schema.name.clone().into(),
            source: std::io::Error::new(
                e.kind(),
                format!("cannot start the thread that loads policies: {e}"),
            ),
        }),
    }
}
