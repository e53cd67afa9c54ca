//! Shared helpers for the exporter's real-server tests: drive sources through the same
//! scheduler and store the binary uses, then look series up.

#![allow(dead_code)]

use std::sync::Arc;

use surge_exporter::config::Config;
use surge_exporter::schedule::collect_cycle;
use surge_exporter::source::{Sample, Source};
use surge_exporter::store::Store;

pub struct Exporter {
    pub sources: Vec<Arc<dyn Source>>,
    pub store: Arc<Store>,
}

impl Exporter {
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config = Config::parse(text)?;
        let sources = surge_exporter::sources::build(&config)?;
        Ok(Exporter {
            sources,
            store: Store::new(),
        })
    }

    pub async fn start(&self) {
        for source in &self.sources {
            source.start().await;
        }
    }

    /// One cycle of every source; true if every target succeeded.
    pub async fn cycle(&self) -> bool {
        let mut ok = true;
        for source in &self.sources {
            ok &= collect_cycle(source.as_ref(), &self.store).await;
        }
        ok
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.store
            .snapshot()
            .into_iter()
            .flat_map(|(_, state)| state.samples.as_ref().clone())
            .collect()
    }

    /// Value of the one series of `family` whose labels include all of `labels`.
    pub fn value(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples()
            .into_iter()
            .filter(|s| s.family.name == family)
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .collect();
        assert!(matching.len() <= 1, "{family} {labels:?} matched {} series", matching.len());
        matching.first().copied()
    }

    pub fn up(&self, source: &str, target: &str) -> Option<bool> {
        self.store.is_up(source, target)
    }

    pub fn last_error(&self, source: &str, target: &str) -> Option<String> {
        self.store
            .snapshot()
            .into_iter()
            .find(|((s, t), _)| s == source && t == target)
            .and_then(|(_, state)| state.last_error)
    }

    pub fn text(&self) -> String {
        self.store.encode_prometheus_text().unwrap_or_default()
    }
}

/// Minimal HTTP/1.1 GET over loopback (tests only): returns (status, content-type, body).
pub fn http_get(addr: &str, path: &str, accept: Option<&str>) -> anyhow::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no header end"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status"))?
        .parse()?;
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    Ok((status, content_type, body))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or_else(|| anyhow::anyhow!("bad chunk"))?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or_else(|| anyhow::anyhow!("short chunk"))?);
        body = rest.get(size + 2..).ok_or_else(|| anyhow::anyhow!("short chunk"))?;
    }
}
