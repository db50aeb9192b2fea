//! EdgeCert's one deployment configuration.
//!
//! Every deployed process (the API's Lambda functions, the issuer and renewer Lambdas, the edge
//! terminator's container) and the local runner read the variables they share through this
//! crate: [`DeploymentConfig`] (table, secret prefix, the edge's hostname and addresses, the
//! origin policy, the DNS server, the ACME CA), named in [`vars`]. What only one shell reads
//! (the authorizer's admin key, the workers' concurrency, the terminator's tunables) is parsed
//! by that shell with the same [`Variables`] reader and [`ConfigError`], so every configuration
//! error names its variable the same way.
//!
//! [`aws_services`] builds the AWS adapters (DynamoDB store, key storage vault, Route 53,
//! DNS resolver) and the ACME issuer from a [`DeploymentConfig`], once per process.

mod aws;
mod config;

pub use aws::{DeploymentError, ZoneProviders, aws_services, init_tracing, key_storage_vault};
pub use config::{AcmeSettings, ConfigError, DeploymentConfig, Variables, vars};
