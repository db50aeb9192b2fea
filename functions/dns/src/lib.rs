//! EdgeCert's DNS adapters. [`HickoryResolver`] implements the core's
//! [`DnsResolver`](edgecert_core::ports::DnsResolver) port over hickory: against the system's
//! resolvers in AWS, or against one name server (pebble-challtestsrv) locally and in tests.

mod resolver;

pub use resolver::HickoryResolver;
