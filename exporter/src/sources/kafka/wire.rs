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

/// Largest answer accepted unless `receive.message.max.bytes` says otherwise: over 4 times the
/// largest the exporter asks for at fleet scale (1,000 groups × 50 partitions: Metadata, 2.1
/// MB; measured by `the_default_answer_cap_holds_fleet_scale_answers_four_times`), a
/// sixteenth of the exporter pod's 256 MiB memory limit.
pub(crate) const DEFAULT_MAX_ANSWER: usize = 16 << 20;
/// What `receive.message.max.bytes` may be set to.
pub(crate) const MAX_ANSWER_RANGE: std::ops::RangeInclusive<usize> = (64 << 10)..=(128 << 20);
/// An answer's buffer starts at most this large and grows with the bytes that arrive, so a
/// length the broker states but never sends costs nothing.
const FIRST_READ: usize = 64 << 10;

/// How the exporter reaches and proves itself to a cluster.
#[derive(Clone)]
pub(crate) struct Security {
    pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    pub(crate) sasl: Option<SaslLogin>,
    pub(crate) client_id: String,
    /// Largest answer read (`receive.message.max.bytes`).
    pub(crate) max_answer: usize,
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
    max_answer: usize,
    /// The last answer was not read whole: what comes next on the stream is not a frame.
    out_of_step: bool,
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
            max_answer: security.max_answer,
            out_of_step: false,
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
        // An old broker answers v3 in v0's shape, which fails to decode: asked again in v0 on
        // the same connection only when that answer was read whole.
        if answer.as_ref().is_ok_and(|a| a.error_code == 35)
            || (answer.is_err() && !self.out_of_step)
        {
            let first = answer.as_ref().err().map(|e| e.0.clone());
            answer = self.call(&request, 0, deadline, counts).await;
            // Both failed: the v3 answer's fault is the one to know.
            if let (Some(first), Err(again)) = (first, &answer) {
                answer = Err(wire(format!("{first}; asked again in v0: {again}")));
            }
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
        let response = read_answer::<R>(&mut self.io, version, correlation, self.max_answer)
            .await
            .map_err(|(e, whole)| {
                self.out_of_step = !whole;
                e
            })?;
        if response.1 > 0 && R::KEY != ApiKey::ApiVersions as i16 {
            tracing::debug!(
                address = %self.address,
                left = response.1,
                "bytes left after a response"
            );
        }
        Ok(response.0)
    }
}

/// Read one answer frame from `io` and decode it as `R`'s response in `version`, with the
/// bytes left over after it. An error says whether the frame was read whole (the stream is
/// still in step). The length comes first and is checked against `max`; the buffer
/// grows only with bytes that arrive; the decoder checks every count against the bytes left
/// (the patched kafka-protocol in vendor/).
async fn read_answer<R: Request>(
    io: &mut (impl AsyncRead + Unpin),
    version: i16,
    correlation: i32,
    max: usize,
) -> Result<(R::Response, usize), (String, bool)> {
    let cut = |e: String| (e, false);
    let length = io.read_i32().await.map_err(|e| {
        cut(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "connection closed by the broker".to_string(),
            _ => e.to_string(),
        })
    })?;
    let length = usize::try_from(length)
        .map_err(|_| cut(format!("answer of {length} bytes: not a Kafka frame")))?;
    if length > max {
        return Err(cut(format!(
            "answer of {length} bytes refused: over receive.message.max.bytes ({max})"
        )));
    }
    let mut body = Vec::with_capacity(length.min(FIRST_READ));
    io.take(length as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| cut(e.to_string()))?;
    if body.len() < length {
        return Err(cut(format!(
            "connection closed mid-answer ({} of {length} bytes)",
            body.len()
        )));
    }
    let whole = |e: String| (e, true);
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|e| whole(format!("bad response header: {}", one_line(&e))))?;
    if header.correlation_id != correlation {
        // In step with the stream, not with the requests: nothing after it can be trusted.
        return Err(cut(format!(
            "answer to request {} arrived for {correlation}",
            header.correlation_id
        )));
    }
    let response = R::Response::decode(&mut body, version)
        .map_err(|e| whole(format!("bad answer: {}", one_line(&e))))?;
    Ok((response, body.remaining()))
}

