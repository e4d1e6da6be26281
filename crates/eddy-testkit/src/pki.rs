//! A certificate authority made at test time (`rcgen`), and certificates it signs, written as
//! PEM files: what a TLS test serves with and what its clients trust.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A test CA.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate signed by a [`TestCa`]: PEM files and the DER of the leaf.
pub struct Issued {
    /// The chain (leaf only) in PEM.
    pub cert: PathBuf,
    /// The private key in PEM (PKCS#8).
    pub key: PathBuf,
    /// The leaf in DER, to compare with what a server presented.
    pub der: Vec<u8>,
}

/// A self-signed certificate for `names` (not a CA: its own issuer and trust anchor), written
/// as `<file>.pem` and `<file>.key` in `dir`: what an origin set up by hand often serves.
pub fn self_signed(dir: &Path, file: &str, names: &[&str]) -> std::io::Result<Issued> {
    leaf(dir, file, names, |params, key| params.self_signed(key))
}

/// A certificate for `names` with a fresh key, signed by `sign`, written as `<file>.pem` and
/// `<file>.key` in `dir`.
fn leaf(
    dir: &Path,
    file: &str,
    names: &[&str],
    sign: impl FnOnce(CertificateParams, &KeyPair) -> Result<rcgen::Certificate, rcgen::Error>,
) -> std::io::Result<Issued> {
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let key = KeyPair::generate().map_err(err)?;
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .map_err(err)?;
    let cert = sign(params, &key).map_err(err)?;
    let (c, k) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&c, cert.pem())?;
    std::fs::write(&k, key.serialize_pem())?;
    Ok(Issued {
        cert: c,
        key: k,
        der: cert.der().to_vec(),
    })
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> Result<TestCa, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "eddy test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa { issuer })
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate in DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A certificate for `names` (DNS names or IP addresses), written as `<file>.pem` and
    /// `<file>.key` in `dir`.
    pub fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> std::io::Result<Issued> {
        leaf(dir, file, names, |params, key| {
            params.signed_by(key, &self.issuer)
        })
    }
}
