//! Accounts: created by the operator, authenticated by API key.

use crate::error::{Error, ItemKind, Result};
use crate::ids::AccountId;
use crate::model::{Account, AccountUsage, ApiKey, ApiKeyHash, SecretString};
use crate::plan::{Plan, PlanName};
use crate::ports::{Page, PageRequest};
use crate::usecases::Services;
use crate::usecases::domains::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::usecases::profiles::{self, ProfileChange};

/// Longest account name, in characters.
pub const MAX_ACCOUNT_NAME_CHARS: usize = 200;

/// Checks a display name: trimmed, 1 to [`MAX_ACCOUNT_NAME_CHARS`] characters, and no control
/// or invisible formatting characters (line breaks, escapes, bidirectional overrides,
/// zero-width characters), which would let a name forge log lines or disguise itself where an
/// operator reads it.
pub fn account_name(input: &str) -> Result<String> {
    let name = input.trim();
    let invalid = |message: String| Error::BadRequest {
        code: "invalid_name",
        message,
    };
    if name.is_empty() || name.chars().count() > MAX_ACCOUNT_NAME_CHARS {
        return Err(invalid(format!(
            "name must be 1 to {MAX_ACCOUNT_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(is_hidden_character) {
        return Err(invalid(
            "name must not contain control or invisible formatting characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

/// Control characters (C0, DEL, C1) and the invisible format characters that change how text
/// around them is shown: zero-width ones, bidirectional embeddings, overrides and isolates,
/// the byte order mark.
fn is_hidden_character(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// What the operator sends to create an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Display name (see [`account_name`]).
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
    let name = account_name(&new.name)?;
    let account = Account::new(
        name,
        new.plan,
        new.require_ownership_verification,
        services.clock.now(),
    );
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
    /// The ACME profile its certificates are ordered with, unless their domain or the
    /// certificate says otherwise (applies from each certificate's next order on).
    pub acme_profile: ProfileChange,
}

/// Applies operator changes to an account.
pub async fn update_account(
    services: &Services,
    id: &AccountId,
    changes: AccountChanges,
) -> Result<Account> {
    let acme_profile = profiles::check_change(services, changes.acme_profile).await?;
    let mut account = get_account(services, id).await?;
    if let Some(plan) = changes.plan {
        account.plan = plan;
    }
    if let Some(name) = changes.name {
        account.name = account_name(&name)?;
    }
    if let Some(required) = changes.require_ownership_verification {
        account.require_ownership_verification = required;
    }
    if let Some(profile) = acme_profile {
        account.acme_profile = profile;
    }
    services.store.update_account(&account).await
}

/// The stored account, or [`Error::NotFound`].
pub async fn get_account(services: &Services, id: &AccountId) -> Result<Account> {
    services
        .store
        .get_account(id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Account))
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
    let account = get_account(services, id).await?;
    let usage = services.store.account_usage(id).await?;
    Ok(Limits {
        plan: *services.plans.get(account.plan),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, defect 8: no control characters, trimmed, capped.
    #[test]
    fn account_names_are_trimmed_capped_and_printable() {
        assert_eq!(
            account_name("  Shop Builder Inc \t").unwrap(),
            "Shop Builder Inc"
        );
        assert_eq!(account_name("Bücher GmbH").unwrap(), "Bücher GmbH");
        let longest = "x".repeat(MAX_ACCOUNT_NAME_CHARS);
        assert_eq!(account_name(&longest).unwrap(), longest);
        for (input, reason) in [
            ("", "1 to 200"),
            ("   ", "1 to 200"),
            (&*"x".repeat(MAX_ACCOUNT_NAME_CHARS + 1), "1 to 200"),
            ("Acme\nadmin=true", "control"),
            ("Ac\rme", "control"),
            ("Acme\u{1b}[31m", "control"),
            ("Acme\u{0}", "control"),
            ("Acme\u{7f}", "control"),
            ("Ac\u{85}me", "control"),
            ("Acme\u{202e}cni", "control"),
            ("Ac\u{200b}me", "control"),
        ] {
            let error = account_name(input).expect_err(input);
            assert_eq!((error.status(), error.code()), (400, "invalid_name"));
            assert!(error.to_string().contains(reason), "{input:?}: {error}");
        }
    }
}
