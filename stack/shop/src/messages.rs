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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PaymentProcessed {
    pub order_id: Uuid,
    pub provider_ref: String,
    pub amount_cents: i64,
}
