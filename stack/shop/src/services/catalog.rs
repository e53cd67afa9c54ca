//! catalog: product reads from a replica (round-robin, primary as fallback), writes to the
//! primary. Every read answers `x-served-by: replica|primary`, read from the database itself
//! (`pg_is_in_recovery()` in the same query), so where a read went is proved, not assumed.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::config::Config;
use crate::data::{Db, Served};
use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::tokens::{Authenticated, HasTokens, Tokens};

#[derive(Clone)]
struct CatalogState {
    db: Arc<Db>,
    tokens: Arc<Tokens>,
}

impl HasTokens for CatalogState {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

#[derive(Serialize)]
struct Product {
    id: i64,
    sku: String,
    name: String,
    price_cents: i64,
}

fn product(row: &PgRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        price_cents: row.try_get("price_cents")?,
    })
}

#[derive(Deserialize)]
struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    20
}

pub fn router(db: Arc<Db>, tokens: Arc<Tokens>) -> Router {
    Router::new()
        .route("/products", get(list).post(create))
        .route("/products/{id}", get(one))
        .with_state(CatalogState { db, tokens })
}

/// Run a read on the first reader that answers; returns the rows and who served them.
async fn read(db: &Db, sql: &'static str, binds: &[i64]) -> Result<(Vec<PgRow>, Served), ApiError> {
    let mut last_error = None;
    for reader in db.readers() {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        match query.fetch_all(reader).await {
            Ok(rows) => {
                let served = match rows.first() {
                    Some(row) => Served::from_recovery(row.try_get("in_recovery")?),
                    None => {
                        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                            .fetch_one(reader)
                            .await?;
                        Served::from_recovery(in_recovery)
                    }
                };
                return Ok((rows, served));
            }
            Err(e) => {
                tracing::debug!(error = %e, "reader failed; trying the next");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.map_or_else(
        || ApiError::Unavailable("no database".into()),
        ApiError::from,
    ))
}

async fn list(
    State(s): State<CatalogState>,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse, ApiError> {
    if !(1..=100).contains(&page.limit) || page.offset < 0 {
        return Err(ApiError::BadRequest("limit: 1..=100, offset: >= 0".into()));
    }
    let (rows, served) = read(
        &s.db,
        "SELECT id, sku, name, price_cents, pg_is_in_recovery() AS in_recovery FROM products ORDER BY id LIMIT $1 OFFSET $2",
        &[page.limit, page.offset],
    )
    .await?;
    let products = rows.iter().map(product).collect::<Result<Vec<_>, _>>()?;
    Ok((
        [("x-served-by", served.as_str())],
        Json(json!({ "products": products })),
    ))
}

async fn one(
    State(s): State<CatalogState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let (rows, served) = read(
        &s.db,
        "SELECT id, sku, name, price_cents, pg_is_in_recovery() AS in_recovery FROM products WHERE id = $1",
        &[id],
    )
    .await?;
    let row = rows.first().ok_or(ApiError::NotFound)?;
    Ok(([("x-served-by", served.as_str())], Json(product(row)?)))
}

#[derive(Deserialize)]
struct NewProduct {
    sku: String,
    name: String,
    price_cents: i64,
}

async fn create(
    State(s): State<CatalogState>,
    Authenticated(claims): Authenticated,
    Json(p): Json<NewProduct>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    // A price is the shop's word to every customer: only an admin sets one.
    claims.require_admin()?;
    if p.sku.trim().is_empty()
        || p.sku.len() > 64
        || p.name.trim().is_empty()
        || p.name.len() > 200
        || p.price_cents < 0
    {
        return Err(ApiError::BadRequest(
            "sku (1-64), name (1-200) and price_cents >= 0 are required".into(),
        ));
    }
    let row = sqlx::query("INSERT INTO products (sku, name, price_cents) VALUES ($1, $2, $3) ON CONFLICT (sku) DO NOTHING RETURNING id")
        .bind(p.sku.trim())
        .bind(p.name.trim())
        .bind(p.price_cents)
        .fetch_optional(s.db.writer())
        .await?;
    match row {
        Some(row) => Ok((
            StatusCode::CREATED,
            Json(json!({ "id": row.try_get::<i64, _>("id")? })),
        )),
        None => Err(ApiError::Conflict("sku exists".into())),
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config, "catalog")?;
    let tokens = super::tokens(&config).await?;
    let metrics = Metrics::new("catalog");
    let ready = super::ready(&db);
    crate::http::serve("catalog", config.listen, router(db, tokens), metrics, ready).await
}
