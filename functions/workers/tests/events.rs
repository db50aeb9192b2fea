//! The worker handlers on the real event JSON in `events/`: the issuer on a DynamoDB stream
//! batch (`issuer-stream.json`), the renewer on its schedule event (`renewer-schedule.json`),
//! against real Pebble on SQLite and on DynamoDB + Secrets Manager in moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_lambda_events::dynamodb::Event;
use edgecert_core::model::{Certificate, CertificateStatus};
use edgecert_core::ports::MaterialVersion;
use edgecert_core::usecases::key_storage::KeySweepSettings;
use edgecert_core::usecases::renewals::RenewalSettings;
use edgecert_workers::issuer::{handle_stream, issue_request};
use edgecert_workers::renewer::{ScheduleEvent, handle_key_storage, handle_schedule};

use support::{Backend, Harness};

edgecert_testkit::on_both_backends!(
    the_stream_issues_a_requested_certificate_once,
    the_schedule_event_runs_the_renewer,
    the_rotation_event_reseals_every_key_without_reissuing,
);

const STREAM: &str = include_str!("../../../events/issuer-stream.json");
const SCHEDULE: &str = include_str!("../../../events/renewer-schedule.json");
const ROTATE: &str = include_str!("../../../events/renewer-rotate-data-key.json");

/// The fixture with its placeholder ids replaced by `certificate`'s, as Lambda would deliver
/// it for that certificate (the ids are inside `data` and the keys alike).
fn stream_event(certificate: &Certificate, zone: &str) -> Event {
    use edgecert_aws::schema::{ACCOUNT_SHARDS, INDEX_SHARDS, shard_of};
    // The fixture's shards (`#00`) become the ones the table's layout gives this certificate.
    let id = certificate.id.as_str();
    let account_shard = format!(
        "{}#{:02}",
        certificate.account_id,
        shard_of(id, ACCOUNT_SHARDS)
    );
    let index_shard = format!("#{:02}", shard_of(id, INDEX_SHARDS));
    let text = STREAM
        .replace("acct_placeholder000000000#00", &account_shard)
        .replace("DUE#00", &format!("DUE{index_shard}"))
        .replace("CHANGED#CERT#00", &format!("CHANGED#CERT{index_shard}"))
        .replace("acct_placeholder000000000", certificate.account_id.as_str())
        .replace("cert_placeholder000000000", certificate.id.as_str())
        .replace("zone_placeholder000000000", zone);
    // Parsed as the Lambda runtime parses the invocation payload.
    serde_json::from_str(&text).unwrap()
}

/// The stream batch issues the certificate its records ask for, once: the INSERT and the
/// issuer's own MODIFY name the same certificate, the account and TTL records are ignored, and
/// the batch delivered again (or in another order) places no second order.
async fn the_stream_issues_a_requested_certificate_once(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let requested = harness
        .downloadable(&zone, &format!("www.{}", zone.name), |_| {})
        .await;
    let event = stream_event(&requested, zone.id.as_str());
    let requests: Vec<_> = event
        .records
        .iter()
        .filter_map(|record| issue_request(record, harness.services.clock.now()).unwrap())
        .collect();
    assert_eq!(requests.len(), 2, "INSERT and MODIFY of the certificate");
    assert!(requests.iter().all(
        |request| request.certificate == requested.id && request.account == harness.account.id
    ));

    let issuance = harness.issuance();
    let response = handle_stream(&harness.services, issuance.as_ref(), &event, 8).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(harness.faults.new_orders(), 1);
    let issued = harness.certificate(&requested.id).await;
    assert_eq!(issued.status, CertificateStatus::Issued);

    // Delivered again, and again with its records reversed: nothing more.
    let response = handle_stream(&harness.services, issuance.as_ref(), &event, 8).await;
    assert!(response.batch_item_failures.is_empty());
    let mut reversed = event.clone();
    reversed.records.reverse();
    let response = handle_stream(&harness.services, issuance.as_ref(), &reversed, 8).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(harness.faults.new_orders(), 1);
    assert_eq!(harness.issued_events(&requested.id).await, 1);
    assert_eq!(
        harness.certificate(&requested.id).await.material_version,
        issued.material_version
    );

    if backend == Backend::Dynamo {
        assert_stream_attributes_exist(&harness, &requested).await;
    }
}

