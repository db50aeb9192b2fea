//! The renewer against real Pebble (six-hour certificates) and challtestsrv, on SQLite and on
//! DynamoDB + Secrets Manager in moto: the order budget, concurrent runs, expiry without
//! auto-renewal, domains whose DNS left the edge, the cost of the due query, and ARI through
//! the fault layer (Pebble 2.4 has none).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use edgecert_acme::testing::{Endpoint, Fault};
use edgecert_core::Hostname;
use edgecert_core::RenewalWindow;
use edgecert_core::ids::CertificateId;
use edgecert_core::model::{CertificateStatus, Domain, ProvisioningStep, SecretString};
use edgecert_core::ports::{Clock, Issuance, IssueOutcome, MaterialVersion};
use edgecert_core::usecases::accounts::{AccountChanges, update_account};
use edgecert_core::usecases::domains::ssl_status;
use edgecert_core::usecases::managed::{
    Ensured, Issue, Trigger, Worked, ensure_for_hostname, issue_requested, schedule_first_check,
};
use edgecert_core::usecases::renewals::{
    EXPIRING_STEP, EXPIRY_WARNING, LETS_ENCRYPT_DIRECTORIES, RenewalSettings,
    count_expiring_unrenewed, replace_certificates_from_other_ca, run_renewals,
};
use edgecert_integration::PebbleOptions;
use time::Duration;

use support::{Backend, CERTIFICATE_LIFETIME, Harness, issued_and_due, unique_label};

edgecert_testkit::on_both_backends!(
    a_budget_of_fifty_renews_two_hundred_in_four_runs,
    two_concurrent_runs_renew_each_certificate_once,
    without_auto_renew_a_certificate_is_not_renewed_and_expires,
    a_domain_whose_dns_left_the_edge_is_never_sent_to_the_ca,
    the_due_query_reads_only_due_certificates,
    a_plan_without_auto_renewal_holds_the_certificate,
    ari_sets_the_renewal_time_and_a_later_window_reschedules,
    a_refused_replaces_is_ordered_again_without_it,
    a_twentieth_of_the_lifetime_left_renews_whatever_ari_says,
    an_expired_managed_certificate_shows_why_on_its_domain,
    a_renewal_deletes_the_material_it_replaces,
    a_run_out_of_time_starts_nothing_and_leaves_everything_due,
    certificates_expiring_unrenewed_within_a_week_are_counted,
    every_renewal_validates_afresh_without_authorization_reuse,
    a_domain_whose_dns_never_points_goes_stale_and_returns_on_a_nudge_or_traffic,
    the_shortlived_profile_gives_six_day_certificates_renewed_at_half_their_lifetime,
    the_tlsserver_profile_gives_45_day_certificates_renewed_with_a_third_left,
    a_renewal_failing_for_weeks_escalates_expiring_notices_at_14_7_and_1_days,
    certificates_of_a_deployment_that_used_staging_are_replaced_after_the_switch,
);

/// What one renewal of a managed certificate costs in store calls, from the due query to the
/// renewed certificate (BENCHMARKS.md, "Store calls per issuance"). The same calls on both
/// backends; measured on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_calls_of_a_renewal() {
    let harness = Harness::new(Backend::Sqlite).await;
    let (pebble, _responder) = harness.own_pebble(PebbleOptions::default()).await;
    let (counted, services, issuer) = harness.counted(&pebble);
    let hostname = format!("{}.example.com", unique_label("counted"));
    let (_, certificate) = harness.active_domain_due(&hostname).await;
    let settings = RenewalSettings::new();
    counted.take();
    let report = run_renewals(&services, issuer.as_ref(), &settings)
        .await
        .unwrap();
    let calls = counted.take();
    println!("renewal: {calls}");
    assert_eq!(report.issued, 1, "{report:?}");
    assert_eq!(harness.issued_events(&certificate.id).await, 1);
}

/// 200 due certificates, a budget of 50 orders per 10 minutes, a run every 10 minutes: exactly
/// 50 orders per run, each certificate renewed once, all of them after four runs.
async fn a_budget_of_fifty_renews_two_hundred_in_four_runs(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let mut ids = Vec::new();
    for n in 0..200 {
        let name = format!("c{n}.{}", zone.name);
        ids.push(harness.due_renewal(&zone, &name).await.id);
    }
    let harness = harness.with_order_budget(50, Duration::minutes(10)).await;
    let settings = RenewalSettings::new();
    for run in 1..=4 {
        let report = harness.renew(&settings).await;
        assert_eq!(
            harness.faults.new_orders(),
            50 * run,
            "run {run}: {report:?}"
        );
        assert_eq!(report.issued, 50, "run {run}: {report:?}");
        assert_eq!(report.deferred, 200 - 50 * run, "run {run}: {report:?}");
        harness.clock.advance(Duration::minutes(10));
    }
    // Nothing is left: a fifth run finds nothing due and orders nothing.
    let report = harness.renew(&settings).await;
    assert_eq!(report.examined, 0, "{report:?}");
    assert_eq!(harness.faults.new_orders(), 200);
    for id in &ids {
        let certificate = harness.certificate(id).await;
        assert_eq!(certificate.status, CertificateStatus::Issued);
        assert!(certificate.material_version.is_some(), "{id} not renewed");
        assert_eq!(harness.issued_events(id).await, 1, "{id} renewed twice");
    }
}

