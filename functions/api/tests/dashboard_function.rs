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

use std::path::{Path, PathBuf};
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
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_dashboard"));
    // No variable at all: not even the table the other functions need.
    let mut function = LambdaProcess::start(DASHBOARD_FUNCTION, &binary, &[])
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

/// The SAM CLI's venv (`integration/scripts/setup.sh` creates it; `EDGECERT_SAM_VENV` moves it).
fn sam_python() -> PathBuf {
    let venv = std::env::var_os("EDGECERT_SAM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| edgecert_integration::workspace_root().join(".venv-sam"));
    let python = venv.join("bin").join("python");
    assert!(
        python.is_file(),
        "no SAM CLI venv at {} (samtranslator transforms template.yaml): run \
         integration/scripts/setup.sh, or set EDGECERT_SAM_VENV",
        venv.display()
    );
    python
}

/// What `sam deploy` hands CloudFormation: template.yaml through the SAM transform, with each
/// function's `CodeUri` as the S3 location `sam package` would have uploaded it to.
const TRANSFORM: &str = r#"
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open(sys.argv[1]).read())
for name, resource in template["Resources"].items():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://edgecert-artifacts/%s.zip" % name
print(json.dumps(transform(template, {"EdgeHostname": "edge.example.net"}, None)))
"#;

async fn transformed_template(template: &Path) -> Value {
    let mut command = tokio::process::Command::new(sam_python());
    command
        .args(["-c", TRANSFORM])
        .arg(template)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the SAM transform finishes within 2 minutes")
        .expect("the SAM venv's python runs");
    assert!(
        output.status.success(),
        "the SAM transform failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the transform prints JSON")
}

/// The logical id a `{"Fn::Sub": "...${X.Arn}..."}` integration URI invokes.
fn invoked_function(integration: &Value) -> Option<String> {
    let uri = integration["uri"]["Fn::Sub"].as_str()?;
    let start = uri.find("functions/${")? + "functions/${".len();
    let rest = &uri[start..];
    Some(rest[..rest.find(".Arn}")?].to_owned())
}

#[tokio::test]
async fn the_transformed_template_serves_the_dashboard_without_the_authorizer() {
    let template = edgecert_integration::workspace_root().join("template.yaml");
    let deployed = transformed_template(&template).await;
    let resources = deployed["Resources"].as_object().expect("Resources");
    let (function_id, _) = resources
        .iter()
        .find(|(_, resource)| {
            resource["Type"] == "AWS::Lambda::Function"
                && resource["Metadata"]["BuildProperties"]["Binary"] == DASHBOARD_FUNCTION
        })
        .expect("a Lambda function built from the dashboard binary");
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
