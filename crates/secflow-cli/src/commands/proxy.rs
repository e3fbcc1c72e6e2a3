//! `secflow proxy --config FILE`: the filtering reverse proxy on this state directory,
//! until SIGINT or SIGTERM.

use crate::exit::{Exit, fail};
use secflow_host::Host;
use std::path::Path;

pub fn run(host: &Host, config: &Path) -> anyhow::Result<Exit> {
    let text = std::fs::read_to_string(config).map_err(|e| {
        fail(
            Exit::Usage,
            format!("cannot read {}: {e}", config.display()),
        )
    })?;
    let config = secflow_proxy::config::ProxyConfig::parse(&text)
        .map_err(|e| fail(Exit::Usage, e.to_string()))?;
    let proxy_host = host.acting_as("proxy");
    host.block_on(async move {
        let listen = config.listen;
        let proxy = secflow_proxy::Proxy::new(proxy_host, config)
            .await
            .map_err(|e| fail(Exit::Usage, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| fail(Exit::Usage, format!("cannot listen on {listen}: {e}")))?;
        errln!(
            "secflow proxy: listening on http://{}; Ctrl-C stops",
            listener.local_addr()?
        );
        proxy
            .serve(
                listener,
                super::serve::shutdown_signal(),
                std::time::Duration::from_secs(30),
            )
            .await?;
        errln!("secflow proxy: stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Exit::Success)
}
