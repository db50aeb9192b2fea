//! EdgeCert's AWS adapters: the store ports on one DynamoDB table ([`DynamoStore`]), the
//! vault on Secrets Manager ([`SecretsManagerVault`]), the DNS provider on Route 53
//! ([`Route53DnsProvider`]), and the operator's admin key in its secret ([`AdminKeySecret`]).
//!
//! Build the SDK clients once per process with [`AwsClients`], then hand the adapters to the
//! core as `Arc<dyn Store>` / `Arc<dyn Vault>`:
//!
//! ```no_run
//! # async fn example() {
//! use edgecert_aws::{AwsClients, DynamoStore, SecretsManagerVault};
//! let clients = AwsClients::from_env().await;
//! let store = DynamoStore::new(clients.dynamodb.clone(), "edgecert");
//! let vault = SecretsManagerVault::new(clients.secrets_manager.clone(), "edgecert/");
//! # }
//! ```
//!
//! The table layout is described in [`schema`]; [`create_table`] creates it (tests and the
//! local stack; on AWS, `template.yaml` declares it). [`stream`] decodes the table's stream
//! records into the model, for the issuer.

mod admin_key;
mod config;
mod dynamo;
mod error;
mod route53;
mod secrets;

pub use admin_key::AdminKeySecret;
pub use config::{AwsClients, load_sdk_config};
pub use dynamo::{DynamoStore, create_table, schema, stream};
pub use error::{AwsError, Result};
pub use route53::Route53DnsProvider;
pub use secrets::SecretsManagerVault;
