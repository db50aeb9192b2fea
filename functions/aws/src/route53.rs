//! The DNS provider on Route 53: TXT records in the hosted zone a zone names
//! (`Zone::provider_zone_id`), for DNS-01 challenges and zone verification.
//!
//! **Whose hosted zone.** EdgeCert's own AWS credentials could write every hosted zone of the
//! operator's AWS account, the operator's own domains included, so they are never used for a
//! zone merely because an account named it. A zone is reached in one of two ways, and refused
//! ([`Error::ZoneAccessDenied`]) otherwise:
//! - **a role in the account's own AWS account** (`Zone::role_arn`): assumed through STS with
//!   ExternalId = the EdgeCert account id (so one tenant cannot name another tenant's role:
//!   the role's trust policy requires its owner's ExternalId), and the hosted zone must be the
//!   zone's name in that AWS account;
//! - **an operator's grant** ([`ZoneGrants`]): EdgeCert's own credentials, for exactly that
//!   (EdgeCert account, hosted zone) pair.
//!
//! Assumed credentials are cached per (role, account) until five minutes before they expire.
//!
//! `set_txt` UPSERTs the record (replacing whatever values it had, as the port promises) and
//! waits until Route 53 reports the change `INSYNC` on all its name servers: the CA, or the
//! zone verification's read-back, asks them right after. `clear_txt` reads the record set
//! first because Route 53 deletes only an exact match of name, type, TTL and values.
//!
//! Errors become [`Error::Dns`] with the operation and the hosted zone id; record values never
//! appear in them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use edgecert_core::model::Zone;
use edgecert_core::ports::{DnsProvider, ZoneGrants};
use edgecert_core::{Error, Result};

/// TTL of the records we write: short, so a value replaced for a retry is not cached long.
const RECORD_TTL_SECONDS: i64 = 60;
/// Longest character-string of a TXT record (RFC 1035); longer values are split.
const MAX_TXT_STRING: usize = 255;
/// Assumed credentials are used until this long before they expire, then assumed again.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);
/// How long assumed credentials last (STS's default, and the least every role allows).
const SESSION_SECONDS: i32 = 3600;

/// Writes TXT records in Route 53 hosted zones: in the account's own AWS account through the
/// role it gives, or in the operator's for granted zones. Cheap to clone (the SDK clients and
/// the credentials cache are shared).
#[derive(Debug, Clone)]
pub struct Route53DnsProvider {
    /// EdgeCert's own credentials: operator-granted zones only.
    client: Client,
    sts: aws_sdk_sts::Client,
    grants: ZoneGrants,
    /// Route 53 clients on assumed credentials, by (role ARN, EdgeCert account id).
    assumed: Arc<Mutex<HashMap<(String, String), AssumedClient>>>,
    poll_interval: Duration,
    propagation_timeout: Duration,
}

/// A Route 53 client on a role's temporary credentials.
#[derive(Debug, Clone)]
struct AssumedClient {
    client: Client,
    expires_at: SystemTime,
}

impl Route53DnsProvider {
    /// A provider on `client` (EdgeCert's own credentials) and `sts` (to assume the roles
    /// accounts give), granting no zone, waiting up to two minutes for a change to reach
    /// every name server (Route 53 usually needs well under one).
    pub fn new(client: Client, sts: aws_sdk_sts::Client) -> Self {
        Route53DnsProvider {
            client,
            sts,
            grants: ZoneGrants::default(),
            assumed: Arc::default(),
            poll_interval: Duration::from_secs(2),
            propagation_timeout: Duration::from_secs(120),
        }
    }

