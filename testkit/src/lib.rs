//! Surge's test kit (dev-only): stand-ins for what cannot run here (the Kubernetes API,
//! PagerDuty), the panel's pseudo-terminal (tmux), Prometheus' linters, clients for the
//! broker, the shop and Prometheus, a broker made to look older, and surge-exporter
//! in-process. The real servers
//! themselves come from `surge-servers`.

pub mod broker_cluster;
pub mod exporter;
pub mod fixtures;
pub mod fleet;
pub mod grafana;
pub mod http;
pub mod kafka;
pub mod kube_api;
pub mod older_broker;
pub mod pagerduty;
pub mod procstat;
pub mod prom;
pub mod promtool;
pub mod proxy;
mod serve;
pub mod shop;
pub mod tls_front;
pub mod tmux;
