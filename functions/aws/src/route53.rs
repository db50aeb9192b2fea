//! The DNS provider on Route 53: TXT records in the hosted zone a zone names
//! (`Zone::provider_zone_id`), for DNS-01 challenges and zone verification.
//!
//! `set_txt` UPSERTs the record (replacing whatever values it had, as the port promises) and
//! waits until Route 53 reports the change `INSYNC` on all its name servers: the CA, or the
//! zone verification's read-back, asks them right after. `clear_txt` reads the record set
//! first because Route 53 deletes only an exact match of name, type, TTL and values.
//!
//! Errors become [`Error::Dns`] with the operation and the hosted zone id; record values never
//! appear in them.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use edgecert_core::model::Zone;
use edgecert_core::ports::DnsProvider;
use edgecert_core::{Error, Result};

/// TTL of the records we write: short, so a value replaced for a retry is not cached long.
const RECORD_TTL_SECONDS: i64 = 60;
/// Longest character-string of a TXT record (RFC 1035); longer values are split.
const MAX_TXT_STRING: usize = 255;

/// Writes TXT records in Route 53 hosted zones. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct Route53DnsProvider {
    client: Client,
    poll_interval: Duration,
    propagation_timeout: Duration,
}

impl Route53DnsProvider {
    /// A provider on `client`, waiting up to two minutes for a change to reach every name
    /// server (Route 53 usually needs well under one).
    pub fn new(client: Client) -> Self {
        Route53DnsProvider {
            client,
            poll_interval: Duration::from_secs(2),
            propagation_timeout: Duration::from_secs(120),
        }
    }

    /// A provider with its own client on an already loaded SDK configuration.
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Route53DnsProvider::new(Client::new(config))
    }

    /// Polls for `INSYNC` every `interval`, for at most `timeout`.
    pub fn with_propagation_wait(mut self, interval: Duration, timeout: Duration) -> Self {
        self.poll_interval = interval;
        self.propagation_timeout = timeout;
        self
    }

    /// Waits until change `id` is `INSYNC`.
    async fn wait_in_sync(&self, zone_id: &str, id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.propagation_timeout;
        loop {
            let output = self
                .client
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
    async fn txt_record_set(&self, zone_id: &str, name: &str) -> Result<Option<ResourceRecordSet>> {
        let output = self
            .client
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

    async fn change(&self, zone_id: &str, change: Change) -> Result<String> {
        let batch = ChangeBatch::builder()
            .changes(change)
            .build()
            .map_err(|error| build_failure("a change batch", &error))?;
        let output = self
            .client
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
    async fn set_txt(&self, zone: &Zone, name: &str, value: &str) -> Result<()> {
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
        let id = self.change(zone_id, change).await?;
        self.wait_in_sync(zone_id, &id).await
    }

    async fn clear_txt(&self, zone: &Zone, name: &str) -> Result<()> {
        let zone_id = hosted_zone_id(zone);
        let Some(set) = self.txt_record_set(zone_id, name).await? else {
            return Ok(());
        };
        let change = Change::builder()
            .action(ChangeAction::Delete)
            .resource_record_set(set)
            .build()
            .map_err(|error| build_failure("a change", &error))?;
        match self.change(zone_id, change).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // Deleted by someone else between our read and our delete: the outcome is
                // what was asked.
                if self.txt_record_set(zone_id, name).await?.is_none() {
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
