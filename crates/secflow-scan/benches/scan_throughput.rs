//! Scan throughput: the sandboxed pipeline (secrets and code-pattern detectors as wasm
//! components, `jobs` workers) against a native run of the same rule engines on the same
//! files with the same number of threads, over a generated corpus of source-like files.
//! Also start-up to first file scanned, with the component cache warm.
//!
//! ```sh
//! cargo bench -p secflow-scan --bench scan_throughput            # 200 MB corpus
//! SECFLOW_BENCH_MB=50 cargo bench -p secflow-scan --bench scan_throughput
//! ```
//! Prints a table; the figures go to BENCHMARKS.md.

use secflow_runtime::{Grants, Runtime, RuntimeConfig};
use secflow_scan::{NoProgress, ScanOptions, ScanPlugin};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deterministic generator (xorshift) so every run scans the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn token(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Ordinary lines per language, and a few risky ones mixed in rarely.
fn lines(ext: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match ext {
        "py" => (
            &[
                "def handle_{n}(request, session):",
                "    items = [item.strip() for item in request.args.get('q', '').split(',')]",
                "    total = sum(price * qty for price, qty in zip(prices, quantities))",
                "    logger.info('processed %d items for %s', len(items), session.user)",
                "    return render_template('cart.html', items=items, total=total)",
                "# Keep the cache warm; see docs/caching.md for the invalidation rules.",
                "    cursor.execute(\"SELECT id FROM orders WHERE id = %s\", (order_id,))",
            ],
            &["    cursor.execute(\"SELECT * FROM users WHERE name = '\" + name + \"'\")"],
        ),
        "js" | "ts" => (
            &[
                "export function render{n}(props) {",
                "  const rows = props.items.map((item) => ({ id: item.id, label: item.name }));",
                "  if (!rows.length) { return null; }",
                "  return rows.filter((row) => row.label && row.label.length > 2);",
                "}",
                "// Format amounts with the user's locale, falling back to en-US.",
                "const formatter = new Intl.NumberFormat(locale || 'en-US', { style: 'currency' });",
            ],
            &["  const out = eval(\"(\" + req.query.filter + \")\");"],
        ),
        "java" => (
            &[
                "    public List<Invoice> findOpen{n}(Customer customer) {",
                "        List<Invoice> open = new ArrayList<>(customer.getInvoices().size());",
                "        for (Invoice invoice : customer.getInvoices()) {",
                "            if (!invoice.isPaid()) { open.add(invoice); }",
                "        }",
                "        return Collections.unmodifiableList(open);",
                "    }",
            ],
            &["        MessageDigest md = MessageDigest.getInstance(\"MD5\");"],
        ),
        "go" => (
            &[
                "func (s *Server) handle{n}(w http.ResponseWriter, r *http.Request) {",
                "\tctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)",
                "\tdefer cancel()",
                "\tif err := s.store.Touch(ctx, r.URL.Path); err != nil {",
                "\t\thttp.Error(w, err.Error(), http.StatusInternalServerError)",
                "\t}",
                "}",
            ],
            &["\tcfg := &tls.Config{InsecureSkipVerify: true}"],
        ),
        _ => (
            &[
                "pub fn process_{n}(jobs: &[Job]) -> Result<Summary, Error> {",
                "    let mut summary = Summary::default();",
                "    for job in jobs.iter().filter(|j| j.ready()) {",
                "        summary.record(job.run()?);",
                "    }",
                "    Ok(summary)",
                "}",
            ],
            &[
                "    let status = Command::new(\"sh\").arg(\"-c\").arg(format!(\"tar czf {} {}\", out, dir)).status()?;",
            ],
        ),
    }
}

/// Writes about `mb` megabytes of source-like files; returns (dir, bytes).
fn corpus(dir: &Path, mb: usize) -> u64 {
    let mut rng = Rng(0x5ec_f10e);
    let exts = ["py", "js", "ts", "java", "go", "rs"];
    let target = (mb as u64) << 20;
    let mut written = 0u64;
    let mut file = 0usize;
    while written < target {
        let ext = exts[file % exts.len()];
        let (normal, risky) = lines(ext);
        let size = 20_000 + rng.below(80_000);
        let mut text = String::with_capacity(size + 200);
        let mut n = 0;
        while text.len() < size {
            n += 1;
            let roll = rng.below(1000);
            if roll == 0 {
                text.push_str(risky[rng.below(risky.len())]);
            } else if roll == 1 {
                text.push_str(&format!("GITHUB_TOKEN = \"ghp_{}\"", rng.token(36, ALNUM)));
            } else if roll == 2 {
                text.push_str(&format!(
                    "aws_key = \"AKIA{}\"",
                    rng.token(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                ));
            } else {
                text.push_str(&normal[rng.below(normal.len())].replace("{n}", &n.to_string()));
            }
            text.push('\n');
        }
        let sub = dir.join(format!("pkg{:03}", file / 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file{file:05}.{ext}")), &text).unwrap();
        written += text.len() as u64;
        file += 1;
    }
    written
}

fn bundled(rt: &Runtime, names: &[&str]) -> Vec<ScanPlugin> {
    names
        .iter()
        .map(|name| {
            let b = secflow_plugin_artifacts::BUNDLED
                .iter()
                .find(|b| b.name == *name)
                .unwrap_or_else(|| panic!("bundled plugin {name}"));
            let manifest = secflow_manifest::Manifest::parse(
                b.manifest.as_bytes(),
                secflow_manifest::Format::Toml,
                name,
            )
            .unwrap();
            let plugin = rt.load(manifest, b.component, Grants::none()).unwrap();
            ScanPlugin {
                plugin: Arc::new(plugin),
                config: serde_json::json!({}),
                origin: "bundled".into(),
            }
        })
        .collect()
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The same engines natively: `jobs` threads, each reading and scanning its share.
fn native(dir: &Path, jobs: usize) -> (Duration, usize) {
    let files = Arc::new(files_of(dir));
    let started = Instant::now();
    let secrets = Arc::new(secflow_secrets::Scanner::builtin());
    let patterns = Arc::new(secflow_patterns::RuleSet::builtin());
    let handles: Vec<_> = (0..jobs)
        .map(|j| {
            let (files, secrets, patterns) = (files.clone(), secrets.clone(), patterns.clone());
            std::thread::spawn(move || {
                let mut found = 0;
                for (i, path) in files.iter().enumerate() {
                    if i % jobs != j {
                        continue;
                    }
                    let content = std::fs::read(path).unwrap();
                    let rel = path.to_string_lossy();
                    found += secrets.scan(&rel, &content).len();
                    found += patterns.scan(&rel, &content).len();
                }
                found
            })
        })
        .collect();
    let found = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (started.elapsed(), found)
}

fn sandboxed(rt: &Runtime, plugins: &[ScanPlugin], dir: &Path, jobs: usize) -> (Duration, usize) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = ScanOptions {
        jobs,
        ..ScanOptions::default()
    };
    if let Some(mb) = std::env::var("SECFLOW_BENCH_BATCH_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        opts.batch_bytes = mb << 20;
        opts.batch_files = usize::MAX;
    }
    let started = Instant::now();
    let report = tokio
        .block_on(secflow_scan::scan(
            rt,
            dir,
            plugins,
            &opts,
            Arc::new(NoProgress),
        ))
        .unwrap();
    assert!(!report.partial, "{:?}", report.errors);
    (started.elapsed(), report.findings.len())
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let mb: usize = std::env::var("SECFLOW_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("corpus");
    let t = Instant::now();
    let bytes = corpus(&dir, mb);
    let files = files_of(&dir).len();
    eprintln!(
        "corpus: {files} files, {:.1} MB, generated in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let cache = work.path().join("cache");
    let config = RuntimeConfig {
        cache_dir: Some(cache.clone()),
        cache_key: Some(secflow_runtime::CacheKey([7; 32])),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config.clone()).unwrap();
    let detectors = ["secrets-detector", "code-patterns"];
    let plugins = bundled(&rt, &detectors);

    // Warm the page cache and the plugins once, then measure each side three times.
    let _ = native(&dir, jobs);
    let _ = sandboxed(&rt, &plugins, &dir, jobs);
    let mut n_best = Duration::MAX;
    let mut s_best = Duration::MAX;
    let (mut n_found, mut s_found) = (0, 0);
    for _ in 0..3 {
        let (d, f) = native(&dir, jobs);
        n_best = n_best.min(d);
        n_found = f;
        let (d, f) = sandboxed(&rt, &plugins, &dir, jobs);
        s_best = s_best.min(d);
        s_found = f;
    }
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();

    // Start-up to first file scanned, cache warm: a new runtime, every bundled plugin
    // loaded from the cache, one small file scanned through the whole pipeline.
    let small = work.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("app.py"), "import os\nprint(os.getcwd())\n").unwrap();
    let all: Vec<&str> = secflow_plugin_artifacts::BUNDLED
        .iter()
        .map(|b| b.name)
        .collect();
    let mut startup = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let rt = Runtime::new(config.clone()).unwrap();
        let plugins = bundled(&rt, &all);
        let (_, _) = sandboxed(&rt, &plugins, &small, jobs);
        startup = startup.min(t.elapsed());
    }

    println!(
        "\nscan throughput, {:.0} MB in {files} files, {jobs} jobs (best of 3)\n",
        bytes as f64 / 1e6
    );
    println!("| run | time | throughput | findings |");
    println!("|---|---|---|---|");
    println!(
        "| native Rust, same engines, {jobs} threads (baseline) | {:.2} s | {:.0} MB/s | {n_found} |",
        n_best.as_secs_f64(),
        mbps(n_best)
    );
    println!(
        "| SecFlow pipeline, both detectors sandboxed | {:.2} s | {:.0} MB/s | {s_found} |",
        s_best.as_secs_f64(),
        mbps(s_best)
    );
    println!(
        "| ratio sandboxed / native | | **{:.2}×** | |",
        mbps(s_best) / mbps(n_best)
    );
    println!(
        "\nstart-up to first file scanned ({} bundled plugins, cache warm, in process): {:.1} ms",
        all.len(),
        startup.as_secs_f64() * 1000.0
    );
}
