//! Plain HTTP/1.1 clients as outside callers use them: an HTTPS client that
//! trusts one CA (the dashboard's, as a Prometheus with that CA would), a
//! server-sent events reader, and a WebDriver client driving a real headless
//! Chromium through Debian's `chromedriver`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};

use crate::{TempDir, eventually};

/// An answer: status, headers (names lower-case) and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `https://host:port/path?query` split into host, port and the rest.
fn split_url(url: &str) -> (String, u16, String) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("not an http(s) URL: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = authority.rsplit_once(':').expect("URL with a port");
    (host.to_string(), port.parse().expect("port"), path)
}

/// A TLS client trusting only the CA in `ca_pem`.
pub fn tls_config(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An open TLS connection to `url`'s host, its handshake finished (so a
/// refused connection shows here).
pub fn connect_tls(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let (host, port, _) = split_url(url);
    let tcp = TcpStream::connect((host.as_str(), port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let name = ServerName::try_from(host).expect("server name").to_owned();
    let connection =
        rustls::ClientConnection::new(tls.clone(), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// A request over `stream`, read to its end (the request asks to close).
fn exchange(
    stream: &mut impl ReadWrite,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    read_reply(stream)
}

/// Reads one answer: to its Content-Length, its last chunk, or the end of
/// the connection (some servers keep it open despite `Connection: close`).
fn read_reply(stream: &mut impl Read) -> std::io::Result<Reply> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut reply = parse(format!("{head}\r\n").as_bytes())?;
    let length = reply
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    let mut body = Vec::new();
    if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        match reader.read_to_end(&mut body) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
    }
    reply.body = String::from_utf8_lossy(&body).into_owned();
    Ok(reply)
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

/// GET `url` over HTTPS trusting `tls`'s CA.
pub fn get(url: &str, tls: &Arc<rustls::ClientConfig>, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, tls, headers)
}

pub fn request(
    method: &str,
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    headers: &[(&str, &str)],
) -> Reply {
    try_request(method, url, tls, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// `request`, with a refused or dropped connection as an error.
pub fn try_request(
    method: &str,
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    headers: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let (host, _, path) = split_url(url);
    let mut stream = connect_tls(url, tls)?;
    exchange(&mut stream, method, &host, &path, headers, "")
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct Sse {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{}: {e}", self.data))
    }
}

/// A reader of an event stream.
pub struct SseStream {
    reader: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
    pub status: u16,
}

impl SseStream {
    pub fn open(
        url: &str,
        tls: &Arc<rustls::ClientConfig>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<SseStream> {
        let (host, _, path) = split_url(url);
        let mut stream = connect_tls(url, tls)?;
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        Ok(SseStream { reader, status })
    }
}

/// Each event as it comes (comments and `retry:` skipped); None at the end.
impl Iterator for SseStream {
    type Item = Sse;

    fn next(&mut self) -> Option<Sse> {
        let mut event = Sse::default();
        let mut any = false;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            // The body is chunked: chunk-size lines are bare hex; skip them.
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                event.event = v.to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("id: ") {
                event.id = v.parse().ok();
            } else if let Some(v) = line.strip_prefix("data: ") {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(v);
            }
        }
    }
}

/// `chromedriver` and one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    // Chromium's profile and its scoped temporary directories, removed with
    // the browser rather than left in /tmp after every run.
    _profile: TempDir,
}

fn plain(method: &str, url: &str, body: Option<Value>) -> Value {
    let (host, port, path) = split_url(url);
    let mut tcp =
        TcpStream::connect((host.as_str(), port)).unwrap_or_else(|e| panic!("{url}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let reply = exchange(
        &mut tcp,
        method,
        &format!("{host}:{port}"),
        &path,
        &[],
        &body,
    )
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let value: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("WebDriver answered {} ({e}): {}", reply.status, reply.body));
    if reply.status != 200 {
        panic!(
            "WebDriver {method} {path} answered {}: {value}",
            reply.status
        );
    }
    value["value"].clone()
}

impl Browser {
    /// Starts chromedriver and a 1920×1080 headless Chromium that accepts the
    /// dashboard's certificate (from Slipway's own CA, which it does not know).
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = TempDir::new("chromium");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (tests/run installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        eventually("chromedriver to answer", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        let created = plain(
            "POST",
            &format!("{base}/session"),
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1920,1080",
                             format!("--user-data-dir={}", profile.path().join("profile").display())]
                }
            }}})),
        );
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn at(&self, what: &str) -> String {
        format!("{}/session/{}/{what}", self.base, self.session)
    }

    /// The page's viewport set to exactly `width`×`height` CSS pixels (the
    /// window's size would include the browser's own frame).
    pub fn viewport(&self, width: u32, height: u32) {
        plain(
            "POST",
            &self.at("goog/cdp/execute"),
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
                }}),
            ),
        );
    }

    pub fn open(&self, url: &str) {
        plain("POST", &self.at("url"), Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn run(&self, script: &str) -> Value {
        plain(
            "POST",
            &self.at("execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let encoded = plain("GET", &self.at("screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 screenshot"))
            .expect("screenshot is base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            plain(
                "DELETE",
                &format!("{}/session/{}", self.base, self.session),
                None,
            )
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
