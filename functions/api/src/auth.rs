//! The authorizer: turns `Authorization: Bearer <key>` into the caller identity that handlers
//! read from the request context. API Gateway runs it as its own Lambda (simple responses),
//! which reads the operator's admin key from its secret ([`RotatingAdminKey`]); the local
//! runner calls the same [`authorize`] before every request, with the admin key of its
//! data directory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edgecert_aws::{AdminKeySecret, AwsError};
use edgecert_core::model::ApiKeyHash;
use edgecert_core::usecases::{Services, accounts};
use serde_json::Value;

use crate::request::context_keys;
use crate::state::ApiState;

/// How long a warm Lambda authorizer trusts the admin key it read before reading its secret
/// again: a key rotated in the secret replaces the old one everywhere within this time.
pub const ADMIN_KEY_REFRESH: Duration = Duration::from_secs(300);

/// The bearer token of an `Authorization` header value.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The authorizer context for a presented `Authorization` header, or `None` to deny (401).
/// A store failure also denies: the authorizer must never let a request through unverified.
pub async fn authorize(
    state: &ApiState,
    authorization: Option<&str>,
) -> Option<HashMap<String, Value>> {
    authorize_with(&state.services, state.admin_key.as_ref(), authorization).await
}

/// [`authorize`] against the admin key `admin_key` (the Lambda authorizer's comes from its
/// secret, [`RotatingAdminKey`]).
pub async fn authorize_with(
    services: &Services,
    admin_key: Option<&ApiKeyHash>,
    authorization: Option<&str>,
) -> Option<HashMap<String, Value>> {
    let token = bearer_token(authorization)?;
    let presented = ApiKeyHash::of(token);
    if admin_key == Some(&presented) {
        return Some(HashMap::from([(
            context_keys::ROLE.to_owned(),
            Value::from("admin"),
        )]));
    }
    match accounts::authenticate(services, Some(token)).await {
        Ok(account_id) => Some(HashMap::from([
            (context_keys::ROLE.to_owned(), Value::from("account")),
            (
                context_keys::ACCOUNT_ID.to_owned(),
                Value::from(account_id.as_str()),
            ),
        ])),
        Err(edgecert_core::Error::Unauthorized) => None,
        Err(failure) => {
            tracing::error!(failure = %failure, "authorizer could not check the key");
            None
        }
    }
}

/// The admin key as the Lambda authorizer knows it: read from its secret at the cold start (a
/// failure there fails the start), then again on the first request after `refresh_every`, so
/// putting a new value in the secret rotates the key without a redeploy. A failed re-read keeps
/// the key read last and is logged; only the key's hash is held.
pub struct RotatingAdminKey {
    secret: AdminKeySecret,
    refresh_every: Duration,
    current: tokio::sync::Mutex<(ApiKeyHash, Instant)>,
}

impl RotatingAdminKey {
    /// Reads the key from `secret` now.
    pub async fn load(
        secret: AdminKeySecret,
        refresh_every: Duration,
    ) -> Result<RotatingAdminKey, AwsError> {
        let hash = secret.current_hash().await?;
        Ok(RotatingAdminKey {
            secret,
            refresh_every,
            current: tokio::sync::Mutex::new((hash, Instant::now())),
        })
    }

    /// The admin key's hash, read again from the secret when the last read is older than the
    /// refresh interval.
    pub async fn hash(&self) -> ApiKeyHash {
        let mut current = self.current.lock().await;
        if current.1.elapsed() >= self.refresh_every {
            match self.secret.current_hash().await {
                Ok(hash) => *current = (hash, Instant::now()),
                Err(failure) => {
                    // Asked again on the next request; the last key read stays valid meanwhile.
                    tracing::warn!(
                        secret = self.secret.secret_id(),
                        failure = %failure,
                        "could not read the admin key's secret again; keeping the key read last"
                    );
                }
            }
        }
        current.0.clone()
    }
}

/// The context of a caller whose key matched nothing: every handler answers it 401.
pub fn anonymous() -> HashMap<String, Value> {
    HashMap::from([(context_keys::ROLE.to_owned(), Value::from("anonymous"))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token(Some("Bearer eck_abc")), Some("eck_abc"));
        assert_eq!(bearer_token(Some("bearer   eck_abc ")), Some("eck_abc"));
        assert_eq!(bearer_token(Some("Basic eck_abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }
}
