//! The Lambda authorizer's admin key, from its secret in Secrets Manager (moto): read at the
//! cold start, trusted until the refresh interval, then read again, so a key put in the secret
//! replaces the old one without a redeploy; a failed re-read keeps the key read last.

mod harness;

use std::time::Duration;

use edgecert_api::auth::{RotatingAdminKey, authorize_with};
use edgecert_aws::{AdminKeySecret, AwsClients};
use edgecert_integration::Moto;
use harness::{Harness, unique_apex};
use serde_json::{Value, json};

/// Short enough for a test, long enough that two calls in a row fall within one interval.
const REFRESH: Duration = Duration::from_millis(1500);

async fn secrets() -> aws_sdk_secretsmanager::Client {
    let moto = Moto::shared().await.expect("moto_server starts");
    AwsClients::for_local_endpoint(&moto.endpoint_url())
        .await
        .secrets_manager
}

/// The role `key` gets from the authorizer when the admin key is `rotating`'s.
async fn role(harness: &Harness, rotating: &RotatingAdminKey, key: &str) -> Value {
    let admin = rotating.hash().await;
    let context = authorize_with(
        &harness.state.services,
        Some(&admin),
        Some(&format!("Bearer {key}")),
    )
    .await;
    context
        .and_then(|context| context.get("role").cloned())
        .unwrap_or(json!("denied"))
}

#[tokio::test]
async fn a_key_put_in_the_secret_replaces_the_old_one_after_the_refresh_interval() {
    let harness = Harness::start().await;
    let client = secrets().await;
    let name = format!("{}-admin-key", unique_apex("stack"));
    let created = client
        .create_secret()
        .name(&name)
        .secret_string("FirstAdminKey0123456789")
        .send()
        .await
        .expect("the secret is created in moto");
    let arn = created.arn.expect("moto answers the ARN");

    // Cold start: the key is read once.
    let rotating = RotatingAdminKey::load(AdminKeySecret::new(client.clone(), &arn), REFRESH)
        .await
        .expect("the secret is read");
    assert_eq!(
        role(&harness, &rotating, "FirstAdminKey0123456789").await,
        "admin"
    );

    // Rotation: a new value in the secret (with the newline `echo` adds)...
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("SecondAdminKey9876543210\n")
        .send()
        .await
        .expect("a new version is put");
    // ...is not read before the interval is over: no read per request.
    assert_eq!(
        role(&harness, &rotating, "FirstAdminKey0123456789").await,
        "admin"
    );
    assert_eq!(
        role(&harness, &rotating, "SecondAdminKey9876543210").await,
        "denied"
    );

    tokio::time::sleep(REFRESH + Duration::from_millis(100)).await;
    assert_eq!(
        role(&harness, &rotating, "SecondAdminKey9876543210").await,
        "admin"
    );
    assert_eq!(
        role(&harness, &rotating, "FirstAdminKey0123456789").await,
        "denied",
        "the old key stops working"
    );

    // The secret unreadable (deleted): the key read last stays the admin key.
    client
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("the secret is deleted");
    tokio::time::sleep(REFRESH + Duration::from_millis(100)).await;
    assert_eq!(
        role(&harness, &rotating, "SecondAdminKey9876543210").await,
        "admin"
    );
}

#[tokio::test]
async fn a_cold_start_without_a_readable_secret_fails_naming_the_call_not_the_key() {
    let client = secrets().await;
    let missing = format!("{}-no-admin-key", unique_apex("stack"));
    let error = RotatingAdminKey::load(AdminKeySecret::new(client.clone(), &missing), REFRESH)
        .await
        .err()
        .expect("no key, no start");
    assert!(error.to_string().contains("GetSecretValue"), "{error}");

    // An empty secret is no key: the operator hears about it at the start.
    let empty = format!("{}-empty-admin-key", unique_apex("stack"));
    client
        .create_secret()
        .name(&empty)
        .secret_string("  ")
        .send()
        .await
        .expect("the secret is created in moto");
    let error = RotatingAdminKey::load(AdminKeySecret::new(client, &empty), REFRESH)
        .await
        .err()
        .expect("an empty key is refused");
    assert!(error.to_string().contains("SecretString"), "{error}");
}
