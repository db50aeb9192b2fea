//! Downloadable certificates (DNS-01 on an account's verified zone): request, read, list,
//! download, manual renewal, settings (auto-renewal, ACME profile), delete (with revocation) and logs.
//!
//! Issuance is asynchronous: a request stores the certificate `pending` and due now, and the
//! issuer (the table's stream in AWS, the in-process worker locally) picks it up. Managed
//! certificates (those serving whitelisted domains) belong to their domains: on these routes
//! they answer 404 like any certificate the account does not have.
//!
//! The checks of a request run in the reference's order, each with its sentence: paid plan,
//! zone, names under the zone, wildcard plan, auto-renew plan, then the plan's limit and the
//! per-account uniqueness of the primary name (both enforced atomically by the store). Two
//! checks of tenant isolation come with the zone and the names: the zone's name must be
//! claimed by this account (imported with its zone token), and no name may be whitelisted by
//! another account ([`check_names_unclaimed`], which the issuer's pre-flight asks again).

use time::OffsetDateTime;

use crate::error::{Error, ItemKind, Result};
use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, ZoneId};
use crate::model::{
    Certificate, CertificateEvent, CertificateKind, CertificateStatus, EventLevel, KeyType,
    SecretString, Zone,
};
use crate::ports::{MaterialVersion, PageRequest};
use crate::usecases::Services;
use crate::usecases::accounts::{self, Limits};
use crate::usecases::profiles::{self, ProfileChange};
use crate::usecases::versioned::{change_certificate, retry_on_conflict};
use crate::usecases::zones;

/// Most names one certificate may carry besides its primary name (Let's Encrypt allows 100
/// names per certificate).
pub const MAX_SANS: usize = 99;
/// Certificates per list page when the client does not say; covers every default plan's
/// maximum but the largest.
pub const DEFAULT_LIST_SIZE: u32 = 100;
/// Largest list page a client may ask for.
pub const MAX_LIST_SIZE: u32 = 100;
/// Events returned when the client does not say.
pub const DEFAULT_EVENTS: u32 = 100;
/// Most events one request returns.
pub const MAX_EVENTS: u32 = 1000;
/// Store pages read for one list request at most: managed certificates share the account's
/// list, so a page of downloadable ones may take several reads; past this, the client gets a
/// shorter page and a cursor.
const LIST_READS: usize = 10;

/// What a client sends to request a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// `zone_…` of a verified zone of the account.
    pub zone_id: String,
    /// Primary name; `example.com` with `wildcard` means `*.example.com`.
    pub domain: String,
    /// Additional names.
    pub sans: Vec<String>,
    /// Whether the primary name is the wildcard of `domain`.
    pub wildcard: bool,
    /// Renew automatically.
    pub auto_renew: bool,
    /// Key algorithm.
    pub key_type: KeyType,
    /// The ACME profile it is ordered with, instead of the account's.
    pub acme_profile: Option<String>,
}

/// The primary name of a request: `*.domain` when `wildcard` is asked (`domain` may already
/// carry the `*.`), and a `*.` domain only together with `wildcard: true`, so the flag and the
/// name never disagree.
pub fn primary_name(domain: &str, wildcard: bool) -> Result<Hostname> {
    let name = Hostname::parse_certificate_name(domain)?;
    match (name.is_wildcard(), wildcard) {
        (true, true) | (false, false) => Ok(name),
        (true, false) => Err(Error::InvalidHostname(
            "a *. domain needs \"wildcard\": true".to_owned(),
        )),
        (false, true) => Hostname::parse_certificate_name(&format!("*.{name}")),
    }
}

