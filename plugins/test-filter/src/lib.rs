//! Test proxy filter. The request header `x-test-filter` picks the behaviour:
//! `block` (403), `modify` (adds `x-filtered: test-filter` to the request), `loop` (never
//! returns), `alloc` (allocates without bound), `trap` (panics), `remember` (keeps the
//! request's `x-remember` value in a static and reports the previous one in
//! `x-remembered`: a fresh instance per request must always report none), `fetch` (GETs
//! the URL in `x-fetch`, a network it holds no grant for). Responses whose
//! body holds `CANARY-` followed by letters have it replaced by `[redacted]`.

use secflow_pdk::prelude::*;

struct TestFilter;

impl Plugin for TestFilter {}

static REMEMBERED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `CANARY-XYZ...` replaced by `[redacted]`; `None` when there is none.
fn redact(body: &[u8]) -> Option<Vec<u8>> {
    let needle = b"CANARY-";
    let start = body.windows(needle.len()).position(|w| w == needle)?;
    let mut end = start + needle.len();
    while end < body.len() && body[end].is_ascii_alphanumeric() {
        end += 1;
    }
    let mut out = body[..start].to_vec();
    out.extend_from_slice(b"[redacted]");
    out.extend_from_slice(&body[end..]);
    Some(redact(&out).unwrap_or(out))
}

impl ProxyFilter for TestFilter {
    fn on_request(mut request: HttpRequest) -> Result<RequestVerdict, PluginError> {
        match header(&request.headers, "x-test-filter") {
            Some("block") => Ok(RequestVerdict::Block(Block {
                status: 403,
                reason: "the test filter blocks this request".into(),
            })),
            Some("modify") => {
                request
                    .headers
                    .push(("x-filtered".into(), "test-filter".into()));
                Ok(RequestVerdict::Modify(request))
            }
            Some("loop") => loop {
                std::hint::black_box(());
            },
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap") => panic!("the test filter traps"),
            Some("fail") => Err(failed("the test filter fails")),
            // Tries to reach the URL in `x-fetch`: the network it has no grant for.
            Some("fetch") => {
                let url = header(&request.headers, "x-fetch").unwrap_or("");
                match secflow_pdk::http::get(url) {
                    Ok(response) => {
                        request
                            .headers
                            .push(("x-fetched".into(), response.status.to_string()));
                        Ok(RequestVerdict::Modify(request))
                    }
                    Err(e) => Err(failed(format!("the fetch was refused: {e}"))),
                }
            }
            Some("remember") => {
                let value = header(&request.headers, "x-remember")
                    .unwrap_or("")
                    .to_string();
                let previous = REMEMBERED
                    .lock()
                    .map_or(None, |mut kept| kept.replace(value));
                request.headers.push((
                    "x-remembered".into(),
                    previous.unwrap_or_else(|| "none".into()),
                ));
                Ok(RequestVerdict::Modify(request))
            }
            _ => Ok(RequestVerdict::Allow),
        }
    }

    fn on_response(
        _request: HttpRequest,
        mut response: HttpResponse,
    ) -> Result<ResponseVerdict, PluginError> {
        match redact(&response.body) {
            Some(body) => {
                response.body = body;
                Ok(ResponseVerdict::Modify(response))
            }
            None => Ok(ResponseVerdict::Allow),
        }
    }
}

secflow_pdk::export_proxy_filter!(TestFilter);
