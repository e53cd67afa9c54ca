//! Answers from outside are bounded: a 1 GiB answer (announced, or streamed without a length)
//! is refused with one line naming the URL and the limit, and never read into memory whole.

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
    let error = Exporter::new(&url, client()?)
        .scrape()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
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
