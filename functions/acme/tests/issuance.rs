//! The issue use case against real Pebble and pebble-challtestsrv, each scenario on SQLite and
//! on DynamoDB + Secrets Manager (moto).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use edgecert_acme::testing::{CrashAfter, Endpoint, Fault};
use edgecert_core::model::{CertificateStatus, EventLevel, KeyType, ProvisioningStep};
use edgecert_core::ports::{Clock, Issuance, IssueOutcome, PageRequest};
use edgecert_core::usecases::issuance::Step;
use edgecert_integration::{CaaPolicy, Http01Responder, Pebble, PebbleOptions};
use futures::StreamExt as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use support::{
    Backend, Harness, PEBBLE_CAA_IDENTITY, assert_chain_verifies, leaf_matches_key, shared_pebble,
    unique_label,
};

edgecert_testkit::on_both_backends!(
    dns01_issues_two_sans_and_a_wildcard_with_a_verifiable_chain,
    rsa_2048_certificates_issue_and_revoke,
    http01_issues_a_managed_certificate_through_the_store,
    twenty_issuances_succeed_despite_rejected_nonces,
    a_challenge_without_its_txt_record_fails_readably,
    a_validation_that_fails_before_its_answer_reads_as_a_validation_failure,
    servfail_on_the_challenge_record_fails_and_leaves_no_txt,
    a_crash_after_any_step_resumes_the_same_order,
    a_lease_outlives_a_hung_ca_so_no_second_order_starts,
    an_unreachable_ca_is_reported_at_once_and_not_asked_again_during_its_cool_down,
    ten_concurrent_calls_place_exactly_one_order,
    a_rate_limit_is_honoured_until_retry_after,
    a_vault_write_failure_keeps_the_served_certificate_until_its_successor_is_stored,
    transient_ca_faults_are_retried_within_the_run,
    preflight_refusals_never_reach_the_ca,
);

fn issued(outcome: IssueOutcome) -> edgecert_core::model::Certificate {
    match outcome {
        IssueOutcome::Issued(certificate) => certificate,
        other => panic!("expected an issued certificate, got {other:?}"),
    }
}

fn failed(outcome: IssueOutcome) -> edgecert_core::model::Certificate {
    match outcome {
        IssueOutcome::Failed(certificate) => certificate,
        other => panic!("expected a failure, got {other:?}"),
    }
}

async fn dns01_issues_two_sans_and_a_wildcard_with_a_verifiable_chain(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    // GIVEN a zone whose CAA records allow (only) our CA
    h.challtestsrv
        .add_caa(
            zone.name.as_str(),
            &[CaaPolicy {
                tag: "issue".to_owned(),
                value: PEBBLE_CAA_IDENTITY.to_owned(),
            }],
        )
        .await
        .unwrap();
    // AND a certificate for *.zone with two SANs, one sharing the wildcard's TXT record name
    let apex = zone.name.to_string();
    let deep = format!("a.b.{apex}");
    let certificate = h
        .downloadable(
            &zone,
            &format!("*.{apex}"),
            &[apex.clone(), deep.clone()],
            KeyType::EcdsaP256,
        )
        .await;

    // WHEN it is issued
    let issuer = h.issuer();
    let stored = issued(issuer.issue(&h.account.id, &certificate.id).await.unwrap());

    // THEN the certificate item says so, with dates from the leaf and the renewal time with a third of the lifetime left
    assert_eq!(stored.status, CertificateStatus::Issued);
    assert_eq!(stored, h.certificate(&certificate.id).await);
    assert!(stored.order_url.is_none() && stored.pending_material_version.is_none());
    assert!(stored.last_error.is_none() && stored.next_attempt_at.is_none());
    let (not_before, expires_at) = (stored.not_before.unwrap(), stored.expires_at.unwrap());
    assert_eq!(
        stored.next_renewal_at,
        Some(edgecert_core::RenewalPolicy::default().renewal_point(not_before, expires_at))
    );
    // AND the chain verifies against Pebble's issuing root for every name, with our key
    let (chain, key) = h
        .material(&certificate.id, stored.material_version.as_deref().unwrap())
        .await;
    let root = pebble.issuing_root_pem().await.unwrap();
    assert_chain_verifies(
        &chain,
        &root,
        &[format!("anything.{apex}"), apex.clone(), deep.clone()],
    );
    assert!(leaf_matches_key(&chain, &key));
    // AND no TXT record is left behind
    assert!(h.txt(&format!("_acme-challenge.{apex}")).await.is_empty());
    assert!(h.txt(&format!("_acme-challenge.{deep}")).await.is_empty());
    // AND every step left an event, none of them an error
    let events = h.events(&certificate.id).await;
    for step in [
        "preflight",
        "order",
        "challenge",
        "key",
        "finalize",
        "stored",
        "issued",
    ] {
        assert!(
            events.iter().any(|event| event.step == step),
            "no {step} event in {events:#?}"
        );
    }
    assert!(
        events.iter().all(|event| event.level != EventLevel::Error),
        "{events:#?}"
    );
    // AND one account, one order
    assert_eq!((h.faults.new_accounts(), h.faults.new_orders()), (1, 1));
    // AND nothing is due any more, and the lease is free again
    assert_eq!(
        issuer.issue(&h.account.id, &certificate.id).await.unwrap(),
        IssueOutcome::Skipped
    );
    let lease = format!("issue:*.{apex},{deep},{apex}");
    h.store
        .acquire_lease(&lease, "test", time::Duration::minutes(1), h.clock.now())
        .await
        .unwrap();
}

