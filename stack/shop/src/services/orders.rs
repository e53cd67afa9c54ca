//! orders, the owner of an order's status: `POST /orders` validates synchronously, writes the
//! order and an outbox row in one transaction on the primary and answers 202 at once; the
//! relay publishes `order-placed` (so an order is never lost while Kafka is down). It consumes
//! `payment-processed`: a paid order is marked paid and, in the same transaction, a
//! `shipping-request` goes to the outbox; a failed payment marks the order failed with the
//! reason. `GET /orders/{id}` reads from a replica that has replayed the order's write (the
//! `consistency_token` from the POST), else from the primary — read-your-writes without
//! pinning every read to the primary.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;

use crate::cart::Carts;
use crate::config::Config;
use crate::consumer::{Consumed, Failure, Outcome};
use crate::data::{Db, Served};
use crate::http::ApiError;
use crate::messages::{
    Item, OrderPlaced, OrderPlacedV2, PaymentOutcome, PaymentProcessed, ShippingRequest,
};
use crate::metrics::Metrics;
use crate::tokens::{Authenticated, HasTokens, Tokens};
use crate::topics::{ORDER_PLACED, PAYMENT_PROCESSED, PAYMENT_PROCESSED_DLQ, SHIPPING_REQUEST};

#[derive(Clone)]
struct OrdersState {
    db: Arc<Db>,
    tokens: Arc<Tokens>,
    carts: Carts,
    /// The `order-placed` format written (`SHOP_ORDER_PLACED_FORMAT`).
    format: u32,
}

