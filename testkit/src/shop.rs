//! A small blocking client for the shop's API, as a shopper uses it: register, log in, order,
//! follow an order.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Shop {
    pub base: String,
    pub http: reqwest::blocking::Client,
}

impl Shop {
    /// A client of the shop behind `api` (`host:port` of its load balancer).
    pub fn new(api: &str) -> anyhow::Result<Shop> {
        Ok(Shop {
            base: format!("http://{api}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                // A fresh connection per request: the local stack reloads nginx when it
                // scales, and nginx then closes idle keep-alive connections, racing a
                // request sent on one ("connection closed before message completed").
                .pool_max_idle_per_host(0)
                .build()?,
        })
    }

    /// Send `request` (with the token, if any): (status, headers, body as JSON or as text).
    fn send(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
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

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let (status, _, body) = self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            token,
        )?;
        Ok((status, body))
    }

    pub fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)), token)
    }

    /// A cart call: `method` on `path` with `body`; (status, the replica nginx sent it to, body).
    pub fn cart_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Option<String>, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, headers, body) = self.send(request, Some(token))?;
        let upstream = headers
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((status, upstream, body))
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

    /// The id of the catalog product with `sku`.
    pub fn product_id(&self, sku: &str) -> anyhow::Result<i64> {
        let (status, _, body) = self.get("/products?limit=100", None)?;
        anyhow::ensure!(status == 200, "products: {status} {body}");
        body["products"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["sku"] == sku))
            .and_then(|p| p["id"].as_i64())
            .with_context(|| format!("no product {sku}"))
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
        surge_servers::wait_until(
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