/// The additional names: checked, without repeats and without the primary name.
fn san_names(primary: &Hostname, sans: &[String]) -> Result<Vec<Hostname>> {
    let mut names: Vec<Hostname> = Vec::with_capacity(sans.len());
    for input in sans {
        let name = Hostname::parse_certificate_name(input)?;
        if &name != primary && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.len() > MAX_SANS {
        return Err(Error::BadRequest {
            code: "too_many_names",
            message: format!("a certificate may carry at most {MAX_SANS} sans"),
        });
    }
    Ok(names)
}

/// Stores a new downloadable certificate, `pending` and due now.
pub async fn request_certificate(
    services: &Services,
    account_id: &AccountId,
    request: CertificateRequest,
) -> Result<Certificate> {
    let account = accounts::get_account(services, account_id).await?;
    let plan = services.plans.get(account.plan);
    plan.check_certificates_allowed()?;
    let zone = verified_zone(services, account_id, &request.zone_id).await?;
    let domain = primary_name(&request.domain, request.wildcard)?;
    let sans = san_names(&domain, &request.sans)?;
    if std::iter::once(&domain)
        .chain(&sans)
        .any(|name| !name.is_under(&zone.name))
    {
        return Err(Error::DomainNotUnderZone);
    }
    let names: Vec<&Hostname> = std::iter::once(&domain).chain(&sans).collect();
    check_names_unclaimed(services, account_id, &names).await?;
    if std::iter::once(&domain)
        .chain(&sans)
        .any(Hostname::is_wildcard)
    {
        plan.check_wildcard_allowed()?;
    }
    if request.auto_renew {
        plan.check_auto_renew_allowed()?;
    }
    let acme_profile = match &request.acme_profile {
        Some(profile) => Some(profiles::check_profile(services, profile).await?),
        None => None,
    };
    let now = services.clock.now();
    check_order_budget(services, now).await?;
    let certificate = Certificate::downloadable(account_id.clone(), zone.id, domain, sans, now)
        .with_key_type(request.key_type)
        .with_auto_renew(request.auto_renew)
        .with_acme_profile(acme_profile);
    services
        .store
        .create_certificate(&certificate, plan.max_certificates)
        .await?;
    log(
        services,
        &certificate.id,
        "requested",
        format!(
            "Certificate requested for {}; issuance starts shortly",
            names_text(&certificate)
        ),
    )
    .await;
    Ok(certificate)
}

/// Refuses a new certificate while the budget of new orders at the CA account is spent
/// ([`Error::OrderBudgetSpent`], 429 with when a token is next expected): it would only wait,
/// unseen, in the queue. Read without taking anything: the issuer takes the token when it
/// orders. A process that orders under no budget (no CA configured) does not check.
async fn check_order_budget(services: &Services, now: OffsetDateTime) -> Result<()> {
    let Some(issuance) = &services.issuance else {
        return Ok(());
    };
    match issuance.order_budget_level().await? {
        Some(level) if level.available == 0 => Err(Error::order_budget_spent(
            level.next_token_at.unwrap_or(now),
            now,
        )),
        _ => Ok(()),
    }
}

/// The zone a request names, when it is the account's and verified; the reference's 404
/// otherwise (a malformed id included, so ids cannot be probed). A zone whose name the account
/// does not hold the claim on is refused ([`zones::check_claimed`]).
async fn verified_zone(services: &Services, account_id: &AccountId, zone_id: &str) -> Result<Zone> {
    let id = ZoneId::parse(zone_id.trim()).map_err(|_| Error::NotFound(ItemKind::Zone))?;
    let zone = services
        .store
        .get_zone(account_id, &id)
        .await?
        .filter(|zone| zone.verified)
        .ok_or(Error::NotFound(ItemKind::Zone))?;
    zones::check_claimed(services, &zone).await?;
    Ok(zone)
}

/// Refuses certificate names that another account has whitelisted as a domain:
/// [`Error::NameClaimedByAnotherAccount`] naming the whitelisted hostname.
///
/// A wildcard `*.example.com` is refused when `example.com` itself is another account's
/// domain. It is not refused for another account's `shop.example.com`, although it would
/// cover that name: the zone's owner proved it lets this account use the whole zone, the edge
/// keeps serving the other account's own certificate for its name (it chooses by exact SNI),
/// and whitelisting needs no proof of ownership by default, so letting any whitelisted
/// subdomain block a wildcard would let any account block any zone's wildcard.
pub async fn check_names_unclaimed(
    services: &Services,
    account_id: &AccountId,
    names: &[&Hostname],
) -> Result<()> {
    for name in names {
        let whitelisted = if name.is_wildcard() {
            // A base that is not a valid domain (a public suffix) is nobody's domain.
            match Hostname::parse_domain(name.base()) {
                Ok(base) => base,
                Err(_) => continue,
            }
        } else {
            (*name).clone()
        };
        let owner = services.store.domain_by_hostname(&whitelisted).await?;
        if owner.is_some_and(|domain| &domain.account_id != account_id) {
            return Err(Error::NameClaimedByAnotherAccount {
                name: whitelisted.to_string(),
            });
        }
    }
    Ok(())
}

/// One of the account's downloadable certificates, or 404.
pub async fn get_certificate(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
) -> Result<Certificate> {
    services
        .store
        .get_certificate(account_id, id)
        .await?
        .filter(|certificate| matches!(certificate.kind, CertificateKind::Downloadable { .. }))
        .ok_or(Error::NotFound(ItemKind::Certificate))
}

/// A page of the account's downloadable certificates with the plan's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateList {
    /// Oldest first.
    pub certificates: Vec<Certificate>,
    /// Cursor of the next page, `None` on the last one.
    pub next_cursor: Option<String>,
    /// The plan and what the account uses of it.
    pub limits: Limits,
}

