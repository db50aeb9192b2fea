//! Origin URLs and which addresses the edge may connect to.
//!
//! An origin must be `http` or `https` with a host, at most [`MAX_ORIGIN_URL_BYTES`] long, on
//! port 80, 443 or 1024 and up (never 0, nor another service's well-known port such as 22 or
//! 25), with no credentials, query string or fragment: the edge appends each request's own path
//! and query to the origin's path, so a query stored here would be dropped silently.
//!
//! The edge must never become a way into the operator's own network. Addresses are judged
//! against the IANA special-purpose address registries ([`crate::special_purpose`]): only
//! globally reachable ones are allowed, IPv6 forms that embed an IPv4 address are unwrapped or
//! refused (see [`crate::special_purpose::embedded_ipv4`]), and the operator may allow
//! loopback (the local stack) or private networks. The same [`OriginPolicy`] is applied when a
//! domain is saved (to the URL's host and what it resolves to) and again by the edge on the
//! address it actually connects to, so a DNS answer that changes later cannot get around it.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{Error, Result};
use crate::special_purpose::{self, Embedded};

pub use crate::special_purpose::AddressKind as RefusedAddress;

/// Longest origin URL accepted, in bytes.
pub const MAX_ORIGIN_URL_BYTES: usize = 2048;

/// Which kinds of origin address the operator allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    /// Allow 127.0.0.0/8 and ::1 (the local stack proxies to origins on the same machine).
    pub allow_loopback: bool,
    /// Allow private, CGNAT and unique-local ranges (an operator whose origins live in its VPC).
    /// Link-local addresses and cloud metadata services stay refused.
    pub allow_private: bool,
}

impl OriginPolicy {
    /// Whether the edge may connect to `address`; `Err` names why not.
    pub fn check_address(&self, address: IpAddr) -> Result<(), RefusedAddress> {
        let judged = match address {
            IpAddr::V6(v6) => match special_purpose::embedded_ipv4(v6) {
                Embedded::None => address,
                Embedded::Mapped(v4) => IpAddr::V4(v4),
                Embedded::Translated(v4) => {
                    return special_purpose::classify(IpAddr::V4(v4)).map_err(|(kind, _)| kind);
                }
                Embedded::Refused => return Err(RefusedAddress::Ipv6Transition),
            },
            IpAddr::V4(_) => address,
        };
        match special_purpose::classify(judged) {
            Ok(()) => Ok(()),
            Err((RefusedAddress::Loopback, _)) if self.allow_loopback => Ok(()),
            Err((RefusedAddress::Private | RefusedAddress::Cgnat, true)) if self.allow_private => {
                Ok(())
            }
            Err((kind, _)) => Err(kind),
        }
    }
}

/// A parsed origin URL that passed the syntactic rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    url: Url,
}

impl OriginUrl {
    /// Parses and checks the form: http(s), a host, at most [`MAX_ORIGIN_URL_BYTES`], port 80,
    /// 443 or 1024 and up, no credentials, query or fragment. An IP-literal host is also
    /// checked against `policy` here; names are checked once resolved ([`OriginUrl::host_name`]).
    pub fn parse(input: &str, policy: &OriginPolicy) -> Result<OriginUrl> {
        let too_long = || {
            invalid(&format!(
                "origin_url must be at most {MAX_ORIGIN_URL_BYTES} bytes"
            ))
        };
        let input = input.trim();
        if input.len() > MAX_ORIGIN_URL_BYTES {
            return Err(too_long());
        }
        let url = Url::parse(input)
            .map_err(|_| invalid("origin_url must be an absolute http or https URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("origin_url must use http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("origin_url must not contain credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "origin_url must not have a query string or fragment: each request's own path and query are appended to the origin's path",
            ));
        }
        // `port()` is `None` for the scheme's default port.
        if let Some(port) = url.port() {
            if port != 80 && port != 443 && port < 1024 {
                return Err(invalid(
                    "origin_url port must be 80, 443, or from 1024 to 65535",
                ));
            }
        }
        // Normalising can lengthen the URL (percent-encoding, an added `/`).
        if url.as_str().len() > MAX_ORIGIN_URL_BYTES {
            return Err(too_long());
        }
        match url.host() {
            None => return Err(invalid("origin_url must have a host")),
            Some(Host::Ipv4(v4)) => check(policy, IpAddr::V4(v4))?,
            Some(Host::Ipv6(v6)) => check(policy, IpAddr::V6(v6))?,
            Some(Host::Domain(name)) => {
                // `localhost.` is the same name as `localhost`.
                let lower = name.trim_end_matches('.').to_ascii_lowercase();
                if (lower == "localhost" || lower.ends_with(".localhost")) && !policy.allow_loopback
                {
                    return Err(invalid("origin_url names a loopback host"));
                }
            }
        }
        Ok(OriginUrl { url })
    }

    /// The host name to resolve, when the host is a name rather than an address.
    pub fn host_name(&self) -> Option<&str> {
        match self.url.host() {
            Some(Host::Domain(name)) => Some(name),
            _ => None,
        }
    }

