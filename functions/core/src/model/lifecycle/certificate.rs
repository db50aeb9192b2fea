//! A certificate's states and transitions (see the [module](super) for the diagram).

use time::{Duration, OffsetDateTime};

use super::failure::IssueFailure;
use crate::model::{Account, Certificate, CertificateKind, CertificateStatus, Domain};
use crate::renewal::RenewalPolicy;

/// The days before expiry at which a certificate whose renewal has not succeeded is recorded as
/// `certificate.expiring`, latest first.
pub const EXPIRING_NOTICE_DAYS: [u32; 3] = [14, 7, 1];

/// What a finished order left in the vault, as the certificate records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedMaterial {
    /// Vault version holding the chain and key.
    pub version: String,
    /// Start of validity of the leaf.
    pub not_before: OffsetDateTime,
    /// End of validity of the leaf.
    pub not_after: OffsetDateTime,
    /// The directory URL of the CA that issued it.
    pub ca_directory_url: String,
    /// Its ARI identifier, when the leaf has one.
    pub ari_id: Option<String>,
    /// The ACME profile it was ordered with.
    pub profile: Option<String>,
}

/// What the edge does with a certificate item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Servable {
    /// Serve vault version `0`.
    Serve(String),
    /// Stop serving it (revoked, expired).
    Drop,
    /// Nothing to serve yet, or not the edge's (downloadable certificates are for download).
    Ignore,
}

impl Certificate {
    /// When the scheduler must next look at this certificate, or `None` when never.
    ///
    /// This is what the store's due index holds, so the renewer reads only due items:
    /// a retry time after a failure or an interrupted issuance, the renewal time of an issued
    /// certificate that renews itself, or the expiry of one that does not (to mark it expired).
    pub fn due_at(&self) -> Option<OffsetDateTime> {
        match self.status {
            CertificateStatus::Expired | CertificateStatus::Revoked => None,
            CertificateStatus::Pending
            | CertificateStatus::Validating
            | CertificateStatus::Failed => self.next_attempt_at,
            CertificateStatus::Issued if self.renews_automatically() => {
                match (self.next_attempt_at, self.next_renewal_at) {
                    (Some(retry), _) => Some(retry),
                    (None, renewal) => renewal,
                }
            }
            CertificateStatus::Issued => self.expires_at,
        }
    }

