//! A real broker made to look older: a loopback proxy in front of it that lowers the highest
//! versions its ApiVersions answer advertises for chosen APIs (e.g. FindCoordinator below v4,
//! OffsetFetch below v8, as brokers before Kafka 3.0 are), and passes everything else through
//! untouched. Start the broker advertising the proxy's port so every connection goes through.
//! Caps apply to connections opened after they are set (versions are asked once per
//! connection).

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::proxy::{Connections, Listener, read_frame, write_frame};

/// API key → highest version to advertise.
type Caps = HashMap<i16, i16>;

pub struct OlderBroker {
    caps: Arc<Mutex<Caps>>,
    listener: Listener,
}

impl OlderBroker {
    /// Listen on a free loopback port in front of `upstream`, advertising its versions as
    /// they are until [`OlderBroker::cap`].
    pub fn start(upstream: SocketAddr) -> anyhow::Result<OlderBroker> {
        let caps = Arc::new(Mutex::new(Caps::new()));
        let held = Arc::clone(&caps);
        let listener = Listener::start(move |client, open| {
            if let Ok(server) = TcpStream::connect(upstream) {
                let caps = held.lock().map(|c| c.clone()).unwrap_or_default();
                relay(caps, open, client, server);
            }
        })?;
        Ok(OlderBroker { caps, listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// Advertise at most `max` for each `(api, max)` from the next connection on; an empty
    /// list advertises the broker's own versions again.
    pub fn cap(&self, caps: &[(ApiKey, i16)]) {
        if let Ok(mut held) = self.caps.lock() {
            *held = caps.iter().map(|(k, v)| (*k as i16, *v)).collect();
        }
    }
}

/// Requests in flight on one connection: correlation id → (api key, version).
type InFlight = Arc<Mutex<HashMap<i32, (i16, i16)>>>;

fn relay(caps: Caps, open: &Connections, client: TcpStream, server: TcpStream) {
    let streams = [client.try_clone(), server.try_clone()];
    let [Ok(client_reader), Ok(server_reader)] = streams else {
        return;
    };
    open.keep([&client, &server]);
    let in_flight: InFlight = Arc::default();
    let requests = Arc::clone(&in_flight);
    std::thread::spawn(move || {
        let (mut from, mut to) = (client_reader, server);
        while let Some(frame) = read_frame(&mut from) {
            if frame.len() >= 8 {
                let key = i16::from_be_bytes([frame[0], frame[1]]);
                let version = i16::from_be_bytes([frame[2], frame[3]]);
                let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                if let Ok(mut m) = requests.lock() {
                    m.insert(id, (key, version));
                }
            }
            if write_frame(&mut to, &frame).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (server_reader, client);
        while let Some(frame) = read_frame(&mut from) {
            let id = (frame.len() >= 4)
                .then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
            let request = id.and_then(|id| in_flight.lock().ok()?.remove(&id));
            let frame = match request {
                Some((key, version)) if key == ApiKey::ApiVersions as i16 && !caps.is_empty() => {
                    lowered(&frame, version, &caps).unwrap_or(frame)
                }
                _ => frame,
            };
            if write_frame(&mut to, &frame).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// The ApiVersions answer with the capped APIs' highest versions lowered.
fn lowered(frame: &[u8], version: i16, caps: &Caps) -> Option<Vec<u8>> {
    let mut body = Bytes::copy_from_slice(frame);
    // ApiVersions answers always carry header v0 (so a client can read them at any version).
    let header = ResponseHeader::decode(&mut body, 0).ok()?;
    let mut answer = ApiVersionsResponse::decode(&mut body, version).ok()?;
    for api in &mut answer.api_keys {
        if let Some(max) = caps.get(&api.api_key) {
            api.max_version = api.max_version.min(*max);
        }
    }
    let mut out = BytesMut::new();
    header.encode(&mut out, 0).ok()?;
    answer.encode(&mut out, version).ok()?;
    Some(out.to_vec())
}