/// Two runs started together (a duplicated schedule event) renew each certificate once.
async fn two_concurrent_runs_renew_each_certificate_once(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let name = format!("p{n}.{}", zone.name);
        ids.push(harness.due_renewal(&zone, &name).await.id);
    }
    let settings = RenewalSettings::new();
    let (first, second) = tokio::join!(harness.renew(&settings), harness.renew(&settings));
    assert_eq!(
        first.error_count + second.error_count,
        0,
        "{first:?} {second:?}"
    );
    assert_eq!(harness.faults.new_orders(), 12, "{first:?} {second:?}");
    for id in &ids {
        assert_eq!(harness.issued_events(id).await, 1, "{id}");
        let certificate = harness.certificate(id).await;
        assert!(certificate.material_version.is_some());
    }
}

/// A downloadable certificate without auto-renewal is never renewed; past its expiry the
/// renewer marks it expired, with an event saying why.
async fn without_auto_renew_a_certificate_is_not_renewed_and_expires(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let name = format!("manual.{}", zone.name);
    let requested = harness
        .downloadable(&zone, &name, |certificate| certificate.auto_renew = false)
        .await;
    let issued = harness
        .issuer
        .issue(&harness.account.id, &requested.id)
        .await
        .unwrap();
    let IssueOutcome::Issued(issued) = issued else {
        panic!("not issued: {issued:?}");
    };
    assert_eq!(harness.faults.new_orders(), 1);
    let settings = RenewalSettings::new();

    // Past its renewal time, before its expiry: nothing is due.
    harness
        .clock
        .advance(Duration::try_from(CERTIFICATE_LIFETIME).unwrap() * 5 / 6);
    let report = harness.renew(&settings).await;
    assert_eq!(report.examined, 0, "{report:?}");

    // Past its expiry: expired, no order.
    let expires_at = issued.expires_at.unwrap();
    let now = harness.clock.now();
    harness
        .clock
        .advance(expires_at - now + Duration::seconds(1));
    let report = harness.renew(&settings).await;
    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(harness.faults.new_orders(), 1);
    let certificate = harness.certificate(&requested.id).await;
    assert_eq!(certificate.status, CertificateStatus::Expired);
    assert_eq!(certificate.material_version, issued.material_version);
    let events = harness.events(&requested.id).await;
    assert_eq!(events[0].step, "expired");
    assert!(
        events[0].message.contains("auto-renewal is off"),
        "{}",
        events[0].message
    );
    // Expired is final for the renewer.
    assert_eq!(harness.renew(&settings).await.examined, 0);
}

/// A managed certificate whose domain's A record now points elsewhere: the CA is never
/// contacted, the certificate backs off, and `/ssl` shows `waiting_dns` with the reason.
async fn a_domain_whose_dns_left_the_edge_is_never_sent_to_the_ca(backend: Backend) {
    let harness = Harness::new(backend).await;
    let hostname = format!("{}.example.com", unique_label("gone"));
    let (domain, certificate) = harness.active_domain_due(&hostname).await;
    harness
        .challtestsrv
        .add_a(&hostname, &[Ipv4Addr::new(203, 0, 113, 7)])
        .await
        .unwrap();
    let settings = RenewalSettings::new();

    let report = harness.renew(&settings).await;
    assert_eq!(report.waiting_dns, 1, "{report:?}");
    assert_eq!(harness.faults.requests(), 0, "the CA was contacted");
    assert_eq!(harness.faults.new_orders(), 0);

    let status = ssl_status(&harness.services, &harness.account.id, &domain.id)
        .await
        .unwrap();
    assert_eq!(
        status.domain.provisioning_step,
        ProvisioningStep::WaitingDns
    );
    let reason = status.domain.last_error.clone().unwrap();
    assert!(reason.contains("203.0.113.7"), "{reason}");
    let stored = status.certificate.unwrap();
    assert_eq!(stored.id, certificate.id);
    // Still served: a renewal held back does not take the old certificate away.
    assert_eq!(stored.status, CertificateStatus::Issued);
    assert_eq!(stored.consecutive_failures, 1);
    assert_eq!(stored.last_error.as_deref(), Some(reason.as_str()));
    let retry = stored.next_attempt_at.unwrap();
    assert_eq!(retry, harness.clock.now() + Duration::minutes(1));
    assert_eq!(status.domain.next_attempt_at, Some(retry));
    let events = harness.events(&certificate.id).await;
    assert!(events[0].message.contains("203.0.113.7"), "{events:?}");

    // Backed off: the next run does not look at it; after the backoff it is checked again,
    // still without contacting the CA, and backs off further.
    assert_eq!(harness.renew(&settings).await.examined, 0);
    harness.clock.advance(Duration::minutes(1));
    let report = harness.renew(&settings).await;
    assert_eq!(report.waiting_dns, 1, "{report:?}");
    assert_eq!(harness.faults.requests(), 0);
    let stored = harness.certificate(&certificate.id).await;
    assert_eq!(stored.consecutive_failures, 2);
    assert_eq!(
        stored.next_attempt_at,
        Some(harness.clock.now() + Duration::minutes(10))
    );
    harness.challtestsrv.clear_a(&hostname).await.unwrap();
}

