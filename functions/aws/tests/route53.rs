//! The Route 53 DNS provider against moto's Route 53 API: TXT records set (quoted, replacing
//! earlier values), read back through ListResourceRecordSets, and cleared.

mod support;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::RrType;
use edgecert_aws::Route53DnsProvider;
use edgecert_core::model::Zone;
use edgecert_core::ports::DnsProvider;
use edgecert_core::{AccountId, Error, Hostname, ZoneId};
use time::OffsetDateTime;

async fn client() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(support::endpoint().await)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    Client::new(&config)
}

/// A new hosted zone `<unique>.example.com` and its EdgeCert zone (provider id as Route 53
/// returns it, `/hostedzone/…`).
async fn hosted_zone(client: &Client) -> Zone {
    let name = format!("{}.example.com", support::unique_name("zone"));
    let created = client
        .create_hosted_zone()
        .name(&name)
        .caller_reference(support::unique_name("ref"))
        .send()
        .await
        .expect("moto creates the hosted zone");
    let id = created
        .hosted_zone()
        .expect("a hosted zone")
        .id()
        .to_owned();
    Zone {
        id: ZoneId::generate(),
        account_id: AccountId::generate(),
        name: Hostname::parse_domain(&name).expect("a valid zone name"),
        provider: "route53".to_owned(),
        provider_zone_id: id,
        role_arn: None,
        verified: false,
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    }
}

/// The TXT values Route 53 holds at `name`, as stored (quoted).
async fn txt_values(client: &Client, zone: &Zone, name: &str) -> Vec<String> {
    let output = client
        .list_resource_record_sets()
        .hosted_zone_id(&zone.provider_zone_id)
        .send()
        .await
        .expect("moto lists the record sets");
    output
        .resource_record_sets()
        .iter()
        .filter(|set| {
            set.r#type() == &RrType::Txt
                && set.name().trim_end_matches('.').eq_ignore_ascii_case(name)
        })
        .flat_map(|set| {
            set.resource_records()
                .iter()
                .map(|record| record.value().to_owned())
        })
        .collect()
}

fn provider(client: &Client) -> Route53DnsProvider {
    Route53DnsProvider::new(client.clone())
        .with_propagation_wait(Duration::from_millis(50), Duration::from_secs(5))
}

#[tokio::test]
async fn a_txt_record_is_set_replaced_and_cleared() {
    let client = client().await;
    let zone = hosted_zone(&client).await;
    let provider = provider(&client);
    let name = format!("_acme-challenge.www.{}", zone.name);

    // GIVEN no record, WHEN one is set, THEN Route 53 holds exactly that value, quoted.
    provider.set_txt(&zone, &name, "first-value").await.unwrap();
    assert_eq!(txt_values(&client, &zone, &name).await, ["\"first-value\""]);

    // WHEN it is set again, THEN the new value replaces the old one.
    provider
        .set_txt(&zone, &name, "second-value")
        .await
        .unwrap();
    assert_eq!(
        txt_values(&client, &zone, &name).await,
        ["\"second-value\""]
    );

    // WHEN it is cleared, THEN nothing is left, and clearing again is no error.
    provider.clear_txt(&zone, &name).await.unwrap();
    assert!(txt_values(&client, &zone, &name).await.is_empty());
    provider.clear_txt(&zone, &name).await.unwrap();
}

#[tokio::test]
async fn a_bare_hosted_zone_id_works_and_other_records_stay() {
    let client = client().await;
    let mut zone = hosted_zone(&client).await;
    zone.provider_zone_id = zone
        .provider_zone_id
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let provider = provider(&client);
    let first = format!("_edgecert-zone-verify.{}", zone.name);
    let second = format!("_acme-challenge.{}", zone.name);

    provider.set_txt(&zone, &first, "one").await.unwrap();
    provider.set_txt(&zone, &second, "two").await.unwrap();
    provider.clear_txt(&zone, &first).await.unwrap();

    assert!(txt_values(&client, &zone, &first).await.is_empty());
    assert_eq!(txt_values(&client, &zone, &second).await, ["\"two\""]);
    // Clearing a name that only precedes others in the listing removes nothing else.
    provider
        .clear_txt(&zone, &format!("_a.{}", zone.name))
        .await
        .unwrap();
    assert_eq!(txt_values(&client, &zone, &second).await, ["\"two\""]);
}

#[tokio::test]
async fn an_unknown_hosted_zone_is_a_dns_error_naming_it() {
    let client = client().await;
    let mut zone = hosted_zone(&client).await;
    zone.provider_zone_id = "/hostedzone/ZNOSUCHZONE0000".to_owned();
    let error = provider(&client)
        .set_txt(&zone, &format!("_acme-challenge.{}", zone.name), "value")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Dns(_)), "{error:?}");
    assert!(error.to_string().contains("ZNOSUCHZONE0000"), "{error}");
    assert!(!error.public_message().contains("ZNOSUCHZONE0000"));
}
