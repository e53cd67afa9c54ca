//! Shopping carts kept in Redis, not in a replica's memory, so any replica serves any request
//! of a session: one hash per user (`shop:cart:<user>`, product id → quantity) whose TTL is
//! renewed by every change, so an abandoned cart expires by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::http::ApiError;

/// Most lines in a cart (the same bound as an order).
pub const MAX_LINES: usize = 20;
/// Most units of one product in a cart.
pub const MAX_QUANTITY: i32 = 100;

fn key(user_id: i64) -> String {
    format!("shop:cart:{user_id}")
}

fn unavailable(e: redis::RedisError) -> ApiError {
    ApiError::Unavailable(format!("cart store: {e}"))
}

#[derive(Clone)]
pub struct Carts {
    redis: ConnectionManager,
    ttl: Duration,
}

impl Carts {
    pub async fn connect(redis_url: &str, ttl: Duration) -> anyhow::Result<Carts> {
        Ok(Carts {
            redis: crate::redis_link::connect(redis_url).await?,
            ttl,
        })
    }

    /// The user's cart: product id → quantity (empty when none or expired).
    pub async fn get(&self, user_id: i64) -> Result<BTreeMap<i64, i32>, ApiError> {
        let mut redis = self.redis.clone();
        redis.hgetall(key(user_id)).await.map_err(unavailable)
    }

    /// Add `quantity` of `product_id` (to what is there); returns the cart.
    pub async fn add(
        &self,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> Result<BTreeMap<i64, i32>, ApiError> {
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(ApiError::BadRequest(format!(
                "quantity must be 1..={MAX_QUANTITY}"
            )));
        }
        let cart = self.get(user_id).await?;
        let already = cart.get(&product_id).copied().unwrap_or(0);
        if already + quantity > MAX_QUANTITY {
            return Err(ApiError::BadRequest(format!(
                "product {product_id}: at most {MAX_QUANTITY} in a cart"
            )));
        }
        if already == 0 && cart.len() >= MAX_LINES {
            return Err(ApiError::BadRequest(format!(
                "a cart holds at most {MAX_LINES} products"
            )));
        }
        let mut change = redis::pipe();
        change.hincr(key(user_id), product_id, quantity);
        self.apply(user_id, change).await
    }

    /// Take `product_id` out; returns the cart.
    pub async fn remove(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> Result<BTreeMap<i64, i32>, ApiError> {
        let mut change = redis::pipe();
        change.hdel(key(user_id), product_id);
        self.apply(user_id, change).await
    }

    /// Run `change` (one command on the user's cart), renew the expiry and read the cart back,
    /// in one transaction: the change and the renewed TTL land together.
    async fn apply(
        &self,
        user_id: i64,
        mut change: redis::Pipeline,
    ) -> Result<BTreeMap<i64, i32>, ApiError> {
        let mut redis = self.redis.clone();
        let (cart,): (BTreeMap<i64, i32>,) = change
            .ignore()
            .expire(key(user_id), self.ttl.as_secs() as i64)
            .ignore()
            .hgetall(key(user_id))
            .atomic()
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(cart)
    }

    /// Take the whole cart and empty it in one step, so two checkouts of one cart cannot both
    /// see its items.
    pub async fn take(&self, user_id: i64) -> Result<BTreeMap<i64, i32>, ApiError> {
        let mut redis = self.redis.clone();
        let (cart,): (BTreeMap<i64, i32>,) = redis::pipe()
            .atomic()
            .hgetall(key(user_id))
            .del(key(user_id))
            .ignore()
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(cart)
    }

    /// Put `cart` back after a checkout that did not place the order (merged with anything
    /// added meanwhile).
    pub async fn restore(&self, user_id: i64, cart: &BTreeMap<i64, i32>) -> Result<(), ApiError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (product_id, quantity) in cart {
            pipe.hincr(key(user_id), product_id, quantity).ignore();
        }
        pipe.expire(key(user_id), self.ttl.as_secs() as i64)
            .ignore();
        let mut redis = self.redis.clone();
        pipe.query_async::<()>(&mut redis)
            .await
            .map_err(unavailable)
    }

    /// Seconds until the cart expires, if it exists.
    pub async fn ttl(&self, user_id: i64) -> Result<Option<i64>, ApiError> {
        let mut redis = self.redis.clone();
        let ttl: i64 = redis.ttl(key(user_id)).await.map_err(unavailable)?;
        Ok((ttl >= 0).then_some(ttl))
    }
}