/// The run reads the due certificates only, however many are stored.
async fn the_due_query_reads_only_due_certificates(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let now = harness.clock.now();
    for n in 0..30 {
        harness
            .downloadable(&zone, &format!("later{n}.{}", zone.name), |certificate| {
                support::issued_and_due(certificate, now);
                certificate.next_renewal_at = Some(now + Duration::days(n + 1));
            })
            .await;
    }
    for n in 0..5 {
        // Due now: issued without auto-renewal and past expiry (no CA needed to handle them).
        harness
            .downloadable(&zone, &format!("due{n}.{}", zone.name), |certificate| {
                support::issued_and_due(certificate, now);
                certificate.auto_renew = false;
                certificate.expires_at = Some(now - Duration::seconds(n + 1));
            })
            .await;
    }
    let report = harness.renew(&RenewalSettings::new()).await;
    assert_eq!(report.examined, 5, "{report:?}");
    assert_eq!(report.expired, 5, "{report:?}");
    assert_eq!(
        report.items_read, 5,
        "the due query read more than the due items"
    );
    assert_eq!(harness.faults.requests(), 0);
}

/// A downloadable certificate with auto-renew on, in an account whose plan no longer includes
/// auto-renewal: not sent to the CA, looked at again the next day.
async fn a_plan_without_auto_renewal_holds_the_certificate(backend: Backend) {
    let harness = Harness::new(backend).await;
    let mut account = harness.account.clone();
    account.plan = edgecert_core::PlanName::Plus;
    harness.store.update_account(&account).await.unwrap();
    let zone = harness.zone().await;
    let due = harness
        .due_renewal(&zone, &format!("held.{}", zone.name))
        .await;
    let report = harness.renew(&RenewalSettings::new()).await;
    assert_eq!(report.rescheduled, 1, "{report:?}");
    assert_eq!(harness.faults.requests(), 0);
    let held = harness.certificate(&due.id).await;
    assert_eq!(
        held.last_error.as_deref(),
        Some("Auto-renewal requires Pro or Elite plan")
    );
    assert_eq!(
        held.next_attempt_at,
        Some(harness.clock.now() + Duration::days(1))
    );
    assert_eq!(held.status, CertificateStatus::Issued);
}

/// With ARI (served by the fault layer): issuance schedules the renewal inside the CA's
/// window; at renewal time a window that moved later reschedules it no earlier than the CA's
/// Retry-After, without an order; an open window renews at once.
async fn ari_sets_the_renewal_time_and_a_later_window_reschedules(backend: Backend) {
    let harness = Harness::new(backend).await;
    let now = harness.clock.now();
    // Every window lies inside the six-hour lifetime of Pebble's certificates.
    let first_window = RenewalWindow {
        start: now + Duration::hours(1),
        end: now + Duration::minutes(90),
    };
    harness
        .faults
        .serve_renewal_info(first_window, std::time::Duration::from_secs(3600));
    let zone = harness.zone().await;
    let requested = harness
        .downloadable(&zone, &format!("ari.{}", zone.name), |_| {})
        .await;
    let IssueOutcome::Issued(issued) = harness
        .issuer
        .issue(&harness.account.id, &requested.id)
        .await
        .unwrap()
    else {
        panic!("not issued");
    };
    let renew_at = issued.next_renewal_at.unwrap();
    assert!(
        renew_at >= first_window.start && renew_at <= first_window.end,
        "{renew_at} outside the ARI window"
    );
    // The CA was asked with the certificate's AKI and serial.
    let asked = harness.faults.renewal_info_requests();
    assert_eq!(asked.len(), 1);
    let (aki, serial) = asked[0].split_once('.').unwrap();
    assert!(!aki.is_empty() && !serial.is_empty() && !asked[0].contains('='));
    assert_eq!(
        harness
            .issuer
            .renewal_window(&issued)
            .await
            .unwrap()
            .unwrap()
            .window,
        first_window
    );

    // At the renewal time the CA has moved the window later, and asks not to be asked again
    // for 90 minutes: rescheduled, not renewed.
    harness.clock.advance(renew_at - now);
    let now = harness.clock.now();
    let later = RenewalWindow {
        start: now + Duration::hours(1),
        end: now + Duration::hours(2),
    };
    harness
        .faults
        .serve_renewal_info(later, std::time::Duration::from_secs(90 * 60));
    let settings = RenewalSettings::new();
    let report = run_renewals(&harness.services, harness.issuer.as_ref(), &settings)
        .await
        .unwrap();
    assert_eq!(report.rescheduled, 1, "{report:?}");
    assert_eq!(harness.faults.new_orders(), 1);
    let moved = harness
        .certificate(&requested.id)
        .await
        .next_renewal_at
        .unwrap();
    assert!(
        moved >= now + Duration::minutes(90) - Duration::seconds(2) && moved <= later.end,
        "{moved} not within the window after the Retry-After"
    );

    // The window is open: renewed at once.
    harness.clock.advance(moved - now);
    let open = RenewalWindow {
        start: harness.clock.now() - Duration::minutes(5),
        end: harness.clock.now() + Duration::hours(1),
    };
    harness
        .faults
        .serve_renewal_info(open, std::time::Duration::from_secs(3600));
    let report = harness.renew(&settings).await;
    assert_eq!(
        report.issued,
        1,
        "{report:?} {:?}",
        harness.events(&requested.id).await
    );
    assert_eq!(harness.faults.new_orders(), 2);
    // The renewal order said which certificate it replaces (its ARI identifier).
    assert_eq!(harness.faults.orders_replacing(), vec![asked[0].clone()]);
    let renewed = harness.certificate(&requested.id).await;
    assert_ne!(renewed.material_version, issued.material_version);
}

