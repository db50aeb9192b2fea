//! EdgeCert's DNS adapters. [`HickoryResolver`] implements the core's
//! [`DnsResolver`](edgecert_core::ports::DnsResolver) port over hickory: against the system's
//! resolvers in AWS, or against one name server (pebble-challtestsrv) locally and in tests.
//! [`ChalltestsrvDnsProvider`] implements the [`DnsProvider`](edgecert_core::ports::DnsProvider)
//! port (DNS-01 TXT records) over pebble-challtestsrv's management API for the local stack.

mod challtestsrv;
mod resolver;

pub use challtestsrv::ChalltestsrvDnsProvider;
pub use resolver::HickoryResolver;
