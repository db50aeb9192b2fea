//! The route table (`src/routes.rs`) is the single source of the API's routes. These tests hold
//! the other places that name routes to it:
//!
//! - `template.yaml` (SAM) deploys exactly the table's method + path pairs, each on a Lambda
//!   whose `EDGECERT_FUNCTION` is the function the table names (every function runs the one
//!   binary of `functions/lambda`, which serves the function that variable names; that crate's
//!   tests hold the binary to the template), plus the authorizer wired as the API's default;
//! - `openapi.yaml` documents exactly the table's method + path pairs, `operationId` = function.
//!
//! The dashboard's routes (`DASHBOARD_ROUTES`) are held to the same places: deployed on the one
//! function built from `src/bin/dashboard.rs`, without the authorizer (`Auth.Authorizer: NONE`)
//! and without any AWS permission; documented in openapi.yaml under their own operation ids
//! with `security: []`. Every API route keeps the default authorizer.
//!
//! CloudFormation short forms (`!Ref`, `!GetAtt`, `!Sub`) arrive from serde_yaml 0.9 as tagged
//! values; the helpers below look through them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use edgecert_api::ROUTES;
use edgecert_api::routes::{DASHBOARD_FUNCTION, DASHBOARD_ROUTES};
use serde_yaml::Value;

/// Method, path and function (`EDGECERT_FUNCTION` / operationId) of one route.
type RouteKey = (String, String, String);

/// The variable that names the function a Lambda of the template is.
const FUNCTION_VARIABLE: &str = "EDGECERT_FUNCTION";

/// The authorizer's `EDGECERT_FUNCTION`.
const AUTHORIZER: &str = "authorizer";

/// The workers' `EDGECERT_FUNCTION`s (functions/workers); they serve no route.
const WORKERS: [&str; 2] = ["issuer", "renewer"];

/// The one Lambda binary every function runs, and the crate it is built from.
const LAMBDA_BINARY: &str = "edgecert-lambda";
const LAMBDA_CRATE: &str = "functions/lambda";

/// The methods an OpenAPI path item may hold operations for.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    crate_dir().join("..").join("..")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_yaml::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()))
}

/// The value under a CloudFormation short-form tag (`!Ref X` -> `X`), or the value itself.
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

/// The value at `path` of nested mappings, looking through tags on the way; the value found is
/// returned as written (still tagged), so references can be read from it.
fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, key| untagged(current).get(*key))
}

/// The string at `path`, tags stripped.
fn string_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    lookup(value, path).map(untagged).and_then(Value::as_str)
}

/// The logical id a `!Ref X`, `!GetAtt X.Attr`, `{Ref: X}` or `{"Fn::GetAtt": [X, Attr]}` points at.
fn referenced_resource(value: &Value) -> Option<String> {
    let first_part = |target: &Value| -> Option<String> {
        match target {
            Value::String(text) => text.split('.').next().map(str::to_owned),
            Value::Sequence(parts) => parts.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            match tag.trim_start_matches('!') {
                "Ref" | "GetAtt" => first_part(&tagged.value),
                _ => None,
            }
        }
        Value::Mapping(_) => value
            .get("Ref")
            .or_else(|| value.get("Fn::GetAtt"))
            .and_then(first_part),
        _ => None,
    }
}

/// The template's resources of `resource_type`, by logical id.
fn resources_of_type<'a>(template: &'a Value, resource_type: &str) -> BTreeMap<String, &'a Value> {
    let resources = lookup(template, &["Resources"])
        .and_then(Value::as_mapping)
        .expect("template.yaml has no Resources mapping");
    resources
        .iter()
        .filter(|(_, resource)| string_at(resource, &["Type"]) == Some(resource_type))
        .filter_map(|(id, resource)| Some((id.as_str()?.to_owned(), resource)))
        .collect()
}

