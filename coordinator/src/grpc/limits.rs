//! A gRPC connection under the admission limits (`crate::admission`): one
//! without a client certificate carries its permit and ends at its deadline.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::admission::Permit;

/// A connection as the server sees it: an unauthenticated one carries its
/// permit and ends at its deadline.
pub struct Limited<IO> {
    inner: IO,
    permit: Option<Permit>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Limited<IO> {
    /// An authenticated connection: not counted, no deadline.
    pub fn authenticated(inner: IO) -> Self {
        Limited {
            inner,
            permit: None,
            deadline: None,
        }
    }

    /// An unauthenticated connection, closed after `lifetime`.
    pub fn unauthenticated(inner: IO, permit: Permit, lifetime: Duration) -> Self {
        Limited {
            inner,
            permit: Some(permit),
            deadline: Some(Box::pin(tokio::time::sleep(lifetime))),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

fn expired_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "a connection without a client certificate outlived its deadline",
    )
}

use std::future::Future;

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.expired(cx) {
            self.permit = None;
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
