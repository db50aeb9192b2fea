//! What `template.yaml` deploys, read the way tests and benchmarks need it.
//!
//! [`function_variables`] reads the template as written (fast, no tools). [`sam`] runs the SAM
//! transform, and [`stack`] evaluates the transformed template for a test's deployment: the
//! environment each function is given and the IAM policies of its role.

pub mod sam;
pub mod stack;

use anyhow::Context as _;
use serde_json::{Map, Value};

pub use sam::transformed_template;
pub use stack::{Principal, Stack};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The binary a function resource is built from (`Metadata.BuildProperties.Binary`), in the
/// template as written and as transformed.
pub fn binary_of(resource: &Value) -> Option<&str> {
    resource["Metadata"]["BuildProperties"]["Binary"].as_str()
}

/// The function resource of `resources` built from `binary`, as `(logical id, resource)`.
pub fn function_for_binary<'a>(
    resources: &'a Map<String, Value>,
    binary: &str,
) -> Option<(&'a str, &'a Value)> {
    resources
        .iter()
        .find(|(_, resource)| binary_of(resource) == Some(binary))
        .map(|(logical_id, resource)| (logical_id.as_str(), resource))
}

/// The names of the environment variables template.yaml gives the function built from
/// `binary`: `Globals.Function.Environment` and the function's own.
pub fn function_variables(binary: &str) -> anyhow::Result<Vec<String>> {
    let template: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).context("parsing template.yaml")?;
    // As JSON, so one lookup serves the template as written and as transformed; YAML tags
    // (`!Ref`) become one-key objects, which the lookups here never read.
    let template: Value =
        serde_json::to_value(&template).context("reading template.yaml as JSON")?;
    let names = |variables: &Value| -> Vec<String> {
        variables
            .as_object()
            .map(|mapping| mapping.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut variables = names(&template["Globals"]["Function"]["Environment"]["Variables"]);
    let resources = template["Resources"]
        .as_object()
        .context("template.yaml has no Resources")?;
    let (_, function) = function_for_binary(resources, binary)
        .with_context(|| format!("template.yaml deploys no function from the binary {binary}"))?;
    variables.extend(names(&function["Properties"]["Environment"]["Variables"]));
    Ok(variables)
}