    /// Whether the scheduler's time for this certificate has come at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.due_at().is_some_and(|at| at <= now)
    }

    /// Whether the served material comes from a CA other than the one at `configured_ca`: such
    /// a certificate is due now, whatever its renewal time. Material issued before certificates
    /// recorded their CA counts as the configured CA's.
    pub fn from_other_ca(&self, configured_ca: &str) -> bool {
        self.material_version.is_some()
            && self
                .ca_directory_url
                .as_deref()
                .is_some_and(|issuer| !same_directory(issuer, configured_ca))
    }

    /// The configured CA is now `configured_ca`, and this certificate's material comes from
    /// another: due now, so the renewer replaces it (the old material is served until the new
    /// one is stored, so there is no gap). Only certificates that renew themselves; one already
    /// due is left as it is. Returns whether it changed.
    pub fn due_for_ca_change(&mut self, configured_ca: &str, now: OffsetDateTime) -> bool {
        let replaceable = self.status == CertificateStatus::Issued
            && self.renews_automatically()
            && self.from_other_ca(configured_ca);
        if !replaceable || self.is_due(now) {
            return false;
        }
        self.next_attempt_at = Some(now);
        true
    }

    /// Whether an issuance run has work on this certificate at `now`, for the CA at
    /// `configured_ca`. In-flight certificates (`validating`) always do: the lease decides
    /// whether someone else is on them.
    pub fn needs_issuance(&self, now: OffsetDateTime, configured_ca: &str) -> bool {
        match self.status {
            CertificateStatus::Expired | CertificateStatus::Revoked => false,
            CertificateStatus::Validating => true,
            CertificateStatus::Pending | CertificateStatus::Failed => {
                self.next_attempt_at.is_none_or(|at| at <= now)
            }
            CertificateStatus::Issued => {
                self.renews_automatically()
                    && (self.is_due(now) || self.from_other_ca(configured_ca))
            }
        }
    }

    /// The domain of a managed certificate.
    pub fn managed_domain(&self) -> Option<&crate::ids::DomainId> {
        match &self.kind {
            CertificateKind::Managed { domain_id } => Some(domain_id),
            CertificateKind::Downloadable { .. } => None,
        }
    }

    /// Whether an issuance of this certificate is a renewal (it already serves material).
    pub fn is_renewal(&self) -> bool {
        self.status == CertificateStatus::Issued
    }

    /// The vault version to serve at `now`: the current material until it expires, whatever a
    /// renewal in flight (or a failed one) is doing. `None` when there is none, or it is
    /// revoked or expired.
    pub fn material_to_serve(&self, now: OffsetDateTime) -> Option<&str> {
        if matches!(
            self.status,
            CertificateStatus::Revoked | CertificateStatus::Expired
        ) {
            return None;
        }
        self.material_version
            .as_deref()
            .filter(|_| self.expires_at.is_none_or(|at| at > now))
    }

    /// What the edge serves for this certificate at `now`: managed certificates only, their
    /// [material](Certificate::material_to_serve) while there is some.
    pub fn servable(&self, now: OffsetDateTime) -> Servable {
        if !matches!(self.kind, CertificateKind::Managed { .. }) {
            return Servable::Ignore;
        }
        match self.material_to_serve(now) {
            Some(version) => Servable::Serve(version.to_owned()),
            None if self.material_version.is_some()
                || matches!(
                    self.status,
                    CertificateStatus::Revoked | CertificateStatus::Expired
                ) =>
            {
                Servable::Drop
            }
            None => Servable::Ignore,
        }
    }

    /// Whether it has reached its expiry with nothing left to serve: issued (its renewal never
    /// landed) or failed after having been issued. A certificate someone asked to issue again
    /// (`pending`, `validating`) is left to the issuer.
    pub fn is_past_expiry(&self, now: OffsetDateTime) -> bool {
        matches!(
            self.status,
            CertificateStatus::Issued | CertificateStatus::Failed
        ) && self.expires_at.is_some_and(|at| at <= now)
    }

    /// The ACME profile to order this certificate with: its own, else its domain's, else its
    /// account's; `None` for the CA's default.
    pub fn profile_for<'a>(
        &'a self,
        domain: Option<&'a Domain>,
        account: &'a Account,
    ) -> Option<&'a str> {
        self.acme_profile
            .as_deref()
            .or_else(|| domain.and_then(|domain| domain.acme_profile.as_deref()))
            .or(account.acme_profile.as_deref())
    }

    /// When it will next be renewed, as planned now: a retry of a failed renewal, else its
    /// renewal time; `None` when it does not renew itself or has nothing issued.
    pub fn planned_renewal(&self) -> Option<OffsetDateTime> {
        if self.status != CertificateStatus::Issued || !self.renews_automatically() {
            return None;
        }
        match (self.next_attempt_at, self.next_renewal_at) {
            (Some(retry), Some(renewal)) => Some(retry.min(renewal)),
            (retry, renewal) => retry.or(renewal),
        }
    }

    /// The lifetime of the served material.
    pub fn lifetime(&self) -> Option<Duration> {
        Some(self.expires_at? - self.not_before?)
    }

    /// The `certificate.expiring` notice due at `now`, as days before expiry (14, 7 or 1): the
    /// certificate serves material whose renewal time has passed without a successful renewal,
    /// it expires within that many days, and that notice was not recorded yet.
    pub fn expiring_notice_due(&self, now: OffsetDateTime) -> Option<u32> {
        if self.status != CertificateStatus::Issued || self.material_to_serve(now).is_none() {
            return None;
        }
        let expires_at = self.expires_at?;
        let renewal_overdue = self.next_renewal_at.is_none_or(|at| at <= now);
        if !renewal_overdue {
            return None;
        }
        let left = expires_at - now;
        let notice = EXPIRING_NOTICE_DAYS
            .iter()
            .rev()
            .copied()
            .find(|days| left <= Duration::days(i64::from(*days)))?;
        match self.expiring_notice_days {
            Some(recorded) if recorded <= notice => None,
            _ => Some(notice),
        }
    }

    /// Asked for again (a nudge, a request for the name at the edge, a domain back at the edge):
    /// due now with the backoff reset; a failed or expired certificate is pending again.
    pub fn request_again(&mut self, now: OffsetDateTime) {
        if matches!(
            self.status,
            CertificateStatus::Failed | CertificateStatus::Expired
        ) {
            self.status = CertificateStatus::Pending;
        }
        self.consecutive_failures = 0;
        self.next_attempt_at = Some(now);
        // What it waited for (DNS, a backoff) is over; a new failure says its own reason.
        self.last_error = None;
    }

    /// Renewed by hand: `validating`, due now, the backoff and the last error cleared.
    pub fn renew_now(&mut self, now: OffsetDateTime) {
        self.status = CertificateStatus::Validating;
        self.consecutive_failures = 0;
        self.next_attempt_at = Some(now);
        self.last_error = None;
    }

    /// An ACME order is open at `order_url`: the run holds it until `in_flight_until` (its
    /// lease's expiry), after which the due index brings it back to resume the order. A renewal
    /// keeps serving its current material meanwhile.
    pub fn order_opened(&mut self, order_url: String, in_flight_until: OffsetDateTime) {
        self.order_url = Some(order_url);
        if matches!(
            self.status,
            CertificateStatus::Pending | CertificateStatus::Failed
        ) {
            self.status = CertificateStatus::Validating;
        }
        self.next_attempt_at = Some(in_flight_until);
    }

    /// The order's new key is in the vault at `version`, before it is ever sent to the CA.
    pub fn key_stored(&mut self, version: String) {
        self.pending_material_version = Some(version);
    }

    /// The order's certificate is stored whole as `material`: it is served from now on, and
    /// renews at `renew_at`.
    pub fn record_issued(
        &mut self,
        material: IssuedMaterial,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        self.status = CertificateStatus::Issued;
        self.material_version = Some(material.version);
        self.issued_at = Some(now);
        self.not_before = Some(material.not_before);
        self.expires_at = Some(material.not_after);
        self.ca_directory_url = Some(material.ca_directory_url);
        self.ari_id = material.ari_id;
        self.issued_profile = material.profile;
        self.next_renewal_at = Some(renew_at);
        self.next_attempt_at = None;
        self.order_url = None;
        self.pending_material_version = None;
        self.last_error = None;
        self.consecutive_failures = 0;
        self.expiring_notice_days = None;
    }

    /// A run failed: the reason, the next attempt after the policy's backoff (never before the
    /// CA's `Retry-After`), and status `failed` unless valid material is still served (a failed
    /// renewal stays `issued`). A dead order is forgotten.
    pub fn record_failure(
        &mut self,
        failure: &IssueFailure,
        now: OffsetDateTime,
        policy: &RenewalPolicy,
    ) {
        let retry_at = failure
            .retry_after
            .and_then(|delay| Duration::try_from(delay).ok())
            .map(|delay| now + delay);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(failure.message.clone());
        self.next_attempt_at =
            Some(policy.next_attempt_at(now, self.consecutive_failures, self.expires_at, retry_at));
        self.status = if self.material_to_serve(now).is_some() {
            CertificateStatus::Issued
        } else {
            CertificateStatus::Failed
        };
        if failure.order_dead {
            self.order_url = None;
        }
    }

    /// Held back before the CA because its names do not point at the edge (`reason`): tried
    /// again after the policy's backoff, its status unchanged.
    pub fn wait_for_dns(&mut self, reason: &str, now: OffsetDateTime, policy: &RenewalPolicy) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(reason.to_owned());
        self.next_attempt_at =
            Some(policy.next_attempt_at(now, self.consecutive_failures, self.expires_at, None));
    }

    /// Waits with its domain for DNS to point at the edge (`reason`): looked at again at
    /// `retry_at`, the domain's next check, or on no schedule (`None`: the domain went stale,
    /// and only a nudge or traffic at the edge asks for it again).
    pub fn wait_with_domain(&mut self, reason: &str, retry_at: Option<OffsetDateTime>) {
        self.last_error = Some(reason.to_owned());
        self.next_attempt_at = retry_at;
    }

    /// Past its expiry with nothing left to serve.
    pub fn expire(&mut self) {
        self.status = CertificateStatus::Expired;
        self.next_attempt_at = None;
    }

    /// Not renewed because its plan no longer includes auto-renewal (`reason`): looked at again
    /// at `recheck`, so an upgrade applies from then on.
    pub fn hold_for_plan(&mut self, reason: &str, recheck: OffsetDateTime) {
        self.last_error = Some(reason.to_owned());
        self.next_attempt_at = Some(recheck);
    }

    /// Renewal moved to `at` (the CA's ARI window opens later).
    pub fn reschedule_renewal(&mut self, at: OffsetDateTime) {
        self.next_renewal_at = Some(at);
    }

    /// Served material from another CA: renewal due `now`.
    pub fn replace_now(&mut self, now: OffsetDateTime) {
        self.next_renewal_at = Some(now);
    }

    /// Revoked at the CA: nothing to serve or renew any more.
    pub fn revoke(&mut self) {
        self.status = CertificateStatus::Revoked;
        self.next_attempt_at = None;
    }

    /// The `certificate.expiring` notice of `days` before expiry was recorded.
    pub fn record_expiring_notice(&mut self, days: u32) {
        self.expiring_notice_days = Some(days);
    }
}

