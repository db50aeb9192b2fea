//! The IANA special-purpose address registries (IPv4 and IPv6) as one table, and how an
//! address is judged against it: which block it falls in, whether the registry calls that
//! block globally reachable, and what an IPv6 address that carries an IPv4 address inside
//! really reaches.
//!
//! Sources, transcribed row by row (block, name, RFC, "Forwardable", "Globally Reachable"):
//! - IANA IPv4 Special-Purpose Address Registry (`iana-ipv4-special-registry`, RFC 6890);
//! - IANA IPv6 Special-Purpose Address Registry (`iana-ipv6-special-registry`, RFC 6890).
//!
//! Two kinds of address are refused though no special-purpose row names them, each with its
//! own registry: multicast (IPv4 224.0.0.0/4, RFC 5771; IPv6 ff00::/8, RFC 4291), which no TCP
//! origin can be; and IPv6 outside 2000::/3, the only block the IANA IPv6 Address Space
//! registry has allocated as global unicast (the rest is "Reserved by IETF" or special).
//!
//! No maintained crate fits: the ones that exist (`iprfc`, `nex-core`'s `is_global_ipv6`...)
//! answer "global or not" without saying which block, do not unwrap embedded IPv4 forms, and
//! cannot tell loopback from private, which the operator's switches need.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a block is, as EdgeCert names it to operators (errors, logs, metrics) and as the
/// operator's switches ([`crate::origin::OriginPolicy`]) allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// Loopback (127.0.0.0/8, ::1).
    Loopback,
    /// Link-local (169.254.0.0/16, fe80::/10), which holds cloud metadata services.
    LinkLocal,
    /// Private-use and unique-local (RFC 1918, fc00::/7).
    Private,
    /// Shared address space (100.64.0.0/10, carrier-grade NAT).
    Cgnat,
    /// "This network" and the unspecified addresses (0.0.0.0/8, ::).
    Unspecified,
    /// Documentation ranges (TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20).
    Documentation,
    /// Benchmarking ranges (198.18.0.0/15, 2001:2::/48).
    Benchmarking,
    /// Multicast and the limited broadcast address.
    Multicast,
    /// IPv6 forms that reach an IPv4 host through a tunnel or a translator EdgeCert cannot see
    /// past: 6to4, Teredo, IPv4-compatible, local-use NAT64.
    Ipv6Transition,
    /// A cloud provider's metadata service (AWS's fd00:ec2::254), refused even where private
    /// addresses are allowed.
    CloudMetadata,
    /// Any other block that is not globally reachable (IETF protocol assignments, reserved
    /// space, discard-only...).
    Reserved,
}

impl AddressKind {
    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Loopback => "loopback",
            AddressKind::LinkLocal => "link-local",
            AddressKind::Private => "private",
            AddressKind::Cgnat => "carrier-grade NAT",
            AddressKind::Unspecified => "unspecified",
            AddressKind::Documentation => "documentation",
            AddressKind::Benchmarking => "benchmarking",
            AddressKind::Multicast => "multicast",
            AddressKind::Ipv6Transition => "ipv6-transition",
            AddressKind::CloudMetadata => "cloud-metadata",
            AddressKind::Reserved => "reserved",
        }
    }

    /// The kind as a phrase after "points at", for client-facing messages.
    pub fn phrase(self) -> &'static str {
        match self {
            AddressKind::Loopback => "a loopback address",
            AddressKind::LinkLocal => "a link-local address",
            AddressKind::Private => "a private address",
            AddressKind::Cgnat => "a carrier-grade NAT address",
            AddressKind::Unspecified => "an unspecified address",
            AddressKind::Documentation => "a documentation address",
            AddressKind::Benchmarking => "a benchmarking address",
            AddressKind::Multicast => "a multicast or broadcast address",
            AddressKind::Ipv6Transition => {
                "an IPv6 transition address (6to4, Teredo, IPv4-compatible or local-use NAT64)"
            }
            AddressKind::CloudMetadata => "a cloud metadata address",
            AddressKind::Reserved => "a reserved address",
        }
    }
}

