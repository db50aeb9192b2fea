//! Handler tests on the real API Gateway events in `events/`: every endpoint's success path and
//! every documented error, as a client of the API sees them (status and JSON body).
//!
//! Each request is an event file with its placeholders replaced (see `events/README.md`), read
//! by `lambda_http` as the Lambda runtime reads it, and served by the handler the route table
//! names for that event. State is a fresh SQLite file per test; DNS answers come from a real
//! pebble-challtestsrv shared by the test binary (`harness`).

mod harness;

use std::collections::HashSet;

use edgecert_api::request::MAX_BODY_BYTES;
use edgecert_api::routes::DASHBOARD_ROUTES;
use edgecert_api::{Access, ROUTES, auth, routes};
use edgecert_core::origin::OriginPolicy;
use harness::{
    ACCOUNT_PLACEHOLDER, AUTHORIZER_EVENT, ApiCall, EDGE_HOSTNAME, FIXTURES, Harness,
    OPERATOR_DOMAIN, ORIGIN_HOST, TestAccount, origin_url, unique_apex,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Every route that takes `{id}` of a domain.
const DOMAIN_ID_ROUTES: [&str; 7] = [
    "domains-get",
    "domains-update",
    "domains-delete",
    "domains-dns",
    "domains-verify",
    "domains-ssl",
    "domains-nudge",
];

/// A call of `function` on domain `id` as `account`, with a valid body where one is needed.
fn domain_call(function: &'static str, account: &TestAccount, id: &str) -> ApiCall {
    let call = ApiCall::new(function).by_account(&account.id).id(id);
    if function == "domains-update" {
        call.json(json!({ "origin_url": origin_url() }))
    } else {
        call
    }
}

fn timestamp(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp"), &Rfc3339)
        .unwrap_or_else(|error| panic!("{value} is not RFC 3339: {error}"))
}

async fn limits(harness: &Harness, account: &TestAccount) -> Value {
    harness
        .call(ApiCall::new("limits-get").by_account(&account.id))
        .await
        .expect(200)
}

// ---------------------------------------------------------------------------------------------
// The event files themselves

#[test]
fn every_route_has_an_event_file_that_matches_it() {
    let fixtures: HashSet<&str> = FIXTURES.iter().map(|(function, _)| *function).collect();
    for route in ROUTES {
        assert!(
            fixtures.contains(route.function),
            "events/{}.json is missing",
            route.function
        );
        let call = ApiCall::new(route.function);
        let event = call.event();
        let route_key = format!("{} {}", route.method, route.path);
        assert_eq!(event["version"], "2.0", "{}", route.function);
        assert_eq!(event["routeKey"], json!(route_key), "{}", route.function);
        let context = &event["requestContext"];
        assert_eq!(context["routeKey"], json!(route_key), "{}", route.function);
        assert_eq!(context["stage"], "$default", "{}", route.function);
        assert_eq!(
            context["http"]["method"], route.method,
            "{}",
            route.function
        );
        assert_eq!(
            context["http"]["path"], event["rawPath"],
            "{}",
            route.function
        );
        assert_eq!(event["isBase64Encoded"], false, "{}", route.function);
        assert!(
            event["headers"]["authorization"]
                .as_str()
                .is_some_and(|value| value.starts_with("Bearer ")),
            "{} carries the presented key",
            route.function
        );

        // The concrete path leads back to this route, with the event's path parameters.
        let raw_path = event["rawPath"].as_str().expect("a rawPath");
        let (found, parameters) = routes::find(route.method, raw_path)
            .unwrap_or_else(|| panic!("{raw_path} matches no route"));
        assert_eq!(found.function, route.function);
        let expected: serde_json::Map<String, Value> = parameters
            .into_iter()
            .map(|(name, value)| (name, json!(value)))
            .collect();
        if expected.is_empty() {
            assert!(event.get("pathParameters").is_none(), "{}", route.function);
        } else {
            assert_eq!(event["pathParameters"], Value::Object(expected));
        }

        // The authorizer context names the caller the route requires.
        let lambda = &context["authorizer"]["lambda"];
        match route.access {
            Access::Admin => assert_eq!(lambda, &json!({ "role": "admin" })),
            Access::Account => assert_eq!(
                lambda,
                &json!({ "role": "account", "account_id": ACCOUNT_PLACEHOLDER })
            ),
        }

        // Bodies are JSON strings, exactly on the routes that read one.
        let takes_body = matches!(
            route.function,
            "accounts-create"
                | "accounts-update"
                | "domains-create"
                | "domains-update"
                | "zones-create"
                | "certificates-create"
                | "certificates-update"
        );
        match event.get("body") {
            Some(body) => {
                assert!(takes_body, "{} has a body it does not read", route.function);
                let text = body.as_str().expect("the body is a string");
                serde_json::from_str::<Value>(text).expect("the body is JSON");
                assert_eq!(
                    event["headers"]["content-length"],
                    json!(text.len().to_string())
                );
            }
            None => assert!(!takes_body, "{} has no body", route.function),
        }

        // lambda_http reads it as the runtime would.
        let request = lambda_http::request::from_str(&event.to_string())
            .unwrap_or_else(|error| panic!("events/{}.json: {error}", route.function));
        assert_eq!(request.method().as_str(), route.method);
        assert_eq!(request.uri().path(), raw_path);
    }
    assert_eq!(
        FIXTURES.len(),
        ROUTES.len(),
        "an event file for a route that does not exist"
    );
}

#[test]
fn the_events_directory_holds_no_stale_files() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    for entry in std::fs::read_dir(&directory).expect("events/ exists") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(function) = name.strip_suffix(".json") else {
            continue;
        };
        // Only API Gateway requests are this test's business; the workers' events (table
        // stream, schedule) are checked by their own tests.
        let event: Value = serde_json::from_str(
            &std::fs::read_to_string(entry.path()).expect("the event file reads"),
        )
        .unwrap_or_else(|error| panic!("events/{name} is not JSON: {error}"));
        if event.get("routeKey").is_none() && event.get("type").is_none() {
            continue;
        }
        // The dashboard's events are fed to its binary by tests/dashboard_function.rs.
        let dashboard = DASHBOARD_ROUTES
            .iter()
            .any(|route| route.operation == function);
        assert!(
            function == "authorizer"
                || dashboard
                || FIXTURES.iter().any(|(known, _)| *known == function),
            "events/{name} is not used by the handler tests"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts and authentication

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

// ---------------------------------------------------------------------------------------------
// Creating domains

#[tokio::test]
async fn a_subdomain_gets_a_cname_to_the_edge() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(json!({ "hostname": "Shop.Customer-One.com.", "origin_url": origin_url() })),
        )
        .await
        .expect(201);

    assert!(body["id"].as_str().unwrap().starts_with("dom_"), "{body}");
    assert_eq!(
        body["hostname"], "shop.customer-one.com",
        "lower case, no trailing dot"
    );
    assert_eq!(body["origin_url"], origin_url());
    assert_eq!(body["provisioning_step"], "waiting_dns");
    assert_eq!(body["ownership_verified"], true);
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["next_attempt_at"], Value::Null);
    assert_eq!(body["certificate_id"], Value::Null);
    assert_eq!(
        body["dns_instructions"],
        json!({ "records": [
            { "type": "CNAME", "name": "shop.customer-one.com", "value": EDGE_HOSTNAME }
        ] })
    );
    assert!(body.get("ownership_verification").is_none(), "{body}");
    assert_eq!(
        timestamp(&body["created_at"]),
        timestamp(&body["updated_at"])
    );

    assert_eq!(limits(&harness, &account).await["domain_count"], 1);
}

