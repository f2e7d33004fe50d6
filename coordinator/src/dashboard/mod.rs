//! The dashboard port (`--http-listen`): the wall-screen board, a page per
//! deployment and a history per target, the board's event stream, and
//! `/metrics` for Prometheus. HTTPS only, and read-only: every route is a GET
//! and none changes anything.
//!
//! Access is a dashboard token (`access`): on the board's first load the URL
//! carries it (`?token=`), which is traded for an HttpOnly cookie and dropped
//! from the address bar by a redirect; Prometheus sends it as a bearer token.
//! The token is never logged. A connection counts as unauthenticated (the
//! same `Admission` limits as the gRPC port) until a request on it shows a
//! valid token, and is closed if none does within the limits' lifetime.
//!
//! - `access`: the tokens; `board`: what the screen shows, kept current from
//!   the events; `stream`: the board's event stream; `scrape`: `/metrics`;
//!   `pages`: the HTML; `assets/`: the board's page, script and style,
//!   compiled into the binary (no build step).

pub mod access;
pub mod board;
pub mod pages;
mod scrape;
mod stream;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::admission::{Admission, Limits, Permit};
use crate::agents::AgentHub;
use crate::clock::Clock;
use crate::fleets::Fleets;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::operations::{OperationError, Operations};
use access::DashboardAccess;
use board::Board;

const COOKIE: &str = "slipway_dashboard";
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
type Body = BoxBody<Bytes, Infallible>;

/// What the dashboard port serves from.
pub struct Dashboard {
    pub board: Arc<Board>,
    pub access: Arc<DashboardAccess>,
    pub operations: Arc<Operations>,
    pub agents: Arc<AgentHub>,
    pub notifier: Arc<Notifier>,
    pub fleets: Arc<Fleets>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Event streams open now.
    pub streams: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dashboard")
    }
}

/// TLS for browsers: 1.2 and 1.3 (a TV's browser may lack 1.3), no client
/// certificate, HTTP/1.1.
pub fn tls_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the dashboard certificate is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the dashboard certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the dashboard key is not a PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the dashboard certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One connection's standing: unauthenticated (holding an admission permit,
/// with a deadline) until a request shows a valid token.
struct Standing {
    permit: Mutex<Option<Permit>>,
    authenticated: AtomicBool,
}

impl Standing {
    fn authenticated(&self) {
        self.authenticated.store(true, Ordering::SeqCst);
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<crate::live_tls::LiveTls>,
    dashboard: Arc<Dashboard>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let admission = Admission::new(Limits::default());
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "dashboard accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        // Small frames (an event, a page) go out at once, not after a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let Some(handshaking) = admission.handshake(peer.ip()) else {
            debug!(%peer, "dashboard connection refused: too many handshakes in progress");
            continue;
        };
        let acceptor = tls.acceptor();
        let admission = admission.clone();
        let dashboard = dashboard.clone();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, error = %e, "dashboard tls handshake refused"),
                Err(_) => return debug!(%peer, "dashboard tls handshake timed out"),
            };
            drop(handshaking);
            let Some(permit) = admission.unauthenticated(peer.ip()) else {
                return debug!(%peer, "dashboard connection closed: too many without a token");
            };
            connection(tls, peer, permit, admission.lifetime(), dashboard).await;
        });
    }
    connections.abort_all();
}

