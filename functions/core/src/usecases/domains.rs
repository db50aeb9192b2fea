//! Whitelisted domains: create, read, change the origin or ACME profile, delete, DNS instructions, ownership
//! verification, SSL status and nudge.
//!
//! A domain moves `waiting_ownership` (only when the account requires a TXT record) ->
//! `waiting_dns` -> `issuing` -> `active` (the model's state machine,
//! [`crate::model::lifecycle`]). Once its ownership is settled its managed certificate is
//! requested, and from then on the one use case of [`managed`](crate::usecases::managed)
//! checks its DNS on the certificate's schedule, issues it, and renews it. A check that does
//! not pass records why in `last_error` and when it runs again in `next_attempt_at`. Nudging
//! runs the current step's check now and resets the backoff; it is safe to repeat.

use serde::Serialize;

use crate::error::{Error, ItemKind, Result};
use crate::hostname::Hostname;
use crate::ids::{AccountId, DomainId};
use crate::model::{Certificate, CertificateKind, CertificateStatus, Domain, ProvisioningStep};
use crate::origin::OriginUrl;
use crate::ports::{DnsResolver, Page, PageRequest};
use crate::usecases::managed::{Issue, Trigger, ensure_for_domain, schedule_first_check};
use crate::usecases::profiles::{self, ProfileChange};
use crate::usecases::versioned::{change_domain, retry_on_conflict};
use crate::usecases::{EdgeSettings, Services, accounts};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the client does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// One DNS record a customer must create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// `CNAME`, `A`, `AAAA` or `TXT`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// Record name.
    pub name: String,
    /// Record value.
    pub value: String,
}

/// The records that point a domain at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsInstructions {
    /// Records to create.
    pub records: Vec<DnsRecord>,
    /// Advice for apex names, which cannot hold a CNAME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// DNS instructions for a hostname: a CNAME to the edge for subdomains; A/AAAA records for apex
/// names, with a note about ALIAS/ANAME records.
pub fn dns_instructions(edge: &EdgeSettings, hostname: &Hostname) -> DnsInstructions {
    if !hostname.is_apex() {
        return DnsInstructions {
            records: vec![DnsRecord {
                record_type: "CNAME",
                name: hostname.to_string(),
                value: edge.hostname.clone(),
            }],
            note: None,
        };
    }
    let records = edge
        .addresses
        .iter()
        .map(|address| DnsRecord {
            record_type: if address.is_ipv4() { "A" } else { "AAAA" },
            name: hostname.to_string(),
            value: address.to_string(),
        })
        .collect();
    DnsInstructions {
        records,
        note: Some(format!(
            "{hostname} is a root domain and cannot hold a CNAME record: create the A records above, or an ALIAS/ANAME record to {} if your DNS provider supports it.",
            edge.hostname
        )),
    }
}

/// The TXT record that proves ownership, when the domain still needs it.
pub fn ownership_record(domain: &Domain) -> DnsRecord {
    DnsRecord {
        record_type: "TXT",
        name: domain.ownership_record_name(),
        value: domain.ownership_token.clone(),
    }
}

/// Checks an origin URL: its form, and the addresses its host resolves to now. A host that does
/// not resolve yet is accepted; the edge checks the address again at every connect.
pub async fn check_origin(services: &Services, input: &str) -> Result<OriginUrl> {
    let origin = OriginUrl::parse(input, &services.origin_policy)?;
    if let Some(host) = origin.host_name() {
        if let Ok(addresses) = services.resolver.ip_addresses(host).await {
            origin.check_resolved(&addresses, &services.origin_policy)?;
        }
    }
    Ok(origin)
}

/// Refuses the operator's own registered domain — the registrable domain (by the public suffix
/// list) of the edge hostname — and every name under it. The edge hostname points at the edge
/// by definition, so whitelisting it would pass the DNS step at once and send the operator's
/// traffic to an account's origin; and any other name in the operator's domain (`www`, `api`,
/// `status`...) is the operator's to serve, not an account's, whatever its DNS says today.
fn check_not_operator_name(edge: &EdgeSettings, hostname: &Hostname) -> Result<()> {
    let edge_name = edge.hostname.trim_end_matches('.').to_ascii_lowercase();
    // An edge hostname that is itself a public suffix has no registrable domain: only it and
    // the names under it are the operator's.
    let operator_domain = psl::domain_str(&edge_name).unwrap_or(&edge_name);
    let name = hostname.base();
    let under_operator = name
        .strip_suffix(operator_domain)
        .is_some_and(|head| head.is_empty() || head.ends_with('.'));
    if under_operator {
        return Err(Error::InvalidHostname(format!(
            "{operator_domain} is the operator's own domain (the edge is {edge_name}): its names cannot be whitelisted"
        )));
    }
    Ok(())
}

