//! payment: consumes `order-placed`, charges the (simulated) provider (transient provider
//! failures retried with backoff), and records the decision and a `payment-processed` outbox
//! row in one transaction. Orders, which owns the order's status, acts on that message.
//! Idempotent: a redelivered order finds its payment row and is skipped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sqlx::postgres::PgPool;

use crate::config::Config;
use crate::consumer::{Consumed, Failure, Outcome};
use crate::messages::{OrderPlaced, PaymentOutcome, PaymentProcessed};
use crate::metrics::Metrics;
use crate::provider::{Provider, ProviderError};
use crate::topics::{ORDER_PLACED, ORDER_PLACED_DLQ, PAYMENT_PROCESSED};

/// Calls to the provider per order before a transient failure counts as a failed payment.
const PROVIDER_ATTEMPTS: u32 = 4;

struct Payment {
    /// Reads `order-placed`'s second format too (`SHOP_ACCEPT_ORDER_PLACED_V2`).
    accept_v2: bool,
    db: PgPool,
    provider: Provider,
    metrics: Arc<Metrics>,
}

impl Payment {
    async fn handle(&self, message: Consumed) -> Result<Outcome, Failure> {
        let order = OrderPlaced::decode(&message.payload, self.accept_v2)
            .map_err(|e| Failure::Poison(format!("malformed order-placed message: {e}")))?;
        // The message says which order; what to charge and whether to is the database's: a
        // message with a made-up amount (anyone who can write to the topic can send one) must
        // not set the price, and an order that is not pending is not charged.
        let known: Option<(bool, String, i64)> = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = o.id), o.status, o.total_cents \
             FROM orders o WHERE o.id = $1",
        )
        .bind(order.order_id)
        .fetch_optional(&self.db)
        .await?;
        let total_cents = match known {
            None => return Err(Failure::Poison("unknown order".into())),
            Some((true, _, _)) => return Ok(Outcome::Duplicate),
            Some((false, status, _)) if status != "pending" => {
                return Err(Failure::Poison(format!(
                    "order is {status}, not pending: not charged"
                )));
            }
            Some((false, _, total_cents)) => total_cents,
        };
        if total_cents != order.total_cents {
            tracing::warn!(
                order_id = %order.order_id,
                message = order.total_cents,
                database = total_cents,
                "order-placed states another amount than the order's; the order's is charged"
            );
        }

        let skus: Vec<String> = order.items.iter().map(|i| i.sku.clone()).collect();
        let order_id = order.order_id.to_string();
        let mut attempts = 0;
        let charged = loop {
            attempts += 1;
            match self.provider.charge(&order_id, total_cents, &skus).await {
                Ok(reference) => {
                    self.attempt("ok");
                    break Ok(reference);
                }
                Err(ProviderError::Transient) if attempts < PROVIDER_ATTEMPTS => {
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
        let processed = match charged {
            Ok(provider_ref) => PaymentProcessed {
                order_id: order.order_id,
                outcome: PaymentOutcome::Paid,
                amount_cents: total_cents,
                provider_ref: Some(provider_ref),
                reason: None,
            },
            Err(error) => PaymentProcessed {
                order_id: order.order_id,
                outcome: PaymentOutcome::Failed,
                amount_cents: total_cents,
                provider_ref: None,
                reason: Some(match error {
                    ProviderError::Declined => "payment declined: card declined".to_string(),
                    ProviderError::Transient => {
                        format!("payment failed: provider unavailable after {attempts} attempts")
                    }
                }),
            },
        };

        let mut tx = self.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO payments (order_id, outcome, provider_ref, reason, amount_cents, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order.order_id)
        .bind(match processed.outcome {
            PaymentOutcome::Paid => "paid",
            PaymentOutcome::Failed => "failed",
        })
        .bind(&processed.provider_ref)
        .bind(&processed.reason)
        .bind(total_cents)
        .bind(attempts as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        crate::outbox::enqueue(&mut tx, PAYMENT_PROCESSED, &order_id, &processed).await?;
        tx.commit().await?;
        Ok(Outcome::Processed)
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
    let db = super::db(&config, "payment")?;
    let bootstrap = config.require_kafka()?;
    let metrics = Metrics::new("payment");
    let payment = Arc::new(Payment {
        accept_v2: config.accept_order_placed_v2,
        db: db.writer().clone(),
        provider: Provider {
            latency: config.payment_latency,
            failure_rate: config.payment_failure_rate,
        },
        metrics: Arc::clone(&metrics),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(crate::outbox::relay(
        db.writer().clone(),
        crate::kafka::producer(bootstrap)?,
        Arc::clone(&metrics),
        stopped.clone(),
    ));
    let consuming = crate::consumer::spawn(
        &config,
        db.writer().clone(),
        "payment",
        ORDER_PLACED,
        ORDER_PLACED_DLQ,
        Arc::clone(&metrics),
        stopped,
        move |message| {
            let payment = Arc::clone(&payment);
            async move { payment.handle(message).await }
        },
    )?;
    let served = crate::http::serve(
        "payment",
        config.listen,
        Router::new(),
        metrics,
        super::ready(&db),
    )
    .await;
    let _ = stop.send(true);
    let _ = relay.await;
    consuming.finish().await;
    served
}
