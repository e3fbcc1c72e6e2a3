//! The heuristics, on plain text (no JSON), so the corpus test can measure them natively.

/// One thing found in a text, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// "ignore previous instructions", "you are now DAN", ...
    Override(&'static str),
    /// A chat-template token or role header inside user content.
    Delimiter(&'static str),
    /// Zero-width, bidi-control or tag characters.
    InvisibleUnicode,
    /// A base64 or hex payload that decodes to an override or delimiter.
    EncodedPayload,
    /// A weaker sign ("system prompt", "no restrictions") that adds up with others.
    Weak(&'static str),
}

impl Signal {
    pub fn name(&self) -> &'static str {
        match self {
            Signal::Override(name) | Signal::Delimiter(name) | Signal::Weak(name) => name,
            Signal::InvisibleUnicode => "invisible-unicode",
            Signal::EncodedPayload => "encoded-payload",
        }
    }

    fn weight(&self) -> u32 {
        match self {
            Signal::Weak(_) => 2,
            _ => 5,
        }
    }
}

/// Phrases that try to replace the instructions or the assistant's role: each is a list of
/// word groups that must appear in order, each within `gap` words of the previous one.
type Rule = (&'static str, usize, &'static [&'static [&'static str]]);

const REVEAL: &[&str] = &[
    "reveal", "reveals", "print", "show", "repeat", "output", "display", "leak", "tell", "give",
    "dump", "write", "recite", "disclose",
];

const OVERRIDES: &[Rule] = &[
    (
        "ignore-instructions",
        3,
        &[
            &[
                "ignore",
                "ignores",
                "disregard",
                "forget",
                "skip",
                "bypass",
                "override",
                "drop",
            ],
            &[
                "all",
                "any",
                "every",
                "the",
                "your",
                "its",
                "previous",
                "prior",
                "above",
                "earlier",
                "preceding",
                "original",
                "initial",
                "system",
            ],
            &[
                "instructions",
                "instruction",
                "rules",
                "guidelines",
                "directives",
                "directions",
                "prompt",
                "prompts",
                "constraints",
                "guardrails",
                "programming",
                "policies",
                "restrictions",
            ],
        ],
    ),
    (
        "forget-everything",
        3,
        &[
            &["forget", "erase", "wipe", "clear"],
            &["everything", "all"],
            &["told", "said", "above", "before", "know"],
        ],
    ),
    (
        "new-role",
        3,
        &[
            &["you", "you're"],
            &["are", "now", "will"],
            &["now", "be", "become", "act", "answer", "respond"],
            &[
                "dan",
                "unrestricted",
                "unfiltered",
                "jailbroken",
                "evil",
                "uncensored",
                "developer",
                "god",
            ],
        ],
    ),
    (
        "act-without-limits",
        5,
        &[
            &[
                "act",
                "acts",
                "pretend",
                "behave",
                "roleplay",
                "role-play",
                "respond",
                "answer",
            ],
            &["no", "without", "zero", "free"],
            &[
                "restrictions",
                "limits",
                "filters",
                "rules",
                "guidelines",
                "censorship",
                "ethics",
                "ethical",
                "morals",
                "moral",
                "boundaries",
                "policy",
                "policies",
            ],
        ],
    ),
    (
        "act-unfiltered",
        4,
        &[
            &[
                "act",
                "pretend",
                "behave",
                "roleplay",
                "role-play",
                "respond",
                "answer",
                "be",
            ],
            &[
                "unfiltered",
                "uncensored",
                "unrestricted",
                "jailbroken",
                "evil",
                "amoral",
            ],
        ],
    ),
    (
        "reveal-system-prompt",
        5,
        &[
            REVEAL,
            &[
                "system",
                "hidden",
                "initial",
                "secret",
                "original",
                "developer",
                "internal",
            ],
            &[
                "prompt",
                "instructions",
                "message",
                "rules",
                "configuration",
            ],
        ],
    ),
    (
        "reveal-preprompt",
        3,
        &[REVEAL, &["preprompt", "pre-prompt"]],
    ),
    (
        "developer-mode",
        3,
        &[
            &["enable", "activate", "enter", "switch", "turn"],
            &[
                "developer",
                "dev",
                "god",
                "jailbreak",
                "dan",
                "sudo",
                "admin",
            ],
            &["mode"],
        ],
    ),
    (
        "debug-mode",
        2,
        &[&["enter", "activate"], &["debug"], &["mode"]],
    ),
    (
        "stop-being",
        3,
        &[
            &["stop", "quit", "cease"],
            &["being", "acting", "following", "obeying"],
            &["an", "a", "the", "your"],
            &[
                "assistant",
                "ai",
                "rules",
                "guidelines",
                "instructions",
                "chatbot",
                "model",
            ],
        ],
    ),
    (
        "refusal-suppression",
        3,
        &[
            &["never", "don't", "do", "must"],
            &["refuse", "decline", "apologize", "warn", "not"],
            &[
                "refuse",
                "any",
                "anything",
                "request",
                "requests",
                "questions",
                "decline",
                "warnings",
            ],
        ],
    ),
];

/// Weaker words that are suspicious only together.
const WEAK: &[Rule] = &[
    (
        "mentions-system-prompt",
        2,
        &[&["system"], &["prompt", "message", "instructions"]],
    ),
    (
        "no-restrictions",
        2,
        &[
            &["no", "without", "zero", "ignore"],
            &[
                "restrictions",
                "limitations",
                "filters",
                "censorship",
                "guardrails",
                "rules",
            ],
        ],
    ),
    (
        "jailbreak",
        2,
        &[&["jailbreak", "jailbroken", "jailbreaking"]],
    ),
    ("from-now-on", 2, &[&["from"], &["now"], &["on"]]),
    ("do-anything-now", 1, &[&["do"], &["anything"], &["now"]]),
    (
        "hypothetically",
        2,
        &[
            &[
                "hypothetically",
                "hypothetical",
                "fictional",
                "fiction",
                "story",
                "roleplay",
            ],
            &["no", "without", "unrestricted", "unfiltered", "evil"],
        ],
    ),
];

