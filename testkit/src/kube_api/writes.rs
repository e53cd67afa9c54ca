//! The stand-in's writes, with the request shapes the API server takes: reading one object,
//! `PATCH` of an object (JSON merge patch and strategic merge patch — the same thing for the
//! maps these tests patch), the `scale` subresource of Deployments and
//! StatefulSets (`GET`/`PATCH`/`PUT` of an `autoscaling/v1` `Scale`), and the two self
//! reviews a client asks before acting: `SelfSubjectAccessReview` (may I?) answered from a
//! deny list, and `SelfSubjectReview` (who am I?).

use std::collections::BTreeSet;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ApiState, Collection, Event, status};

/// A request refused, as the API server's `Status` answer.
#[derive(Debug)]
pub(super) struct Refusal {
    code: u16,
    reason: &'static str,
    message: String,
}

impl Refusal {
    pub fn into_response(self) -> Response {
        status(self.code, self.reason, &self.message)
    }
}

fn refuse(code: u16, reason: &'static str, message: &str) -> Refusal {
    Refusal {
        code,
        reason,
        message: message.to_owned(),
    }
}

/// A verb an access review asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Patch,
    Update,
}

impl Verb {
    fn parse(text: &str) -> Option<Verb> {
        match text {
            "get" => Some(Verb::Get),
            "patch" => Some(Verb::Patch),
            "update" => Some(Verb::Update),
            _ => None,
        }
    }
}

/// Who the caller is and what it may not do; everything not denied is allowed.
#[derive(Debug, Clone)]
pub(super) struct Access {
    pub username: String,
    /// (verb, group, resource, subresource) refused in every namespace.
    pub denied: BTreeSet<(Verb, String, String, String)>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            username: "tester".into(),
            denied: BTreeSet::new(),
        }
    }
}

/// `/apis/{g}/{v}/namespaces/{ns}/{plural}/{name}[/{subresource}]` (or `/api/v1/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ObjectPath {
    pub collection: Collection,
    pub namespace: String,
    pub name: String,
    pub subresource: Option<String>,
}

impl ObjectPath {
    pub fn parse(path: &str) -> Option<ObjectPath> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, plural, name, subresource) = match rest {
            ["namespaces", ns, plural, name] => (*ns, *plural, *name, None),
            ["namespaces", ns, plural, name, sub] => (*ns, *plural, *name, Some(*sub)),
            _ => return None,
        };
        // `/api/v1/namespaces/ns/services/x/proxy` is the service proxy, handled before.
        Some(ObjectPath {
            collection: (group.into(), version.into(), plural.into()),
            namespace: namespace.into(),
            name: name.into(),
            subresource: subresource.map(str::to_owned),
        })
    }

    fn not_found(&self) -> Refusal {
        refuse(
            404,
            "NotFound",
            &format!(
                "{}.{} \"{}\" not found",
                self.collection.2, self.collection.0, self.name
            ),
        )
    }
}

fn scalable(collection: &Collection) -> bool {
    collection.0 == "apps" && matches!(collection.2.as_str(), "deployments" | "statefulsets")
}

/// The `Scale` of a Deployment or StatefulSet, as the API server derives it.
fn scale_of(object: &Value, target: &ObjectPath) -> Value {
    let selector = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": target.name, "namespace": target.namespace,
            "resourceVersion": object["metadata"]["resourceVersion"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

/// `GET` of one object or its scale.
pub(super) fn read(state: &ApiState, target: &ObjectPath) -> Result<Value, Refusal> {
    let object = state
        .objects
        .get(&target.collection)
        .and_then(|objects| objects.get(&(target.namespace.clone(), target.name.clone())))
        .ok_or_else(|| target.not_found())?;
    match target.subresource.as_deref() {
        None => Ok(object.clone()),
        Some("scale") if scalable(&target.collection) => Ok(scale_of(object, target)),
        Some(other) => Err(refuse(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({other})"),
        )),
    }
}

/// A write: the answer's body and the watch event it causes.
pub(super) fn write(
    state: &mut ApiState,
    method: &Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(Value, Option<Event>), Refusal> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(400, "BadRequest", &format!("the body is not JSON: {e}")))?;
    match (method.as_str(), path.trim_end_matches('/')) {
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
            Ok((review_access(&state.access, parsed)?, None))
        }
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") => Ok((
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": {
                    "username": state.access.username,
                    "groups": ["system:authenticated"],
                }},
            }),
            None,
        )),
        ("PATCH" | "PUT", _) => {
            let target = ObjectPath::parse(path).ok_or_else(|| {
                refuse(405, "MethodNotAllowed", &format!("cannot {method} {path}"))
            })?;
            change(state, &target, method, content_type, parsed)
        }
        _ => Err(refuse(
            405,
            "MethodNotAllowed",
            &format!("the stand-in does not take {method} {path}"),
        )),
    }
}

