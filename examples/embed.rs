//! Embedding the redirect plugin in your own Pingora `ProxyHttp`.
//!
//! ```text
//! cargo run --release --example embed -- conf/example.toml 127.0.0.1:8090 127.0.0.1:3000
//! ```
//!
//! Requests a rule answers get their redirect from the plugin; everything else
//! is proxied to the one upstream given on the command line.

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::Server;
use pingora_redirect::RedirectPlugin;

struct MyProxy {
    redirects: RedirectPlugin,
    upstream: String,
}

#[async_trait]
impl ProxyHttp for MyProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        // One call: true means the plugin wrote the whole response.
        if self.redirects.respond(session).await? {
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conf = args.next().unwrap_or_else(|| "conf/example.toml".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());

    let loaded =
        match pingora_redirect::load(std::path::Path::new(&conf), pingora_redirect::unix_now()) {
            Ok(l) => l,
            Err(p) => {
                eprintln!("{p}");
                std::process::exit(2);
            }
        };
    for p in &loaded.problems {
        eprintln!("{p}");
    }
    let redirects = match RedirectPlugin::from_loaded(loaded) {
        Ok(r) => r,
        Err(_) => std::process::exit(1),
    };

    let mut server = Server::new(None).expect("server");
    server.bootstrap();
    let mut service = http_proxy_service(
        &server.configuration,
        MyProxy {
            redirects,
            upstream,
        },
    );
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
