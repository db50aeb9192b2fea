//! The dashboard as AWS deploys it:
//!
//! - the `dashboard` Lambda binary, run against the Runtime API emulator with no configuration
//!   at all (it needs no table, key or AWS client), answers the real API Gateway events in
//!   `events/dashboard-*.json` with the page and its assets, gzip-compressed and base64-encoded
//!   as API Gateway expects binary bodies;
//! - template.yaml, transformed by the SAM translator (the `samtranslator` of the SAM CLI's venv,
//!   offline) into the CloudFormation that is deployed, routes `GET /` and
//!   `GET /assets/{proxy+}` of the HTTP API to that function without the authorizer, keeps the
//!   authorizer on every API route, and gives the function no permission beyond its logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::time::Duration;

use base64::Engine as _;
use edgecert_api::ROUTES;
use edgecert_api::routes::{DASHBOARD_FUNCTION, DASHBOARD_ROUTES};
use edgecert_integration::LambdaProcess;
use serde_json::Value;

const PAGE_EVENT: &str = include_str!("../../../events/dashboard-page.json");
const ASSET_EVENT: &str = include_str!("../../../events/dashboard-asset.json");

/// A Lambda proxy response as API Gateway reads it: status, headers, and the body bytes.
fn read_response(response: &Value) -> (u64, serde_json::Map<String, Value>, Vec<u8>) {
    let status = response["statusCode"].as_u64().expect("a statusCode");
    let headers = response["headers"].as_object().cloned().unwrap_or_default();
    let body = response["body"].as_str().unwrap_or_default();
    let bytes = if response["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("a base64 body")
    } else {
        body.as_bytes().to_vec()
    };
    (status, headers, bytes)
}

#[tokio::test]
async fn the_dashboard_binary_answers_its_events_without_any_configuration() {
    let binary = edgecert_integration::lambda_binary::lambda_binary();
    // No variable but the one naming the function: not even the table the others need.
    let environment = [(
        edgecert_integration::template::FUNCTION_VARIABLE.to_owned(),
        DASHBOARD_FUNCTION.to_owned(),
    )];
    let mut function = LambdaProcess::start(DASHBOARD_FUNCTION, &binary, &environment)
        .await
        .unwrap_or_else(|error| panic!("the dashboard function starts: {error:#}"));
    let dashboard = edgecert_dashboard::dashboard();

    let page: Value = serde_json::from_str(PAGE_EVENT).unwrap();
    let response = function
        .invoke_with_timeout(&page, Duration::from_secs(30))
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let (status, headers, body) = read_response(&response);
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["isBase64Encoded"], true, "binary bodies go base64");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(
        headers["content-security-policy"],
        edgecert_dashboard::CONTENT_SECURITY_POLICY
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    // The same bytes the local runner serves.
    assert_eq!(body, dashboard.respond("/", Some("gzip")).into_body());

    let version = dashboard.version();
    let asset: Value =
        serde_json::from_str(&ASSET_EVENT.replace("version_placeholder", version)).unwrap();
    let response = function
        .invoke_with_timeout(&asset, Duration::from_secs(30))
        .await
        .unwrap()
        .into_response()
        .unwrap();
    let (status, headers, body) = read_response(&response);
    assert_eq!(status, 200, "{response}");
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let path = format!("/assets/{version}/app.js");
    assert_eq!(body, dashboard.respond(&path, Some("gzip")).into_body());

    // The event as written names no real version: another build's asset is not served.
    let stale: Value = serde_json::from_str(ASSET_EVENT).unwrap();
    let response = function
        .invoke_with_timeout(&stale, Duration::from_secs(30))
        .await
        .unwrap()
        .into_response()
        .unwrap();
    assert_eq!(read_response(&response).0, 404, "{response}");
}

// ---------------------------------------------------------------------------------------------
// The transformed template

/// The logical id a `{"Fn::Sub": "...${X.Arn}..."}` integration URI invokes.
fn invoked_function(integration: &Value) -> Option<String> {
    let uri = integration["uri"]["Fn::Sub"].as_str()?;
    let start = uri.find("functions/${")? + "functions/${".len();
    let rest = &uri[start..];
    Some(rest[..rest.find(".Arn}")?].to_owned())
}

#[tokio::test]
async fn the_transformed_template_serves_the_dashboard_without_the_authorizer() {
    let deployed =
        tokio::task::spawn_blocking(edgecert_integration::template::transformed_template)
            .await
            .expect("the transform task completes")
            .expect("template.yaml transforms (SAM venv)");
    let resources = deployed["Resources"].as_object().expect("Resources");
    let (function_id, _) = resources
        .iter()
        .find(|(_, resource)| {
            resource["Type"] == "AWS::Lambda::Function"
                && edgecert_integration::template::binary_of(resource) == Some(DASHBOARD_FUNCTION)
        })
        .expect("a Lambda function that is the dashboard");
    let paths = deployed["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]
        .as_object()
        .expect("the HTTP API's OpenAPI body has paths");

    for route in DASHBOARD_ROUTES {
        let operation = &paths
            .get(route.path)
            .unwrap_or_else(|| panic!("the HTTP API has no path {}", route.path))
            [route.method.to_ascii_lowercase()];
        let integration = &operation["x-amazon-apigateway-integration"];
        assert_eq!(
            invoked_function(integration).as_deref(),
            Some(function_id.as_str()),
            "{} {} -> {integration}",
            route.method,
            route.path
        );
        assert_eq!(integration["payloadFormatVersion"], "2.0");
        assert_eq!(
            operation["security"],
            serde_json::json!([{ "NONE": [] }]),
            "{} {} must not run the authorizer",
            route.method,
            route.path
        );
    }
    for route in ROUTES {
        let operation = &paths[route.path][route.method.to_ascii_lowercase()];
        assert_eq!(
            operation["security"],
            serde_json::json!([{ "ApiKeyAuthorizer": [] }]),
            "{} {} keeps the authorizer",
            route.method,
            route.path
        );
    }

    // Permissions for API Gateway to invoke it, one per route, and a role with nothing but
    // CloudWatch Logs.
    let permissions = resources
        .values()
        .filter(|resource| {
            resource["Type"] == "AWS::Lambda::Permission"
                && resource["Properties"]["FunctionName"]["Ref"] == function_id.as_str()
        })
        .count();
    assert_eq!(permissions, DASHBOARD_ROUTES.len());
    let role = &resources[&format!("{function_id}Role")]["Properties"];
    assert_eq!(
        role["ManagedPolicyArns"],
        serde_json::json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
    );
    assert!(role.get("Policies").is_none(), "{role}");
}
