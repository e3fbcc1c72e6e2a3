impl ProxyFilter for MyPlugin {
    fn on_request(request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        if request.uri.starts_with("/admin") {
            return Ok(RequestVerdict::Block(Block { status: 403, reason: "admin area is closed".into() }));
        }
        Ok(RequestVerdict::Allow)
    }
}

secflow_pdk::export_proxy_filter!(MyPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> HttpRequest {
        HttpRequest { method: "GET".into(), uri: uri.into(), headers: vec![], body: vec![] }
    }

    #[test]
    fn blocks_admin() {
        assert!(matches!(MyPlugin::on_request(req("/admin/users")).unwrap(), RequestVerdict::Block(_)));
        assert!(matches!(MyPlugin::on_request(req("/")).unwrap(), RequestVerdict::Allow));
    }
}
