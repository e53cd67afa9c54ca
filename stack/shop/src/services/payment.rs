//! payment: consumes `order-placed`, charges the (simulated) provider with retries and
//! backoff, and records the payment and a `payment-processed` outbox row in one transaction.
//! A payment that cannot succeed goes to `order-placed.dlq` with the reason, and the order is
//! marked `payment_failed`. Idempotent: a redelivered order is recognised and skipped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgPool;

use crate::config::Config;
use crate::consumer::Outcome;
use crate::messages::{OrderPlaced, PaymentProcessed};
use crate::metrics::Metrics;
use crate::provider::{Provider, ProviderError};
use crate::topics::{ORDER_PLACED, ORDER_PLACED_DLQ, PAYMENT_PROCESSED};

const ATTEMPTS: u32 = 4;

struct Payment {
    db: PgPool,
    producer: FutureProducer,
    provider: Provider,
    metrics: Arc<Metrics>,
}

impl Payment {
    async fn handle(&self, payload: Vec<u8>, key: String) -> anyhow::Result<Outcome> {
        let order: OrderPlaced = match serde_json::from_slice(&payload) {
            Ok(o) => o,
            Err(e) => {
                let reason = format!("malformed order-placed message: {e}");
                crate::kafka::dead_letter(
                    &self.producer,
                    ORDER_PLACED_DLQ,
                    ORDER_PLACED,
                    &key,
                    &payload,
                    &reason,
                    1,
                )
                .await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(order.order_id)
            .fetch_optional(&self.db)
            .await?;
        match status.as_deref() {
            None => {
                crate::kafka::dead_letter(
                    &self.producer,
                    ORDER_PLACED_DLQ,
                    ORDER_PLACED,
                    &key,
                    &payload,
                    "unknown order",
                    1,
                )
                .await?;
                return Ok(Outcome::DeadLettered);
            }
            Some("pending") => {}
            Some(_) => return Ok(Outcome::Duplicate),
        }

        let skus: Vec<String> = order.items.iter().map(|i| i.sku.clone()).collect();
        let order_id = order.order_id.to_string();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match self
                .provider
                .charge(&order_id, order.total_cents, &skus)
                .await
            {
                Ok(reference) => {
                    self.attempt("ok");
                    break Ok(reference);
                }
                Err(ProviderError::Transient) if attempts < ATTEMPTS => {
                    self.attempt("transient");
                    tokio::time::sleep(Duration::from_millis(50 << attempts)).await;
                }
                Err(e) => {
                    self.attempt(if e == ProviderError::Declined {
                        "declined"
                    } else {
                        "transient"
                    });
                    break Err(e);
                }
            }
        };

        match result {
            Ok(provider_ref) => {
                let mut tx = self.db.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO payments (order_id, provider_ref, amount_cents, attempts) VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order.order_id)
                .bind(&provider_ref)
                .bind(order.total_cents)
                .bind(attempts as i32)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    tx.rollback().await?;
                    return Ok(Outcome::Duplicate);
                }
                sqlx::query("UPDATE orders SET status = 'paid', updated_at = now() WHERE id = $1 AND status = 'pending'")
                    .bind(order.order_id)
                    .execute(&mut *tx)
                    .await?;
                let processed = PaymentProcessed {
                    order_id: order.order_id,
                    provider_ref,
                    amount_cents: order.total_cents,
                };
                sqlx::query("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)")
                    .bind(PAYMENT_PROCESSED)
                    .bind(&order_id)
                    .bind(sqlx::types::Json(&processed))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Outcome::Processed)
            }
            Err(error) => {
                let reason = match error {
                    ProviderError::Declined => "payment declined: card declined".to_string(),
                    ProviderError::Transient => {
                        format!("payment failed: provider unavailable after {attempts} attempts")
                    }
                };
                // Dead-letter first: if the broker is down this errors and the message is
                // retried, so the order never ends failed without its dead letter.
                crate::kafka::dead_letter(
                    &self.producer,
                    ORDER_PLACED_DLQ,
                    ORDER_PLACED,
                    &key,
                    &payload,
                    &reason,
                    attempts,
                )
                .await?;
                sqlx::query(
                    "UPDATE orders SET status = 'payment_failed', reason = $2, updated_at = now() WHERE id = $1 AND status = 'pending'",
                )
                .bind(order.order_id)
                .bind(&reason)
                .execute(&self.db)
                .await?;
                Ok(Outcome::DeadLettered)
            }
        }
    }

    fn attempt(&self, outcome: &str) {
        self.metrics
            .provider_attempts
            .get_or_create(&crate::metrics::MessageLabels {
                topic: ORDER_PLACED.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config)?;
    let bootstrap = config.require_kafka()?;
    let metrics = Metrics::new("payment");
    let payment = Arc::new(Payment {
        db: db.writer().clone(),
        producer: crate::kafka::producer(bootstrap)?,
        provider: Provider {
            latency: config.payment_latency,
            failure_rate: config.payment_failure_rate,
        },
        metrics: Arc::clone(&metrics),
    });
    let consumer = crate::kafka::consumer(bootstrap, "payment", &config.instance)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(crate::outbox::relay(
        db.writer().clone(),
        crate::kafka::producer(bootstrap)?,
        Arc::clone(&metrics),
        stopped.clone(),
    ));
    let consuming = {
        let payment = Arc::clone(&payment);
        tokio::spawn(crate::consumer::run(
            consumer,
            ORDER_PLACED,
            Arc::clone(&metrics),
            stopped,
            move |payload, key| {
                let payment = Arc::clone(&payment);
                async move { payment.handle(payload, key).await }
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
    let served = crate::http::serve("payment", config.listen, Router::new(), metrics, ready).await;
    let _ = stop.send(true);
    let _ = relay.await;
    if let Ok(Err(error)) = consuming.await {
        tracing::warn!(%error, "consumer stopped with an error");
    }
    served
}
