//! HTTP-01 challenge answers, shared by every terminator through the store.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What `/.well-known/acme-challenge/{token}` must answer while an order is being validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http01Challenge {
    /// The token from the URL path.
    pub token: String,
    /// The body to answer with.
    pub key_authorization: String,
    /// After this the answer is stale and may be removed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