/// Whether two directory URLs name the same CA: equal but for case and a trailing slash.
fn same_directory(one: &str, other: &str) -> bool {
    one.trim_end_matches('/')
        .eq_ignore_ascii_case(other.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::Hostname;
    use crate::ids::AccountId;
    use crate::model::Domain;

    const OLD_CA: &str = "https://127.0.0.1:14000/dir";
    const NEW_CA: &str = "https://127.0.0.1:15000/dir";

    fn issued_by(ca: &str, now: OffsetDateTime) -> Certificate {
        let domain = Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            now,
        );
        let mut certificate = Certificate::managed(&domain, now);
        certificate.record_issued(
            IssuedMaterial {
                version: "v1".to_owned(),
                not_before: now,
                not_after: now + Duration::days(90),
                ca_directory_url: ca.to_owned(),
                ari_id: None,
                profile: None,
            },
            now + Duration::days(60),
            now,
        );
        certificate
    }

    #[test]
    fn a_certificate_from_another_ca_is_due_now_and_served_until_replaced() {
        let now = datetime!(2026-06-01 00:00 UTC);
        // GIVEN a certificate issued by the old CA, renewing in 60 days
        let mut certificate = issued_by(OLD_CA, now);
        assert!(!certificate.is_due(now + Duration::days(1)));
        assert!(!certificate.needs_issuance(now, OLD_CA));
        // WHEN the configured CA changes THEN it is due at once, and still served
        let later = now + Duration::days(1);
        assert!(certificate.from_other_ca(NEW_CA));
        assert!(certificate.needs_issuance(later, NEW_CA));
        assert!(certificate.due_for_ca_change(NEW_CA, later));
        assert!(certificate.is_due(later));
        assert_eq!(certificate.material_to_serve(later), Some("v1"));
        // AND marking it again changes nothing
        assert!(!certificate.due_for_ca_change(NEW_CA, later));
    }

    #[test]
    fn a_certificate_from_the_configured_ca_is_not_due_for_a_ca_change() {
        let now = datetime!(2026-06-01 00:00 UTC);
        let mut certificate = issued_by(OLD_CA, now);
        assert!(!certificate.due_for_ca_change(OLD_CA, now));
        // The same directory written differently (a trailing slash) is the same CA.
        assert!(!certificate.from_other_ca("https://127.0.0.1:14000/dir/"));
        // Material from before certificates recorded their CA counts as the configured CA's.
        certificate.ca_directory_url = None;
        assert!(!certificate.due_for_ca_change(NEW_CA, now));
    }
}
