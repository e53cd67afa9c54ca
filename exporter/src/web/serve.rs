//! Serving a router under a web config: TLS handshakes with the config current at accept
//! time, basic auth and headers with the one current at each request (a changed password or
//! certificate applies without a restart). At most `max_connections` connections are served at
//! once: past that, new ones wait in the listen backlog until one ends (a client that opens
//! connections and says nothing is cut at the header timeout).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{WebConfig, auth};

/// A client gets this long to finish its TLS handshake, and to send a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn handle(
    web: Arc<WebConfig>,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let loaded = web.current();
    let verdict = if loaded.requires_auth() {
        auth::check(&loaded, request.headers().get(header::AUTHORIZATION)).await
    } else {
        auth::Verdict::Allowed
    };
    let mut response = match verdict {
        auth::Verdict::Allowed => router.oneshot(request).await?,
        auth::Verdict::Denied => {
            let mut denied = Response::new(Body::from("Unauthorized\n"));
            *denied.status_mut() = StatusCode::UNAUTHORIZED;
            denied.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic"),
            );
            denied
        }
        auth::Verdict::Busy => {
            let mut busy =
                Response::new(Body::from("Too many authentication attempts in progress\n"));
            *busy.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            busy.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            busy
        }
    };
    for (name, value) in &loaded.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(response)
}

/// Serve `router` on `listener` under `web` (watching it for changes) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web: Arc<WebConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = tokio::spawn(Arc::clone(&web).watch());
    let slots = Arc::new(tokio::sync::Semaphore::new(web.max_connections()));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (web, router) = (Arc::clone(&web), router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = web.current().tls.clone();
            let service = hyper::service::service_fn(move |request| {
                handle(Arc::clone(&web), router.clone(), request)
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT);
            let served = match tls {
                None => http.serve_connection(TokioIo::new(tcp), service).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            http.serve_connection(TokioIo::new(stream), service).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    watcher.abort();
    Ok(())
}
