//! shipping: consumes `shipping-request`, creates the shipment and marks the order shipped,
//! in one transaction; idempotent on the order id. A request for an order that does not
//! exist (or a malformed one) goes to `shipping-request.dlq`.

use std::sync::Arc;

use axum::Router;
use sqlx::postgres::PgPool;

use crate::config::Config;
use crate::consumer::{Consumed, Failure, Outcome};
use crate::messages::ShippingRequest;
use crate::metrics::Metrics;
use crate::topics::{SHIPPING_REQUEST, SHIPPING_REQUEST_DLQ};

/// SQLSTATE of a foreign-key violation: the order does not exist, and retrying cannot fix it.
const FOREIGN_KEY_VIOLATION: &str = "23503";

struct Shipping {
    db: PgPool,
}

impl Shipping {
    async fn handle(&self, message: Consumed) -> Result<Outcome, Failure> {
        let request: ShippingRequest = serde_json::from_slice(&message.payload)
            .map_err(|e| Failure::Poison(format!("malformed shipping-request message: {e}")))?;
        let mut tx = self.db.begin().await?;
        let tracking = format!("TRK-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let inserted = sqlx::query(
            "INSERT INTO shipments (order_id, tracking) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(request.order_id)
        .bind(&tracking)
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(r) => r.rows_affected() == 1,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(FOREIGN_KEY_VIOLATION) => {
                return Err(Failure::Poison("unknown order".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if !inserted {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        sqlx::query(
            "UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = $1 AND status = 'paid'",
        )
        .bind(request.order_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Outcome::Processed)
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config, "shipping")?;
    let metrics = Metrics::new("shipping");
    let shipping = Arc::new(Shipping {
        db: db.writer().clone(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consuming = crate::consumer::spawn(
        &config,
        db.writer().clone(),
        "shipping",
        SHIPPING_REQUEST,
        SHIPPING_REQUEST_DLQ,
        Arc::clone(&metrics),
        stopped,
        move |message| {
            let shipping = Arc::clone(&shipping);
            async move { shipping.handle(message).await }
        },
    )?;
    let served = crate::http::serve(
        "shipping",
        config.listen,
        Router::new(),
        metrics,
        super::ready(&db),
    )
    .await;
    let _ = stop.send(true);
    consuming.finish().await;
    served
}
