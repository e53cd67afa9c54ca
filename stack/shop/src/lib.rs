//! The bundled shop: five stateless services that scale out behind a load balancer.
//!
//! Every service is one process (`shop <service>`), configured from the environment,
//! exposing `/metrics`, `/healthz` and `/readyz`, and stopping gracefully on SIGTERM. Shared
//! pieces live here: configuration, the read/write split, tokens, Kafka helpers, metrics.

pub mod config;
pub mod consumer;
pub mod data;
pub mod http;
pub mod kafka;
pub mod messages;
pub mod metrics;
pub mod outbox;
pub mod provider;
pub mod services;
pub mod tokens;

/// Topics of the order pipeline.
pub mod topics {
    pub const ORDER_PLACED: &str = "order-placed";
    pub const PAYMENT_PROCESSED: &str = "payment-processed";
    pub const ORDER_PLACED_DLQ: &str = "order-placed.dlq";
    pub const PAYMENT_PROCESSED_DLQ: &str = "payment-processed.dlq";
    pub const ALL: [&str; 4] = [
        ORDER_PLACED,
        PAYMENT_PROCESSED,
        ORDER_PLACED_DLQ,
        PAYMENT_PROCESSED_DLQ,
    ];
}
