//! Compiles the redactor's patterns into serialized, minimized DFAs that the plugin loads
//! without compiling anything. A proxy filter runs in a fresh instance per request:
//! compiling seven regular expressions in `init` cost ~4 ms a call.

use regex_automata::dfa::{StartKind, dense, regex::Builder};
use regex_automata::util::syntax;
use std::path::{Path, PathBuf};

// `needs` is the plugin's prefilter; only the expressions matter here.
#[allow(dead_code)]
#[path = "src/patterns.rs"]
mod patterns;

use patterns::Search;

/// Little-endian: the order of wasm32 and of every host the tests run on.
fn write(out: &Path, file: String, dfa: &dense::DFA<Vec<u32>>) {
    let (bytes, pad) = dfa.to_bytes_little_endian();
    let path = out.join(file);
    std::fs::write(&path, &bytes[pad..])
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn main() {
    println!("cargo:rerun-if-changed=src/patterns.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Bytewise, ASCII classes and ASCII word boundaries (what a DFA can do).
    let syntax = syntax::Config::new().unicode(false);
    for patterns::Spec {
        name,
        expression: pattern,
        search,
        ..
    } in patterns::PATTERNS
    {
        let failed = |e: regex_automata::dfa::dense::BuildError| -> ! {
            panic!("pattern `{name}` does not compile: {e}")
        };
        match search {
            Search::Unanchored => {
                let regex = Builder::new()
                    .syntax(syntax)
                    .dense(dense::Config::new().minimize(true))
                    .build(pattern)
                    .unwrap_or_else(|e| failed(e));
                write(&out, format!("{name}.fwd.dfa"), regex.forward());
                write(&out, format!("{name}.rev.dfa"), regex.reverse());
            }
            Search::AtDigits => {
                let dfa = dense::Builder::new()
                    .syntax(syntax)
                    .configure(
                        dense::Config::new()
                            .minimize(true)
                            .start_kind(StartKind::Anchored),
                    )
                    .build(pattern)
                    .unwrap_or_else(|e| failed(e));
                write(&out, format!("{name}.anchored.dfa"), &dfa);
            }
        }
    }
}