/// A renewal order carries `replaces`; when the CA answers that the certificate was already
/// replaced (`409 alreadyReplaced`), the order is placed again without it and the renewal
/// succeeds, the log saying why.
async fn a_refused_replaces_is_ordered_again_without_it(backend: Backend) {
    let harness = Harness::new(backend).await;
    let now = harness.clock.now();
    let window = RenewalWindow {
        start: now + Duration::hours(1),
        end: now + Duration::minutes(90),
    };
    harness
        .faults
        .serve_renewal_info(window, std::time::Duration::from_secs(3600));
    let zone = harness.zone().await;
    let requested = harness
        .downloadable(&zone, &format!("replaced.{}", zone.name), |_| {})
        .await;
    let IssueOutcome::Issued(issued) = harness
        .issuer
        .issue(&harness.account.id, &requested.id)
        .await
        .unwrap()
    else {
        panic!("not issued");
    };
    // GIVEN the renewal time, inside an open window, and a CA that refuses `replaces` once
    harness.clock.advance(issued.next_renewal_at.unwrap() - now);
    let open = RenewalWindow {
        start: harness.clock.now() - Duration::minutes(5),
        end: harness.clock.now() + Duration::hours(1),
    };
    harness
        .faults
        .serve_renewal_info(open, std::time::Duration::from_secs(3600));
    harness.faults.refuse_replaces(1);
    // WHEN the renewer runs
    let report = harness.renew(&RenewalSettings::new()).await;
    // THEN it renewed with a second order, placed without `replaces`
    assert_eq!(
        report.issued,
        1,
        "{report:?} {:?}",
        harness.events(&requested.id).await
    );
    assert_eq!(harness.faults.new_orders(), 2);
    assert!(harness.faults.orders_replacing().is_empty());
    let renewed = harness.certificate(&requested.id).await;
    assert_ne!(renewed.material_version, issued.material_version);
    let events = harness.events(&requested.id).await;
    assert!(
        events.iter().any(|event| event
            .message
            .contains("refused to mark the order as replacing the current certificate")
            && event.acme_problem.as_deref() == Some("urn:ietf:params:acme:error:alreadyReplaced")),
        "{events:?}"
    );
}

/// Whatever ARI says, a certificate renews once a twentieth of its lifetime remains: a window
/// past that point plans the renewal at it, and at it the renewer renews rather than wait for
/// the window.
async fn a_twentieth_of_the_lifetime_left_renews_whatever_ari_says(backend: Backend) {
    let harness = Harness::new(backend).await;
    let now = harness.clock.now();
    // GIVEN a CA whose window opens 10 minutes before the six-hour certificate expires
    let expiry = now + Duration::hours(6);
    let late = RenewalWindow {
        start: expiry - Duration::minutes(10),
        end: expiry - Duration::minutes(5),
    };
    harness
        .faults
        .serve_renewal_info(late, std::time::Duration::from_secs(3600));
    let zone = harness.zone().await;
    let requested = harness
        .downloadable(&zone, &format!("floor.{}", zone.name), |_| {})
        .await;
    let IssueOutcome::Issued(issued) = harness
        .issuer
        .issue(&harness.account.id, &requested.id)
        .await
        .unwrap()
    else {
        panic!("not issued");
    };
    // THEN the renewal is planned at the emergency point, not in the window
    let (not_before, not_after) = (issued.not_before.unwrap(), issued.expires_at.unwrap());
    let emergency = not_after - (not_after - not_before) / 20;
    let planned = issued.next_renewal_at.unwrap();
    assert_eq!(planned, emergency, "window {late:?}");
    // AND at that point the renewer renews, though the window is still ahead
    harness.clock.advance(planned - now);
    let report = harness.renew(&RenewalSettings::new()).await;
    assert_eq!(
        (report.issued, report.rescheduled),
        (1, 0),
        "{report:?} {:?}",
        harness.events(&requested.id).await
    );
    assert_eq!(harness.faults.new_orders(), 2);
}

/// A managed certificate whose renewals kept failing reaches its expiry: it becomes `expired`,
/// its domain shows the step and the reason in `/ssl`, and a nudge asks for a new one.
async fn an_expired_managed_certificate_shows_why_on_its_domain(backend: Backend) {
    let harness = Harness::new(backend).await;
    let hostname = format!("{}.example.com", unique_label("lapsed"));
    let (domain, certificate) = harness.active_domain_due(&hostname).await;
    let mut lapsed = harness.certificate(&certificate.id).await;
    let now = harness.clock.now();
    lapsed.expires_at = Some(now - Duration::minutes(1));
    lapsed.next_attempt_at = Some(now - Duration::minutes(2));
    lapsed.consecutive_failures = 7;
    lapsed.last_error = Some("The certificate authority could not be reached".to_owned());
    harness.store.update_certificate(&lapsed).await.unwrap();

    let report = harness.renew(&RenewalSettings::new()).await;
    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(harness.faults.requests(), 0);
    let status = ssl_status(&harness.services, &harness.account.id, &domain.id)
        .await
        .unwrap();
    assert_eq!(
        status.certificate.unwrap().status,
        CertificateStatus::Expired
    );
    assert_eq!(status.domain.provisioning_step, ProvisioningStep::Failed);
    let reason = status.domain.last_error.unwrap();
    assert!(reason.contains("expired"), "{reason}");
    assert!(reason.contains("could not be reached"), "{reason}");
    assert_eq!(harness.events(&certificate.id).await[0].step, "expired");

    // A nudge (DNS still points at the edge) asks for a new certificate.
    edgecert_core::usecases::domains::nudge(&harness.services, &harness.account.id, &domain.id)
        .await
        .unwrap();
    let requested = harness.certificate(&certificate.id).await;
    assert_eq!(requested.status, CertificateStatus::Pending);
    assert_eq!(requested.next_attempt_at, Some(harness.clock.now()));
}

