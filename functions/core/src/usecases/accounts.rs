//! Accounts: created by the operator, authenticated by API key.

use crate::error::{Error, ItemKind, Result};
use crate::ids::AccountId;
use crate::model::{Account, AccountUsage, ApiKey, ApiKeyHash, SecretString};
use crate::plan::{Plan, PlanName};
use crate::ports::{Page, PageRequest};
use crate::usecases::Services;
use crate::usecases::domains::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// What the operator sends to create an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Display name (1 to 200 characters).
    pub name: String,
    /// The plan.
    pub plan: PlanName,
    /// Whether domains must prove ownership by TXT record first.
    pub require_ownership_verification: bool,
}

/// Creates an account and its first API key; the key's plain text is returned once.
pub async fn create_account(
    services: &Services,
    new: NewAccount,
) -> Result<(Account, SecretString)> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::BadRequest {
            code: "invalid_name",
            message: "name must be 1 to 200 characters".to_owned(),
        });
    }
    let account = Account {
        id: AccountId::generate(),
        name: name.to_owned(),
        plan: new.plan,
        require_ownership_verification: new.require_ownership_verification,
        created_at: services.clock.now(),
        version: 1,
    };
    let key = ApiKey::generate();
    services.store.create_account(&account, &key.hash).await?;
    Ok((account, key.plaintext))
}

/// Every account, a page at a time, oldest first (the operator's list).
pub async fn list_accounts(
    services: &Services,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<Account>> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    services
        .store
        .list_accounts(PageRequest { cursor, limit })
        .await
}

/// What the operator may change on an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    /// New plan.
    pub plan: Option<PlanName>,
    /// New display name.
    pub name: Option<String>,
    /// New ownership-verification requirement (applies to domains created from then on).
    pub require_ownership_verification: Option<bool>,
}

/// Applies operator changes to an account.
pub async fn update_account(
    services: &Services,
    id: &AccountId,
    changes: AccountChanges,
) -> Result<Account> {
    let mut account = services
        .store
        .get_account(id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Account))?;
    if let Some(plan) = changes.plan {
        account.plan = plan;
    }
    if let Some(name) = changes.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::BadRequest {
                code: "invalid_name",
                message: "name must be 1 to 200 characters".to_owned(),
            });
        }
        account.name = name.to_owned();
    }
    if let Some(required) = changes.require_ownership_verification {
        account.require_ownership_verification = required;
    }
    services.store.update_account(&account).await
}

/// The account a presented API key belongs to; [`Error::Unauthorized`] otherwise.
pub async fn authenticate(services: &Services, presented_key: Option<&str>) -> Result<AccountId> {
    let key = presented_key
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or(Error::Unauthorized)?;
    services
        .store
        .account_for_api_key(&ApiKeyHash::of(key))
        .await?
        .ok_or(Error::Unauthorized)
}

/// An account's plan and what it uses of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The plan in force.
    pub plan: Plan,
    /// Current counters.
    pub usage: AccountUsage,
}

/// The limits of an authenticated account.
pub async fn limits(services: &Services, id: &AccountId) -> Result<Limits> {
    let account = services
        .store
        .get_account(id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Account))?;
    let usage = services.store.account_usage(id).await?;
    Ok(Limits {
        plan: *services.plans.get(account.plan),
        usage,
    })
}
