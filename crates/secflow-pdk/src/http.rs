//! Outbound HTTP through `wasi:http`, for plugins with a network capability.
//!
//! Every request (including each redirect hop, which this client follows itself) is checked by
//! the host against the plugin's grants; a refused request comes back as
//! [`HttpError::Denied`] with the host's reason.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

/// Most redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The URL that produced this response, after redirects.
    pub url: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The host refused the request (not granted, internal address, budget spent).
    Denied(String),
    /// The URL could not be parsed.
    BadUrl(String),
    /// Too many redirects.
    TooManyRedirects,
    /// Any other transport error.
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(why) => write!(f, "request denied by the host: {why}"),
            HttpError::BadUrl(u) => write!(f, "bad URL: {u}"),
            HttpError::TooManyRedirects => write!(f, "more than {MAX_REDIRECTS} redirects"),
            HttpError::Transport(e) => write!(f, "HTTP error: {e}"),
        }
    }
}

/// GET `url`, following redirects.
pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None)
}

/// Sends a request and follows up to [`MAX_REDIRECTS`] redirects (each one re-checked by the
/// host). `303` and redirected `POST`s become `GET` without a body.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let mut method = method.to_string();
    let mut url = url.to_string();
    let mut body = body.map(<[u8]>::to_vec);
    for _ in 0..=MAX_REDIRECTS {
        let response = send_once(&method, &url, headers, body.as_deref())?;
        let redirect = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        match (redirect, response.header("location")) {
            (true, Some(location)) => {
                url = resolve(&url, &location)?;
                if response.status == 303 || (response.status <= 302 && method == "POST") {
                    method = "GET".to_string();
                    body = None;
                }
            }
            _ => return Ok(response),
        }
    }
    Err(HttpError::TooManyRedirects)
}

struct Parts<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
}

fn split(url: &str) -> Result<Parts<'_>, HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::BadUrl(url.to_string()))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(HttpError::BadUrl(url.to_string()));
    }
    Ok(Parts {
        scheme,
        authority,
        path,
    })
}

fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    if location.contains("://") {
        return Ok(location.to_string());
    }
    let parts = split(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{}://{rest}", parts.scheme));
    }
    if location.starts_with('/') {
        return Ok(format!("{}://{}{location}", parts.scheme, parts.authority));
    }
    let dir = parts.path.rsplit_once('/').map_or("", |(d, _)| d);
    Ok(format!(
        "{}://{}{dir}/{location}",
        parts.scheme, parts.authority
    ))
}

fn send_once(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let parts = split(url)?;
    let scheme = match parts.scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => Scheme::Other(other.to_string()),
    };
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&list).map_err(|e| HttpError::Transport(format!("{e:?}")))?;
    let req = OutgoingRequest::new(fields);
    let bad = |what: &str| HttpError::BadUrl(format!("{url}: invalid {what}"));
    req.set_method(&method).map_err(|()| bad("method"))?;
    req.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
    req.set_authority(Some(parts.authority))
        .map_err(|()| bad("authority"))?;
    req.set_path_with_query(Some(parts.path))
        .map_err(|()| bad("path"))?;
    if let Some(bytes) = body {
        let out = req
            .body()
            .map_err(|()| HttpError::Transport("body taken".into()))?;
        {
            let stream = out
                .write()
                .map_err(|()| HttpError::Transport("body stream".into()))?;
            for chunk in bytes.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::Transport(format!("{e:?}")))?;
            }
        }
        OutgoingBody::finish(out, None).map_err(map_error)?;
    }
    let future = outgoing_handler::handle(req, None).map_err(map_error)?;
    let response = loop {
        match future.get() {
            Some(result) => {
                break result
                    .map_err(|()| HttpError::Transport("response already taken".into()))?
                    .map_err(map_error)?;
            }
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Transport("body already consumed".into()))?;
    let mut data = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| HttpError::Transport("body stream".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(HttpError::Transport(e.to_debug_string()));
                }
            }
        }
    }
    let _trailers = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body: data,
        url: url.to_string(),
    })
}

fn map_error(e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::HttpRequestDenied => HttpError::Denied("request not allowed".to_string()),
        ErrorCode::DestinationIpProhibited => {
            HttpError::Denied("destination address is internal".to_string())
        }
        ErrorCode::InternalError(Some(msg)) if msg.starts_with("denied:") => {
            HttpError::Denied(msg.trim_start_matches("denied:").trim().to_string())
        }
        other => HttpError::Transport(format!("{other:?}")),
    }
}
