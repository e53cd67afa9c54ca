//! The instances of a CloudNativePG `Cluster`, discovered through the Kubernetes API, each
//! watched as its own target. Through the cluster's `-ro` Service successive readings would
//! come from different standbys, and a lagging one would hide behind a healthy one; by pod,
//! every instance is seen, and a failover or a replaced pod changes the list, not the config.
//!
//! An instance is a pod labelled `cnpg.io/cluster=<cluster>` and `cnpg.io/podRole=instance`
//! (CloudNativePG's own selector for its instances; poolers and jobs carry the cluster's
//! label too). It is reached at its pod IP, on the port its container declares as
//! `postgresql`. CloudNativePG's server certificates name its Services, not pod IPs, so
//! `sslmode=verify-ca` (as CloudNativePG connects between its own instances) is what works.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::check::{ConfigError, Secret};

/// `[[postgres.cloudnative_pg]]` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Section {
    /// The `Cluster`'s name (its pods' `cnpg.io/cluster` label).
    #[schemars(example = &"shop-db")]
    pub(crate) cluster: String,
    /// The namespace it runs in.
    #[schemars(example = &"shop")]
    pub(crate) namespace: String,
    /// Connection URL for every instance; its host and port are replaced by each instance's
    /// pod IP and `postgresql` container port.
    #[schemars(
        example = &"postgres://surge_monitor@instance/app?sslmode=verify-ca&sslrootcert=/var/run/secrets/surge/pg-ca/ca.crt"
    )]
    pub(crate) dsn: String,
    /// Name of an environment variable holding the password.
    #[schemars(example = &"SURGE_PG_PASSWORD")]
    pub(crate) password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[schemars(example = &"/var/run/secrets/surge/pg-password")]
    pub(crate) password_file: Option<PathBuf>,
    /// Kubeconfig file; without it, in-cluster config, then `$KUBECONFIG` / `~/.kube/config`.
    #[schemars(example = &"/etc/surge-exporter/kubeconfig")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the file's current context).
    #[schemars(example = &"prod-eu")]
    pub(crate) context: Option<String>,
}

/// `[[postgres.cloudnative_pg]]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) cluster: String,
    pub(crate) namespace: String,
    pub(crate) options: PgConnectOptions,
    pub(crate) password: Option<Secret>,
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) context: Option<String>,
}

impl Section {
    pub(crate) fn settings(self, i: usize) -> Result<Settings, ConfigError> {
        let at = |f: &str| format!("postgres.cloudnative_pg[{i}].{f}");
        for (field, value) in [("cluster", &self.cluster), ("namespace", &self.namespace)] {
            if !crate::sources::kubernetes::is_dns_label(value) {
                return Err(ConfigError::field(
                    at(field),
                    format!("{value:?} is not a valid Kubernetes name"),
                ));
            }
        }
        if !(self.dsn.starts_with("postgres://") || self.dsn.starts_with("postgresql://")) {
            return Err(ConfigError::field(
                at("dsn"),
                "must be a URL starting with postgres:// or postgresql://",
            ));
        }
        let options = super::parse_dsn(&at("dsn"), &self.dsn)?;
        let password = Secret::from_pair(at, "password", self.password_env, self.password_file)?;
        Ok(Settings {
            cluster: self.cluster,
            namespace: self.namespace,
            options,
            password,
            kubeconfig: self.kubeconfig,
            context: self.context,
        })
    }
}

impl Settings {
    /// The target that reports the discovery itself (down when the API cannot be asked).
    pub(crate) fn discovery_target(&self) -> String {
        format!("cloudnative-pg:{}/{}", self.namespace, self.cluster)
    }

    /// The label selector of the cluster's instances.
    pub(crate) fn selector(&self) -> String {
        format!("cnpg.io/cluster={},cnpg.io/podRole=instance", self.cluster)
    }
}

/// One instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    /// The pod's name: the `target` label.
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

/// The instances among `pods`: those with an IP and not being deleted, by name.
pub(crate) fn instances(pods: &[Pod]) -> Vec<Instance> {
    let mut out: Vec<Instance> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let host = p
                .status
                .as_ref()?
                .pod_ip
                .clone()
                .filter(|ip| !ip.is_empty())?;
            let port = p.spec.as_ref().and_then(|spec| {
                spec.containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|port| port.name.as_deref() == Some("postgresql"))
                    .and_then(|port| u16::try_from(port.container_port).ok())
            });
            Some(Instance { name, host, port })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: Option<&str>, port: Option<i32>, deleting: bool) -> Pod {
        let deleted = deleting.then_some("2026-12-07T00:00:00Z");
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "deletionTimestamp": deleted, "labels": {"cnpg.io/cluster": "db", "cnpg.io/podRole": "instance"}},
            "spec": {"containers": [{"name": "postgres", "ports": port.map(|p| vec![
                serde_json::json!({"name": "metrics", "containerPort": 9187}),
                serde_json::json!({"name": "postgresql", "containerPort": p}),
            ])}]},
            "status": {"podIP": ip},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn instances_are_pods_with_an_ip_not_being_deleted_on_their_postgresql_port() {
        let pods = [
            pod("db-2", Some("10.0.0.2"), Some(5432), false),
            pod("db-1", Some("10.0.0.1"), None, false),
            pod("db-3", None, Some(5432), false),
            pod("db-4", Some("10.0.0.4"), Some(5432), true),
        ];
        assert_eq!(
            instances(&pods),
            [
                Instance {
                    name: "db-1".into(),
                    host: "10.0.0.1".into(),
                    port: None
                },
                Instance {
                    name: "db-2".into(),
                    host: "10.0.0.2".into(),
                    port: Some(5432)
                },
            ]
        );
    }
}