/// The account's downloadable certificates, up to `limit` (default [`DEFAULT_LIST_SIZE`]).
pub async fn list_certificates(
    services: &Services,
    account_id: &AccountId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<CertificateList> {
    let limits = accounts::limits(services, account_id).await?;
    let limit = limit.unwrap_or(DEFAULT_LIST_SIZE).clamp(1, MAX_LIST_SIZE);
    let mut certificates = Vec::new();
    let mut cursor = cursor;
    for _ in 0..LIST_READS {
        // Never ask for more than still fits: the store's cursor can only resume after a
        // whole page, so a page must not hold more downloadable certificates than we return.
        let wanted = limit - u32::try_from(certificates.len()).unwrap_or(limit);
        let page = services
            .store
            .list_certificates(
                account_id,
                PageRequest {
                    cursor,
                    limit: wanted,
                },
            )
            .await?;
        certificates.extend(page.items.into_iter().filter(|certificate| {
            matches!(certificate.kind, CertificateKind::Downloadable { .. })
        }));
        cursor = page.next_cursor;
        if cursor.is_none() || certificates.len() >= limit as usize {
            break;
        }
    }
    Ok(CertificateList {
        certificates,
        next_cursor: cursor,
        limits,
    })
}

/// What a client downloads: the leaf, the intermediates and the key, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The leaf certificate.
    pub certificate_pem: String,
    /// The intermediates, in order (may be empty).
    pub chain_pem: String,
    /// The PKCS#8 private key.
    pub private_key_pem: SecretString,
}

/// Splits a PEM chain into its first certificate and the rest.
pub fn split_chain(chain_pem: &str) -> Option<(String, String)> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = chain_pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = start + chain_pem[start..].find(END)? + END.len();
    let leaf = format!("{}\n", &chain_pem[start..end]);
    Some((leaf, chain_pem[end..].trim_start().to_owned()))
}

/// The served material of an issued certificate; [`Error::NotIssued`] while there is none to
/// serve (never issued, expired or revoked). A renewal in flight keeps serving the current one.
pub async fn download(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
) -> Result<Download> {
    let certificate = get_certificate(services, account_id, id).await?;
    let now = services.clock.now();
    let serving = matches!(
        certificate.status,
        CertificateStatus::Issued | CertificateStatus::Validating
    ) && certificate.expires_at.is_some_and(|at| at > now);
    let version = match (&certificate.material_version, serving) {
        (Some(version), true) => MaterialVersion(version.clone()),
        _ => return Err(Error::NotIssued),
    };
    let material = services.vault.get_material(id, &version).await?;
    let chain = material
        .chain_pem
        .ok_or_else(|| Error::Corrupt(format!("material of {id} has no chain")))?;
    let (certificate_pem, chain_pem) = split_chain(&chain)
        .ok_or_else(|| Error::Corrupt(format!("material of {id} holds no certificate")))?;
    Ok(Download {
        certificate_pem,
        chain_pem,
        private_key_pem: material.private_key_pem,
    })
}

