//! A deployment of the transformed template, as tests stand it up: parameter values, the stack's
//! name, and the names of the resources the test created in moto, from which every intrinsic
//! function in the template is evaluated the way CloudFormation would.
//!
//! Tests read two things through it: the environment each function or container is given
//! ([`Stack::function_environment`], [`Stack::container_environment`]), and the IAM policies of
//! its role ([`Stack::principal_role`], [`Stack::role_policies`]). Both come from the same
//! evaluation, so the table and secret names a function is told are the ones its policy names.
//!
//! What cannot be evaluated is an error naming it, never a guess: an attribute whose value only
//! AWS knows must be given by the test ([`Stack::with_attribute`]).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

/// Region, account and partition of every stack here: moto's defaults.
pub const REGION: &str = "us-east-1";
/// See [`REGION`].
pub const ACCOUNT_ID: &str = "123456789012";
/// See [`REGION`].
pub const PARTITION: &str = "aws";
const URL_SUFFIX: &str = "amazonaws.com";

/// Who makes AWS calls in a deployment: a Lambda function, by the binary it runs, or a
/// container of an ECS task, by its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// The Lambda function built from this binary (`Metadata.BuildProperties.Binary`).
    LambdaBinary(String),
    /// The container of this name in an ECS task definition (its `TaskRoleArn`).
    Container(String),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::LambdaBinary(binary) => write!(f, "{binary}"),
            Principal::Container(name) => write!(f, "container {name}"),
        }
    }
}

/// The policies attached to a role.
#[derive(Debug, Clone, Default)]
pub struct RolePolicies {
    /// Inline and customer-managed policy documents, evaluated, by policy name.
    pub documents: Vec<(String, Value)>,
    /// AWS-managed policies attached by ARN: their contents are not in the template.
    pub aws_managed: Vec<String>,
}

/// A stack of the transformed template.
#[derive(Debug, Clone)]
pub struct Stack {
    template: Value,
    name: String,
    /// Every parameter's value: the test's, else the template's default.
    parameters: BTreeMap<String, Value>,
    /// Physical ids (what `Ref` returns) the test gave.
    physical_ids: HashMap<String, String>,
    /// Attribute values (`Fn::GetAtt`) the test gave.
    attributes: HashMap<(String, String), String>,
}