async fn connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    permit: Permit,
    lifetime: Duration,
    dashboard: Arc<Dashboard>,
) {
    let standing = Arc::new(Standing {
        permit: Mutex::new(Some(permit)),
        authenticated: AtomicBool::new(false),
    });
    let for_requests = standing.clone();
    let service = hyper::service::service_fn(move |request| {
        let dashboard = dashboard.clone();
        let standing = for_requests.clone();
        async move { Ok::<_, Infallible>(route(&dashboard, &standing, request).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let served = http.serve_connection(TokioIo::new(tls), service);
    let deadline = async {
        tokio::time::sleep(lifetime).await;
        if standing.authenticated.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = served => if let Err(e) = result {
            debug!(%peer, error = %e, "dashboard connection ended");
        },
        () = deadline => debug!(%peer, "dashboard connection closed: no token shown in time"),
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    secure(headers);
    response
}

/// Headers every answer carries: nothing cached, framed or sniffed, no
/// referrer (a first load's URL carries the token), scripts only our own,
/// HTTPS from now on.
const SECURE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; form-action 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
];

fn secure(headers: &mut HeaderMap) {
    for (name, value) in SECURE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

const HTML: &str = "text/html; charset=utf-8";

fn unauthorized(html: bool) -> Response<Body> {
    let mut response = match html {
        true => full(StatusCode::UNAUTHORIZED, HTML, pages::unauthorized()),
        false => full(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "a dashboard token is needed: `slipway dashboard url` (admin) mints one; send it as `Authorization: Bearer TOKEN`\n",
        ),
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"slipway\""),
    );
    response
}

/// The tokens a request shows: a bearer token (the scheme's name in any
/// case, as RFC 7235 has it), then every dashboard cookie it carries (a stale
/// one from another port must not hide a good one).
fn presented(headers: &HeaderMap) -> Vec<&str> {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='));
    bearer.chain(cookies).collect()
}

/// The `token` parameter of a query string.
fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

async fn route(
    dashboard: &Dashboard,
    standing: &Standing,
    request: Request<Incoming>,
) -> Response<Body> {
    if request.method() != Method::GET {
        let mut response = full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "the dashboard is read-only: only GET\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let path = request.uri().path().to_string();
    // Assets hold no data: the page that says how to get a token uses them too.
    match path.as_str() {
        "/board.js" => {
            return full(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                pages::BOARD_JS,
            );
        }
        "/board.css" => return full(StatusCode::OK, "text/css; charset=utf-8", pages::BOARD_CSS),
        _ => {}
    }
    // The first load trades the URL's token for a cookie, and the redirect
    // takes it out of the address bar (a browser's history may still hold
    // the first URL: revoke a token that was opened on a shared machine).
    if path == "/"
        && let Some(token) = query_token(request.uri().query())
    {
        return match dashboard.access.check(token) {
            Some(_) => {
                standing.authenticated();
                let mut response = full(StatusCode::SEE_OTHER, HTML, "");
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, HeaderValue::from_static("/"));
                if let Ok(cookie) = HeaderValue::from_str(&format!(
                    "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=31536000"
                )) {
                    headers.insert(header::SET_COOKIE, cookie);
                }
                response
            }
            None => unauthorized(true),
        };
    }
    let html = !matches!(path.as_str(), "/metrics" | "/stream" | "/board.json");
    let Some(token) = presented(request.headers())
        .into_iter()
        .find_map(|t| dashboard.access.check(t))
    else {
        return unauthorized(html);
    };
    standing.authenticated();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => full(StatusCode::OK, HTML, pages::board()),
        ["board.json"] => match serde_json::to_vec(&*dashboard.board.snapshot()) {
            Ok(json) => full(StatusCode::OK, "application/json", json),
            Err(e) => failed(&e.to_string()),
        },
        ["stream"] => {
            let last = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            stream::stream(dashboard, token.id, last)
        }
        ["metrics"] => scrape::metrics(dashboard).await,
        ["deployments", id] => match dashboard.operations.deployment(&decode(id)).await {
            Ok(view) => full(
                StatusCode::OK,
                HTML,
                pages::deployment(&view, dashboard.clock.now()),
            ),
            Err(e) => operation_failed(&e),
        },
        ["targets", project, environment] => {
            let (project, environment) = (decode(project), decode(environment));
            match dashboard
                .operations
                .deployments(Some(&project), Some(&environment), 50, None)
                .await
            {
                Ok((views, _)) => full(
                    StatusCode::OK,
                    HTML,
                    pages::history(&project, &environment, &views),
                ),
                Err(e) => operation_failed(&e),
            }
        }
        _ => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such page\n",
        ),
    }
}

/// A percent-encoded path segment, decoded (invalid sequences kept as they are).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn failed(why: &str) -> Response<Body> {
    warn!(error = why, "dashboard request failed");
    full(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        "the coordinator could not answer; its log says why\n",
    )
}

fn operation_failed(e: &OperationError) -> Response<Body> {
    match e {
        OperationError::NotFound(what) | OperationError::Invalid(what) => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("{what}\n"),
        ),
        other => failed(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_taken_from_a_bearer_header_or_the_cookie_only() {
        let mut headers = HeaderMap::new();
        assert!(presented(&headers).is_empty());
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; slipway_dashboard=sdt_a_b; x=2"),
        );
        assert_eq!(presented(&headers), ["sdt_a_b"]);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer sdt_c_d"),
        );
        assert_eq!(presented(&headers), ["sdt_c_d", "sdt_a_b"]);
        assert_eq!(query_token(Some("a=1&token=sdt_e_f")), Some("sdt_e_f"));
        assert_eq!(query_token(Some("tokens=1")), None);
    }

    #[test]
    fn a_path_segment_is_percent_decoded() {
        assert_eq!(decode("prod%201%2F..%zz"), "prod 1/..%zz");
    }
}
