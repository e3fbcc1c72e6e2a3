//! `secflow serve`: the REST API on this state directory, until SIGINT or SIGTERM.

use crate::cli::ServeArgs;
use crate::exit::{Exit, fail};
use secflow_host::Host;

pub fn run(host: &Host, args: ServeArgs) -> anyhow::Result<Exit> {
    let defaults = secflow_server::ServerConfig::default();
    let config = secflow_server::ServerConfig {
        bind: args.bind,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        max_upload_bytes: usize::try_from(args.max_upload).unwrap_or(usize::MAX),
        request_timeout: args.request_timeout,
        rate_limit: args.rate_limit,
        max_concurrent_runs: args
            .max_runs
            .map_or(defaults.max_concurrent_runs, usize::from),
        scan_workers: usize::from(args.scan_workers),
        queue_capacity: usize::from(args.queue),
        scan_roots: args.scan_roots.clone(),
        marketplace: args.marketplace,
        ..defaults
    };
    for root in &config.scan_roots {
        if !root.is_dir() {
            return Err(fail(
                Exit::Usage,
                format!("--scan-root {} is not a directory", root.display()),
            ));
        }
    }
    let server_host = host.acting_as("api:server");
    let (stop_polling, polling_stopped) = tokio::sync::watch::channel(());
    host.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|e| {
                fail(
                    Exit::Usage,
                    format!("cannot listen on {}: {e}", config.bind),
                )
            })?;
        let address = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let state = secflow_server::AppState::open(server_host.clone(), config).await?;
        // Revocations reach a long-running server as they reach a CLI run: each added
        // marketplace's list is applied every poll interval.
        let poll = tokio::spawn(poll_revocations(server_host, polling_stopped));
        errln!(
            "secflow serve: listening on {scheme}://{address} (state in {}); Ctrl-C stops",
            host.paths().root.display()
        );
        tracing::info!(%address, "listening");
        secflow_server::serve(
            state,
            listener,
            shutdown_signal(),
            std::time::Duration::from_secs(30),
        )
        .await?;
        drop(stop_polling);
        let _ = poll.await;
        errln!("secflow serve: stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Exit::Success)
}

/// How often the server looks for a marketplace whose revocation list is due (each has its
/// own poll interval; nothing is fetched before it is due).
const POLL_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies due revocation lists until `stop`'s sender is dropped; revoked plugins are quarantined, and
/// clearance refuses them from the import on. A marketplace that cannot be reached is
/// logged and tried again at its next interval.
async fn poll_revocations(host: Host, mut stop: tokio::sync::watch::Receiver<()>) {
    let client = secflow_market_client::Client::new(host);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(POLL_TICK) => {}
        }
        // Without marketplaces this reads a missing file and fetches nothing.
        for result in client.sync_due(None).await {
            match result {
                Ok(s) if !s.quarantined.is_empty() => {
                    tracing::warn!(marketplace = %s.marketplace, quarantined = ?s.quarantined, "revoked plugins quarantined");
                    errln!(
                        "secflow serve: marketplace {}: revoked and quarantined: {}",
                        s.marketplace,
                        s.quarantined.join(", ")
                    );
                }
                Ok(s) => tracing::debug!(marketplace = %s.marketplace, "revocation list applied"),
                Err(e) => tracing::warn!(error = %e, "revocation poll failed"),
            }
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
