//! shipping: consumes `payment-processed`, creates the shipment and marks the order shipped,
//! in one transaction; idempotent on the order id. Messages it cannot handle (malformed, or
//! for an order that does not exist) go to `payment-processed.dlq` with the reason.

use std::sync::Arc;

use axum::Router;
use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgPool;

use crate::config::Config;
use crate::consumer::Outcome;
use crate::messages::PaymentProcessed;
use crate::metrics::Metrics;
use crate::topics::{PAYMENT_PROCESSED, PAYMENT_PROCESSED_DLQ};

struct Shipping {
    db: PgPool,
    producer: FutureProducer,
}

impl Shipping {
    async fn handle(&self, payload: Vec<u8>, key: String) -> anyhow::Result<Outcome> {
        let paid: PaymentProcessed = match serde_json::from_slice(&payload) {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("malformed payment-processed message: {e}");
                crate::kafka::dead_letter(
                    &self.producer,
                    PAYMENT_PROCESSED_DLQ,
                    PAYMENT_PROCESSED,
                    &key,
                    &payload,
                    &reason,
                    1,
                )
                .await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let mut tx = self.db.begin().await?;
        let tracking = format!("TRK-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let inserted = sqlx::query("INSERT INTO shipments (order_id, tracking) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING")
            .bind(paid.order_id)
            .bind(&tracking)
            .execute(&mut *tx)
            .await;
        let inserted = match inserted {
            Ok(r) => r.rows_affected() == 1,
            // Foreign key: the order does not exist. Retrying cannot fix that.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
                drop(tx);
                crate::kafka::dead_letter(
                    &self.producer,
                    PAYMENT_PROCESSED_DLQ,
                    PAYMENT_PROCESSED,
                    &key,
                    &payload,
                    "unknown order",
                    1,
                )
                .await?;
                return Ok(Outcome::DeadLettered);
            }
            Err(e) => return Err(e.into()),
        };
        if !inserted {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        sqlx::query("UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = $1 AND status IN ('pending', 'paid')")
            .bind(paid.order_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Outcome::Processed)
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config)?;
    let bootstrap = config.require_kafka()?;
    let metrics = Metrics::new("shipping");
    let shipping = Arc::new(Shipping {
        db: db.writer().clone(),
        producer: crate::kafka::producer(bootstrap)?,
    });
    let consumer = crate::kafka::consumer(bootstrap, "shipping", &config.instance)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consuming = {
        let shipping = Arc::clone(&shipping);
        tokio::spawn(crate::consumer::run(
            consumer,
            PAYMENT_PROCESSED,
            Arc::clone(&metrics),
            stopped,
            move |payload, key| {
                let shipping = Arc::clone(&shipping);
                async move { shipping.handle(payload, key).await }
            },
        ))
    };
    let ready = {
        let db = Arc::clone(&db);
        move || {
            let db = Arc::clone(&db);
            async move { db.ready().await }
        }
    };
    let served = crate::http::serve("shipping", config.listen, Router::new(), metrics, ready).await;
    let _ = stop.send(true);
    if let Ok(Err(error)) = consuming.await {
        tracing::warn!(%error, "consumer stopped with an error");
    }
    served
}
