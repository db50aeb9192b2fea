//! The event files themselves: one for every route, and none stale.

use std::collections::HashSet;

use edgecert_api::routes::DASHBOARD_ROUTES;
use edgecert_api::{Access, ROUTES, routes};
use serde_json::{Value, json};

use crate::harness::{ACCOUNT_PLACEHOLDER, ApiCall, FIXTURES};

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