/// A renewal switches to the new chain and key, then deletes the material the certificate no
/// longer refers to (the old chain and key, and the pending key now stored with its chain):
/// stored material does not grow with every renewal, in any vault.
async fn a_renewal_deletes_the_material_it_replaces(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let due = harness
        .due_renewal(&zone, &format!("pruned.{}", zone.name))
        .await;
    let settings = RenewalSettings::new();
    assert_eq!(harness.renew(&settings).await.issued, 1);
    let mut first = harness.certificate(&due.id).await;
    let old = MaterialVersion(first.material_version.clone().unwrap());
    assert!(harness.vault.get_material(&due.id, &old).await.is_ok());

    // Due again: the second renewal replaces it.
    first.next_renewal_at = Some(harness.clock.now() - Duration::minutes(1));
    harness.store.update_certificate(&first).await.unwrap();
    assert_eq!(harness.renew(&settings).await.issued, 1);
    let second = harness.certificate(&due.id).await;
    let new = MaterialVersion(second.material_version.clone().unwrap());
    assert_ne!(old, new);
    assert!(harness.vault.get_material(&due.id, &new).await.is_ok());
    match harness.vault.get_material(&due.id, &old).await {
        Err(edgecert_core::Error::NotFound(_)) => {}
        Ok(_) => panic!("the replaced material {} is still stored", old.0),
        Err(error) => panic!("reading the replaced material: {error}"),
    }
}

/// A run whose time is up (the Lambda renewer's deadline less its margin) starts nothing: every
/// due certificate stays due, nothing is ordered, and the report counts what waits. With time
/// left, the next run renews them all.
async fn a_run_out_of_time_starts_nothing_and_leaves_everything_due(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let name = format!("late{n}.{}", zone.name);
        ids.push(harness.due_renewal(&zone, &name).await.id);
    }
    let mut settings = RenewalSettings::new();
    settings.take_work_until = Some(harness.clock.now());

    let report = harness.renew(&settings).await;

    assert_eq!((report.examined, report.unstarted), (0, 3), "{report:?}");
    assert_eq!(harness.faults.new_orders(), 0);
    for id in &ids {
        let certificate = harness.certificate(id).await;
        assert!(
            certificate
                .due_at()
                .is_some_and(|due| due <= harness.clock.now()),
            "{id} is still due: {certificate:?}"
        );
    }
    settings.take_work_until = Some(harness.clock.now() + Duration::minutes(10));
    let report = harness.renew(&settings).await;
    assert_eq!((report.issued, report.unstarted), (3, 0), "{report:?}");
}

/// What the renewer publishes for the "expires within 7 days" alarm: certificates that renew
/// themselves, are valid, and expire within the week: overdue ones and ones in backoff alike;
/// not those further out, not those without auto-renewal, not the expired.
async fn certificates_expiring_unrenewed_within_a_week_are_counted(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let now = harness.clock.now();
    let name = |label: &str| format!("{label}.{}", zone.name);
    harness
        .downloadable(&zone, &name("overdue"), |certificate| {
            issued_and_due(certificate, now);
            certificate.expires_at = Some(now + Duration::days(3));
        })
        .await;
    harness
        .downloadable(&zone, &name("backing-off"), |certificate| {
            issued_and_due(certificate, now);
            certificate.expires_at = Some(now + Duration::days(6));
            certificate.consecutive_failures = 4;
            certificate.next_attempt_at = Some(now + Duration::hours(20));
        })
        .await;
    harness.due_renewal(&zone, &name("month-left")).await;
    harness
        .downloadable(&zone, &name("no-auto-renew"), |certificate| {
            issued_and_due(certificate, now);
            certificate.auto_renew = false;
            certificate.next_renewal_at = None;
            certificate.expires_at = Some(now + Duration::days(3));
        })
        .await;
    harness
        .downloadable(&zone, &name("expired"), |certificate| {
            issued_and_due(certificate, now);
            certificate.status = CertificateStatus::Expired;
            certificate.expires_at = Some(now - Duration::days(1));
        })
        .await;

    let count = count_expiring_unrenewed(&harness.services, EXPIRY_WARNING)
        .await
        .unwrap();

    assert_eq!(count, 2);
}

