//! DNS zones an account imports for DNS-01 certificates: import (with verification), list,
//! delete, and the zone token an account proves control with.
//!
//! A zone is imported only when three things hold, checked in this order:
//! 1. **The account itself proves that the zone's owner lets it use the zone**: the account's
//!    zone token ([`ZoneToken`]) is published as TXT at `_edgecert-zone.<zone>` and read back
//!    through the resolver (public DNS). EdgeCert being able to write the zone proves nothing
//!    about the tenant: on one provider account, every tenant could write every zone.
//! 2. **The provider lets this account reach the zone** ([`DnsProvider::check_access`]): on
//!    Route 53 a role in the account's own AWS account, or an operator's grant.
//! 3. **The provider's writes reach public DNS**: a random TXT value is written at
//!    `_edgecert-zone-verify.<zone>` through the provider and must be read back through the
//!    resolver (the DNS-01 solver needs both), then removed.
//!
//! A zone name belongs to one account at a time: the store claims it atomically when the zone
//! is stored ([`Error::ZoneExists`]) and frees it when the zone is deleted. A zone that fails
//! is not stored at all.

use rand::Rng;

use crate::error::{Error, ItemKind, Result};
use crate::hostname::Hostname;
use crate::ids::{AccountId, ZoneId};
use crate::model::{Zone, ZoneToken};
use crate::ports::{DnsProvider, Page, PageRequest};
use crate::usecases::domains::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::usecases::versioned::retry_on_conflict;
use crate::usecases::{Services, accounts};

/// Leftmost label of the provider write check's record.
pub const VERIFICATION_LABEL: &str = "_edgecert-zone-verify";
/// Leftmost label of the record holding the account's zone token.
pub const TOKEN_LABEL: &str = "_edgecert-zone";

/// Longest provider zone id accepted (Route 53 ids are ~32 characters with their prefix).
const MAX_PROVIDER_ZONE_ID: usize = 128;
/// Longest role ARN accepted (IAM allows 2048 characters).
const MAX_ROLE_ARN: usize = 2048;

/// What a client sends to import a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewZone {
    /// The zone apex, e.g. `example.com`.
    pub name: String,
    /// The DNS provider's name (`route53`, `challtestsrv`).
    pub provider: String,
    /// The provider's id for the zone (a Route 53 hosted zone id).
    pub provider_zone_id: String,
    /// A role in the account's own provider account for the provider to assume (Route 53: an
    /// IAM role ARN); see [`Zone::role_arn`].
    pub role_arn: Option<String>,
}

/// The name of a zone's provider write check record.
pub fn verification_record_name(zone: &Hostname) -> String {
    format!("{VERIFICATION_LABEL}.{zone}")
}

/// The name of the TXT record that must hold the account's zone token.
pub fn token_record_name(zone: &Hostname) -> String {
    format!("{TOKEN_LABEL}.{zone}")
}

/// The TXT record an account publishes to prove it may use a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The record's name for the zone asked about (`_edgecert-zone.example.com`); `None` when
    /// no zone was named.
    pub name: Option<String>,
    /// The record's leftmost label, under any zone: [`TOKEN_LABEL`].
    pub label: &'static str,
    /// The value: the account's zone token.
    pub value: String,
}

/// The account's zone token, giving the account one first if it has none yet (accounts
/// created before zone tokens existed).
pub async fn zone_token(services: &Services, account_id: &AccountId) -> Result<String> {
    // Someone else may change the account meanwhile, perhaps giving it a token: read again.
    retry_on_conflict(|| async move {
        let mut account = accounts::get_account(services, account_id).await?;
        if let Some(token) = account.zone_token {
            return Ok(token);
        }
        let token = ZoneToken::generate();
        account.zone_token = Some(token.clone());
        services.store.update_account(&account).await?;
        Ok(token)
    })
    .await
}

/// The TXT record the account must publish to import `zone` (or any zone, without one).
pub async fn token_record(
    services: &Services,
    account_id: &AccountId,
    zone: Option<&str>,
) -> Result<TokenRecord> {
    let name = match zone {
        Some(zone) => Some(token_record_name(&Hostname::parse_domain(zone)?)),
        None => None,
    };
    Ok(TokenRecord {
        name,
        label: TOKEN_LABEL,
        value: zone_token(services, account_id).await?,
    })
}