fn review_access(access: &Access, review: Value) -> Result<Value, Refusal> {
    let attributes = &review["spec"]["resourceAttributes"];
    if !attributes.is_object() {
        return Err(refuse(
            400,
            "BadRequest",
            "spec.resourceAttributes is required",
        ));
    }
    let field = |name: &str| attributes[name].as_str().unwrap_or_default().to_owned();
    let verb = Verb::parse(&field("verb"));
    let denied = verb.is_none_or(|verb| {
        access.denied.contains(&(
            verb,
            field("group"),
            field("resource"),
            field("subresource"),
        ))
    });
    let mut answer = review;
    answer["status"] = if denied {
        json!({"allowed": false, "reason": format!("user {:?} has no role granting it", access.username)})
    } else {
        json!({"allowed": true, "reason": "allowed by the stand-in"})
    };
    Ok(answer)
}

/// `PATCH`/`PUT` of an object or its scale; the stored object changes and watchers hear of it.
fn change(
    state: &mut ApiState,
    target: &ObjectPath,
    method: &Method,
    content_type: &str,
    body: Value,
) -> Result<(Value, Option<Event>), Refusal> {
    let key = (target.namespace.clone(), target.name.clone());
    let current = state
        .objects
        .get(&target.collection)
        .and_then(|objects| objects.get(&key))
        .cloned()
        .ok_or_else(|| target.not_found())?;
    let on_scale = match target.subresource.as_deref() {
        None => false,
        Some("scale") if scalable(&target.collection) => true,
        Some(other) => {
            return Err(refuse(
                404,
                "NotFound",
                &format!("the stand-in has no subresource {other}"),
            ));
        }
    };
    let base = if on_scale {
        scale_of(&current, target)
    } else {
        current.clone()
    };
    let changed = if *method == Method::PUT {
        body
    } else {
        patched(base, content_type, body)?
    };
    let mut updated = if on_scale {
        let replicas = changed["spec"]["replicas"]
            .as_i64()
            .ok_or_else(|| refuse(422, "Invalid", "spec.replicas: Required value"))?;
        if replicas < 0 {
            return Err(refuse(
                422,
                "Invalid",
                "spec.replicas: Invalid value: must be greater than or equal to 0",
            ));
        }
        let mut object = current.clone();
        object["spec"]["replicas"] = json!(replicas);
        object
    } else {
        changed
    };
    state.resource_version += 1;
    let rv = state.resource_version;
    updated["metadata"]["resourceVersion"] = json!(rv.to_string());
    let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
    if updated["spec"] != current["spec"] {
        updated["metadata"]["generation"] = json!(generation + 1);
    }
    state
        .objects
        .entry(target.collection.clone())
        .or_default()
        .insert(key, updated.clone());
    let answer = if on_scale {
        scale_of(&updated, target)
    } else {
        updated.clone()
    };
    let event = Event {
        resource_version: rv,
        collection: target.collection.clone(),
        namespace: target.namespace.clone(),
        kind: "MODIFIED",
        object: updated,
    };
    Ok((answer, Some(event)))
}

/// `base` with a patch applied, by the patch's content type.
fn patched(mut base: Value, content_type: &str, patch: Value) -> Result<Value, Refusal> {
    let kind = content_type.split(';').next().unwrap_or_default().trim();
    match kind {
        // For the maps patched here a strategic merge is a JSON merge; lists would differ.
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            json_patch::merge(&mut base, &patch);
            Ok(base)
        }
        other => Err(refuse(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - the stand-in takes application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
            ),
        )),
    }
}