/// What a client sends to whitelist a hostname.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRequest {
    /// The hostname, Unicode or punycode.
    pub hostname: String,
    /// Where the edge proxies its traffic.
    pub origin_url: String,
    /// The ACME profile its certificate is ordered with, instead of the account's.
    pub acme_profile: Option<String>,
}

/// Whitelists a hostname for an account, within the plan's domain limit.
pub async fn create_domain(
    services: &Services,
    account_id: &AccountId,
    hostname: &str,
    origin_url: &str,
) -> Result<Domain> {
    let request = DomainRequest {
        hostname: hostname.to_owned(),
        origin_url: origin_url.to_owned(),
        acme_profile: None,
    };
    whitelist(services, account_id, request).await
}

/// [`create_domain`] with every setting a client may give.
pub async fn whitelist(
    services: &Services,
    account_id: &AccountId,
    request: DomainRequest,
) -> Result<Domain> {
    let hostname = Hostname::parse_domain(&request.hostname)?;
    check_not_operator_name(&services.edge, &hostname)?;
    let origin = check_origin(services, &request.origin_url).await?;
    let acme_profile = match &request.acme_profile {
        Some(profile) => Some(profiles::check_profile(services, profile).await?),
        None => None,
    };
    let account = accounts::get_account(services, account_id).await?;
    let now = services.clock.now();
    let mut domain = Domain::whitelisted(
        account_id.clone(),
        hostname,
        origin.as_str().to_owned(),
        account.require_ownership_verification,
        now,
    );
    domain.acme_profile = acme_profile;
    let max_domains = services.plans.get(account.plan).max_domains;
    services.store.create_domain(&domain, max_domains).await?;
    if !domain.is_waiting_for_ownership() {
        schedule_first_check(services, &domain).await;
    }
    Ok(domain)
}

/// One of the account's domains, or 404.
pub async fn get_domain(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
) -> Result<Domain> {
    services
        .store
        .get_domain(account_id, id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Domain))
}

/// A page of the account's domains.
pub async fn list_domains(
    services: &Services,
    account_id: &AccountId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<Domain>> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    services
        .store
        .list_domains(account_id, PageRequest { cursor, limit })
        .await
}

/// What a client may change on a domain; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainChanges {
    /// Another origin.
    pub origin_url: Option<String>,
    /// Another ACME profile for its certificate's next order, or none (the account's).
    pub acme_profile: ProfileChange,
}

/// Points a domain at another origin, or changes its ACME profile (used from its
/// certificate's next order on).
pub async fn update_domain(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
    changes: DomainChanges,
) -> Result<Domain> {
    let origin = match &changes.origin_url {
        Some(origin_url) => Some(check_origin(services, origin_url).await?),
        None => None,
    };
    let acme_profile = profiles::check_change(services, changes.acme_profile).await?;
    modify(services, account_id, id, |domain| {
        if let Some(origin) = &origin {
            domain.origin_url = origin.as_str().to_owned();
        }
        if let Some(profile) = &acme_profile {
            domain.acme_profile = profile.clone();
        }
    })
    .await
}