/// Let's Encrypt cuts the reuse of valid authorizations to 7 hours (February 2028): renewals
/// must be correct when the CA demands a fresh validation every time. With a Pebble that reuses
/// none, three renewals in a row of one managed certificate each validate, and each is served.
async fn every_renewal_validates_afresh_without_authorization_reuse(backend: Backend) {
    let harness = Harness::new(backend).await;
    // A Pebble of its own that reuses no authorization.
    let (pebble, _responder) = harness
        .own_pebble(PebbleOptions {
            authz_reuse_percent: Some(0),
            ..PebbleOptions::default()
        })
        .await;
    let (_, services, issuer) = harness.counted(&pebble);
    let hostname = format!("{}.example.com", unique_label("fresh"));
    let (_, certificate) = harness.active_domain_due(&hostname).await;
    let mut served = HashSet::new();
    let mut validations_before = 0;
    for renewal in 1..=3 {
        let report = run_renewals(&services, issuer.as_ref(), &RenewalSettings::new())
            .await
            .unwrap();
        assert_eq!(report.issued, 1, "renewal {renewal}: {report:?}");
        let validations = harness
            .events(&certificate.id)
            .await
            .iter()
            .filter(|event| event.step == "challenge" && event.message.starts_with("Validating "))
            .count();
        // (A run that retried after a rejected nonce validates twice.)
        assert!(
            validations > validations_before,
            "renewal {renewal} did not validate its name afresh"
        );
        validations_before = validations;
        let renewed = harness.certificate(&certificate.id).await;
        let version = renewed.material_version.clone().expect("renewed material");
        assert!(
            served.insert(version),
            "renewal {renewal} served old material"
        );
        // Due again now.
        let mut due = renewed;
        due.next_renewal_at = Some(harness.clock.now() - Duration::minutes(1));
        harness.store.update_certificate(&due).await.unwrap();
    }
}

/// A whitelisted domain whose DNS never points at the edge is checked with backoff for seven
/// days, then goes `stale` with a reason and is no longer checked on a schedule; it comes back
/// when it is nudged, or when traffic for it reaches the edge (the use case the terminator
/// calls on a handshake), once its records are in place.
async fn a_domain_whose_dns_never_points_goes_stale_and_returns_on_a_nudge_or_traffic(
    backend: Backend,
) {
    let harness = Harness::new(backend).await;
    let (pebble, _responder) = harness.own_pebble(PebbleOptions::default()).await;
    let (_, services, issuer) = harness.counted(&pebble);
    let nudged = stale_domain(&harness, &services, issuer.as_ref(), "nudged").await;
    let visited = stale_domain(&harness, &services, issuer.as_ref(), "visited").await;

    // A stale domain costs no DNS check on the schedule any more.
    harness
        .challtestsrv
        .clear_dns_request_history(nudged.hostname.as_str())
        .await
        .unwrap();
    harness.clock.advance(Duration::days(30));
    harness.renew(&RenewalSettings::new()).await;
    let asked = harness
        .challtestsrv
        .dns_request_history(nudged.hostname.as_str())
        .await
        .unwrap();
    assert!(
        asked.as_array().is_none_or(Vec::is_empty),
        "a stale domain was checked on the schedule: {asked}"
    );

    // WHEN its records are put in place and the domain is nudged THEN it is issued and active
    harness
        .challtestsrv
        .clear_a(nudged.hostname.as_str())
        .await
        .unwrap();
    edgecert_core::usecases::domains::nudge(&services, &harness.account.id, &nudged.id)
        .await
        .unwrap();
    // (what the issuer worker does with the certificate the nudge requested)
    let worked = issue_requested(
        &services,
        issuer.as_ref(),
        &harness.account.id,
        &CertificateId::managed_for(&nudged.id),
    )
    .await
    .unwrap();
    assert!(matches!(worked, Worked::Issued(_)), "{worked:?}");
    let domain = harness.domain(&nudged.id).await;
    assert_eq!(
        domain.provisioning_step,
        ProvisioningStep::Active,
        "{domain:?}"
    );

    // WHEN traffic for the other reaches the edge once its records are in place THEN it is
    // served at once
    harness
        .challtestsrv
        .clear_a(visited.hostname.as_str())
        .await
        .unwrap();
    let ensured = ensure_for_hostname(
        &services,
        &visited.hostname,
        Trigger::Traffic,
        Issue::Now {
            issuance: issuer.as_ref(),
            gate: None,
        },
    )
    .await
    .unwrap();
    assert!(matches!(ensured, Ensured::Served(_)), "{ensured:?}");
    let domain = harness.domain(&visited.id).await;
    assert_eq!(
        domain.provisioning_step,
        ProvisioningStep::Active,
        "{domain:?}"
    );
}

