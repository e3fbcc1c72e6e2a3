//! `secflow proxy --config FILE`: the filtering reverse proxy on this state directory,
//! until SIGINT or SIGTERM; SIGHUP reloads the file without dropping a connection.

use crate::exit::{Exit, fail};
use secflow_host::Host;
use secflow_proxy::config::ProxyConfig;
use std::path::{Path, PathBuf};

pub fn run(host: &Host, config_path: &Path) -> anyhow::Result<Exit> {
    let config = read(config_path).map_err(|e| fail(Exit::Usage, e))?;
    let proxy_host = host.acting_as("proxy");
    let config_path = config_path.to_path_buf();
    host.block_on(async move {
        let listen = config.listen;
        let admin = config.admin;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let proxy = secflow_proxy::Proxy::new(proxy_host, config)
            .await
            .map_err(|e| fail(Exit::Usage, format!("{e:#}")))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| fail(Exit::Usage, format!("cannot listen on {listen}: {e}")))?;
        let admin =
            match admin {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    fail(Exit::Usage, format!("cannot listen on {addr} (admin): {e}"))
                })?),
                None => None,
            };
        errln!(
            "secflow proxy: listening on {scheme}://{}; SIGHUP reloads {}; Ctrl-C stops",
            listener.local_addr()?,
            config_path.display()
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let admin = admin.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                errln!(
                    "secflow proxy: admin endpoints on http://{addr}/metrics and /admin/filters"
                );
            }
            tokio::spawn(
                proxy
                    .clone()
                    .serve_admin(listener, until_stopped(stopped.clone())),
            )
        });
        let reloads = tokio::spawn(reload_on_hangup(
            proxy.clone(),
            config_path,
            stopped.clone(),
        ));
        tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            let _ = stop.send(true);
        });
        proxy
            .serve(
                listener,
                until_stopped(stopped),
                std::time::Duration::from_secs(30),
            )
            .await?;
        reloads.abort();
        if let Some(admin) = admin {
            admin.await??;
        }
        errln!("secflow proxy: stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Exit::Success)
}

fn read(path: &Path) -> Result<ProxyConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ProxyConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reloads the configuration file at each SIGHUP until the proxy stops. A file that does
/// not parse or does not pass the checks leaves the configuration in force; either way
/// the outcome is printed (and the host recorded it in the audit log).
async fn reload_on_hangup(
    proxy: secflow_proxy::Proxy,
    path: PathBuf,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            errln!("secflow proxy: cannot listen for SIGHUP; reloads need a restart");
            return;
        };
        while hangups.recv().await.is_some() {
            if *stopped.borrow() {
                return;
            }
            let outcome = match read(&path) {
                Ok(config) => proxy.reload(config).await.map_err(|e| format!("{e:#}")),
                Err(e) => {
                    if let Err(not_recorded) = proxy.refuse_reload(&e).await {
                        errln!(
                            "secflow proxy: the refused reload is not recorded: {not_recorded:#}"
                        );
                    }
                    Err(format!(
                        "reload refused, the previous configuration stays in force: {e}"
                    ))
                }
            };
            match outcome {
                Ok(generation) => errln!(
                    "secflow proxy: reloaded {} (configuration {generation})",
                    path.display()
                ),
                Err(e) => errln!("secflow proxy: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (proxy, path, stopped);
    }
}
