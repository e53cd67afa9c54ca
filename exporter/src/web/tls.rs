//! `tls_server_config` → a rustls server config: certificate and key, client certificates
//! (the five `client_auth_type`s), TLS versions, TLS 1.2 cipher suites and curves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Section {
    cert_file: Option<String>,
    key_file: Option<String>,
    /// Inline PEM, instead of the files.
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    /// Refused with a message (not an unknown-field error): it is a real toolkit field.
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

const AUTH_TYPES: [&str; 5] = [
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
];

/// What `client_auth_type` asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClientAuth(&'static str);

impl ClientAuth {
    /// A connection without a client certificate is refused.
    pub(super) fn required(self) -> bool {
        matches!(
            self.0,
            "RequireAnyClientCert" | "RequireAndVerifyClientCert"
        )
    }
    /// A client certificate given is checked against the client CA.
    pub(super) fn verified(self) -> bool {
        matches!(
            self.0,
            "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"
        )
    }
}

/// The PEM from `file` (pushed on `read`, to be watched) or inline.
fn read_pem(
    field: &str,
    dir: &Path,
    file: &Option<String>,
    inline: &Option<String>,
    read: &mut Vec<PathBuf>,
) -> Result<Option<Vec<u8>>, String> {
    match (file, inline) {
        (Some(file), _) => {
            let path = dir.join(file);
            read.push(path.clone());
            std::fs::read(&path).map(Some).map_err(|e| {
                format!(
                    "tls_server_config.{field}_file: reading {}: {e}",
                    path.display()
                )
            })
        }
        (None, Some(pem)) => Ok(Some(pem.as_bytes().to_vec())),
        (None, None) => Ok(None),
    }
}

fn version(field: &str, value: &Option<String>) -> Result<Option<u8>, String> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some("TLS12") => Ok(Some(2)),
        Some("TLS13") => Ok(Some(3)),
        Some(v @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{field}: {v} is not supported (TLS 1.2 is the oldest surge-exporter speaks)"
        )),
        Some(v) => Err(format!(
            "tls_server_config.{field}: {v:?} is not one of TLS10, TLS11, TLS12, TLS13"
        )),
    }
}

