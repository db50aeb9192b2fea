//! DNS zones an account imports for DNS-01 certificates: import (with verification), list,
//! delete.
//!
//! A zone is verified before it is stored: a random TXT value is written at
//! `_edgecert-zone-verify.<zone>` through the zone's DNS provider and must then be read back from
//! DNS through the resolver. That proves both that the provider accepts our writes for this zone
//! (the DNS-01 solver will need them) and that the zone's public name servers serve what the
//! provider holds (the CA will ask them). A zone that fails is not stored at all.

use rand::Rng;

use crate::error::{Error, ItemKind, Result};
use crate::hostname::Hostname;
use crate::ids::{AccountId, ZoneId};
use crate::model::{Account, Zone};
use crate::ports::{DnsProvider, Page, PageRequest};
use crate::usecases::Services;
use crate::usecases::domains::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Leftmost label of the verification record.
pub const VERIFICATION_LABEL: &str = "_edgecert-zone-verify";

/// Longest provider zone id accepted (Route 53 ids are ~32 characters with their prefix).
const MAX_PROVIDER_ZONE_ID: usize = 128;

/// What a client sends to import a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewZone {
    /// The zone apex, e.g. `example.com`.
    pub name: String,
    /// The DNS provider's name (`route53`, `challtestsrv`).
    pub provider: String,
    /// The provider's id for the zone (a Route 53 hosted zone id).
    pub provider_zone_id: String,
}

/// The name of a zone's verification TXT record.
pub fn verification_record_name(zone: &Hostname) -> String {
    format!("{VERIFICATION_LABEL}.{zone}")
}

/// Imports and verifies a zone; stores it only when verification passed.
///
/// Certificates are a paid feature, and zones exist only for them, so the free plan is refused
/// with the reference's sentence.
pub async fn import_zone(
    services: &Services,
    account_id: &AccountId,
    new: NewZone,
) -> Result<Zone> {
    let account = account(services, account_id).await?;
    services
        .plans
        .get(account.plan)
        .check_certificates_allowed()?;
    let name = Hostname::parse_domain(&new.name)?;
    let provider_name = new.provider.trim();
    let provider = services.dns_providers.get(provider_name)?;
    let provider_zone_id = check_provider_zone_id(&new.provider_zone_id)?;
    let zone = Zone {
        id: ZoneId::generate(),
        account_id: account_id.clone(),
        name,
        provider: provider_name.to_owned(),
        provider_zone_id,
        verified: false,
        created_at: services.clock.now(),
        version: 1,
    };
    verify(services, provider.as_ref(), &zone).await?;
    let zone = Zone {
        verified: true,
        ..zone
    };
    services.store.create_zone(&zone).await?;
    Ok(zone)
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

async fn account(services: &Services, id: &AccountId) -> Result<Account> {
    services
        .store
        .get_account(id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Account))
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