/// A whitelisted domain `<label>-<random>.example.com` whose A record points away from the
/// edge, checked by the renewer at each next attempt until it goes stale (bounded: the
/// backoff reaches seven days in far fewer runs).
async fn stale_domain(
    harness: &Harness,
    services: &edgecert_core::usecases::Services,
    issuer: &dyn Issuance,
    label: &str,
) -> Domain {
    let hostname = format!("{}.example.com", unique_label(label));
    harness
        .challtestsrv
        .add_a(&hostname, &[Ipv4Addr::new(192, 0, 2, 10)])
        .await
        .unwrap();
    let domain = Domain::whitelisted(
        harness.account.id.clone(),
        Hostname::parse_domain(&hostname).unwrap(),
        "http://127.0.0.1:9".to_owned(),
        false,
        harness.clock.now(),
    );
    harness.store.create_domain(&domain, 100).await.unwrap();
    schedule_first_check(services, &domain).await;
    for _ in 0..60 {
        run_renewals(services, issuer, &RenewalSettings::new())
            .await
            .unwrap();
        let checked = harness.domain(&domain.id).await;
        if checked.provisioning_step == ProvisioningStep::Stale {
            let reason = checked.last_error.clone().unwrap_or_default();
            assert!(
                reason.contains("192.0.2.10") && reason.contains("no longer checked"),
                "{checked:?}"
            );
            assert_eq!(checked.next_attempt_at, None, "{checked:?}");
            return checked;
        }
        assert_eq!(
            checked.provisioning_step,
            ProvisioningStep::WaitingDns,
            "{checked:?}"
        );
        let next = checked
            .next_attempt_at
            .unwrap_or_else(|| panic!("a waiting domain without a next check: {checked:?}"));
        let wait = next - harness.clock.now();
        harness
            .clock
            .advance(wait.max(Duration::ZERO) + Duration::seconds(1));
    }
    panic!("{hostname} never went stale");
}

/// The profiles the fault layer makes the CA advertise, as Let's Encrypt names them.
const ADVERTISED_PROFILES: &[(&str, &str)] = &[
    ("classic", "The default profile"),
    ("shortlived", "6-day certificates"),
    ("tlsserver", "45-day certificates for TLS servers"),
];

async fn the_shortlived_profile_gives_six_day_certificates_renewed_at_half_their_lifetime(
    backend: Backend,
) {
    a_profile_sets_the_lifetime_and_the_renewal_point(backend, "shortlived", 6, 2).await;
}

async fn the_tlsserver_profile_gives_45_day_certificates_renewed_with_a_third_left(
    backend: Backend,
) {
    a_profile_sets_the_lifetime_and_the_renewal_point(backend, "tlsserver", 45, 3).await;
}

/// An account chooses an ACME profile among those the CA advertises (an unknown one is refused
/// with the valid ones listed); its certificates are ordered with it, show it and the lifetime
/// the CA gave them (Pebble's validity period stands in for the profile's), and renew when
/// `1/left_divisor` of that lifetime is left, the profile still asked for.
async fn a_profile_sets_the_lifetime_and_the_renewal_point(
    backend: Backend,
    profile: &str,
    lifetime_days: u64,
    left_divisor: i32,
) {
    let harness = Harness::new(backend).await;
    harness.faults.advertise_profiles(ADVERTISED_PROFILES);
    let (pebble, _responder) = harness
        .own_pebble(PebbleOptions {
            certificate_validity: Some(std::time::Duration::from_secs(lifetime_days * 86_400)),
            ..PebbleOptions::default()
        })
        .await;
    let (_, mut services, issuer) = harness.counted(&pebble);
    services.issuance = Some(issuer.clone());
    let choose = |name: &str| AccountChanges {
        acme_profile: Some(Some(name.to_owned())),
        ..AccountChanges::default()
    };

    // WHEN the account asks for a profile the CA does not advertise: 400, naming the valid ones
    let refused = update_account(&services, &harness.account.id, choose("longlived"))
        .await
        .unwrap_err();
    assert_eq!((refused.status(), refused.code()), (400, "unknown_profile"));
    assert!(
        refused
            .public_message()
            .ends_with("offers classic, shortlived, tlsserver"),
        "{}",
        refused.public_message()
    );
    // AND for one it does
    let account = update_account(&services, &harness.account.id, choose(profile))
        .await
        .unwrap();
    assert_eq!(account.acme_profile.as_deref(), Some(profile));

    // THEN the next renewal of its certificate orders with that profile
    let hostname = format!("{}.example.com", unique_label("profiled"));
    let (_, certificate) = harness.active_domain_due(&hostname).await;
    let settings = RenewalSettings::new();
    let report = run_renewals(&services, issuer.as_ref(), &settings)
        .await
        .unwrap();
    assert_eq!(report.issued, 1, "{report:?}");
    assert_eq!(
        harness.faults.order_profiles(),
        vec![Some(profile.to_owned())]
    );
    // AND the certificate shows the profile, the CA's lifetime, and renews at its share of it
    let renewed = harness.certificate(&certificate.id).await;
    assert_eq!(renewed.issued_profile.as_deref(), Some(profile));
    let lifetime = renewed.lifetime().expect("issued material has a lifetime");
    let expected = Duration::days(i64::try_from(lifetime_days).unwrap());
    assert!(
        (lifetime - expected).abs() <= Duration::minutes(1),
        "lifetime {lifetime} instead of {expected}"
    );
    let expires_at = renewed.expires_at.unwrap();
    assert_eq!(
        renewed.next_renewal_at,
        Some(expires_at - lifetime / left_divisor),
        "renewal not at 1/{left_divisor} of the lifetime left"
    );

    // WHEN the clock nears that point: nothing is ordered; once past it, the renewal orders
    // with the profile again
    let until_due = renewed.next_renewal_at.unwrap() - harness.clock.now();
    harness.clock.advance(until_due - Duration::hours(1));
    let report = run_renewals(&services, issuer.as_ref(), &settings)
        .await
        .unwrap();
    assert_eq!(report.issued, 0, "renewed before its point: {report:?}");
    harness
        .clock
        .advance(Duration::hours(1) + Duration::minutes(1));
    let report = run_renewals(&services, issuer.as_ref(), &settings)
        .await
        .unwrap();
    assert_eq!(report.issued, 1, "not renewed at its point: {report:?}");
    assert_eq!(
        harness.faults.order_profiles(),
        vec![Some(profile.to_owned()); 2]
    );
}

