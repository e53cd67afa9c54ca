//! A real broker made to look older: a loopback proxy in front of it that lowers the highest
//! versions its ApiVersions answer advertises for chosen APIs (e.g. FindCoordinator below v4,
//! OffsetFetch below v8, as brokers before Kafka 3.0 are), and passes everything else through
//! untouched. Start the broker advertising the proxy's port so every connection goes through.
//! Caps apply to connections opened after they are set (versions are asked once per
//! connection).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::proxy::{Connections, Listener, edited, relay_kafka};

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

fn relay(caps: Caps, open: &Connections, client: TcpStream, server: TcpStream) {
    relay_kafka(
        open,
        client,
        server,
        // (API key, version) of each request.
        |frame| {
            (
                i16::from_be_bytes([frame[0], frame[1]]),
                i16::from_be_bytes([frame[2], frame[3]]),
            )
        },
        move |(key, version), frame| {
            if key == ApiKey::ApiVersions as i16 && !caps.is_empty() {
                lowered(&frame, version, &caps).unwrap_or(frame)
            } else {
                frame
            }
        },
        |_| {},
    );
}

/// The ApiVersions answer with the capped APIs' highest versions lowered.
fn lowered(frame: &[u8], version: i16, caps: &Caps) -> Option<Vec<u8>> {
    // ApiVersions answers always carry header v0 (so a client can read them at any version).
    edited(frame, 0, version, |answer: &mut ApiVersionsResponse| {
        for api in &mut answer.api_keys {
            if let Some(max) = caps.get(&api.api_key) {
                api.max_version = api.max_version.min(*max);
            }
        }
        Some(())
    })
}
