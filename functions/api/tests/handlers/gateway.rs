//! The API Gateway emulation of the local runner: routes, methods, what reaches a handler.

use edgecert_api::request::MAX_BODY_BYTES;
use serde_json::{Value, json};

use crate::harness::{Harness, origin_url};

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
