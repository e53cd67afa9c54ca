//! An instant query answered again with the same series and values (Prometheus has not
//! scraped since) gives the same metrics without parsing again; a changed value is seen at
//! once, and so is a query that fails after a good answer.

use std::io::{Read, Write};
use std::net::TcpListener;

use surge_client::fetch::Prometheus;

/// Answer one request per connection with each of `answers` in turn (`None`: a 503).
fn server(answers: Vec<Option<String>>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let (status, body) = match answer {
                Some(body) => ("200 OK", body),
                None => (
                    "503 Service Unavailable",
                    r#"{"status":"error","errorType":"unavailable","error":"shutting down"}"#
                        .to_string(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(addr)
}

fn answer(time: f64, value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"surge_hpa_current_replicas","workload":"orders"}},"value":[{time},"{value}"]}}]}}}}"#
    )
}

#[tokio::test]
async fn a_repeated_answer_is_reused_and_a_changed_one_is_read() -> anyhow::Result<()> {
    let url = server(vec![
        Some(answer(1700000000.0, "2")),
        Some(answer(1700000001.0, "2")),
        Some(answer(1700000002.0, "3")),
        None,
    ])?;
    let prometheus = Prometheus::new(&url, reqwest::Client::new());
    let replicas = |m: &surge_client::model::Metrics| {
        m.value("surge_hpa_current_replicas", &[("workload", "orders")])
    };
    let first = prometheus.instant("surge_hpa_current_replicas").await?;
    let again = prometheus.instant("surge_hpa_current_replicas").await?;
    assert_eq!((replicas(&first), replicas(&again)), (Some(2.0), Some(2.0)));
    assert_eq!(first, again);
    let changed = prometheus.instant("surge_hpa_current_replicas").await?;
    assert_eq!(replicas(&changed), Some(3.0));
    let failed = prometheus.instant("surge_hpa_current_replicas").await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("shutting down")),
        "{failed:?}"
    );
    Ok(())
}