impl HasTokens for OrdersState {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

#[derive(Deserialize)]
struct NewOrder {
    items: Vec<NewItem>,
}

#[derive(Deserialize)]
struct NewItem {
    product_id: i64,
    quantity: i32,
}

fn router(db: Arc<Db>, tokens: Arc<Tokens>, carts: Carts, format: u32) -> Router {
    Router::new()
        .route("/orders", post(place))
        .route("/orders/{id}", get(status))
        .route("/cart", get(view_cart))
        .route("/cart/items", post(add_to_cart))
        .route("/cart/items/{product_id}", delete(remove_from_cart))
        .route("/cart/checkout", post(checkout))
        .with_state(OrdersState {
            db,
            tokens,
            carts,
            format,
        })
}

async fn place(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
    Json(order): Json<NewOrder>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let placed = create_order(&s.db, claims.user_id()?, &order.items, s.format).await?;
    Ok((StatusCode::ACCEPTED, Json(placed)))
}

/// The cart as JSON: its lines and how long until it expires.
async fn cart_json(
    s: &OrdersState,
    user_id: i64,
    cart: BTreeMap<i64, i32>,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = cart
        .iter()
        .map(|(product_id, quantity)| json!({ "product_id": product_id, "quantity": quantity }))
        .collect();
    Ok(Json(
        json!({ "items": items, "expires_in_seconds": s.carts.ttl(user_id).await? }),
    ))
}

async fn view_cart(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let user_id = claims.user_id()?;
    let cart = s.carts.get(user_id).await?;
    cart_json(&s, user_id, cart).await
}

async fn add_to_cart(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
    Json(item): Json<NewItem>,
) -> Result<Json<Value>, ApiError> {
    let user_id = claims.user_id()?;
    // Only products that exist go into a cart (a replica's catalog is fresh enough for that).
    let mut known = false;
    for reader in s.db.readers() {
        match sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
            .bind(item.product_id)
            .fetch_one(reader)
            .await
        {
            Ok(exists) => {
                known = exists;
                break;
            }
            Err(e) => tracing::debug!(error = %e, "reader failed; trying the next"),
        }
    }
    if !known {
        return Err(ApiError::BadRequest(format!(
            "product {} does not exist",
            item.product_id
        )));
    }
    let cart = s.carts.add(user_id, item.product_id, item.quantity).await?;
    cart_json(&s, user_id, cart).await
}

async fn remove_from_cart(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
    Path(product_id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let user_id = claims.user_id()?;
    let cart = s.carts.remove(user_id, product_id).await?;
    cart_json(&s, user_id, cart).await
}

/// Turn the cart into an order (as `POST /orders` would). The cart is taken first, so it is
/// ordered at most once; if the order cannot be placed, it is put back.
async fn checkout(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user_id = claims.user_id()?;
    let cart = s.carts.take(user_id).await?;
    if cart.is_empty() {
        return Err(ApiError::BadRequest("the cart is empty".into()));
    }
    let items: Vec<NewItem> = cart
        .iter()
        .map(|(product_id, quantity)| NewItem {
            product_id: *product_id,
            quantity: *quantity,
        })
        .collect();
    match create_order(&s.db, user_id, &items, s.format).await {
        Ok(placed) => Ok((StatusCode::ACCEPTED, Json(placed))),
        Err(error) => {
            if let Err(lost) = s.carts.restore(user_id, &cart).await {
                tracing::warn!(%lost, user_id, "cart not restored after a failed checkout");
            }
            Err(error)
        }
    }
}

/// Validate `items`, write the order and its `order-placed` outbox row in one transaction on
/// the primary; returns what the API answers (id, status, total, consistency token).
async fn create_order(
    db: &Db,
    user_id: i64,
    wanted: &[NewItem],
    format: u32,
) -> Result<Value, ApiError> {
    if wanted.is_empty() || wanted.len() > 20 {
        return Err(ApiError::BadRequest("items: 1 to 20 lines".into()));
    }
    let mut seen = HashSet::new();
    for item in wanted {
        if !(1..=100).contains(&item.quantity) {
            return Err(ApiError::BadRequest(format!(
                "product {}: quantity must be 1..=100",
                item.product_id
            )));
        }
        if !seen.insert(item.product_id) {
            return Err(ApiError::BadRequest(format!(
                "product {} listed twice",
                item.product_id
            )));
        }
    }
    let ids: Vec<i64> = wanted.iter().map(|i| i.product_id).collect();
    let mut tx = db.writer().begin().await?;
    let rows = sqlx::query("SELECT id, sku, price_cents FROM products WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut items = Vec::with_capacity(wanted.len());
    for wanted in wanted {
        let row = rows
            .iter()
            .find(|r| {
                r.try_get::<i64, _>("id")
                    .is_ok_and(|id| id == wanted.product_id)
            })
            .ok_or_else(|| {
                ApiError::BadRequest(format!("product {} does not exist", wanted.product_id))
            })?;
        items.push(Item {
            product_id: wanted.product_id,
            sku: row.try_get("sku")?,
            quantity: wanted.quantity,
            price_cents: row.try_get("price_cents")?,
        });
    }
    let total: i64 = items
        .iter()
        .map(|i| i.price_cents * i64::from(i.quantity))
        .sum();
    let order_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, user_id, status, total_cents) VALUES ($1, $2, 'pending', $3)",
    )
    .bind(order_id)
    .bind(user_id)
    .bind(total)
    .execute(&mut *tx)
    .await?;
    for item in &items {
        sqlx::query("INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES ($1, $2, $3, $4)")
            .bind(order_id)
            .bind(item.product_id)
            .bind(item.quantity)
            .bind(item.price_cents)
            .execute(&mut *tx)
            .await?;
    }
    let message = OrderPlaced {
        order_id,
        user_id,
        total_cents: total,
        items,
    };
    let key = order_id.to_string();
    if format == 2 {
        let message = OrderPlacedV2 {
            version: 2,
            order: message,
        };
        crate::outbox::enqueue(&mut tx, ORDER_PLACED, &key, &message).await?;
    } else {
        crate::outbox::enqueue(&mut tx, ORDER_PLACED, &key, &message).await?;
    }
    tx.commit().await?;
    // Any LSN read after the commit covers it.
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(db.writer())
        .await?;
    Ok(
        json!({ "order_id": order_id, "status": "pending", "total_cents": total, "consistency_token": lsn }),
    )
}

#[derive(Deserialize)]
struct After {
    /// The `consistency_token` of the POST: read from a server that has it.
    after: Option<String>,
}

async fn status(
    State(s): State<OrdersState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<Uuid>,
    Query(after): Query<After>,
) -> Result<Json<Value>, ApiError> {
    let user_id = claims.user_id()?;
    let sql = "SELECT status, total_cents, reason, user_id, pg_is_in_recovery() AS in_recovery FROM orders WHERE id = $1";
    let mut row = None;
    match &after.after {
        Some(lsn) if lsn.len() <= 32 && lsn.contains('/') => {
            // Read-your-writes: a replica that has the write, checked and read in one
            // transaction (dropped, so rolled back, after the read).
            if let Some(mut tx) = s.db.replica_at(lsn).await {
                match sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await {
                    Ok(found) => row = found,
                    Err(e) => tracing::debug!(error = %e, "replica read failed; using the primary"),
                }
            }
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "after: not a consistency token".into(),
            ));
        }
        None => {
            // Replicas in turn; one that has not replayed the order yet answers "not found".
            let readers = s.db.readers();
            for reader in &readers[..readers.len() - 1] {
                match sqlx::query(sql).bind(id).fetch_optional(*reader).await {
                    Ok(Some(found)) => {
                        row = Some(found);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "reader failed; trying the next"),
                }
            }
        }
    }
    // Not found on a replica: ask the primary before saying so.
    let row = match row {
        Some(row) => row,
        None => sqlx::query(sql)
            .bind(id)
            .fetch_optional(s.db.writer())
            .await?
            .ok_or(ApiError::NotFound)?,
    };
    if row.try_get::<i64, _>("user_id")? != user_id {
        return Err(ApiError::NotFound);
    }
    let served = Served::from_recovery(row.try_get("in_recovery")?);
    Ok(Json(json!({
        "order_id": id,
        "status": row.try_get::<String, _>("status")?,
        "total_cents": row.try_get::<i64, _>("total_cents")?,
        "reason": row.try_get::<Option<String>, _>("reason")?,
        "served_by": served.as_str(),
    })))
}

