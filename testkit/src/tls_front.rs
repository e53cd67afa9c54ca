//! TLS in front of a plain-TCP server on loopback (rustls): what a broker's SSL listener is to
//! its clients, for a broker that has none (tansu serves plain TCP). Start the broker
//! advertising this port, so every connection a client makes goes through TLS. Optionally
//! requires client certificates signed by a given CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

pub struct TlsFront {
    port: u16,
    /// Its own runtime (tests using it may run on another): shutting it down stops the
    /// listener and every relay.
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsFront {
    /// Serve TLS with `cert`/`key` (PEM) on a free loopback port, relaying to `upstream`;
    /// with `client_ca`, only clients presenting a certificate it signed get through.
    pub fn start(
        upstream: SocketAddr,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<TlsFront> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)?;
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca)? {
                    roots.add(c?)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let acceptor =
            tokio_rustls::TlsAcceptor::from(Arc::new(builder.with_single_cert(chain, key)?));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // Bound here, not on the runtime: the caller may itself be inside one.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client refused in the handshake just goes away.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        Ok(TlsFront {
            port,
            runtime: Some(runtime),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        // Without waiting: a test's own runtime may be the one dropping it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