    /// Checks addresses a host name resolved to.
    pub fn check_resolved(&self, addresses: &[IpAddr], policy: &OriginPolicy) -> Result<()> {
        addresses
            .iter()
            .try_for_each(|address| check(policy, *address))
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

fn check(policy: &OriginPolicy, address: IpAddr) -> Result<()> {
    policy.check_address(address).map_err(|reason| {
        invalid(&format!(
            "origin_url points at {}, which the edge does not connect to",
            reason.phrase()
        ))
    })
}

fn invalid(reason: &str) -> Error {
    Error::InvalidOrigin(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(input: &str, policy: OriginPolicy) -> bool {
        matches!(
            OriginUrl::parse(input, &policy),
            Err(Error::InvalidOrigin(_))
        )
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let strict = OriginPolicy::default();
        for input in [
            "http://127.0.0.1:8080/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::ffff:127.0.0.1]/",
            "http://10.0.0.5/",
            "http://172.16.3.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://localhost:3000/",
            "http://localhost.:3000/",
            "http://app.localhost/",
            "ftp://origin.example.com/",
            "origin.example.com",
            "https://user:pass@origin.example.com/",
            "http://",
            "mailto:ops@example.com",
        ] {
            assert!(refused(input, strict), "{input} should be refused");
        }
    }

    #[test]
    fn public_origins_pass_and_loopback_only_when_allowed() {
        // Public addresses that are never connected to: these tests only judge them.
        let strict = OriginPolicy::default();
        let local = OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(OriginUrl::parse("https://origin.example.net/app", &strict).is_ok());
        assert!(OriginUrl::parse("http://1.1.1.1:8080", &strict).is_ok());
        assert!(OriginUrl::parse("https://[2606:4700:4700::1111]/", &strict).is_ok());
        assert!(OriginUrl::parse("http://127.0.0.1:8080/", &local).is_ok());
        assert!(OriginUrl::parse("http://[::ffff:127.0.0.1]:8080/", &local).is_ok());
        assert!(refused("http://169.254.169.254/", local));
        assert!(refused("http://10.0.0.1/", local));
        let origin = OriginUrl::parse("https://origin.example.net", &strict).unwrap();
        assert_eq!(origin.host_name(), Some("origin.example.net"));
        let resolved = [
            IpAddr::V4(std::net::Ipv4Addr::new(1, 1, 1, 1)),
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ];
        assert!(origin.check_resolved(&resolved, &strict).is_err());
        assert!(origin.check_resolved(&resolved[..1], &strict).is_ok());
    }

    /// Issue 12, defect 3: every origin the probe got accepted.
    #[test]
    fn embedded_ipv4_forms_and_special_purpose_blocks_are_refused() {
        let strict = OriginPolicy::default();
        let local = OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        for input in [
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[::169.254.169.254]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://198.18.0.1/",
            "http://192.0.0.1/",
            // The rest of the registries, a few rows each.
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://192.0.2.10/",
            "http://198.51.100.7/",
            "http://203.0.113.7/",
            "http://[2001:db8::1]/",
            "http://[3fff::1]/",
            "http://[2001:2::1]/",
            "http://192.88.99.1/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://[100::1]/",
            "http://[fec0::1]/",
            "http://[::ffff:0:a9fe:a9fe]/",
        ] {
            let error = OriginUrl::parse(input, &strict).expect_err(input);
            assert_eq!(error.code(), "invalid_origin", "{input}");
            assert!(refused(input, local), "{input} should be refused locally");
        }
        let message = OriginUrl::parse("http://[2002:a9fe:a9fe::1]/", &strict)
            .unwrap_err()
            .to_string();
        assert!(message.contains("6to4"), "{message}");
        // Globally reachable rows inside refused blocks pass.
        assert!(OriginUrl::parse("http://192.0.0.9/", &strict).is_ok());
        assert!(OriginUrl::parse("http://[64:ff9b::101:101]/", &strict).is_ok());
    }

    #[test]
    fn private_networks_only_when_allowed_and_never_metadata() {
        let private = OriginPolicy {
            allow_loopback: false,
            allow_private: true,
        };
        for allowed in [
            "http://10.0.0.5/",
            "http://100.64.0.1/",
            "http://[fd12:3456::1]/",
            "http://[::ffff:10.0.0.5]/",
        ] {
            assert!(OriginUrl::parse(allowed, &private).is_ok(), "{allowed}");
        }
        // A NAT64 translator's private network is not the operator's.
        assert!(refused("http://[64:ff9b::a00:1]/", private));
        for refused_input in [
            "http://[fd00:ec2::254]/",
            "http://169.254.169.254/",
            "http://[::10.0.0.1]/",
            "http://127.0.0.1/",
            "http://198.18.0.1/",
        ] {
            assert!(refused(refused_input, private), "{refused_input}");
        }
    }

    /// Issue 12, defect 8: length, ports, query strings and fragments.
    #[test]
    fn origin_urls_have_a_length_a_port_range_and_no_query() {
        let strict = OriginPolicy::default();
        let base = "https://origin.example.net/";
        let longest = format!("{base}{}", "a".repeat(MAX_ORIGIN_URL_BYTES - base.len()));
        assert!(OriginUrl::parse(&longest, &strict).is_ok());
        let over = format!("{longest}a");
        let sixty_kb = format!("{base}{}", "a".repeat(60 * 1024));
        for (input, reason) in [
            (over.as_str(), "at most 2048 bytes"),
            (sixty_kb.as_str(), "at most 2048 bytes"),
            ("http://origin.example.net:0/", "port"),
            ("http://origin.example.net:22/", "port"),
            ("http://origin.example.net:25/", "port"),
            ("https://origin.example.net:1023/", "port"),
            ("https://origin.example.net/app?token=1", "query string"),
            ("https://origin.example.net/app?", "query string"),
            ("https://origin.example.net/app#top", "fragment"),
        ] {
            let error = OriginUrl::parse(input, &strict).expect_err(input);
            assert_eq!((error.status(), error.code()), (400, "invalid_origin"));
            assert!(error.to_string().contains(reason), "{input}: {error}");
        }
        for input in [
            "http://origin.example.net:80/",
            "https://origin.example.net:443/",
            "http://origin.example.net:443/",
            "https://origin.example.net:80/",
            "http://origin.example.net:1024/",
            "http://origin.example.net:8080/app/",
        ] {
            assert!(OriginUrl::parse(input, &strict).is_ok(), "{input}");
        }
    }
}
