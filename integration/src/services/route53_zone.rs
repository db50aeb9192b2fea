//! A Route 53 hosted zone in moto that DNS answers for, as Route 53's name servers answer for a
//! real one.
//!
//! moto implements Route 53's API but serves no DNS, and Pebble and EdgeCert resolve through
//! challtestsrv. [`Route53Zone`] creates a hosted zone in moto and publishes its TXT records in
//! challtestsrv ([`Route53Zone::publish`]). The [`AwsRecorder`](super::AwsRecorder) publishes a
//! zone handed to it after every change a function makes to it, before the function gets the
//! answer: as on AWS, where a change reported `INSYNC` is on every name server, a record
//! EdgeCert wrote through the API (DNS-01, zone verification) is in DNS when it asks the CA
//! to look. challtestsrv holds the values of one name together: every value of a record set is
//! published.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::RrType;
use serde_json::json;
use tokio::sync::Mutex;

use super::{Moto, http_client};

/// A hosted zone in moto whose TXT records challtestsrv serves once published.
#[derive(Debug)]
pub struct Route53Zone {
    /// The hosted zone's id as Route 53 returns it (`/hostedzone/Z…`).
    pub id: String,
    /// The zone's name, without the trailing dot.
    pub name: String,
    client: Client,
    management_url: String,
    /// What challtestsrv serves for the zone: name (with its trailing dot) to values.
    published: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Route53Zone {
    /// Creates the hosted zone `name` in `moto`, whose TXT records [`Route53Zone::publish`]
    /// serves through the challtestsrv whose management API is at
    /// `challtestsrv_management_url`.
    pub async fn create(
        moto: &Moto,
        challtestsrv_management_url: &str,
        name: &str,
    ) -> anyhow::Result<Route53Zone> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint_url())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "route53-zone"))
            .load()
            .await;
        let client = Client::new(&config);
        let created = client
            .create_hosted_zone()
            .name(name)
            .caller_reference(format!("edgecert-test-{name}"))
            .send()
            .await
            .with_context(|| format!("creating the hosted zone {name} in moto"))?;
        let id = created
            .hosted_zone()
            .context("moto returned no hosted zone")?
            .id()
            .to_owned();
        Ok(Route53Zone {
            id,
            name: name.trim_end_matches('.').to_owned(),
            client,
            management_url: challtestsrv_management_url.trim_end_matches('/').to_owned(),
            published: Mutex::new(BTreeMap::new()),
        })
    }

    /// The bare hosted zone id (`Z…`), as it appears in ARNs and request paths.
    pub fn bare_id(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }

    /// Makes challtestsrv serve the zone's TXT records as they are now in moto.
    pub async fn publish(&self) -> anyhow::Result<()> {
        let mut published = self.published.lock().await;
        let current = txt_records(&self.client, &self.id).await?;
        serve(&self.management_url, &published, &current).await?;
        *published = current;
        Ok(())
    }
}

/// The TXT record sets of the hosted zone `id`: name (with its trailing dot) to values, without
/// their quotes (character-strings of one value joined).
async fn txt_records(client: &Client, id: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut records = BTreeMap::new();
    let mut start: Option<(String, RrType)> = None;
    loop {
        let mut request = client.list_resource_record_sets().hosted_zone_id(id);
        if let Some((name, kind)) = start.take() {
            request = request.start_record_name(name).start_record_type(kind);
        }
        let page = request
            .send()
            .await
            .context("listing the hosted zone's records")?;
        for set in page.resource_record_sets() {
            if set.r#type() != &RrType::Txt {
                continue;
            }
            let values = set
                .resource_records()
                .iter()
                .map(|record| unquote(record.value()))
                .collect();
            records.insert(set.name().to_owned(), values);
        }
        match (
            page.is_truncated(),
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(name), Some(kind)) => start = Some((name.to_owned(), kind.clone())),
            _ => return Ok(records),
        }
    }
}

/// `"part one" "part two"` as `part onepart two`, as a resolver reassembles a TXT value.
fn unquote(value: &str) -> String {
    let mut text = String::new();
    let mut inside = false;
    let mut escaped = false;
    for c in value.chars() {
        match (inside, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, false, '"') => inside = false,
            (false, _, '"') => inside = true,
            (true, _, c) => {
                text.push(c);
                escaped = false;
            }
            (false, _, _) => {}
        }
    }
    text
}

/// Makes challtestsrv serve `current` where it served `before`.
async fn serve(
    management_url: &str,
    before: &BTreeMap<String, Vec<String>>,
    current: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<()> {
    let client = http_client(&[])?;
    let post = |endpoint: &str, body: serde_json::Value| {
        let request = client
            .post(format!("{management_url}/{endpoint}"))
            .json(&body);
        async move {
            let response = request.send().await.context("POST to challtestsrv")?;
            response
                .error_for_status()
                .map(drop)
                .context("challtestsrv refused the change")
        }
    };
    for (name, values) in before {
        if current.get(name) != Some(values) {
            post("clear-txt", json!({ "host": name })).await?;
        }
    }
    // Every name whose values changed was cleared above.
    for (name, values) in current {
        if before.get(name) != Some(values) {
            for value in values {
                post("set-txt", json!({ "host": name, "value": value })).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_values_lose_their_quotes_and_join_their_strings() {
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("\"ab\" \"cd\""), "abcd");
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
    }
}
