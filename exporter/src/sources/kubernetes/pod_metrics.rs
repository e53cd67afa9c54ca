//! `metrics.k8s.io/v1beta1` PodMetrics, which `k8s-openapi` does not ship, and the Go
//! duration strings (`15s`, `1m0.5s`) its `window` field uses.

use std::borrow::Cow;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;

use surge_metrics::quantity::{parse_bytes, parse_cpu_cores, parse_cpu_millis};

#[derive(Debug, Clone, Deserialize)]
pub struct PodMetrics {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub timestamp: Option<String>,
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: std::collections::BTreeMap<String, String>,
}

impl kube::Resource for PodMetrics {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodMetrics".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "metrics.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// One pod's CPU usage as the HPA's metrics client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    /// Sum over containers of each container's usage rounded up to milli-cores.
    pub millis: i64,
    pub cores: f64,
    pub timestamp: jiff::Timestamp,
    pub window: Duration,
}

impl PodMetrics {
    /// The pod's memory working set in bytes, or `None` if a container reports no memory.
    /// Malformed values are errors, never zeros.
    pub fn memory_bytes(&self) -> Result<Option<i64>, String> {
        let name = self.metadata.name.as_deref().unwrap_or("?");
        if self.containers.is_empty() {
            return Ok(None);
        }
        let mut total = 0i64;
        for c in &self.containers {
            let Some(memory) = c.usage.get("memory") else {
                return Ok(None);
            };
            total = total.saturating_add(
                parse_bytes(memory)
                    .map_err(|e| format!("PodMetrics {name} container {}: memory: {e}", c.name))?,
            );
        }
        Ok(Some(total))
    }

    /// The pod's usage, or `None` if a container reports no CPU (the HPA then treats the
    /// pod as missing metrics). Malformed values are errors, never zeros.
    pub fn cpu_usage(&self) -> Result<Option<PodUsage>, String> {
        let name = self.metadata.name.as_deref().unwrap_or("?");
        let timestamp = match &self.timestamp {
            Some(t) => t
                .parse::<jiff::Timestamp>()
                .map_err(|e| format!("PodMetrics {name}: bad timestamp {t:?}: {e}"))?,
            None => return Err(format!("PodMetrics {name}: missing timestamp")),
        };
        let window = match &self.window {
            Some(w) => {
                parse_go_duration(w).map_err(|e| format!("PodMetrics {name}: window: {e}"))?
            }
            None => Duration::ZERO,
        };
        if self.containers.is_empty() {
            return Ok(None);
        }
        let (mut millis, mut cores) = (0i64, 0f64);
        for c in &self.containers {
            let Some(cpu) = c.usage.get("cpu") else {
                return Ok(None);
            };
            millis += parse_cpu_millis(cpu)
                .map_err(|e| format!("PodMetrics {name} container {}: {e}", c.name))?;
            cores += parse_cpu_cores(cpu)
                .map_err(|e| format!("PodMetrics {name} container {}: {e}", c.name))?;
        }
        Ok(Some(PodUsage {
            millis,
            cores,
            timestamp,
            window,
        }))
    }
}

/// Parse Go's `time.Duration` string form (`300ms`, `15s`, `1m0.5s`, `1h2m`).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration {text:?}: missing unit"))?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("invalid duration {text:?}: unknown unit {other:?}")),
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("invalid duration {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Ok(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "15", "15x", "s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_sums_containers_rounding_each_up() {
        let m: PodMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "timestamp": "2026-11-28T06:00:00Z",
            "window": "15.021s",
            "containers": [
                {"name": "app", "usage": {"cpu": "123456789n", "memory": "10Mi"}},
                {"name": "sidecar", "usage": {"cpu": "1500u", "memory": "1Mi"}}
            ]
        }))
        .expect("json");
        let u = m.cpu_usage().expect("valid").expect("has cpu");
        assert_eq!(u.millis, 124 + 2);
        assert!((u.cores - 0.124_956_789).abs() < 1e-12);
    }
}