/// Phrases that hand the model a new task in place of the operator's.
const NEW_TASK: &[&str] = &[
    "new instructions:",
    "updated instructions:",
    "instructions are as follows",
    "real instructions are to",
    "new system prompt",
    "your new task is",
    "your real task is",
];

/// Chat-template tokens and role headers that have no business in user content.
const DELIMITERS: &[(&str, &str)] = &[
    ("<|im_start|>", "chatml-token"),
    ("<|im_end|>", "chatml-token"),
    ("<|system|>", "role-token"),
    ("<|assistant|>", "role-token"),
    ("<|user|>", "role-token"),
    ("<|endoftext|>", "role-token"),
    ("<|eot_id|>", "llama-token"),
    ("<|start_header_id|>", "llama-token"),
    ("[inst]", "llama-token"),
    ("[/inst]", "llama-token"),
    ("<<sys>>", "llama-token"),
    ("<</sys>>", "llama-token"),
    ("</s>", "eos-token"),
    ("### system", "role-header"),
    ("###system", "role-header"),
    ("### instruction", "role-header"),
    ("system:", "role-prefix"),
    ("[system]", "role-header"),
    ("[system message]", "role-header"),
    ("begin system", "fake-boundary"),
    ("=== system", "role-header"),
    ("--- system", "role-header"),
];

fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069 | 0xFEFF | 0xE0000..=0xE007F | 0x00AD)
}

/// Lowercased words (letters, digits, `'` and `-` kept), with confusable digits folded
/// (`1gn0re` → `ignore`) and separators inside words dropped (`i.g.n.o.r.e`).
fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| match c {
            '0' => 'o',
            '1' | '!' | '|' => 'i',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            _ => c.to_ascii_lowercase(),
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in folded.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '-' {
            current.push(c);
        } else if c == '.' || c == '_' || c == '*' {
            // i.g.n.o.r.e / i_g_n_o_r_e: kept together; "end." ends a word at a space.
            continue;
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.into_iter()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether the groups appear in order, each within `gap` words of the previous.
fn in_order(words: &[String], groups: &[&[&str]], gap: usize) -> bool {
    'start: for start in 0..words.len() {
        if !groups[0].contains(&words[start].as_str()) {
            continue;
        }
        let mut at = start;
        for group in &groups[1..] {
            let end = (at + 1 + gap).min(words.len());
            match (at + 1..end).find(|&i| group.contains(&words[i].as_str())) {
                Some(i) => at = i,
                None => continue 'start,
            }
        }
        return true;
    }
    false
}

fn phrases(text: &str, into: &mut Vec<Signal>) {
    let words = words(text);
    for (name, gap, groups) in OVERRIDES {
        if in_order(&words, groups, *gap) {
            into.push(Signal::Override(name));
        }
    }
    for (name, gap, groups) in WEAK {
        if in_order(&words, groups, *gap) {
            into.push(Signal::Weak(name));
        }
    }
    let lower = text.to_lowercase();
    if NEW_TASK.iter().any(|p| lower.contains(p)) {
        into.push(Signal::Override("new-task"));
    }
    for (token, name) in DELIMITERS {
        let found = if *token == "system:" {
            // Only as a line's role prefix, not "the operating system: Linux".
            lower.lines().any(|l| l.trim_start().starts_with("system:"))
        } else {
            lower.contains(token)
        };
        if found && !into.iter().any(|s| s.name() == *name) {
            into.push(Signal::Delimiter(name));
        }
    }
}

fn base64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

fn decode_base64(token: &str) -> Option<String> {
    let bytes: Vec<u8> = token.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= base64_value(*b)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    String::from_utf8(out).ok()
}

fn decode_hex(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Long base64 or hex tokens that decode to printable text with an override or delimiter.
fn encoded(text: &str, depth: u32) -> bool {
    if depth > 2 {
        return false;
    }
    for token in text.split(|c: char| {
        c.is_whitespace() || c == '"' || c == '\'' || c == '`' || c == ',' || c == ':'
    }) {
        if token.len() < 16 {
            continue;
        }
        let decoded = if token.bytes().all(|b| b.is_ascii_hexdigit()) {
            decode_hex(token)
        } else if token
            .bytes()
            .all(|b| base64_value(b).is_some() || b == b'=')
        {
            decode_base64(token)
        } else {
            None
        };
        let Some(decoded) = decoded else { continue };
        let printable = decoded
            .chars()
            .filter(|c| !c.is_control() || c.is_whitespace())
            .count();
        if printable * 10 < decoded.chars().count() * 9 {
            continue;
        }
        let mut inner = Vec::new();
        phrases(&decoded, &mut inner);
        if inner.iter().any(|s| !matches!(s, Signal::Weak(_))) || encoded(&decoded, depth + 1) {
            return true;
        }
    }
    false
}

/// The total score of a text and the signals behind it.
pub fn score(text: &str) -> (u32, Vec<Signal>) {
    let mut signals = Vec::new();
    phrases(text, &mut signals);
    if text.chars().any(is_invisible) {
        signals.push(Signal::InvisibleUnicode);
    }
    if encoded(text, 0) {
        signals.push(Signal::EncodedPayload);
    }
    let total = signals.iter().map(Signal::weight).sum();
    (total, signals)
}
