//! auth: register and log in (argon2 password hashes), issue short-lived JWTs, log out by
//! revoking the token's `jti` in Redis.

use std::sync::Arc;

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::config::Config;
use crate::data::Db;
use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::tokens::{Authenticated, HasTokens, Tokens};

#[derive(Clone)]
struct AuthState {
    db: Arc<Db>,
    tokens: Arc<Tokens>,
}

impl HasTokens for AuthState {
    fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

impl Credentials {
    fn validate(&self) -> Result<(), ApiError> {
        let email = self.email.trim();
        if email.len() > 254
            || !email.contains('@')
            || email.starts_with('@')
            || email.ends_with('@')
        {
            return Err(ApiError::BadRequest("email: not an email address".into()));
        }
        if self.password.chars().count() < 8 || self.password.len() > 1024 {
            return Err(ApiError::BadRequest(
                "password: 8 to 1024 characters".into(),
            ));
        }
        Ok(())
    }
}

pub fn router(db: Arc<Db>, tokens: Arc<Tokens>) -> Router {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .with_state(AuthState { db, tokens })
}

async fn register(
    State(s): State<AuthState>,
    Json(c): Json<Credentials>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    c.validate()?;
    let password = c.password.clone();
    // Hashing is deliberately slow: keep it off the async workers.
    let hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?
    .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?;
    let row = sqlx::query("INSERT INTO users (email, password_hash) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING id")
        .bind(c.email.trim().to_lowercase())
        .bind(hash)
        .fetch_optional(s.db.writer())
        .await?;
    match row {
        Some(row) => Ok((
            StatusCode::CREATED,
            Json(json!({ "id": row.try_get::<i64, _>("id")? })),
        )),
        None => Err(ApiError::Conflict("email already registered".into())),
    }
}

async fn login(
    State(s): State<AuthState>,
    Json(c): Json<Credentials>,
) -> Result<Json<Value>, ApiError> {
    c.validate()?;
    // The primary: a user who just registered must be able to log in at once.
    let row = sqlx::query("SELECT id, password_hash, role FROM users WHERE email = $1")
        .bind(c.email.trim().to_lowercase())
        .fetch_optional(s.db.writer())
        .await?;
    let Some(row) = row else {
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
    let id: i64 = row.try_get("id")?;
    let stored: String = row.try_get("password_hash")?;
    let password = c.password.clone();
    let valid = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("verifying: {e}")))?;
    if !valid {
        return Err(ApiError::Unauthorized("wrong email or password"));
    }
    let role: String = row.try_get("role")?;
    let (token, claims) = s.tokens.issue(id, &role).await?;
    Ok(Json(json!({ "token": token, "expires_at": claims.exp })))
}

async fn logout(
    State(s): State<AuthState>,
    Authenticated(claims): Authenticated,
) -> Result<StatusCode, ApiError> {
    s.tokens.revoke(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(Authenticated(claims): Authenticated) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "user_id": claims.user_id()?, "expires_at": claims.exp }),
    ))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = super::db(&config)?;
    let tokens = super::tokens(&config).await?;
    let metrics = Metrics::new("auth");
    let ready = {
        let (db, tokens) = (Arc::clone(&db), Arc::clone(&tokens));
        move || {
            let (db, tokens) = (Arc::clone(&db), Arc::clone(&tokens));
            async move { db.ready().await && tokens.ready().await }
        }
    };
    crate::http::serve("auth", config.listen, router(db, tokens), metrics, ready).await
}
