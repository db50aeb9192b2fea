//! template.yaml and the one binary agree: every function of the template is built from this
//! crate in one build (the same CodeUri and Metadata, so `sam build` compiles once and copies
//! the artifact), names a function the binary serves, and every function the binary serves is
//! deployed exactly once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgecert_lambda::{FUNCTION_VARIABLE, LambdaFunction};
use serde_yaml::Value;

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// The value under a CloudFormation short-form tag (`!Ref X` -> `X`), or the value itself.
fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

#[test]
fn every_function_is_one_build_of_this_crate_serving_a_function_it_knows() {
    let template = template();
    let code_uri = template["Globals"]["Function"]["CodeUri"].as_str();
    assert_eq!(
        code_uri,
        Some("functions/lambda"),
        "Globals.Function.CodeUri is this crate"
    );
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut deployed = BTreeMap::<String, Vec<String>>::new();
    let mut metadata = BTreeMap::<String, Vec<String>>::new();
    for (id, resource) in resources {
        if untagged(&resource["Type"]).as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap_or_default().to_owned();
        let properties = &resource["Properties"];
        assert!(
            properties.get("CodeUri").is_none() && properties.get("Runtime").is_none(),
            "{id} sets its own CodeUri or Runtime: it would be a build of its own"
        );
        metadata
            .entry(serde_yaml::to_string(&resource["Metadata"]).expect("Metadata serialises"))
            .or_default()
            .push(id.clone());
        let name = properties["Environment"]["Variables"][FUNCTION_VARIABLE]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no {FUNCTION_VARIABLE}"));
        LambdaFunction::from_name(name).unwrap_or_else(|error| panic!("{id}: {error}"));
        deployed.entry(name.to_owned()).or_default().push(id);
    }
    assert_eq!(
        metadata.len(),
        1,
        "every function needs the same Metadata (one build): {metadata:#?}"
    );
    let metadata = metadata.keys().next().expect("one Metadata");
    assert!(
        metadata.contains("rust-cargolambda") && metadata.contains("Binary: edgecert-lambda"),
        "{metadata}"
    );
    for name in LambdaFunction::names() {
        match deployed.get(name).map(Vec::as_slice) {
            Some([_]) => {}
            Some(ids) => panic!("{name} is deployed by several functions: {ids:?}"),
            None => panic!("template.yaml deploys no function with {FUNCTION_VARIABLE}: {name}"),
        }
    }
    assert_eq!(deployed.len(), LambdaFunction::names().count());
}