/// Renews now: status `validating`, backoff reset, due at once. Repeating it while the
/// renewal is queued or running changes nothing.
pub async fn renew(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
) -> Result<Certificate> {
    let plan = *services
        .plans
        .get(accounts::get_account(services, account_id).await?.plan);
    let renewed = retry_on_conflict(|| async move {
        let mut certificate = get_certificate(services, account_id, id).await?;
        plan.check_manual_renew_allowed()?;
        if certificate.names().any(Hostname::is_wildcard) {
            plan.check_wildcard_allowed()?;
        }
        let now = services.clock.now();
        // Renewing by hand cannot hurry an order the budget holds back.
        if let Some(until) = certificate.held_by_order_budget(now) {
            return Err(Error::order_budget_spent(until, now));
        }
        match certificate.status {
            CertificateStatus::Pending | CertificateStatus::Validating => {
                return Ok((certificate, false));
            }
            CertificateStatus::Revoked => {
                return Err(Error::BadRequest {
                    code: "certificate_revoked",
                    message: "A revoked certificate cannot be renewed; request a new one"
                        .to_owned(),
                });
            }
            CertificateStatus::Issued | CertificateStatus::Failed | CertificateStatus::Expired => {}
        }
        certificate.status = CertificateStatus::Validating;
        certificate.consecutive_failures = 0;
        certificate.next_attempt_at = Some(now);
        certificate.last_error = None;
        certificate.updated_at = now;
        Ok((
            stored_or_404(services.store.update_certificate(&certificate).await)?,
            true,
        ))
    })
    .await?;
    if let (certificate, true) = &renewed {
        log(
            services,
            &certificate.id,
            "renewal",
            "Manual renewal requested".to_owned(),
        )
        .await;
    }
    Ok(renewed.0)
}

/// What a client may change on a certificate; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateChanges {
    /// Auto-renewal on (the plan must include it) or off.
    pub auto_renew: Option<bool>,
    /// Another ACME profile for its next order, or none (the account's).
    pub acme_profile: ProfileChange,
}

/// Turns auto-renewal on (the plan must include it) or off.
pub async fn set_auto_renew(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
    auto_renew: bool,
) -> Result<Certificate> {
    let changes = CertificateChanges {
        auto_renew: Some(auto_renew),
        acme_profile: None,
    };
    update_certificate(services, account_id, id, changes).await
}

/// Changes a certificate's settings. They apply from then on: the store moves the certificate
/// in the due index, and a new profile is used from the next order.
pub async fn update_certificate(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
    changes: CertificateChanges,
) -> Result<Certificate> {
    let plan = *services
        .plans
        .get(accounts::get_account(services, account_id).await?.plan);
    if changes.auto_renew == Some(true) {
        plan.check_auto_renew_allowed()?;
    }
    let acme_profile = profiles::check_change(services, changes.acme_profile).await?;
    let (certificate, notes) = retry_on_conflict(|| {
        let acme_profile = acme_profile.clone();
        async move {
            let mut certificate = get_certificate(services, account_id, id).await?;
            let mut notes = Vec::new();
            if let Some(auto_renew) = changes
                .auto_renew
                .filter(|on| *on != certificate.auto_renew)
            {
                certificate.auto_renew = auto_renew;
                notes.push(if auto_renew {
                    "Auto-renewal turned on".to_owned()
                } else {
                    "Auto-renewal turned off".to_owned()
                });
            }
            if let Some(profile) =
                acme_profile.filter(|profile| *profile != certificate.acme_profile)
            {
                notes.push(match &profile {
                    Some(profile) => format!("ACME profile set to {profile} from the next order"),
                    None => "ACME profile setting cleared: the domain's or account's applies from \
                             the next order"
                        .to_owned(),
                });
                certificate.acme_profile = profile;
            }
            if notes.is_empty() {
                return Ok((certificate, notes));
            }
            certificate.updated_at = services.clock.now();
            let stored = stored_or_404(services.store.update_certificate(&certificate).await)?;
            Ok((stored, notes))
        }
    })
    .await?;
    for note in notes {
        log(services, &certificate.id, "settings", note).await;
    }
    Ok(certificate)
}

/// A stored update, with a certificate deleted meanwhile answered 404.
fn stored_or_404(stored: Result<Certificate>) -> Result<Certificate> {
    match stored {
        Err(Error::NotFound(_)) => Err(Error::NotFound(ItemKind::Certificate)),
        other => other,
    }
}

