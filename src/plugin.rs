//! The piece other Pingora proxies embed: answer redirects from any
//! `ProxyHttp`.
//!
//! [`RedirectPlugin::respond`] reads the request into a
//! [`RequestView`](crate::RequestView), asks the rules ([`route::answer`])
//! and, when a rule applies (or the request is malformed), writes the whole
//! reply itself (see [`crate::http::response`]) and counts it. It returns
//! `Ok(true)` when it responded:
//!
//! ```text
//! async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> pingora::Result<bool> {
//!     if self.redirects.respond(session).await? {
//!         return Ok(true);
//!     }
//!     Ok(false) // not a redirect: proxy it
//! }
//! ```
//!
//! The rules sit in a [`Snapshot`] behind an `ArcSwap` ([`Shared`]), so a
//! reload swaps them while requests in flight finish on the set they
//! started with. `examples/embed.rs` is a whole proxy built this way.

use crate::http::{request, response};
use crate::load::Loaded;
use crate::route::{self, Action, Routed};
use crate::snapshot::{Shared, Snapshot};
use arc_swap::ArcSwap;
use pingora::proxy::Session;
use std::sync::Arc;

/// What [`RedirectPlugin::handle`] did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A redirect was sent with this status.
    Redirect { status: u16 },
    /// A pool rule found no healthy target: 503 was sent.
    PoolUnavailable,
    /// 400 or 414 was sent.
    BadRequest { status: u16 },
    /// No rule applies: the caller goes on (proxy or 404).
    Pass,
}

/// The redirect plugin: one call from `request_filter`.
///
/// ```
/// use pingora_redirect::{load, unix_now, RedirectPlugin};
/// # let dir = std::env::temp_dir().join(format!("plugin-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let conf = dir.join("redirects.toml");
/// # std::fs::write(&conf, "[[redirect]]\nid = \"docs\"\nprefix = \"/docs\"\nto = \"https://new.example\"\n").unwrap();
/// let loaded = load(&conf, unix_now()).expect("the file is readable");
/// let plugin = RedirectPlugin::from_loaded(loaded).expect("the configuration loads");
/// assert_eq!(plugin.shared().load().rules.len(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct RedirectPlugin {
    shared: Shared,
}

impl RedirectPlugin {
    /// A plugin over a shared, swappable snapshot.
    pub fn new(shared: Shared) -> Self {
        RedirectPlugin { shared }
    }

    /// A plugin over the rules of a configuration that loaded; `Err` names
    /// its errors.
    pub fn from_loaded(loaded: Loaded) -> Result<Self, String> {
        let snap = Snapshot::from_loaded(loaded)?;
        Ok(Self::new(Arc::new(ArcSwap::from_pointee(snap))))
    }

    /// The shared snapshot (to swap it on reload).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Answers the request when a rule applies (or it is malformed);
    /// `Ok(true)` means a response was written and the caller must stop.
    pub async fn respond(&self, session: &mut Session) -> pingora::Result<bool> {
        Ok(self.handle(session).await? != Handled::Pass)
    }

    /// Like [`respond`](Self::respond), saying what was done.
    pub async fn handle(&self, session: &mut Session) -> pingora::Result<Handled> {
        let snap = self.shared.load_full();
        let now = crate::unix_now();
        let routed = match request::parts(session, &snap.trusted_proxies) {
            Err(reason) => Routed::bad(400, reason),
            Ok(parts) => match route::answer(&snap, &request::view(session, &parts, now)) {
                Some(r) => r,
                None => return Ok(Handled::Pass),
            },
        };
        let written =
            response::write(session, &routed.action, response::hsts_for(session, &snap)).await;
        routed.record(&snap, now);
        written?;
        Ok(match routed.action {
            Action::Redirect(r) => Handled::Redirect { status: r.status },
            Action::Unavailable { .. } => Handled::PoolUnavailable,
            Action::Bad { status, .. } => Handled::BadRequest { status },
            Action::Proxy(_) | Action::NoBackend(_) | Action::NotFound => Handled::Pass,
        })
    }
}