impl Stack {
    /// A stack called `name` of the transformed `template`, with the parameter values
    /// `parameters`; the others take their defaults. A parameter the template does not have,
    /// or one without default and without value, is an error.
    pub fn new(template: Value, name: &str, parameters: &[(&str, &str)]) -> anyhow::Result<Stack> {
        let declared = template["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (parameter, _) in parameters {
            if !declared.contains_key(*parameter) {
                bail!("the template has no parameter {parameter} (the test gives it a value)");
            }
        }
        let mut values = BTreeMap::new();
        for (parameter, declaration) in &declared {
            let given = parameters
                .iter()
                .find(|(name, _)| name == parameter)
                .map(|(_, value)| (*value).to_owned());
            let value = match given {
                Some(value) => value,
                None => match &declaration["Default"] {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map_or_else(|| item.to_string(), str::to_owned)
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::Null => {
                        bail!("parameter {parameter} has no default: the test must give it a value")
                    }
                    other => other.to_string(),
                },
            };
            if let Some(allowed) = declaration["AllowedValues"].as_array() {
                // Allowed values may be written as numbers (LogRetentionDays); CloudFormation
                // compares their text.
                let text = |item: &Value| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                if !allowed.iter().any(|item| text(item) == value) {
                    bail!("parameter {parameter}: '{value}' is not one of {allowed:?}");
                }
            }
            let kind = declaration["Type"].as_str().unwrap_or("String");
            let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                Value::Array(
                    value
                        .split(',')
                        .map(|item| Value::String(item.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(value)
            };
            values.insert(parameter.clone(), value);
        }
        Ok(Stack {
            template,
            name: name.to_owned(),
            parameters: values,
            physical_ids: HashMap::new(),
            attributes: HashMap::new(),
        })
    }

    /// What `Ref` returns for the resource `logical_id`, as the test created it (e.g. the ARN
    /// moto gave a secret).
    pub fn with_physical_id(mut self, logical_id: &str, physical_id: &str) -> Stack {
        self.physical_ids
            .insert(logical_id.to_owned(), physical_id.to_owned());
        self
    }

    /// What `Fn::GetAtt [logical_id, attribute]` returns.
    pub fn with_attribute(mut self, logical_id: &str, attribute: &str, value: &str) -> Stack {
        self.attributes.insert(
            (logical_id.to_owned(), attribute.to_owned()),
            value.to_owned(),
        );
        self
    }

    /// The stack's name (`AWS::StackName`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The transformed template.
    pub fn template(&self) -> &Value {
        &self.template
    }

    fn resources(&self) -> anyhow::Result<&Map<String, Value>> {
        self.template["Resources"]
            .as_object()
            .context("the template has no Resources")
    }

    /// The resource `logical_id`.
    pub fn resource(&self, logical_id: &str) -> anyhow::Result<&Value> {
        self.resources()?
            .get(logical_id)
            .with_context(|| format!("the template has no resource {logical_id}"))
    }

    /// The logical ids of the deployed resources of type `kind`, in template order.
    pub fn deployed_of_type(&self, kind: &str) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for (logical_id, resource) in self.resources()? {
            if resource["Type"].as_str() == Some(kind) && self.is_deployed(logical_id)? {
                found.push(logical_id.clone());
            }
        }
        Ok(found)
    }

    /// Whether the resource `logical_id` exists in this stack (its `Condition` holds).
    pub fn is_deployed(&self, logical_id: &str) -> anyhow::Result<bool> {
        match self.resource(logical_id)?["Condition"].as_str() {
            None => Ok(true),
            Some(condition) => self.condition(condition),
        }
    }

    /// The value of the template's condition `name`.
    pub fn condition(&self, name: &str) -> anyhow::Result<bool> {
        let definition = self
            .template
            .get("Conditions")
            .and_then(|conditions| conditions.get(name))
            .with_context(|| format!("the template has no condition {name}"))?;
        self.boolean(definition)
            .with_context(|| format!("evaluating condition {name}"))
    }

    fn boolean(&self, value: &Value) -> anyhow::Result<bool> {
        match self.resolve(value)? {
            Value::Bool(flag) => Ok(flag),
            Value::String(text) if text == "true" => Ok(true),
            Value::String(text) if text == "false" => Ok(false),
            other => bail!("{other} is not a condition value"),
        }
    }

    /// `value` with every intrinsic function evaluated (`AWS::NoValue` removes what holds it).
    pub fn resolve(&self, value: &Value) -> anyhow::Result<Value> {
        Ok(self.evaluate(value)?.unwrap_or(Value::Null))
    }

    /// `value` evaluated to a string (numbers and booleans as CloudFormation writes them).
    pub fn resolve_string(&self, value: &Value) -> anyhow::Result<String> {
        match self.resolve(value)? {
            Value::String(text) => Ok(text),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            other => bail!("{value} evaluates to {other}, not a string"),
        }
    }

    /// `None` for `AWS::NoValue`.
    fn evaluate(&self, value: &Value) -> anyhow::Result<Option<Value>> {
        match value {
            Value::Array(items) => {
                let mut evaluated = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(item) = self.evaluate(item)? {
                        evaluated.push(item);
                    }
                }
                Ok(Some(Value::Array(evaluated)))
            }
            Value::Object(map) => {
                if map.len() == 1 {
                    let (key, argument) = map.iter().next().context("one entry")?;
                    if key == "Ref" || key.starts_with("Fn::") || key == "Condition" {
                        return self
                            .intrinsic(key, argument)
                            .with_context(|| format!("evaluating {value}"));
                    }
                }
                let mut evaluated = Map::new();
                for (key, item) in map {
                    if let Some(item) = self.evaluate(item)? {
                        evaluated.insert(key.clone(), item);
                    }
                }
                Ok(Some(Value::Object(evaluated)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn intrinsic(&self, function: &str, argument: &Value) -> anyhow::Result<Option<Value>> {
        let text = |value: &Value| -> anyhow::Result<String> { self.resolve_string(value) };
        match function {
            "Ref" => {
                let name = argument.as_str().context("Ref takes a name")?;
                if name == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(name).map(Some)
            }
            "Condition" => {
                let name = argument.as_str().context("Condition takes a name")?;
                Ok(Some(Value::Bool(self.condition(name)?)))
            }
            "Fn::GetAtt" => {
                let (logical_id, attribute) = match argument {
                    Value::Array(parts) if parts.len() == 2 => (text(&parts[0])?, text(&parts[1])?),
                    Value::String(dotted) => {
                        let (logical_id, attribute) = dotted
                            .split_once('.')
                            .context("Fn::GetAtt takes Resource.Attribute")?;
                        (logical_id.to_owned(), attribute.to_owned())
                    }
                    _ => bail!("Fn::GetAtt takes [resource, attribute]"),
                };
                self.attribute(&logical_id, &attribute)
                    .map(|value| Some(Value::String(value)))
            }
            "Fn::Sub" => {
                let (pattern, variables) = match argument {
                    Value::String(pattern) => (pattern.clone(), Map::new()),
                    Value::Array(parts) if parts.len() == 2 => (
                        text(&parts[0])?,
                        parts[1]
                            .as_object()
                            .cloned()
                            .context("Fn::Sub's variables are not an object")?,
                    ),
                    _ => bail!("Fn::Sub takes a string or [string, variables]"),
                };
                self.substitute(&pattern, &variables)
                    .map(|value| Some(Value::String(value)))
            }
            "Fn::Join" => {
                let parts = argument
                    .as_array()
                    .context("Fn::Join takes [delimiter, list]")?;
                let [delimiter, list] = parts.as_slice() else {
                    bail!("Fn::Join takes [delimiter, list]");
                };
                let delimiter = text(delimiter)?;
                let list = self.resolve(list)?;
                let items = list.as_array().context("Fn::Join's list is not a list")?;
                let items: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(text.clone()),
                        Value::Number(number) => Ok(number.to_string()),
                        other => Err(anyhow!("Fn::Join: {other} is not a string")),
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok(Some(Value::String(items.join(&delimiter))))
            }
            "Fn::Split" => {
                let parts = argument
                    .as_array()
                    .context("Fn::Split takes [delimiter, string]")?;
                let [delimiter, source] = parts.as_slice() else {
                    bail!("Fn::Split takes [delimiter, string]");
                };
                let delimiter = text(delimiter)?;
                Ok(Some(Value::Array(
                    text(source)?
                        .split(delimiter.as_str())
                        .map(|item| Value::String(item.to_owned()))
                        .collect(),
                )))
            }
            "Fn::Select" => {
                let parts = argument
                    .as_array()
                    .context("Fn::Select takes [index, list]")?;
                let [index, list] = parts.as_slice() else {
                    bail!("Fn::Select takes [index, list]");
                };
                let index: usize = text(index)?.parse().context("Fn::Select's index")?;
                let list = self.resolve(list)?;
                list.as_array()
                    .and_then(|items| items.get(index))
                    .cloned()
                    .map(Some)
                    .with_context(|| format!("Fn::Select: no item {index} in {list}"))
            }
            "Fn::If" => {
                let parts = argument
                    .as_array()
                    .context("Fn::If takes [condition, then, else]")?;
                let [condition, when_true, when_false] = parts.as_slice() else {
                    bail!("Fn::If takes [condition, then, else]");
                };
                let condition = condition.as_str().context("Fn::If names a condition")?;
                if self.condition(condition)? {
                    self.evaluate(when_true)
                } else {
                    self.evaluate(when_false)
                }
            }
            "Fn::Equals" => {
                let parts = argument.as_array().context("Fn::Equals takes two values")?;
                let [left, right] = parts.as_slice() else {
                    bail!("Fn::Equals takes two values");
                };
                Ok(Some(Value::Bool(
                    comparable(&self.resolve(left)?) == comparable(&self.resolve(right)?),
                )))
            }
            "Fn::Not" => {
                let parts = argument.as_array().context("Fn::Not takes [condition]")?;
                let [condition] = parts.as_slice() else {
                    bail!("Fn::Not takes [condition]");
                };
                Ok(Some(Value::Bool(!self.boolean(condition)?)))
            }
            "Fn::And" | "Fn::Or" => {
                let parts = argument.as_array().context("takes a list of conditions")?;
                let values = parts
                    .iter()
                    .map(|part| self.boolean(part))
                    .collect::<anyhow::Result<Vec<bool>>>()?;
                let result = if function == "Fn::And" {
                    values.iter().all(|value| *value)
                } else {
                    values.iter().any(|value| *value)
                };
                Ok(Some(Value::Bool(result)))
            }
            "Fn::FindInMap" => {
                let parts = argument
                    .as_array()
                    .context("Fn::FindInMap takes three names")?;
                let [map, first, second] = parts.as_slice() else {
                    bail!("Fn::FindInMap takes [map, key, key]");
                };
                let (map, first, second) = (text(map)?, text(first)?, text(second)?);
                self.template["Mappings"][&map][&first]
                    .get(&second)
                    .cloned()
                    .map(Some)
                    .with_context(|| format!("Mappings has no {map}.{first}.{second}"))
            }
            other => bail!("{other} is not evaluated by this test's stack"),
        }
    }

    /// What `Ref name` returns: a parameter's value, a pseudo parameter, a resource's physical id.
    fn reference(&self, name: &str) -> anyhow::Result<Value> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        let pseudo = match name {
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_owned()),
            "AWS::Partition" => Some(PARTITION.to_owned()),
            "AWS::StackName" => Some(self.name.clone()),
            "AWS::StackId" => Some(format!(
                "arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{}/00000000-0000-4000-8000-000000000000",
                self.name
            )),
            "AWS::URLSuffix" => Some(URL_SUFFIX.to_owned()),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Value::String(value));
        }
        if name.starts_with("AWS::") {
            bail!("the pseudo parameter {name} is not evaluated by this test's stack");
        }
        self.physical_id(name).map(Value::String)
    }

    /// The physical id of the resource `logical_id`: the test's, else the name the template
    /// gives it, else one generated as CloudFormation does (`<stack>-<logical id>-<suffix>`).
    pub fn physical_id(&self, logical_id: &str) -> anyhow::Result<String> {
        if let Some(id) = self.physical_ids.get(logical_id) {
            return Ok(id.clone());
        }
        let resource = self.resource(logical_id)?;
        let kind = resource["Type"].as_str().unwrap_or_default();
        let name = |property: &str| -> anyhow::Result<String> {
            match resource["Properties"].get(property) {
                Some(value) => self.resolve_string(value),
                None => Ok(self.generated_name(logical_id)),
            }
        };
        Ok(match kind {
            "AWS::DynamoDB::Table" => name("TableName")?,
            "AWS::Lambda::Function" => name("FunctionName")?,
            "AWS::IAM::Role" => name("RoleName")?,
            "AWS::Logs::LogGroup" => name("LogGroupName")?,
            "AWS::ECR::Repository" => name("RepositoryName")?.to_lowercase(),
            "AWS::Scheduler::Schedule" => name("Name")?,
            "AWS::SNS::Topic" => format!(
                "arn:{PARTITION}:sns:{REGION}:{ACCOUNT_ID}:{}",
                name("TopicName")?
            ),
            "AWS::SQS::Queue" => format!(
                "https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT_ID}/{}",
                name("QueueName")?
            ),
            "AWS::SecretsManager::Secret" => format!(
                "arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{}-AbCdEf",
                name("Name")?
            ),
            _ => self.generated_name(logical_id),
        })
    }

    /// A name as CloudFormation generates one, stable for this stack and resource.
    fn generated_name(&self, logical_id: &str) -> String {
        // FNV-1a: a stable suffix without a hashing dependency.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.name.bytes().chain(logical_id.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!(
            "{}-{logical_id}-{:012X}",
            self.name,
            hash & 0xFFFF_FFFF_FFFF
        )
    }

    /// What `Fn::GetAtt [logical_id, attribute]` returns: the test's value, else the ones
    /// derived from the physical id for the resource types EdgeCert uses.
    pub fn attribute(&self, logical_id: &str, attribute: &str) -> anyhow::Result<String> {
        if let Some(value) = self
            .attributes
            .get(&(logical_id.to_owned(), attribute.to_owned()))
        {
            return Ok(value.clone());
        }
        let kind = self.resource(logical_id)?["Type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let id = self.physical_id(logical_id)?;
        let last = |text: &str| {
            text.rsplit([':', '/'])
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let derived = match (kind.as_str(), attribute) {
            ("AWS::DynamoDB::Table", "Arn") => Some(format!(
                "arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{id}"
            )),
            ("AWS::DynamoDB::Table", "StreamArn") => Some(format!(
                "arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{id}/stream/2025-01-01T00:00:00.000"
            )),
            ("AWS::Lambda::Function", "Arn") => Some(format!(
                "arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{id}"
            )),
            ("AWS::IAM::Role", "Arn") => {
                Some(format!("arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{id}"))
            }
            ("AWS::Logs::LogGroup", "Arn") => Some(format!(
                "arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{id}:*"
            )),
            ("AWS::ECR::Repository", "Arn") => Some(format!(
                "arn:{PARTITION}:ecr:{REGION}:{ACCOUNT_ID}:repository/{id}"
            )),
            ("AWS::ECR::Repository", "RepositoryUri") => {
                Some(format!("{ACCOUNT_ID}.dkr.ecr.{REGION}.{URL_SUFFIX}/{id}"))
            }
            ("AWS::SNS::Topic", "TopicArn") => Some(id),
            ("AWS::SNS::Topic", "TopicName") => Some(last(&id)),
            ("AWS::SQS::Queue", "QueueUrl") => Some(id),
            ("AWS::SQS::Queue", "QueueName") => Some(last(&id)),
            ("AWS::SQS::Queue", "Arn") => Some(format!(
                "arn:{PARTITION}:sqs:{REGION}:{ACCOUNT_ID}:{}",
                last(&id)
            )),
            ("AWS::SecretsManager::Secret", "Id") => Some(id),
            _ => None,
        };
        derived.with_context(|| {
            format!(
                "Fn::GetAtt {logical_id}.{attribute} ({kind}) is not evaluated by this test's stack: give it with Stack::with_attribute"
            )
        })
    }

    /// `${...}` substitution of `Fn::Sub`.
    fn substitute(&self, pattern: &str, variables: &Map<String, Value>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = pattern;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .with_context(|| format!("unclosed ${{ in {pattern}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&self.resolve_string(value)?);
            } else if let Some((logical_id, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&self.attribute(logical_id, attribute)?);
            } else {
                match self.reference(name)? {
                    Value::String(text) => out.push_str(&text),
                    other => bail!("${{{name}}} is {other}, not a string"),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The logical id of the Lambda function built from `binary`.
    pub fn lambda_function(&self, binary: &str) -> anyhow::Result<String> {
        super::function_for_binary(self.resources()?, binary)
            .map(|(logical_id, _)| logical_id.to_owned())
            .with_context(|| format!("the template deploys no function from the binary {binary}"))
    }

    /// Every deployed Lambda function built from a binary, as `(logical id, binary)`.
    pub fn lambda_binaries(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for logical_id in self.deployed_of_type("AWS::Lambda::Function")? {
            let binary = super::binary_of(self.resource(&logical_id)?).with_context(|| {
                format!("function {logical_id} names no binary (Metadata.BuildProperties.Binary)")
            })?;
            found.push((logical_id, binary.to_owned()));
        }
        Ok(found)
    }

    /// Every deployed container of an ECS task definition, as `(task definition, container)`.
    pub fn containers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for logical_id in self.deployed_of_type("AWS::ECS::TaskDefinition")? {
            let definitions = &self.resource(&logical_id)?["Properties"]["ContainerDefinitions"];
            for container in definitions
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                found.push((logical_id.clone(), self.resolve_string(&container["Name"])?));
            }
        }
        Ok(found)
    }

    /// The environment the template gives the Lambda function built from `binary` (SAM has
    /// merged `Globals` into it).
    pub fn function_environment(&self, binary: &str) -> anyhow::Result<Vec<(String, String)>> {
        let logical_id = self.lambda_function(binary)?;
        let variables = &self.resource(&logical_id)?["Properties"]["Environment"]["Variables"];
        let mut environment = Vec::new();
        for (name, value) in variables.as_object().into_iter().flatten() {
            if let Some(value) = self.evaluate(value)? {
                let value = match value {
                    Value::String(text) => text,
                    other => self.resolve_string(&other)?,
                };
                environment.push((name.clone(), value));
            }
        }
        Ok(environment)
    }

    /// The task definition and container definition of the container `name`.
    fn container(&self, name: &str) -> anyhow::Result<(String, &Value)> {
        for logical_id in self.deployed_of_type("AWS::ECS::TaskDefinition")? {
            let definitions = &self.resource(&logical_id)?["Properties"]["ContainerDefinitions"];
            for container in definitions
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if self.resolve_string(&container["Name"])? == name {
                    return Ok((logical_id, container));
                }
            }
        }
        bail!("no deployed task definition has a container {name}")
    }

    /// The environment the template gives the container `name`. Secrets the container gets
    /// from Secrets Manager or SSM (`Secrets`) are refused: their values are not in the
    /// template, and leaving them out would start it differently from a deployment.
    pub fn container_environment(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let (_, container) = self.container(name)?;
        if container.get("Secrets").is_some() {
            bail!("container {name} takes Secrets: give the test their values first");
        }
        let mut environment = Vec::new();
        for variable in container["Environment"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let Some(variable) = self.evaluate(variable)? else {
                continue;
            };
            environment.push((
                self.resolve_string(&variable["Name"])?,
                self.resolve_string(&variable["Value"])?,
            ));
        }
        Ok(environment)
    }

    /// The logical id of the IAM role `principal` acts as.
    pub fn principal_role(&self, principal: &Principal) -> anyhow::Result<String> {
        let role = match principal {
            Principal::LambdaBinary(binary) => {
                let logical_id = self.lambda_function(binary)?;
                self.resource(&logical_id)?["Properties"]["Role"].clone()
            }
            Principal::Container(name) => {
                let (logical_id, _) = self.container(name)?;
                self.resource(&logical_id)?["Properties"]["TaskRoleArn"].clone()
            }
        };
        let logical_id = match &role {
            Value::Object(map) => match map.get("Fn::GetAtt") {
                Some(Value::Array(parts)) if parts.len() == 2 && parts[1] == "Arn" => {
                    parts[0].as_str().map(str::to_owned)
                }
                Some(Value::String(dotted)) => dotted.strip_suffix(".Arn").map(str::to_owned),
                _ => None,
            },
            _ => None,
        };
        let logical_id = logical_id.with_context(|| {
            format!(
                "{principal}'s role {role} is not a role of this template (Fn::GetAtt Role.Arn)"
            )
        })?;
        if self.resource(&logical_id)?["Type"] != "AWS::IAM::Role" {
            bail!("{principal}'s role {logical_id} is not an AWS::IAM::Role");
        }
        Ok(logical_id)
    }

    /// The policies attached to the role `role` (a logical id): its inline policies, the
    /// deployed `AWS::IAM::Policy` and `AWS::IAM::ManagedPolicy` resources naming it, and the
    /// managed policies it lists by ARN.
    pub fn role_policies(&self, role: &str) -> anyhow::Result<RolePolicies> {
        let properties = self.resolve(&self.resource(role)?["Properties"])?;
        if properties.get("PermissionsBoundary").is_some() {
            bail!("role {role} has a permissions boundary, which this check does not evaluate");
        }
        let mut policies = RolePolicies::default();
        for policy in properties["Policies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = policy["PolicyName"].as_str().unwrap_or(role).to_owned();
            policies
                .documents
                .push((name, policy["PolicyDocument"].clone()));
        }
        let role_name = self.physical_id(role)?;
        for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
            for logical_id in self.deployed_of_type(kind)? {
                let properties = self.resolve(&self.resource(&logical_id)?["Properties"])?;
                let attached = properties["Roles"].as_array().is_some_and(|roles| {
                    roles
                        .iter()
                        .any(|name| name == &Value::String(role_name.clone()))
                });
                if attached {
                    policies
                        .documents
                        .push((logical_id.clone(), properties["PolicyDocument"].clone()));
                }
            }
        }
        for arn in properties["ManagedPolicyArns"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let arn = arn
                .as_str()
                .context("a managed policy ARN is not a string")?;
            if arn.starts_with(&format!("arn:{PARTITION}:iam::aws:policy/")) {
                policies.aws_managed.push(arn.to_owned());
            } else {
                // A customer-managed policy of this template attached by ARN was handled above
                // only if it also names the role; anything else is outside what is checked.
                bail!(
                    "role {role} attaches {arn}, which is not an AWS-managed policy of this template's reach"
                );
            }
        }
        Ok(policies)
    }

    /// The partition key attribute of the deployed DynamoDB table named `table_name`.
    pub fn table_partition_key(&self, table_name: &str) -> anyhow::Result<String> {
        for logical_id in self.deployed_of_type("AWS::DynamoDB::Table")? {
            if self.physical_id(&logical_id)? != table_name {
                continue;
            }
            let schema = &self.resource(&logical_id)?["Properties"]["KeySchema"];
            return schema
                .as_array()
                .into_iter()
                .flatten()
                .find(|key| key["KeyType"] == "HASH")
                .and_then(|key| key["AttributeName"].as_str())
                .map(str::to_owned)
                .with_context(|| format!("table {logical_id} has no HASH key"));
        }
        bail!("no table of the stack is named {table_name}")
    }
}

/// How `Fn::Equals` compares: strings as strings, numbers and booleans as their text.
fn comparable(value: &Value) -> Value {
    match value {
        Value::Number(number) => Value::String(number.to_string()),
        Value::Bool(flag) => Value::String(flag.to_string()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({
            "Parameters": {
                "TableName": {"Type": "String", "Default": ""},
                "Prefix": {"Type": "String", "Default": "edgecert/"},
                "Image": {"Type": "String", "Default": ""},
                "Mode": {"Type": "String", "Default": "a", "AllowedValues": ["a", "b"]},
                "Subnets": {"Type": "CommaDelimitedList", "Default": "s-1,s-2"},
                "Required": {"Type": "String"}
            },
            "Conditions": {
                "NamedTable": {"Fn::Not": [{"Fn::Equals": [{"Ref": "TableName"}, ""]}]},
                "WithImage": {"Fn::And": [{"Fn::Not": [{"Fn::Equals": [{"Ref": "Image"}, ""]}]}, {"Condition": "NamedTable"}]}
            },
            "Resources": {
                "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
                    "TableName": {"Fn::If": ["NamedTable", {"Ref": "TableName"}, {"Fn::Sub": "${AWS::StackName}-table"}]},
                    "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]
                }},
                "Queue": {"Type": "AWS::SQS::Queue"},
                "Service": {"Type": "AWS::ECS::Service", "Condition": "WithImage"},
                "Fn": {"Type": "AWS::Lambda::Function",
                    "Metadata": {"BuildProperties": {"Binary": "domains-get"}},
                    "Properties": {
                        "Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
                        "Environment": {"Variables": {
                            "TABLE": {"Ref": "Table"},
                            "SECRETS": {"Fn::Sub": ["arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${P}cert/*", {"P": {"Ref": "Prefix"}}]},
                            "FIRST_SUBNET": {"Fn::Select": [0, {"Ref": "Subnets"}]},
                            "JOINED": {"Fn::Join": ["|", {"Ref": "Subnets"}]},
                            "LITERAL": {"Fn::Sub": "${!NotReplaced}"},
                            "QUEUE_ARN": {"Fn::GetAtt": ["Queue", "Arn"]},
                            "GONE": {"Fn::If": ["WithImage", "x", {"Ref": "AWS::NoValue"}]}
                        }}
                    }},
                "FnRole": {"Type": "AWS::IAM::Role", "Properties": {
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
                    "Policies": [{"PolicyName": "Inline", "PolicyDocument": {"Statement": [
                        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}}
                    ]}}]
                }},
                "Extra": {"Type": "AWS::IAM::Policy", "Properties": {
                    "Roles": [{"Ref": "FnRole"}],
                    "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}}]}
                }}
            }
        })
    }

