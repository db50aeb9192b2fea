//! Accounts and authentication: account routes, the authorizer, plans and limits.

use edgecert_api::{Access, ROUTES, auth};
use serde_json::{Value, json};

use crate::harness::{AUTHORIZER_EVENT, ApiCall, Harness};
use crate::{limits, timestamp};

#[tokio::test]
async fn the_operator_creates_an_account_whose_key_authenticates_it() {
    let harness = Harness::start().await;

    let body = harness
        .call(ApiCall::new("accounts-create").by_admin())
        .await
        .expect(201);

    // The fixture's body: {"name": "Acme Shops", "plan": "pro"}.
    let id = body["id"].as_str().expect("an id");
    assert!(id.starts_with("acct_"), "{body}");
    assert_eq!(body["name"], "Acme Shops");
    assert_eq!(body["plan"], "pro");
    assert_eq!(body["require_ownership_verification"], false);
    timestamp(&body["created_at"]);
    let key = body["api_key"].as_str().expect("the key, shown once");
    assert!(key.starts_with("eck_") && key.len() > 40, "{key}");

    let context = auth::authorize(&harness.state, Some(&format!("Bearer {key}")))
        .await
        .expect("the new key is accepted");
    assert_eq!(
        serde_json::to_value(&context).unwrap(),
        json!({ "role": "account", "account_id": id })
    );
}

#[tokio::test]
async fn the_operator_lists_every_account_page_by_page_without_keys() {
    let harness = Harness::start().await;
    let mut created = Vec::new();
    for plan in ["free", "plus", "pro", "elite", "plus"] {
        created.push(harness.create_account(plan, plan == "elite").await.id);
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut call = ApiCall::new("accounts-list").by_admin();
        let page_size = "2".to_owned();
        call = match &cursor {
            Some(cursor) => call.query(&[("limit", &page_size), ("cursor", cursor)]),
            None => call.query(&[("limit", &page_size)]),
        };
        let page = harness.call(call).await.expect(200);
        for account in page["accounts"].as_array().expect("accounts") {
            // What the operator sees: never a key, not even its hash.
            assert!(account.get("api_key").is_none(), "{account}");
            listed.push(account.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: Vec<&str> = listed.iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, created, "oldest first, each once");
    assert_eq!(listed[3]["plan"], "elite");
    assert_eq!(listed[3]["require_ownership_verification"], true);

    // Only the operator lists accounts; a forged cursor is a 400.
    harness
        .call(ApiCall::new("accounts-list").by_account(&created[1]))
        .await
        .expect_error(401, "unauthorized");
    harness
        .call(
            ApiCall::new("accounts-list")
                .by_admin()
                .query(&[("cursor", "forged")]),
        )
        .await
        .expect_error(400, "invalid_cursor");
}

#[tokio::test]
async fn the_authorizer_event_yields_the_context_handlers_read() {
    let harness = Harness::start().await;
    let account = harness.create_account("plus", false).await;
    harness
        .create_domain(&account, "shop.customer-one.com")
        .await;

    // GIVEN the authorizer's REQUEST event carrying the account's key
    let mut event: Value = serde_json::from_str(AUTHORIZER_EVENT).unwrap();
    let bearer = format!("Bearer {}", account.api_key);
    event["headers"]["authorization"] = json!(bearer);
    event["identitySource"] = json!([bearer]);
    let request: aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_value(event).expect("events/authorizer.json is an authorizer event");
    assert_eq!(request.type_.as_deref(), Some("REQUEST"));
    let header = request
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());

    // WHEN the authorizer runs, and API Gateway passes its context on to a handler
    let context = auth::authorize(&harness.state, header)
        .await
        .expect("allowed");
    let reply = harness
        .call(
            ApiCall::new("domains-list")
                .with_authorizer_context(serde_json::to_value(context).unwrap()),
        )
        .await;

    // THEN the handler serves that account
    let body = reply.expect(200);
    assert_eq!(body["domains"][0]["hostname"], "shop.customer-one.com");
}

#[tokio::test]
async fn the_authorizer_denies_missing_wrong_and_malformed_keys() {
    let harness = Harness::start().await;
    let account = harness.create_account("plus", false).await;

    let unknown_key = "eck_".to_owned() + &"0".repeat(64);
    for header in [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {}", account.api_key)),
        Some(account.api_key.clone()),
        Some(format!("Bearer {unknown_key}")),
        Some(format!("Bearer {}x", account.api_key)),
        Some("Bearer admin_placeholder".to_owned()),
        Some("Bearer eck_placeholder".to_owned()),
    ] {
        assert!(
            auth::authorize(&harness.state, header.as_deref())
                .await
                .is_none(),
            "{header:?} was let through"
        );
    }

    // The admin key gets the admin role, and nothing else does.
    let admin = auth::authorize(
        &harness.state,
        Some(&format!("bearer {}", harness.admin_key())),
    )
    .await
    .expect("the admin key is accepted");
    assert_eq!(
        serde_json::to_value(admin).unwrap(),
        json!({ "role": "admin" })
    );

    // With admin endpoints disabled (no admin key configured), no key is the admin key.
    let mut without_admin = harness.state.clone();
    without_admin.admin_key = None;
    assert!(
        auth::authorize(
            &without_admin,
            Some(&format!("Bearer {}", harness.admin_key()))
        )
        .await
        .is_none()
    );
}

#[tokio::test]
async fn requests_without_the_right_caller_are_unauthorized() {
    let harness = Harness::start().await;
    let account = harness.create_account("plus", false).await;

    // No authorizer context at all, on every route.
    for route in ROUTES {
        let mut call = ApiCall::new(route.function).without_authorizer();
        if route.path.contains("{id}") {
            call = call.id(if route.access == Access::Admin {
                &account.id
            } else {
                "dom_00000000000000000000"
            });
        }
        let message = harness.call(call).await.expect_error(401, "unauthorized");
        assert_eq!(message, "Missing or invalid API key", "{}", route.function);
    }

    // An account key on the admin routes; the admin key on account routes.
    harness
        .call(ApiCall::new("accounts-create").by_account(&account.id))
        .await
        .expect_error(401, "unauthorized");
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_account(&account.id)
                .id(&account.id)
                .json(json!({ "plan": "elite" })),
        )
        .await
        .expect_error(401, "unauthorized");
    harness
        .call(ApiCall::new("limits-get").by_admin())
        .await
        .expect_error(401, "unauthorized");
    harness
        .call(ApiCall::new("domains-create").by_admin())
        .await
        .expect_error(401, "unauthorized");

    // A context that names no valid identity.
    for context in [
        json!({ "role": "account" }),
        json!({ "role": "account", "account_id": "dom_00000000000000000000" }),
        json!({ "role": "root" }),
        json!({ "account_id": account.id }),
    ] {
        harness
            .call(ApiCall::new("limits-get").with_authorizer_context(context.clone()))
            .await
            .expect_error(401, "unauthorized");
    }

    // The plan did not change through the refused admin call.
    assert_eq!(limits(&harness, &account).await["plan"], "plus");
}