/// The "Globally Reachable" column of a registry row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `True`: reachable from anywhere, like any public address.
    Global,
    /// `False`: reachable only within some scope (a host, a link, a network).
    NotGlobal,
    /// `N/A`: the row says nothing by itself (6to4, Teredo, deprecated blocks). EdgeCert treats
    /// it as not reachable.
    NotApplicable,
}

/// An address block: the network's bits and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// An IPv4 block.
    V4(u32, u8),
    /// An IPv6 block.
    V6(u128, u8),
}

impl Block {
    const fn v4(address: Ipv4Addr, prefix: u8) -> Block {
        Block::V4(address.to_bits(), prefix)
    }

    const fn v6(address: Ipv6Addr, prefix: u8) -> Block {
        Block::V6(address.to_bits(), prefix)
    }

    fn contains(self, address: IpAddr) -> bool {
        match (self, address) {
            (Block::V4(network, prefix), IpAddr::V4(v4)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                v4.to_bits() & mask == network
            }
            (Block::V6(network, prefix), IpAddr::V6(v6)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                v6.to_bits() & mask == network
            }
            _ => false,
        }
    }

    fn prefix(self) -> u8 {
        match self {
            Block::V4(_, prefix) | Block::V6(_, prefix) => prefix,
        }
    }
}

/// One row of a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialBlock {
    /// The "Address Block" column.
    pub block: Block,
    /// The "Name" column.
    pub name: &'static str,
    /// The "RFC" column.
    pub rfc: &'static str,
    /// The "Forwardable" column: whether routers forward it between networks. Only forwardable
    /// blocks can be an operator's own network, so only they may be allowed as private.
    pub forwardable: bool,
    /// The "Globally Reachable" column: whether the address is allowed by default.
    pub reach: Reach,
    /// How EdgeCert names it (used when `reach` is not [`Reach::Global`]).
    pub kind: AddressKind,
}