/// Imports and verifies a zone; stores it only when every check passed (see the module
/// documentation for the checks and their order).
///
/// Certificates are a paid feature, and zones exist only for them, so the free plan is refused
/// with the reference's sentence.
pub async fn import_zone(
    services: &Services,
    account_id: &AccountId,
    new: NewZone,
) -> Result<Zone> {
    let account = accounts::get_account(services, account_id).await?;
    services
        .plans
        .get(account.plan)
        .check_certificates_allowed()?;
    let name = Hostname::parse_domain(&new.name)?;
    let provider_name = new.provider.trim();
    let provider = services.dns_providers.get(provider_name)?;
    let provider_zone_id = check_provider_zone_id(&new.provider_zone_id)?;
    let role_arn = new.role_arn.as_deref().map(check_role_arn).transpose()?;
    // A quick answer for a name already taken, before any DNS or provider work; the store's
    // atomic claim below is what decides between concurrent imports.
    if services.store.zone_by_name(&name).await?.is_some() {
        return Err(Error::ZoneExists);
    }
    let token = zone_token(services, account_id).await?;
    let zone = Zone {
        id: ZoneId::generate(),
        account_id: account_id.clone(),
        name,
        provider: provider_name.to_owned(),
        provider_zone_id,
        role_arn,
        verified: false,
        created_at: services.clock.now(),
        version: 1,
    };
    prove_control(services, &zone, &token).await?;
    provider.check_access(&zone).await?;
    verify(services, provider.as_ref(), &zone).await?;
    let zone = Zone {
        verified: true,
        ..zone
    };
    services.store.create_zone(&zone).await?;
    Ok(zone)
}

/// Whether the account's zone token is published at the zone's token record.
async fn prove_control(services: &Services, zone: &Zone, token: &str) -> Result<()> {
    let record = token_record_name(&zone.name);
    match services.resolver.txt(&record).await {
        Ok(values) if values.iter().any(|seen| seen.trim() == token) => Ok(()),
        Ok(_) => Err(Error::ZoneTokenNotFound {
            record,
            value: token.to_owned(),
        }),
        Err(_) => Err(Error::ZoneVerificationFailed {
            reason: format!(
                "the DNS lookup of {record} failed; check that the zone's name servers answer for it"
            ),
            record,
        }),
    }
}

/// Whether the account holds the claim on the zone's name: zones stored before names were
/// claimed, and any zone whose name is now another account's, are unusable until imported
/// again (which proves the account's control).
pub async fn check_claimed(services: &Services, zone: &Zone) -> Result<()> {
    match services.store.zone_by_name(&zone.name).await? {
        Some(holder) if holder.account_id == zone.account_id => Ok(()),
        _ => Err(Error::ZoneAccessDenied {
            reason: format!(
                "zone {} is not proven for this account (it was imported before accounts proved their zones); import it again with the account's zone token",
                zone.name
            ),
        }),
    }
}

fn check_provider_zone_id(input: &str) -> Result<String> {
    let id = input.trim();
    if id.is_empty()
        || id.len() > MAX_PROVIDER_ZONE_ID
        || !id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(Error::BadRequest {
            code: "invalid_provider_zone_id",
            message: format!(
                "provider_zone_id must be 1 to {MAX_PROVIDER_ZONE_ID} printable ASCII characters"
            ),
        });
    }
    Ok(id.to_owned())
}

/// A role ARN as the client gave it, trimmed; its form is the provider's to judge.
fn check_role_arn(input: &str) -> Result<String> {
    let arn = input.trim();
    if arn.is_empty()
        || arn.len() > MAX_ROLE_ARN
        || !arn.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(Error::BadRequest {
            code: "invalid_role_arn",
            message: format!("role_arn must be 1 to {MAX_ROLE_ARN} printable ASCII characters"),
        });
    }
    Ok(arn.to_owned())
}

fn verification_value() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let random: String = (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("edgecert-zone-verify-{random}")
}