#[tokio::test]
async fn a_plan_change_shows_in_the_limits() {
    let harness = Harness::start().await;
    let account = harness.create_account("free", false).await;

    let before = limits(&harness, &account).await;
    assert_eq!(
        before,
        json!({
            "plan": "free", "max_certificates": 0, "current_count": 0,
            "max_domains": 0, "domain_count": 0,
            "wildcard_enabled": false, "auto_renew_enabled": false,
        })
    );

    // The fixture's body: {"plan": "elite"}.
    let updated = harness
        .call(ApiCall::new("accounts-update").by_admin().id(&account.id))
        .await
        .expect(200);
    assert_eq!(updated["id"], json!(account.id));
    assert_eq!(updated["plan"], "elite");
    assert!(
        updated.get("api_key").is_none(),
        "the key is never shown again"
    );

    let after = limits(&harness, &account).await;
    assert_eq!(
        after,
        json!({
            "plan": "elite", "max_certificates": 100, "current_count": 0,
            "max_domains": 100, "domain_count": 0,
            "wildcard_enabled": true, "auto_renew_enabled": true,
        })
    );

    // Other fields change on their own, and the key keeps working.
    let renamed = harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&account.id)
                .json(json!({ "name": "Renamed", "require_ownership_verification": true })),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["plan"], "elite");
    assert_eq!(renamed["require_ownership_verification"], true);
    assert!(
        auth::authorize(&harness.state, Some(&format!("Bearer {}", account.api_key)))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn account_requests_with_bad_input_are_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("plus", false).await;

    for (body, code) in [
        (json!({ "name": "", "plan": "pro" }), "invalid_name"),
        (
            json!({ "name": "x".repeat(201), "plan": "pro" }),
            "invalid_name",
        ),
        // Issue 12, defect 8: control and invisible formatting characters.
        (
            json!({ "name": "Acme\nadmin", "plan": "pro" }),
            "invalid_name",
        ),
        (
            json!({ "name": "Acme\u{1b}[2J", "plan": "pro" }),
            "invalid_name",
        ),
        (
            json!({ "name": "Acme\u{0}", "plan": "pro" }),
            "invalid_name",
        ),
        (
            json!({ "name": "\u{202e}emcA", "plan": "pro" }),
            "invalid_name",
        ),
        (
            json!({ "name": "Acme", "plan": "platinum" }),
            "invalid_field",
        ),
        (json!({ "name": "Acme" }), "invalid_field"),
        (
            json!({ "name": "Acme", "plan": "pro", "role": "admin" }),
            "unknown_field",
        ),
    ] {
        harness
            .call(
                ApiCall::new("accounts-create")
                    .by_admin()
                    .json(body.clone()),
            )
            .await
            .expect_error(400, code);
    }

    // Unknown and malformed account ids answer 404 alike.
    for id in [
        "acct_00000000000000000000",
        "acct_",
        "acct_a.b",
        "dom_00000000000000000000",
    ] {
        let message = harness
            .call(ApiCall::new("accounts-update").by_admin().id(id))
            .await
            .expect_error(404, "not_found");
        assert_eq!(message, "Account not found");
    }

    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&account.id)
                .json(json!({ "plan": "gold" })),
        )
        .await
        .expect_error(400, "invalid_field");
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&account.id)
                .json(json!({ "name": "Renamed\r\nInc" })),
        )
        .await
        .expect_error(400, "invalid_name");
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&account.id)
                .json(json!({ "max_domains": 1000 })),
        )
        .await
        .expect_error(400, "unknown_field");
    assert_eq!(limits(&harness, &account).await["plan"], "plus");
}