#[tokio::test]
async fn the_fixture_body_whitelists_its_hostname() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    harness
        .dns
        .add_a(
            "origin.saas.example.com",
            &[std::net::Ipv4Addr::new(1, 0, 0, 8)],
        )
        .await
        .unwrap();

    // The event exactly as stored, but for the account id.
    let body = harness
        .call(ApiCall::new("domains-create").by_account(&account.id))
        .await
        .expect(201);
    assert_eq!(body["hostname"], "shop.customer.example.com");
    assert_eq!(body["origin_url"], "https://origin.saas.example.com/");
}

#[tokio::test]
async fn an_apex_domain_gets_a_records_and_a_note() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness.create_domain(&account, "customer-one.co.uk").await;

    let instructions = &body["dns_instructions"];
    assert_eq!(
        instructions["records"],
        json!([{ "type": "A", "name": "customer-one.co.uk", "value": "127.0.0.1" }])
    );
    let note = instructions["note"]
        .as_str()
        .expect("a note for apex names");
    assert!(note.contains("cannot hold a CNAME"), "{note}");
    assert!(
        note.contains("ALIAS/ANAME") && note.contains(EDGE_HOSTNAME),
        "{note}"
    );
}

#[tokio::test]
async fn an_account_that_requires_ownership_gets_a_txt_record_to_create() {
    let harness = Harness::start().await;
    let strict = harness.create_account("pro", true).await;
    let relaxed = harness.create_account("pro", false).await;

    let body = harness
        .create_domain(&strict, "shop.customer-one.com")
        .await;
    assert_eq!(body["provisioning_step"], "waiting_ownership");
    assert_eq!(body["ownership_verified"], false);
    let record = &body["ownership_verification"];
    assert_eq!(record["type"], "TXT");
    assert_eq!(record["name"], "_edgecert-verify.shop.customer-one.com");
    let token = record["value"].as_str().expect("a token");
    assert!(
        token.starts_with("edgecert-verify-") && token.len() > 30,
        "{token}"
    );

    let other = harness
        .create_domain(&relaxed, "shop.customer-two.com")
        .await;
    assert!(other.get("ownership_verification").is_none(), "{other}");
    assert_ne!(
        harness.create_domain(&strict, "www.customer-one.com").await["ownership_verification"]["value"],
        json!(token),
        "every domain has its own token"
    );
}

#[tokio::test]
async fn internationalised_hostnames_are_stored_as_punycode() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let body = harness
        .create_domain(&account, "Shop.München.example.com")
        .await;
    assert_eq!(body["hostname"], "shop.xn--mnchen-3ya.example.com");
    assert_eq!(
        body["dns_instructions"]["records"][0]["name"],
        "shop.xn--mnchen-3ya.example.com"
    );

    // The same name written in punycode is the same domain.
    harness
        .call(ApiCall::new("domains-create").by_account(&account.id).json(
            json!({ "hostname": "shop.xn--mnchen-3ya.example.com", "origin_url": origin_url() }),
        ))
        .await
        .expect_error(409, "domain_exists");
}

