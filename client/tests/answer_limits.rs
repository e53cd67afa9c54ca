//! Answers from outside are bounded: a 1 GiB answer (announced, or streamed without a length)
//! is refused with one line naming the URL and the limit, and never read into memory whole;
//! a compressed answer is bounded by what it unpacks to.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use surge_client::fetch::direct::Exporter;
use surge_client::fetch::prometheus::Prometheus;

/// Serve one HTTP answer per connection: `headers`, then zeros until 1 GiB or the client leaves.
fn huge_server(headers: &'static str) -> anyhow::Result<(String, std::thread::JoinHandle<u64>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = format!("http://{}", listener.local_addr()?);
    let handle = std::thread::spawn(move || {
        let mut sent = 0u64;
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            if stream.write_all(headers.as_bytes()).is_ok() {
                let chunk = vec![b'0'; 64 * 1024];
                while sent < 1 << 30 && stream.write_all(&chunk).is_ok() {
                    sent += chunk.len() as u64;
                }
            }
        }
        sent
    });
    Ok((addr, handle))
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// What scraping `url` as an exporter failed with ("" if it did not).
async fn scrape_error(url: &str) -> anyhow::Result<String> {
    Ok(Exporter::new(url, client()?)
        .scrape()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_answer_is_refused_not_held() -> anyhow::Result<()> {
    // Announced: refused from its Content-Length, before the body is read.
    let (url, server) = huge_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\nconnection: close\r\n\r\n",
    )?;
    let started = Instant::now();
    let error = Prometheus::new(&url, client()?)
        .instant("up")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        error,
        format!("{url}/api/v1/query: answer larger than 32 MiB, refused")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let sent = tokio::task::spawn_blocking(move || server.join().unwrap_or(0)).await?;
    assert!(sent < 1 << 30, "the whole gigabyte was read ({sent} bytes)");

    // Streamed with no length (until the connection closes): refused once past the limit.
    let (url, server) =
        huge_server("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n")?;
    let error = scrape_error(&url).await?;
    assert!(
        error.ends_with("answer larger than 32 MiB, refused"),
        "{error}"
    );
    let sent = tokio::task::spawn_blocking(move || server.join().unwrap_or(0)).await?;
    assert!(
        sent < 256 << 20,
        "the panel kept reading: {} MiB sent",
        sent >> 20
    );
    Ok(())
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
    let error = scrape_error(&url).await?;
    assert!(
        error.ends_with("answer larger than 32 MiB, refused"),
        "{error}"
    );
    drop(server);
    Ok(())
}