/// A decoder's error as one line (kafka-protocol's may end in a newline).
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fuzzing: `data` as a broker's answer to one of the requests the exporter sends (the first
/// two bytes choose the API and the version, in the ranges the client asks in), read and
/// decoded as the client does. Returns the error, if any; never panics or aborts.
#[doc(hidden)]
pub fn fuzz_answer(data: &[u8]) -> Result<(), String> {
    use kafka_protocol::messages::{
        DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest, ListOffsetsRequest,
        MetadataRequest, OffsetFetchRequest,
    };
    let (Some(&api), Some(&version)) = (data.first(), data.get(1)) else {
        return Err("too short".into());
    };
    let mut frame = data.get(2..).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let in_range = |lo: i16, hi: i16| lo + i16::from(version) % (hi - lo + 1);
    // A fuzzer's frame is small: the cap is what bounds a stated length.
    let max = DEFAULT_MAX_ANSWER;
    let answered = runtime.block_on(async {
        match api % 9 {
            0 => read_answer::<ApiVersionsRequest>(&mut frame, in_range(0, 3), 1, max)
                .await
                .map(drop),
            1 => read_answer::<SaslHandshakeRequest>(&mut frame, 1, 1, max)
                .await
                .map(drop),
            2 => read_answer::<SaslAuthenticateRequest>(&mut frame, in_range(0, 2), 1, max)
                .await
                .map(drop),
            3 => read_answer::<MetadataRequest>(&mut frame, in_range(1, 12), 1, max)
                .await
                .map(drop),
            4 => read_answer::<ListOffsetsRequest>(&mut frame, in_range(1, 9), 1, max)
                .await
                .map(drop),
            5 => read_answer::<FindCoordinatorRequest>(&mut frame, in_range(0, 6), 1, max)
                .await
                .map(drop),
            6 => read_answer::<OffsetFetchRequest>(&mut frame, in_range(2, 9), 1, max)
                .await
                .map(drop),
            7 => read_answer::<DescribeGroupsRequest>(&mut frame, in_range(0, 5), 1, max)
                .await
                .map(drop),
            _ => read_answer::<ListGroupsRequest>(&mut frame, in_range(0, 5), 1, max)
                .await
                .map(drop),
        }
    });
    answered.map_err(|(e, _)| e)
}