    #[test]
    fn parameters_must_exist_and_have_values() {
        let error = Stack::new(template(), "s", &[]).unwrap_err();
        assert!(error.to_string().contains("Required"), "{error}");
        let error = Stack::new(template(), "s", &[("Required", "x"), ("Nope", "1")]).unwrap_err();
        assert!(error.to_string().contains("Nope"), "{error}");
        let error = Stack::new(template(), "s", &[("Required", "x"), ("Mode", "c")]).unwrap_err();
        assert!(error.to_string().contains("Mode"), "{error}");
    }

    #[test]
    fn environments_are_evaluated_as_cloudformation_would() {
        let stack = Stack::new(template(), "mystack", &[("Required", "x")]).unwrap();
        let environment: BTreeMap<String, String> = stack
            .function_environment("domains-get")
            .unwrap()
            .into_iter()
            .collect();
        let expected: BTreeMap<String, String> = [
            ("TABLE", "mystack-table"),
            (
                "SECRETS",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:edgecert/cert/*",
            ),
            ("FIRST_SUBNET", "s-1"),
            ("JOINED", "s-1|s-2"),
            ("LITERAL", "${NotReplaced}"),
            (
                "QUEUE_ARN",
                "arn:aws:sqs:us-east-1:123456789012:mystack-Queue-3C3D6E0B1D5F",
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(
            environment.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for name in ["TABLE", "SECRETS", "FIRST_SUBNET", "JOINED", "LITERAL"] {
            assert_eq!(environment[name], expected[name], "{name}");
        }
        assert!(
            environment["QUEUE_ARN"]
                .starts_with("arn:aws:sqs:us-east-1:123456789012:mystack-Queue-")
        );
        assert!(!stack.is_deployed("Service").unwrap());

        let named = Stack::new(
            template(),
            "mystack",
            &[("Required", "x"), ("TableName", "t1"), ("Image", "i")],
        )
        .unwrap();
        assert!(named.is_deployed("Service").unwrap());
        assert_eq!(named.physical_id("Table").unwrap(), "t1");
        assert_eq!(named.table_partition_key("t1").unwrap(), "PK");
        let environment = named.function_environment("domains-get").unwrap();
        assert!(environment.contains(&("GONE".to_owned(), "x".to_owned())));
    }

    #[test]
    fn a_role_has_its_inline_attached_and_managed_policies() {
        let stack = Stack::new(
            template(),
            "mystack",
            &[("Required", "x"), ("TableName", "t1")],
        )
        .unwrap()
        .with_physical_id(
            "Queue",
            "https://sqs.us-east-1.amazonaws.com/123456789012/q1",
        );
        let role = stack
            .principal_role(&Principal::LambdaBinary("domains-get".to_owned()))
            .unwrap();
        assert_eq!(role, "FnRole");
        let policies = stack.role_policies(&role).unwrap();
        assert_eq!(
            policies.aws_managed,
            ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
        );
        let names: Vec<&str> = policies
            .documents
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["Inline", "Extra"]);
        assert_eq!(
            policies.documents[0].1["Statement"][0]["Resource"],
            "arn:aws:dynamodb:us-east-1:123456789012:table/t1"
        );
        assert_eq!(
            policies.documents[1].1["Statement"][0]["Resource"],
            "arn:aws:sqs:us-east-1:123456789012:q1"
        );
        let error = stack.attribute("Table", "Nope").unwrap_err();
        assert!(
            error.to_string().contains("Stack::with_attribute"),
            "{error}"
        );
    }
}
