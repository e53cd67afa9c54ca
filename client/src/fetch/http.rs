//! The HTTP side every fetcher shares: the client, GETs whose errors are one line naming the
//! URL, and the API's own error text when it has one.

use std::fmt;
use std::time::Duration;

use super::access::SourceClient;

/// A failed request, said in one line with the URL it concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError {
    pub url: String,
    pub reason: String,
}

impl FetchError {
    pub fn new(url: &str, reason: String) -> Self {
        FetchError {
            url: url.to_string(),
            reason: one_line(&reason),
        }
    }
}

/// Text from outside (an answer, a parser's message quoting it) as one short line: control
/// characters and runs of whitespace become one space, at most 200 characters.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

impl std::error::Error for FetchError {}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

/// What a TLS failure means, from the root cause rustls gives, in the user's terms.
fn tls_meaning(root: &str) -> Option<&'static str> {
    let table: [(&str, &str); 6] = [
        (
            "UnknownIssuer",
            "TLS: the server's certificate is not signed by a CA this source trusts (set ca_file)",
        ),
        ("expired", "TLS: the server's certificate has expired"),
        (
            "NotValidYet",
            "TLS: the server's certificate is not valid yet",
        ),
        (
            "not valid for name",
            "TLS: the server's certificate is not for this host name",
        ),
        (
            "NotValidForName",
            "TLS: the server's certificate is not for this host name",
        ),
        (
            "CertificateRequired",
            "TLS: the server wants a client certificate (set cert_file and key_file)",
        ),
    ];
    table
        .iter()
        .find(|(needle, _)| root.contains(needle))
        .map(|(_, meaning)| *meaning)
}

/// A non-success status in words; 401/403 say which credentials to check.
pub fn status_reason(status: reqwest::StatusCode, client: &SourceClient) -> String {
    match status.as_u16() {
        401 => format!(
            "unauthorized (HTTP 401): {}",
            client.access().credentials_hint()
        ),
        403 => format!(
            "forbidden (HTTP 403): {}",
            client.access().credentials_hint()
        ),
        code => format!("HTTP {code}"),
    }
}

/// A reqwest error as one short line (its Display nests the cause chain otherwise).
pub fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_decode() {
        "bad body"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = error;
    while let Some(next) = root.source() {
        root = next;
    }
    let root = root.to_string();
    match tls_meaning(&root) {
        Some(meaning) => format!("{meaning} ({root})"),
        None => format!("{kind} ({root})"),
    }
}

/// Most bytes one answer may have. The panel's queries answer in kilobytes and an exporter's
/// `/metrics` in megabytes; a larger answer is refused rather than held in memory.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A response's body, refused past [`MAX_ANSWER_BYTES`]: by its Content-Length before reading,
/// or as soon as a streamed body passes it.
pub async fn read_body(
    url: &str,
    mut response: reqwest::Response,
) -> Result<bytes::Bytes, FetchError> {
    let too_large = || {
        FetchError::new(
            url,
            format!(
                "answer larger than {} MiB, refused",
                MAX_ANSWER_BYTES / (1024 * 1024)
            ),
        )
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::new(url, describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A response's body as text (UTF-8, as Prometheus, Alertmanager and exporters send), capped
/// like [`read_body`].
pub async fn read_text(url: &str, response: reqwest::Response) -> Result<String, FetchError> {
    let body = read_body(url, response).await?;
    String::from_utf8(body.to_vec()).map_err(|_| FetchError::new(url, "answer is not UTF-8".into()))
}

/// Parameters past this many bytes go in a form body (POST) rather than the URL: servers and
/// proxies refuse longer request lines (nginx's default buffer is 8 KiB; the HTTP client's
/// limit is 64 KiB), and the queries over other exporters' series run to tens of kilobytes.
pub const LONGEST_QUERY_STRING: usize = 4096;

/// GET a document's bytes (POST with a form when the parameters are long: the Prometheus
/// query API takes both); HTTP errors carry the API's own error text when it has one.
pub async fn get_body(
    http: &SourceClient,
    url: &str,
    params: &[(&str, String)],
) -> Result<bytes::Bytes, FetchError> {
    let long = params
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>()
        > LONGEST_QUERY_STRING;
    let request = if long {
        http.request(reqwest::Method::POST, url)
            .map_err(|e| FetchError::new(url, e))?
            .form(params)
    } else {
        http.request(reqwest::Method::GET, url)
            .map_err(|e| FetchError::new(url, e))?
            .query(params)
    };
    let response = http
        .send(request)
        .await
        .map_err(|e| FetchError::new(url, e))?;
    let status = response.status();
    let body = read_body(url, response).await?;
    if status.is_success() {
        return Ok(body);
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        error: String,
    }
    let said = serde_json::from_slice::<ApiError>(&body)
        .map(|e| e.error)
        .unwrap_or_default();
    Err(FetchError::new(
        url,
        format!("{} {said}", status_reason(status, http))
            .trim_end()
            .to_string(),
    ))
}

/// A plain client: what a source without TLS settings or credentials gets.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    super::access::Access::default().client(timeout)
}
