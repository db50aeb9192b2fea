//! Building the AWS SDK clients, once per process.
//!
//! In Lambda and on Fargate region and credentials come from the environment
//! ([`load_sdk_config`], [`AwsClients::from_env`]). Tests and the local stack talk to a moto_server on
//! loopback instead ([`AwsClients::for_local_endpoint`]): fixed dummy credentials and region,
//! so the SDK never consults the instance-metadata address or the developer's profile.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// The SDK configuration of a deployed process: `AWS_ENDPOINT_URL` when set, and
///
/// - when the environment holds credentials (`AWS_ACCESS_KEY_ID`, as Lambda always sets from
///   the execution role), those alone, with `AWS_REGION`. The SDK's default chain would also
///   build its STS, web-identity, container, profile and instance-metadata providers first:
///   several milliseconds of every cold start (BENCHMARKS.md, scenario 5) for providers a
///   Lambda function never reaches;
/// - otherwise (Fargate's task role, a developer's profile) the default chain.
pub async fn load_sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let has_key = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|key| !key.is_empty());
    if has_key {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
        if let Some(region) = std::env::var("AWS_REGION")
            .ok()
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|region| !region.is_empty())
        {
            loader = loader.region(Region::new(region));
        }
    }
    loader.load().await
}

/// Region used against a local endpoint (moto accepts any).
const LOCAL_REGION: &str = "us-east-1";

/// The SDK clients the AWS adapters need, built once and cloned cheaply.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// DynamoDB, for [`DynamoStore`](crate::DynamoStore).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Secrets Manager, for [`SecretsManagerVault`](crate::SecretsManagerVault).
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    /// KMS, for the data keys of sealed key storage ([`KeyStorageVault`](crate::KeyStorageVault)
    /// in sealed mode).
    pub kms: aws_sdk_kms::Client,
}

impl AwsClients {
    /// Clients configured by the SDK's default chain: `AWS_REGION`, credentials from the
    /// environment or the execution role, and `AWS_ENDPOINT_URL` when set.
    pub async fn from_env() -> Self {
        AwsClients::from_sdk_config(&load_sdk_config().await)
    }

    /// Clients for a local AWS API emulator (moto_server) at `endpoint_url`, e.g.
    /// `http://127.0.0.1:5000`, with dummy credentials and region.
    pub async fn for_local_endpoint(endpoint_url: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint_url)
            .region(Region::new(LOCAL_REGION))
            .credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "edgecert-local",
            ))
            .load()
            .await;
        AwsClients::from_sdk_config(&config)
    }

    /// Clients sharing an already loaded configuration.
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            secrets_manager: aws_sdk_secretsmanager::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
        }
    }
}