const fn row(
    block: Block,
    name: &'static str,
    rfc: &'static str,
    forwardable: bool,
    reach: Reach,
    kind: AddressKind,
) -> SpecialBlock {
    SpecialBlock {
        block,
        name,
        rfc,
        forwardable,
        reach,
        kind,
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Block {
    Block::v4(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Block {
    let [a, b, c, d, e, f, g, h] = segments;
    Block::v6(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

use AddressKind as K;
use Reach::{Global, NotApplicable, NotGlobal};

/// The registries, one row per entry. Where rows nest (192.0.0.9/32 inside 192.0.0.0/24), the
/// longest prefix decides.
#[rustfmt::skip]
pub const REGISTRY: &[SpecialBlock] = &[
    // --- IANA IPv4 Special-Purpose Address Registry ---
    row(v4(0, 0, 0, 0, 8), "\"This network\"", "RFC 791, section 3.2", false, NotGlobal, K::Unspecified),
    row(v4(0, 0, 0, 0, 32), "\"This host on this network\"", "RFC 1122, section 3.2.1.3", false, NotGlobal, K::Unspecified),
    row(v4(10, 0, 0, 0, 8), "Private-Use", "RFC 1918", true, NotGlobal, K::Private),
    row(v4(100, 64, 0, 0, 10), "Shared Address Space", "RFC 6598", true, NotGlobal, K::Cgnat),
    row(v4(127, 0, 0, 0, 8), "Loopback", "RFC 1122, section 3.2.1.3", false, NotGlobal, K::Loopback),
    row(v4(169, 254, 0, 0, 16), "Link Local", "RFC 3927", false, NotGlobal, K::LinkLocal),
    row(v4(172, 16, 0, 0, 12), "Private-Use", "RFC 1918", true, NotGlobal, K::Private),
    row(v4(192, 0, 0, 0, 24), "IETF Protocol Assignments", "RFC 6890, section 2.1", false, NotGlobal, K::Reserved),
    row(v4(192, 0, 0, 0, 29), "IPv4 Service Continuity Prefix", "RFC 7335", true, NotGlobal, K::Reserved),
    row(v4(192, 0, 0, 8, 32), "IPv4 dummy address", "RFC 7600", false, NotGlobal, K::Reserved),
    row(v4(192, 0, 0, 9, 32), "Port Control Protocol Anycast", "RFC 7723", true, Global, K::Reserved),
    row(v4(192, 0, 0, 10, 32), "Traversal Using Relays around NAT Anycast", "RFC 8155", true, Global, K::Reserved),
    row(v4(192, 0, 0, 170, 32), "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", false, NotGlobal, K::Reserved),
    row(v4(192, 0, 0, 171, 32), "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", false, NotGlobal, K::Reserved),
    row(v4(192, 0, 2, 0, 24), "Documentation (TEST-NET-1)", "RFC 5737", false, NotGlobal, K::Documentation),
    row(v4(192, 31, 196, 0, 24), "AS112-v4", "RFC 7535", true, Global, K::Reserved),
    row(v4(192, 52, 193, 0, 24), "AMT", "RFC 7450", true, Global, K::Reserved),
    row(v4(192, 88, 99, 0, 24), "Deprecated (6to4 Relay Anycast)", "RFC 7526", false, NotApplicable, K::Ipv6Transition),
    row(v4(192, 88, 99, 2, 32), "6a44-relay anycast address", "RFC 6751", true, NotGlobal, K::Ipv6Transition),
    row(v4(192, 168, 0, 0, 16), "Private-Use", "RFC 1918", true, NotGlobal, K::Private),
    row(v4(192, 175, 48, 0, 24), "Direct Delegation AS112 Service", "RFC 7534", true, Global, K::Reserved),
    row(v4(198, 18, 0, 0, 15), "Benchmarking", "RFC 2544", true, NotGlobal, K::Benchmarking),
    row(v4(198, 51, 100, 0, 24), "Documentation (TEST-NET-2)", "RFC 5737", false, NotGlobal, K::Documentation),
    row(v4(203, 0, 113, 0, 24), "Documentation (TEST-NET-3)", "RFC 5737", false, NotGlobal, K::Documentation),
    row(v4(240, 0, 0, 0, 4), "Reserved", "RFC 1112, section 4", false, NotGlobal, K::Reserved),
    row(v4(255, 255, 255, 255, 32), "Limited Broadcast", "RFC 8190, RFC 919 section 7", false, NotGlobal, K::Multicast),
    // IPv4 Multicast Address Space Registry: no TCP origin is multicast.
    row(v4(224, 0, 0, 0, 4), "Multicast", "RFC 5771", true, NotGlobal, K::Multicast),
    // --- IANA IPv6 Special-Purpose Address Registry ---
    row(v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "Loopback Address", "RFC 4291", false, NotGlobal, K::Loopback),
    row(v6([0; 8], 128), "Unspecified Address", "RFC 4291", false, NotGlobal, K::Unspecified),
    // Unwrapped before the table is read (see `embedded_ipv4`); the row stays for the record.
    row(v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), "IPv4-mapped Address", "RFC 4291", false, NotGlobal, K::Reserved),
    // Unwrapped too: the translator reaches the IPv4 address in the low 32 bits.
    row(v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "IPv4-IPv6 Translat.", "RFC 6052", true, Global, K::Ipv6Transition),
    row(v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "IPv4-IPv6 Translat.", "RFC 8215", true, NotGlobal, K::Ipv6Transition),
    row(v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "Discard-Only Address Block", "RFC 6666", true, NotGlobal, K::Reserved),
    row(v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), "Dummy IPv6 Prefix", "RFC 9780", false, NotGlobal, K::Reserved),
    row(v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "IETF Protocol Assignments", "RFC 2928", false, NotGlobal, K::Reserved),
    row(v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "TEREDO", "RFC 4380, RFC 8190", true, NotApplicable, K::Ipv6Transition),
    row(v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128), "Port Control Protocol Anycast", "RFC 7723", true, Global, K::Reserved),
    row(v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128), "Traversal Using Relays around NAT Anycast", "RFC 8155", true, Global, K::Reserved),
    row(v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128), "DNS-SD Service Registration Protocol Anycast", "RFC 9665", true, Global, K::Reserved),
    row(v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), "Benchmarking", "RFC 5180, RFC Errata 1752", true, NotGlobal, K::Benchmarking),
    row(v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32), "AMT", "RFC 7450", true, Global, K::Reserved),
    row(v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48), "AS112-v6", "RFC 7535", true, Global, K::Reserved),
    row(v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28), "Deprecated (previously ORCHID)", "RFC 4843", false, NotApplicable, K::Reserved),
    row(v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28), "ORCHIDv2", "RFC 7343", true, Global, K::Reserved),
    row(v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28), "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", true, Global, K::Reserved),
    row(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "Documentation", "RFC 3849", false, NotGlobal, K::Documentation),
    row(v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4", "RFC 3056", true, NotApplicable, K::Ipv6Transition),
    row(v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48), "Direct Delegation AS112 Service", "RFC 7534", true, Global, K::Reserved),
    row(v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "Documentation", "RFC 9637", false, NotGlobal, K::Documentation),
    row(v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), "Segment Routing (SRv6) SIDs", "RFC 9602", true, NotGlobal, K::Reserved),
    row(v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "Unique-Local", "RFC 4193, RFC 8190", true, NotGlobal, K::Private),
    row(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "Link-Local Unicast", "RFC 4291", false, NotGlobal, K::LinkLocal),
    // IPv6 Multicast Address Space Registry: no TCP origin is multicast.
    row(v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "Multicast", "RFC 4291, section 2.7", true, NotGlobal, K::Multicast),
    // Not a registry row: AWS's Instance Metadata Service over IPv6 sits inside the unique-local
    // block, so an operator who allows private origins must still never reach it.
    row(v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), "AWS Instance Metadata Service", "AWS EC2 documentation", false, NotGlobal, K::CloudMetadata),
];

