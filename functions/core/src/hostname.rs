//! Hostname rules: what EdgeCert accepts as a whitelisted domain or a certificate name.
//!
//! Input is converted with IDNA (UTS 46) to lower-case ASCII, then checked: at most 253
//! octets, labels of 1 to 63 letters, digits and hyphens (no leading or trailing hyphen), no IP
//! literal, not a special-use name that can never get a public certificate (`localhost`,
//! `.local`, `.test`, `.onion`... see [`SPECIAL_USE_DOMAINS`]), not a public suffix (Mozilla's
//! list through the `psl` crate), and a wildcard only as the whole leftmost label where the
//! caller allows one. One trailing dot is accepted and dropped, so `Shop.Example.com.` and
//! `shop.example.com` are the same name; two (`name..`) are an empty label.
//!
//! Names read back from storage are parsed without the special-use rule
//! ([`Hostname`]'s `Deserialize`), so a name stored before a rule was added is still readable;
//! issuance checks every name against the rules again before it reaches the CA.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAX_NAME_OCTETS: usize = 253;
const MAX_LABEL_OCTETS: usize = 63;

/// Domains from the IANA Special-Use Domain Names registry (RFC 6761, section 5) that no
/// public CA can issue for, each with the RFC that reserved it, plus `internal`, reserved by
/// ICANN for private use. A name equal to one or under one is refused.
///
/// `example.com`, `example.net` and `example.org` are in the registry too, but are left out on
/// purpose: they are real delegated names that every test, the documentation and Pebble use
/// (Pebble issues for them), and refusing them would only break those.
pub const SPECIAL_USE_DOMAINS: &[(&str, &str)] = &[
    ("localhost", "RFC 6761"),
    ("local", "RFC 6762, multicast DNS"),
    ("test", "RFC 6761"),
    ("invalid", "RFC 6761"),
    ("example", "RFC 6761"),
    ("onion", "RFC 7686"),
    ("alt", "RFC 9476"),
    // The whole infrastructure domain: its registry rows (home.arpa RFC 8375, resolver.arpa
    // RFC 9462, service.arpa RFC 9665, ipv4only.arpa RFC 8880, the in-addr.arpa private and
    // link-local reverse zones...) and the rest of it, which only holds reverse and protocol
    // zones (RFC 3172).
    ("arpa", "RFC 3172, RFC 6761"),
    ("internal", "ICANN resolution of 29 July 2024"),
];

/// Which names a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostnameRules {
    /// Accept `*.example.com` (certificate names); whitelisted domains never do.
    pub allow_wildcard: bool,
}

impl HostnameRules {
    /// Rules for whitelisted domains: no wildcard.
    pub const DOMAIN: HostnameRules = HostnameRules {
        allow_wildcard: false,
    };
    /// Rules for certificate names: a wildcard leftmost label is accepted (the plan decides
    /// separately whether the account may have one).
    pub const CERTIFICATE: HostnameRules = HostnameRules {
        allow_wildcard: true,
    };

    /// Normalises and checks `input`.
    pub fn parse(&self, input: &str) -> Result<Hostname> {
        let hostname = self.parse_form(input)?;
        check_not_special_use(hostname.base())?;
        Ok(hostname)
    }

