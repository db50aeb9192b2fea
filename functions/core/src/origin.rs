//! Origin URLs and which addresses the edge may connect to.
//!
//! An origin must be `http` or `https` with a host. The edge must never become a way into the
//! operator's own network, so addresses that are loopback, link-local (including the cloud
//! metadata addresses 169.254.169.254 and fd00:ec2::254), private, CGNAT, unspecified, multicast
//! or broadcast are refused unless the operator allows them. The same [`OriginPolicy`] is applied
//! when a domain is saved (to the URL's host and what it resolves to) and again by the edge on
//! the address it actually connects to, so a DNS answer that changes later cannot get around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::{Error, Result};

/// Which kinds of origin address the operator allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    /// Allow 127.0.0.0/8 and ::1 (the local stack proxies to origins on the same machine).
    pub allow_loopback: bool,
    /// Allow private, CGNAT and unique-local ranges (an operator whose origins live in its VPC).
    pub allow_private: bool,
}

/// Why an address is refused as an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedAddress {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10 (includes the metadata service).
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (includes fd00:ec2::254).
    Private,
    /// 100.64.0.0/10.
    Cgnat,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Multicast, broadcast and other reserved ranges.
    Reserved,
}

impl RefusedAddress {
    /// Short reason for errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedAddress::Loopback => "loopback",
            RefusedAddress::LinkLocal => "link-local",
            RefusedAddress::Private => "private",
            RefusedAddress::Cgnat => "carrier-grade NAT",
            RefusedAddress::Unspecified => "unspecified",
            RefusedAddress::Reserved => "reserved",
        }
    }
}

impl OriginPolicy {
    /// Whether the edge may connect to `address`; `Err` names why not.
    pub fn check_address(&self, address: IpAddr) -> Result<(), RefusedAddress> {
        let address = match address {
            // An IPv4-mapped IPv6 address reaches the IPv4 host: judge that host.
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match classify(address) {
            None => Ok(()),
            Some(RefusedAddress::Loopback) if self.allow_loopback => Ok(()),
            Some(RefusedAddress::Private | RefusedAddress::Cgnat) if self.allow_private => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

fn classify(address: IpAddr) -> Option<RefusedAddress> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(v4: Ipv4Addr) -> Option<RefusedAddress> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some(RefusedAddress::Loopback)
    } else if v4.is_link_local() {
        Some(RefusedAddress::LinkLocal)
    } else if v4.is_private() {
        Some(RefusedAddress::Private)
    } else if a == 100 && (64..128).contains(&b) {
        Some(RefusedAddress::Cgnat)
    } else if a == 0 {
        Some(RefusedAddress::Unspecified)
    } else if v4.is_multicast() || v4.is_broadcast() || a >= 240 {
        Some(RefusedAddress::Reserved)
    } else {
        None
    }
}

fn classify_v6(v6: Ipv6Addr) -> Option<RefusedAddress> {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some(RefusedAddress::Loopback)
    } else if v6.is_unspecified() {
        Some(RefusedAddress::Unspecified)
    } else if first & 0xffc0 == 0xfe80 {
        Some(RefusedAddress::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 {
        Some(RefusedAddress::Private)
    } else if v6.is_multicast() {
        Some(RefusedAddress::Reserved)
    } else {
        None
    }
}

/// A parsed origin URL that passed the syntactic rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    url: Url,
}

impl OriginUrl {
    /// Parses and checks the form: http(s), a host, no credentials. An IP-literal host is also
    /// checked against `policy` here; names are checked once resolved ([`OriginUrl::host_name`]).
    pub fn parse(input: &str, policy: &OriginPolicy) -> Result<OriginUrl> {
        let url = Url::parse(input.trim())
            .map_err(|_| invalid("origin_url must be an absolute http or https URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("origin_url must use http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("origin_url must not contain credentials"));
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
            "origin_url points at a {} address",
            reason.as_str()
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
        let strict = OriginPolicy::default();
        let local = OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(OriginUrl::parse("https://origin.example.net/app", &strict).is_ok());
        assert!(OriginUrl::parse("http://203.0.113.7:8080", &strict).is_ok());
        assert!(OriginUrl::parse("http://127.0.0.1:8080/", &local).is_ok());
        assert!(refused("http://169.254.169.254/", local));
        assert!(refused("http://10.0.0.1/", local));
        let origin = OriginUrl::parse("https://origin.example.net", &strict).unwrap();
        assert_eq!(origin.host_name(), Some("origin.example.net"));
        let resolved = [
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ];
        assert!(origin.check_resolved(&resolved, &strict).is_err());
        assert!(origin.check_resolved(&resolved[..1], &strict).is_ok());
    }
}
