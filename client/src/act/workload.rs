//! The Kubernetes actions, through the kubeconfig context's own credentials: an HPA's bounds
//! (merge patch of `spec.minReplicas`/`spec.maxReplicas`), a workload's replicas (the `scale`
//! subresource), a rollout restart (a strategic merge patch of the pod template's
//! `kubectl.kubernetes.io/restartedAt`, as `kubectl rollout restart` writes it). Each asks a
//! `SelfSubjectAccessReview` for the exact verb and resource before anything is written.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Action, Applied, Change, Missing, Plan, WorkloadKind};
use crate::fetch::kube::Cluster;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The field manager the API server records for Surge's writes.
const FIELD_MANAGER: &str = "surge";

/// Acts on one cluster's workloads.
#[derive(Debug, Clone)]
pub struct Workloads {
    cluster: Cluster,
}

impl Workloads {
    pub fn new(cluster: Cluster) -> Workloads {
        Workloads { cluster }
    }

    /// Who acts: the user name the API server knows the credentials by (a
    /// `SelfSubjectReview`), else the kubeconfig's user for the context.
    pub async fn who(&self) -> Option<String> {
        let api: Api<SelfSubjectReview> = Api::all(self.client());
        let review = SelfSubjectReview::default();
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .filter(|u| !u.is_empty())
                .or_else(|| self.cluster.user().map(str::to_owned)),
            Err(_) => self.cluster.user().map(str::to_owned),
        }
    }

    /// The kubeconfig context acted through.
    pub fn context(&self) -> &str {
        self.cluster.context()
    }

    fn client(&self) -> kube::Client {
        self.cluster.client().clone()
    }

    /// What `action` would change, read from the cluster now (`now`, RFC 3339, is what a
    /// restart writes), with the permissions it needs checked.
    pub async fn plan(&self, action: &Action, now: &str) -> Result<Plan, String> {
        match action {
            Action::HpaBounds {
                namespace,
                name,
                min,
                max,
            } => self.plan_bounds(action, namespace, name, *min, *max).await,
            Action::Scale {
                namespace,
                kind,
                name,
                replicas,
            } => {
                self.plan_scale(action, namespace, *kind, name, *replicas)
                    .await
            }
            Action::Restart {
                namespace,
                kind,
                name,
            } => self.plan_restart(action, namespace, *kind, name, now).await,
            Action::Redrive { .. } => Err("a redrive acts on the broker, not the cluster".into()),
        }
    }

    async fn plan_bounds(
        &self,
        action: &Action,
        namespace: &str,
        name: &str,
        min: Option<i32>,
        max: Option<i32>,
    ) -> Result<Plan, String> {
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client(), namespace);
        let hpa = api
            .get(name)
            .await
            .map_err(|e| failed(&action.target(), "reading", &e))?;
        let spec = hpa.spec.unwrap_or_default();
        let (min_before, max_before) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
        let (min_after, max_after) = (min.unwrap_or(min_before), max.unwrap_or(max_before));
        bounds_valid(min_after, max_after)?;
        let current = hpa
            .status
            .and_then(|s| s.current_replicas)
            .unwrap_or_default();
        let mut notes = Vec::new();
        if max_after < current {
            notes.push(format!(
                "{current} replicas run now: the HPA will remove {} of them",
                current - max_after
            ));
        }
        if min_after > current {
            notes.push(format!(
                "{current} replicas run now: the HPA will add {} at once",
                min_after - current
            ));
        }
        let missing = self
            .may(
                "patch",
                "autoscaling",
                "horizontalpodautoscalers",
                "",
                namespace,
                name,
            )
            .await?;
        Ok(Plan {
            action: action.clone(),
            changes: vec![
                Change::new("minReplicas", min_before, min_after),
                Change::new("maxReplicas", max_before, max_after),
            ],
            destructive: max_after < current,
            missing: missing.into_iter().collect(),
            notes,
            undo: format!("set the bounds back to {min_before}–{max_before}"),
        })
    }

    async fn plan_scale(
        &self,
        action: &Action,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
        replicas: i32,
    ) -> Result<Plan, String> {
        if replicas < 0 {
            return Err(format!("replicas must be 0 or more, not {replicas}"));
        }
        let target = action.target();
        let before = match kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client(), namespace);
                api.get_scale(name).await
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client(), namespace);
                api.get_scale(name).await
            }
        }
        .map_err(|e| failed(&target, "reading the scale of", &e))?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(1);
        // An HPA would undo the change at its next sync: say so instead of pretending.
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client(), namespace);
        let listed = hpas
            .list(&ListParams::default())
            .await
            .map_err(|e| failed(&format!("namespace {namespace}"), "listing HPAs in", &e))?;
        if let Some(hpa) = listed.items.iter().find(|h| {
            h.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.name == name
                    && s.scale_target_ref
                        .kind
                        .eq_ignore_ascii_case(kind.singular())
            })
        }) {
            return Err(format!(
                "{target} is scaled by horizontalpodautoscaler {namespace}/{}: set its bounds instead",
                hpa.metadata.name.as_deref().unwrap_or_default()
            ));
        }
        let missing = self
            .may("patch", "apps", kind.resource(), "scale", namespace, name)
            .await?;
        Ok(Plan {
            action: action.clone(),
            changes: vec![Change::new("replicas", before, replicas)],
            destructive: replicas < before,
            missing: missing.into_iter().collect(),
            notes: Vec::new(),
            undo: format!("scale it back to {before}"),
        })
    }

    async fn plan_restart(
        &self,
        action: &Action,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
        now: &str,
    ) -> Result<Plan, String> {
        let target = action.target();
        let template = match kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client(), namespace);
                api.get(name).await.map(|d| d.spec.map(|s| s.template))
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client(), namespace);
                api.get(name).await.map(|s| s.spec.map(|s| s.template))
            }
        }
        .map_err(|e| failed(&target, "reading", &e))?;
        let before = template
            .and_then(|t| t.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(RESTARTED_AT).cloned())
            .unwrap_or_else(|| "(never restarted)".into());
        let missing = self
            .may("patch", "apps", kind.resource(), "", namespace, name)
            .await?;
        Ok(Plan {
            action: action.clone(),
            changes: vec![Change::new(
                &format!("template annotation {RESTARTED_AT}"),
                before,
                now,
            )],
            destructive: true,
            missing: missing.into_iter().collect(),
            notes: vec![format!(
                "every pod of {target} is replaced, as its rollout strategy allows"
            )],
            undo: "none: replaced pods stay replaced".into(),
        })
    }

    /// Make the change `plan` describes, if the target still is as planned; what it became.
    pub async fn apply(&self, plan: &Plan, now: &str) -> Result<Applied, String> {
        if let Some(missing) = plan.missing.first() {
            return Err(missing.to_string());
        }
        let fresh = self.plan(&plan.action, now).await?;
        let moved: Vec<String> = plan
            .changes
            .iter()
            .zip(&fresh.changes)
            .filter(|(planned, now)| planned.before != now.before)
            .map(|(planned, now)| {
                format!(
                    "{} is {} now, not {}",
                    now.field, now.before, planned.before
                )
            })
            .collect();
        if !moved.is_empty() {
            return Err(format!(
                "{} changed since the plan ({}): nothing done, look again",
                plan.action.target(),
                moved.join(", ")
            ));
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let target = plan.action.target();
        let changes = match &plan.action {
            Action::HpaBounds {
                namespace, name, ..
            } => {
                let after = |field: &str| {
                    plan.changes
                        .iter()
                        .find(|c| c.field == field)
                        .and_then(|c| c.after.parse::<i32>().ok())
                };
                let patch = json!({"spec": {"minReplicas": after("minReplicas"), "maxReplicas": after("maxReplicas")}});
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client(), namespace);
                let hpa = api
                    .patch(name, &params, &Patch::Merge(&patch))
                    .await
                    .map_err(|e| failed(&target, "patching", &e))?;
                let spec = hpa.spec.unwrap_or_default();
                vec![
                    Change::new(
                        "minReplicas",
                        &plan.changes[0].before,
                        spec.min_replicas.unwrap_or(1),
                    ),
                    Change::new("maxReplicas", &plan.changes[1].before, spec.max_replicas),
                ]
            }
            Action::Scale {
                namespace,
                kind,
                name,
                replicas,
            } => {
                let patch = json!({"spec": {"replicas": replicas}});
                let scale = match kind {
                    WorkloadKind::Deployment => {
                        let api: Api<Deployment> = Api::namespaced(self.client(), namespace);
                        api.patch_scale(name, &params, &Patch::Merge(&patch)).await
                    }
                    WorkloadKind::StatefulSet => {
                        let api: Api<StatefulSet> = Api::namespaced(self.client(), namespace);
                        api.patch_scale(name, &params, &Patch::Merge(&patch)).await
                    }
                }
                .map_err(|e| failed(&target, "scaling", &e))?;
                let after = scale.spec.and_then(|s| s.replicas).unwrap_or_default();
                vec![Change::new("replicas", &plan.changes[0].before, after)]
            }
            Action::Restart {
                namespace,
                kind,
                name,
            } => {
                let stamp = &plan.changes[0].after;
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
                let template = match kind {
                    WorkloadKind::Deployment => {
                        let api: Api<Deployment> = Api::namespaced(self.client(), namespace);
                        api.patch(name, &params, &Patch::Strategic(&patch))
                            .await
                            .map(|d| d.spec.map(|s| s.template))
                    }
                    WorkloadKind::StatefulSet => {
                        let api: Api<StatefulSet> = Api::namespaced(self.client(), namespace);
                        api.patch(name, &params, &Patch::Strategic(&patch))
                            .await
                            .map(|s| s.spec.map(|s| s.template))
                    }
                }
                .map_err(|e| failed(&target, "restarting", &e))?;
                let after = template
                    .and_then(|t| t.metadata)
                    .and_then(|m| m.annotations)
                    .and_then(|a| a.get(RESTARTED_AT).cloned())
                    .unwrap_or_default();
                vec![Change::new(
                    &plan.changes[0].field,
                    &plan.changes[0].before,
                    after,
                )]
            }
            Action::Redrive { .. } => {
                return Err("a redrive acts on the broker, not the cluster".into());
            }
        };
        Ok(Applied {
            action: plan.action.clone(),
            changes,
        })
    }

    /// `None` when the caller may `verb` the resource; what is missing otherwise.
    async fn may(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Missing>, String> {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    subresource: (!subresource.is_empty()).then(|| subresource.into()),
                    namespace: Some(namespace.into()),
                    name: Some(name.into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let resource_name = {
            let dotted = if group.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}.{group}")
            };
            if subresource.is_empty() {
                dotted
            } else {
                format!("{dotted}/{subresource}")
            }
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                failed(
                    &format!("{verb} {resource_name}"),
                    "checking permission to",
                    &e,
                )
            })?;
        let status = answer.status.unwrap_or_default();
        Ok((!status.allowed).then(|| Missing {
            verb: verb.into(),
            resource: resource_name,
            namespace: namespace.into(),
            reason: status.reason.unwrap_or_default(),
        }))
    }
}

/// Bounds the API server would take (minReplicas below 1 needs a feature gate most clusters
/// lack).
fn bounds_valid(min: i32, max: i32) -> Result<(), String> {
    if min < 1 {
        return Err(format!("minReplicas must be 1 or more, not {min}"));
    }
    if max < min {
        return Err(format!(
            "maxReplicas ({max}) must not be below minReplicas ({min})"
        ));
    }
    Ok(())
}

/// One line for a failed call: what was being done to what, and the API server's answer.
fn failed(target: &str, doing: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!(
            "{doing} {target}: {} {}: {}",
            status.code,
            status.reason,
            crate::fetch::one_line(&status.message)
        ),
        other => format!(
            "{doing} {target}: {}",
            crate::fetch::one_line(&other.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_refused_as_the_api_server_would() {
        assert!(bounds_valid(1, 1).is_ok());
        assert!(bounds_valid(2, 16).is_ok());
        let e = bounds_valid(0, 4).expect_err("min 0");
        assert!(e.contains("minReplicas must be 1 or more"), "{e}");
        let e = bounds_valid(5, 4).expect_err("max below min");
        assert!(e.contains("must not be below minReplicas (5)"), "{e}");
    }
}