    /// Every rule but the special-use one: the form of a name read back from storage.
    fn parse_form(&self, input: &str) -> Result<Hostname> {
        let trimmed = input.trim();
        let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if without_dot.is_empty() {
            return Err(invalid("hostname is empty"));
        }
        if without_dot.starts_with('[') || without_dot.parse::<IpAddr>().is_ok() {
            return Err(invalid("IP addresses are not accepted, use a DNS name"));
        }
        let (wildcard, base_input) = match without_dot.strip_prefix("*.") {
            Some(rest) if self.allow_wildcard => (true, rest),
            Some(_) => return Err(invalid("wildcards are only accepted for certificates")),
            None => (false, without_dot),
        };
        if base_input.contains('*') {
            return Err(invalid(
                "a wildcard may only be the whole leftmost label, as in *.example.com",
            ));
        }
        let ascii = idna::domain_to_ascii(base_input)
            .map_err(|_| invalid("the name is not a valid internationalised domain name"))?;
        // UTS 46 mapping can turn some characters into dots (`。`), so the root's dot may only
        // appear now; but only one: `name..` keeps an empty label, refused below.
        let base = match ascii.strip_suffix('.') {
            Some(rest) if without_dot.len() == trimmed.len() => rest.to_owned(),
            _ => ascii,
        };
        check_ldh(&base)?;
        let full_len = base.len() + if wildcard { 2 } else { 0 };
        if full_len > MAX_NAME_OCTETS {
            return Err(invalid(&format!(
                "the name is longer than {MAX_NAME_OCTETS} octets"
            )));
        }
        if base.parse::<IpAddr>().is_ok() || looks_numeric(last_label(&base)) {
            return Err(invalid("IP addresses are not accepted, use a DNS name"));
        }
        // A special-use TLD is not on the public suffix list, so it reads as a suffix; the
        // special-use rule gives the better reason.
        if is_public_suffix(&base) && special_use_domain(&base).is_none() {
            return Err(invalid("the name is a public suffix and cannot be claimed"));
        }
        let name = if wildcard { format!("*.{base}") } else { base };
        Ok(Hostname { name })
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidHostname(reason.to_owned())
}

/// The special-use domain `name` equals or lies under, with its RFC.
fn special_use_domain(name: &str) -> Option<(&'static str, &'static str)> {
    SPECIAL_USE_DOMAINS.iter().copied().find(|(domain, _)| {
        name.strip_suffix(domain)
            .is_some_and(|head| head.is_empty() || head.ends_with('.'))
    })
}

fn check_not_special_use(name: &str) -> Result<()> {
    match special_use_domain(name) {
        Some((domain, rfc)) => Err(invalid(&format!(
            ".{domain} is a special-use domain ({rfc}): its names can never get a public certificate"
        ))),
        None => Ok(()),
    }
}

fn last_label(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// A rightmost label made only of digits (or `0x` hex) makes browsers read the name as an IPv4
/// address (`127.1`, `0x7f000001`), so no such name is a DNS name we accept.
fn looks_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .map(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
    hex.unwrap_or(false) || label.bytes().all(|b| b.is_ascii_digit())
}

fn check_ldh(name: &str) -> Result<()> {
    for label in name.split('.') {
        if label.is_empty() {
            return Err(invalid("the name has an empty label"));
        }
        if label.len() > MAX_LABEL_OCTETS {
            return Err(invalid(&format!(
                "a label is longer than {MAX_LABEL_OCTETS} octets"
            )));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "labels may contain only letters, digits and hyphens",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label may not start or end with a hyphen"));
        }
    }
    Ok(())
}

fn is_public_suffix(name: &str) -> bool {
    // An unknown TLD counts as a suffix too (the list's implicit `*` rule): a single-label
    // name such as `intranet` is never a public DNS name.
    psl::suffix(name.as_bytes()).is_some_and(|suffix| suffix.as_bytes() == name.as_bytes())
}

/// A checked, normalised hostname (lower-case ASCII, no trailing dot), possibly `*.`-prefixed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname {
    name: String,
}

impl Hostname {
    /// Parses a whitelisted-domain hostname (no wildcard).
    pub fn parse_domain(input: &str) -> Result<Hostname> {
        HostnameRules::DOMAIN.parse(input)
    }

    /// Parses a certificate name (wildcard allowed).
    pub fn parse_certificate_name(input: &str) -> Result<Hostname> {
        HostnameRules::CERTIFICATE.parse(input)
    }

    /// The name as ASCII text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether the leftmost label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.name.starts_with("*.")
    }

    /// The name without its wildcard label (`*.example.com` -> `example.com`).
    pub fn base(&self) -> &str {
        self.name.strip_prefix("*.").unwrap_or(&self.name)
    }

    /// Whether this is a registrable domain (`example.com`, `example.co.uk`): an apex cannot
    /// hold a CNAME, so DNS instructions give A records instead.
    pub fn is_apex(&self) -> bool {
        !self.is_wildcard() && psl::domain_str(&self.name) == Some(self.name.as_str())
    }

