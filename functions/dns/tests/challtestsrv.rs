//! The DNS adapters against a real pebble-challtestsrv: TXT records written through its
//! management API (replacing, as the port promises) and read back with the hickory resolver,
//! CAA records, and SERVFAIL surfacing as an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgecert_core::Hostname;
use edgecert_core::ids::{AccountId, ZoneId};
use edgecert_core::model::Zone;
use edgecert_core::ports::{CaaRecord, DnsProvider, DnsResolver};
use edgecert_dns::{ChalltestsrvDnsProvider, HickoryResolver};
use edgecert_integration::{CaaPolicy, Pebble, PebbleOptions};

fn zone(name: &str) -> Zone {
    Zone {
        id: ZoneId::generate(),
        account_id: AccountId::generate(),
        name: Hostname::parse_domain(name).unwrap(),
        provider: "challtestsrv".to_owned(),
        provider_zone_id: "local".to_owned(),
        role_arn: None,
        verified: true,
        created_at: time::OffsetDateTime::now_utc(),
        version: 1,
    }
}

#[tokio::test]
async fn txt_records_are_replaced_and_cleared_and_caa_is_read() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let challtestsrv = pebble.challtestsrv();
    let provider = ChalltestsrvDnsProvider::new(challtestsrv.management_url()).unwrap();
    let resolver = HickoryResolver::with_name_server(challtestsrv.dns_server_addr());
    let zone = zone("dns-adapter.example.com");
    let record = "_acme-challenge.dns-adapter.example.com";

    // GIVEN two writes to one name, THEN only the second value is served
    provider.set_txt(&zone, record, "first").await.unwrap();
    provider.set_txt(&zone, record, "second").await.unwrap();
    assert_eq!(resolver.txt(record).await.unwrap(), ["second"]);
    // WHEN it is cleared THEN nothing is served, and clearing again is no error
    provider.clear_txt(&zone, record).await.unwrap();
    assert!(resolver.txt(record).await.unwrap().is_empty());
    provider.clear_txt(&zone, record).await.unwrap();

    // CAA records come back with tag and raw value; names without any answer empty.
    challtestsrv
        .add_caa(
            "dns-adapter.example.com",
            &[CaaPolicy {
                tag: "issue".to_owned(),
                value: "letsencrypt.org".to_owned(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        resolver.caa("dns-adapter.example.com").await.unwrap(),
        [CaaRecord {
            flags: 0,
            tag: "issue".to_owned(),
            value: "letsencrypt.org".to_owned(),
        }]
    );
    assert!(resolver.caa("other.example.com").await.unwrap().is_empty());

    // SERVFAIL is a failure to ask, not an empty answer.
    challtestsrv
        .set_servfail("broken.example.com")
        .await
        .unwrap();
    let error = resolver.caa("broken.example.com").await.unwrap_err();
    assert_eq!(error.code(), "dns_unavailable");
}