/// IPv6 global unicast, 2000::/3: the only block of the IANA IPv6 Address Space registry that
/// holds public unicast addresses. Everything outside it that no row above names is reserved.
const IPV6_GLOBAL_UNICAST: Block = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// The row an address falls in: the most specific one.
pub fn special_block(address: IpAddr) -> Option<&'static SpecialBlock> {
    REGISTRY
        .iter()
        .filter(|row| row.block.contains(address))
        .max_by_key(|row| row.block.prefix())
}

/// What an address really reaches, for the IPv6 forms that carry an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    /// Not an embedding form: judge the address itself.
    None,
    /// IPv4-mapped: this host's own IPv4 stack connects to the address, so it is judged as
    /// that IPv4 address, with the operator's allowances.
    Mapped(Ipv4Addr),
    /// NAT64: a translator elsewhere connects to the address. RFC 6052 (section 3.1) forbids
    /// the well-known prefix for non-global IPv4 addresses, and the translator's loopback or
    /// network is not the operator's, so the address must be globally reachable, whatever the
    /// operator allows.
    Translated(Ipv4Addr),
    /// A form whose IPv4 host EdgeCert cannot vouch for: refused outright.
    Refused,
}

/// How each embedding form is handled, and why:
///
/// - IPv4-mapped `::ffff:0:0/96` (RFC 4291): unwrapped ([`Embedded::Mapped`]). A dual-stack
///   socket connects to the IPv4 host itself, so that host is what must be judged.
/// - NAT64 well-known prefix `64:ff9b::/96` (RFC 6052): unwrapped ([`Embedded::Translated`]).
///   The translator connects to the IPv4 address in the low 32 bits; DNS64 resolvers hand out
///   such addresses for IPv4-only origins, so refusing the form would refuse legitimate
///   origins on IPv6-only networks.
/// - Local-use NAT64 `64:ff9b:1::/48` (RFC 8215): refused. The operator picks the prefix
///   length (/48 to /96), so where the IPv4 address sits cannot be known; the registry marks
///   it not globally reachable anyway.
/// - IPv4-compatible `::/96` (RFC 4291 section 2.5.5.1): refused. Deprecated since 2006, used
///   by nothing legitimate, and automatic tunnels (`sit`) would carry it to the embedded IPv4
///   host. `::` and `::1` share the prefix and are judged by their own rows.
/// - 6to4 `2002::/16` (RFC 3056): refused. It reaches the IPv4 address in bits 16-47 through a
///   relay; 6to4 relays were deprecated by RFC 7526 and no origin needs one.
/// - Teredo `2001::/32` (RFC 4380): refused. It reaches an (obfuscated) IPv4 client through a
///   Teredo relay; no origin is served over Teredo.
pub fn embedded_ipv4(address: Ipv6Addr) -> Embedded {
    let bits = address.to_bits();
    let low32 = Ipv4Addr::from_bits(bits as u32);
    if let Some(v4) = address.to_ipv4_mapped() {
        return Embedded::Mapped(v4);
    }
    let rfc6052 = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    if rfc6052.contains(IpAddr::V6(address)) {
        return Embedded::Translated(low32);
    }
    let compatible = bits >> 32 == 0 && bits > 1;
    let refused = [
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
    ];
    if compatible
        || refused
            .iter()
            .any(|block| block.contains(IpAddr::V6(address)))
    {
        return Embedded::Refused;
    }
    Embedded::None
}