#[tokio::test]
async fn hostnames_that_break_the_rules_are_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    let long_label = format!("{}.customer.com", "a".repeat(64));
    let long_name = format!("{}customer.com", "abcdefghi.".repeat(25));
    assert!(long_name.len() > 253);
    for hostname in [
        "",
        "   ",
        "localhost",
        "app.localhost",
        "127.0.0.1",
        "[::1]",
        "::1",
        "127.1",
        "0x7f000001",
        "com",
        "co.uk",
        "github.io",
        "intranet",
        "*.customer.com",
        "shop.*.customer.com",
        "-shop.customer.com",
        "shop-.customer.com",
        "shop..customer.com",
        "shop_1.customer.com",
        "shop customer.com",
        "https://shop.customer.com",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await;
        assert_eq!(
            reply.status, 400,
            "{hostname:?} was accepted: {}",
            reply.body
        );
        reply.expect_error(400, "invalid_hostname");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

#[tokio::test]
async fn no_account_can_claim_the_operators_domain() {
    // The edge's own hostname points at the edge by definition: whitelisting it would pass the
    // DNS check at once and route the operator's traffic to an account's origin. Every other
    // name of the operator's registered domain (issue 12, defect 8) is the operator's too.
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for hostname in [
        EDGE_HOSTNAME.to_owned(),
        EDGE_HOSTNAME.to_uppercase(),
        format!("{EDGE_HOSTNAME}."),
        format!("shop.{EDGE_HOSTNAME}"),
        OPERATOR_DOMAIN.to_owned(),
        format!("www.{OPERATOR_DOMAIN}"),
        format!("status.eu.{OPERATOR_DOMAIN}"),
    ] {
        let message = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await
            .expect_error(400, "invalid_hostname");
        assert!(
            message.contains("operator's own domain"),
            "{hostname}: {message}"
        );
    }
    // Names that merely end the same way are someone else's.
    harness
        .create_domain(&account, &format!("shop.my{OPERATOR_DOMAIN}"))
        .await;
    assert_eq!(limits(&harness, &account).await["domain_count"], 1);
}

#[tokio::test]
async fn special_use_and_doubly_dotted_names_are_refused() {
    // Issue 12, defect 8: names that can never get a public certificate, and `name..`.
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for (hostname, reason) in [
        ("shop.customer-one.com..", "empty label"),
        ("printer.local", "special-use"),
        ("db.internal", "special-use"),
        ("shop.test", "special-use"),
        ("nothing.invalid", "special-use"),
        ("abcdefghijklmnop.onion", "special-use"),
        ("router.home.arpa", "special-use"),
        ("1.0.0.10.in-addr.arpa", "special-use"),
        ("app.localhost", "special-use"),
        ("site.alt", "special-use"),
        ("shop.example", "special-use"),
    ] {
        let message = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await
            .expect_error(400, "invalid_hostname");
        assert!(message.contains(reason), "{hostname}: {message}");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

#[tokio::test]
async fn origins_the_edge_must_not_reach_are_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for origin in [
        "http://127.0.0.1",
        "http://127.0.0.1:8080/app",
        "http://127.1",
        "http://2130706433/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://LOCALHOST:3000/",
        "http://api.localhost/",
        // Issue 12, defect 3: IPv6 forms that embed an IPv4 address, special-purpose blocks.
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[::169.254.169.254]/",
        "http://[::10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://198.18.0.1/",
        "http://192.0.0.1/",
        "http://203.0.113.7/",
        // Issue 12, defect 8: ports 0 and below 1024 but 80/443, query strings, fragments.
        "http://origin.saas-platform.com:0/",
        "http://origin.saas-platform.com:22/",
        "http://origin.saas-platform.com:25/",
        "https://origin.saas-platform.com/app?token=secret",
        "https://origin.saas-platform.com/app#top",
        "ftp://files.saas-platform.com/",
        "file:///etc/passwd",
        "gopher://origin.saas-platform.com/",
        "https://user:secret@origin.saas-platform.com/",
        "origin.saas-platform.com",
        "not a url",
        "",
        // A name that resolves to loopback (challtestsrv's default answer).
        "https://resolves-to-loopback.saas-platform.com/",
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": "shop.customer-one.com", "origin_url": origin })),
            )
            .await;
        assert_eq!(reply.status, 400, "{origin:?} was accepted: {}", reply.body);
        reply.expect_error(400, "invalid_origin");
    }

    // An origin URL of 60 KB (under the 64 KiB body limit) is refused for its length.
    let long_origin = format!("https://{ORIGIN_HOST}/{}", "a".repeat(60 * 1024));
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(json!({ "hostname": "e.customer-one.com", "origin_url": long_origin })),
        )
        .await
        .expect_error(400, "invalid_origin");
    assert!(message.contains("2048 bytes"), "{message}");

    // Globally reachable addresses are fine, by name or by literal (never connected to here),
    // and so are the ports 80, 443 and 1024 up.
    for origin in [
        origin_url(),
        "http://1.0.0.1:8080/base".to_owned(),
        "https://[2606:4700:4700::1001]/".to_owned(),
        format!("http://{ORIGIN_HOST}:80/"),
        format!("http://{ORIGIN_HOST}:443/"),
        format!("https://{ORIGIN_HOST}:1024/app/"),
    ] {
        let hostname = format!(
            "{}.customer-one.com",
            unique_apex("origin").replace('.', "-")
        );
        harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin })),
            )
            .await
            .expect(201);
    }
}

#[tokio::test]
async fn the_operator_may_allow_loopback_origins() {
    let harness = Harness::with_origin_policy(OriginPolicy {
        allow_loopback: true,
        allow_private: false,
    })
    .await;
    let account = harness.create_account("pro", false).await;

    for (hostname, origin) in [
        ("a.customer-one.com", "http://127.0.0.1:8080/"),
        ("b.customer-one.com", "http://localhost:3000/"),
        (
            "c.customer-one.com",
            "https://resolves-to-loopback.saas-platform.com/",
        ),
    ] {
        let body = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin })),
            )
            .await
            .expect(201);
        assert_eq!(body["origin_url"], origin);
    }
    // Metadata and private addresses stay refused.
    for origin in [
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.5/",
    ] {
        harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": "d.customer-one.com", "origin_url": origin })),
            )
            .await
            .expect_error(400, "invalid_origin");
    }
}

#[tokio::test]
async fn malformed_bodies_get_their_own_codes() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let create = || ApiCall::new("domains-create").by_account(&account.id);

    harness
        .call(create().without_body())
        .await
        .expect_error(400, "missing_body");
    harness
        .call(create().body("  \n"))
        .await
        .expect_error(400, "missing_body");
    for text in [
        r#"{"hostname": "a.customer-one.com","#,
        "not json",
        "{'hostname': 1}",
    ] {
        let message = harness
            .call(create().body(text))
            .await
            .expect_error(400, "invalid_json");
        assert_eq!(message, "The body is not valid JSON");
    }
    let message = harness
        .call(create().json(json!({
            "hostname": "a.customer-one.com", "origin_url": origin_url(), "account_id": "acct_x"
        })))
        .await
        .expect_error(400, "unknown_field");
    assert!(message.contains("account_id"), "{message}");
    for body in [
        json!({ "hostname": 42, "origin_url": origin_url() }),
        json!({ "hostname": "a.customer-one.com" }),
        json!({ "hostname": null, "origin_url": origin_url() }),
        json!(42),
        json!("a.customer-one.com"),
    ] {
        harness
            .call(create().json(body))
            .await
            .expect_error(400, "invalid_field");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
}

