//! A simulated payment provider living inside the shop: configurable latency and transient
//! failure rate, plus one deterministic decline (the `test-decline-card` product), like the
//! test card numbers real providers offer.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider unavailable (transient)")]
    Transient,
    #[error("card declined")]
    Declined,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub latency: Duration,
    pub failure_rate: f64,
}

impl Provider {
    /// Charge `amount_cents` for `order_id`; returns the provider's reference.
    pub async fn charge(
        &self,
        order_id: &str,
        amount_cents: i64,
        skus: &[String],
    ) -> Result<String, ProviderError> {
        tokio::time::sleep(self.latency).await;
        if skus.iter().any(|s| s == "test-decline-card") {
            return Err(ProviderError::Declined);
        }
        if rand::rng().random_bool(self.failure_rate) {
            return Err(ProviderError::Transient);
        }
        Ok(format!(
            "pay_{}_{amount_cents}",
            &order_id[..8.min(order_id.len())]
        ))
    }
}