/// Act on payment's decision: a paid order becomes `paid` with a `shipping-request` in the
/// outbox, a failed one `payment_failed` with the reason. A decision for an order that is no
/// longer pending is a redelivery.
async fn on_payment(db: &sqlx::PgPool, message: Consumed) -> Result<Outcome, Failure> {
    let payment: PaymentProcessed = serde_json::from_slice(&message.payload)
        .map_err(|e| Failure::Poison(format!("malformed payment-processed message: {e}")))?;
    let mut tx = db.begin().await?;
    // The message is only a signal: payment's decision is its row in the payments table,
    // and an order is paid only for its own total. A forged `paid` for an order nobody
    // charged, or for another amount, changes nothing.
    let recorded: Option<(String, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT p.outcome, p.reason, p.amount_cents, o.total_cents FROM payments p \
         JOIN orders o ON o.id = p.order_id WHERE p.order_id = $1",
    )
    .bind(payment.order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((outcome, recorded_reason, amount_cents, total_cents)) = recorded else {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)")
            .bind(payment.order_id)
            .fetch_one(&mut *tx)
            .await?;
        return Err(Failure::Poison(
            if exists {
                "no payment recorded for this order"
            } else {
                "unknown order"
            }
            .into(),
        ));
    };
    let paid = outcome == "paid";
    if paid && amount_cents != total_cents {
        return Err(Failure::Poison(format!(
            "payment of {amount_cents} recorded for an order of {total_cents}: not marked paid"
        )));
    }
    if paid != (payment.outcome == PaymentOutcome::Paid) {
        tracing::warn!(order_id = %payment.order_id, %outcome, "payment-processed disagrees with the recorded payment; the record wins");
    }
    let (status, reason) = if paid {
        ("paid", None)
    } else {
        ("payment_failed", recorded_reason.as_deref())
    };
    let user_id: Option<i64> = sqlx::query_scalar(
        "UPDATE orders SET status = $2, reason = $3, updated_at = now() \
         WHERE id = $1 AND status = 'pending' RETURNING user_id",
    )
    .bind(payment.order_id)
    .bind(status)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    // The order exists (its payment row joined it): not pending any more means this decision
    // was applied already.
    let Some(user_id) = user_id else {
        return Ok(Outcome::Duplicate);
    };
    if paid {
        let items = sqlx::query(
            "SELECT i.product_id, p.sku, i.quantity, i.price_cents FROM order_items i \
             JOIN products p ON p.id = i.product_id WHERE i.order_id = $1 ORDER BY i.product_id",
        )
        .bind(payment.order_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(Item {
                product_id: row.try_get("product_id")?,
                sku: row.try_get("sku")?,
                quantity: row.try_get("quantity")?,
                price_cents: row.try_get("price_cents")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let request = ShippingRequest {
            order_id: payment.order_id,
            user_id,
            items,
        };
        crate::outbox::enqueue(
            &mut tx,
            SHIPPING_REQUEST,
            &payment.order_id.to_string(),
            &request,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Outcome::Processed)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config, "orders")?;
    let tokens = super::tokens(&config).await?;
    let carts = Carts::connect(config.require_redis()?, config.cart_ttl).await?;
    let metrics = Metrics::new("orders");
    let producer = crate::kafka::producer(config.require_kafka()?)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(crate::outbox::relay(
        db.writer().clone(),
        producer,
        Arc::clone(&metrics),
        stopped.clone(),
    ));
    let writer = db.writer().clone();
    let consuming = crate::consumer::spawn(
        &config,
        db.writer().clone(),
        "orders",
        PAYMENT_PROCESSED,
        PAYMENT_PROCESSED_DLQ,
        Arc::clone(&metrics),
        stopped,
        move |message| {
            let db = writer.clone();
            async move { on_payment(&db, message).await }
        },
    )?;
    let ready = super::ready(&db);
    let served = crate::http::serve(
        "orders",
        config.listen,
        router(db, tokens, carts, config.order_placed_format),
        metrics,
        ready,
    )
    .await;
    let _ = stop.send(true);
    let _ = relay.await;
    consuming.finish().await;
    served
}