/// Whether `message` names a Rust type or serde's internals rather than fields and JSON words.
fn leaks_internals(message: &str) -> bool {
    let camel_case = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| {
            word.chars()
                .zip(word.chars().skip(1))
                .any(|(a, b)| a.is_ascii_lowercase() && b.is_ascii_uppercase())
        });
    let words = [
        "struct", "enum", "variant", "u8", "u16", "u32", "u64", "i32", "i64", "usize", "Option",
        "Vec", "String", "line ", "column", "serde",
    ];
    camel_case || words.iter().any(|word| message.contains(word))
}

#[tokio::test]
async fn malformed_bodies_never_name_internal_types_on_any_route() {
    // Issue 12, defect 8: "expected struct NewDomain at line 1 column 4" named a Rust type.
    let harness = Harness::start().await;
    let account = harness.create_account("elite", false).await;
    // Every route that reads a JSON body, with its fields.
    let routes: [(&str, &[&str]); 7] = [
        (
            "accounts-create",
            &["name", "plan", "require_ownership_verification"],
        ),
        (
            "accounts-update",
            &["name", "plan", "require_ownership_verification"],
        ),
        ("domains-create", &["hostname", "origin_url"]),
        ("domains-update", &["origin_url"]),
        ("zones-create", &["name", "provider", "provider_zone_id"]),
        (
            "certificates-create",
            &[
                "zone_id",
                "domain",
                "sans",
                "wildcard",
                "auto_renew",
                "key_type",
            ],
        ),
        ("certificates-update", &["auto_renew"]),
    ];
    let mut bodies_sent = 0;
    for (function, fields) in routes {
        let route = ROUTES
            .iter()
            .find(|route| route.function == function)
            .unwrap_or_else(|| panic!("{function} is not a route"));
        let call = || match route.access {
            Access::Admin => ApiCall::new(function).by_admin(),
            Access::Account => ApiCall::new(function).by_account(&account.id),
        };
        let mut malformed: Vec<(String, bool)> = [
            "42",
            "\"text\"",
            "[]",
            "null",
            "true",
            "{\"unknown\": 1}",
            "{\"a\": {\"b\": [1, 2]}}",
            "{",
            "{\"a\": 1,}",
            "{} trailing",
        ]
        .iter()
        .map(|body| (body.to_string(), true))
        .collect();
        // An empty object and each field with values of every JSON type: some are of the
        // right type (then the request may go on), the others must be refused without naming
        // a type.
        malformed.push(("{}".to_owned(), false));
        for field in fields {
            for value in [
                json!(42),
                json!(-1),
                json!(true),
                json!([1]),
                json!({"x": 1}),
                json!(null),
                json!("x"),
            ] {
                malformed.push((json!({ *field: value }).to_string(), false));
            }
            malformed.push((format!("{{\"{field}\": \"a\", \"{field}\": \"b\"}}"), false));
        }
        for (body, must_refuse) in malformed {
            let reply = harness.call(call().body(&body)).await;
            bodies_sent += 1;
            if must_refuse {
                assert_eq!(reply.status, 400, "{function} {body}: {}", reply.body);
                let code = reply.body["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["invalid_json", "invalid_field", "unknown_field"].contains(&code),
                    "{function} {body}: {}",
                    reply.body
                );
            }
            if reply.status >= 400 {
                let message = reply.body["error"]["message"].as_str().unwrap_or_default();
                assert!(!leaks_internals(message), "{function} {body}: {message}");
            }
        }
    }
    assert!(bodies_sent > 100);
    assert!(leaks_internals(
        "expected struct NewDomain at line 1 column 4"
    ));
}

#[tokio::test]
async fn base64_encoded_bodies_are_read_like_text_ones() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    // A client that sends JSON as application/octet-stream gets its body base64-encoded.
    let body = json!({ "hostname": "a.customer-one.com", "origin_url": origin_url() });
    let created = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(body.to_string().as_bytes(), "application/octet-stream"),
        )
        .await
        .expect(201);
    assert_eq!(created["hostname"], "a.customer-one.com");

    // The same rules apply to the decoded bytes.
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(&[0xff, 0xfe, b'{'], "application/octet-stream"),
        )
        .await
        .expect_error(400, "invalid_json");
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .base64_body(&over, "application/octet-stream"),
        )
        .await
        .expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    // A valid body padded with whitespace to exactly the limit is read...
    let valid = json!({ "hostname": "a.customer-one.com", "origin_url": origin_url() }).to_string();
    let at_limit = format!("{valid}{}", " ".repeat(MAX_BODY_BYTES - valid.len()));
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .body(&at_limit),
        )
        .await
        .expect(201);

    // ...one byte more is not, even though it is still valid JSON.
    let over = format!("{at_limit} ");
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .body(&over),
        )
        .await
        .expect_error(413, "payload_too_large");
    assert!(message.contains("65536"), "{message}");

    let domain = harness.create_domain(&account, "b.customer-one.com").await;
    let huge_origin = format!("https://{ORIGIN_HOST}/{}", "a".repeat(70 * 1024));
    for call in [
        ApiCall::new("domains-update")
            .by_account(&account.id)
            .id(domain["id"].as_str().unwrap())
            .json(json!({ "origin_url": huge_origin })),
        ApiCall::new("accounts-create")
            .by_admin()
            .json(json!({ "name": "x".repeat(70 * 1024), "plan": "pro" })),
        ApiCall::new("accounts-update")
            .by_admin()
            .id(&account.id)
            .json(json!({ "name": "x".repeat(70 * 1024) })),
    ] {
        harness
            .call(call)
            .await
            .expect_error(413, "payload_too_large");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 2);
}

