//! CAA pre-flight (RFC 8659): may our CA issue for a name?
//!
//! The relevant record set is the one at the closest name, walking from the name towards its
//! parents. No set anywhere allows any CA. Inside the set, `issuewild` properties govern
//! wildcard names when there are any, `issue` properties otherwise; a set with neither leaves
//! issuance unrestricted (it may hold only `iodef`). A critical property we do not understand
//! forbids issuance. Parameters after `;` (`accounturi`, `validationmethods`) are left to the
//! CA, which checks them itself.

use crate::error::Result;
use crate::hostname::Hostname;
use crate::ports::{CaaRecord, DnsResolver};

/// Checks `name` against the CAA records in DNS. `Ok(Err(reason))` when CAA forbids our CA;
/// `Err` only when DNS could not be asked.
pub async fn check(
    resolver: &dyn DnsResolver,
    name: &Hostname,
    identities: &[String],
) -> Result<std::result::Result<(), String>> {
    let mut current = name.base();
    loop {
        let records = resolver.caa(current).await?;
        if !records.is_empty() {
            return Ok(
                evaluate(&records, name.is_wildcard(), identities).map_err(|reason| {
                    format!("CAA records at {current} forbid issuing for {name}: {reason}")
                }),
            );
        }
        match current.split_once('.') {
            // Top-level domains are not queried: none publishes CAA, and a name never gets
            // there without passing its registrable domain first.
            Some((_, parent)) if parent.contains('.') => current = parent,
            _ => return Ok(Ok(())),
        }
    }
}

/// Applies one relevant record set.
fn evaluate(
    records: &[CaaRecord],
    wildcard: bool,
    identities: &[String],
) -> std::result::Result<(), String> {
    if let Some(unknown) = records
        .iter()
        .find(|record| record.is_critical() && !is_known_tag(&record.tag))
    {
        return Err(format!(
            "a critical `{}` property that cannot be honoured",
            unknown.tag
        ));
    }
    let tagged = |tag: &str| -> Vec<&CaaRecord> {
        records.iter().filter(|record| record.tag == tag).collect()
    };
    let issuewild = tagged("issuewild");
    let relevant = if wildcard && !issuewild.is_empty() {
        issuewild
    } else {
        tagged("issue")
    };
    if relevant.is_empty() {
        return Ok(());
    }
    let allowed: Vec<String> = relevant
        .iter()
        .filter_map(|record| issuer_domain(&record.value))
        .collect();
    if allowed.iter().any(|issuer| {
        identities
            .iter()
            .any(|identity| identity.eq_ignore_ascii_case(issuer))
    }) {
        return Ok(());
    }
    let wanted = identities.join(", ");
    if allowed.is_empty() {
        Err(format!("no CA may issue; add an issue record for {wanted}"))
    } else {
        Err(format!(
            "only {} may issue; add an issue record for {wanted}",
            allowed.join(", ")
        ))
    }
}

fn is_known_tag(tag: &str) -> bool {
    matches!(tag, "issue" | "issuewild" | "iodef")
}

/// The issuer domain of an `issue`/`issuewild` value, `None` for the empty value (`;` alone
/// forbids every CA).
fn issuer_domain(value: &str) -> Option<String> {
    let domain = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use async_trait::async_trait;

    use super::*;

    fn record(tag: &str, value: &str) -> CaaRecord {
        CaaRecord {
            flags: 0,
            tag: tag.to_owned(),
            value: value.to_owned(),
        }
    }

    fn le() -> Vec<String> {
        vec!["letsencrypt.org".to_owned()]
    }

    #[test]
    fn issue_records_must_name_our_ca() {
        assert_eq!(
            evaluate(&[record("issue", "letsencrypt.org")], false, &le()),
            Ok(())
        );
        assert_eq!(
            evaluate(
                &[record(
                    "issue",
                    "LetsEncrypt.org.; validationmethods=dns-01"
                )],
                false,
                &le()
            ),
            Ok(())
        );
        let refused = evaluate(&[record("issue", "pki.goog")], false, &le()).unwrap_err();
        assert!(refused.contains("only pki.goog may issue"), "{refused}");
        assert!(evaluate(&[record("issue", ";")], false, &le()).is_err());
    }

    #[test]
    fn wildcards_follow_issuewild_when_present_and_issue_otherwise() {
        let set = [
            record("issue", "letsencrypt.org"),
            record("issuewild", "pki.goog"),
        ];
        assert!(evaluate(&set, true, &le()).is_err());
        assert_eq!(evaluate(&set, false, &le()), Ok(()));
        assert_eq!(
            evaluate(&[record("issue", "letsencrypt.org")], true, &le()),
            Ok(())
        );
    }

    #[test]
    fn sets_without_issue_properties_do_not_restrict_but_unknown_critical_ones_do() {
        assert_eq!(
            evaluate(&[record("iodef", "mailto:sec@example.com")], false, &le()),
            Ok(())
        );
        let critical = CaaRecord {
            flags: 128,
            tag: "futuretag".to_owned(),
            value: "x".to_owned(),
        };
        assert!(evaluate(&[critical], false, &le()).is_err());
    }

    /// CAA data by name; every other query answers empty.
    struct CaaZone(HashMap<&'static str, Vec<CaaRecord>>);

    #[async_trait]
    impl DnsResolver for CaaZone {
        async fn txt(&self, _: &str) -> Result<Vec<String>> {
            Ok(vec![])
        }
        async fn ip_addresses(&self, _: &str) -> Result<Vec<IpAddr>> {
            Ok(vec![])
        }
        async fn cname(&self, _: &str) -> Result<Option<String>> {
            Ok(None)
        }
        async fn caa(&self, name: &str) -> Result<Vec<CaaRecord>> {
            Ok(self.0.get(name).cloned().unwrap_or_default())
        }
    }

    #[tokio::test]
    async fn the_closest_record_set_wins() {
        // GIVEN the registrable domain allows only another CA, but a subdomain allows ours
        let zone = CaaZone(HashMap::from([
            ("example.com", vec![record("issue", "pki.goog")]),
            ("shop.example.com", vec![record("issue", "letsencrypt.org")]),
        ]));
        let name = |text: &str| Hostname::parse_certificate_name(text).unwrap();
        // THEN names under the subdomain may be issued, the others may not
        assert_eq!(
            check(&zone, &name("a.shop.example.com"), &le())
                .await
                .unwrap(),
            Ok(())
        );
        let refused = check(&zone, &name("*.example.com"), &le())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            refused.starts_with("CAA records at example.com"),
            "{refused}"
        );
        // AND a name with no CAA anywhere is unrestricted
        let open = CaaZone(HashMap::new());
        assert_eq!(
            check(&open, &name("a.example.org"), &le()).await.unwrap(),
            Ok(())
        );
    }
}