async fn rsa_2048_certificates_issue_and_revoke(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let name = format!("rsa.{}", zone.name);
    let certificate = h.downloadable(&zone, &name, &[], KeyType::Rsa2048).await;
    let issuer = h.issuer();

    let stored = issued(issuer.issue(&h.account.id, &certificate.id).await.unwrap());

    let (chain, key) = h
        .material(&certificate.id, stored.material_version.as_deref().unwrap())
        .await;
    assert!(leaf_matches_key(&chain, &key));
    let leaf = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    match parsed.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        other => panic!("expected an RSA key, got {other:?}"),
    }
    assert_chain_verifies(&chain, &pebble.issuing_root_pem().await.unwrap(), &[name]);

    // Revocation reaches the CA; asking twice is not an error.
    issuer.revoke(&stored).await.unwrap();
    issuer.revoke(&stored).await.unwrap();
    assert!(
        h.events(&certificate.id)
            .await
            .iter()
            .any(|event| event.step == "revoke")
    );
}

async fn http01_issues_a_managed_certificate_through_the_store(backend: Backend) {
    // Pebble validates HTTP-01 on its own port: this test needs a Pebble to itself.
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let h = Harness::new(backend, &pebble).await;
    let responder = Http01Responder::start(h.store.clone(), pebble.http_port())
        .await
        .unwrap();
    // GIVEN a whitelisted domain pointing at the edge (challtestsrv answers 127.0.0.1)
    let hostname = format!("shop.{}.example.com", unique_label("c"));
    let (domain, certificate) = h.managed(&hostname).await;

    let stored = issued(
        h.issuer()
            .issue(&h.account.id, &certificate.id)
            .await
            .unwrap(),
    );

    // THEN the CA read the answer from the store, which no longer holds it
    assert!(responder.answered() >= 1);
    for token in responder.answered_tokens() {
        assert_eq!(
            h.store.get_http01(&token, h.clock.now()).await.unwrap(),
            None
        );
    }
    // AND the domain is active, and the chain verifies for it
    assert_eq!(stored.status, CertificateStatus::Issued);
    let domain = h.domain(&domain.id).await;
    assert_eq!(domain.provisioning_step, ProvisioningStep::Active);
    assert_eq!(domain.certificate_id.as_ref(), Some(&certificate.id));
    let (chain, key) = h
        .material(&certificate.id, stored.material_version.as_deref().unwrap())
        .await;
    assert_chain_verifies(
        &chain,
        &pebble.issuing_root_pem().await.unwrap(),
        &[hostname],
    );
    assert!(leaf_matches_key(&chain, &key));
}

