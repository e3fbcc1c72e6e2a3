//! `secflow plugin info ID`: an installed plugin's manifest, signatures, grant, statistics
//! and health.

use crate::exit::{Exit, HostResultExt};
use secflow_host::Host;

pub fn run(host: &Host, id: &str, json: bool) -> anyhow::Result<Exit> {
    let info = host.block_on(host.info(id)).cli()?;
    if json {
        outln!("{}", secflow_term::to_json_pretty(&info)?);
        return Ok(Exit::Success);
    }
    let (plugin, m, stats) = (&info.plugin, &info.manifest, &info.stats);
    outln!("{} {} — {}", m.id, m.version, m.name);
    outln!("  {}", m.description);
    outln!("kind          {}", m.kind);
    outln!("state         {}", plugin.state());
    if let Some(reason) = &plugin.quarantine_reason {
        outln!("quarantined   {reason}");
    }
    outln!("digest        {}", plugin.digest);
    if !m.authors.is_empty() {
        outln!("authors       {}", m.authors.join(", "));
    }
    if let Some(license) = &m.license {
        outln!("license       {license}");
    }
    if !m.categories.is_empty() || !m.tags.is_empty() {
        outln!(
            "categories    {}   tags {}",
            m.categories.join(", "),
            m.tags.join(", ")
        );
    }
    if !m.dependencies.is_empty() {
        let deps: Vec<String> = m
            .dependencies
            .iter()
            .map(|(d, r)| format!("{d} {r}"))
            .collect();
        outln!("dependencies  {}", deps.join(", "));
    }
    outln!("versions      {}", info.versions.join(", "));
    if plugin.signers.is_empty() {
        outln!("signatures    none (installed in developer mode)");
    }
    for s in &plugin.signers {
        outln!(
            "signature     {} {} ({})",
            s.key_id,
            s.name.as_deref().unwrap_or("?"),
            s.role
        );
    }
    outln!(
        "granted       {}",
        if info.granted.is_empty() {
            "nothing".to_string()
        } else {
            info.granted.join(", ")
        }
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    outln!(
        "runs          {} ({} errors, {} violations); avg {}, p95 {}",
        stats.executions,
        stats.errors,
        plugin.violations,
        ms(stats.avg_ms),
        ms(stats.p95_ms)
    );
    outln!(
        "last run      {}",
        match (&stats.last_run, &stats.last_outcome) {
            (Some(t), Some(o)) => format!("{t} ({o})"),
            _ => "never".to_string(),
        }
    );
    outln!(
        "health        {}",
        match &info.health {
            Some(h) => format!(
                "{} at {} ({}){}",
                if h.ok { "healthy" } else { "unhealthy" },
                h.time,
                h.version,
                if h.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.message)
                }
            ),
            None => format!("not checked yet (`secflow run {id} --health`)"),
        }
    );
    Ok(Exit::Success)
}
