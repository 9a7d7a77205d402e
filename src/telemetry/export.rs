//! The exporter: OTLP/HTTP protobuf, posted through ureq from the batch processor's thread.
//!
//! Why not the exporter's own clients: `reqwest` or `hyper` (and `tonic` for gRPC) would
//! add a second HTTP stack and a second async runtime to a binary that already has ureq.
//! The SDK's `BatchSpanProcessor` runs its export on a thread of its own and drives the
//! exporter's future with `block_on`, so a blocking ureq call inside `send_bytes` blocks
//! only that thread — never a worker or an actix thread. A timeout bounds each export.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// How long one export may take, connect and answer included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A collector's answer is a small protobuf; more is not read.
const MAX_ANSWER: u64 = 1024 * 1024;

/// The tracer provider: a batch processor in front of the OTLP/HTTP exporter.
pub fn provider(url: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(UreqClient(agent()))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("otlp_endpoint: {e}"))?;
    let resource = Resource::builder().with_service_name("herald").build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_resource(resource)
        .build())
}

/// Its own agent, not the delivery engine's: the collector is the operator's (often on a
/// private address the endpoints' SSRF guard refuses), and its timeouts are its own.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(EXPORT_TIMEOUT))
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// `opentelemetry_http::HttpClient` over a ureq agent.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut answer = self
            .0
            .run(Request::from_parts(parts, body.to_vec()))
            .map_err(Box::new)?;
        let read = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(Box::new)?;
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        Ok(response.body(Bytes::from(read))?)
    }
}
