//! Test certificates and a TLS client, both on OpenSSL (the `openssl` crate
//! the product links): a throwaway CA, leaf certificates with chosen DNS
//! names and validity, and a client that reports which certificate and
//! which ALPN protocol a handshake got.

#![allow(dead_code)]

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("pkey")
}

/// A random 128-bit serial number, as CAs issue them.
fn serial() -> Asn1Integer {
    let mut bn = BigNum::new().expect("bn");
    bn.rand(127, openssl::bn::MsbOption::ONE, false)
        .expect("random serial");
    Asn1Integer::from_bn(&bn).expect("serial")
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().expect("name");
    n.append_entry_by_text("CN", cn).expect("CN");
    n.build()
}

/// A throwaway certificate authority.
pub struct TestCa {
    pub cert: X509,
    key: PKey<Private>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert: X509,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl Leaf {
    /// The leaf's SHA-256 fingerprint, hex.
    pub fn fingerprint(&self) -> String {
        hex(&self.cert.digest(MessageDigest::sha256()).expect("digest"))
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub fn spki_hash(&self) -> String {
        let der = self
            .cert
            .public_key()
            .expect("public key")
            .public_key_to_der()
            .expect("SPKI");
        openssl::base64::encode_block(&openssl::sha::sha256(&der))
    }

    /// Writes `NAME.pem` and `NAME.key` in `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        write_atomically(&cert, &self.cert_pem);
        write_atomically(&key, &self.key_pem);
        (cert, key)
    }
}

/// Writes `path` through a temporary file and a rename, as deployment tools
/// do, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = ec_key();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("v3");
        b.set_serial_number(&serial()).expect("serial");
        b.set_subject_name(&name("pingora-redirect test CA"))
            .expect("subject");
        b.set_issuer_name(&name("pingora-redirect test CA"))
            .expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(365).expect("t"))
            .expect("na");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("ext");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        TestCa {
            cert: b.build(),
            key,
        }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("pem")
    }

    /// A leaf for `names` (DNS SANs; the first is the CN) valid from
    /// `not_before_days` to `not_after_days` from now (negative: the past).
    pub fn leaf_valid(&self, names: &[&str], not_before_days: i64, not_after_days: i64) -> Leaf {
        let key = ec_key();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("v3");
        b.set_serial_number(&serial()).expect("serial");
        b.set_subject_name(&name(names.first().copied().unwrap_or("leaf")))
            .expect("subject");
        b.set_issuer_name(self.cert.subject_name()).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        b.set_not_before(&Asn1Time::from_unix(now + not_before_days * 86_400).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(now + not_after_days * 86_400).expect("t"))
            .expect("na");
        if !names.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for n in names {
                san.dns(n);
            }
            let ext = san
                .build(&b.x509v3_context(Some(&self.cert), None))
                .expect("san");
            b.append_extension(ext).expect("ext");
        }
        b.sign(&self.key, MessageDigest::sha256()).expect("sign");
        let cert = b.build();
        Leaf {
            cert_pem: cert.to_pem().expect("pem"),
            key_pem: key.private_key_to_pem_pkcs8().expect("key pem"),
            cert,
        }
    }

    /// A leaf for `names` valid for 90 days.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_valid(names, -1, 90)
    }
}

/// What a handshake got.
pub struct Handshake {
    pub stream: SslStream<TcpStream>,
    /// The negotiated version, e.g. "TLSv1.3".
    pub version: String,
    /// The served leaf's DNS names.
    pub names: Vec<String>,
    pub fingerprint: String,
    pub alpn: Option<String>,
}

/// A TLS handshake with `127.0.0.1:port`, sending `sni` (none when `None`)
/// and offering `alpn` (wire format, e.g. `b"\x02h2\x08http/1.1"`); the
/// chain is verified against the CA certificate `ca` (not the name: the
/// test asserts names).
pub fn handshake(
    port: u16,
    sni: Option<&str>,
    alpn: &[u8],
    ca: &X509,
) -> Result<Handshake, String> {
    handshake_up_to(port, sni, alpn, ca, None)
}

/// [`handshake`] offering TLS versions up to `max` only.
pub fn handshake_up_to(
    port: u16,
    sni: Option<&str>,
    alpn: &[u8],
    ca: &X509,
    max: Option<openssl::ssl::SslVersion>,
) -> Result<Handshake, String> {
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_max_proto_version(max).map_err(|e| e.to_string())?;
    b.cert_store_mut()
        .add_cert(ca.clone())
        .map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::PEER);
    if !alpn.is_empty() {
        b.set_alpn_protos(alpn).map_err(|e| e.to_string())?;
    }
    let connector = b.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    tcp.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let mut cfg = connector.configure().map_err(|e| e.to_string())?;
    cfg.set_verify_hostname(false);
    cfg.set_use_server_name_indication(sni.is_some());
    let stream = cfg
        .connect(sni.unwrap_or("unused.invalid"), tcp)
        .map_err(|e| e.to_string())?;
    let leaf = stream
        .ssl()
        .peer_certificate()
        .ok_or("no peer certificate")?;
    let names = leaf
        .subject_alt_names()
        .map(|s| {
            s.iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let fingerprint = hex(&leaf.digest(MessageDigest::sha256()).expect("digest"));
    let alpn = stream
        .ssl()
        .selected_alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let version = stream.ssl().version_str().to_string();
    Ok(Handshake {
        version,
        stream,
        names,
        fingerprint,
        alpn,
    })
}
