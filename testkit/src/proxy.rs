//! A TCP proxy on loopback that the test controls: pass traffic through, delay it, hold it (the
//! peer seems to hang), or cut every connection and refuse new ones. For network faults between
//! real processes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Decodable, Encodable};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward as it comes.
    None,
    /// Hold every chunk this long before forwarding it.
    Delay(Duration),
    /// Hold everything: connections stay open and nothing answers until the fault is lifted,
    /// then what was held arrives (a network partition TCP rides out, or a stuck peer).
    Stall,
    /// Close every connection, and every new one at once.
    Cut,
}

/// The connections a proxy relays, closed all at once (a cut, or the proxy dropped).
#[derive(Default)]
pub(crate) struct Connections(Mutex<Vec<TcpStream>>);

impl Connections {
    pub(crate) fn keep(&self, streams: [&TcpStream; 2]) {
        if let Ok(mut held) = self.0.lock() {
            held.extend(streams.iter().filter_map(|s| s.try_clone().ok()));
        }
    }

    fn close_all(&self) {
        if let Ok(mut held) = self.0.lock() {
            for c in held.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A listener on a free loopback port that hands each client to `on_client` (with the
/// connections to register relays in) on its own thread, until dropped; dropping it closes
/// those connections too. The proxies here are built on it.
pub(crate) struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    open: Arc<Connections>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    pub(crate) fn start(
        mut on_client: impl FnMut(TcpStream, &Arc<Connections>) + Send + 'static,
    ) -> anyhow::Result<Listener> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Connections::default());
        let (stopped, connections) = (Arc::clone(&stop), Arc::clone(&open));
        let accept = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        on_client(client, &connections);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Listener {
            port,
            stop,
            open,
            accept: Some(accept),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn close_all(&self) {
        self.open.close_all();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.open.close_all();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

pub struct FaultProxy {
    fault: Arc<Mutex<Fault>>,
    listener: Listener,
}

fn current(fault: &Mutex<Fault>) -> Fault {
    fault.lock().map_or(Fault::Cut, |f| *f)
}

impl FaultProxy {
    /// Listen on a free loopback port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<FaultProxy> {
        let fault = Arc::new(Mutex::new(Fault::None));
        let state = Arc::clone(&fault);
        let listener = Listener::start(move |client, open| {
            if current(&state) == Fault::Cut {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            if let Ok(server) = TcpStream::connect(upstream) {
                pipe(&state, open, client, server);
            }
        })?;
        Ok(FaultProxy { fault, listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    /// Apply `fault` from now on; `Cut` also closes the open connections.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = fault;
        }
        if fault == Fault::Cut {
            self.listener.close_all();
        }
    }
}

/// Copy both ways on two threads, applying the fault chunk by chunk.
fn pipe(fault: &Arc<Mutex<Fault>>, open: &Connections, client: TcpStream, server: TcpStream) {
    let streams = [client.try_clone(), server.try_clone()];
    let [Ok(c2), Ok(s2)] = streams else {
        return;
    };
    open.keep([&client, &server]);
    for (from, to) in [(client, server), (s2, c2)] {
        let fault = Arc::clone(fault);
        std::thread::spawn(move || copy(&fault, from, to));
    }
}

fn copy(fault: &Mutex<Fault>, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut cut = false;
        loop {
            match current(fault) {
                Fault::None => break,
                Fault::Delay(d) => {
                    std::thread::sleep(d);
                    break;
                }
                Fault::Stall => std::thread::sleep(Duration::from_millis(50)),
                Fault::Cut => {
                    cut = true;
                    break;
                }
            }
        }
        if cut {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// One Kafka frame (its length prefix stripped).
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length).ok()?;
    let length = usize::try_from(i32::from_be_bytes(length)).ok()?;
    let mut frame = vec![0; length];
    from.read_exact(&mut frame).ok()?;
    Some(frame)
}

/// One Kafka frame, length-prefixed.
fn write_frame(to: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_i32(i32::try_from(frame.len()).map_err(std::io::Error::other)?);
    out.put_slice(frame);
    to.write_all(&out)
}

/// Relay Kafka frames between `client` and `server` until either side closes: `asked` sees
/// each request frame on its way (what it returns is kept by correlation id), `answered` gets
/// that back with the answer's frame and returns the frame to send on, and `unanswered` gets
/// what was kept for requests never answered when the connection ends.
pub(crate) fn relay_kafka<Q: Send + 'static>(
    open: &Connections,
    client: TcpStream,
    server: TcpStream,
    mut asked: impl FnMut(&[u8]) -> Q + Send + 'static,
    mut answered: impl FnMut(Q, Vec<u8>) -> Vec<u8> + Send + 'static,
    unanswered: impl FnOnce(Vec<Q>) + Send + 'static,
) {
    let streams = [client.try_clone(), server.try_clone()];
    let [Ok(client_reader), Ok(server_reader)] = streams else {
        return;
    };
    open.keep([&client, &server]);
    let pending: Arc<Mutex<std::collections::HashMap<i32, Q>>> = Arc::default();
    let requests = Arc::clone(&pending);
    std::thread::spawn(move || {
        let (mut from, mut to) = (client_reader, server);
        while let Some(frame) = read_frame(&mut from) {
            if frame.len() >= 8 {
                let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let kept = asked(&frame);
                if let Ok(mut m) = requests.lock() {
                    m.insert(id, kept);
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
            let request = id.and_then(|id| pending.lock().ok()?.remove(&id));
            let frame = match request {
                Some(kept) => answered(kept, frame),
                None => frame,
            };
            if write_frame(&mut to, &frame).is_err() {
                break;
            }
        }
        let left: Vec<Q> = pending
            .lock()
            .map(|mut m| m.drain().map(|(_, q)| q).collect())
            .unwrap_or_default();
        unanswered(left);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A Kafka answer frame (header at `header_version`, body an `A` at `version`) decoded,
/// changed by `change`, and encoded again; `None` if it does not decode or `change` gives up.
pub(crate) fn edited<A: Decodable + Encodable>(
    frame: &[u8],
    header_version: i16,
    version: i16,
    change: impl FnOnce(&mut A) -> Option<()>,
) -> Option<Vec<u8>> {
    let mut body = Bytes::copy_from_slice(frame);
    let header = ResponseHeader::decode(&mut body, header_version).ok()?;
    let mut answer = A::decode(&mut body, version).ok()?;
    change(&mut answer)?;
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).ok()?;
    answer.encode(&mut out, version).ok()?;
    Some(out.to_vec())
}
