//! One connection to one broker: Kafka's framing (a 4-byte length, the request header, the
//! body, encoded by `kafka-protocol`), the versions the broker speaks (ApiVersions, asked once
//! per connection), then TLS and SASL as configured. Every request is counted by API name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::sasl::{self, Exchange, Mechanism};

/// Largest response accepted: a ListOffsets answer for 50,000 partitions is about 1.5 MB.
const MAX_RESPONSE: usize = 256 << 20;

/// How the exporter reaches and proves itself to a cluster.
#[derive(Clone)]
pub(crate) struct Security {
    pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    pub(crate) sasl: Option<SaslLogin>,
    pub(crate) client_id: String,
}

#[derive(Clone)]
pub(crate) struct SaslLogin {
    pub(crate) mechanism: Mechanism,
    pub(crate) username: String,
    pub(crate) password: String,
}

/// Requests sent, by API name: the exporter's own count (`surge_kafka_requests_total`).
pub(crate) type RequestCounts = BTreeMap<&'static str, u64>;

/// A request could not be answered; the connection should not be used again.
#[derive(Debug)]
pub(crate) struct WireError(pub(crate) String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn wire(what: impl std::fmt::Display) -> WireError {
    WireError(what.to_string())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The name Kafka's documentation gives each API the exporter uses.
pub(crate) fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::SaslHandshake) => "SaslHandshake",
        Ok(ApiKey::SaslAuthenticate) => "SaslAuthenticate",
        _ => "Other",
    }
}

