//! The bundled shop: five stateless services that scale out behind a load balancer.
//!
//! Every service is one process (`shop <service>`), configured from the environment,
//! exposing `/metrics`, `/healthz` and `/readyz`, and stopping gracefully on SIGTERM. Shared
//! pieces live here: configuration, the read/write split, tokens, Kafka helpers, metrics.

pub mod cart;
pub mod config;
pub mod consumer;
pub mod data;
pub mod http;
pub mod kafka;
pub mod messages;
pub mod metrics;
pub mod outbox;
pub mod primary;
pub mod provider;
pub mod redis_link;
pub mod services;
pub mod tokens;

/// Topics of the order pipeline: orders → `order-placed` → payment → `payment-processed` →
/// orders → `shipping-request` → shipping; each consumed topic has its dead-letter topic.
pub mod topics {
    pub const ORDER_PLACED: &str = "order-placed";
    pub const PAYMENT_PROCESSED: &str = "payment-processed";
    pub const SHIPPING_REQUEST: &str = "shipping-request";
    pub const ORDER_PLACED_DLQ: &str = "order-placed.dlq";
    pub const PAYMENT_PROCESSED_DLQ: &str = "payment-processed.dlq";
    pub const SHIPPING_REQUEST_DLQ: &str = "shipping-request.dlq";
    pub const ALL: [&str; 6] = [
        ORDER_PLACED,
        PAYMENT_PROCESSED,
        SHIPPING_REQUEST,
        ORDER_PLACED_DLQ,
        PAYMENT_PROCESSED_DLQ,
        SHIPPING_REQUEST_DLQ,
    ];
}
