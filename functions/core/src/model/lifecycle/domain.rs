//! A domain's provisioning steps and transitions (see the [module](super) for the diagram).
//!
//! Every transition keeps `last_error`, `next_attempt_at` and `consecutive_failures` true to
//! the step it leaves the domain in: what `/ssl` shows is what the scheduler will do.

use time::OffsetDateTime;

use crate::ids::CertificateId;
use crate::model::{Domain, ProvisioningStep};
use crate::renewal::RenewalPolicy;

/// One look at whether a domain's names point at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsCheck {
    /// Its CNAME is the edge hostname, or every address it resolves to is the edge's.
    PointsAtEdge,
    /// Not yet, and why (for `last_error`).
    NotYet(String),
}

impl Domain {
    /// Whether it waits for anything before its certificate can be ordered: ownership, DNS, or
    /// a nudge after it went stale.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.provisioning_step,
            ProvisioningStep::WaitingOwnership
                | ProvisioningStep::WaitingDns
                | ProvisioningStep::Stale
        )
    }

    /// Whether it still waits for its ownership TXT record.
    pub fn is_waiting_for_ownership(&self) -> bool {
        self.provisioning_step == ProvisioningStep::WaitingOwnership
    }

    /// The ownership TXT record was looked up at `now`: found, it moves on to its DNS step;
    /// not found, it waits with the policy's backoff.
    pub fn ownership_checked(&mut self, found: bool, now: OffsetDateTime, policy: &RenewalPolicy) {
        if found {
            self.ownership_proven(now);
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(format!(
            "TXT record {} with value {} not found yet",
            self.ownership_record_name(),
            self.ownership_token
        ));
        self.next_attempt_at =
            Some(policy.next_attempt_at(now, self.consecutive_failures, None, None));
    }

    /// Ownership is proven (found by a check, or verified through the API at `now`): verified,
    /// and on to its DNS step at once.
    pub fn ownership_proven(&mut self, now: OffsetDateTime) {
        self.ownership_verified = true;
        if self.provisioning_step == ProvisioningStep::WaitingOwnership {
            self.provisioning_step = ProvisioningStep::WaitingDns;
            self.last_error = None;
            self.consecutive_failures = 0;
            self.next_attempt_at = Some(now);
        }
    }

    /// Its DNS was looked at `now`. Pointing at the edge, the wait ends (the caller requests its
    /// certificate). Not yet: the reason and the next check after the policy's backoff; once it
    /// has waited [`RenewalPolicy::dns_wait`], it goes [`stale`](ProvisioningStep::Stale) and is
    /// no longer checked on a schedule. Returns whether it points at the edge.
    pub fn dns_checked(
        &mut self,
        check: &DnsCheck,
        now: OffsetDateTime,
        policy: &RenewalPolicy,
    ) -> bool {
        let reason = match check {
            DnsCheck::PointsAtEdge => {
                self.dns_waiting_since = None;
                // A failed domain's error and count are its certificate's, not its DNS's: they
                // stay until the certificate is requested again or issued.
                if self.provisioning_step != ProvisioningStep::Failed {
                    self.consecutive_failures = 0;
                    self.last_error = None;
                }
                if self.provisioning_step == ProvisioningStep::Stale {
                    self.provisioning_step = ProvisioningStep::WaitingDns;
                }
                return true;
            }
            DnsCheck::NotYet(reason) => reason,
        };
        let since = *self.dns_waiting_since.get_or_insert(now);
        if now - since >= policy.dns_wait {
            self.provisioning_step = ProvisioningStep::Stale;
            self.next_attempt_at = None;
            self.last_error = Some(format!(
                "{reason}. DNS has not pointed at the edge for {} days, so it is no longer \
                 checked on its own: nudge the domain, or send a request for it to the edge, once \
                 its records are in place",
                policy.dns_wait.whole_days()
            ));
            return false;
        }
        if !matches!(
            self.provisioning_step,
            ProvisioningStep::WaitingOwnership | ProvisioningStep::WaitingDns
        ) {
            // A new wait (after an issuance, say): its backoff starts from the first check,
            // whatever the certificate's own failures were.
            self.provisioning_step = ProvisioningStep::WaitingDns;
            self.consecutive_failures = 0;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(reason.clone());
        self.next_attempt_at =
            Some(policy.next_attempt_at(now, self.consecutive_failures, None, None));
        false
    }

    /// Its managed certificate `id` is being issued.
    pub fn certificate_requested(&mut self, id: CertificateId) {
        self.provisioning_step = ProvisioningStep::Issuing;
        self.certificate_id = Some(id);
        self.next_attempt_at = None;
        self.last_error = None;
        self.consecutive_failures = 0;
    }

    /// Its managed certificate `id` is issued and served.
    pub fn certificate_issued(&mut self, id: CertificateId) {
        self.provisioning_step = ProvisioningStep::Active;
        self.certificate_id = Some(id);
        self.last_error = None;
        self.next_attempt_at = None;
        self.consecutive_failures = 0;
        self.dns_waiting_since = None;
    }

    /// Its first certificate failed (`reason`, tried again at `retry_at`, `failures` in a row).
    /// An active domain keeps serving and shows nothing: only a domain waiting for its first
    /// certificate shows the failure. Returns whether it changed.
    pub fn certificate_failed(
        &mut self,
        reason: Option<String>,
        retry_at: Option<OffsetDateTime>,
        failures: u32,
    ) -> bool {
        if self.provisioning_step == ProvisioningStep::Active {
            return false;
        }
        self.provisioning_step = ProvisioningStep::Failed;
        self.last_error = reason;
        self.next_attempt_at = retry_at;
        self.consecutive_failures = failures;
        true
    }

    /// Its DNS left the edge (`reason`) while its certificate renews: `waiting_dns` with the
    /// certificate's next attempt, unless it still waits for ownership. The certificate it
    /// holds stays served while valid. Returns whether it changed.
    pub fn dns_left_edge(
        &mut self,
        reason: &str,
        retry_at: Option<OffsetDateTime>,
        failures: u32,
        now: OffsetDateTime,
    ) -> bool {
        if self.provisioning_step == ProvisioningStep::WaitingOwnership {
            return false;
        }
        self.provisioning_step = ProvisioningStep::WaitingDns;
        self.last_error = Some(reason.to_owned());
        self.next_attempt_at = retry_at;
        self.consecutive_failures = failures;
        self.dns_waiting_since.get_or_insert(now);
        true
    }

    /// Its DNS points at the edge again while its certificate still serves: `active` again.
    /// Returns whether it changed.
    pub fn back_at_edge(&mut self) -> bool {
        if self.provisioning_step != ProvisioningStep::WaitingDns {
            return false;
        }
        self.provisioning_step = ProvisioningStep::Active;
        self.last_error = None;
        self.next_attempt_at = None;
        self.consecutive_failures = 0;
        self.dns_waiting_since = None;
        true
    }

    /// Its certificate expired: shown as `step` with `reason`, checked on no schedule.
    pub fn certificate_expired(&mut self, step: ProvisioningStep, reason: String) {
        self.provisioning_step = step;
        self.last_error = Some(reason);
        self.next_attempt_at = None;
    }

    /// Nudged, or its name requested at the edge, at `now`: a waiting step runs again now with
    /// the backoff reset, and a stale domain waits for its DNS afresh. A failed domain keeps its
    /// certificate's retry time and count: only the certificate's own backoff decides (a nudge
    /// resets it, traffic does not), and the domain follows when it is requested again.
    pub fn asked_again(&mut self, now: OffsetDateTime) {
        if self.is_waiting() {
            self.consecutive_failures = 0;
            self.next_attempt_at = None;
        }
        if self.provisioning_step == ProvisioningStep::Stale {
            self.provisioning_step = ProvisioningStep::WaitingDns;
            self.dns_waiting_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every transition of a domain, one test each: the step, `last_error`, `next_attempt_at`
    //! and `consecutive_failures` are what `/ssl` shows, so each test asserts them.

    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::Hostname;
    use crate::ids::AccountId;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn whitelisted(ownership_required: bool) -> Domain {
        Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "https://origin.example.net".to_owned(),
            ownership_required,
            NOW,
        )
    }

    /// What `/ssl` shows of a domain.
    fn shown(domain: &Domain) -> (ProvisioningStep, Option<&str>, Option<OffsetDateTime>, u32) {
        (
            domain.provisioning_step,
            domain.last_error.as_deref(),
            domain.next_attempt_at,
            domain.consecutive_failures,
        )
    }

    fn not_yet() -> DnsCheck {
        DnsCheck::NotYet("shop.example.com has no CNAME to edge.example.net".to_owned())
    }

    /// A domain whose certificate is issued and served.
    fn active() -> Domain {
        let mut domain = whitelisted(false);
        let id = CertificateId::managed_for(&domain.id);
        domain.certificate_requested(id.clone());
        domain.certificate_issued(id);
        domain
    }

    #[test]
    fn ownership_checked_not_found_waits_with_the_backoff_and_says_which_record() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(true);
        assert!(domain.is_waiting() && domain.is_waiting_for_ownership());
        // WHEN the TXT record is not there THEN it waits 1 min, then 10 min, naming the record
        domain.ownership_checked(false, NOW, &policy);
        let error = format!(
            "TXT record _edgecert-verify.shop.example.com with value {} not found yet",
            domain.ownership_token
        );
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingOwnership,
                Some(error.as_str()),
                Some(NOW + Duration::minutes(1)),
                1
            )
        );
        let later = NOW + Duration::minutes(1);
        domain.ownership_checked(false, later, &policy);
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingOwnership,
                Some(error.as_str()),
                Some(later + Duration::minutes(10)),
                2
            )
        );
        assert!(!domain.ownership_verified);
    }

    #[test]
    fn ownership_checked_found_moves_on_to_dns_at_once_with_the_backoff_cleared() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(true);
        domain.ownership_checked(false, NOW, &policy);
        // WHEN the record is found THEN verified, waiting for DNS, checked now, no error
        let later = NOW + Duration::minutes(1);
        domain.ownership_checked(true, later, &policy);
        assert!(domain.ownership_verified);
        assert_eq!(
            shown(&domain),
            (ProvisioningStep::WaitingDns, None, Some(later), 0)
        );
        assert!(domain.is_waiting() && !domain.is_waiting_for_ownership());
    }

    #[test]
    fn ownership_proven_through_the_api_on_a_domain_past_that_step_changes_only_the_flag() {
        let mut domain = active();
        domain.ownership_verified = false;
        let before = domain.clone();
        domain.ownership_proven(NOW);
        assert!(domain.ownership_verified);
        assert_eq!(shown(&domain), shown(&before));
        assert_eq!(domain.provisioning_step, ProvisioningStep::Active);
    }

    #[test]
    fn dns_checked_pointing_at_the_edge_ends_the_wait() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        assert!(!domain.dns_checked(&not_yet(), NOW, &policy));
        // WHEN its DNS points at the edge THEN the wait, its error and its backoff are over
        assert!(domain.dns_checked(&DnsCheck::PointsAtEdge, NOW + Duration::minutes(1), &policy));
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingDns);
        assert_eq!(domain.last_error, None);
        assert_eq!(domain.consecutive_failures, 0);
        assert_eq!(domain.dns_waiting_since, None);
    }

    #[test]
    fn dns_checked_not_pointing_waits_with_the_reason_and_the_backoff() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        assert!(!domain.dns_checked(&not_yet(), NOW, &policy));
        let reason = "shop.example.com has no CNAME to edge.example.net";
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingDns,
                Some(reason),
                Some(NOW + Duration::minutes(1)),
                1
            )
        );
        assert_eq!(domain.dns_waiting_since, Some(NOW));
        // Each check backs off further; the wait is counted from the first check.
        let later = NOW + Duration::minutes(11);
        assert!(!domain.dns_checked(&not_yet(), later, &policy));
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingDns,
                Some(reason),
                Some(later + Duration::minutes(10)),
                2
            )
        );
        assert_eq!(domain.dns_waiting_since, Some(NOW));
    }

    #[test]
    fn dns_checked_not_pointing_after_a_failed_issuance_waits_for_dns_with_a_fresh_backoff() {
        // GIVEN a domain whose first certificate failed 4 times (the CA's backoff is daily now)
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        domain.certificate_requested(CertificateId::managed_for(&domain.id));
        let retry = NOW + Duration::days(1);
        domain.certificate_failed(Some("rate limited".to_owned()), Some(retry), 4);
        // WHEN its DNS no longer points at the edge THEN it waits for DNS, checked again in a
        // minute: the failures of its certificate are not failures of its DNS.
        assert!(!domain.dns_checked(&not_yet(), retry, &policy));
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingDns,
                Some("shop.example.com has no CNAME to edge.example.net"),
                Some(retry + Duration::minutes(1)),
                1
            )
        );
        assert_eq!(domain.dns_waiting_since, Some(retry));
    }

    #[test]
    fn asked_again_by_traffic_on_a_failed_domain_pointing_at_the_edge_keeps_its_failure() {
        // GIVEN a domain whose first certificate failed, retried in 100 minutes
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        domain.certificate_requested(CertificateId::managed_for(&domain.id));
        let retry = NOW + Duration::minutes(100);
        domain.certificate_failed(Some("The CA refused".to_owned()), Some(retry), 3);
        // WHEN a request for the name reaches the edge, and its DNS points there (the edge
        // does not reset a failed certificate's backoff, so nothing is requested)
        let at = NOW + Duration::minutes(5);
        domain.asked_again(at);
        assert!(domain.dns_checked(&DnsCheck::PointsAtEdge, at, &policy));
        // THEN `/ssl` still says why it failed and when it is tried again
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::Failed,
                Some("The CA refused"),
                Some(retry),
                3
            )
        );
    }

    #[test]
    fn dns_checked_not_pointing_for_the_configured_wait_goes_stale_and_off_the_schedule() {
        let policy = RenewalPolicy {
            dns_wait: Duration::days(2),
            ..RenewalPolicy::default()
        };
        let mut domain = whitelisted(false);
        assert!(!domain.dns_checked(&not_yet(), NOW, &policy));
        // A second short of the wait it still waits for DNS...
        let almost = NOW + Duration::days(2) - Duration::seconds(1);
        assert!(!domain.dns_checked(&not_yet(), almost, &policy));
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingDns);
        assert!(domain.next_attempt_at.is_some());
        // ...and once it has waited the configured period it is stale, checked on no schedule.
        assert!(!domain.dns_checked(&not_yet(), NOW + Duration::days(2), &policy));
        assert_eq!(domain.provisioning_step, ProvisioningStep::Stale);
        assert_eq!(domain.next_attempt_at, None);
        let error = domain.last_error.clone().unwrap();
        assert!(
            error.starts_with("shop.example.com has no CNAME to edge.example.net. DNS has not pointed at the edge for 2 days"),
            "{error}"
        );
        assert!(error.contains("nudge the domain"), "{error}");
        assert!(domain.is_waiting());
    }

    #[test]
    fn dns_checked_pointing_on_a_stale_domain_recovers_it() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        domain.dns_checked(&not_yet(), NOW, &policy);
        domain.dns_checked(&not_yet(), NOW + policy.dns_wait, &policy);
        assert_eq!(domain.provisioning_step, ProvisioningStep::Stale);
        // WHEN its DNS is found pointing at the edge THEN it waits no more for DNS
        assert!(domain.dns_checked(&DnsCheck::PointsAtEdge, NOW + Duration::days(8), &policy));
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingDns);
        assert_eq!(domain.last_error, None);
        assert_eq!(domain.dns_waiting_since, None);
    }

    #[test]
    fn asked_again_on_a_stale_domain_waits_for_dns_afresh_with_the_backoff_reset() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        domain.dns_checked(&not_yet(), NOW, &policy);
        domain.dns_checked(&not_yet(), NOW + policy.dns_wait, &policy);
        let nudged = NOW + Duration::days(30);
        domain.asked_again(nudged);
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingDns);
        assert_eq!(domain.next_attempt_at, None);
        assert_eq!(domain.consecutive_failures, 0);
        assert_eq!(domain.dns_waiting_since, Some(nudged));
        // A check right after the nudge is the first of a new wait: not stale, 1 min backoff.
        assert!(!domain.dns_checked(&not_yet(), nudged, &policy));
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingDns);
        assert_eq!(domain.next_attempt_at, Some(nudged + Duration::minutes(1)));
        assert_eq!(domain.consecutive_failures, 1);
    }

    #[test]
    fn asked_again_on_a_waiting_domain_resets_the_backoff_and_keeps_the_step() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(true);
        domain.ownership_checked(false, NOW, &policy);
        domain.ownership_checked(false, NOW, &policy);
        domain.asked_again(NOW);
        assert_eq!(domain.provisioning_step, ProvisioningStep::WaitingOwnership);
        assert_eq!(domain.next_attempt_at, None);
        assert_eq!(domain.consecutive_failures, 0);
        // The next miss backs off from the start again.
        domain.ownership_checked(false, NOW, &policy);
        assert_eq!(domain.next_attempt_at, Some(NOW + Duration::minutes(1)));
    }

    #[test]
    fn certificate_requested_is_issuing_with_the_wait_cleared() {
        let policy = RenewalPolicy::default();
        let mut domain = whitelisted(false);
        domain.dns_checked(&not_yet(), NOW, &policy);
        let id = CertificateId::managed_for(&domain.id);
        domain.certificate_requested(id.clone());
        assert_eq!(shown(&domain), (ProvisioningStep::Issuing, None, None, 0));
        assert_eq!(domain.certificate_id, Some(id));
        assert!(!domain.is_waiting());
    }

    #[test]
    fn certificate_issued_is_active_with_nothing_pending() {
        let mut domain = whitelisted(false);
        domain.dns_waiting_since = Some(NOW);
        let id = CertificateId::managed_for(&domain.id);
        domain.certificate_requested(id.clone());
        domain.certificate_failed(Some("the CA refused".to_owned()), Some(NOW), 3);
        domain.certificate_issued(id.clone());
        assert_eq!(shown(&domain), (ProvisioningStep::Active, None, None, 0));
        assert_eq!(domain.certificate_id, Some(id));
        assert_eq!(domain.dns_waiting_since, None);
    }

    #[test]
    fn certificate_failed_on_a_first_issuance_shows_the_failure_and_its_retry() {
        let mut domain = whitelisted(false);
        domain.certificate_requested(CertificateId::managed_for(&domain.id));
        let retry = NOW + Duration::minutes(10);
        assert!(domain.certificate_failed(Some("the CA refused".to_owned()), Some(retry), 2));
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::Failed,
                Some("the CA refused"),
                Some(retry),
                2
            )
        );
    }

    #[test]
    fn certificate_failed_on_an_active_domain_changes_nothing() {
        let mut domain = active();
        let before = domain.clone();
        assert!(!domain.certificate_failed(Some("the CA refused".to_owned()), Some(NOW), 1));
        assert_eq!(domain, before);
    }

    #[test]
    fn dns_left_edge_on_an_active_domain_waits_for_dns_with_the_certificate_retry() {
        let mut domain = active();
        let retry = NOW + Duration::minutes(1);
        assert!(domain.dns_left_edge("shop.example.com points elsewhere", Some(retry), 1, NOW));
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::WaitingDns,
                Some("shop.example.com points elsewhere"),
                Some(retry),
                1
            )
        );
        assert_eq!(domain.dns_waiting_since, Some(NOW));
        // Still away later: the wait keeps counting from when it left.
        let later = NOW + Duration::hours(2);
        assert!(domain.dns_left_edge("still elsewhere", Some(later), 2, later));
        assert_eq!(domain.dns_waiting_since, Some(NOW));
        assert_eq!(domain.consecutive_failures, 2);
    }

    #[test]
    fn dns_left_edge_while_ownership_is_unproven_changes_nothing() {
        let mut domain = whitelisted(true);
        let before = domain.clone();
        assert!(!domain.dns_left_edge("elsewhere", Some(NOW), 1, NOW));
        assert_eq!(domain, before);
    }

    #[test]
    fn back_at_edge_makes_a_domain_waiting_for_dns_active_again() {
        let mut domain = active();
        domain.dns_left_edge("elsewhere", Some(NOW), 1, NOW);
        assert!(domain.back_at_edge());
        assert_eq!(shown(&domain), (ProvisioningStep::Active, None, None, 0));
        assert_eq!(domain.dns_waiting_since, None);
        // Only from waiting_dns: an active (or issuing) domain is left as it is.
        assert!(!domain.back_at_edge());
        let mut issuing = whitelisted(false);
        issuing.certificate_requested(CertificateId::managed_for(&issuing.id));
        assert!(!issuing.back_at_edge());
        assert_eq!(issuing.provisioning_step, ProvisioningStep::Issuing);
    }

    #[test]
    fn certificate_expired_shows_the_step_and_reason_on_no_schedule() {
        let mut domain = active();
        domain.next_attempt_at = Some(NOW);
        domain.certificate_expired(
            ProvisioningStep::Failed,
            "the certificate expired".to_owned(),
        );
        assert_eq!(
            shown(&domain),
            (
                ProvisioningStep::Failed,
                Some("the certificate expired"),
                None,
                0
            )
        );
    }
}