/// What `template.yaml` must deploy: every API route on its function, every dashboard route on
/// the dashboard's function.
fn deployed_routes() -> BTreeSet<RouteKey> {
    ROUTES
        .iter()
        .map(|route| {
            (
                route.method.to_owned(),
                route.path.to_owned(),
                route.function.to_owned(),
            )
        })
        .chain(DASHBOARD_ROUTES.iter().map(|route| {
            (
                route.method.to_owned(),
                route.path.to_owned(),
                DASHBOARD_FUNCTION.to_owned(),
            )
        }))
        .collect()
}

/// What `openapi.yaml` must document: every API route with its function as operation id,
/// every dashboard route with its own.
fn documented_routes() -> BTreeSet<RouteKey> {
    ROUTES
        .iter()
        .map(|route| {
            (
                route.method.to_owned(),
                route.path.to_owned(),
                route.function.to_owned(),
            )
        })
        .chain(DASHBOARD_ROUTES.iter().map(|route| {
            (
                route.method.to_owned(),
                route.path.to_owned(),
                route.operation.to_owned(),
            )
        }))
        .collect()
}

/// Whether a method + path is a dashboard route.
fn is_dashboard_route(method: &str, path: &str) -> bool {
    DASHBOARD_ROUTES
        .iter()
        .any(|route| route.method == method && route.path == path)
}

fn describe(routes: &BTreeSet<&RouteKey>) -> String {
    routes
        .iter()
        .fold(String::new(), |mut text, (method, path, function)| {
            let _ = write!(text, "\n      {method} {path} -> {function}");
            text
        })
}

/// What `actual` (read from `source`) lacks and has beyond `expected` (from the route table),
/// as problem lines.
fn route_table_differences(
    source: &str,
    expected: &BTreeSet<RouteKey>,
    actual: &BTreeSet<RouteKey>,
) -> Vec<String> {
    let missing: BTreeSet<&RouteKey> = expected.difference(actual).collect();
    let extra: BTreeSet<&RouteKey> = actual.difference(expected).collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "routes of ROUTES (src/routes.rs) missing from {source} (method path -> function):{}",
            describe(&missing)
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "routes in {source} that ROUTES (src/routes.rs) does not have:{}",
            describe(&extra)
        ));
    }
    problems
}

/// Fails with every problem found in `source`, one per line.
fn assert_no_problems(source: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{source} is out of step with the route table:\n  {}",
        problems.join("\n  ")
    );
}

/// One `AWS::Serverless::Function` of the template, as far as these tests care.
struct TemplateFunction {
    logical_id: String,
    /// Its `EDGECERT_FUNCTION`.
    function: Option<String>,
    binary: Option<String>,
    build_method: Option<String>,
    code_uri: Option<String>,
    /// Each `HttpApi` event.
    http_events: Vec<HttpEvent>,
    /// Whether the function declares `Policies`.
    has_policies: bool,
}

/// One `HttpApi` event of a function.
#[derive(Debug)]
struct HttpEvent {
    method: String,
    path: String,
    /// The logical id its `ApiId` references.
    api: Option<String>,
    /// `Auth.Authorizer`, when the event overrides the API's default authorizer.
    authorizer: Option<String>,
}

fn template_functions(template: &Value) -> Vec<TemplateFunction> {
    let global_code_uri = string_at(template, &["Globals", "Function", "CodeUri"]);
    resources_of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(logical_id, resource)| {
            let events = lookup(resource, &["Properties", "Events"])
                .map(untagged)
                .and_then(Value::as_mapping);
            let http_events = events
                .into_iter()
                .flat_map(|events| events.values())
                .filter(|event| string_at(event, &["Type"]) == Some("HttpApi"))
                .map(|event| HttpEvent {
                    method: string_at(event, &["Properties", "Method"])
                        .unwrap_or("<no Method>")
                        .to_owned(),
                    path: string_at(event, &["Properties", "Path"])
                        .unwrap_or("<no Path>")
                        .to_owned(),
                    api: lookup(event, &["Properties", "ApiId"]).and_then(referenced_resource),
                    authorizer: string_at(event, &["Properties", "Auth", "Authorizer"])
                        .map(str::to_owned),
                })
                .collect();
            TemplateFunction {
                function: string_at(
                    resource,
                    &["Properties", "Environment", "Variables", FUNCTION_VARIABLE],
                )
                .map(str::to_owned),
                binary: string_at(resource, &["Metadata", "BuildProperties", "Binary"])
                    .map(str::to_owned),
                build_method: string_at(resource, &["Metadata", "BuildMethod"]).map(str::to_owned),
                code_uri: string_at(resource, &["Properties", "CodeUri"])
                    .or(global_code_uri)
                    .map(str::to_owned),
                has_policies: lookup(resource, &["Properties", "Policies"]).is_some(),
                logical_id,
                http_events,
            }
        })
        .collect()
}

