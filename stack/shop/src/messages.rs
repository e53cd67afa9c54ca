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

/// `order-placed` in its second format: the order inside a versioned envelope. A producer
/// that writes it before its consumers read it is the classic poison incident (the drills
/// run it); `SHOP_ORDER_PLACED_FORMAT=2` makes orders write it, `SHOP_ACCEPT_ORDER_PLACED_V2`
/// makes payment read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderPlacedV2 {
    pub version: u32,
    pub order: OrderPlaced,
}

impl OrderPlaced {
    /// Read `order-placed`: the first format always, the second when `accept_v2`.
    pub fn decode(payload: &[u8], accept_v2: bool) -> Result<OrderPlaced, serde_json::Error> {
        match serde_json::from_slice::<OrderPlaced>(payload) {
            Ok(order) => Ok(order),
            Err(first) if accept_v2 => serde_json::from_slice::<OrderPlacedV2>(payload)
                .map(|v2| v2.order)
                .map_err(|_| first),
            Err(first) => Err(first),
        }
    }
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

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn the_second_format_is_read_only_once_accepted() {
        let order = OrderPlaced {
            order_id: Uuid::nil(),
            user_id: 7,
            total_cents: 4200,
            items: Vec::new(),
        };
        let v1 = serde_json::to_vec(&order).expect("json");
        let v2 = serde_json::to_vec(&OrderPlacedV2 {
            version: 2,
            order: order.clone(),
        })
        .expect("json");
        assert_eq!(OrderPlaced::decode(&v1, false).expect("v1"), order);
        assert_eq!(OrderPlaced::decode(&v1, true).expect("v1"), order);
        let refused = OrderPlaced::decode(&v2, false).expect_err("v2 before the fix");
        assert!(
            refused.to_string().contains("missing field `order_id`"),
            "{refused}"
        );
        assert_eq!(OrderPlaced::decode(&v2, true).expect("v2 after"), order);
    }
}