/// The attributes the issuer reads from stream images are the ones the DynamoDB store writes,
/// under the keys the fixture's records carry.
async fn assert_stream_attributes_exist(harness: &Harness, certificate: &Certificate) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use edgecert_aws::schema::{DATA, ENTITY, STATUS};
    let (clients, table) = harness.dynamo.as_ref().unwrap();
    let event = stream_event(certificate, "zone");
    let key = event.records[0]
        .change
        .keys
        .iter()
        .map(|(name, value)| {
            let value = serde_json::to_value(value).unwrap()["S"]
                .as_str()
                .unwrap()
                .to_owned();
            (name.clone(), AttributeValue::S(value))
        })
        .collect();
    let item = clients
        .dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .send()
        .await
        .unwrap()
        .item
        .expect("the certificate item under the fixture's keys");
    assert_eq!(item[ENTITY].as_s().unwrap(), "certificate");
    assert_eq!(item[STATUS].as_s().unwrap(), "issued");
    let stored: Certificate = serde_json::from_str(item[DATA].as_s().unwrap()).unwrap();
    assert_eq!(stored.id, certificate.id);
}

/// The schedule event runs the renewer: a due certificate is renewed.
async fn the_schedule_event_runs_the_renewer(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let due = harness
        .due_renewal(&zone, &format!("scheduled.{}", zone.name))
        .await;
    let event: ScheduleEvent = serde_json::from_str(SCHEDULE).unwrap();
    assert_eq!(event.schedule.as_deref(), Some("edgecert-renewal"));
    let settings = RenewalSettings::new();
    let issuance = harness.issuance();
    let report = handle_schedule(&harness.services, issuance.as_ref(), &settings, &event)
        .await
        .unwrap();
    assert_eq!(report.issued, 1, "{report:?}");
    assert_eq!(harness.faults.new_orders(), 1);
    assert!(
        harness
            .certificate(&due.id)
            .await
            .material_version
            .is_some()
    );
}

/// The renewer invoked by hand with `{"rotate_data_key": true}` makes a new data key current
/// and re-seals an issued certificate's key in the same run: same chain and key, nothing sent
/// to the CA. A vault without data keys (SQLite) has nothing to rotate or move.
async fn the_rotation_event_reseals_every_key_without_reissuing(backend: Backend) {
    let harness = Harness::new(backend).await;
    let zone = harness.zone().await;
    let due = harness
        .due_renewal(&zone, &format!("rotated.{}", zone.name))
        .await;
    let settings = RenewalSettings::new();
    let report = harness.renew(&settings).await;
    assert_eq!(report.issued, 1, "{report:?}");
    let issued = harness.certificate(&due.id).await;
    let version = MaterialVersion(issued.material_version.clone().unwrap());
    let material = harness.vault.get_material(&due.id, &version).await.unwrap();
    let orders = harness.faults.new_orders();

    let event: ScheduleEvent = serde_json::from_str(ROTATE).unwrap();
    assert!(event.rotate_data_key);
    let sweep = handle_key_storage(&harness.services, &KeySweepSettings::default(), &event).await;
    assert_eq!(sweep.error_count, 0, "{sweep:?}");
    let after = harness.certificate(&due.id).await;
    let moved = MaterialVersion(after.material_version.clone().unwrap());
    match backend {
        Backend::Sqlite => {
            assert_eq!(sweep.generation, None);
            assert_eq!(moved, version);
        }
        Backend::Dynamo => {
            assert_eq!(sweep.moved, 1, "{sweep:?}");
            assert_ne!(moved, version, "not re-sealed");
            let generation = sweep.generation.as_deref().unwrap();
            assert!(harness.vault.is_in_generation(&moved, generation));
            assert!(!harness.vault.is_in_generation(&version, generation));
        }
    }
    assert_eq!(
        harness.vault.get_material(&due.id, &moved).await.unwrap(),
        material,
        "the key or chain changed"
    );
    assert_eq!(
        harness.faults.new_orders(),
        orders,
        "a rotation went to the CA"
    );
}
