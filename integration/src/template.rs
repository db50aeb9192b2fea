//! What `template.yaml` deploys, read the way tests and benchmarks need it.
//!
//! [`function_variables`] reads the template as written (fast, no tools). [`sam`] runs the SAM
//! transform, and [`stack`] evaluates the transformed template for a test's deployment: the
//! environment each function is given and the IAM policies of its role. [`rule_refusals`] and
//! [`StackContext`] answer the two questions CloudFormation answers with parameter values:
//! which `Rules` refuse them, and which names a stack's resources get.
//!
//! Every Lambda function runs the one binary of `functions/lambda`; a function is known by its
//! `EDGECERT_FUNCTION` variable (a route's function, `authorizer`, `dashboard`, `issuer` or
//! `renewer`), which this module calls its binary.

pub mod sam;
pub mod stack;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

pub use sam::transformed_template;
pub use stack::{Principal, Stack};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The variable naming the function each Lambda of the template is (functions/lambda).
pub const FUNCTION_VARIABLE: &str = "EDGECERT_FUNCTION";

/// How long the SAM transform may take (a Python start and samtranslator; seconds normally).
const TRANSFORM_TIMEOUT: Duration = Duration::from_secs(120);

/// The function a resource is (its `EDGECERT_FUNCTION`), in the template as written and as
/// transformed.
pub fn binary_of(resource: &Value) -> Option<&str> {
    resource["Properties"]["Environment"]["Variables"][FUNCTION_VARIABLE].as_str()
}

/// The function resource of `resources` that is `binary`, as `(logical id, resource)`.
pub fn function_for_binary<'a>(
    resources: &'a Map<String, Value>,
    binary: &str,
) -> Option<(&'a str, &'a Value)> {
    resources
        .iter()
        .find(|(_, resource)| binary_of(resource) == Some(binary))
        .map(|(logical_id, resource)| (logical_id.as_str(), resource))
}

/// The names of the environment variables template.yaml gives the function `binary`:
/// `Globals.Function.Environment` and the function's own, `EDGECERT_FUNCTION` included.
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

/// The SAM CLI's venv: `EDGECERT_SAM_VENV`, or `.venv-sam` in the workspace (as the setup
/// script makes it).
fn sam_venv() -> PathBuf {
    std::env::var_os("EDGECERT_SAM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv-sam"))
}

/// template.yaml as the SAM transform expands it: the CloudFormation template (JSON, intrinsic
/// functions in their long forms) that `sam deploy` would hand CloudFormation. Made once per
/// process by samtranslator from the SAM CLI's venv (integration/scripts/sam-transform.py),
/// offline.
pub fn sam_transformed() -> anyhow::Result<&'static Value> {
    static TRANSFORMED: OnceLock<Result<Value, String>> = OnceLock::new();
    TRANSFORMED
        .get_or_init(|| transform().map_err(|error| format!("{error:#}")))
        .as_ref()
        .map_err(|error| anyhow::anyhow!("{error}"))
}

fn transform() -> anyhow::Result<Value> {
    let root = crate::workspace_root();
    let python = sam_venv().join("bin").join("python");
    if !python.exists() {
        bail!(
            "{} does not exist: run integration/scripts/setup.sh (or set EDGECERT_SAM_VENV)",
            python.display()
        );
    }
    let output_file = tempfile::NamedTempFile::new().context("a file for the transform")?;
    let mut child = Command::new(&python)
        .arg(root.join("integration/scripts/sam-transform.py"))
        .arg(root.join("template.yaml"))
        .arg("EdgeHostname=edge.example.net")
        .stdout(
            output_file
                .reopen()
                .context("reopening the transform's file")?,
        )
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the SAM transform")? {
            break status;
        }
        if started.elapsed() > TRANSFORM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the SAM transform of template.yaml took over {TRANSFORM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
    }
    if !status.success() {
        bail!("the SAM transform of template.yaml failed ({status}):\n{stderr}");
    }
    let text = std::fs::read_to_string(output_file.path()).context("reading the transform")?;
    serde_json::from_str(&text).context("the SAM transform's output is not JSON")
}

