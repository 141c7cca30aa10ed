//! The admin listener: `/healthz`, `/readyz` and `/metrics`; other paths 404.
//!
//! It is a separate Pingora service on its own address (loopback by default),
//! so scraping and probes never compete with traffic listeners' rules.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Serves the admin endpoints.
pub struct AdminApp {
    /// Set once the rules are loaded.
    pub ready: Arc<AtomicBool>,
    /// Refreshes gauges that mirror live state (backend and target health)
    /// right before each scrape.
    pub refresh: Box<dyn Fn() + Send + Sync>,
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// The Prometheus text exposition of every registered metric.
pub fn metrics_text() -> Vec<u8> {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&prometheus::gather(), &mut buf).is_err() {
        buf.clear();
    }
    buf
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                b"only GET and HEAD\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/healthz" => text(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"ok\n".to_vec(),
            ),
            "/readyz" if self.ready.load(Ordering::Acquire) => text(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"ready\n".to_vec(),
            ),
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                b"rules not loaded\n".to_vec(),
            ),
            "/metrics" => {
                (self.refresh)();
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics_text(),
                )
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                b"not found: /metrics /healthz /readyz\n".to_vec(),
            ),
        }
    }
}