/// Whether a `CodeUri` (relative to the template) is the one Lambda binary's crate.
fn is_the_lambda_crate(code_uri: &str) -> bool {
    let resolve = |path: PathBuf| path.canonicalize().ok();
    resolve(workspace_root().join(code_uri))
        .is_some_and(|dir| Some(dir) == resolve(workspace_root().join(LAMBDA_CRATE)))
}

#[test]
fn template_deploys_exactly_the_route_table() {
    let template = read_yaml(&workspace_root().join("template.yaml"));
    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    let functions = template_functions(&template);
    assert!(
        !functions.is_empty(),
        "template.yaml has no AWS::Serverless::Function"
    );

    let mut problems = Vec::new();
    let mut deployed = BTreeSet::new();
    let mut names = BTreeMap::<String, Vec<String>>::new();
    for function in &functions {
        let id = &function.logical_id;
        if function.build_method.as_deref() != Some("rust-cargolambda") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {:?}, expected rust-cargolambda",
                function.build_method
            ));
        }
        if function.binary.as_deref() != Some(LAMBDA_BINARY) {
            problems.push(format!(
                "{id}: Metadata.BuildProperties.Binary is {:?}, expected {LAMBDA_BINARY}",
                function.binary
            ));
        }
        if !function
            .code_uri
            .as_deref()
            .is_some_and(is_the_lambda_crate)
        {
            problems.push(format!(
                "{id}: CodeUri {:?} is not {LAMBDA_CRATE}",
                function.code_uri
            ));
        }
        let Some(name) = &function.function else {
            problems.push(format!(
                "{id}: no Environment.Variables.{FUNCTION_VARIABLE}"
            ));
            continue;
        };
        names.entry(name.clone()).or_default().push(id.clone());
        for HttpEvent {
            method,
            path,
            api,
            authorizer,
        } in &function.http_events
        {
            if !api.as_ref().is_some_and(|api| apis.contains_key(api)) {
                problems.push(format!("{id}: the {method} {path} event's ApiId ({api:?}) is not a Ref to an AWS::Serverless::HttpApi"));
            }
            // The dashboard is public: the page must load before anyone has typed a key. Every
            // API route keeps the API's default authorizer.
            match (is_dashboard_route(method, path), authorizer.as_deref()) {
                (true, Some("NONE")) | (false, None) => {}
                (true, other) => problems.push(format!(
                    "{id}: the dashboard route {method} {path} needs Auth.Authorizer NONE, has {other:?}"
                )),
                (false, Some(other)) => problems.push(format!(
                    "{id}: the API route {method} {path} overrides the default authorizer with {other}"
                )),
            }
            deployed.insert((method.clone(), path.clone(), name.clone()));
        }
        if name == DASHBOARD_FUNCTION && function.has_policies {
            problems.push(format!(
                "{id}: the dashboard function serves files from its binary and needs no Policies"
            ));
        }
    }
    for (name, ids) in &names {
        if ids.len() > 1 {
            problems.push(format!(
                "{FUNCTION_VARIABLE} {name} is deployed by several functions: {}",
                ids.join(", ")
            ));
        }
    }
    let known: BTreeSet<&str> = ROUTES
        .iter()
        .map(|route| route.function)
        .chain([AUTHORIZER, DASHBOARD_FUNCTION])
        .chain(WORKERS)
        .collect();
    for name in names.keys().filter(|name| !known.contains(name.as_str())) {
        problems.push(format!(
            "{FUNCTION_VARIABLE} {name} is neither a route's function, the dashboard's, the authorizer nor a worker"
        ));
    }
    problems.extend(route_table_differences(
        "template.yaml",
        &deployed_routes(),
        &deployed,
    ));
    assert_no_problems("template.yaml", &problems);
}

