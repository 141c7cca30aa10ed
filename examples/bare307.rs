//! The ceiling for the load benchmark: a bare Pingora handler that answers
//! every request with one fixed 307 carrying the same headers and body shape
//! as a pingora-redirect answer, with no rule lookup at all.
//!
//! ```text
//! cargo run --release --example bare307 -- 127.0.0.1:8181 1
//! cargo run --release --example bare307 -- 127.0.0.1:8181 1 127.0.0.1:8443 cert.pem key.pem
//! ```
//!
//! With the last three arguments it also serves HTTPS on Pingora's own TLS
//! listener (OpenSSL, Mozilla intermediate settings, h2 and http/1.1).

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

const LOCATION: &str = "https://new.example.com/new/12345";

struct Bare {
    body: Bytes,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        let mut resp = ResponseHeader::build(307, Some(4))?;
        resp.insert_header("Location", LOCATION)?;
        resp.insert_header("Content-Type", "text/html; charset=utf-8")?;
        resp.insert_header("Cache-Control", "no-store")?;
        resp.set_content_length(self.body.len())?;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(self.body.clone()), true)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        pingora::Error::e_explain(pingora::ErrorType::HTTPStatus(502), "no upstream")
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8181".into());
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let body = Bytes::from(pingora_redirect::internals::html_body(307, LOCATION));
    let mut service = http_proxy_service(&server.configuration, Bare { body });
    service.add_tcp(&listen);
    if let (Some(tls), Some(cert), Some(key)) = (args.next(), args.next(), args.next()) {
        let mut settings = pingora::listeners::tls::TlsSettings::intermediate(&cert, &key)
            .expect("the certificate and key load");
        settings.enable_h2();
        // The server's order of the suites, as pingora-redirect has it.
        settings.set_options(pingora::tls::ssl::SslOptions::CIPHER_SERVER_PREFERENCE);
        service.add_tls_with_settings(&tls, None, settings);
    }
    server.add_service(service);
    server.run_forever();
}
