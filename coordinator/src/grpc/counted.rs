//! Counts every call into `slipway_rpc_requests_total{method, code}`.
//!
//! The code is read from the response's headers: a failed unary call is a
//! "trailers-only" response whose status is there; a call whose headers carry
//! none succeeded, or is a stream that started (a stream failing later still
//! counts as OK). Unknown methods count under one label, so a caller cannot
//! grow the metrics with made-up paths.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct CountLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// gRPC's status codes by number, as `tonic::Code` names them.
fn code_name(code: &str) -> &'static str {
    match code.parse::<i32>().map(tonic::Code::from_i32) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::Cancelled) => "Canceled",
        Ok(tonic::Code::Unknown) => "Unknown",
        Ok(tonic::Code::InvalidArgument) => "InvalidArgument",
        Ok(tonic::Code::DeadlineExceeded) => "DeadlineExceeded",
        Ok(tonic::Code::NotFound) => "NotFound",
        Ok(tonic::Code::AlreadyExists) => "AlreadyExists",
        Ok(tonic::Code::PermissionDenied) => "PermissionDenied",
        Ok(tonic::Code::ResourceExhausted) => "ResourceExhausted",
        Ok(tonic::Code::FailedPrecondition) => "FailedPrecondition",
        Ok(tonic::Code::Aborted) => "Aborted",
        Ok(tonic::Code::OutOfRange) => "OutOfRange",
        Ok(tonic::Code::Unimplemented) => "Unimplemented",
        Ok(tonic::Code::Internal) => "Internal",
        Ok(tonic::Code::Unavailable) => "Unavailable",
        Ok(tonic::Code::DataLoss) => "DataLoss",
        Ok(tonic::Code::Unauthenticated) => "Unauthenticated",
        Err(_) => "Unknown",
    }
}

impl<S, B, R> tower::Service<hyper::http::Request<B>> for Counted<S>
where
    S: tower::Service<hyper::http::Request<B>, Response = hyper::http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_string();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            if let Ok(response) = &response {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("OK", code_name);
                let known = path.starts_with("slipway.v1.") || path.starts_with("grpc.");
                let method = match (known, code) {
                    (true, c) if c != "Unimplemented" && path.len() <= 96 => path.as_str(),
                    _ => "unknown",
                };
                metrics.rpcs.inc(&[method, code]);
            }
            response
        })
    }
}
