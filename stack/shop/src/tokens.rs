//! Short-lived JWTs with a `jti`, validated locally by every service (HS256 pinned, expiry
//! checked), and a Redis revocation list: logout stores the `jti` with a TTL equal to the
//! token's remaining life, so the list never outgrows the set of live tokens.
//!
//! The list lives only in Redis. If Redis loses its data (a restart without persistence, a
//! failover to an empty replica) revoked tokens would pass again, so the list has an epoch
//! beside it: when it was started, in Unix milliseconds. Data lost means epoch lost; the first
//! service to notice starts a new one, and every token issued before it is refused (everyone
//! logs in again): the list fails closed. Redis unreachable: 503, never a pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::http::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    /// Issued at, Unix milliseconds (compared with the revocation list's epoch).
    #[serde(default)]
    pub iat_ms: u64,
    /// `admin` may change the catalog; anything else (or nothing) is a customer.
    #[serde(default)]
    pub role: String,
}

impl Claims {
    /// Refused (403) unless the token was issued to an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == "admin" {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admins only"))
        }
    }

    pub fn user_id(&self) -> Result<i64, ApiError> {
        self.sub
            .parse()
            .map_err(|_| ApiError::Unauthorized("malformed subject"))
    }
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    redis: ConnectionManager,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When the revocation list began (Unix ms); gone together with the list.
const EPOCH_KEY: &str = "shop:revocation-epoch";

fn revoked_key(jti: &str) -> String {
    format!("shop:revoked:{jti}")
}

fn unavailable(e: redis::RedisError) -> ApiError {
    ApiError::Unavailable(format!("revocation list: {e}"))
}

impl Tokens {
    pub async fn new(secret: &[u8], ttl: Duration, redis_url: &str) -> anyhow::Result<Tokens> {
        let redis = crate::redis_link::connect(redis_url).await?;
        // Only HS256 is accepted, whatever the token's header claims ("alg": "none" and
        // algorithm-confusion tokens are rejected).
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "jti"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            redis,
        })
    }

    /// A new token, issued after the revocation list's epoch (started here if it is missing).
    pub async fn issue(&self, user_id: i64, role: &str) -> Result<(String, Claims), ApiError> {
        self.epoch().await?;
        let iat_ms = now_ms();
        let iat = iat_ms / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat,
            exp: iat + self.ttl.as_secs(),
            iat_ms,
            role: role.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing token: {e}")))?;
        Ok((token, claims))
    }

    /// Signature, algorithm, expiry, then the revocation list and its epoch (fails closed if
    /// Redis is down or lost its data).
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))?;
        let mut redis = self.redis.clone();
        // One round trip for both.
        let (revoked, epoch): (bool, Option<u64>) = redis::pipe()
            .exists(revoked_key(&data.claims.jti))
            .get(EPOCH_KEY)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        if revoked {
            return Err(ApiError::Unauthorized("token revoked"));
        }
        let epoch = match epoch {
            Some(epoch) => epoch,
            None => self.epoch().await?,
        };
        if data.claims.iat_ms < epoch {
            return Err(ApiError::Unauthorized(
                "session ended: the revocation list was lost; log in again",
            ));
        }
        Ok(data.claims)
    }

    /// The revocation list's epoch, started now if Redis has none (first start, or its data
    /// was lost). SET NX: services racing to start it agree on one.
    async fn epoch(&self) -> Result<u64, ApiError> {
        let mut redis = self.redis.clone();
        let (epoch,): (Option<u64>,) = redis::pipe()
            .cmd("SET")
            .arg(EPOCH_KEY)
            .arg(now_ms())
            .arg("NX")
            .ignore()
            .get(EPOCH_KEY)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        epoch.ok_or_else(|| ApiError::Unavailable("revocation list: no epoch after SET".into()))
    }

    /// Revoke until the token would have expired anyway.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), ApiError> {
        let remaining = claims.exp.saturating_sub(now()).max(1);
        let mut redis = self.redis.clone();
        let _: () = redis
            .set_ex(revoked_key(&claims.jti), 1, remaining)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn ready(&self) -> bool {
        let mut redis = self.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .is_ok()
    }
}

/// State that can verify tokens.
pub trait HasTokens {
    fn tokens(&self) -> &Tokens;
}

/// An authenticated caller: `Authorization: Bearer <jwt>`, verified.
pub struct Authenticated(pub Claims);

impl<S: HasTokens + Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        Ok(Authenticated(state.tokens().verify(token.trim()).await?))
    }
}