/// A certificate whose renewal keeps failing (the CA refuses every order) is retried on every
/// run while it is valid, and escalates: a `certificate.expiring` event 14, 7 and 1 days
/// before expiry, once each, on the certificate (the API's `expiring_notice_days` and logs),
/// and in the count behind the renewer's "expires within 7 days" metric from 7 days on.
async fn a_renewal_failing_for_weeks_escalates_expiring_notices_at_14_7_and_1_days(
    backend: Backend,
) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let start = harness.clock.now();
    let expiry = start + Duration::days(15);
    let certificate = harness
        .downloadable(&zone, &format!("failing.{}", zone.name), |certificate| {
            issued_and_due(certificate, start);
            certificate.expires_at = Some(expiry);
        })
        .await;
    harness
        .faults
        .inject(Endpoint::NewOrder, Fault::ServiceUnavailable, usize::MAX);
    let settings = RenewalSettings::new();
    let mut notices_seen = Vec::new();
    // (time left before expiry, the notice then due, whether the 7-day metric counts it)
    for (left, notice, counted) in [
        (Duration::days(15), None, false),
        (Duration::days(13), Some(14), false),
        (Duration::days(10), None, false),
        (Duration::days(6), Some(7), true),
        (Duration::hours(12), Some(1), true),
    ] {
        harness.clock.advance(expiry - left - harness.clock.now());
        let report = harness.renew(&settings).await;
        assert_eq!(report.failed, 1, "{left} before expiry: {report:?}");
        let recorded: Vec<u32> = report.expiring.iter().map(|(_, days)| *days).collect();
        assert_eq!(
            recorded,
            notice.into_iter().collect::<Vec<_>>(),
            "notices recorded {left} before expiry"
        );
        notices_seen.extend(notice);
        let stored = harness.certificate(&certificate.id).await;
        assert_eq!(stored.status, CertificateStatus::Issued, "still served");
        assert_eq!(stored.expiring_notice_days, notices_seen.last().copied());
        let events: Vec<String> = harness
            .events(&certificate.id)
            .await
            .into_iter()
            .filter(|event| event.step == EXPIRING_STEP)
            .map(|event| event.message)
            .collect();
        assert_eq!(events.len(), notices_seen.len(), "{events:?}");
        if let Some(days) = notice {
            let plural = if days == 1 { "day" } else { "days" };
            assert!(
                events[0].contains(&format!("within {days} {plural}")),
                "{events:?}"
            );
        }
        let count = count_expiring_unrenewed(&harness.services, EXPIRY_WARNING)
            .await
            .unwrap();
        assert_eq!(count, usize::from(counted), "{left} before expiry");
    }
}

/// A deployment older than certificates recording their CA switches from Let's Encrypt staging
/// to production (Pebble stands for production here): its certificates record no CA. While
/// the vault holds no ACME account with another CA they stay the configured CA's; once it holds
/// one with staging, they count as another CA's: due at the process's start, still served, and
/// the next run replaces them, recording the configured CA.
async fn certificates_of_a_deployment_that_used_staging_are_replaced_after_the_switch(
    backend: Backend,
) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let now = harness.clock.now();
    let certificate = harness
        .downloadable(&zone, &format!("legacy.{}", zone.name), |certificate| {
            issued_and_due(certificate, now);
            certificate.next_renewal_at = Some(now + Duration::days(20));
            certificate.ca_directory_url = None;
        })
        .await;
    let configured = harness.directory_url.clone();

    // No other CA's account: the unrecorded material is the configured CA's
    let marked = replace_certificates_from_other_ca(&harness.services, &configured)
        .await
        .unwrap();
    assert_eq!(marked, 0);
    assert!(!harness.certificate(&certificate.id).await.is_due(now));

    // WHEN the deployment is seen to have had an ACME account with staging
    harness
        .vault
        .put_acme_account(LETS_ENCRYPT_DIRECTORIES[0], &SecretString::new("{}"))
        .await
        .unwrap();
    let marked = replace_certificates_from_other_ca(&harness.services, &configured)
        .await
        .unwrap();

    // THEN it is due now, its material still served, and its log says why
    assert_eq!(marked, 1);
    let due = harness.certificate(&certificate.id).await;
    assert!(due.is_due(now));
    assert_eq!(due.material_to_serve(now), Some("seeded"));
    let events = harness.events(&certificate.id).await;
    assert!(
        events[0].message.contains(&format!(
            "while this deployment also used {}",
            LETS_ENCRYPT_DIRECTORIES[0]
        )),
        "{events:?}"
    );
    // AND the next run replaces it with the configured CA's certificate
    let report = harness.renew(&RenewalSettings::new()).await;
    assert_eq!(report.issued, 1, "{report:?}");
    let replaced = harness.certificate(&certificate.id).await;
    assert_eq!(
        replaced.ca_directory_url.as_deref(),
        Some(configured.as_str())
    );
    assert_ne!(replaced.material_version.as_deref(), Some("seeded"));
    // AND a process starting again marks nothing more
    let marked = replace_certificates_from_other_ca(&harness.services, &configured)
        .await
        .unwrap();
    assert_eq!(marked, 0);
}