#[test]
fn template_wires_the_authorizer_as_the_default() {
    let template = read_yaml(&workspace_root().join("template.yaml"));
    let functions = template_functions(&template);
    let authorizers: Vec<&TemplateFunction> = functions
        .iter()
        .filter(|function| function.function.as_deref() == Some(AUTHORIZER))
        .collect();
    let [authorizer] = authorizers.as_slice() else {
        panic!(
            "template.yaml needs exactly one function with {FUNCTION_VARIABLE} {AUTHORIZER}, found {}",
            authorizers.len()
        );
    };
    assert!(
        authorizer.http_events.is_empty(),
        "{} (the authorizer) must not serve routes itself: {:?}",
        authorizer.logical_id,
        authorizer.http_events
    );

    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    assert!(
        !apis.is_empty(),
        "template.yaml has no AWS::Serverless::HttpApi"
    );
    for (api_id, api) in apis {
        let default =
            string_at(api, &["Properties", "Auth", "DefaultAuthorizer"]).unwrap_or_else(|| {
                panic!("{api_id}: no Auth.DefaultAuthorizer, so routes would be open")
            });
        let config =
            lookup(api, &["Properties", "Auth", "Authorizers", default]).unwrap_or_else(|| {
                panic!("{api_id}: DefaultAuthorizer {default} is not among Auth.Authorizers")
            });
        let target = lookup(config, &["FunctionArn"]).and_then(referenced_resource);
        assert_eq!(
            target.as_deref(),
            Some(authorizer.logical_id.as_str()),
            "{api_id}: {default}.FunctionArn must be the authorizer function's Arn"
        );
        assert_eq!(
            string_at(config, &["AuthorizerPayloadFormatVersion"]),
            Some("2.0"),
            "{api_id}: {default} payload format"
        );
        assert_eq!(
            lookup(config, &["EnableSimpleResponses"])
                .map(untagged)
                .and_then(Value::as_bool),
            Some(true),
            "{api_id}: {default} must use simple responses (src/lambda.rs answers isAuthorized + context)"
        );
        let headers: Vec<&str> = lookup(config, &["Identity", "Headers"])
            .map(untagged)
            .and_then(Value::as_sequence)
            .map(|headers| headers.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            headers
                .iter()
                .any(|header| header.eq_ignore_ascii_case("authorization")),
            "{api_id}: {default}'s identity source must be the Authorization header, got {headers:?}"
        );
    }
}

#[test]
fn openapi_documents_exactly_the_route_table() {
    let document = read_yaml(&crate_dir().join("openapi.yaml"));
    assert!(
        string_at(&document, &["openapi"]).is_some_and(|version| version.starts_with("3.1")),
        "openapi.yaml must be an OpenAPI 3.1 document"
    );
    let paths = lookup(&document, &["paths"])
        .and_then(Value::as_mapping)
        .expect("openapi.yaml has no paths mapping");
    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap_or("<non-string path>");
        for method in OPENAPI_METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let method = method.to_ascii_uppercase();
            // An empty `security` list opens an operation to callers without a key: exactly
            // the dashboard's.
            let open = lookup(operation, &["security"])
                .and_then(Value::as_sequence)
                .is_some_and(Vec::is_empty);
            if open != is_dashboard_route(&method, path) {
                problems.push(format!(
                    "{method} {path}: `security: []` must be set on the dashboard's routes and only there"
                ));
            }
            match string_at(operation, &["operationId"]) {
                Some(operation_id) => {
                    documented.insert((method, path.to_owned(), operation_id.to_owned()));
                }
                None => problems.push(format!("{method} {path} has no operationId")),
            }
        }
    }
    problems.extend(route_table_differences(
        "openapi.yaml",
        &documented_routes(),
        &documented,
    ));
    assert_no_problems("openapi.yaml", &problems);
}
