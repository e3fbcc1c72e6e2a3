//! `docs/cli.md`, generated from the clap definitions (the same ones `--help` prints), and
//! checked up to date by a test: the reference can never drift from the binary.

use clap::Command;

/// The Markdown reference of every command, depth first.
pub fn markdown(root: &Command) -> String {
    let mut out = String::from(
        "# `secflow` command reference\n\n\
         Generated from the command-line definitions by `SECFLOW_BLESS=1 cargo test -p secflow-cli --bin secflow clidoc`;\n\
         do not edit by hand. Exit codes: 0 success, 1 findings at or above `--fail-on`, 2 usage or\n\
         configuration error, 3 refused (verification or policy), 4 plugin failed.\n",
    );
    let mut root = root.clone();
    root.build();
    walk(&root, &[], &mut out);
    out
}

fn walk(cmd: &Command, path: &[&str], out: &mut String) {
    let mut full: Vec<&str> = path.to_vec();
    full.push(cmd.get_name());
    let title = full.join(" ");
    out.push_str(&format!(
        "\n{} `{title}`\n\n",
        "#".repeat(full.len().min(4) + 1)
    ));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        out.push_str(&format!("{}\n\n", flat(&about.to_string())));
    }
    let mut usage = cmd.clone();
    out.push_str(&format!(
        "```\n{}\n```\n",
        usage
            .render_usage()
            .to_string()
            .trim_start_matches("Usage: ")
            .trim()
    ));
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .filter(|a| !a.is_global_set() || path.is_empty())
        .collect();
    if !args.is_empty() {
        out.push_str("\n| argument | meaning |\n|---|---|\n");
        for a in args {
            out.push_str(&format!("| {} | {} |\n", arg_name(a), arg_help(a)));
        }
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        walk(sub, &full, out);
    }
}

fn arg_name(a: &clap::Arg) -> String {
    let value = a
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let name = match (a.get_short(), a.get_long()) {
        (Some(s), Some(l)) => format!("-{s}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => {
            return format!(
                "`{}`",
                if value.is_empty() {
                    a.get_id().to_string()
                } else {
                    value
                }
            );
        }
    };
    let takes_value = a.get_action().takes_values();
    if takes_value && !value.is_empty() {
        format!("`{name} {value}`")
    } else {
        format!("`{name}`")
    }
}

fn arg_help(a: &clap::Arg) -> String {
    let mut text = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| flat(&h.to_string()))
        .unwrap_or_default();
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && a.get_action().takes_values() {
        text.push_str(&format!(" [default: {}]", defaults.join(", ")));
    }
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !values.is_empty() && a.get_action().takes_values() {
        text.push_str(&format!(" [values: {}]", values.join(", ")));
    }
    if let Some(env) = a.get_env() {
        text.push_str(&format!(" [env: {}]", env.to_string_lossy()));
    }
    text.replace('|', "\\|")
}

/// One line: Markdown tables hold no line breaks.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn docs_cli_md_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
        let generated = super::markdown(&crate::cli::Cli::command());
        if std::env::var_os("SECFLOW_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == generated,
            "docs/cli.md is out of date; regenerate it with SECFLOW_BLESS=1 cargo test -p secflow-cli --bin secflow clidoc"
        );
    }
}