async fn twenty_issuances_succeed_despite_rejected_nonces(backend: Backend) {
    // The launcher keeps Pebble's default 5% nonce rejection (PEBBLE_WFE_NONCEREJECT unset).
    assert_eq!(PebbleOptions::default().nonce_reject_percent, None);
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let mut certificates = Vec::new();
    for index in 0..20 {
        let name = format!("n{index}.{}", zone.name);
        certificates.push(h.downloadable(&zone, &name, &[], KeyType::EcdsaP256).await);
    }
    let issuer = h.issuer();

    // WHEN 20 certificates are issued, four at a time, by one issuer on a fresh vault
    let outcomes: Vec<IssueOutcome> = futures::stream::iter(&certificates)
        .map(|certificate| {
            let issuer = issuer.clone();
            let account = h.account.id.clone();
            async move { issuer.issue(&account, &certificate.id).await.unwrap() }
        })
        .buffer_unordered(4)
        .collect()
        .await;

    // THEN all succeed, with one ACME account and one order each
    for outcome in outcomes {
        issued(outcome);
    }
    assert_eq!(h.faults.new_accounts(), 1);
    assert_eq!(h.faults.new_orders(), 20);
    // AND Pebble did reject nonces on the way (about 170 signed requests at 5%)
    assert!(h.faults.problems("badNonce") > 0, "no nonce was rejected");
}

async fn a_challenge_without_its_txt_record_fails_readably(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    // GIVEN a zone whose DNS provider silently writes nothing
    let zone = h.zone("skipping").await;
    let name = format!("lost.{}", zone.name);
    let certificate = h.downloadable(&zone, &name, &[], KeyType::EcdsaP256).await;
    let issuer = h.issuer();
    let started = h.clock.now();

    let stored = failed(issuer.issue(&h.account.id, &certificate.id).await.unwrap());

    // THEN the certificate failed with a sentence naming the name, and a retry time
    assert!(h.skipping_dns.skipped_writes() >= 1);
    assert_eq!(stored.status, CertificateStatus::Failed);
    assert_eq!(stored, h.certificate(&certificate.id).await);
    let error = stored.last_error.clone().unwrap();
    assert!(
        error.starts_with(&format!("Validation of {name} failed: ")),
        "{error}"
    );
    assert_eq!(stored.consecutive_failures, 1);
    assert_eq!(
        stored.next_attempt_at,
        Some(started + time::Duration::minutes(1))
    );
    // AND the dead order is forgotten, and no key was generated for it
    assert!(stored.order_url.is_none());
    assert!(stored.pending_material_version.is_none() && stored.material_version.is_none());
    // AND the logs carry the failure with its ACME problem type
    let events = h.events(&certificate.id).await;
    let failure = events
        .iter()
        .find(|event| event.level == EventLevel::Error)
        .expect("an error event");
    assert_eq!(failure.step, "challenge");
    assert!(failure.message.contains(&name), "{failure:?}");
    assert!(
        failure
            .acme_problem
            .as_deref()
            .is_some_and(|problem| problem.starts_with("urn:ietf:params:acme:error:")),
        "{failure:?}"
    );
    assert!(h.txt(&format!("_acme-challenge.{name}")).await.is_empty());
    // AND no retry happens before the backoff
    assert_eq!(
        issuer.issue(&h.account.id, &certificate.id).await.unwrap(),
        IssueOutcome::Skipped
    );
    assert_eq!(h.faults.new_orders(), 1);
}

async fn a_validation_that_fails_before_its_answer_reads_as_a_validation_failure(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    // GIVEN a zone whose DNS provider silently writes nothing
    let zone = h.zone("skipping").await;
    let name = format!("early.{}", zone.name);
    let certificate = h.downloadable(&zone, &name, &[], KeyType::EcdsaP256).await;
    // AND a CA that finishes (failing) the validation before it answers the request to start
    // it, so that the answer already carries a problem
    h.faults.inject(
        Endpoint::Challenge,
        Fault::ValidationFinishedFirst {
            after: Duration::from_secs(1),
        },
        1,
    );

    let stored = failed(
        h.issuer()
            .issue(&h.account.id, &certificate.id)
            .await
            .unwrap(),
    );

    // THEN it reads as the validation failure it is, with the CA's own reason from the
    // authorization, not as a refused request
    let error = stored.last_error.clone().unwrap();
    assert!(
        error.starts_with(&format!("Validation of {name} failed: ")),
        "{error}"
    );
    assert!(!error.contains("injected"), "{error}");
    // AND the dead order is forgotten, so that the next attempt places a new one
    assert!(stored.order_url.is_none());
    assert_eq!(stored.consecutive_failures, 1);
    assert_eq!(h.faults.new_orders(), 1);
}

