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
    /// one is stored, so there is no gap). With `unrecorded_from_other_ca` (the deployment is
    /// known to have used another CA too), material issued before certificates recorded their
    /// CA counts as another CA's. Only certificates that renew themselves; one already due is
    /// left as it is. Returns whether it changed.
    pub fn due_for_ca_change(
        &mut self,
        configured_ca: &str,
        unrecorded_from_other_ca: bool,
        now: OffsetDateTime,
    ) -> bool {
        let unrecorded = self.material_version.is_some() && self.ca_directory_url.is_none();
        let replaceable = self.status == CertificateStatus::Issued
            && self.renews_automatically()
            && (self.from_other_ca(configured_ca) || (unrecorded && unrecorded_from_other_ca));
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
        // As the scheduler sees it ([`Certificate::due_at`]): once a renewal failed, its
        // renewal time is past and the retry is what comes next.
        self.next_attempt_at.or(self.next_renewal_at)
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
        self.order_budget_until = None;
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
        self.order_budget_until = None;
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
        // The CA's header is outside input: a delay past any date (`Retry-After: 10^12`) is no
        // answer, and must not panic the run that records the failure.
        let retry_at = failure
            .retry_after
            .and_then(|delay| Duration::try_from(delay).ok())
            .and_then(|delay| now.checked_add(delay));
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(failure.message.clone());
        self.order_budget_until = None;
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

    /// Not ordered because the order budget is spent (`reason`): asked again at `retry_at`,
    /// when a token is next expected. Not a failure of the certificate, whose backoff is
    /// unchanged; one that serves material keeps serving it.
    pub fn wait_for_order_budget(
        &mut self,
        reason: &str,
        retry_at: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        self.last_error = Some(reason.to_owned());
        self.next_attempt_at = Some(retry_at);
        self.order_budget_until = Some(retry_at);
        self.status = if self.material_to_serve(now).is_some() {
            CertificateStatus::Issued
        } else {
            CertificateStatus::Failed
        };
    }

    /// Until when the order budget holds it back, if it still does at `now`.
    pub fn held_by_order_budget(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.order_budget_until.filter(|until| *until > now)
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

    const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

    /// What `/ssl` and the certificates API show of a certificate.
    fn shown(
        certificate: &Certificate,
    ) -> (CertificateStatus, Option<&str>, Option<OffsetDateTime>, u32) {
        (
            certificate.status,
            certificate.last_error.as_deref(),
            certificate.next_attempt_at,
            certificate.consecutive_failures,
        )
    }

    /// A new managed certificate, requested at `NOW`.
    fn pending() -> Certificate {
        let domain = Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            NOW,
        );
        Certificate::managed(&domain, NOW)
    }

    /// A downloadable certificate without auto-renewal, issued at `NOW` for 90 days.
    fn downloadable_issued() -> Certificate {
        let mut certificate = Certificate::downloadable(
            AccountId::generate(),
            crate::ids::ZoneId::generate(),
            Hostname::parse_domain("api.example.com").unwrap(),
            vec![],
            NOW,
        );
        certificate.record_issued(material("d1", OLD_CA), NOW + Duration::days(60), NOW);
        certificate
    }

    fn material(version: &str, ca: &str) -> IssuedMaterial {
        IssuedMaterial {
            version: version.to_owned(),
            not_before: NOW,
            not_after: NOW + Duration::days(90),
            ca_directory_url: ca.to_owned(),
            ari_id: Some("aki.serial".to_owned()),
            profile: Some("tlsserver".to_owned()),
        }
    }

    fn failure(message: &str) -> IssueFailure {
        IssueFailure::new("order", message)
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
        assert!(certificate.due_for_ca_change(NEW_CA, false, later));
        assert!(certificate.is_due(later));
        assert_eq!(certificate.material_to_serve(later), Some("v1"));
        // AND marking it again changes nothing
        assert!(!certificate.due_for_ca_change(NEW_CA, false, later));
    }

    #[test]
    fn a_certificate_from_the_configured_ca_is_not_due_for_a_ca_change() {
        let now = datetime!(2026-06-01 00:00 UTC);
        let mut certificate = issued_by(OLD_CA, now);
        assert!(!certificate.due_for_ca_change(OLD_CA, false, now));
        // The same directory written differently (a trailing slash) is the same CA.
        assert!(!certificate.from_other_ca("https://127.0.0.1:14000/dir/"));
        // Material from before certificates recorded their CA counts as the configured CA's.
        certificate.ca_directory_url = None;
        assert!(!certificate.due_for_ca_change(NEW_CA, false, now));
    }

    #[test]
    fn unrecorded_material_is_another_ca_s_once_the_deployment_used_another_ca() {
        let now = datetime!(2026-06-01 00:00 UTC);
        // GIVEN material from before certificates recorded their CA
        let mut certificate = issued_by(OLD_CA, now);
        certificate.ca_directory_url = None;
        // WHEN the deployment is known to have used another CA too THEN it is due, still served
        assert!(certificate.due_for_ca_change(NEW_CA, true, now));
        assert!(certificate.is_due(now));
        assert_eq!(certificate.material_to_serve(now), Some("v1"));
        // AND without material there is nothing to replace
        let mut pending = pending();
        assert!(!pending.due_for_ca_change(NEW_CA, true, now));
    }

    #[test]
    fn a_new_managed_certificate_is_pending_due_now_and_serves_nothing() {
        let certificate = pending();
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Pending, None, Some(NOW), 0)
        );
        assert!(certificate.is_due(NOW));
        assert!(certificate.needs_issuance(NOW, OLD_CA));
        assert_eq!(certificate.servable(NOW), Servable::Ignore);
        assert_eq!(certificate.material_to_serve(NOW), None);
        assert!(!certificate.is_renewal());
        assert_eq!(certificate.planned_renewal(), None);
    }

    #[test]
    fn order_opened_on_a_pending_certificate_is_validating_until_the_lease_expires() {
        let mut certificate = pending();
        let lease_expiry = NOW + Duration::minutes(5);
        certificate.order_opened("https://ca/order/1".to_owned(), lease_expiry);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Validating, None, Some(lease_expiry), 0)
        );
        assert_eq!(certificate.order_url.as_deref(), Some("https://ca/order/1"));
        // Due again (to resume the order) when the lease runs out; an issuance run always has
        // work on it, the lease decides whether someone else is on it.
        assert_eq!(certificate.due_at(), Some(lease_expiry));
        assert!(certificate.needs_issuance(NOW, OLD_CA));
    }

    #[test]
    fn order_opened_on_a_failed_certificate_is_validating() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        certificate.record_failure(&failure("The CA refused"), NOW, &policy);
        certificate.order_opened("https://ca/order/2".to_owned(), NOW + Duration::minutes(5));
        assert_eq!(certificate.status, CertificateStatus::Validating);
        // The last failure still shows until this order ends one way or the other.
        assert_eq!(certificate.last_error.as_deref(), Some("The CA refused"));
    }

    #[test]
    fn order_opened_for_a_renewal_stays_issued_and_keeps_serving() {
        let mut certificate = issued_by(OLD_CA, NOW);
        let at = NOW + Duration::days(60);
        certificate.order_opened("https://ca/order/3".to_owned(), at + Duration::minutes(5));
        assert_eq!(certificate.status, CertificateStatus::Issued);
        assert_eq!(certificate.servable(at), Servable::Serve("v1".to_owned()));
        assert_eq!(certificate.due_at(), Some(at + Duration::minutes(5)));
    }

    #[test]
    fn key_stored_records_the_pending_key_beside_the_served_material() {
        let mut certificate = issued_by(OLD_CA, NOW);
        certificate.key_stored("v2".to_owned());
        assert_eq!(certificate.pending_material_version.as_deref(), Some("v2"));
        assert_eq!(certificate.material_to_serve(NOW), Some("v1"));
        assert_eq!(
            certificate.material_versions().collect::<Vec<_>>(),
            ["v1", "v2"]
        );
    }

    #[test]
    fn record_issued_serves_the_new_material_and_renews_at_the_planned_time() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        certificate.order_opened("https://ca/order/1".to_owned(), NOW + Duration::minutes(5));
        certificate.key_stored("v1".to_owned());
        certificate.record_failure(&failure("timed out"), NOW, &policy);
        certificate.record_expiring_notice(7);
        let renew_at = NOW + Duration::days(60);
        let issued_at = NOW + Duration::minutes(2);
        certificate.record_issued(material("v1", NEW_CA), renew_at, issued_at);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Issued, None, None, 0)
        );
        assert_eq!(
            certificate.servable(issued_at),
            Servable::Serve("v1".to_owned())
        );
        assert_eq!(certificate.issued_at, Some(issued_at));
        assert_eq!(certificate.not_before, Some(NOW));
        assert_eq!(certificate.expires_at, Some(NOW + Duration::days(90)));
        assert_eq!(certificate.lifetime(), Some(Duration::days(90)));
        assert_eq!(certificate.ca_directory_url.as_deref(), Some(NEW_CA));
        assert_eq!(certificate.ari_id.as_deref(), Some("aki.serial"));
        assert_eq!(certificate.issued_profile.as_deref(), Some("tlsserver"));
        assert_eq!(certificate.next_renewal_at, Some(renew_at));
        assert_eq!(certificate.order_url, None);
        assert_eq!(certificate.pending_material_version, None);
        assert_eq!(certificate.expiring_notice_days, None);
        assert!(certificate.is_renewal());
        // Due at its renewal time, not before.
        assert_eq!(certificate.due_at(), Some(renew_at));
        assert!(!certificate.needs_issuance(renew_at - Duration::seconds(1), NEW_CA));
        assert!(certificate.needs_issuance(renew_at, NEW_CA));
        assert_eq!(certificate.planned_renewal(), Some(renew_at));
    }

    #[test]
    fn record_failure_of_a_first_issuance_is_failed_and_backs_off_to_daily() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        let expected = [
            Duration::minutes(1),
            Duration::minutes(10),
            Duration::minutes(100),
            Duration::days(1),
            Duration::days(1),
        ];
        for (failures, delay) in (1..).zip(expected) {
            certificate.record_failure(&failure("The CA refused the order"), NOW, &policy);
            assert_eq!(
                shown(&certificate),
                (
                    CertificateStatus::Failed,
                    Some("The CA refused the order"),
                    Some(NOW + delay),
                    failures
                ),
                "after failure {failures}"
            );
        }
        // Backing off: not due, no issuance work until the retry time.
        assert!(!certificate.needs_issuance(NOW + Duration::hours(23), OLD_CA));
        assert!(certificate.needs_issuance(NOW + Duration::days(1), OLD_CA));
        assert_eq!(certificate.servable(NOW), Servable::Ignore);
    }

    #[test]
    fn record_failure_waits_for_a_later_retry_after_of_the_ca() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        let rate_limited = IssueFailure {
            retry_after: Some(std::time::Duration::from_secs(3 * 3600)),
            ..failure("Rate limited")
        };
        certificate.record_failure(&rate_limited, NOW, &policy);
        assert_eq!(certificate.next_attempt_at, Some(NOW + Duration::hours(3)));
        assert_eq!(certificate.status, CertificateStatus::Failed);
    }

    #[test]
    fn record_failure_keeps_the_backoff_when_the_retry_after_is_shorter() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        certificate.consecutive_failures = 2;
        let soon = IssueFailure {
            retry_after: Some(std::time::Duration::from_secs(5)),
            ..failure("Try again")
        };
        certificate.record_failure(&soon, NOW, &policy);
        assert_eq!(certificate.consecutive_failures, 3);
        assert_eq!(
            certificate.next_attempt_at,
            Some(NOW + Duration::minutes(100))
        );
    }

    #[test]
    fn record_failure_with_a_retry_after_beyond_any_date_keeps_the_backoff() {
        // A CA's header is outside input: a Retry-After of 10^12 seconds (31,700 years) does
        // not fit a date, and must neither panic the run nor be lost as a failure.
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        let absurd = IssueFailure {
            retry_after: Some(std::time::Duration::from_secs(1_000_000_000_000)),
            ..failure("Rate limited")
        };
        certificate.record_failure(&absurd, NOW, &policy);
        assert_eq!(
            shown(&certificate),
            (
                CertificateStatus::Failed,
                Some("Rate limited"),
                Some(NOW + Duration::minutes(1)),
                1
            )
        );
    }

    #[test]
    fn record_failure_of_a_renewal_stays_issued_serving_and_retries_within_the_lifetime() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        // 5 days before expiry, the 4th failure would wait a day; a tenth of what is left
        // (12 hours) wins, so it is retried several times before the material expires.
        let at = NOW + Duration::days(85);
        certificate.consecutive_failures = 3;
        certificate.record_failure(&failure("The CA is down"), at, &policy);
        assert_eq!(
            shown(&certificate),
            (
                CertificateStatus::Issued,
                Some("The CA is down"),
                Some(at + Duration::hours(12)),
                4
            )
        );
        assert_eq!(certificate.servable(at), Servable::Serve("v1".to_owned()));
        assert_eq!(certificate.due_at(), Some(at + Duration::hours(12)));
        assert_eq!(
            certificate.planned_renewal(),
            Some(at + Duration::hours(12))
        );
    }

    #[test]
    fn record_failure_after_the_material_expired_is_failed() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        let after = NOW + Duration::days(91);
        certificate.record_failure(&failure("The CA is down"), after, &policy);
        assert_eq!(certificate.status, CertificateStatus::Failed);
        assert_eq!(certificate.material_to_serve(after), None);
        assert_eq!(certificate.servable(after), Servable::Drop);
        assert!(certificate.is_past_expiry(after));
    }

    #[test]
    fn record_failure_forgets_a_dead_order_and_keeps_a_live_one() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        certificate.order_opened("https://ca/order/1".to_owned(), NOW + Duration::minutes(5));
        certificate.record_failure(&failure("timed out"), NOW, &policy);
        assert_eq!(certificate.order_url.as_deref(), Some("https://ca/order/1"));
        certificate.record_failure(&failure("order invalid").with_dead_order(), NOW, &policy);
        assert_eq!(certificate.order_url, None);
    }

    #[test]
    fn request_again_on_a_failed_certificate_is_pending_due_now_with_the_backoff_reset() {
        let policy = RenewalPolicy::default();
        let mut certificate = pending();
        certificate.record_failure(&failure("The CA refused"), NOW, &policy);
        certificate.record_failure(&failure("The CA refused"), NOW, &policy);
        let nudged = NOW + Duration::seconds(30);
        assert!(!certificate.needs_issuance(nudged, OLD_CA));
        certificate.request_again(nudged);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Pending, None, Some(nudged), 0)
        );
        assert!(certificate.needs_issuance(nudged, OLD_CA));
        // The next failure backs off from the start again.
        certificate.record_failure(&failure("The CA refused"), nudged, &policy);
        assert_eq!(
            certificate.next_attempt_at,
            Some(nudged + Duration::minutes(1))
        );
    }

    #[test]
    fn request_again_on_an_expired_certificate_is_pending() {
        let mut certificate = issued_by(OLD_CA, NOW);
        certificate.expire();
        let later = NOW + Duration::days(100);
        certificate.request_again(later);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Pending, None, Some(later), 0)
        );
        assert!(certificate.needs_issuance(later, OLD_CA));
    }

    #[test]
    fn request_again_on_an_issued_certificate_renews_it_now_and_keeps_serving() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        let at = NOW + Duration::days(61);
        certificate.record_failure(&failure("The CA is down"), at, &policy);
        certificate.request_again(at);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Issued, None, Some(at), 0)
        );
        assert!(certificate.needs_issuance(at, OLD_CA));
        assert_eq!(certificate.servable(at), Servable::Serve("v1".to_owned()));
    }

    #[test]
    fn renew_now_is_validating_due_now_and_keeps_serving() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        certificate.record_failure(&failure("The CA is down"), NOW, &policy);
        let at = NOW + Duration::days(1);
        certificate.renew_now(at);
        assert_eq!(
            shown(&certificate),
            (CertificateStatus::Validating, None, Some(at), 0)
        );
        assert!(certificate.status.asks_for_issuance());
        assert!(certificate.needs_issuance(at, OLD_CA));
        assert_eq!(certificate.servable(at), Servable::Serve("v1".to_owned()));
    }

    #[test]
    fn wait_for_dns_holds_a_renewal_back_with_the_backoff_and_keeps_serving() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        let at = NOW + Duration::days(60);
        certificate.wait_for_dns("shop.example.com points elsewhere", at, &policy);
        assert_eq!(
            shown(&certificate),
            (
                CertificateStatus::Issued,
                Some("shop.example.com points elsewhere"),
                Some(at + Duration::minutes(1)),
                1
            )
        );
        certificate.wait_for_dns("still elsewhere", at, &policy);
        assert_eq!(
            certificate.next_attempt_at,
            Some(at + Duration::minutes(10))
        );
        assert_eq!(certificate.servable(at), Servable::Serve("v1".to_owned()));
    }

    #[test]
    fn wait_with_domain_takes_the_domain_check_or_no_schedule() {
        let mut certificate = pending();
        let check = NOW + Duration::minutes(10);
        certificate.wait_with_domain("no CNAME yet", Some(check));
        assert_eq!(
            shown(&certificate),
            (
                CertificateStatus::Pending,
                Some("no CNAME yet"),
                Some(check),
                0
            )
        );
        assert!(!certificate.needs_issuance(NOW, OLD_CA));
        assert!(certificate.is_due(check));
        // The domain went stale: on no schedule at all.
        certificate.wait_with_domain("stale", None);
        assert_eq!(certificate.due_at(), None);
        assert!(!certificate.is_due(NOW + Duration::days(365)));
    }

    #[test]
    fn expire_marks_a_certificate_past_its_expiry_expired_and_dropped_from_the_edge() {
        let mut certificate = issued_by(OLD_CA, NOW);
        let after = NOW + Duration::days(90);
        assert!(!certificate.is_past_expiry(after - Duration::seconds(1)));
        assert!(certificate.is_past_expiry(after));
        certificate.expire();
        assert_eq!(certificate.status, CertificateStatus::Expired);
        assert_eq!(certificate.next_attempt_at, None);
        assert_eq!(certificate.due_at(), None);
        assert!(!certificate.needs_issuance(after, OLD_CA));
        assert_eq!(certificate.servable(after), Servable::Drop);
        assert!(!certificate.is_past_expiry(after));
    }

    #[test]
    fn a_pending_certificate_past_its_old_expiry_is_left_to_the_issuer() {
        let mut certificate = issued_by(OLD_CA, NOW);
        certificate.expire();
        certificate.request_again(NOW + Duration::days(91));
        assert!(!certificate.is_past_expiry(NOW + Duration::days(91)));
    }

    #[test]
    fn revoke_stops_serving_and_renewing() {
        let mut certificate = issued_by(OLD_CA, NOW);
        certificate.revoke();
        assert_eq!(certificate.status, CertificateStatus::Revoked);
        assert_eq!(certificate.next_attempt_at, None);
        assert_eq!(certificate.due_at(), None);
        assert!(!certificate.needs_issuance(NOW + Duration::days(60), NEW_CA));
        assert_eq!(certificate.servable(NOW), Servable::Drop);
        assert_eq!(certificate.material_to_serve(NOW), None);
        assert!(!certificate.due_for_ca_change(NEW_CA, false, NOW));
    }

    #[test]
    fn hold_for_plan_says_why_and_looks_again_later() {
        let mut certificate = downloadable_issued();
        certificate.auto_renew = true;
        let recheck = NOW + Duration::days(61);
        certificate.hold_for_plan("The plan no longer includes auto-renewal", recheck);
        assert_eq!(
            shown(&certificate),
            (
                CertificateStatus::Issued,
                Some("The plan no longer includes auto-renewal"),
                Some(recheck),
                0
            )
        );
        assert_eq!(certificate.due_at(), Some(recheck));
    }

    #[test]
    fn reschedule_renewal_moves_the_due_time_to_the_ca_window() {
        let mut certificate = issued_by(OLD_CA, NOW);
        let later = NOW + Duration::days(70);
        certificate.reschedule_renewal(later);
        assert_eq!(certificate.due_at(), Some(later));
        assert!(!certificate.needs_issuance(NOW + Duration::days(65), OLD_CA));
        assert_eq!(certificate.planned_renewal(), Some(later));
    }

    #[test]
    fn replace_now_makes_the_renewal_due_now() {
        let mut certificate = issued_by(OLD_CA, NOW);
        let at = NOW + Duration::days(2);
        certificate.replace_now(at);
        assert!(certificate.is_due(at));
        assert!(certificate.needs_issuance(at, OLD_CA));
    }

    #[test]
    fn a_failed_or_downloadable_certificate_is_not_due_for_a_ca_change() {
        let policy = RenewalPolicy::default();
        // Failed: nothing served to replace (an issuance run already has work on it).
        let mut failed = pending();
        failed.record_failure(&failure("refused"), NOW, &policy);
        assert!(!failed.due_for_ca_change(NEW_CA, false, NOW));
        // Downloadable without auto-renewal: the customer renews it.
        let mut downloadable = downloadable_issued();
        assert!(downloadable.from_other_ca(NEW_CA));
        assert!(!downloadable.due_for_ca_change(NEW_CA, false, NOW));
        assert!(!downloadable.needs_issuance(NOW, NEW_CA));
        // Without auto-renewal it is due at its expiry only, to be marked expired.
        assert_eq!(downloadable.due_at(), Some(NOW + Duration::days(90)));
        assert_eq!(downloadable.planned_renewal(), None);
        // Downloadable certificates are for download, never served at the edge.
        assert_eq!(downloadable.servable(NOW), Servable::Ignore);
        assert_eq!(downloadable.material_to_serve(NOW), Some("d1"));
    }

    #[test]
    fn a_certificate_already_due_is_left_as_it_is_by_a_ca_change() {
        let policy = RenewalPolicy::default();
        let mut certificate = issued_by(OLD_CA, NOW);
        let at = NOW + Duration::days(61);
        certificate.record_failure(&failure("The CA is down"), at, &policy);
        let retry = certificate.next_attempt_at;
        assert!(!certificate.due_for_ca_change(NEW_CA, false, at + Duration::minutes(5)));
        assert_eq!(certificate.next_attempt_at, retry);
    }

    #[test]
    fn expiring_notices_escalate_from_14_to_7_to_1_days_once_each() {
        let mut certificate = issued_by(OLD_CA, NOW);
        let expiry = NOW + Duration::days(90);
        // Before the renewal time, nothing: the renewal has not failed yet.
        certificate.reschedule_renewal(expiry - Duration::days(5));
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(10)),
            None
        );
        certificate.reschedule_renewal(NOW + Duration::days(60));
        // Renewal overdue, but more than 14 days left: nothing yet.
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(15)),
            None
        );
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(14)),
            Some(14)
        );
        certificate.record_expiring_notice(14);
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(10)),
            None
        );
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(7)),
            Some(7)
        );
        certificate.record_expiring_notice(7);
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::days(2)),
            None
        );
        // Jumping past a notice gives the latest one only.
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::hours(1)),
            Some(1)
        );
        certificate.record_expiring_notice(1);
        assert_eq!(
            certificate.expiring_notice_due(expiry - Duration::minutes(1)),
            None
        );
        // Expired: nothing served, no notice.
        assert_eq!(certificate.expiring_notice_due(expiry), None);
        // A new certificate starts the notices over.
        certificate.record_issued(
            IssuedMaterial {
                not_before: expiry - Duration::days(1),
                not_after: expiry + Duration::days(5),
                ..material("v2", OLD_CA)
            },
            expiry,
            expiry - Duration::days(1),
        );
        assert_eq!(certificate.expiring_notice_days, None);
        assert_eq!(
            certificate.expiring_notice_due(expiry + Duration::days(1)),
            Some(7)
        );
    }

    #[test]
    fn needs_issuance_follows_the_status() {
        let now = NOW + Duration::days(1);
        let mut certificate = pending();
        assert!(certificate.needs_issuance(now, OLD_CA));
        certificate.status = CertificateStatus::Validating;
        certificate.next_attempt_at = Some(now + Duration::days(1));
        assert!(certificate.needs_issuance(now, OLD_CA));
        for status in [CertificateStatus::Pending, CertificateStatus::Failed] {
            certificate.status = status;
            assert!(!certificate.needs_issuance(now, OLD_CA), "{status:?}");
            certificate.next_attempt_at = None;
            assert!(certificate.needs_issuance(now, OLD_CA), "{status:?}");
            certificate.next_attempt_at = Some(now + Duration::days(1));
        }
        for status in [CertificateStatus::Expired, CertificateStatus::Revoked] {
            certificate.status = status;
            certificate.next_attempt_at = Some(now);
            assert!(!certificate.needs_issuance(now, OLD_CA), "{status:?}");
        }
    }

    #[test]
    fn the_profile_ordered_is_the_certificate_s_else_the_domain_s_else_the_account_s() {
        let mut account = Account::new("shop".to_owned(), crate::PlanName::Pro, false, NOW);
        let mut domain = Domain::whitelisted(
            account.id.clone(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            NOW,
        );
        let mut certificate = Certificate::managed(&domain, NOW);
        assert_eq!(certificate.profile_for(Some(&domain), &account), None);
        account.acme_profile = Some("classic".to_owned());
        assert_eq!(
            certificate.profile_for(Some(&domain), &account),
            Some("classic")
        );
        domain.acme_profile = Some("tlsserver".to_owned());
        assert_eq!(
            certificate.profile_for(Some(&domain), &account),
            Some("tlsserver")
        );
        assert_eq!(certificate.profile_for(None, &account), Some("classic"));
        certificate.acme_profile = Some("shortlived".to_owned());
        assert_eq!(
            certificate.profile_for(Some(&domain), &account),
            Some("shortlived")
        );
    }
}
