//! Messages of the order pipeline (JSON on the wire).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub user_id: i64,
    pub total_cents: i64,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub product_id: i64,
    pub sku: String,
    pub quantity: i32,
    pub price_cents: i64,
}

/// What payment decided for an order; orders, which owns the order's status, acts on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PaymentProcessed {
    pub order_id: Uuid,
    pub outcome: PaymentOutcome,
    pub amount_cents: i64,
    /// The provider's reference of a successful charge.
    pub provider_ref: Option<String>,
    /// Why a payment failed.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    Paid,
    Failed,
}

/// A paid order to ship.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShippingRequest {
    pub order_id: Uuid,
    pub user_id: i64,
    pub items: Vec<Item>,
}
