//! The Route 53 DNS provider against moto's Route 53 and STS APIs: TXT records set (quoted,
//! replacing earlier values), read back through ListResourceRecordSets, and cleared; and whose
//! hosted zones it may touch at all.
//!
//! moto keeps one set of hosted zones per AWS account and serves credentials from
//! `AssumeRole` in the account of the role's ARN, so "the customer's own AWS account" is a
//! real second account here: [`CustomerAccount`] creates its hosted zones with its own
//! credentials, out of reach of EdgeCert's (moto's default account).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::RrType;
use aws_sdk_sts::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sts::operation::assume_role::AssumeRoleInput;
use edgecert_aws::Route53DnsProvider;
use edgecert_core::model::Zone;
use edgecert_core::ports::{DnsProvider, ZoneGrants};
use edgecert_core::{AccountId, Error, Hostname, ZoneId};
use rand::Rng as _;
use time::OffsetDateTime;

async fn sdk_config(credentials: Credentials) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(support::endpoint().await)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

/// EdgeCert's own Route 53 client: moto's default account (the operator's).
async fn client() -> Client {
    Client::new(&sdk_config(Credentials::new("test", "test", None, None, "tests")).await)
}

/// A new hosted zone `<unique>.example.com` through `client`, and its EdgeCert zone (provider
/// id as Route 53 returns it, `/hostedzone/…`) for a new EdgeCert account.
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

/// The TXT values Route 53 holds at `name`, as stored (quoted), read through `client`.
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

/// The ExternalId of every AssumeRole the provider sends, read from the request it builds.
#[derive(Debug, Clone, Default)]
struct ExternalIds(Arc<Mutex<Vec<Option<String>>>>);

impl ExternalIds {
    fn seen(&self) -> Vec<Option<String>> {
        self.0.lock().expect("the spy's lock").clone()
    }
}

impl Intercept for ExternalIds {
    fn name(&self) -> &'static str {
        "ExternalIds"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sts::error::BoxError> {
        if let Some(input) = context.input().downcast_ref::<AssumeRoleInput>() {
            self.0
                .lock()
                .expect("the spy's lock")
                .push(input.external_id().map(str::to_owned));
        }
        Ok(())
    }
}

/// The provider on EdgeCert's own credentials, granting `grants`, with its STS requests
/// watched by `external_ids`.
async fn provider(grants: ZoneGrants, external_ids: &ExternalIds) -> Route53DnsProvider {
    let config = sdk_config(Credentials::new("test", "test", None, None, "tests")).await;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(external_ids.clone())
            .build(),
    );
    Route53DnsProvider::new(Client::new(&config), sts)
        .with_grants(grants)
        .with_propagation_wait(Duration::from_millis(50), Duration::from_secs(5))
}

/// A zone in the operator's account granted to its EdgeCert account, and the provider.
async fn granted_zone(client: &Client) -> (Zone, Route53DnsProvider) {
    let zone = hosted_zone(client).await;
    let grants = ZoneGrants::parse(&format!("{}={}", zone.account_id, zone.provider_zone_id))
        .expect("a valid grant");
    (zone, provider(grants, &ExternalIds::default()).await)
}

/// A customer's own AWS account (a random 12-digit id) and a Route 53 client on credentials
/// moto serves in it.
struct CustomerAccount {
    role_arn: String,
    client: Client,
}

impl CustomerAccount {
    async fn new() -> CustomerAccount {
        let aws_account: u64 = rand::thread_rng().gen_range(100_000_000_000..999_999_999_999);
        let role_arn = format!("arn:aws:iam::{aws_account}:role/EdgeCertDns");
        let operator = sdk_config(Credentials::new("test", "test", None, None, "tests")).await;
        let assumed = aws_sdk_sts::Client::new(&operator)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{aws_account}:role/Admin"))
            .role_session_name("customer-admin")
            .send()
            .await
            .expect("moto assumes a role in the customer's account");
        let credentials = assumed.credentials().expect("credentials");
        let config = sdk_config(Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            None,
            "customer",
        ))
        .await;
        CustomerAccount {
            role_arn,
            client: Client::new(&config),
        }
    }
}

fn assert_denied(error: &Error, says: &str) {
    assert!(
        matches!(error, Error::ZoneAccessDenied { .. }),
        "expected zone_access_denied, got {error:?}"
    );
    assert_eq!(error.status(), 403);
    assert!(error.public_message().contains(says), "{error}");
}