/// Writes a random TXT value through the provider, reads it back through the resolver, and
/// removes it again whatever the outcome.
async fn verify(services: &Services, provider: &dyn DnsProvider, zone: &Zone) -> Result<()> {
    let record = verification_record_name(&zone.name);
    let value = verification_value();
    let failed = |reason: String| Error::ZoneVerificationFailed {
        record: record.clone(),
        reason,
    };
    // Any failure of the provider counts as the zone failing verification (422), not as our
    // outage: an unknown hosted zone id or missing rights are by far the usual causes, and
    // only the client can fix them. The provider's own error text is not shown (it may name
    // internal resources).
    let written = provider.set_txt(zone, &record, &value).await;
    let seen = match written {
        Ok(()) => Some(services.resolver.txt(&record).await),
        Err(_) => None,
    };
    // Removing the record is best-effort: a leftover random value harms nothing, and failing
    // the import over it would throw a successful verification away.
    let _ = provider.clear_txt(zone, &record).await;
    match seen {
        None => Err(failed(format!(
            "the {} DNS provider could not write the TXT record {record} in zone {} (or not in time); check provider_zone_id and the provider's permissions",
            zone.provider, zone.provider_zone_id
        ))),
        Some(Ok(values)) if values.iter().any(|seen| seen.trim() == value) => Ok(()),
        Some(Ok(_)) => Err(failed(format!(
            "the TXT record {record} written through {} was not found in DNS; check that the zone's name servers are the provider's",
            zone.provider
        ))),
        Some(Err(_)) => Err(failed(format!(
            "the DNS lookup of {record} failed; check that the zone's name servers answer for it"
        ))),
    }
}

/// A page of the account's zones, oldest first.
pub async fn list_zones(
    services: &Services,
    account_id: &AccountId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<Zone>> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    services
        .store
        .list_zones(account_id, PageRequest { cursor, limit })
        .await
}

/// One of the account's zones, or 404 "Zone not found or no permission".
pub async fn get_zone(services: &Services, account_id: &AccountId, id: &ZoneId) -> Result<Zone> {
    services
        .store
        .get_zone(account_id, id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Zone))
}

/// Deletes one of the account's zones. Certificates issued in it keep their material; their
/// next issuance fails pre-flight with "Zone not found or no permission" until they are
/// deleted.
pub async fn delete_zone(services: &Services, account_id: &AccountId, id: &ZoneId) -> Result<()> {
    get_zone(services, account_id, id).await?;
    services.store.delete_zone(account_id, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_record_sits_under_the_zone() {
        let zone = Hostname::parse_domain("Example.COM.").unwrap();
        assert_eq!(
            verification_record_name(&zone),
            "_edgecert-zone-verify.example.com"
        );
    }

    #[test]
    fn the_token_record_sits_under_the_zone() {
        let zone = Hostname::parse_domain("Example.COM.").unwrap();
        assert_eq!(token_record_name(&zone), "_edgecert-zone.example.com");
    }

    #[test]
    fn role_arns_are_printable_and_bounded() {
        assert_eq!(
            check_role_arn(" arn:aws:iam::111111111111:role/EdgeCertDns ").unwrap(),
            "arn:aws:iam::111111111111:role/EdgeCertDns"
        );
        for bad in ["", " ", "arn:aws:iam::1:role/a b", &"a".repeat(2049)] {
            let error = check_role_arn(bad).unwrap_err();
            assert_eq!(
                (error.status(), error.code()),
                (400, "invalid_role_arn"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn provider_zone_ids_are_printable_and_bounded() {
        assert_eq!(
            check_provider_zone_id(" /hostedzone/Z0123456789ABC ").unwrap(),
            "/hostedzone/Z0123456789ABC"
        );
        for bad in ["", "   ", "a b", "zone\u{e9}", &"z".repeat(129)] {
            let error = check_provider_zone_id(bad).unwrap_err();
            assert_eq!(
                (error.status(), error.code()),
                (400, "invalid_provider_zone_id"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verification_values_are_random() {
        let (first, second) = (verification_value(), verification_value());
        assert_ne!(first, second);
        assert!(first.starts_with("edgecert-zone-verify-") && first.len() == 53);
    }
}
