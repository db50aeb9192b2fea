//! The KMS key of sealed key storage, for tests and the local stack on an emulator (on AWS,
//! `template.yaml` declares it).

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::create_alias::CreateAliasError;
use aws_sdk_kms::operation::describe_key::DescribeKeyError;

use crate::error::{AwsError, Result};

/// The ARN of the KMS key known by `alias` (`alias/…`), creating the key and the alias when
/// absent. Tests and the local stack on moto use it; a deployment's key comes from its stack.
pub async fn ensure_kms_key(client: &Client, alias: &str) -> Result<String> {
    if let Some(arn) = key_of_alias(client, alias).await? {
        return Ok(arn);
    }
    let created = client
        .create_key()
        .description("EdgeCert sealed key storage: wraps the data keys (local)")
        .send()
        .await
        .map_err(|error| AwsError::kms("CreateKey", error))?;
    let metadata = created.key_metadata().ok_or_else(|| {
        AwsError::Sealing("KMS CreateKey answered without KeyMetadata".to_owned())
    })?;
    let key_id = metadata.key_id().to_owned();
    let arn = metadata.arn().map_or_else(|| key_id.clone(), str::to_owned);
    let aliased = client
        .create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await;
    match aliased {
        Ok(_) => Ok(arn),
        // Another caller created it meanwhile: theirs is the key (ours stays unused).
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(CreateAliasError::AlreadyExistsException(_))
            ) =>
        {
            key_of_alias(client, alias)
                .await?
                .ok_or_else(|| AwsError::Sealing(format!("{alias} exists but names no key")))
        }
        Err(error) => Err(AwsError::kms("CreateAlias", error)),
    }
}

/// The ARN of the key `alias` names, if it exists.
async fn key_of_alias(client: &Client, alias: &str) -> Result<Option<String>> {
    match client.describe_key().key_id(alias).send().await {
        Ok(output) => Ok(output
            .key_metadata()
            .and_then(|key| key.arn())
            .map(str::to_owned)),
        Err(error)
            if matches!(
                error.as_service_error(),
                Some(DescribeKeyError::NotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(AwsError::kms("DescribeKey", error)),
    }
}