    /// Whether this name equals `zone` or lies under it (`app.example.com` under `example.com`).
    pub fn is_under(&self, zone: &Hostname) -> bool {
        let base = self.base();
        let zone = zone.base();
        base == zone
            || base
                .strip_suffix(zone)
                .is_some_and(|head| head.ends_with('.'))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<String> for Hostname {
    type Error = Error;
    /// Reads a stored name: the form is checked, not the special-use rule, so a name stored
    /// before that rule existed stays readable (and deletable).
    fn try_from(text: String) -> Result<Hostname> {
        HostnameRules::CERTIFICATE.parse_form(&text)
    }
}

impl From<Hostname> for String {
    fn from(hostname: Hostname) -> String {
        hostname.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_label(len: usize) -> String {
        "a".repeat(len)
    }

    #[test]
    fn invalid_hostnames_are_refused_with_invalid_hostname() {
        let overlong_name = format!(
            "{}.{}.{}.{}.example.com",
            long_label(63),
            long_label(63),
            long_label(63),
            long_label(50)
        );
        let cases: Vec<(String, HostnameRules, &str)> = vec![
            (overlong_name, HostnameRules::DOMAIN, "longer than 253"),
            (
                format!("{}.example.com", long_label(64)),
                HostnameRules::DOMAIN,
                "label is longer",
            ),
            ("".into(), HostnameRules::DOMAIN, "empty"),
            ("   ".into(), HostnameRules::DOMAIN, "empty"),
            (".".into(), HostnameRules::DOMAIN, "empty"),
            (
                "a..example.com".into(),
                HostnameRules::DOMAIN,
                "empty label",
            ),
            (".example.com".into(), HostnameRules::DOMAIN, "empty label"),
            ("192.0.2.1".into(), HostnameRules::DOMAIN, "IP addresses"),
            ("127.1".into(), HostnameRules::DOMAIN, "IP addresses"),
            ("0x7f000001".into(), HostnameRules::DOMAIN, "IP addresses"),
            ("::1".into(), HostnameRules::DOMAIN, "IP addresses"),
            (
                "[2001:db8::1]".into(),
                HostnameRules::DOMAIN,
                "IP addresses",
            ),
            ("2001:db8::1".into(), HostnameRules::DOMAIN, "IP addresses"),
            ("localhost".into(), HostnameRules::DOMAIN, "localhost"),
            ("app.localhost".into(), HostnameRules::DOMAIN, "localhost"),
            ("name..".into(), HostnameRules::DOMAIN, "empty label"),
            (
                "shop.example.com..".into(),
                HostnameRules::DOMAIN,
                "empty label",
            ),
            (
                "shop.example.com.。".into(),
                HostnameRules::DOMAIN,
                "empty label",
            ),
            ("co.uk".into(), HostnameRules::DOMAIN, "public suffix"),
            ("com".into(), HostnameRules::DOMAIN, "public suffix"),
            ("github.io".into(), HostnameRules::DOMAIN, "public suffix"),
            (
                "*.co.uk".into(),
                HostnameRules::CERTIFICATE,
                "public suffix",
            ),
            (
                "*.*.example.com".into(),
                HostnameRules::CERTIFICATE,
                "wildcard may only",
            ),
            (
                "a.*.example.com".into(),
                HostnameRules::CERTIFICATE,
                "wildcard may only",
            ),
            (
                "*foo.example.com".into(),
                HostnameRules::CERTIFICATE,
                "wildcard may only",
            ),
            (
                "*.example.com".into(),
                HostnameRules::DOMAIN,
                "only accepted for certificates",
            ),
            (
                "shop_1.example.com".into(),
                HostnameRules::DOMAIN,
                "letters, digits and hyphens",
            ),
            ("-shop.example.com".into(), HostnameRules::DOMAIN, "hyphen"),
            ("shop-.example.com".into(), HostnameRules::DOMAIN, "hyphen"),
            ("shop example.com".into(), HostnameRules::DOMAIN, ""),
            ("http://shop.example.com".into(), HostnameRules::DOMAIN, ""),
            ("shop.example.com/path".into(), HostnameRules::DOMAIN, ""),
        ];
        assert!(cases.len() >= 25);
        for (input, rules, reason) in cases {
            let error = rules
                .parse(&input)
                .expect_err(&format!("{input:?} should be refused"));
            assert_eq!(error.code(), "invalid_hostname", "{input:?}");
            assert_eq!(error.status(), 400, "{input:?}");
            assert!(error.to_string().contains(reason), "{input:?}: {error}");
        }
    }

    #[test]
    fn valid_hostnames_are_normalised() {
        let cases = [
            (
                "bücher.example.com",
                HostnameRules::DOMAIN,
                "xn--bcher-kva.example.com",
            ),
            (
                "shop.example.com。",
                HostnameRules::DOMAIN,
                "shop.example.com",
            ),
            (
                "Shop.Example.COM",
                HostnameRules::DOMAIN,
                "shop.example.com",
            ),
            (
                "shop.example.com.",
                HostnameRules::DOMAIN,
                "shop.example.com",
            ),
            (
                "  shop.example.com  ",
                HostnameRules::DOMAIN,
                "shop.example.com",
            ),
            ("example.co.uk", HostnameRules::DOMAIN, "example.co.uk"),
            ("*.example.com", HostnameRules::CERTIFICATE, "*.example.com"),
            (
                "*.Bücher.example.com.",
                HostnameRules::CERTIFICATE,
                "*.xn--bcher-kva.example.com",
            ),
            (
                "xn--bcher-kva.example.com",
                HostnameRules::DOMAIN,
                "xn--bcher-kva.example.com",
            ),
            // example.com/.net/.org are special-use too, but kept: see SPECIAL_USE_DOMAINS.
            ("example.net", HostnameRules::DOMAIN, "example.net"),
            ("www.example.org", HostnameRules::DOMAIN, "www.example.org"),
            // Names that only end like a special-use domain.
            ("shop.local.com", HostnameRules::DOMAIN, "shop.local.com"),
            ("mytest.com", HostnameRules::DOMAIN, "mytest.com"),
            (
                "arpa.example.com",
                HostnameRules::DOMAIN,
                "arpa.example.com",
            ),
            (
                "a-b.c-d.example.com",
                HostnameRules::DOMAIN,
                "a-b.c-d.example.com",
            ),
            (
                "1shop.example.com",
                HostnameRules::DOMAIN,
                "1shop.example.com",
            ),
        ];
        for (input, rules, expected) in cases {
            let hostname = rules
                .parse(input)
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(hostname.as_str(), expected);
        }
        let longest_ok = format!(
            "{}.{}.{}.{}.com",
            long_label(63),
            long_label(63),
            long_label(63),
            long_label(57)
        );
        assert_eq!(longest_ok.len(), 253);
        assert!(HostnameRules::DOMAIN.parse(&longest_ok).is_ok());
    }

    /// Issue 12, defect 8: special-use names are refused for domains and certificates alike,
    /// with a message naming the reservation.
    #[test]
    fn special_use_names_are_refused() {
        for name in [
            "printer.local",
            "db.internal",
            "shop.test",
            "nothing.invalid",
            "abcdefghijklmnop.onion",
            "1.0.0.127.in-addr.arpa",
            "router.home.arpa",
            "app.localhost",
            "site.alt",
            "shop.example",
            "local",
            "test",
            "home.arpa",
            "arpa",
        ] {
            for rules in [HostnameRules::DOMAIN, HostnameRules::CERTIFICATE] {
                let error = rules.parse(name).expect_err(name);
                assert_eq!((error.status(), error.code()), (400, "invalid_hostname"));
                assert!(
                    error.to_string().contains("special-use domain"),
                    "{name}: {error}"
                );
            }
        }
        let wildcard = HostnameRules::CERTIFICATE
            .parse("*.corp.internal")
            .unwrap_err();
        assert!(wildcard.to_string().contains(".internal"), "{wildcard}");
    }

    #[test]
    fn stored_names_stay_readable_when_a_rule_is_added() {
        // A name whitelisted before the special-use rule still deserialises.
        let stored: Hostname = serde_json::from_str("\"shop.local\"").unwrap();
        assert_eq!(stored.as_str(), "shop.local");
        assert!(serde_json::from_str::<Hostname>("\"shop..example.com\"").is_err());
    }

    #[test]
    fn apex_and_zone_membership() {
        let apex = Hostname::parse_domain("example.co.uk").unwrap();
        let sub = Hostname::parse_domain("shop.example.co.uk").unwrap();
        let wildcard = Hostname::parse_certificate_name("*.example.co.uk").unwrap();
        let other = Hostname::parse_domain("notexample.co.uk").unwrap();
        assert!(apex.is_apex());
        assert!(!sub.is_apex());
        assert!(sub.is_under(&apex));
        assert!(apex.is_under(&apex));
        assert!(wildcard.is_under(&apex));
        assert!(!other.is_under(&apex));
        assert_eq!(wildcard.base(), "example.co.uk");
        assert!(wildcard.is_wildcard());
    }
}
