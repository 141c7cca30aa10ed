//! HTTPS (SPEC §10): the certificates, chosen per handshake by SNI, and the
//! handshake itself on Pingora's OpenSSL stack.
//!
//! [`build`] turns the `[[certificate]]` files the loader read into a
//! [`TlsState`]: every chain parsed, every key checked against its leaf,
//! the DNS names of each leaf indexed (exact names, and `*.example.com`
//! wildcards one label deep), the default chosen, and an OpenSSL acceptor
//! with Mozilla's intermediate settings, `min_version` and ALPN (`h2`, then
//! `http/1.1`). The state lives in the [`crate::snapshot::Snapshot`], so a
//! reload swaps certificates with everything else: a new handshake reads
//! the snapshot in force, an open connection keeps what it was handed.
//!
//! The handshake runs in the connection guard ([`crate::guard`]), not in
//! Pingora's listener: that way it holds one of the listener's
//! `max_connections` slots and must finish within `header_timeout`, so a
//! client that stalls its handshake is closed like one that stalls its
//! request head (Pingora's own listener would wait 60 s outside any bound).

use crate::config::{CertFiles, CertificateSpec, Config, TlsVersion};
use crate::problem::Problem;
use async_trait::async_trait;
use http::HeaderValue;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::Stream;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::ssl::{
    select_next_proto, AlpnError, NameType, SslAcceptor, SslMethod, SslOptions, SslVersion,
};
use pingora::tls::x509::X509;
use std::collections::HashMap;
use std::sync::Arc;

/// A certificate expiring within this many seconds is a warning.
pub const EXPIRY_WARNING: i64 = 14 * 86_400;

/// ALPN in wire format, in our order of preference.
const ALPN_H2_H1: &[u8] = b"\x02h2\x08http/1.1";

/// One `[[certificate]]`, loaded.
pub struct Certificate {
    /// `cert` as configured: the metrics label.
    pub label: String,
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
    /// The leaf's DNS names, lowercase.
    pub names: Vec<String>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// The certificates, indexed by name.
pub struct Certificates {
    certs: Vec<Certificate>,
    /// Exact names → the first certificate that holds them.
    exact: HashMap<String, usize>,
    /// `*.example.com` → "example.com" → the first certificate.
    wildcard: HashMap<String, usize>,
    default: usize,
}

impl Certificates {
    /// Every certificate, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Certificate> {
        self.certs.iter()
    }

    fn find(&self, name: &str) -> Option<usize> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }

    /// The certificate for a handshake that named `sni` (or none).
    pub fn select(&self, sni: Option<&str>) -> &Certificate {
        let i = sni.and_then(|s| self.find(s)).unwrap_or(self.default);
        &self.certs[i]
    }

    /// Does a certificate hold `host` (a name without port)? The default
    /// covers only the names it holds.
    pub fn covers(&self, host: &str) -> bool {
        self.find(host).is_some()
    }
}

/// What a TLS listener needs: the certificates, the acceptor, and what is
/// added to responses over TLS.
pub struct TlsState {
    pub certs: Certificates,
    acceptor: SslAcceptor,
    /// What the acceptor was built with.
    min_version: TlsVersion,
    /// `Strict-Transport-Security`, when `[tls] hsts` is set.
    pub hsts: Option<HeaderValue>,
    /// `[tls] redirect_http`.
    pub redirect_http: bool,
    /// The port of the first TLS listener (omitted from an https URL when 443).
    pub port: u16,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("certificates", &self.certs.certs.len())
            .field("port", &self.port)
            .finish()
    }
}

/// Unix seconds of an ASN.1 time.
fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Why a PEM could not be used, in a sentence.
fn openssl_reason(e: &pingora::tls::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|e| e.reason().map(str::to_string))
        .unwrap_or_else(|| "not PEM".into())
}

/// One certificate from its files; `Err` is the `bad_certificate` message.
fn load_one(spec: &CertificateSpec, files: &CertFiles) -> Result<Certificate, String> {
    let mut chain = X509::stack_from_pem(&files.cert).map_err(|e| {
        format!(
            "cert \"{}\" is not a PEM certificate chain ({})",
            spec.cert_raw,
            openssl_reason(&e)
        )
    })?;
    if chain.is_empty() {
        return Err(format!(
            "cert \"{}\" holds no certificate (expected \"-----BEGIN CERTIFICATE-----\")",
            spec.cert_raw
        ));
    }
    let leaf = chain.remove(0);
    let key = PKey::private_key_from_pem(&files.key).map_err(|e| {
        format!(
            "key \"{}\" is not an unencrypted PEM private key ({})",
            spec.key.display(),
            openssl_reason(&e)
        )
    })?;
    let matches = leaf
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        return Err(format!(
            "key \"{}\" does not match the certificate \"{}\" (a different key pair)",
            spec.key.display(),
            spec.cert_raw
        ));
    }
    let names = leaf
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(|d| d.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default();
    let not_after = unix_time(leaf.not_after())
        .ok_or_else(|| format!("cert \"{}\": its notAfter cannot be read", spec.cert_raw))?;
    Ok(Certificate {
        label: spec.cert_raw.clone(),
        leaf,
        chain,
        key,
        names,
        not_after,
    })
}

