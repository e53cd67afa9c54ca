//! How to reach one source through a real company's front door: a CA file, a client
//! certificate, a bearer token or basic auth (secrets read from files, again on every request
//! so a rotated token is picked up), extra headers (a tenant header for Mimir/Cortex/Thanos),
//! a proxy, and — loudly — skipping verification. Each source gets its own client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

/// Basic auth: a user name and the file holding the password.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

/// One source's TLS, credentials, headers and proxy; the default is plain access.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub headers: BTreeMap<String, String>,
    pub proxy_url: Option<String>,
    /// Reached through this cluster's API server (its service proxy) with the kubeconfig's
    /// credentials, instead of directly.
    pub cluster: Option<super::kube::Cluster>,
}

/// A source to fetch from: where, and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub access: Access,
}

impl Endpoint {
    pub fn plain(url: &str) -> Endpoint {
        Endpoint {
            url: url.to_string(),
            access: Access::default(),
        }
    }
}

fn read_secret(what: &str, path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.is_empty() {
        return Err(format!("{what} {} is empty", path.display()));
    }
    Ok(text)
}

impl Access {
    /// Problems a user should hear about before the first request: the files exist and say
    /// what they should, and the combination makes sense. One line naming the file.
    pub fn check(&self) -> Result<(), String> {
        if self.bearer_token_file.is_some() && self.basic_auth.is_some() {
            return Err("bearer_token_file and basic_auth are both set; choose one".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("cert_file and key_file go together".into());
        }
        if let Some(file) = &self.bearer_token_file {
            read_secret("bearer_token_file", file)?;
        }
        if let Some(auth) = &self.basic_auth {
            read_secret("basic_auth.password_file", &auth.password_file)?;
        }
        self.client(Duration::from_secs(1)).map(drop)
    }

    /// Whether TLS certificates are not checked (the panel says so in its banner).
    pub fn insecure(&self) -> bool {
        self.insecure_skip_verify
    }

    /// The `Authorization` header, read from the files now (they may have been rotated).
    fn authorization(&self) -> Result<Option<HeaderValue>, String> {
        use base64::Engine;
        let value = if let Some(file) = &self.bearer_token_file {
            format!("Bearer {}", read_secret("bearer_token_file", file)?)
        } else if let Some(auth) = &self.basic_auth {
            let password = read_secret("basic_auth.password_file", &auth.password_file)?;
            let pair = format!("{}:{password}", auth.username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        } else {
            return Ok(None);
        };
        let mut header =
            HeaderValue::from_str(&value).map_err(|_| "credentials are not valid in a header")?;
        header.set_sensitive(true);
        Ok(Some(header))
    }

    /// What to check when the source answers 401 or 403.
    pub fn credentials_hint(&self) -> String {
        match (&self.bearer_token_file, &self.basic_auth) {
            (Some(file), _) => format!("check the token in {}", file.display()),
            (None, Some(auth)) => format!(
                "check user {} and the password in {}",
                auth.username,
                auth.password_file.display()
            ),
            (None, None) => "no credentials are configured for this source".into(),
        }
    }

    /// The CA, client certificate and verification settings.
    #[cfg(feature = "tls")]
    fn tls(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("ca_file {}: no certificate in it", ca.display()));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let mut pem =
                std::fs::read(cert).map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| format!("key_file {}: {e}", key.display()))?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("cert_file/key_file: {e}"))?;
            builder = builder.identity(identity);
        }
        if self.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }

    #[cfg(not(feature = "tls"))]
    fn tls(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        if self.ca_file.is_some() || self.cert_file.is_some() || self.insecure_skip_verify {
            return Err("this build of surge has no TLS (feature `tls`)".into());
        }
        Ok(builder)
    }

    /// This source's HTTP client.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // As many idle connections as one refresh has requests in flight (the budget), so
            // the history reload every 15 s reuses connections instead of opening (and, with
            // TLS, handshaking) new ones.
            .pool_max_idle_per_host(super::plan::PROMETHEUS_BUDGET)
            .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")));
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a header name"))?;
            if name == AUTHORIZATION {
                return Err(
                    "headers: set Authorization with bearer_token_file or basic_auth, not as a header"
                        .into(),
                );
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("headers.{name}: not a valid header value"))?;
            headers.insert(name, value);
        }
        builder = builder.default_headers(headers);
        builder = self.tls(builder)?;
        if let Some(proxy) = &self.proxy_url {
            builder = builder.proxy(
                reqwest::Proxy::all(proxy).map_err(|e| format!("proxy_url {proxy:?}: {e}"))?,
            );
        }
        builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }
}

/// A source's client and its credentials: every request to the source goes through here.
#[derive(Debug, Clone)]
pub struct SourceClient {
    http: reqwest::Client,
    access: Access,
}

impl From<reqwest::Client> for SourceClient {
    fn from(http: reqwest::Client) -> SourceClient {
        SourceClient::plain(http)
    }
}

impl SourceClient {
    pub fn new(access: &Access, timeout: Duration) -> Result<SourceClient, String> {
        Ok(SourceClient {
            http: access.client(timeout)?,
            access: access.clone(),
        })
    }

    /// Plain access with `http` (tests, and sources without settings).
    pub fn plain(http: reqwest::Client) -> SourceClient {
        SourceClient {
            http,
            access: Access::default(),
        }
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Send a request made with [`SourceClient::request`]: directly, or through the cluster's
    /// API server (which reads the answer whole, within [`super::MAX_ANSWER_BYTES`]).
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        match &self.access.cluster {
            None => request.send().await.map_err(|e| super::http::describe(&e)),
            Some(cluster) => {
                let request = request.build().map_err(|e| super::http::describe(&e))?;
                cluster.send(request, super::MAX_ANSWER_BYTES).await
            }
        }
    }

