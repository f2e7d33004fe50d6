//! Sends a JSON document to a webhook: the audit anchor, kept outside the
//! coordinator. HTTPS with the system's roots; plain HTTP only to this machine
//! (an anchor altered in transit would vouch for a rewritten log).

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::failure::{Exit, Failure};

/// How long a webhook may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `url` may receive a document: https anywhere, http to loopback only.
pub fn check(url: &str) -> Result<hyper::Uri, Failure> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| Failure::usage(format!("--webhook {url:?} is not a URL: {e}")))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        Some("http") => Err(Failure::usage(format!(
            "--webhook {url:?}: plain http only to this machine; use https"
        ))),
        _ => Err(Failure::usage(format!(
            "--webhook {url:?} must be an https:// URL"
        ))),
    }
}

/// POSTs `json` to `uri`; fails unless it answers 2xx.
pub async fn post(uri: hyper::Uri, json: String) -> Result<(), Failure> {
    let fail = |why: String| Failure::new(format!("the webhook {uri} {why}"), Exit::Failed);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| fail(format!("cannot be reached: no system roots ({e})")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = hyper::Request::post(uri.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| fail(format!("cannot be asked: {e}")))?;
    let answer = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| fail(format!("did not answer within {}s", TIMEOUT.as_secs())))?
        .map_err(|e| fail(format!("cannot be reached: {e}")))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(fail(format!(
            "answered {}: the anchor was not kept",
            answer.status()
        )))
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
        assert_eq!(refused.exit, Exit::Usage);
        assert!(refused.message.contains("use https"), "{}", refused.message);
        assert!(check("ftp://x/").is_err());
        assert!(check("not a url").is_err());
    }
}
