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
                self.consecutive_failures = 0;
                self.last_error = None;
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
        if self.provisioning_step != ProvisioningStep::WaitingOwnership {
            self.provisioning_step = ProvisioningStep::WaitingDns;
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

    /// Nudged, or its name requested at the edge, at `now`: its current step runs again now
    /// with the backoff reset, and a stale domain waits for its DNS afresh.
    pub fn asked_again(&mut self, now: OffsetDateTime) {
        self.consecutive_failures = 0;
        self.next_attempt_at = None;
        if self.provisioning_step == ProvisioningStep::Stale {
            self.provisioning_step = ProvisioningStep::WaitingDns;
            self.dns_waiting_since = Some(now);
        }
    }
}
