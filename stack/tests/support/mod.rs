//! What the manifest tests share: the overlays rendered as `kubectl kustomize` renders them,
//! and lookups over the rendered objects.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde_json::Value;
use surge_stack::k8s;

/// The overlays a user applies.
pub const OVERLAYS: [&str; 3] = ["local", "production", "keda"];
/// The Kubernetes version the guide names for deployment (docs/src/deploy.md).
pub const KUBERNETES: &str = "1.33.0";
pub const SHOP_SERVICES: [&str; 5] = ["auth", "catalog", "orders", "payment", "shipping"];

pub fn stack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

pub fn repo() -> PathBuf {
    stack_dir().join("..")
}

pub fn rendered() -> anyhow::Result<Vec<(&'static str, Vec<Value>)>> {
    OVERLAYS
        .iter()
        .map(|o| Ok((*o, k8s::render(&stack_dir().join("k8s/overlays").join(o))?)))
        .collect()
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

pub fn find<'a>(objects: &'a [Value], kind_: &str, name_: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| kind(o) == kind_ && (name(o) == name_ || generated_from(o, name_)))
        .ok_or_else(|| anyhow!("no {kind_} {name_}"))
}

/// A ConfigMap kustomize generated as `base`: its name is `base-` and the content's hash.
pub fn generated_from(object: &Value, base: &str) -> bool {
    kind(object) == "ConfigMap"
        && name(object)
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hash| hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

pub fn of_kind<'a>(objects: &'a [Value], kind_: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| kind(o) == kind_)
}