/// Stops serving a domain and deletes its managed certificate with its key.
pub async fn delete_domain(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
) -> Result<()> {
    let domain = get_domain(services, account_id, id).await?;
    services
        .store
        .delete_domain(account_id, id, services.clock.now())
        .await?;
    if let Some(certificate_id) = &domain.certificate_id {
        match services
            .store
            .delete_certificate(account_id, certificate_id)
            .await
        {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        services.vault.delete_material(certificate_id).await?;
    }
    Ok(())
}

/// Checks the ownership TXT record now. On success the domain is marked verified and moves on
/// to its DNS step; otherwise [`Error::TxtNotFound`].
pub async fn verify_ownership(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
) -> Result<Domain> {
    let domain = get_domain(services, account_id, id).await?;
    let record = domain.ownership_record_name();
    let found = services
        .resolver
        .txt(&record)
        .await?
        .iter()
        .any(|value| value.trim() == domain.ownership_token);
    if !found {
        return Err(Error::TxtNotFound { record });
    }
    let now = services.clock.now();
    let verified = modify(services, account_id, id, |domain| {
        domain.ownership_proven(now);
    })
    .await?;
    schedule_first_check(services, &verified).await;
    Ok(verified)
}

/// A domain's provisioning state and its managed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslStatus {
    /// The domain.
    pub domain: Domain,
    /// Its managed certificate, once requested.
    pub certificate: Option<Certificate>,
}

/// The domain's SSL status.
pub async fn ssl_status(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
) -> Result<SslStatus> {
    let mut domain = get_domain(services, account_id, id).await?;
    let certificate = match &domain.certificate_id {
        Some(certificate_id) => {
            services
                .store
                .get_certificate(account_id, certificate_id)
                .await?
        }
        None => None,
    };
    if let Some(certificate) = &certificate {
        if catch_up_with_certificate(&mut domain, certificate, services.clock.now()) {
            // Shown as the certificate says, and stored when the store takes it; a write that
            // fails (another writer, the store unavailable) is repeated by the next read.
            domain = services
                .store
                .update_domain(&domain)
                .await
                .unwrap_or(domain);
        }
    }
    Ok(SslStatus {
        domain,
        certificate,
    })
}

/// Moves a domain still `issuing` (or `failed`) to `active` when its managed certificate is
/// issued with material valid now; whether it changed anything.
///
/// The certificate is the source of truth: the issuer stores it first and the domain's step
/// after, best-effort, so a store outage between the two writes leaves the domain behind with
/// no error and no next attempt, and nothing would ever run its step again (issue 12's soak
/// found such a name still `issuing` minutes after it was served).
fn catch_up_with_certificate(
    domain: &mut Domain,
    certificate: &Certificate,
    now: time::OffsetDateTime,
) -> bool {
    let for_this_domain = matches!(
        &certificate.kind,
        CertificateKind::Managed { domain_id } if *domain_id == domain.id
    );
    let serving = certificate.status == CertificateStatus::Issued
        && certificate.material_version.is_some()
        && certificate.expires_at.is_some_and(|at| at > now);
    if !for_this_domain
        || !serving
        || !matches!(
            domain.provisioning_step,
            ProvisioningStep::Issuing | ProvisioningStep::Failed
        )
    {
        return false;
    }
    domain.provisioning_step = ProvisioningStep::Active;
    domain.last_error = None;
    domain.next_attempt_at = None;
    domain.consecutive_failures = 0;
    domain.certificate_id = Some(certificate.id.clone());
    domain.updated_at = now;
    true
}

/// Runs the domain's current step now with the backoff reset; a stale domain waits for its
/// DNS afresh, and a certificate it needs is queued for the issuer. Repeating it changes
/// nothing more.
pub async fn nudge(services: &Services, account_id: &AccountId, id: &DomainId) -> Result<()> {
    retry_on_conflict(|| async move {
        ensure_for_domain(services, account_id, id, Trigger::Nudge, Issue::Queue).await
    })
    .await?;
    Ok(())
}

/// Why a domain does not point at the edge yet, or `Ok` when it does: its CNAME is the edge
/// hostname, or every address it resolves to is one of the edge's.
pub async fn check_points_at_edge(
    services: &Services,
    hostname: &Hostname,
) -> Result<std::result::Result<(), String>> {
    points_at_edge(services.resolver.as_ref(), &services.edge, hostname).await
}

