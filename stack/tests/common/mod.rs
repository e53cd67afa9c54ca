//! A stack in a temporary directory, and a small client for the shop's API.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use surge_stack::{Stack, StackOptions};

pub struct Fixture {
    pub stack: Stack,
    // Declared last: removed after the stack stopped.
    _dir: tempfile::TempDir,
}

/// A stack without monitoring or autoscaling unless `tweak` turns them on.
pub fn stack(tweak: impl FnOnce(&mut StackOptions)) -> anyhow::Result<Fixture> {
    let dir = tempfile::Builder::new().prefix("surge-stack-").tempdir()?;
    let mut options = StackOptions::for_checkout(dir.path())?;
    options.monitoring = false;
    options.autoscale = None;
    options.payment_failure_rate = 0.0;
    tweak(&mut options);
    Ok(Fixture {
        stack: Stack::start(options)?,
        _dir: dir,
    })
}

#[derive(Clone)]
pub struct Shop {
    pub base: String,
    pub http: reqwest::blocking::Client,
}

impl Shop {
    pub fn new(stack: &Stack) -> anyhow::Result<Shop> {
        Ok(Shop {
            base: format!("http://{}", stack.api()),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text()?;
        Ok((
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Register and log in; returns the token.
    pub fn user(&self, email: &str) -> anyhow::Result<String> {
        let credentials = json!({ "email": email, "password": "correct horse battery" });
        let (status, body) = self.post("/auth/register", None, &credentials)?;
        anyhow::ensure!(status == 201, "register: {status} {body}");
        let (status, body) = self.post("/auth/login", None, &credentials)?;
        anyhow::ensure!(status == 200, "login: {status} {body}");
        Ok(body["token"].as_str().context("no token")?.to_string())
    }

    /// Place an order; returns (status, order id).
    pub fn order(&self, token: &str, items: &[(i64, i32)]) -> anyhow::Result<(u16, Value)> {
        let items: Vec<Value> = items
            .iter()
            .map(|(p, q)| json!({ "product_id": p, "quantity": q }))
            .collect();
        self.post("/orders", Some(token), &json!({ "items": items }))
    }

    /// Wait until the order reaches `status`.
    pub fn wait_status(
        &self,
        token: &str,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        surge_harness::wait_until(
            &format!("order {id} {status}"),
            timeout,
            Duration::from_millis(200),
            || {
                let (code, _, body) = self.get(&format!("/orders/{id}"), Some(token))?;
                last = body.clone();
                Ok(code == 200 && body["status"] == status)
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}; last: {last}"))?;
        Ok(last)
    }
}