#[tokio::test]
async fn a_txt_record_is_set_replaced_and_cleared() {
    let client = client().await;
    let (zone, provider) = granted_zone(&client).await;
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
    let (mut zone, provider) = granted_zone(&client).await;
    zone.provider_zone_id = zone
        .provider_zone_id
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let first = format!("_edgecert-zone-verify.{}", zone.name);
    let second = format!("_acme-challenge.{}", zone.name);

    provider.check_access(&zone).await.unwrap();
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
    let grants = ZoneGrants::parse(&format!("{}=ZNOSUCHZONE0000", zone.account_id)).unwrap();
    let provider = provider(grants, &ExternalIds::default()).await;
    let error = provider
        .set_txt(&zone, &format!("_acme-challenge.{}", zone.name), "value")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Dns(_)), "{error:?}");
    assert!(error.to_string().contains("ZNOSUCHZONE0000"), "{error}");
    assert!(!error.public_message().contains("ZNOSUCHZONE0000"));
    // Import's access check says what is wrong instead.
    let error = provider.check_access(&zone).await.unwrap_err();
    assert_denied(&error, "hosted zone ZNOSUCHZONE0000 (NoSuchHostedZone)");
}

#[tokio::test]
async fn a_hosted_zone_of_the_operators_account_is_refused_without_a_grant() {
    // GIVEN a hosted zone in the operator's own AWS account (where EdgeCert's credentials
    // could write it) and an account that names it with no role and no grant
    let client = client().await;
    let zone = hosted_zone(&client).await;
    let other = hosted_zone(&client).await;
    let grants = ZoneGrants::parse(&format!("{}={}", other.account_id, zone.provider_zone_id))
        .expect("a grant of the zone to another account");
    let provider = provider(grants, &ExternalIds::default()).await;
    let name = format!("_acme-challenge.{}", zone.name);

    // WHEN it is checked or written THEN both are refused, naming what would let it in
    let error = provider.check_access(&zone).await.unwrap_err();
    assert_denied(&error, "needs role_arn");
    assert!(
        error.public_message().contains(zone.account_id.as_str()),
        "{error}"
    );
    let error = provider.set_txt(&zone, &name, "value").await.unwrap_err();
    assert_denied(&error, "needs role_arn");
    let error = provider.clear_txt(&zone, &name).await.unwrap_err();
    assert_denied(&error, "needs role_arn");
    assert!(txt_values(&client, &zone, &name).await.is_empty());
}

#[tokio::test]
async fn a_hosted_zone_in_the_customers_account_is_written_through_its_role() {
    // GIVEN a hosted zone in the customer's own AWS account, invisible to EdgeCert's own
    // credentials, and a zone naming the customer's role
    let customer = CustomerAccount::new().await;
    let mut zone = hosted_zone(&customer.client).await;
    zone.role_arn = Some(customer.role_arn.clone());
    let own = client().await;
    let unreachable = own
        .get_hosted_zone()
        .id(&zone.provider_zone_id)
        .send()
        .await;
    assert!(
        unreachable.is_err(),
        "the operator's account must not see the customer's hosted zone"
    );
    let external_ids = ExternalIds::default();
    let provider = provider(ZoneGrants::default(), &external_ids).await;
    let name = format!("_edgecert-zone-verify.{}", zone.name);

    // WHEN the provider checks and writes it
    provider.check_access(&zone).await.unwrap();
    provider
        .set_txt(&zone, &name, "through-the-role")
        .await
        .unwrap();

    // THEN the record is in the customer's hosted zone, every AssumeRole carried the EdgeCert
    // account id as ExternalId, and the assumed credentials were reused
    assert_eq!(
        txt_values(&customer.client, &zone, &name).await,
        ["\"through-the-role\""]
    );
    provider.clear_txt(&zone, &name).await.unwrap();
    assert!(txt_values(&customer.client, &zone, &name).await.is_empty());
    assert_eq!(
        external_ids.seen(),
        [Some(zone.account_id.to_string())],
        "one AssumeRole, with the account id as ExternalId"
    );

    // A role that reaches a hosted zone of another name is refused, naming both.
    let mut renamed = zone.clone();
    renamed.name = Hostname::parse_domain("not-this-zone.example.com").unwrap();
    let error = provider.check_access(&renamed).await.unwrap_err();
    assert_denied(
        &error,
        &format!("is {}, not not-this-zone.example.com", zone.name),
    );
}

#[tokio::test]
async fn a_role_arn_that_is_not_an_iam_role_is_a_bad_request() {
    let client = client().await;
    let mut zone = hosted_zone(&client).await;
    zone.role_arn = Some("arn:aws:iam::123456789012:user/someone".to_owned());
    let external_ids = ExternalIds::default();
    let provider = provider(ZoneGrants::default(), &external_ids).await;
    let error = provider.check_access(&zone).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (400, "invalid_role_arn"));
    assert!(external_ids.seen().is_empty(), "no AssumeRole was sent");
}
