//! The authorizer: turns `Authorization: Bearer <key>` into the caller identity that handlers
//! read from the request context. API Gateway runs it as its own Lambda (simple responses); the
//! local runner calls the same [`authorize`] before every request.

use std::collections::HashMap;

use edgecert_core::model::ApiKeyHash;
use edgecert_core::usecases::accounts;
use serde_json::Value;

use crate::request::context_keys;
use crate::state::ApiState;

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
    let token = bearer_token(authorization)?;
    let presented = ApiKeyHash::of(token);
    if state.admin_key.as_ref() == Some(&presented) {
        return Some(HashMap::from([(
            context_keys::ROLE.to_owned(),
            Value::from("admin"),
        )]));
    }
    match accounts::authenticate(&state.services, Some(token)).await {
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
