//! auth: register and log in (argon2 password hashes), issue short-lived JWTs, log out by
//! revoking the token's `jti` in Redis.
//!
//! Argon2 takes ~19 MiB a hash: at most [`ARGON2_AT_ONCE`] run at a time per replica (the rest
//! wait), so a flood of registrations cannot take the pod past its memory limit. Neither
//! endpoint tells whether an account exists: an unknown email at login costs the same verify
//! (against a dummy hash) and gets the same 401; registering a taken email gets the same 201.

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

/// Argon2 hashes or verifies running at once in one replica.
pub const ARGON2_AT_ONCE: usize = 2;
static ARGON2: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(ARGON2_AT_ONCE);

/// Run `work` (an Argon2 hash or verify) off the async workers, at most [`ARGON2_AT_ONCE`] at
/// a time.
async fn argon2<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = ARGON2
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(format!("argon2 gate: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
}

/// A hash of no one's password, verified against when the email is unknown so that an
/// unknown account takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

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
    let hash = argon2(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?;
    sqlx::query(
        "INSERT INTO users (email, password_hash) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
    )
    .bind(c.email.trim().to_lowercase())
    .bind(hash)
    .execute(s.db.writer())
    .await?;
    // The same answer whether the email was free or taken: registering is no way to learn
    // who has an account. (A real shop would mail the address either way.)
    Ok((
        StatusCode::CREATED,
        Json(json!({ "status": "registered; log in with your password" })),
    ))
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
    let account = match &row {
        Some(row) => Some((
            row.try_get::<i64, _>("id")?,
            row.try_get::<String, _>("role")?,
        )),
        None => None,
    };
    let stored: Option<String> = match &row {
        Some(row) => Some(row.try_get("password_hash")?),
        None => None,
    };
    let password = c.password.clone();
    // The dummy hash is made on first use, an Argon2 itself: inside the bounded blocking work.
    let valid = argon2(move || {
        let stored = stored.as_deref().unwrap_or_else(|| dummy_hash());
        PasswordHash::new(stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await?;
    let (Some((id, role)), true) = (account, valid) else {
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
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
    let db = super::db(&config, "auth")?;
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
