//! A TCP proxy on loopback that the test controls: pass traffic through, delay it, hold it (the
//! peer seems to hang), or cut every connection and refuse new ones. For network faults between
//! real processes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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

struct Shared {
    fault: Mutex<Fault>,
    connections: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

impl Shared {
    fn fault(&self) -> Fault {
        self.fault.lock().map_or(Fault::Cut, |f| *f)
    }

    fn cut_all(&self) {
        if let Ok(mut connections) = self.connections.lock() {
            for c in connections.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free loopback port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> anyhow::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::None),
            connections: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let state = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            while !state.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if state.fault() == Fault::Cut {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            pipe(&state, client, server);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(FaultProxy {
            port,
            shared,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Apply `fault` from now on; `Cut` also closes the open connections.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut f) = self.shared.fault.lock() {
            *f = fault;
        }
        if fault == Fault::Cut {
            self.shared.cut_all();
        }
    }
}

/// Copy both ways on two threads, applying the fault chunk by chunk.
fn pipe(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let streams = [
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ];
    let [Ok(c1), Ok(s1), Ok(c2), Ok(s2)] = streams else {
        return;
    };
    if let Ok(mut connections) = shared.connections.lock() {
        connections.push(client);
        connections.push(server);
    }
    for (from, to) in [(c1, s1), (s2, c2)] {
        let shared = Arc::clone(shared);
        std::thread::spawn(move || copy(&shared, from, to));
    }
}

fn copy(shared: &Shared, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut cut = false;
        loop {
            match shared.fault() {
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

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.cut_all();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