    /// A provider with its own clients on an already loaded SDK configuration.
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Route53DnsProvider::new(Client::new(config), aws_sdk_sts::Client::new(config))
    }

    /// The zones the operator granted to accounts, reached with EdgeCert's own credentials.
    pub fn with_grants(mut self, grants: ZoneGrants) -> Self {
        self.grants = grants;
        self
    }

    /// Polls for `INSYNC` every `interval`, for at most `timeout`.
    pub fn with_propagation_wait(mut self, interval: Duration, timeout: Duration) -> Self {
        self.poll_interval = interval;
        self.propagation_timeout = timeout;
        self
    }

    /// The client that may write `zone`: on the role the account gave, or EdgeCert's own for
    /// a zone the operator granted to the account; [`Error::ZoneAccessDenied`] otherwise.
    async fn client_for(&self, zone: &Zone) -> Result<Client> {
        match &zone.role_arn {
            Some(role_arn) => self.assumed_client(zone, role_arn).await,
            None if self.grants.allows(&zone.account_id, &zone.provider_zone_id) => {
                Ok(self.client.clone())
            }
            None => Err(Error::ZoneAccessDenied {
                reason: format!(
                    "a route53 zone needs role_arn, a role in your own AWS account that EdgeCert assumes with ExternalId {} (your account id), unless the operator granted you hosted zone {}",
                    zone.account_id,
                    hosted_zone_id(zone)
                ),
            }),
        }
    }

    /// A client on the role's credentials, assumed with the zone's account id as ExternalId.
    async fn assumed_client(&self, zone: &Zone, role_arn: &str) -> Result<Client> {
        check_role_arn(role_arn)?;
        let key = (role_arn.to_owned(), zone.account_id.to_string());
        let now = SystemTime::now();
        let fresh = self
            .cached(&key)
            .filter(|cached| cached.expires_at > now + CREDENTIALS_MARGIN);
        if let Some(cached) = fresh {
            return Ok(cached.client);
        }
        let output = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(format!("edgecert-{}", zone.account_id))
            .external_id(zone.account_id.as_str())
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                // The role's trust policy refused us (or the role does not exist): the
                // customer's to fix. The code is safe to show; the message may name our role.
                Some(refused) => Error::ZoneAccessDenied {
                    reason: format!(
                        "EdgeCert could not assume role {role_arn} with ExternalId {} ({}); the role's trust policy must allow EdgeCert's role with that ExternalId",
                        zone.account_id,
                        refused.code().unwrap_or("refused")
                    ),
                },
                None => Error::dns(format!(
                    "STS AssumeRole of {role_arn} failed: {}",
                    DisplayErrorContext(&error)
                )),
            })?;
        let credentials = output.credentials().ok_or_else(|| {
            Error::dns(format!(
                "STS AssumeRole of {role_arn} returned no credentials"
            ))
        })?;
        let expires_at = SystemTime::try_from(*credentials.expiration())
            .unwrap_or(now + Duration::from_secs(60));
        let config = self
            .client
            .config()
            .to_builder()
            .credentials_provider(Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key(),
                Some(credentials.session_token().to_owned()),
                Some(expires_at),
                "edgecert-route53-assume-role",
            ))
            .build();
        let client = Client::from_conf(config);
        if let Ok(mut assumed) = self.assumed.lock() {
            assumed.insert(
                key,
                AssumedClient {
                    client: client.clone(),
                    expires_at,
                },
            );
        }
        Ok(client)
    }

    fn cached(&self, key: &(String, String)) -> Option<AssumedClient> {
        self.assumed
            .lock()
            .ok()
            .and_then(|assumed| assumed.get(key).cloned())
    }

    /// Waits until change `id` is `INSYNC`.
    async fn wait_in_sync(&self, client: &Client, zone_id: &str, id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.propagation_timeout;
        loop {
            let output = client
                .get_change()
                .id(id)
                .send()
                .await
                .map_err(|error| failure("GetChange", zone_id, &error))?;
            if output
                .change_info()
                .is_some_and(|info| info.status() == &ChangeStatus::Insync)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() + self.poll_interval > deadline {
                return Err(Error::dns(format!(
                    "Route 53 change {id} in hosted zone {zone_id} is not INSYNC after {} s",
                    self.propagation_timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// The TXT record set at `name`, if there is one.
    async fn txt_record_set(
        &self,
        client: &Client,
        zone_id: &str,
        name: &str,
    ) -> Result<Option<ResourceRecordSet>> {
        let output = client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(fqdn(name))
            .start_record_type(RrType::Txt)
            .max_items(1)
            .send()
            .await
            .map_err(|error| failure("ListResourceRecordSets", zone_id, &error))?;
        // The listing starts at the name but returns whatever follows when it is absent.
        Ok(output
            .resource_record_sets()
            .iter()
            .find(|set| set.r#type() == &RrType::Txt && same_name(set.name(), name))
            .cloned())
    }

    async fn change(&self, client: &Client, zone_id: &str, change: Change) -> Result<String> {
        let batch = ChangeBatch::builder()
            .changes(change)
            .build()
            .map_err(|error| build_failure("a change batch", &error))?;
        let output = client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|error| failure("ChangeResourceRecordSets", zone_id, &error))?;
        Ok(output
            .change_info()
            .map(|info| info.id().to_owned())
            .unwrap_or_default())
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
fn check_role_arn(arn: &str) -> Result<()> {
    let well_formed = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .is_some_and(|(partition, rest)| {
            matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
                && rest.split_once(":role/").is_some_and(|(account, name)| {
                    account.len() == 12
                        && account.bytes().all(|byte| byte.is_ascii_digit())
                        && !name.is_empty()
                        && name.len() <= 512
                        && name
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&byte))
                })
        });
    if well_formed {
        Ok(())
    } else {
        Err(Error::BadRequest {
            code: "invalid_role_arn",
            message:
                "role_arn must be an IAM role ARN: arn:aws:iam::<12-digit AWS account>:role/<name>"
                    .to_owned(),
        })
    }
}

/// The hosted zone id as the API takes it: `/hostedzone/Z123` and `Z123` both name `Z123`.
fn hosted_zone_id(zone: &Zone) -> &str {
    let id = zone.provider_zone_id.trim();
    id.strip_prefix("/hostedzone/").unwrap_or(id)
}

/// `name` absolute, with one trailing dot.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn same_name(listed: &str, name: &str) -> bool {
    listed
        .trim_end_matches('.')
        .eq_ignore_ascii_case(name.trim_end_matches('.'))
}

/// A TXT value in zone-file syntax, as Route 53 takes it: quoted, `"` and `\` escaped, split
/// into strings of at most 255 characters.
fn quoted_txt(value: &str) -> String {
    let mut strings = Vec::new();
    let mut current = String::new();
    for character in value.chars() {
        if current.len() + character.len_utf8() > MAX_TXT_STRING {
            strings.push(std::mem::take(&mut current));
        }
        current.push(character);
    }
    if !current.is_empty() || strings.is_empty() {
        strings.push(current);
    }
    strings
        .iter()
        .map(|text| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn failure(operation: &str, zone_id: &str, error: &impl std::error::Error) -> Error {
    Error::dns(format!(
        "Route 53 {operation} in hosted zone {zone_id} failed: {}",
        DisplayErrorContext(error)
    ))
}

fn build_failure(what: &str, error: &impl std::error::Error) -> Error {
    Error::dns(format!("could not build {what} for Route 53: {error}"))
}

#[async_trait]
impl DnsProvider for Route53DnsProvider {
    async fn check_access(&self, zone: &Zone) -> Result<()> {
        let client = self.client_for(zone).await?;
        let zone_id = hosted_zone_id(zone);
        let output = client
            .get_hosted_zone()
            .id(zone_id)
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(refused) => Error::ZoneAccessDenied {
                    reason: format!(
                        "Route 53 refused to read hosted zone {zone_id} ({}); check provider_zone_id, and that the zone is in the AWS account of the role (or granted) with route53:GetHostedZone allowed",
                        refused.code().unwrap_or("refused")
                    ),
                },
                None => failure("GetHostedZone", zone_id, &error),
            })?;
        let name = output
            .hosted_zone()
            .map(|hosted| hosted.name().trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        if name != zone.name.as_str() {
            return Err(Error::ZoneAccessDenied {
                reason: format!("hosted zone {zone_id} is {name}, not {}", zone.name),
            });
        }
        Ok(())
    }

    async fn set_txt(&self, zone: &Zone, name: &str, value: &str) -> Result<()> {
        let client = self.client_for(zone).await?;
        let zone_id = hosted_zone_id(zone);
        let record = ResourceRecord::builder()
            .value(quoted_txt(value))
            .build()
            .map_err(|error| build_failure("a TXT value", &error))?;
        let set = ResourceRecordSet::builder()
            .name(fqdn(name))
            .r#type(RrType::Txt)
            .ttl(RECORD_TTL_SECONDS)
            .resource_records(record)
            .build()
            .map_err(|error| build_failure("a record set", &error))?;
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .map_err(|error| build_failure("a change", &error))?;
        let id = self.change(&client, zone_id, change).await?;
        self.wait_in_sync(&client, zone_id, &id).await
    }

    async fn clear_txt(&self, zone: &Zone, name: &str) -> Result<()> {
        let client = self.client_for(zone).await?;
        let zone_id = hosted_zone_id(zone);
        let Some(set) = self.txt_record_set(&client, zone_id, name).await? else {
            return Ok(());
        };
        let change = Change::builder()
            .action(ChangeAction::Delete)
            .resource_record_set(set)
            .build()
            .map_err(|error| build_failure("a change", &error))?;
        match self.change(&client, zone_id, change).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // Deleted by someone else between our read and our delete: the outcome is
                // what was asked.
                if self.txt_record_set(&client, zone_id, name).await?.is_none() {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_values_are_quoted_escaped_and_split() {
        assert_eq!(quoted_txt("abc"), "\"abc\"");
        assert_eq!(quoted_txt(""), "\"\"");
        assert_eq!(quoted_txt("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let long = "x".repeat(300);
        assert_eq!(
            quoted_txt(&long),
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
    }

    #[test]
    fn role_arns_name_an_iam_role_in_one_aws_account() {
        for good in [
            "arn:aws:iam::111122223333:role/EdgeCertDns",
            "arn:aws-us-gov:iam::111122223333:role/service/edgecert_dns-1",
        ] {
            assert!(check_role_arn(good).is_ok(), "{good}");
        }
        for bad in [
            "arn:aws:iam::111122223333:user/EdgeCertDns",
            "arn:aws:iam::1111:role/EdgeCertDns",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:sts::111122223333:role/EdgeCertDns",
            "arn:other:iam::111122223333:role/EdgeCertDns",
            "arn:aws:iam::111122223333:role/a b",
        ] {
            let error = check_role_arn(bad).unwrap_err();
            assert_eq!(error.code(), "invalid_role_arn", "{bad}");
        }
    }

    #[test]
    fn names_compare_without_trailing_dots_or_case() {
        assert!(same_name(
            "_acme-challenge.example.com.",
            "_ACME-challenge.Example.com"
        ));
        assert!(!same_name("_acme-challenge.example.com.", "example.com"));
        assert_eq!(fqdn("a.example.com."), "a.example.com.");
        assert_eq!(fqdn("a.example.com"), "a.example.com.");
    }
}
