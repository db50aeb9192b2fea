//! Isolation between accounts, and ids: another account's domains, unknown ids, deleted accounts.

use serde_json::json;

use crate::harness::{ACCOUNT_PLACEHOLDER, ApiCall, Harness, ORIGIN_HOST, origin_url, unique_apex};
use crate::{DOMAIN_ID_ROUTES, domain_call, limits};

#[tokio::test]
async fn another_accounts_domain_answers_404_on_every_route() {
    let harness = Harness::start().await;
    let owner = harness.create_account("pro", true).await;
    let intruder = harness.create_account("elite", false).await;
    let hostname = format!("shop.{}", unique_apex("isolation"));
    let created = harness.create_domain(&owner, &hostname).await;
    let id = created["id"].as_str().unwrap();
    let token = created["ownership_verification"]["value"].as_str().unwrap();
    harness
        .dns
        .set_txt(&format!("_edgecert-verify.{hostname}"), token)
        .await
        .unwrap();

    for function in DOMAIN_ID_ROUTES {
        let reply = harness.call(domain_call(function, &intruder, id)).await;
        let text = reply.body.to_string();
        let message = reply.expect_error(404, "not_found");
        assert_eq!(message, "Domain not found", "{function}");
        for secret in [id, hostname.as_str(), token, ORIGIN_HOST] {
            assert!(!text.contains(secret), "{function} leaked {secret}: {text}");
        }
    }

    // Nothing the intruder tried changed the domain.
    let after = harness
        .on_domain("domains-get", &owner, id)
        .await
        .expect(200);
    assert_eq!(after, created);
    assert_eq!(limits(&harness, &owner).await["domain_count"], 1);
    let listed = harness
        .call(ApiCall::new("domains-list").by_account(&intruder.id))
        .await
        .expect(200);
    assert_eq!(listed["domains"], json!([]));
    harness
        .dns
        .clear_txt(&format!("_edgecert-verify.{hostname}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_and_malformed_domain_ids_answer_404() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let created = harness
        .create_domain(&account, "shop.customer-one.com")
        .await;
    let real = created["id"].as_str().unwrap();
    let too_long = format!("dom_{}", "a".repeat(65));
    let other_prefix = real.replacen("dom_", "cert_", 1);

    for id in [
        "dom_00000000000000000000",
        "dom_",
        "dom_a.b",
        "dom_a~b",
        "DOM_00000000000000000000",
        "00000000000000000000",
        "acct_00000000000000000000",
        other_prefix.as_str(),
        too_long.as_str(),
    ] {
        for function in DOMAIN_ID_ROUTES {
            let message = harness
                .call(domain_call(function, &account, id))
                .await
                .expect_error(404, "not_found");
            assert_eq!(message, "Domain not found", "{function} {id}");
        }
    }
    harness
        .on_domain("domains-get", &account, real)
        .await
        .expect(200);
}

#[tokio::test]
async fn an_account_deleted_under_its_key_is_not_found() {
    // The authorizer's context names an account the store does not hold (deleted between the
    // authorizer and the handler, or a context forged in a test): account-level reads are 404.
    let harness = Harness::start().await;
    harness
        .call(ApiCall::new("limits-get").by_account(ACCOUNT_PLACEHOLDER))
        .await
        .expect_error(404, "not_found");
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(ACCOUNT_PLACEHOLDER)
                .json(json!({ "hostname": "shop.customer-one.com", "origin_url": origin_url() })),
        )
        .await
        .expect_error(404, "not_found");
}
