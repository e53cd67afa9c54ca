//! Certificates made on the spot (the local stack with TLS on, and the tests): a CA, and
//! server and client certificates it signs, as PEM files in a directory (what TLS configs
//! point at).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority that writes what it issues under `dir`.
pub struct LocalCa {
    name: String,
    dir: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// Files of one issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LocalCa {
    /// A new CA called `name`; its certificate is `<dir>/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<LocalCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        crate::secret::write(&dir.join(format!("{name}.pem")), issuer.pem())?;
        Ok(LocalCa {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            issuer,
        })
    }

    /// The CA certificate's file.
    pub fn cert(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> anyhow::Result<Issued> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(file));
        params.extended_key_usages = vec![usage];
        adjust(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        crate::secret::write(&issued.cert, cert.pem())?;
        crate::secret::write(&issued.key, key.serialize_pem())?;
        Ok(issued)
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, file: &str, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth, |_| {})
    }

    /// A server certificate for `names` that expired in 2001.
    pub fn expired_server(&self, file: &str, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, file: &str, name: &str) -> anyhow::Result<Issued> {
        self.issue(file, &[name], ExtendedKeyUsagePurpose::ClientAuth, |_| {})
    }
}
