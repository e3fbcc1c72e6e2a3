//! Fuzzes what users and plugins hand the scan engines: code-pattern rule files (YAML, from
//! `--rules DIR`), secret rule files (TOML), and arbitrary file content scanned by the bundled
//! rules and by any rule set that loaded. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Ok(rules) =
        secflow_patterns::RuleSet::from_yaml_files(&[("fuzz.yaml".into(), text.clone())], false)
    {
        let _ = rules.scan("src/app.py", b"import os\nos.system('ls ' + x)\n");
        let _ = rules.scan("a.js", data);
    }
    if let Ok(scanner) = secflow_secrets::Scanner::from_toml(&text, &Default::default()) {
        let _ = scanner.scan("a.env", b"TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345\n");
    }
    // The bundled rules over arbitrary bytes, as every scanned file is.
    static SECRETS: std::sync::OnceLock<secflow_secrets::Scanner> = std::sync::OnceLock::new();
    static PATTERNS: std::sync::OnceLock<secflow_patterns::RuleSet> = std::sync::OnceLock::new();
    let _ = SECRETS
        .get_or_init(secflow_secrets::Scanner::builtin)
        .scan("config/.env", data);
    for path in ["a.py", "b.ts", "C.java", "d.go", "e.rs", "f.php", "g.c"] {
        let _ = PATTERNS
            .get_or_init(secflow_patterns::RuleSet::builtin)
            .scan(path, data);
    }
});
