//! `surge --kube-context NAME`: Prometheus and Alertmanager found in the cluster and reached
//! through the API server's service proxy with the kubeconfig's credentials. The API server
//! is the Kubernetes API stand-in behind TLS (the one stand-in: no cluster runs here); what it
//! proxies to is a real Prometheus with a firing rule and a real Alertmanager. Each kind of
//! credential gets its own cluster: a bearer token (the stand-in refuses requests without
//! it), a client certificate (the TLS front refuses connections without one). A cluster
//! without Prometheus, and a wrong token, are each one clear line.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use surge_servers::tls::LocalCa;
use surge_servers::{Alertmanager, Prometheus, Workdir, free_port};
use surge_testkit::kube_api::{KubeApiStandIn, KubeContext, KubeUser, write_kubeconfig_with};
use surge_testkit::tls_front::TlsFront;

const TOKEN: &str = "kube-context-test-token";

/// `surge` with `args`, the kubeconfig `kubeconfig` and nothing of the developer's (HOME and
/// XDG_CONFIG_HOME are empty folders).
fn surge(kubeconfig: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let binary = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    Ok(Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("NO_COLOR", "1")
        .output()?)
}

fn once(kubeconfig: &Path, home: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut all = vec!["--once", "--wait", "15s", "--size", "160x20"];
    all.extend_from_slice(args);
    let out = surge(kubeconfig, home, &all)?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The row of `context` in the contexts view, as words.
fn row(frame: &str, context: &str) -> Vec<String> {
    frame
        .lines()
        .find(|l| l.starts_with('│') && l.contains(context))
        .map(|l| {
            l.trim_matches('│')
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kube_context_reaches_prometheus_and_alertmanager_through_the_api_proxy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;

    // The real servers behind the proxy: Prometheus firing one page, sent to Alertmanager.
    let alertmanager = Alertmanager::start_in(
        Workdir::temp("surge-kube-am-")?,
        free_port()?,
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )?;
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: ProxiedCheckoutDown\n        expr: vector(1)\n        labels:\n          severity: page\n",
    )?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-kube-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n",
            rules.display(),
            alertmanager.port()
        ),
    )?;

    let ca = LocalCa::new(dir.path(), "kube-ca")?;
    let server_cert = ca.server("apiserver", &["127.0.0.1"])?;
    let client_cert = ca.client("kube-user", "alice")?;

    // Cluster "token": prometheus-operator's services; every request needs the token.
    let token_api = KubeApiStandIn::start()?;
    token_api.require_token(TOKEN);
    token_api.expose_service(
        "monitoring",
        "prometheus-operated",
        &json!({"operated-prometheus": "true"}),
        "web",
        9090,
        &prometheus.url(),
    )?;
    token_api.expose_service(
        "monitoring",
        "alertmanager-operated",
        &json!({"operated-alertmanager": "true"}),
        "web",
        9093,
        &alertmanager.url(),
    )?;
    let token_front = TlsFront::start(token_api.addr(), &server_cert.cert, &server_cert.key, None)?;

    // Cluster "cert": a Helm chart's names, found by label; only clients with a certificate
    // from the CA get a connection.
    let cert_api = KubeApiStandIn::start()?;
    cert_api.expose_service(
        "observability",
        "kube-prometheus-stack-prometheus",
        &json!({"app.kubernetes.io/name": "prometheus"}),
        "http-web",
        9090,
        &prometheus.url(),
    )?;
    cert_api.expose_service(
        "observability",
        "main-alertmanager",
        &json!({"app.kubernetes.io/name": "alertmanager"}),
        "web",
        9093,
        &alertmanager.url(),
    )?;
    let cert_front = TlsFront::start(
        cert_api.addr(),
        &server_cert.cert,
        &server_cert.key,
        Some(&ca.cert()),
    )?;

    // Cluster "empty": an API server with no Prometheus in it.
    let empty_api = KubeApiStandIn::start()?;
    let empty_front = TlsFront::start(empty_api.addr(), &server_cert.cert, &server_cert.key, None)?;

    let url = |front: &TlsFront| format!("https://127.0.0.1:{}", front.port());
    let (token_url, cert_url, empty_url) = (url(&token_front), url(&cert_front), url(&empty_front));
    let ca_file = ca.cert();
    let kubeconfig = dir.path().join("kubeconfig");
    let context = |name, server, user| KubeContext {
        name,
        server,
        ca: Some(&ca_file),
        user,
    };
    write_kubeconfig_with(
        &kubeconfig,
        &[
            context("token", &token_url, KubeUser::Token(TOKEN)),
            context(
                "cert",
                &cert_url,
                KubeUser::ClientCert {
                    cert: &client_cert.cert,
                    key: &client_cert.key,
                },
            ),
            context("empty", &empty_url, KubeUser::Token(TOKEN)),
            context("bad-token", &token_url, KubeUser::Token("not-the-token")),
            context("no-cert", &cert_url, KubeUser::Anonymous),
        ],
        Some("token"),
    )?;

    // Both sources answer through each cluster's proxy and the rule's page shows as firing.
    for cluster in ["token", "cert"] {
        let mut frame = String::new();
        surge_servers::wait_until(
            &format!("{cluster}: both sources and the firing page through the proxy"),
            Duration::from_secs(60),
            Duration::from_secs(1),
            || {
                let (code, out, err) = once(
                    &kubeconfig,
                    &home,
                    &["--kube-context", cluster, "--view", "contexts"],
                )?;
                anyhow::ensure!(code <= 1, "surge exited {code}: {err}");
                frame = out;
                let words = row(&frame, cluster);
                // … NAME SOURCES … FIRING PAGING
                Ok(words.iter().any(|w| w == "2/2")
                    && words.len() >= 2
                    && words[words.len() - 2] == "1"
                    && words[words.len() - 1] == "1")
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}\n{frame}"))?;
    }
    let proxied =
        |api: &KubeApiStandIn, path: &str| api.requests().iter().any(|r| r.path.starts_with(path));
    assert!(proxied(
        &token_api,
        "/api/v1/namespaces/monitoring/services/http:prometheus-operated:web/proxy/api/v1/"
    ));
    assert!(proxied(
        &token_api,
        "/api/v1/namespaces/monitoring/services/http:alertmanager-operated:web/proxy/api/v2/"
    ));
    assert!(proxied(
        &cert_api,
        "/api/v1/namespaces/observability/services/http:kube-prometheus-stack-prometheus:http-web/proxy/api/v1/"
    ));

    // Reading needs only `list` on services and `get` on services/proxy: every request the
    // panel made is a GET of one or the other.
    for api in [&token_api, &cert_api] {
        let requests = api.requests();
        assert!(requests.len() >= 4, "{requests:?}");
        for r in &requests {
            assert!(
                r.method == "GET" && (r.path == "/api/v1/services" || r.path.contains("/proxy/")),
                "{r:?}"
            );
        }
    }

    // As configured: a service named on the command line, not looked for.
    let (code, frame, err) = once(
        &kubeconfig,
        &home,
        &[
            "--kube-context",
            "cert",
            "--kube-prometheus",
            "observability/kube-prometheus-stack-prometheus:9090",
            "--view",
            "contexts",
        ],
    )?;
    assert!(code <= 1, "{err}");
    assert!(row(&frame, "cert").iter().any(|w| w == "2/2"), "{frame}");
    // `:ctx` lists the kubeconfig's other contexts beside the one open.
    assert!(
        frame.contains("kubeconfig also has: token, empty, bad-token, no-cert"),
        "{frame}"
    );
    assert!(proxied(
        &cert_api,
        "/api/v1/namespaces/observability/services/http:kube-prometheus-stack-prometheus:9090/proxy/api/v1/"
    ));

    // One clear line and exit 2 for each way it cannot work.
    for (args, want) in [
        (
            &["--kube-context", "empty"][..],
            "kube context empty: no Prometheus found: no service named prometheus-operated and none labelled app.kubernetes.io/name=prometheus in any namespace (name it with --kube-prometheus NAMESPACE/NAME:PORT)",
        ),
        (
            &["--kube-context", "bad-token"][..],
            "kube context bad-token: listing services: the API server refused the kubeconfig's credentials (401 Unauthorized",
        ),
        (
            &["--kube-context", "no-cert"][..],
            "kube context no-cert: cannot talk to the API server: ",
        ),
        (
            &["--kube-context", "staging"][..],
            "kube context \"staging\" is not in the kubeconfig (its contexts: token, cert, empty, bad-token, no-cert)",
        ),
        (
            &[
                "--kube-context",
                "token",
                "--kube-prometheus",
                "prometheus:9090",
            ][..],
            "\"prometheus:9090\" is not NAMESPACE/NAME:PORT",
        ),
    ] {
        let (code, _, err) = once(&kubeconfig, &home, args)?;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        if args[1] == "no-cert" {
            // The deepest cause is the one that says what to fix.
            assert!(err.contains("CertificateRequired"), "{err}");
        }
    }

    // A first run with nothing configured points at the kubeconfig's current context.
    let (code, _, err) = once(&kubeconfig, &home, &[])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the kubeconfig's current context is token: try --kube-context token"),
        "{err}"
    );
    Ok(())
}