pub(crate) struct Connection {
    io: Box<dyn Io>,
    address: String,
    correlation: i32,
    client_id: StrBytes,
    /// API key → (min, max) version the broker accepts.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connect, learn the broker's versions, then TLS/SASL as `security` says; by `deadline`.
    pub(crate) async fn open(
        address: &str,
        security: &Security,
        deadline: Instant,
        counts: &mut RequestCounts,
    ) -> Result<Connection, WireError> {
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(address))
            .await
            .map_err(|_| wire(format!("{address}: connect timed out")))?
            .map_err(|e| wire(format!("{address}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &security.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| wire(format!("{address}: not a TLS server name: {e}")))?;
                let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                    .await
                    .map_err(|_| wire(format!("{address}: TLS handshake timed out")))?
                    .map_err(|e| wire(format!("{address}: TLS: {e}")))?;
                Box::new(tls)
            }
        };
        let mut connection = Connection {
            io,
            address: address.to_string(),
            correlation: 0,
            client_id: StrBytes::from_string(security.client_id.clone()),
            versions: HashMap::new(),
        };
        connection.negotiate(deadline, counts).await?;
        if let Some(login) = &security.sasl {
            connection.authenticate(login, deadline, counts).await?;
        }
        Ok(connection)
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// ApiVersions v3 (client name and version for the broker's logs); a broker too old for
    /// it answers in v0 with UNSUPPORTED_VERSION, and is asked again in v0.
    async fn negotiate(
        &mut self,
        deadline: Instant,
        counts: &mut RequestCounts,
    ) -> Result<(), WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("surge-exporter"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut answer = self.call(&request, 3, deadline, counts).await;
        if answer.as_ref().is_ok_and(|a| a.error_code == 35) || answer.is_err() {
            answer = self.call(&request, 0, deadline, counts).await;
        }
        let answer = answer?;
        if answer.error_code != 0 {
            return Err(wire(format!(
                "{}: ApiVersions failed with error {}",
                self.address, answer.error_code
            )));
        }
        self.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    async fn authenticate(
        &mut self,
        login: &SaslLogin,
        deadline: Instant,
        counts: &mut RequestCounts,
    ) -> Result<(), WireError> {
        let address = self.address.clone();
        // Handshake v1 wraps the tokens in SaslAuthenticate (Kafka 1.0+); v0's raw tokens are
        // not spoken.
        if self.version::<SaslHandshakeRequest>(1..=1).is_none() {
            return Err(wire(format!(
                "{address}: the broker does not offer SaslHandshake v1 (Kafka 1.0 or later)"
            )));
        }
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let answer = self.call(&handshake, 1, deadline, counts).await?;
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(wire(format!(
                "{address}: SASL mechanism {} refused (error {}); the broker offers {}",
                login.mechanism.name(),
                answer.error_code,
                offered.join(", ")
            )));
        }
        let version = self
            .version::<SaslAuthenticateRequest>(0..=2)
            .ok_or_else(|| wire(format!("{address}: the broker offers no SaslAuthenticate")))?;
        let nonce = sasl::nonce().map_err(|e| wire(format!("{address}: {e}")))?;
        let (mut exchange, mut token): (Exchange, Vec<u8>) =
            Exchange::start(login.mechanism, &login.username, &login.password, &nonce);
        loop {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let answer = self.call(&request, version, deadline, counts).await?;
            if answer.error_code != 0 {
                return Err(wire(format!(
                    "{address}: SASL {} authentication failed: {}",
                    login.mechanism.name(),
                    answer
                        .error_message
                        .as_ref()
                        .map_or_else(|| format!("error {}", answer.error_code), |m| m.to_string())
                )));
            }
            match exchange.answer(&answer.auth_bytes).map_err(|e| {
                wire(format!(
                    "{address}: SASL {} authentication failed: {e}",
                    login.mechanism.name()
                ))
            })? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// The highest version of `R` both the broker and `ours` accept.
    pub(crate) fn version<R: Request>(&self, ours: std::ops::RangeInclusive<i16>) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let lo = min.max(*ours.start()).max(R::VERSIONS.min);
        let hi = max.min(*ours.end()).min(R::VERSIONS.max);
        (lo <= hi).then_some(hi)
    }

    /// Send `request` in `version` and read its answer, by `deadline`.
    pub(crate) async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        deadline: Instant,
        counts: &mut RequestCounts,
    ) -> Result<R::Response, WireError> {
        *counts.entry(api_name(R::KEY)).or_insert(0) += 1;
        let address = self.address.clone();
        let api = api_name(R::KEY);
        match tokio::time::timeout_at(deadline, self.exchange(request, version)).await {
            Ok(answer) => answer.map_err(|e| wire(format!("{address}: {api} v{version}: {e}"))),
            Err(_) => Err(wire(format!("{address}: {api} timed out"))),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| e.to_string())?;
        request
            .encode(&mut frame, version)
            .map_err(|e| e.to_string())?;
        let length = i32::try_from(frame.len() - 4).map_err(|_| "request too large")?;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        self.io.write_all(&frame).await.map_err(|e| e.to_string())?;
        self.io.flush().await.map_err(|e| e.to_string())?;

        let length = self.io.read_i32().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "connection closed by the broker".to_string(),
            _ => e.to_string(),
        })?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE)
            .ok_or_else(|| format!("answer of {length} bytes refused"))?;
        let mut body = vec![0; length];
        self.io
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| format!("bad response header: {e}"))?;
        if header.correlation_id != correlation {
            return Err(format!(
                "answer to request {} arrived for {correlation}",
                header.correlation_id
            ));
        }
        let response = R::Response::decode(&mut body, version).map_err(|e| e.to_string())?;
        if body.has_remaining() && R::KEY != ApiKey::ApiVersions as i16 {
            tracing::debug!(
                address = %self.address,
                left = body.remaining(),
                "bytes left after a response"
            );
        }
        Ok(response)
    }
}

/// TLS to the brokers: the CA file (PEM) when given, else the system's roots; a client
/// certificate and key (PEM) when both are given.
pub(crate) fn tls_connector(
    ca: Option<&std::path::Path>,
    certificate: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found: set ssl.ca.location".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (certificate, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(
                "ssl.certificate.location and ssl.key.location go together: set both or neither"
                    .into(),
            );
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
