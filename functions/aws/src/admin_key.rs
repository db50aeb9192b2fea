//! The operator's admin key in Secrets Manager: the secret template.yaml generates at deploy
//! time (`AdminKeySecret`). Only the authorizer reads it, and only the key's hash leaves this
//! module; the key itself is never logged, kept or put in an error.

use aws_sdk_secretsmanager::Client;
use edgecert_core::model::ApiKeyHash;

use crate::error::{AwsError, Result};

/// The secret holding the admin key.
#[derive(Debug, Clone)]
pub struct AdminKeySecret {
    client: Client,
    secret_id: String,
}

impl AdminKeySecret {
    /// The secret `secret_id` (its ARN or name).
    pub fn new(client: Client, secret_id: impl Into<String>) -> AdminKeySecret {
        AdminKeySecret {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// The secret's ARN or name, as given.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The hash of the key the secret holds now (its current version): what the authorizer
    /// compares presented keys with. Surrounding whitespace is not part of the key (a value
    /// put with `echo` ends in a newline).
    pub async fn current_hash(&self) -> Result<ApiKeyHash> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|error| AwsError::secrets_manager("GetSecretValue", error))?;
        let key = output
            .secret_string()
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(AwsError::MissingField {
                operation: "GetSecretValue",
                field: "SecretString",
            })?;
        Ok(ApiKeyHash::of(key))
    }
}