/// The acceptor every TLS listener uses: Mozilla's intermediate profile,
/// `min_version`, ALPN h2 then http/1.1; the certificate is set per
/// handshake ([`Pick`]).
fn acceptor(min: TlsVersion) -> Result<SslAcceptor, String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| format!("OpenSSL: {e}"))?;
    // The server's order of the intermediate suites (ECDSA and AES-GCM
    // first), not the client's: what testssl.sh and SSL Labs ask for.
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    if min == TlsVersion::V1_3 {
        b.set_min_proto_version(Some(SslVersion::TLS1_3))
            .map_err(|e| format!("OpenSSL: {e}"))?;
    }
    b.set_alpn_select_callback(|_, client| {
        select_next_proto(ALPN_H2_H1, client).ok_or(AlpnError::NOACK)
    });
    Ok(b.build())
}

/// The TLS state of `config` from the certificate files the loader read
/// (`files`, one per `config.certificates`), with every problem: a file that
/// does not parse or a key that does not match is a `bad_certificate` at its
/// `[[certificate]]`, one that expires within 14 days (or has expired) the
/// warning `certificate_expiring`. `None` without `[tls]`, when the files
/// were not read, or on an error.
pub fn build(
    config: &Config,
    files: &[Result<CertFiles, Problem>],
    now: i64,
) -> (Option<Arc<TlsState>>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Some(tls) = &config.tls else {
        return (None, problems);
    };
    if files.len() != config.certificates.len() || files.is_empty() {
        return (None, problems);
    }
    let mut certs = Vec::new();
    for (spec, file) in config.certificates.iter().zip(files) {
        let at = |p: Problem| p.at(&spec.place.file, spec.place.line, Some(spec.place.column));
        let loaded = match file {
            Err(p) => {
                problems.push(p.clone());
                continue;
            }
            Ok(f) => load_one(spec, f),
        };
        match loaded {
            Err(msg) => problems.push(at(Problem::error("bad_certificate", msg))),
            Ok(c) => {
                let left = c.not_after - now;
                if left < EXPIRY_WARNING {
                    let msg = if left < 0 {
                        format!("cert \"{}\" expired {} days ago", c.label, -left / 86_400)
                    } else {
                        format!(
                            "cert \"{}\" expires in {} days; renew it",
                            c.label,
                            left / 86_400
                        )
                    };
                    problems.push(at(Problem::warning("certificate_expiring", msg)));
                }
                if c.names.is_empty() {
                    problems.push(at(Problem::warning(
                        "bad_certificate",
                        format!(
                            "cert \"{}\" has no DNS name (subjectAltName): SNI never picks it, only a default serves it",
                            c.label
                        ),
                    )));
                }
                certs.push((c, spec.default));
            }
        }
    }
    if problems.iter().any(Problem::is_error) || certs.is_empty() {
        return (None, problems);
    }
    let acceptor = match acceptor(tls.min_version) {
        Ok(a) => a,
        Err(e) => {
            let p = Problem::error("bad_certificate", e).at(
                &tls.place.file,
                tls.place.line,
                Some(tls.place.column),
            );
            problems.push(p);
            return (None, problems);
        }
    };
    let default = certs.iter().position(|(_, d)| *d).unwrap_or(0);
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    for (i, (c, _)) in certs.iter().enumerate() {
        for name in &c.names {
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.entry(parent.to_string()).or_insert(i),
                None => exact.entry(name.clone()).or_insert(i),
            };
        }
    }
    let state = TlsState {
        certs: Certificates {
            certs: certs.into_iter().map(|(c, _)| c).collect(),
            exact,
            wildcard,
            default,
        },
        acceptor,
        min_version: tls.min_version,
        hsts: tls
            .hsts
            .as_ref()
            .and_then(|h| HeaderValue::from_str(&h.value()).ok()),
        redirect_http: tls.redirect_http,
        port: tls.listen.first().map_or(443, |a| a.port()),
    };
    (Some(Arc::new(state)), problems)
}

impl TlsState {
    /// Takes over the acceptor of the state in force when it was built with
    /// the same settings, so a reload keeps its session-ticket keys and
    /// session cache: clients resume their sessions across reloads, as
    /// before them. (Certificates are chosen per handshake, not held by it.)
    pub fn keep_acceptor_of(&mut self, old: &TlsState) {
        if self.min_version == old.min_version {
            self.acceptor = old.acceptor.clone();
        }
    }
}

/// Hands the certificate chosen by SNI to a handshake.
struct Pick<'a>(&'a Certificates);

#[async_trait]
impl TlsAccept for Pick<'_> {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let cert = self.0.select(ssl.servername(NameType::HOST_NAME));
        use pingora::tls::ext;
        // Failing to set them fails the handshake ("no certificate"), as it
        // must: there is nothing else to serve.
        let _ = ext::ssl_use_certificate(ssl, &cert.leaf);
        let _ = ext::ssl_use_private_key(ssl, &cert.key);
        for c in &cert.chain {
            let _ = ext::ssl_add_chain_cert(ssl, c);
        }
    }
}

/// The TLS handshake of a new connection with the certificates of `state`.
/// `stream` is the TCP stream Pingora's listener accepted.
pub async fn handshake(stream: Stream, state: &TlsState) -> pingora::Result<Stream> {
    use pingora::protocols::l4::stream::Stream as Tcp;
    let tcp = stream.into_any().downcast::<Tcp>().map_err(|_| {
        pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "a TLS listener's connection is not a TCP stream",
        )
    })?;
    let tls = pingora::protocols::tls::server::handshake_with_callback(
        &state.acceptor,
        *tcp,
        &Pick(&state.certs),
    )
    .await?;
    Ok(Box::new(tls))
}

/// Is the request in `session` on a TLS connection?
pub fn is_tls(session: &pingora::proxy::Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
