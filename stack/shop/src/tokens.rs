//! Short-lived JWTs with a `jti`, validated locally by every service (HS256 pinned, expiry
//! checked), and a Redis revocation list: logout stores the `jti` with a TTL equal to the
//! token's remaining life, so the list never outgrows the set of live tokens.

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
}

impl Claims {
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

fn revoked_key(jti: &str) -> String {
    format!("shop:revoked:{jti}")
}

impl Tokens {
    pub async fn new(secret: &[u8], ttl: Duration, redis_url: &str) -> anyhow::Result<Tokens> {
        let client = redis::Client::open(redis_url)?;
        let redis = ConnectionManager::new(client).await?;
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

    pub fn issue(&self, user_id: i64) -> Result<(String, Claims), ApiError> {
        let iat = now();
        let claims = Claims {
            sub: user_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing token: {e}")))?;
        Ok((token, claims))
    }

    /// Signature, algorithm, expiry, then the revocation list (fails closed if Redis is down).
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))?;
        let mut redis = self.redis.clone();
        let revoked: bool = redis
            .exists(revoked_key(&data.claims.jti))
            .await
            .map_err(|e| ApiError::Unavailable(format!("revocation list: {e}")))?;
        if revoked {
            return Err(ApiError::Unauthorized("token revoked"));
        }
        Ok(data.claims)
    }

    /// Revoke until the token would have expired anyway.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), ApiError> {
        let remaining = claims.exp.saturating_sub(now()).max(1);
        let mut redis = self.redis.clone();
        let _: () = redis
            .set_ex(revoked_key(&claims.jti), 1, remaining)
            .await
            .map_err(|e| ApiError::Unavailable(format!("revocation list: {e}")))?;
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