#[tokio::test]
async fn a_hostname_belongs_to_one_domain_across_all_accounts() {
    let harness = Harness::start().await;
    let first = harness.create_account("pro", false).await;
    let second = harness.create_account("elite", false).await;
    harness.create_domain(&first, "shop.customer-one.com").await;

    for (account, hostname) in [
        (&first, "shop.customer-one.com"),
        (&first, "SHOP.customer-one.com."),
        (&second, "shop.customer-one.com"),
        (&second, "Shop.Customer-One.Com"),
    ] {
        let reply = harness
            .call(
                ApiCall::new("domains-create")
                    .by_account(&account.id)
                    .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
            )
            .await;
        let message = reply.expect_error(409, "domain_exists");
        assert_eq!(message, "Domain already exists");
    }
    // Neither account's count moved, and the second account cannot see the first's domain.
    assert_eq!(limits(&harness, &first).await["domain_count"], 1);
    assert_eq!(limits(&harness, &second).await["domain_count"], 0);
    let listed = harness
        .call(ApiCall::new("domains-list").by_account(&second.id))
        .await
        .expect(200);
    assert_eq!(listed, json!({ "domains": [], "next_cursor": null }));
}

#[tokio::test]
async fn the_plan_caps_the_number_of_domains() {
    let harness = Harness::start().await;
    let plus = harness.create_account("plus", false).await;

    let mut ids = Vec::new();
    for n in 0..5 {
        let domain = harness
            .create_domain(&plus, &format!("shop{n}.customer-one.com"))
            .await;
        ids.push(domain["id"].as_str().unwrap().to_owned());
    }
    let message = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&plus.id)
                .json(json!({ "hostname": "shop5.customer-one.com", "origin_url": origin_url() })),
        )
        .await
        .expect_error(403, "domain_limit_reached");
    assert_eq!(message, "Domain limit reached for plan");
    let usage = limits(&harness, &plus).await;
    assert_eq!(
        (usage["max_domains"].clone(), usage["domain_count"].clone()),
        (json!(5), json!(5))
    );

    // A refused name is not taken: another account can have it.
    let other = harness.create_account("pro", false).await;
    harness
        .create_domain(&other, "shop5.customer-one.com")
        .await;

    // Deleting one frees a slot.
    harness
        .on_domain("domains-delete", &plus, &ids[0])
        .await
        .expect(204);
    harness.create_domain(&plus, "shop6.customer-one.com").await;

    // A free account has no domains at all, until the operator upgrades it.
    let free = harness.create_account("free", false).await;
    harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&free.id)
                .json(json!({ "hostname": "a.customer-two.com", "origin_url": origin_url() })),
        )
        .await
        .expect_error(403, "domain_limit_reached");
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&free.id)
                .json(json!({ "plan": "plus" })),
        )
        .await
        .expect(200);
    harness.create_domain(&free, "a.customer-two.com").await;
}

// ---------------------------------------------------------------------------------------------
// Reading, changing and deleting domains

#[tokio::test]
async fn domains_are_listed_a_page_at_a_time() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let other = harness.create_account("pro", false).await;
    harness
        .create_domain(&other, "other.customer-two.com")
        .await;
    let mut created = Vec::new();
    for n in 0..5 {
        let domain = harness
            .create_domain(&account, &format!("shop{n}.customer-one.com"))
            .await;
        created.push(domain["id"].as_str().unwrap().to_owned());
    }

    // The fixture asks for limit=20: everything on one page.
    let all = harness
        .call(ApiCall::new("domains-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(all["domains"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(
        all["domains"][0]["dns_instructions"]["records"][0]["type"],
        "CNAME"
    );

    // Two at a time: 2 + 2 + 1, in creation order, following next_cursor.
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let limit = [("limit", "2")];
        let with_cursor;
        let query: &[(&str, &str)] = match &cursor {
            None => &limit,
            Some(cursor) => {
                with_cursor = [("limit", "2"), ("cursor", cursor.as_str())];
                &with_cursor
            }
        };
        let page = harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(query),
            )
            .await
            .expect(200);
        pages += 1;
        let items = page["domains"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);

    // Without a limit: the default page size, no query string at all.
    let default = harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[]),
        )
        .await
        .expect(200);
    assert_eq!(default["domains"].as_array().unwrap().len(), 5);

    // An empty cursor is the first page; a forged one is a client error.
    let first = harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[("cursor", ""), ("limit", "1")]),
        )
        .await
        .expect(200);
    assert_eq!(first["domains"][0]["id"], json!(created[0]));
    harness
        .call(
            ApiCall::new("domains-list")
                .by_account(&account.id)
                .query(&[("cursor", "not-a-cursor")]),
        )
        .await
        .expect_error(400, "invalid_cursor");
}

#[tokio::test]
async fn a_page_size_out_of_range_is_refused() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;

    for limit in ["0", "-1", "abc", "", "1.5", "99999999999"] {
        let message = harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(&[("limit", limit)]),
            )
            .await
            .expect_error(400, "invalid_limit");
        assert!(message.contains("1 to 100"), "{message}");
    }
    // Values above 100 are read as 100 (openapi.yaml), not refused.
    for limit in ["1", "100", "500"] {
        harness
            .call(
                ApiCall::new("domains-list")
                    .by_account(&account.id)
                    .query(&[("limit", limit)]),
            )
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn a_domain_reads_back_and_its_origin_changes() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let created = harness
        .create_domain(&account, "shop.customer-one.com")
        .await;
    let id = created["id"].as_str().unwrap();

    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read, created);

    // The fixture's body: {"origin_url": "https://origin-2.saas.example.com"}.
    harness
        .dns
        .add_a(
            "origin-2.saas.example.com",
            &[std::net::Ipv4Addr::new(1, 0, 0, 9)],
        )
        .await
        .unwrap();
    let updated = harness
        .on_domain("domains-update", &account, id)
        .await
        .expect(200);
    assert_eq!(updated["origin_url"], "https://origin-2.saas.example.com/");
    assert_eq!(updated["hostname"], "shop.customer-one.com");
    assert!(timestamp(&updated["updated_at"]) >= timestamp(&created["updated_at"]));
    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read["origin_url"], "https://origin-2.saas.example.com/");

    // Refused changes leave the origin as it was.
    for (body, status, code) in [
        (
            json!({ "origin_url": "http://169.254.169.254/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": "http://localhost/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": "ftp://origin.saas-platform.com/" }),
            400,
            "invalid_origin",
        ),
        (
            json!({ "origin_url": origin_url(), "hostname": "x.customer-one.com" }),
            400,
            "unknown_field",
        ),
        (json!({}), 400, "invalid_field"),
    ] {
        harness
            .call(
                ApiCall::new("domains-update")
                    .by_account(&account.id)
                    .id(id)
                    .json(body),
            )
            .await
            .expect_error(status, code);
    }
    harness
        .call(
            ApiCall::new("domains-update")
                .by_account(&account.id)
                .id(id)
                .without_body(),
        )
        .await
        .expect_error(400, "missing_body");
    let read = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(read["origin_url"], "https://origin-2.saas.example.com/");
}