/// The provider with only the configured TLS 1.2 suites (TLS 1.3's are not configurable, as
/// in Go) and the configured curves, in the configured order.
fn provider(section: &Section) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(wanted) = &section.cipher_suites {
        let mut chosen = Vec::new();
        for name in wanted {
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| s.tls13().is_none() && format!("{:?}", s.suite()) == *name)
                .ok_or_else(|| {
                    let known: Vec<String> = provider
                        .cipher_suites
                        .iter()
                        .filter(|s| s.tls13().is_none())
                        .map(|s| format!("{:?}", s.suite()))
                        .collect();
                    format!(
                        "tls_server_config.cipher_suites: {name} is not supported (supported: {})",
                        known.join(", ")
                    )
                })?;
            chosen.push(*suite);
        }
        chosen.extend(
            provider
                .cipher_suites
                .iter()
                .filter(|s| s.tls13().is_some()),
        );
        provider.cipher_suites = chosen;
    }
    if let Some(curves) = &section.curve_preferences {
        let mut groups = Vec::new();
        for curve in curves {
            let named = match curve.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                "CurveP521" => {
                    return Err(
                        "tls_server_config.curve_preferences: CurveP521 is not supported (X25519, CurveP256, CurveP384 are)"
                            .into(),
                    );
                }
                other => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: {other:?} is not one of X25519, CurveP256, CurveP384, CurveP521"
                    ));
                }
            };
            if let Some(group) = provider.kx_groups.iter().find(|g| g.name() == named) {
                groups.push(*group);
            }
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The rustls config for `section` and what it asks of clients, or `None` when no TLS field
/// is set (plain HTTP). The files it reads are pushed on `read`.
pub(super) fn server_config(
    section: &Section,
    dir: &Path,
    read: &mut Vec<PathBuf>,
) -> Result<Option<(rustls::ServerConfig, ClientAuth)>, String> {
    if section.client_allowed_sans.is_some() {
        return Err(
            "tls_server_config.client_allowed_sans is not supported by surge-exporter; restrict clients with client_ca_file and RequireAndVerifyClientCert"
                .into(),
        );
    }
    let cert = read_pem("cert", dir, &section.cert_file, &section.cert, read);
    let key = read_pem("key", dir, &section.key_file, &section.key, read);
    let any_set = section.cert_file.is_some()
        || section.key_file.is_some()
        || section.cert.is_some()
        || section.key.is_some()
        || section.client_ca_file.is_some()
        || section.client_ca.is_some()
        || section.client_auth_type.is_some();
    if !any_set {
        return Ok(None);
    }
    if section.cert_file.is_none() && section.cert.is_none() {
        return Err("tls_server_config: cert_file is missing (or cert)".into());
    }
    if section.key_file.is_none() && section.key.is_none() {
        return Err("tls_server_config: key_file is missing (or key)".into());
    }
    let auth = section
        .client_auth_type
        .as_deref()
        .unwrap_or("NoClientCert");
    let auth = match auth {
        "" => "NoClientCert",
        "RequireClientCert" => "RequireAnyClientCert",
        other => other,
    };
    let Some(auth) = AUTH_TYPES.iter().copied().find(|known| *known == auth) else {
        return Err(format!(
            "tls_server_config.client_auth_type: {auth:?} is not one of {}",
            AUTH_TYPES.join(", ")
        ));
    };
    let min = version("min_version", &section.min_version)?.unwrap_or(2);
    let max = version("max_version", &section.max_version)?.unwrap_or(3);
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let ca_set = section.client_ca_file.is_some() || section.client_ca.is_some();
    if ca_set && auth == "NoClientCert" {
        return Err(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert (set RequireAndVerifyClientCert)"
                .into(),
        );
    }
    let ca = read_pem(
        "client_ca",
        dir,
        &section.client_ca_file,
        &section.client_ca,
        read,
    )?;
    let provider = Arc::new(provider(section)?);
    let cert = cert?.unwrap_or_default();
    let key = key?.unwrap_or_default();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    if chain.is_empty() {
        return Err("tls_server_config.cert_file: no certificate in it".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| format!("tls_server_config.key_file: no private key in it ({e})"))?;

    let verifier: Arc<dyn ClientCertVerifier> = match auth {
        "NoClientCert" => Arc::new(NoClientAuth),
        "RequestClientCert" | "RequireAnyClientCert" => Arc::new(AnyClientCert {
            mandatory: auth == "RequireAnyClientCert",
            algorithms: provider.signature_verification_algorithms,
        }),
        _ => {
            let pem = ca.ok_or_else(|| {
                format!("tls_server_config: {auth} needs client_ca_file (or client_ca)")
            })?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let builder = if auth == "VerifyClientCertIfGiven" {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?
        }
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not go together ({e})"))?;
    config.ignore_client_order = section.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some((config, ClientAuth(auth))))
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked for (and, if
/// mandatory, required) but not checked against any CA — only that the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_servers::tls::LocalCa;

    fn section(yaml: &str) -> Result<Section, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_the_readme_names_builds_or_is_refused_by_name() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca = LocalCa::new(dir.path(), "ca").map_err(|e| e.to_string())?;
        let server = ca.server("s", &["127.0.0.1"]).map_err(|e| e.to_string())?;
        let files = format!(
            "cert_file: {}\nkey_file: {}\n",
            server.cert.display(),
            server.key.display()
        );
        let build = |extra: &str| {
            server_config(
                &section(&format!("{files}{extra}"))?,
                dir.path(),
                &mut Vec::new(),
            )
            .map(|c| c.is_some())
        };
        for auth in AUTH_TYPES {
            let ca_line = if auth == "NoClientCert" {
                String::new()
            } else {
                format!("client_ca_file: {}\n", ca.cert().display())
            };
            assert_eq!(
                build(&format!("client_auth_type: {auth}\n{ca_line}")),
                Ok(true),
                "{auth}"
            );
        }
        // Inline PEM instead of files.
        let cert = std::fs::read_to_string(&server.cert).map_err(|e| e.to_string())?;
        let key = std::fs::read_to_string(&server.key).map_err(|e| e.to_string())?;
        let inline = Section {
            cert: Some(cert),
            key: Some(key),
            ..Section::default()
        };
        assert!(matches!(
            server_config(&inline, dir.path(), &mut Vec::new()),
            Ok(Some(_))
        ));
        assert_eq!(
            build(
                "min_version: TLS12\nmax_version: TLS13\ncipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\ncurve_preferences: [X25519, CurveP256]\n"
            ),
            Ok(true)
        );
        for (extra, expected) in [
            (
                "cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "TLS_RSA_WITH_RC4_128_SHA is not supported",
            ),
            (
                "curve_preferences: [CurveP521]\n",
                "CurveP521 is not supported",
            ),
            ("max_version: TLS11\n", "TLS11 is not supported"),
        ] {
            let e = build(extra).err().unwrap_or_default();
            assert!(e.contains(expected), "{extra}: {e}");
        }
        Ok(())
    }
}
