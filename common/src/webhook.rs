//! POSTing a JSON document to a webhook, for the CLI (the audit anchor) and
//! the coordinator (notifications). HTTPS with the system's roots; plain HTTP
//! only to this machine, so nothing readable or alterable crosses a network.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Whether `url` may receive documents: https anywhere, http to loopback only.
/// The error says which and why, naming the URL.
pub fn check(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        Some("http") => Err(format!(
            "{url:?}: plain http only to this machine; use https"
        )),
        _ => Err(format!("{url:?} must be an https:// URL")),
    }
}

/// POSTs `body` (JSON) with `headers` to `uri`, waiting at most `timeout`.
/// Ok: it answered 2xx. Err: what went wrong, to show as is.
pub async fn post(
    uri: &hyper::Uri,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot be reached: no system roots ({e})"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut request = hyper::Request::post(uri.clone()).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot be asked: {e}"))?;
    let answer = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("did not answer within {}s", timeout.as_secs()))?
        .map_err(|e| format!("cannot be reached: {e}"))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", answer.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_plain_http_only_to_this_machine() {
        assert!(check("https://anchors.example.com/slipway").is_ok());
        assert!(check("http://127.0.0.1:8080/a").is_ok());
        assert!(check("http://localhost/a").is_ok());
        assert!(check("http://[::1]:9/a").is_ok());
        let refused = check("http://anchors.example.com/a").unwrap_err();
        assert!(refused.contains("use https"), "{refused}");
        assert!(check("ftp://x/").is_err());
        assert!(check("not a url").is_err());
    }
}