/// Real answers to the requests [`fuzz_answer`] chooses from, framed as a broker sends them
/// (named, with the two choosing bytes first): the fuzzers' starting points.
#[doc(hidden)]
pub fn fuzz_answer_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::list_groups_response::ListedGroup;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{
        ApiVersionsResponse, BrokerId, GroupId, ListGroupsResponse, MetadataResponse, TopicName,
    };
    fn framed<M: Encodable + HeaderVersion>(
        api: u8,
        choose: u8,
        version: i16,
        message: &M,
    ) -> Vec<u8> {
        let mut body = BytesMut::new();
        let header = ResponseHeader::default().with_correlation_id(1);
        if header
            .encode(&mut body, M::header_version(version))
            .is_err()
            || message.encode(&mut body, version).is_err()
        {
            return Vec::new();
        }
        let mut seed = vec![api, choose];
        seed.extend((body.len() as i32).to_be_bytes());
        seed.extend(body);
        seed
    }
    let versions = ApiVersionsResponse::default().with_api_keys(vec![
        ApiVersion::default()
            .with_api_key(3)
            .with_min_version(0)
            .with_max_version(12),
        ApiVersion::default()
            .with_api_key(9)
            .with_min_version(0)
            .with_max_version(9),
    ]);
    let metadata = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092),
        ])
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("order-placed"))))
                .with_partitions(
                    (0..3)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(1))
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)])
                        })
                        .collect(),
                ),
        ]);
    let groups = ListGroupsResponse::default().with_groups(vec![
        ListedGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("payment")))
            .with_protocol_type(StrBytes::from_static_str("consumer")),
    ]);
    // `choose` picks the version as `lo + choose % (hi - lo + 1)`.
    vec![
        ("api-versions-v3", framed(0, 3, 3, &versions)),
        ("api-versions-v0", framed(0, 0, 0, &versions)),
        ("metadata-v12", framed(3, 11, 12, &metadata)),
        ("metadata-v1", framed(3, 0, 1, &metadata)),
        ("list-groups-v4", framed(8, 4, 4, &groups)),
        ("list-groups-v0", framed(8, 0, 0, &groups)),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame for [`fuzz_answer`]: the API and version choice, the length, correlation id 1,
    /// then `body`.
    fn frame(api: u8, choose: u8, body: &[u8]) -> Vec<u8> {
        let mut data = vec![api, choose];
        data.extend(((body.len() + 4) as i32).to_be_bytes());
        data.extend(1i32.to_be_bytes());
        data.extend(body);
        data
    }

    #[test]
    fn real_answers_decode() {
        let seeds = fuzz_answer_seeds();
        assert_eq!(seeds.len(), 6);
        for (name, seed) in seeds {
            assert_eq!(fuzz_answer(&seed), Ok(()), "{name}");
        }
    }

    /// Counts and lengths a broker states but does not send: refused before they size an
    /// allocation (unpatched, the array counts ask for hundreds of GB and the process aborts).
    #[test]
    fn counts_larger_than_the_answer_are_refused_before_allocating() {
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "Metadata v1: 2^31-1 brokers",
                frame(3, 0, &i32::MAX.to_be_bytes()),
                "length 2147483647 is more than the 0 bytes left",
            ),
            (
                // v12 is flexible: a tagged-field count after the header, the throttle time,
                // then the brokers as a compact array (varint count + 1).
                "Metadata v12: 2^32-2 brokers",
                frame(3, 11, &[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
                "length 4294967294 is more than the 0 bytes left",
            ),
            (
                // error code, no error message, then the auth bytes' length (a `Bytes` field,
                // which upstream already reads only when the bytes are there).
                "SaslAuthenticate v0: 2 GiB of auth bytes",
                frame(2, 0, &[0, 0, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1, 2]),
                "Not enough bytes remaining",
            ),
            (
                // Names are read as shared bytes, also only when there.
                "ListGroups v0: a 32 KiB group name",
                frame(8, 0, &[0, 0, 0, 0, 0, 1, 0x7f, 0xff, b'a']),
                "Not enough bytes remaining",
            ),
        ];
        let mut refused = 0;
        for (what, data, expected) in cases {
            let e = fuzz_answer(&data).err().unwrap_or_default();
            assert!(e.contains(expected), "{what}: {e}");
            refused += 1;
        }
        assert_eq!(refused, 4);
    }

    #[test]
    fn lengths_over_the_cap_or_cut_short_are_refused() {
        let mut over = vec![3, 0];
        over.extend(i32::MAX.to_be_bytes());
        let e = fuzz_answer(&over).err().unwrap_or_default();
        assert!(
            e.contains(
                "answer of 2147483647 bytes refused: over receive.message.max.bytes (16777216)"
            ),
            "{e}"
        );
        let mut negative = vec![3, 0];
        negative.extend((-5i32).to_be_bytes());
        let e = fuzz_answer(&negative).err().unwrap_or_default();
        assert!(e.contains("not a Kafka frame"), "{e}");
        // 16 MiB stated, 10 bytes sent: only what arrived was read.
        let mut short = vec![3, 0];
        short.extend((16i32 << 20).to_be_bytes());
        short.extend([0u8; 10]);
        let e = fuzz_answer(&short).err().unwrap_or_default();
        assert!(
            e.contains("connection closed mid-answer (10 of 16777216 bytes)"),
            "{e}"
        );
    }

    fn encoded<M: Encodable>(message: &M, version: i16) -> usize {
        let mut buf = BytesMut::new();
        message
            .encode(&mut buf, version)
            .map(|()| buf.len())
            .unwrap_or(usize::MAX)
    }

    /// The default cap against the largest answers the exporter asks for at fleet scale:
    /// 1,000 groups, each consuming its own 50-partition topic with 10 members, on 3 brokers.
    #[test]
    fn the_default_answer_cap_holds_fleet_scale_answers_four_times() {
        use kafka_protocol::messages::describe_groups_response::{
            DescribedGroup, DescribedGroupMember,
        };
        use kafka_protocol::messages::list_offsets_response::{
            ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
        };
        use kafka_protocol::messages::metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        };
        use kafka_protocol::messages::offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
        };
        use kafka_protocol::messages::{
            BrokerId, DescribeGroupsResponse, GroupId, ListOffsetsResponse, MetadataResponse,
            OffsetFetchResponse, TopicName,
        };
        let (groups, partitions, members) = (1000, 50, 10);
        let topic =
            |i: usize| TopicName(StrBytes::from_string(format!("shop.orders.placed-{i:04}")));
        let group = |i: usize| {
            GroupId(StrBytes::from_string(format!(
                "shop.payment.consumer-{i:04}"
            )))
        };
        let text = |s: String| StrBytes::from_string(s);
        let metadata = MetadataResponse::default()
            .with_brokers(
                (1..=3)
                    .map(|b| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b))
                            .with_host(text(format!(
                                "kafka-{b}.kafka-brokers.kafka.svc.cluster.local"
                            )))
                            .with_port(9092)
                    })
                    .collect(),
            )
            .with_topics(
                (0..groups)
                    .map(|t| {
                        MetadataResponseTopic::default()
                            .with_name(Some(topic(t)))
                            .with_partitions(
                                (0..partitions)
                                    .map(|p| {
                                        let replicas = vec![BrokerId(1), BrokerId(2), BrokerId(3)];
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(BrokerId(1))
                                            .with_replica_nodes(replicas.clone())
                                            .with_isr_nodes(replicas)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let offsets = ListOffsetsResponse::default().with_topics(
            (0..groups)
                .map(|t| {
                    ListOffsetsTopicResponse::default()
                        .with_name(topic(t))
                        .with_partitions(
                            (0..partitions)
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p)
                                        .with_offset(1 << 40)
                                        .with_timestamp(1 << 40)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let committed = OffsetFetchResponse::default().with_groups(
            (0..groups)
                .map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(group(g))
                        .with_topics(vec![
                            OffsetFetchResponseTopics::default()
                                .with_name(topic(g))
                                .with_partitions(
                                    (0..partitions)
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(1 << 40)
                                                .with_metadata(Some(StrBytes::from_static_str("")))
                                        })
                                        .collect(),
                                ),
                        ])
                })
                .collect(),
        );
        // A consumer-protocol assignment of 5 partitions and a subscription to one topic.
        let assignment = Bytes::from(vec![7u8; 2 + 4 + 2 + 24 + 4 + 5 * 4 + 4]);
        let subscription = Bytes::from(vec![7u8; 2 + 4 + 2 + 24 + 4 + 4]);
        let described = DescribeGroupsResponse::default().with_groups(
            (0..groups)
                .map(|g| {
                    DescribedGroup::default()
                        .with_group_id(group(g))
                        .with_group_state(StrBytes::from_static_str("Stable"))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                        .with_protocol_data(StrBytes::from_static_str("cooperative-sticky"))
                        .with_members(
                            (0..members)
                                .map(|m| {
                                    DescribedGroupMember::default()
                                        .with_member_id(text(format!(
                                            "payment-{m}-3f1c9a52-7d1e-4c7a-9a55-0e3b1f6d2c11"
                                        )))
                                        .with_client_id(text(format!("payment-{m}")))
                                        .with_client_host(text(format!("/10.1.{g}.{m}")))
                                        .with_member_metadata(subscription.clone())
                                        .with_member_assignment(assignment.clone())
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let sizes = [
            ("Metadata v12", encoded(&metadata, 12)),
            ("ListOffsets v9", encoded(&offsets, 9)),
            ("OffsetFetch v9", encoded(&committed, 9)),
            ("DescribeGroups v5", encoded(&described, 5)),
        ];
        let (largest, size) = sizes
            .iter()
            .max_by_key(|(_, n)| *n)
            .copied()
            .unwrap_or(("", 0));
        eprintln!("fleet-scale answers: {sizes:?}");
        assert!(
            size > 1 << 20,
            "{largest}: {size} bytes: fleet scale not reached"
        );
        assert!(
            size * 4 <= DEFAULT_MAX_ANSWER,
            "{largest} at fleet scale is {size} bytes; the default cap {DEFAULT_MAX_ANSWER} is not 4 times it"
        );
        const { assert!(DEFAULT_MAX_ANSWER <= (256 << 20) / 16) };
    }
}