async fn servfail_on_the_challenge_record_fails_and_leaves_no_txt(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let name = format!("sf.{}", zone.name);
    let record = format!("_acme-challenge.{name}");
    // GIVEN the challenge record answers SERVFAIL to the CA
    h.challtestsrv.set_servfail(&record).await.unwrap();
    let certificate = h.downloadable(&zone, &name, &[], KeyType::EcdsaP256).await;

    let stored = failed(
        h.issuer()
            .issue(&h.account.id, &certificate.id)
            .await
            .unwrap(),
    );

    assert_eq!(stored.status, CertificateStatus::Failed);
    assert!(stored.next_attempt_at.is_some());
    assert!(stored.pending_material_version.is_none());
    let events = h.events(&certificate.id).await;
    assert!(
        events.iter().any(|event| event.level == EventLevel::Error
            && event.acme_problem.is_some()
            && event
                .message
                .starts_with(&format!("Validation of {name} failed"))),
        "{events:#?}"
    );
    // AND the TXT record written through challtestsrv was removed again
    h.challtestsrv.clear_servfail(&record).await.unwrap();
    assert!(h.txt(&record).await.is_empty());
}

async fn a_crash_after_any_step_resumes_the_same_order(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let ttl = h.config().lease_ttl;
    for step in [
        Step::OrderCreated,
        Step::ChallengeReady,
        Step::KeyStored,
        Step::Finalized,
    ] {
        let name = format!("{}.{}", step.as_str().replace('_', "-"), zone.name);
        let certificate = h.downloadable(&zone, &name, &[], KeyType::EcdsaP256).await;
        let orders_before = h.faults.new_orders();

        // GIVEN a run that dies right after `step`
        let crashing = h.issuer_with_hook(Arc::new(CrashAfter(step)));
        let (account, id) = (h.account.id.clone(), certificate.id.clone());
        let crash = tokio::spawn(async move { crashing.issue(&account, &id).await }).await;
        assert!(
            crash.unwrap_err().is_panic(),
            "{step}: the run did not crash"
        );
        let interrupted = h.certificate(&certificate.id).await;
        assert_eq!(interrupted.status, CertificateStatus::Validating, "{step}");
        assert!(interrupted.order_url.is_some(), "{step}");
        let pending_key = match &interrupted.pending_material_version {
            Some(version) => Some(h.material(&certificate.id, version).await.1),
            None => None,
        };
        assert_eq!(
            pending_key.is_some(),
            matches!(step, Step::KeyStored | Step::Finalized),
            "{step}"
        );
        // AND while its lease lasts, nobody else starts over
        let fresh = h.issuer();
        assert_eq!(
            fresh.issue(&h.account.id, &certificate.id).await.unwrap(),
            IssueOutcome::InProgress,
            "{step}"
        );

        // WHEN the lease has expired and the certificate is picked up again
        h.clock.advance(ttl + time::Duration::seconds(1));
        assert!(interrupted.due_at().unwrap() <= h.clock.now());
        let stored = issued(fresh.issue(&h.account.id, &certificate.id).await.unwrap());

        // THEN it completes on the stored order, with the stored key when there was one
        assert_eq!(
            h.faults.new_orders() - orders_before,
            1,
            "{step}: a second order"
        );
        let (chain, key) = h
            .material(&certificate.id, stored.material_version.as_deref().unwrap())
            .await;
        assert!(leaf_matches_key(&chain, &key));
        if let Some(pending_key) = pending_key {
            assert_eq!(key, pending_key, "{step}: the pending key was not reused");
        }
        assert!(
            h.txt(&format!("_acme-challenge.{name}")).await.is_empty(),
            "{step}"
        );
    }
}

/// Stops the CA process (SIGSTOP) right after the order is created, and says so.
struct StopCaAfterOrder {
    pid: u32,
    stopped: tokio::sync::Notify,
}

