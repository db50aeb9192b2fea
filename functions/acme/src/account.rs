//! The ACME account: created once per directory URL, its credentials kept in the vault.
//!
//! The first issuance of a process loads the credentials (or registers a new account and stores
//! them); later ones reuse the loaded [`Account`]. Concurrent first uses in one process wait
//! for the same load (a `OnceCell`), so a process never registers two accounts. Two processes
//! starting at once on an empty vault may each register one; the last stored wins and both
//! stay valid at the CA, which is harmless.

use std::sync::Arc;

use edgecert_core::model::SecretString;
use edgecert_core::ports::Vault;
use instant_acme::{Account, AccountCredentials, HttpClient, NewAccount};
use tokio::sync::OnceCell;

use crate::error::{AcmeError, Result};
use crate::http::SharedHttpClient;

/// Lazily loaded ACME account of one directory.
pub(crate) struct AccountSlot {
    directory_url: String,
    contact_email: Option<String>,
    http: Arc<dyn HttpClient>,
    account: OnceCell<Account>,
}

/// Why the account could not be had.
#[derive(Debug)]
pub(crate) enum AccountFailure {
    /// The vault failed.
    Vault(edgecert_core::Error),
    /// The CA or the stored credentials failed.
    Acme(AcmeError),
}

impl AccountSlot {
    pub(crate) fn new(
        directory_url: String,
        contact_email: Option<String>,
        http: Arc<dyn HttpClient>,
    ) -> AccountSlot {
        AccountSlot {
            directory_url,
            contact_email,
            http,
            account: OnceCell::new(),
        }
    }

    /// The account, loaded or registered on first use. A failed load is retried next time.
    pub(crate) async fn get(&self, vault: &dyn Vault) -> Result<&Account, AccountFailure> {
        self.account.get_or_try_init(|| self.load(vault)).await
    }

    async fn load(&self, vault: &dyn Vault) -> Result<Account, AccountFailure> {
        let stored = vault
            .get_acme_account(&self.directory_url)
            .await
            .map_err(AccountFailure::Vault)?;
        if let Some(stored) = stored {
            let credentials: AccountCredentials = serde_json::from_str(stored.expose())
                .map_err(|e| AccountFailure::Acme(e.into()))?;
            let account = Account::builder_with_http(self.http())
                .from_credentials(credentials)
                .await
                .map_err(|e| AccountFailure::Acme(e.into()))?;
            tracing::debug!(directory_url = %self.directory_url, "ACME account loaded");
            return Ok(account);
        }
        let contact = self
            .contact_email
            .as_ref()
            .map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(self.http())
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory_url.clone(),
                None,
            )
            .await
            .map_err(|e| AccountFailure::Acme(e.into()))?;
        let json =
            serde_json::to_string(&credentials).map_err(|e| AccountFailure::Acme(e.into()))?;
        vault
            .put_acme_account(&self.directory_url, &SecretString::new(json))
            .await
            .map_err(AccountFailure::Vault)?;
        // The account URL identifies the account at the CA; it is not a credential.
        tracing::info!(
            directory_url = %self.directory_url,
            account = account.id(),
            "ACME account registered"
        );
        Ok(account)
    }

    fn http(&self) -> Box<dyn HttpClient> {
        Box::new(SharedHttpClient(self.http.clone()))
    }
}