#[tokio::test]
async fn a_deleted_domain_is_gone_with_its_certificate_and_its_name_is_free() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let apex = unique_apex("delete");
    let hostname = format!("shop.{apex}");
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();
    // Pointing at the edge (challtestsrv's default answer): a nudge requests the certificate.
    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    let certificate_id = ssl["certificate"]["id"].as_str().unwrap().to_owned();

    let reply = harness.on_domain("domains-delete", &account, id).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.body, Value::Null, "204 has no body");

    for function in DOMAIN_ID_ROUTES {
        harness
            .call(domain_call(function, &account, id))
            .await
            .expect_error(404, "not_found");
    }
    assert_eq!(limits(&harness, &account).await["domain_count"], 0);
    let account_id = edgecert_core::AccountId::parse(&account.id).unwrap();
    let certificate_id = edgecert_core::CertificateId::parse(&certificate_id).unwrap();
    assert!(
        harness
            .state
            .services
            .store
            .get_certificate(&account_id, &certificate_id)
            .await
            .unwrap()
            .is_none(),
        "the managed certificate is deleted with its domain"
    );

    // The hostname can be whitelisted again, by anyone.
    let other = harness.create_account("pro", false).await;
    harness.create_domain(&other, &hostname).await;
}

#[tokio::test]
async fn dns_instructions_are_served_on_their_own() {
    let harness = Harness::start().await;
    let strict = harness.create_account("pro", true).await;
    let relaxed = harness.create_account("pro", false).await;

    let apex = harness.create_domain(&strict, "customer-one.com").await;
    let dns = harness
        .on_domain("domains-dns", &strict, apex["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(dns["hostname"], "customer-one.com");
    assert_eq!(dns["dns_instructions"], apex["dns_instructions"]);
    assert_eq!(dns["dns_instructions"]["records"][0]["type"], "A");
    assert_eq!(
        dns["ownership_verification"],
        json!({
            "type": "TXT",
            "name": "_edgecert-verify.customer-one.com",
            "value": apex["ownership_verification"]["value"],
        })
    );

    let sub = harness
        .create_domain(&relaxed, "www.customer-two.com")
        .await;
    let dns = harness
        .on_domain("domains-dns", &relaxed, sub["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(
        dns,
        json!({
            "hostname": "www.customer-two.com",
            "dns_instructions": { "records": [
                { "type": "CNAME", "name": "www.customer-two.com", "value": EDGE_HOSTNAME }
            ] },
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Ownership, DNS checks and certificates

#[tokio::test]
async fn ownership_is_verified_once_the_txt_record_exists() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", true).await;
    let hostname = format!("shop.{}", unique_apex("verify"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();
    let record = created["ownership_verification"]["name"].as_str().unwrap();
    let token = created["ownership_verification"]["value"].as_str().unwrap();

    // Not there yet.
    let message = harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");
    assert!(message.contains(record), "{message}");
    let still = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(still["provisioning_step"], "waiting_ownership");

    // A record with another value does not count.
    harness
        .dns
        .set_txt(record, "edgecert-verify-someone-else")
        .await
        .unwrap();
    harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");

    // The customer creates it: verified, on to the DNS step.
    harness.dns.set_txt(record, token).await.unwrap();
    let verified = harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect(200);
    assert_eq!(verified["ownership_verified"], true);
    assert_eq!(verified["provisioning_step"], "waiting_dns");
    assert!(
        verified.get("ownership_verification").is_none(),
        "{verified}"
    );
    let dns = harness
        .on_domain("domains-dns", &account, id)
        .await
        .expect(200);
    assert!(dns.get("ownership_verification").is_none(), "{dns}");

    // The check runs now, every time: once the record is gone, it is not found.
    harness.dns.clear_txt(record).await.unwrap();
    harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");
}

#[tokio::test]
async fn a_fresh_domain_has_no_certificate_yet() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let created = harness
        .create_domain(&account, "shop.customer-one.com")
        .await;

    let ssl = harness
        .on_domain("domains-ssl", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(
        ssl,
        json!({
            "provisioning_step": "waiting_dns",
            "error": null,
            "next_attempt_at": null,
            "dns_instructions": created["dns_instructions"],
            "certificate": null,
        })
    );
}

#[tokio::test]
async fn a_nudge_on_a_domain_pointing_at_the_edge_requests_its_certificate_once() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-ok"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    // challtestsrv answers the hostname with 127.0.0.1, the edge's address.
    let first = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(first["provisioning_step"], "issuing", "{first}");
    assert_eq!(first["error"], Value::Null);
    let certificate = &first["certificate"];
    let certificate_id = certificate["id"].as_str().expect("a managed certificate");
    assert!(certificate_id.starts_with("cert_"), "{certificate}");
    assert_eq!(certificate["status"], "pending");
    assert_eq!(certificate["issued_at"], Value::Null);

    // /ssl and the domain show the same.
    let ssl = harness
        .on_domain("domains-ssl", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing");
    assert_eq!(ssl["certificate"]["id"], json!(certificate_id));
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["certificate_id"], json!(certificate_id));

    // Nudging again is safe: same step, same certificate, nothing new.
    let second = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(second["provisioning_step"], "issuing");
    assert_eq!(second["error"], Value::Null);
    assert_eq!(second["certificate"]["id"], json!(certificate_id));
    assert_eq!(second["certificate"]["status"], "pending");
    assert_eq!(second["dns_instructions"], first["dns_instructions"]);

    // A managed certificate is not one of the plan's downloadable certificates.
    let usage = limits(&harness, &account).await;
    assert_eq!(usage["current_count"], 0);
    assert_eq!(usage["domain_count"], 1);
}

/// Issue 12's soak: the issuer stores an issued certificate first and its domain's step after,
/// best-effort. The store became unavailable between the two writes, and the domain stayed
/// `issuing` with no error and no next attempt while the edge served its certificate: /ssl
/// never said `active`, and neither the issuer nor a nudge ever moved it on.
#[tokio::test]
async fn a_domain_left_issuing_behind_its_issued_certificate_is_active_in_ssl_and_after_a_nudge() {
    use edgecert_core::model::CertificateStatus;

    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let account_id = edgecert_core::AccountId::parse(&account.id).unwrap();
    let store = &harness.state.services.store;
    // GIVEN two domains whose certificates were issued while their own writes were lost
    let mut ids = Vec::new();
    for label in ["ssl", "nudge"] {
        let hostname = format!("shop.{}", unique_apex(&format!("left-{label}")));
        let created = harness.create_domain(&account, &hostname).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let nudged = harness
            .on_domain("domains-nudge", &account, &id)
            .await
            .expect(200);
        assert_eq!(nudged["provisioning_step"], "issuing", "{nudged}");
        let certificate_id =
            edgecert_core::CertificateId::parse(nudged["certificate"]["id"].as_str().unwrap())
                .unwrap();
        let mut certificate = store
            .get_certificate(&account_id, &certificate_id)
            .await
            .unwrap()
            .unwrap();
        let now = OffsetDateTime::now_utc();
        certificate.status = CertificateStatus::Issued;
        certificate.material_version = Some("v1".to_owned());
        certificate.issued_at = Some(now);
        certificate.not_before = Some(now);
        certificate.expires_at = Some(now + time::Duration::days(90));
        certificate.next_renewal_at = Some(now + time::Duration::days(60));
        certificate.next_attempt_at = None;
        store.update_certificate(&certificate).await.unwrap();
        ids.push(id);
    }

    // WHEN its SSL status is read THEN it is active, and stored so
    let ssl = harness
        .on_domain("domains-ssl", &account, &ids[0])
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "active", "{ssl}");
    assert_eq!(ssl["error"], Value::Null, "{ssl}");
    assert_eq!(ssl["next_attempt_at"], Value::Null, "{ssl}");
    let domain = harness
        .on_domain("domains-get", &account, &ids[0])
        .await
        .expect(200);
    assert_eq!(domain["provisioning_step"], "active", "{domain}");

    // WHEN the other is nudged (the use case the API and the edge run) THEN it is active
    let domain_id = edgecert_core::DomainId::parse(&ids[1]).unwrap();
    edgecert_core::usecases::domains::nudge(&harness.state.services, &account_id, &domain_id)
        .await
        .unwrap();
    let nudged = harness
        .on_domain("domains-get", &account, &ids[1])
        .await
        .expect(200);
    // (read without /ssl, which would catch it up by itself)
    assert_eq!(nudged["provisioning_step"], "active", "{nudged}");
}

#[tokio::test]
async fn a_cname_to_the_edge_hostname_counts_as_pointing() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-cname"));
    // Its own A record says elsewhere: only the CNAME can make it pass.
    harness
        .dns
        .add_a(&hostname, &[std::net::Ipv4Addr::new(203, 0, 113, 78)])
        .await
        .unwrap();
    harness
        .dns
        .set_cname(&hostname, EDGE_HOSTNAME)
        .await
        .unwrap();
    let created = harness.create_domain(&account, &hostname).await;

    let ssl = harness
        .on_domain("domains-nudge", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing", "{ssl}");

    // A CNAME to a name that resolves elsewhere does not.
    let elsewhere = format!("www.{}", unique_apex("nudge-cname"));
    let other_provider = format!("edge.{}", unique_apex("other-provider"));
    harness
        .dns
        .add_a(&other_provider, &[std::net::Ipv4Addr::new(203, 0, 113, 79)])
        .await
        .unwrap();
    harness
        .dns
        .set_cname(&elsewhere, &other_provider)
        .await
        .unwrap();
    let created = harness.create_domain(&account, &elsewhere).await;
    let ssl = harness
        .on_domain("domains-nudge", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_dns", "{ssl}");
}

#[tokio::test]
async fn a_nudge_on_a_domain_pointing_elsewhere_says_why_and_when_it_runs_again() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-elsewhere"));
    harness
        .dns
        .add_a(&hostname, &[std::net::Ipv4Addr::new(203, 0, 113, 77)])
        .await
        .unwrap();
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    let before = OffsetDateTime::now_utc();
    let first = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(first["provisioning_step"], "waiting_dns", "{first}");
    let error = first["error"].as_str().expect("a reason");
    assert!(
        error.contains("203.0.113.77") && error.contains(EDGE_HOSTNAME),
        "{error}"
    );
    assert_eq!(first["certificate"], Value::Null);
    let next = timestamp(&first["next_attempt_at"]);
    assert!(next > before, "the next attempt is in the future: {next}");

    // /ssl shows the same reason and time.
    let ssl = harness
        .on_domain("domains-ssl", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["error"], first["error"]);
    assert_eq!(ssl["next_attempt_at"], first["next_attempt_at"]);
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["error"], first["error"]);

    // Nudging again resets the backoff rather than growing it.
    let second = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(second["provisioning_step"], "waiting_dns");
    assert_eq!(second["error"], first["error"]);
    let again = timestamp(&second["next_attempt_at"]);
    assert!(
        again - next < time::Duration::seconds(30),
        "backoff grew from {next} to {again}"
    );

    // Once the customer fixes DNS, the next nudge moves on.
    harness.dns.clear_a(&hostname).await.unwrap();
    let fixed = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(fixed["provisioning_step"], "issuing", "{fixed}");
    assert_eq!(fixed["error"], Value::Null);
    assert!(
        !fixed["next_attempt_at"].is_null(),
        "the certificate is due now"
    );
}

#[tokio::test]
async fn a_nudge_waits_for_ownership_before_looking_at_dns() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", true).await;
    let hostname = format!("shop.{}", unique_apex("nudge-owner"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_ownership", "{ssl}");
    assert!(
        ssl["error"].as_str().unwrap().contains("TXT record"),
        "{ssl}"
    );
    assert!(!ssl["next_attempt_at"].is_null());
    assert_eq!(ssl["certificate"], Value::Null);

    // With the TXT record in place, one nudge goes through ownership and DNS.
    let record = created["ownership_verification"]["name"].as_str().unwrap();
    let token = created["ownership_verification"]["value"].as_str().unwrap();
    harness.dns.set_txt(record, token).await.unwrap();
    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing", "{ssl}");
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["ownership_verified"], true);
    harness.dns.clear_txt(record).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Isolation between accounts, and ids

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

// ---------------------------------------------------------------------------------------------
// The API Gateway emulation of the local runner

#[tokio::test]
async fn the_gateway_matches_routes_and_methods() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let bearer = format!("Bearer {}", account.api_key);

    // (`GET /` is the dashboard's page: tests/dashboard_function.rs and the browser suite.)
    for path in [
        "/v1",
        "/v1/nothing",
        "/v2/domains",
        "/v1/domains/a/b/c",
        "/v1/domains//ssl",
    ] {
        harness
            .dispatch("GET", path, Some(&bearer), b"")
            .await
            .expect_error(404, "route_not_found");
    }
    // The dashboard answers GET only.
    harness
        .dispatch("POST", "/", Some(&bearer), b"")
        .await
        .expect_error(404, "route_not_found");
    for (method, path) in [
        ("PUT", "/v1/domains"),
        ("DELETE", "/v1/domains"),
        ("POST", "/v1/limits"),
        ("PUT", "/v1/accounts"),
        ("POST", "/v1/domains/dom_00000000000000000000/ssl"),
    ] {
        harness
            .dispatch(method, path, Some(&bearer), b"")
            .await
            .expect_error(405, "method_not_allowed");
    }
    // Unmatched routes answer before authentication; matched ones need a key.
    harness
        .dispatch("GET", "/v1/nothing", None, b"")
        .await
        .expect_error(404, "route_not_found");
    for authorization in [
        None,
        Some("Bearer eck_wrong"),
        Some(account.api_key.as_str()),
    ] {
        harness
            .dispatch("GET", "/v1/limits", authorization, b"")
            .await
            .expect_error(401, "unauthorized");
    }
    let admin = format!("Bearer {}", harness.admin_key());
    harness
        .dispatch("GET", "/v1/limits", Some(&admin), b"")
        .await
        .expect_error(401, "unauthorized");
    harness
        .dispatch(
            "POST",
            "/v1/accounts",
            Some(&bearer),
            br#"{"name":"Sneaky","plan":"elite"}"#,
        )
        .await
        .expect_error(401, "unauthorized");
    let created = harness
        .dispatch(
            "POST",
            "/v1/accounts",
            Some(&admin),
            br#"{"name":"Via gateway","plan":"plus"}"#,
        )
        .await
        .expect(201);
    assert_eq!(created["plan"], "plus");
}

#[tokio::test]
async fn the_gateway_passes_path_query_and_body_to_the_handlers() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let bearer = format!("Bearer {}", account.api_key);

    let mut ids = Vec::new();
    for n in 0..3 {
        let body = format!(
            r#"{{"hostname":"shop{n}.customer-one.com","origin_url":"{}"}}"#,
            origin_url()
        );
        let created = harness
            .dispatch("POST", "/v1/domains", Some(&bearer), body.as_bytes())
            .await
            .expect(201);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    // Path parameters.
    let read = harness
        .dispatch(
            "GET",
            &format!("/v1/domains/{}", ids[1]),
            Some(&bearer),
            b"",
        )
        .await
        .expect(200);
    assert_eq!(read["hostname"], "shop1.customer-one.com");
    let ssl = harness
        .dispatch(
            "GET",
            &format!("/v1/domains/{}/ssl/", ids[1]),
            Some(&bearer),
            b"",
        )
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_dns");

    // Query strings, with a percent-encoded cursor.
    let first = harness
        .dispatch("GET", "/v1/domains?limit=2", Some(&bearer), b"")
        .await
        .expect(200);
    assert_eq!(first["domains"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    let encoded: String = cursor.bytes().map(|byte| format!("%{byte:02X}")).collect();
    let second = harness
        .dispatch(
            "GET",
            &format!("/v1/domains?cursor={encoded}&limit=2&unused=1"),
            Some(&bearer),
            b"",
        )
        .await
        .expect(200);
    assert_eq!(second["domains"][0]["id"], json!(ids[2]));
    assert_eq!(second["next_cursor"], Value::Null);
    harness
        .dispatch("GET", "/v1/domains?limit=0", Some(&bearer), b"")
        .await
        .expect_error(400, "invalid_limit");

    // Bodies: over the limit is 413, bytes that are not UTF-8 are not JSON.
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    harness
        .dispatch("POST", "/v1/domains", Some(&bearer), &over)
        .await
        .expect_error(413, "payload_too_large");
    harness
        .dispatch("POST", "/v1/domains", Some(&bearer), &[0xff, 0xfe, b'{'])
        .await
        .expect_error(400, "invalid_json");
    harness
        .dispatch("POST", "/v1/domains", Some(&bearer), b"")
        .await
        .expect_error(400, "missing_body");

    // Deleting through the gateway.
    let deleted = harness
        .dispatch(
            "DELETE",
            &format!("/v1/domains/{}", ids[0]),
            Some(&bearer),
            b"",
        )
        .await;
    assert_eq!(deleted.status, 204);
    harness
        .dispatch(
            "GET",
            &format!("/v1/domains/{}", ids[0]),
            Some(&bearer),
            b"",
        )
        .await
        .expect_error(404, "not_found");
}