impl edgecert_core::usecases::issuance::StepHook for StopCaAfterOrder {
    fn after(&self, step: Step, _: &edgecert_core::CertificateId) {
        if step == Step::OrderCreated {
            signal(self.pid, "STOP");
            self.stopped.notify_one();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

async fn a_lease_outlives_a_hung_ca_so_no_second_order_starts(backend: Backend) {
    // A Pebble of its own: it is stopped in the middle of the order.
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let h = Harness::new(backend, &pebble).await;
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(
            &zone,
            &format!("hung.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    // A lease shorter than one request's timeout: the CA hangs for longer than the lease.
    let mut config = h.config();
    config.lease_ttl = time::Duration::seconds(3);
    config.request_timeout = Duration::from_secs(30);
    let hook = Arc::new(StopCaAfterOrder {
        pid: pebble.pebble_pid(),
        stopped: tokio::sync::Notify::new(),
    });
    let first = h.issuer_with_config(config.clone(), Some(hook.clone()));
    let (account, id) = (h.account.id.clone(), certificate.id.clone());
    let running = tokio::spawn(async move { first.issue(&account, &id).await });
    tokio::time::timeout(Duration::from_secs(30), hook.stopped.notified())
        .await
        .expect("the order was never created");

    // GIVEN the CA hangs for more than the lease's time to live (the first run's request
    // waits), as seen by every worker's clock
    for _ in 0..3 {
        h.clock.advance(time::Duration::seconds(2));
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }

    // WHEN another worker is asked to issue the same certificate
    let second = h.issuer_with_config(config, None);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        second.issue(&h.account.id, &certificate.id),
    )
    .await;
    signal(pebble.pebble_pid(), "CONT");

    // THEN it finds the lease held (it would otherwise hang on the stopped CA)
    assert_eq!(
        outcome
            .expect("the second worker took the lease over and waited on the hung CA")
            .unwrap(),
        IssueOutcome::InProgress
    );
    // AND the first run completes with the one order
    let finished = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the first run did not finish after the CA resumed")
        .unwrap()
        .unwrap();
    issued(finished);
    assert_eq!(h.faults.new_orders(), 1);
}

async fn an_unreachable_ca_is_reported_at_once_and_not_asked_again_during_its_cool_down(
    backend: Backend,
) {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let h = Harness::new(backend, &pebble).await;
    let zone = h.zone("challtestsrv").await;
    let first = h
        .downloadable(&zone, &format!("a.{}", zone.name), &[], KeyType::EcdsaP256)
        .await;
    let second = h
        .downloadable(&zone, &format!("b.{}", zone.name), &[], KeyType::EcdsaP256)
        .await;
    let mut config = h.config();
    config.request_timeout = Duration::from_secs(2);
    let issuer = h.issuer_with_config(config, None);

    // GIVEN the CA stopped (it accepts connections and never answers)
    signal(pebble.pebble_pid(), "STOP");
    // WHEN a certificate is issued
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        issuer.issue(&h.account.id, &first.id),
    )
    .await;
    let waited = started.elapsed();
    let recorded = failed(outcome.expect("the run waited on the stopped CA").unwrap());
    // THEN the failure is recorded after one request timeout, not after retries of it
    assert!(
        waited < Duration::from_secs(5),
        "took {waited:?}: the unreachable CA was asked again within the run"
    );
    assert!(
        recorded
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("could not be reached")),
        "{recorded:?}"
    );
    assert!(recorded.next_attempt_at.unwrap() > h.clock.now());

    // WHEN another certificate is issued during the cool-down
    let requests = h.faults.requests();
    let started = std::time::Instant::now();
    let recorded = failed(issuer.issue(&h.account.id, &second.id).await.unwrap());
    // THEN it fails at once, without a request, with a next attempt after the cool-down
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(h.faults.requests(), requests);
    assert!(recorded.next_attempt_at.unwrap() >= h.clock.now() + time::Duration::seconds(30));

    // WHEN the CA is back and the cool-down is over THEN issuance works again
    signal(pebble.pebble_pid(), "CONT");
    h.clock.advance(time::Duration::minutes(2));
    issued(issuer.issue(&h.account.id, &second.id).await.unwrap());
}

async fn ten_concurrent_calls_place_exactly_one_order(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(
            &zone,
            &format!("busy.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    let issuer = h.issuer();

    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (issuer, account, id) =
                (issuer.clone(), h.account.id.clone(), certificate.id.clone());
            tokio::spawn(async move { issuer.issue(&account, &id).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }

    assert_eq!(h.faults.new_orders(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|outcome| matches!(outcome, IssueOutcome::Issued(_)))
    );
    assert!(
        outcomes
            .iter()
            .all(|outcome| !matches!(outcome, IssueOutcome::Failed(_))),
        "{outcomes:?}"
    );
    assert_eq!(
        h.certificate(&certificate.id).await.status,
        CertificateStatus::Issued
    );
}

async fn a_rate_limit_is_honoured_until_retry_after(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(
            &zone,
            &format!("limited.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    // GIVEN the CA answers the next newOrder with 429 and Retry-After: 120
    h.faults.inject(
        Endpoint::NewOrder,
        Fault::RateLimited {
            retry_after: Duration::from_secs(120),
        },
        1,
    );
    let issuer = h.issuer();
    let started = h.clock.now();

    let stored = failed(issuer.issue(&h.account.id, &certificate.id).await.unwrap());

    // THEN the next attempt is no earlier than the CA asked (not the 1-minute backoff)
    let next = stored.next_attempt_at.unwrap();
    assert!(
        next >= started + time::Duration::seconds(120),
        "{next} vs {started}"
    );
    assert!(stored.last_error.unwrap().contains("rate-limited"));
    let events = h.events(&certificate.id).await;
    assert!(events.iter().any(
        |event| event.acme_problem.as_deref() == Some("urn:ietf:params:acme:error:rateLimited")
    ));
    assert_eq!(
        (h.faults.new_order_requests(), h.faults.new_orders()),
        (1, 0)
    );
    // AND before that time nothing reaches the CA
    h.clock.advance(time::Duration::seconds(60));
    assert_eq!(
        issuer.issue(&h.account.id, &certificate.id).await.unwrap(),
        IssueOutcome::Skipped
    );
    assert_eq!(h.faults.new_order_requests(), 1);
    // AND after it, issuance goes through
    h.clock.advance(time::Duration::seconds(61));
    issued(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert_eq!(h.faults.new_orders(), 1);
}

async fn a_vault_write_failure_keeps_the_served_certificate_until_its_successor_is_stored(
    backend: Backend,
) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(
            &zone,
            &format!("vault.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    let issuer = h.issuer();

    // GIVEN the vault fails to store the first chain
    h.vault.fail_chain_writes(1);
    let stored = failed(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    // THEN nothing is issued, but the order and its key are kept for the next run
    assert_eq!(stored.status, CertificateStatus::Failed);
    assert!(stored.material_version.is_none());
    assert!(stored.order_url.is_some() && stored.pending_material_version.is_some());
    assert!(stored.last_error.unwrap().contains("vault"));
    // WHEN the next run comes
    h.clock.advance(time::Duration::minutes(2));
    let first = issued(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    // THEN it completes the same order
    assert_eq!(h.faults.new_orders(), 1);
    let first_version = first.material_version.clone().unwrap();

    // GIVEN that certificate is due for renewal and the vault fails again
    h.clock
        .advance(first.next_renewal_at.unwrap() - h.clock.now());
    h.vault.fail_chain_writes(1);
    let renewing = failed(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    // THEN the served certificate stays issued and unchanged, with a retry planned
    assert_eq!(renewing.status, CertificateStatus::Issued);
    assert_eq!(
        renewing.material_version.as_deref(),
        Some(first_version.as_str())
    );
    assert!(renewing.next_attempt_at.unwrap() > h.clock.now());
    // AND the retry switches to the new material only once it is stored
    h.clock.advance(time::Duration::minutes(2));
    let renewed = issued(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert_ne!(renewed.material_version, Some(first_version.clone()));
    assert_eq!(renewed.consecutive_failures, 0);
    // The new material is stored whole (the first one, superseded, may be pruned).
    let (new_chain, new_key) = h
        .material(
            &certificate.id,
            renewed.material_version.as_deref().unwrap(),
        )
        .await;
    assert!(!new_chain.is_empty() && !new_key.is_empty());
}

async fn transient_ca_faults_are_retried_within_the_run(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(
            &zone,
            &format!("flaky.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    // GIVEN a 503 on newOrder and a connection lost after the CA finalized
    h.faults
        .inject(Endpoint::NewOrder, Fault::ServiceUnavailable, 1);
    h.faults
        .inject(Endpoint::Finalize, Fault::ConnectionReset, 1);

    // WHEN one run issues
    issued(
        h.issuer()
            .issue(&h.account.id, &certificate.id)
            .await
            .unwrap(),
    );

    // THEN it retried (the refused newOrder, then a real one) and resumed the finalized order
    assert!(h.faults.new_order_requests() >= 2);
    assert_eq!(h.faults.new_orders(), 1);
    let warnings: Vec<_> = h
        .events(&certificate.id)
        .await
        .into_iter()
        .filter(|event| event.level == EventLevel::Warning)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
}

async fn preflight_refusals_never_reach_the_ca(backend: Backend) {
    let pebble = shared_pebble().await;
    let h = Harness::new(backend, pebble).await;
    let issuer = h.issuer();
    let refusal = |outcome: IssueOutcome| failed(outcome).last_error.unwrap();

    // CAA naming another CA.
    let zone = h.zone("challtestsrv").await;
    h.challtestsrv
        .add_caa(
            zone.name.as_str(),
            &[CaaPolicy {
                tag: "issue".to_owned(),
                value: "other-ca.example".to_owned(),
            }],
        )
        .await
        .unwrap();
    let caa = h
        .downloadable(
            &zone,
            &format!("www.{}", zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    let error = refusal(issuer.issue(&h.account.id, &caa.id).await.unwrap());
    assert!(
        error.contains("CAA records at") && error.contains("other-ca.example"),
        "{error}"
    );

    // An unverified zone.
    let unverified = h.zone_with("challtestsrv", false).await;
    let certificate = h
        .downloadable(
            &unverified,
            &format!("www.{}", unverified.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    let error = refusal(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert!(error.contains("is not verified"), "{error}");

    // A name outside the zone.
    let zone = h.zone("challtestsrv").await;
    let certificate = h
        .downloadable(&zone, "www.elsewhere.example.org", &[], KeyType::EcdsaP256)
        .await;
    let error = refusal(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert!(error.starts_with("Domain not under zone"), "{error}");

    // A name another account whitelisted after the certificate was requested.
    let claimed_zone = h.zone("challtestsrv").await;
    let shop = format!("shop.{}", claimed_zone.name);
    let certificate = h
        .downloadable(
            &claimed_zone,
            &format!("www.{}", claimed_zone.name),
            std::slice::from_ref(&shop),
            KeyType::EcdsaP256,
        )
        .await;
    h.whitelisted_by_another_account(&shop).await;
    let error = refusal(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert_eq!(
        error,
        format!("The name {shop} is whitelisted by another account")
    );

    // A wildcard whose base another account whitelisted: the zone's apex.
    let apex_zone = h.zone("challtestsrv").await;
    let apex_wildcard = h
        .downloadable(
            &apex_zone,
            &format!("*.{}", apex_zone.name),
            &[],
            KeyType::EcdsaP256,
        )
        .await;
    h.whitelisted_by_another_account(apex_zone.name.as_str())
        .await;
    let error = refusal(
        issuer
            .issue(&h.account.id, &apex_wildcard.id)
            .await
            .unwrap(),
    );
    assert_eq!(
        error,
        format!(
            "The name {} is whitelisted by another account",
            apex_zone.name
        )
    );

    // A wildcard after a downgrade to Pro.
    let wildcard = h
        .downloadable(&zone, &format!("*.{}", zone.name), &[], KeyType::EcdsaP256)
        .await;
    let mut account = h.account.clone();
    account.plan = edgecert_core::PlanName::Pro;
    h.store.update_account(&account).await.unwrap();
    let error = refusal(issuer.issue(&h.account.id, &wildcard.id).await.unwrap());
    assert_eq!(error, "Wildcard certificates require Elite plan");

    // A managed domain that points elsewhere.
    let hostname = format!("away.{}.example.com", unique_label("c"));
    h.challtestsrv
        .add_a(&hostname, &[Ipv4Addr::new(192, 0, 2, 7)])
        .await
        .unwrap();
    let (domain, certificate) = h.managed(&hostname).await;
    let error = refusal(issuer.issue(&h.account.id, &certificate.id).await.unwrap());
    assert!(
        error.contains("points at 192.0.2.7 instead of the edge"),
        "{error}"
    );
    let domain = h.domain(&domain.id).await;
    assert_eq!(domain.provisioning_step, ProvisioningStep::Failed);
    assert_eq!(domain.last_error.as_deref(), Some(error.as_str()));

    // None of it reached the CA, not even to register the account.
    assert_eq!(h.faults.requests(), 0);
    let all = h
        .store
        .list_certificates(&h.account.id, PageRequest::first(100))
        .await
        .unwrap();
    assert!(
        all.items
            .iter()
            .all(|certificate| certificate.order_url.is_none())
    );
    assert!(
        all.items
            .iter()
            .all(|certificate| certificate.status == CertificateStatus::Failed)
    );
}
