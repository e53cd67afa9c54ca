//! Answers from outside are bounded: an answer past the 32 MiB limit, announced or streamed
//! without a length, is refused with one line naming the URL and the limit, as soon as its
//! length or its bytes pass the limit (the server holding the rest back proves the client
//! stopped on its own count); one at the limit is read. The same for Prometheus,
//! Alertmanager and an exporter. A compressed answer is bounded by what it unpacks to.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use surge_client::fetch::Alertmanager;
use surge_client::fetch::Exporter;
use surge_client::fetch::MAX_ANSWER_BYTES;
use surge_client::fetch::Prometheus;

/// What the paced server saw: body bytes it sent, and whether the client hung up while the
/// server still held the connection open (rather than the server ending the answer).
struct Served {
    sent: usize,
    client_left_first: bool,
}

/// Serve one answer: `headers`, then `body` bytes of `0`; then, with `hold`, keep the
/// connection open without sending more, until the client hangs up (or 30 s pass).
fn paced_server(
    headers: String,
    body: usize,
    hold: bool,
) -> anyhow::Result<(String, std::thread::JoinHandle<Served>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = format!("http://{}", listener.local_addr()?);
    let handle = std::thread::spawn(move || {
        let mut served = Served {
            sent: 0,
            client_left_first: false,
        };
        let Ok((mut stream, _)) = listener.accept() else {
            return served;
        };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        if stream.write_all(headers.as_bytes()).is_err() {
            return served;
        }
        let chunk = vec![b'0'; 64 * 1024];
        while served.sent < body {
            let n = chunk.len().min(body - served.sent);
            if stream.write_all(&chunk[..n]).is_err() {
                served.client_left_first = true;
                return served;
            }
            served.sent += n;
        }
        if hold {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            // The client sends nothing more: a read ends when it hangs up, or at the timeout.
            served.client_left_first = match stream.read(&mut request) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            };
        }
        served
    });
    Ok((addr, handle))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Each reader of the panel, asking `url` once: its error ("" if none).
async fn ask(reader: &str, url: &str) -> anyhow::Result<String> {
    let error = match reader {
        "prometheus" => Prometheus::new(url, client()?).instant("up").await.err(),
        "alertmanager" => Alertmanager::new(url, client()?).alerts().await.err(),
        _ => Exporter::new(url, client()?).scrape().await.err(),
    };
    Ok(error.map(|e| e.to_string()).unwrap_or_default())
}

const READERS: [&str; 3] = ["prometheus", "alertmanager", "exporter"];

async fn served(handle: std::thread::JoinHandle<Served>) -> anyhow::Result<Served> {
    tokio::task::spawn_blocking(move || handle.join())
        .await?
        .map_err(|_| anyhow::anyhow!("server thread panicked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_limit_are_refused_as_soon_as_they_pass_it() -> anyhow::Result<()> {
    let refused = "answer larger than 32 MiB, refused";
    let mut checked = Vec::new();
    for reader in READERS {
        // Announced: refused from its Content-Length, before any of the body (the server sends
        // none and waits).
        let (url, server) = paced_server(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                1u64 << 30
            ),
            0,
            true,
        )?;
        let error = ask(reader, &url).await?;
        assert!(error.ends_with(refused), "{reader}: {error}");
        assert!(error.starts_with(&url), "{reader}: {error}");
        assert!(
            served(server).await?.client_left_first,
            "{reader} waited for the body"
        );

        // Streamed without a length: 1 MiB past the limit, then nothing more while the server
        // holds the connection: the client must stop on its own count.
        let (url, server) = paced_server(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".into(),
            MAX_ANSWER_BYTES + (1 << 20),
            true,
        )?;
        let error = ask(reader, &url).await?;
        assert!(error.ends_with(refused), "{reader}: {error}");
        let served = served(server).await?;
        assert!(
            served.client_left_first,
            "{reader} kept waiting after {} bytes",
            served.sent
        );

        // At the limit, then the end: read whole (and then found not to be a valid answer,
        // which is another error).
        let (url, server) = paced_server(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n".into(),
            MAX_ANSWER_BYTES,
            false,
        )?;
        let error = ask(reader, &url).await?;
        assert!(!error.contains("larger than"), "{reader}: {error}");
        assert_eq!(served_sent(server).await?, MAX_ANSWER_BYTES, "{reader}");
        checked.push(reader);
    }
    assert_eq!(checked, READERS);
    Ok(())
}

async fn served_sent(handle: std::thread::JoinHandle<Served>) -> anyhow::Result<usize> {
    Ok(served(handle).await?.sent)
}

/// Serve one answer: `headers` (with the body's length) and `body`; the request's head is
/// returned.
fn one_answer(
    headers: &'static str,
    body: Vec<u8>,
) -> anyhow::Result<(String, std::thread::JoinHandle<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = format!("http://{}", listener.local_addr()?);
    let handle = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return String::new();
        };
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap_or(0);
        let head = format!("{headers}content-length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
        String::from_utf8_lossy(&request[..n]).to_ascii_lowercase()
    });
    Ok((addr, handle))
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_asks_for_gzip_and_bounds_what_it_unpacks() -> anyhow::Result<()> {
    const GZIP: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                        content-encoding: gzip\r\nconnection: close\r\n";
    // A compressed exposition: asked for, unpacked, parsed.
    let text =
        "# TYPE surge_source_up gauge\nsurge_source_up{source=\"kafka\",target=\"local\"} 1\n";
    let (url, server) = one_answer(GZIP, gzip(text.as_bytes())?)?;
    let parsed = Exporter::new(&url, client()?)
        .scrape()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = tokio::task::spawn_blocking(move || server.join().unwrap_or_default()).await?;
    assert!(
        request
            .lines()
            .any(|l| l.starts_with("accept-encoding:") && l.contains("gzip")),
        "{request}"
    );
    assert_eq!(
        parsed.metrics.value(
            "surge_source_up",
            &[("source", "kafka"), ("target", "local")]
        ),
        Some(1.0)
    );

    // 64 MiB of zeros in about 64 KiB: refused for what it unpacks to, not what it announces.
    let bomb = gzip(&vec![b'0'; 64 << 20])?;
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let (url, server) = one_answer(GZIP, bomb)?;
    let error = ask("exporter", &url).await?;
    assert!(
        error.ends_with("answer larger than 32 MiB, refused"),
        "{error}"
    );
    drop(server);
    Ok(())
}