/// [`check_points_at_edge`] over just the resolver and the edge settings, for callers that do
/// not hold a whole [`Services`] (the issuer's HTTP-01 pre-flight).
pub async fn points_at_edge(
    resolver: &dyn DnsResolver,
    edge: &EdgeSettings,
    hostname: &Hostname,
) -> Result<std::result::Result<(), String>> {
    if let Some(target) = resolver.cname(hostname.as_str()).await? {
        if target.eq_ignore_ascii_case(&edge.hostname) {
            return Ok(Ok(()));
        }
    }
    let addresses = resolver.ip_addresses(hostname.as_str()).await?;
    if addresses.is_empty() {
        return Ok(Err(format!(
            "{hostname} has no DNS record yet; create the records in dns_instructions"
        )));
    }
    let foreign: Vec<String> = addresses
        .iter()
        .filter(|address| !edge.addresses.contains(address))
        .map(ToString::to_string)
        .collect();
    if foreign.is_empty() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{hostname} points at {} instead of the edge ({}); update its DNS records",
            foreign.join(", "),
            edge.hostname
        )))
    }
}

/// Read-modify-write of one domain, retried when another writer got there first.
async fn modify(
    services: &Services,
    account_id: &AccountId,
    id: &DomainId,
    change: impl Fn(&mut Domain),
) -> Result<Domain> {
    let current = get_domain(services, account_id, id).await?;
    change_domain(services, current, |domain| {
        change(domain);
        true
    })
    .await?
    .ok_or(Error::NotFound(ItemKind::Domain))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::ids::CertificateId;

    fn edge() -> EdgeSettings {
        EdgeSettings {
            hostname: "edge.edgecert.example".to_owned(),
            addresses: vec![
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10)),
            ],
        }
    }

    /// Issue 12, defect 8: the operator's registered domain, not only the edge hostname.
    #[test]
    fn the_operators_registered_domain_cannot_be_whitelisted() {
        let edge_under = |edge_hostname: &str| EdgeSettings {
            hostname: edge_hostname.to_owned(),
            addresses: vec![],
        };
        let name = |text: &str| Hostname::parse_domain(text).unwrap();
        let operator = edge_under("edge.edgecert-saas.com");
        for refused in [
            "edgecert-saas.com",
            "www.edgecert-saas.com",
            "edge.edgecert-saas.com",
            "shop.edge.edgecert-saas.com",
            "status.eu.edgecert-saas.com",
        ] {
            let error = check_not_operator_name(&operator, &name(refused)).expect_err(refused);
            assert_eq!(error.code(), "invalid_hostname");
            assert!(error.to_string().contains("edgecert-saas.com"), "{error}");
        }
        for accepted in [
            "myedgecert-saas.com",
            "edgecert-saas.com.au",
            "shop.customer.com",
        ] {
            assert!(check_not_operator_name(&operator, &name(accepted)).is_ok());
        }
        // Under a multi-label public suffix, the registrable domain is the one below it.
        let uk = edge_under("edge.cdn.operator.co.uk");
        assert!(check_not_operator_name(&uk, &name("www.operator.co.uk")).is_err());
        assert!(check_not_operator_name(&uk, &name("shop.other.co.uk")).is_ok());
        // A trailing dot or upper case in the configuration changes nothing.
        let dotted = edge_under("Edge.EdgeCert-SaaS.com.");
        assert!(check_not_operator_name(&dotted, &name("www.edgecert-saas.com")).is_err());
    }

    #[test]
    fn subdomains_get_a_cname_to_the_edge() {
        let instructions = dns_instructions(
            &edge(),
            &Hostname::parse_domain("shop.customer.com").unwrap(),
        );
        assert_eq!(
            instructions.records,
            vec![DnsRecord {
                record_type: "CNAME",
                name: "shop.customer.com".into(),
                value: "edge.edgecert.example".into()
            }]
        );
        assert_eq!(instructions.note, None);
    }

    #[test]
    fn apex_names_get_address_records_and_an_alias_note() {
        let instructions =
            dns_instructions(&edge(), &Hostname::parse_domain("customer.co.uk").unwrap());
        let types: Vec<_> = instructions
            .records
            .iter()
            .map(|r| (r.record_type, r.value.as_str()))
            .collect();
        assert_eq!(types, vec![("A", "203.0.113.10"), ("AAAA", "2001:db8::a")]);
        assert!(instructions.note.unwrap().contains("ALIAS/ANAME"));
    }

    #[test]
    fn managed_certificate_ids_derive_from_the_domain() {
        let domain = DomainId::generate();
        let certificate = CertificateId::managed_for(&domain);
        assert_eq!(&certificate.as_str()[5..], &domain.as_str()[4..]);
        assert_eq!(CertificateId::managed_for(&domain), certificate);
    }
}
