//! What `template.yaml` deploys, read the way tests and benchmarks need it.

use anyhow::Context as _;

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The names of the environment variables template.yaml gives the function built from
/// `binary`: `Globals.Function.Environment` and the function's own.
pub fn function_variables(binary: &str) -> anyhow::Result<Vec<String>> {
    let template: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).context("parsing template.yaml")?;
    let names = |variables: &serde_yaml::Value| -> Vec<String> {
        variables
            .as_mapping()
            .map(|mapping| {
                mapping
                    .keys()
                    .filter_map(|key| key.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut variables = names(&template["Globals"]["Function"]["Environment"]["Variables"]);
    let function = template["Resources"]
        .as_mapping()
        .context("template.yaml has no Resources")?
        .values()
        .find(|resource| resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .with_context(|| format!("template.yaml deploys no function from the binary {binary}"))?;
    variables.extend(names(&function["Properties"]["Environment"]["Variables"]));
    Ok(variables)
}