    /// A request with the credentials read now; unreadable credentials fail the request
    /// with the file named. Through a cluster, the kubeconfig's credentials apply instead.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let request = self.http.request(method, url);
        if self.access.cluster.is_some() {
            return Ok(request);
        }
        Ok(match self.access.authorization()? {
            Some(header) => request.header(AUTHORIZATION, header),
            None => request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_files_and_are_reread() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let token = dir.path().join("token");
        std::fs::write(&token, "first\n").map_err(|e| e.to_string())?;
        let access = Access {
            bearer_token_file: Some(token.clone()),
            ..Access::default()
        };
        access.check()?;
        let header = |a: &Access| {
            a.authorization()
                .map(|h| h.and_then(|h| h.to_str().ok().map(str::to_string)))
        };
        assert_eq!(header(&access)?.as_deref(), Some("Bearer first"));
        std::fs::write(&token, "second").map_err(|e| e.to_string())?;
        assert_eq!(header(&access)?.as_deref(), Some("Bearer second"));
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").map_err(|e| e.to_string())?;
        let basic = Access {
            basic_auth: Some(BasicAuth {
                username: "ops".into(),
                password_file: password,
            }),
            ..Access::default()
        };
        // base64("ops:s3cret")
        assert_eq!(header(&basic)?.as_deref(), Some("Basic b3BzOnMzY3JldA=="));
        Ok(())
    }

    /// A loopback server that answers one request with 204 and returns its head (lower case).
    fn one_request_server()
    -> Result<(u16, std::thread::JoinHandle<std::io::Result<String>>), String> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let server = std::thread::spawn(move || -> std::io::Result<String> {
            let (mut stream, _) = listener.accept()?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte)? == 1 {
                head.push(byte[0]);
            }
            stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")?;
            Ok(String::from_utf8_lossy(&head).to_lowercase())
        });
        Ok((port, server))
    }

    /// What a request through `client` sends: the raw request head a loopback server saw.
    async fn request_head(client: &SourceClient) -> Result<String, String> {
        let (port, server) = one_request_server()?;
        client
            .request(
                reqwest::Method::GET,
                &format!("http://127.0.0.1:{port}/api"),
            )?
            .send()
            .await
            .map_err(|e| e.to_string())?;
        server
            .join()
            .map_err(|_| "server thread".to_string())?
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn requests_go_through_the_configured_proxy() -> Result<(), String> {
        // The loopback server is the proxy: it is asked for another host's absolute URL.
        let (port, proxy) = one_request_server()?;
        let access = Access {
            proxy_url: Some(format!("http://127.0.0.1:{port}")),
            ..Access::default()
        };
        let client = SourceClient::new(&access, Duration::from_secs(5))?;
        client
            .request(
                reqwest::Method::GET,
                "http://prometheus.invalid:9090/api/v1/query",
            )?
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let head = proxy
            .join()
            .map_err(|_| "proxy thread".to_string())?
            .map_err(|e| e.to_string())?;
        assert!(
            head.starts_with("get http://prometheus.invalid:9090/api/v1/query http/1.1\r\n"),
            "{head}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn requests_carry_the_headers_and_the_current_credentials() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken").map_err(|e| e.to_string())?;
        let access = Access {
            bearer_token_file: Some(token.clone()),
            headers: [("X-Scope-OrgID".to_string(), "shop".to_string())].into(),
            ..Access::default()
        };
        let client = SourceClient::new(&access, Duration::from_secs(5))?;
        let head = request_head(&client).await?;
        assert!(head.contains("x-scope-orgid: shop\r\n"), "{head}");
        assert!(head.contains("authorization: bearer t0ken\r\n"), "{head}");
        std::fs::write(&token, "rotated").map_err(|e| e.to_string())?;
        let head = request_head(&client).await?;
        assert!(head.contains("authorization: bearer rotated\r\n"), "{head}");
        Ok(())
    }

    #[test]
    fn bad_settings_are_one_line_naming_the_file() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").map_err(|e| e.to_string())?;
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").map_err(|e| e.to_string())?;
        let missing = dir.path().join("missing");
        let cases = [
            (
                Access {
                    bearer_token_file: Some(missing.clone()),
                    ..Access::default()
                },
                "bearer_token_file",
            ),
            (
                Access {
                    bearer_token_file: Some(empty.clone()),
                    ..Access::default()
                },
                "is empty",
            ),
            (
                Access {
                    ca_file: Some(not_pem.clone()),
                    ..Access::default()
                },
                "ca_file",
            ),
            (
                Access {
                    cert_file: Some(not_pem.clone()),
                    ..Access::default()
                },
                "cert_file and key_file go together",
            ),
            (
                Access {
                    headers: [("Authorization".to_string(), "x".to_string())].into(),
                    ..Access::default()
                },
                "set Authorization with bearer_token_file or basic_auth",
            ),
            (
                Access {
                    proxy_url: Some("::nonsense".into()),
                    ..Access::default()
                },
                "proxy_url",
            ),
        ];
        for (access, expected) in cases {
            let error = access.check().err().unwrap_or_default();
            assert!(error.contains(expected), "{access:?}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        Ok(())
    }
}