/// Parameter values as a deploy gives them: `given`, and every other parameter's default.
pub fn parameter_values(template: &Value, given: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template["Parameters"]
        .as_object()
        .map(|parameters| {
            parameters
                .iter()
                .filter_map(|(name, parameter)| {
                    let default = match &parameter["Default"] {
                        Value::String(text) => text.clone(),
                        Value::Number(number) => number.to_string(),
                        _ => return None,
                    };
                    Some((name.clone(), default))
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in given {
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    values
}

/// What CloudFormation's `Rules` say about `parameters`: the `AssertDescription` of every
/// assertion that refuses them (empty when the stack may be created). Supports what rules may
/// use on plain parameters: `Fn::And`, `Fn::Or`, `Fn::Not`, `Fn::Equals`, `Fn::Contains`,
/// `Ref`, literals.
pub fn rule_refusals(
    template: &Value,
    parameters: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let mut refusals = Vec::new();
    let Some(rules) = template["Rules"].as_object() else {
        return Ok(refusals);
    };
    for (name, rule) in rules {
        let applies = match rule.get("RuleCondition") {
            None => true,
            Some(condition) => rule_bool(condition, parameters)
                .with_context(|| format!("rule {name}: RuleCondition"))?,
        };
        if !applies {
            continue;
        }
        for assertion in rule["Assertions"].as_array().into_iter().flatten() {
            if !rule_bool(&assertion["Assert"], parameters)
                .with_context(|| format!("rule {name}: Assert"))?
            {
                refusals.push(format!(
                    "{name}: {}",
                    assertion["AssertDescription"]
                        .as_str()
                        .unwrap_or("(no description)")
                ));
            }
        }
    }
    Ok(refusals)
}

fn rule_bool(value: &Value, parameters: &BTreeMap<String, String>) -> anyhow::Result<bool> {
    let (function, arguments) = single_key(value)?;
    let list = || arguments.as_array().context("expects a list");
    match function {
        "Fn::And" => list()?
            .iter()
            .try_fold(true, |all, item| Ok(all & rule_bool(item, parameters)?)),
        "Fn::Or" => list()?
            .iter()
            .try_fold(false, |any, item| Ok(any | rule_bool(item, parameters)?)),
        "Fn::Not" => Ok(!rule_bool(
            list()?.first().context("Fn::Not of nothing")?,
            parameters,
        )?),
        "Fn::Equals" => match list()?.as_slice() {
            [left, right] => Ok(rule_value(left, parameters)? == rule_value(right, parameters)?),
            _ => bail!("Fn::Equals takes two values"),
        },
        "Fn::Contains" => match list()?.as_slice() {
            [Value::Array(candidates), needle] => {
                let needle = rule_value(needle, parameters)?;
                candidates.iter().try_fold(false, |found, candidate| {
                    Ok(found | (rule_value(candidate, parameters)? == needle))
                })
            }
            _ => bail!("Fn::Contains takes a list and a value"),
        },
        other => bail!("{other} is not supported by this evaluator"),
    }
}

fn rule_value(value: &Value, parameters: &BTreeMap<String, String>) -> anyhow::Result<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Object(_) => match single_key(value)? {
            ("Ref", Value::String(name)) => parameters
                .get(name)
                .cloned()
                .with_context(|| format!("Ref {name}: no such parameter value")),
            (other, _) => bail!("{other} is not supported in a rule value"),
        },
        other => bail!("{other} is not a rule value"),
    }
}

fn single_key(value: &Value) -> anyhow::Result<(&str, &Value)> {
    match value
        .as_object()
        .map(|object| object.iter().collect::<Vec<_>>())
    {
        Some(entries) if entries.len() == 1 => Ok((entries[0].0.as_str(), entries[0].1)),
        _ => bail!("{value} is not an intrinsic function"),
    }
}

/// Where a stack puts its resources: the pseudo parameters that stay the same between two
/// stacks in one account and region, and the one that differs.
pub struct StackContext<'a> {
    /// `AWS::StackName`.
    pub stack_name: &'a str,
    /// The parameter values (the same for every stack compared).
    pub parameters: &'a BTreeMap<String, String>,
}

impl StackContext<'_> {
    /// `value` as a string in this stack. A reference to a resource (`Ref`, `Fn::GetAtt`, or
    /// either inside `Fn::Sub`) reads `<stack>/<resource>[.<attribute>]`: unique to the stack,
    /// as CloudFormation's generated names are.
    pub fn evaluate(&self, value: &Value, template: &Value) -> anyhow::Result<String> {
        match value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            Value::Object(_) => {
                let (function, arguments) = single_key(value)?;
                match (function, arguments) {
                    ("Ref", Value::String(name)) => self.reference(name, template),
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                        Ok(format!("{}/{}", self.stack_name, parts.join(".")))
                    }
                    ("Fn::Sub", Value::String(text)) => self.substitute(text, template),
                    ("Fn::Join", Value::Array(parts)) => match parts.as_slice() {
                        [Value::String(separator), Value::Array(items)] => Ok(items
                            .iter()
                            .map(|item| self.evaluate(item, template))
                            .collect::<anyhow::Result<Vec<_>>>()?
                            .join(separator)),
                        _ => bail!("Fn::Join takes a separator and a list"),
                    },
                    (other, _) => bail!("{other} is not supported by this evaluator: {value}"),
                }
            }
            other => bail!("{other} cannot be a name"),
        }
    }

    fn reference(&self, name: &str, template: &Value) -> anyhow::Result<String> {
        Ok(match name {
            "AWS::StackName" => self.stack_name.to_owned(),
            "AWS::Region" => "us-east-1".to_owned(),
            "AWS::AccountId" => "123456789012".to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            parameter if template["Parameters"].get(parameter).is_some() => self
                .parameters
                .get(parameter)
                .cloned()
                .with_context(|| format!("no value for parameter {parameter}"))?,
            resource => format!("{}/{resource}", self.stack_name),
        })
    }

    fn substitute(&self, text: &str, template: &Value) -> anyhow::Result<String> {
        let mut result = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            result.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .with_context(|| format!("unclosed ${{ in {text}"))?;
            let name = &rest[start + 2..start + end];
            if name.contains('.') && !name.starts_with("AWS::") {
                result.push_str(&format!("{}/{name}", self.stack_name));
            } else {
                result.push_str(&self.reference(name, template)?);
            }
            rest = &rest[start + end + 1..];
        }
        result.push_str(rest);
        Ok(result)
    }
}