/// Whether an address (already unwrapped) is globally reachable; otherwise what kind it is and
/// whether the registry calls its block forwardable.
pub fn classify(address: IpAddr) -> Result<(), (AddressKind, bool)> {
    match special_block(address) {
        Some(row) if row.reach == Reach::Global => Ok(()),
        Some(row) => Err((row.kind, row.forwardable)),
        None => match address {
            IpAddr::V6(_) if !IPV6_GLOBAL_UNICAST.contains(address) => {
                Err((AddressKind::Reserved, false))
            }
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<AddressKind> {
        let address: IpAddr = text.parse().unwrap();
        classify(address).err().map(|(kind, _)| kind)
    }

    #[test]
    fn the_longest_prefix_decides_and_global_rows_pass() {
        assert_eq!(kind("192.0.0.1"), Some(AddressKind::Reserved));
        assert_eq!(kind("192.0.0.9"), None);
        assert_eq!(kind("192.0.0.10"), None);
        assert_eq!(kind("0.0.0.0"), Some(AddressKind::Unspecified));
        assert_eq!(kind("2001:1::1"), None);
        assert_eq!(kind("2001:1::4"), Some(AddressKind::Reserved));
        assert_eq!(kind("2001:4860:4860::8888"), None);
        assert_eq!(kind("8.8.8.8"), None);
        assert_eq!(kind("fd00:ec2::254"), Some(AddressKind::CloudMetadata));
        assert_eq!(kind("fd00:ec2::253"), Some(AddressKind::Private));
        assert_eq!(kind("4000::1"), Some(AddressKind::Reserved));
        assert_eq!(kind("fec0::1"), Some(AddressKind::Reserved));
    }

    #[test]
    fn every_row_is_well_formed() {
        for row in REGISTRY {
            let (bits, prefix, width) = match row.block {
                Block::V4(bits, prefix) => (u128::from(bits), prefix, 32),
                Block::V6(bits, prefix) => (bits, prefix, 128),
            };
            assert!(prefix <= width, "{}", row.name);
            let host_bits = u32::from(width - prefix);
            let host_mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            assert_eq!(bits & host_mask, 0, "{} has host bits set", row.name);
            assert!(row.rfc.starts_with("RFC") || row.rfc.starts_with("AWS"));
            // Only a block routers forward can be an operator's own network.
            if matches!(row.kind, AddressKind::Private | AddressKind::Cgnat) {
                assert!(row.forwardable, "{}", row.name);
            }
            if matches!(row.kind, AddressKind::Loopback | AddressKind::LinkLocal) {
                assert!(!row.forwardable, "{}", row.name);
            }
        }
    }

    #[test]
    fn embedded_forms_are_unwrapped_or_refused() {
        let v6 = |text: &str| text.parse::<Ipv6Addr>().unwrap();
        let metadata = Ipv4Addr::new(169, 254, 169, 254);
        assert_eq!(
            embedded_ipv4(v6("::ffff:169.254.169.254")),
            Embedded::Mapped(metadata)
        );
        assert_eq!(
            embedded_ipv4(v6("64:ff9b::a9fe:a9fe")),
            Embedded::Translated(metadata)
        );
        for refused in [
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::169.254.169.254",
            "::10.0.0.1",
            "::2",
        ] {
            assert_eq!(embedded_ipv4(v6(refused)), Embedded::Refused, "{refused}");
        }
        for plain in ["::", "::1", "2001:db8::1", "2606:4700::1111", "fe80::1"] {
            assert_eq!(embedded_ipv4(v6(plain)), Embedded::None, "{plain}");
        }
    }
}
