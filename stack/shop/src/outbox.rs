//! The outbox relay: publishes rows written in the same transaction as the state change they
//! announce, deleting them only after the broker acknowledged. Any number of replicas run it;
//! `FOR UPDATE SKIP LOCKED` hands each row to one of them. A crash between publish and delete
//! republishes the row, so consumers are idempotent.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use crate::metrics::Metrics;

const BATCH: i64 = 200;

/// Add a message to the outbox inside `tx`: it is published if and only if `tx` commits.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    key: &str,
    payload: &impl Serialize,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)")
        .bind(topic)
        .bind(key)
        .bind(sqlx::types::Json(payload))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Run until `stop` resolves.
pub async fn relay(
    db: PgPool,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    if !crate::data::wait_for_schema(&db, &mut stop).await {
        return;
    }
    let mut idle = Duration::from_millis(20);
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match relay_batch(&db, &producer, &metrics).await {
            Ok(0) => {
                idle = (idle * 2).min(Duration::from_millis(200));
                idle
            }
            Ok(_) => {
                idle = Duration::from_millis(20);
                Duration::ZERO
            }
            Err(error) => {
                tracing::warn!(%error, "outbox relay: will retry");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return,
        }
    }
}

/// Publish one batch; returns how many rows went out.
async fn relay_batch(
    db: &PgPool,
    producer: &FutureProducer,
    metrics: &Metrics,
) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    let rows = sqlx::query(
        "SELECT id, topic, key, payload::text AS payload FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        metrics.outbox_backlog.set(0);
        return Ok(0);
    }
    let mut sends = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let topic: String = row.try_get("topic")?;
        let key: String = row.try_get("key")?;
        let payload: String = row.try_get("payload")?;
        sends.push(async move {
            (
                id,
                crate::kafka::send(producer, &topic, &key, &payload, None).await,
            )
        });
    }
    let results = futures::future::join_all(sends).await;
    let published: Vec<i64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| *id)
        .collect();
    if let Some((_, Err(error))) = results.iter().find(|(_, r)| r.is_err()) {
        tracing::warn!(%error, failed = results.len() - published.len(), "outbox: some rows not published; kept for retry");
    }
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics.outbox_published.inc_by(published.len() as u64);
    metrics
        .outbox_backlog
        .set((rows.len() - published.len()) as i64);
    if published.is_empty() {
        anyhow::bail!("broker unavailable");
    }
    Ok(published.len())
}
