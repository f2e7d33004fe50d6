//! Counts every call into `slipway_rpc_requests_total{method, code}`.
//!
//! The code is read from the response's headers: a failed unary call is a
//! "trailers-only" response whose status is there; a call whose headers carry
//! none succeeded, or is a stream that started (a stream failing later still
//! counts as OK). Only the methods the services define get a label of their
//! own (read from the protocol's descriptor sets); any other path counts as
//! `unknown`, so a caller without a certificate cannot grow the metrics with
//! made-up paths.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message;

use crate::metrics::Metrics;

/// `package.Service/Method` of every method served: Slipway's own, health's
/// and reflection's.
fn served_methods() -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    for set in [
        slipway_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in files.file {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!(
                        "{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    methods.insert("grpc.reflection.v1.ServerReflection/ServerReflectionInfo".to_string());
    methods
}

#[derive(Debug, Clone)]
pub struct CountLayer {
    metrics: Arc<Metrics>,
    methods: Arc<BTreeSet<String>>,
}

impl CountLayer {
    pub fn new(metrics: Arc<Metrics>) -> CountLayer {
        CountLayer {
            metrics,
            methods: Arc::new(served_methods()),
        }
    }
}

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.metrics.clone(),
            methods: self.methods.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
    methods: Arc<BTreeSet<String>>,
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
        let path = request.uri().path().trim_start_matches('/');
        let method = match self.methods.get(path) {
            Some(known) => known.clone(),
            None => "unknown".to_string(),
        };
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
                metrics.rpcs.inc(&[&method, code]);
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_is_known_and_nothing_else() {
        let methods = served_methods();
        for known in [
            "slipway.v1.OperatorService/Deploy",
            "slipway.v1.AgentService/Connect",
            "grpc.health.v1.Health/Check",
        ] {
            assert!(methods.contains(known), "{known}: {methods:?}");
        }
        assert!(!methods.contains("grpc.health.v1.Health/Made-up"));
        assert!(methods.len() > 20 && methods.len() < 100, "{methods:?}");
    }
}
