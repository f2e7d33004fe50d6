//! The board's event stream (`/stream`, server-sent events): the whole board
//! first, then what a reconnecting page missed since its Last-Event-ID, then
//! each update as the board task sends it. A page too far behind gets the
//! whole board again; a revoked token ends the stream, saying so.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use super::{Body, Dashboard, secure};

/// How often an open event stream checks its token is still valid.
const RECHECK: Duration = Duration::from_secs(2);
/// A comment line this often keeps idle streams open through proxies and
/// lets a dead peer be noticed.
const KEEPALIVE_EVERY: u32 = 8;
/// A page that has not read its queued messages for this long is dropped.
const SEND_PATIENCE: Duration = Duration::from_secs(30);
/// Events a reconnecting page is sent at most, from its last sequence.
const MISSED: usize = 100;
/// Messages queued for one page before the stream waits for it.
const STREAM_QUEUE: usize = 16;

/// One server-sent event.
fn sse(event: &str, id: Option<u64>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\n"));
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

/// The board's event stream for one page: the whole board, what a
/// reconnecting page missed since `last`, then each update as it comes.
pub(super) fn stream(dashboard: &Dashboard, token: String, last: Option<u64>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_QUEUE);
    let board = dashboard.board.clone();
    let access = dashboard.access.clone();
    let open = OpenStream::count(&dashboard.streams);
    tokio::spawn(async move {
        let _open = open;
        let mut updates = board.subscribe();
        let snapshot = board.snapshot();
        let mut sent = vec![
            Bytes::from_static(b"retry: 1000\n\n"),
            sse("board", Some(snapshot.seq), &json(&*snapshot)),
        ];
        if let Some(last) = last.filter(|l| *l < snapshot.seq) {
            match board.events_after(last, MISSED).await {
                Ok(missed) => sent.push(sse("missed", None, &json(&missed))),
                Err(e) => warn!(error = %e, "dashboard: cannot read missed events"),
            }
        }
        for message in sent {
            if tx.send(message).await.is_err() {
                return;
            }
        }
        let mut recheck = tokio::time::interval(RECHECK);
        let mut quiet = 0u32;
        loop {
            let message = tokio::select! {
                // The token first: a revocation is never behind an update.
                biased;
                _ = recheck.tick() => {
                    if !access.is_valid(&token) {
                        let _ = tx.try_send(sse("revoked", None, "{}"));
                        return;
                    }
                    quiet += 1;
                    if quiet < KEEPALIVE_EVERY {
                        continue;
                    }
                    Bytes::from_static(b": keepalive\n\n")
                }
                update = updates.recv() => match update {
                    Ok(u) if u.layout_changed => {
                        let s = board.snapshot();
                        sse("board", Some(s.seq), &json(&*s))
                    }
                    Ok(u) => sse("update", Some(u.seq), &json(&*u)),
                    // Too far behind for updates: the whole board again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let s = board.snapshot();
                        sse("board", Some(s.seq), &json(&*s))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tx.closed() => return,
            };
            quiet = 0;
            // Checked again at the send: a page that stopped reading gets
            // nothing more once its token is revoked, and one that does not
            // read for SEND_PATIENCE is dropped.
            if !access.is_valid(&token) {
                let _ = tx.try_send(sse("revoked", None, "{}"));
                return;
            }
            let sent = tokio::time::timeout(SEND_PATIENCE, tx.send(message)).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    });
    let frames = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let body = StreamBody::new(frames).boxed();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    secure(headers);
    response
}

/// Counts an open event stream until its task ends.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn count(streams: &Arc<AtomicUsize>) -> OpenStream {
        streams.fetch_add(1, Ordering::SeqCst);
        OpenStream(streams.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_sent_event_keeps_each_line_of_its_data() {
        assert_eq!(
            &sse("update", Some(7), "{\"a\":1}\n{\"b\":2}")[..],
            b"id: 7\nevent: update\ndata: {\"a\":1}\ndata: {\"b\":2}\n\n"
        );
    }
}