/// Deletes a certificate and its material. With `revoke`, a certificate that still has valid
/// material is first revoked at the CA and marked `revoked`; a failed revocation deletes
/// nothing. Expired material is not revoked (the CA has nothing left to revoke).
pub async fn delete_certificate(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
    revoke: bool,
) -> Result<()> {
    let certificate = get_certificate(services, account_id, id).await?;
    let now = services.clock.now();
    let revocable = certificate.material_version.is_some()
        && certificate.status != CertificateStatus::Revoked
        && certificate.expires_at.is_some_and(|at| at > now);
    if revoke && revocable {
        let issuance = services
            .issuance
            .as_ref()
            .ok_or(Error::IssuanceUnavailable)?;
        issuance.revoke(&certificate).await?;
        mark_revoked(services, certificate).await?;
    }
    match services.store.delete_certificate(account_id, id).await {
        Ok(()) => {}
        Err(Error::NotFound(_)) => return Err(Error::NotFound(ItemKind::Certificate)),
        Err(other) => return Err(other),
    }
    services.vault.delete_material(id).await
}

/// Records a revocation on the certificate (version-checked, re-read on conflicts).
async fn mark_revoked(services: &Services, certificate: Certificate) -> Result<()> {
    let id = certificate.id.clone();
    let revoked = change_certificate(services, certificate, |stored| {
        stored.status = CertificateStatus::Revoked;
        stored.next_attempt_at = None;
        true
    })
    .await?;
    if revoked.is_none() {
        return Err(Error::NotFound(ItemKind::Certificate));
    }
    log(
        services,
        &id,
        "revoked",
        "Revoked on request before deletion".to_owned(),
    )
    .await;
    Ok(())
}

/// The certificate's events, newest first (at most `limit`, default [`DEFAULT_EVENTS`]).
pub async fn events(
    services: &Services,
    account_id: &AccountId,
    id: &CertificateId,
    limit: Option<u32>,
) -> Result<Vec<CertificateEvent>> {
    get_certificate(services, account_id, id).await?;
    let limit = limit.unwrap_or(DEFAULT_EVENTS).clamp(1, MAX_EVENTS);
    services.store.list_events(id, limit).await
}

/// Appends an informational event. The log is best-effort: the change it describes is already
/// stored, and failing the request over its log line would tell the client the opposite.
async fn log(services: &Services, id: &CertificateId, step: &str, message: String) {
    let event = CertificateEvent {
        certificate_id: id.clone(),
        at: services.clock.now(),
        step: step.to_owned(),
        level: EventLevel::Info,
        message,
        acme_problem: None,
    };
    let _ = services.store.append_event(&event).await;
}

fn names_text(certificate: &Certificate) -> String {
    certificate
        .names()
        .map(Hostname::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wildcard_flag_and_the_name_agree() {
        assert_eq!(
            primary_name("example.com", true).unwrap().as_str(),
            "*.example.com"
        );
        assert_eq!(
            primary_name("*.Example.com", true).unwrap().as_str(),
            "*.example.com"
        );
        assert_eq!(
            primary_name("app.example.com", false).unwrap().as_str(),
            "app.example.com"
        );
        let error = primary_name("*.example.com", false).unwrap_err();
        assert_eq!((error.status(), error.code()), (400, "invalid_hostname"));
        assert!(primary_name("a.*.example.com", true).is_err());
    }

    #[test]
    fn sans_are_deduplicated_and_bounded() {
        let primary = Hostname::parse_certificate_name("app.example.com").unwrap();
        let sans = san_names(
            &primary,
            &[
                "www.example.com".into(),
                "WWW.example.com".into(),
                "app.example.com".into(),
            ],
        )
        .unwrap();
        assert_eq!(sans.len(), 1);
        let many: Vec<String> = (0..=MAX_SANS)
            .map(|i| format!("n{i}.example.com"))
            .collect();
        assert_eq!(
            san_names(&primary, &many).unwrap_err().code(),
            "too_many_names"
        );
    }

    #[test]
    fn a_chain_splits_into_leaf_and_intermediates() {
        let pem = |body: &str| {
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        };
        let chain = format!("{}{}{}", pem("leaf"), pem("int1"), pem("int2"));
        let (leaf, rest) = split_chain(&chain).unwrap();
        assert_eq!(leaf, pem("leaf"));
        assert_eq!(rest, format!("{}{}", pem("int1"), pem("int2")));
        let (alone, none) = split_chain(&pem("only")).unwrap();
        assert_eq!((alone, none), (pem("only"), String::new()));
        assert!(split_chain("garbage").is_none());
    }
}
