//! IAM proven by tests: every AWS call a function made in a test (recorded by
//! [`AwsRecorder`](crate::AwsRecorder)) checked against that function's policies as the SAM
//! transform expands them, and the policy statements no call needed.
//!
//! moto grants everything, so a missing permission would show up first as `AccessDenied` in a
//! deployment. [`check`] turns it into a test failure naming the function, the action and the
//! resource; a call it cannot decide (a condition it does not evaluate, an action it cannot
//! name) fails too, with the reason.

pub mod policy;
pub mod request;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::Context as _;

use crate::services::{AwsCall, CallerCredentials};
use crate::template::{Principal, Stack};
use policy::{Applies, ConditionKeys, Effect, KeyValue, Statement};

/// The outcome of [`check`].
#[derive(Debug, Clone, Default)]
pub struct IamReport {
    /// Calls no statement allows (or that a statement denies, or that cannot be decided), one
    /// line each: function, action, resource, why, and how many times when more than once.
    pub refused: Vec<String>,
    /// Policy statements (and actions of statements) no recorded call needed, by function.
    pub unexercised: Vec<String>,
    /// Calls made with credentials from `sts:AssumeRole` (another account's role, not the
    /// function's): listed, not checked against the function's policies.
    pub assumed_role_calls: Vec<String>,
    /// AWS-managed policies attached to the roles, whose contents are not in the template (no
    /// call was allowed by them).
    pub aws_managed: Vec<String>,
    /// How many recorded authorizations were checked.
    pub checked: usize,
    /// Every recorded authorization, grouped: caller, action, resource, leading keys and how
    /// many times (in the report file only, see [`IamReport::write`]).
    pub recorded: Vec<String>,
}

impl IamReport {
    /// Whether every recorded call is allowed.
    pub fn all_allowed(&self) -> bool {
        self.refused.is_empty()
    }

    /// Writes the report and every recorded call to `path`, for reading after a passing run
    /// (the test harness shows a passing test's output only with `--nocapture`).
    pub fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let mut text = self.to_string();
        text.push_str("Recorded calls (caller: action on resource [leading keys] x count):\n");
        for line in &self.recorded {
            text.push_str(&format!("  {line}\n"));
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

impl fmt::Display for IamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "IAM check: {} recorded authorizations, {} refused",
            self.checked,
            self.refused.len()
        )?;
        let section = |f: &mut fmt::Formatter<'_>, title: &str, lines: &[String]| {
            if lines.is_empty() {
                return Ok(());
            }
            writeln!(f, "{title}:")?;
            lines.iter().try_for_each(|line| writeln!(f, "  {line}"))
        };
        section(f, "Refused (the policy must allow these)", &self.refused)?;
        section(
            f,
            "Policy statements and actions no test exercises",
            &self.unexercised,
        )?;
        section(
            f,
            "Calls made as an assumed role (not the function's policy)",
            &self.assumed_role_calls,
        )?;
        section(
            f,
            "AWS-managed policies (not evaluated; no call relied on them)",
            &self.aws_managed,
        )
    }
}

/// The condition keys of one recorded call.
struct CallKeys<'a> {
    call: &'a AwsCall,
    stack: &'a Stack,
}

impl ConditionKeys for CallKeys<'_> {
    fn value(&self, key: &str) -> KeyValue {
        let authorization = &self.call.authorization;
        match key.to_ascii_lowercase().as_str() {
            "aws:requestedregion" => match &self.call.region {
                Some(region) => KeyValue::Values(vec![region.clone()]),
                None => KeyValue::Unknown("the request was not signed".to_owned()),
            },
            "dynamodb:leadingkeys" => {
                // The partition key values of the items touched, by the table's key schema.
                let Some(table) = authorization
                    .resource
                    .split_once(":table/")
                    .map(|(_, table)| table)
                else {
                    return KeyValue::Unknown("the resource is not a table".to_owned());
                };
                if table.contains("/index/") {
                    return KeyValue::Unknown(
                        "leading keys of an index query are not derived here".to_owned(),
                    );
                }
                let partition_key = match self.stack.table_partition_key(table) {
                    Ok(name) => name,
                    Err(error) => return KeyValue::Unknown(format!("{error:#}")),
                };
                let Some(items) = &authorization.dynamodb_keys else {
                    return KeyValue::Unknown(format!(
                        "{} names no items this check reads",
                        authorization.operation
                    ));
                };
                let mut values = BTreeSet::new();
                for item in items {
                    match item.get(&partition_key) {
                        Some(value) => values.insert(value.clone()),
                        None => {
                            return KeyValue::Unknown(format!(
                                "{} does not name the partition key {partition_key}",
                                authorization.operation
                            ));
                        }
                    };
                }
                KeyValue::Values(values.into_iter().collect())
            }
            _ => KeyValue::Unknown(format!("no value for {key} is derived from the request")),
        }
    }
}

/// Which statements (and which of their action patterns) allowed something.
#[derive(Default)]
struct Exercised {
    statements: BTreeSet<(String, usize)>,
    actions: BTreeSet<(String, usize, String)>,
}

/// Checks `calls` (recorded from the functions of `principals`) against their policies in
/// `stack`. Calls from callers not in `principals` are refused: every caller must be a
/// principal of the template.
pub fn check(
    stack: &Stack,
    principals: &[(String, Principal)],
    calls: &[AwsCall],
) -> anyhow::Result<IamReport> {
    let mut report = IamReport::default();
    let mut statements: BTreeMap<&str, Vec<Statement>> = BTreeMap::new();
    let mut managed = BTreeSet::new();
    for (caller, principal) in principals {
        let role = stack
            .principal_role(principal)
            .with_context(|| format!("the role of {caller}"))?;
        let policies = stack
            .role_policies(&role)
            .with_context(|| format!("the policies of {caller}'s role {role}"))?;
        let mut all = Vec::new();
        for (name, document) in &policies.documents {
            all.extend(
                policy::statements(&format!("{role}/{name}"), document)
                    .with_context(|| format!("reading {caller}'s policy {name}"))?,
            );
        }
        managed.extend(
            policies
                .aws_managed
                .iter()
                .map(|arn| format!("{role}: {arn}")),
        );
        statements.insert(caller.as_str(), all);
    }
    report.aws_managed = managed.into_iter().collect();

    let mut exercised: BTreeMap<&str, Exercised> = BTreeMap::new();
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    // The same refusal once, with its count.
    let mut refused: Vec<(String, usize)> = Vec::new();
    let mut refuse = |line: String| match refused.iter_mut().find(|(seen, _)| *seen == line) {
        Some((_, count)) => *count += 1,
        None => refused.push((line, 1)),
    };
    for call in calls {
        let caller = call.caller.as_str();
        let authorization = &call.authorization;
        let what = format!(
            "{caller}: {} on {} (sent as {})",
            authorization.action.as_deref().unwrap_or("?"),
            authorization.resource,
            authorization.operation
        );
        match &call.credentials {
            CallerCredentials::AssumedRole { role_arn } => {
                report
                    .assumed_role_calls
                    .push(format!("{what} as {role_arn}"));
                continue;
            }
            CallerCredentials::Unsigned => {
                report.checked += 1;
                refuse(format!("{what}: the request was not signed"));
                continue;
            }
            CallerCredentials::Own => {}
        }
        report.checked += 1;
        let Some(policy_statements) = statements.get(caller) else {
            refuse(format!(
                "{what}: {caller} is not one of the principals checked here"
            ));
            continue;
        };
        let Some(action) = &authorization.action else {
            refuse(format!(
                "{what}: the recorder cannot name the IAM action of this request"
            ));
            continue;
        };
        let keys = CallKeys { call, stack };
        let mut allowed_by = Vec::new();
        let mut denied_by = Vec::new();
        let mut undecided = Vec::new();
        for statement in policy_statements {
            match (
                statement.effect,
                statement.applies(action, &authorization.resource, &keys),
            ) {
                (_, Applies::No) => {}
                (Effect::Allow, Applies::Yes) => allowed_by.push(statement),
                (Effect::Deny, Applies::Yes) => denied_by.push(statement),
                (_, Applies::Unknown(reason)) => undecided.push(format!("{statement}: {reason}")),
            }
        }
        let leading = match keys.value("dynamodb:LeadingKeys") {
            KeyValue::Values(values) => format!(", leading keys [{}]", values.join(", ")),
            _ => String::new(),
        };
        *recorded
            .entry(format!(
                "{caller}: {action} on {}{leading}",
                authorization.resource
            ))
            .or_default() += 1;
        if let Some(statement) = denied_by.first() {
            refuse(format!("{what}{leading}: denied by {statement}"));
        } else if !allowed_by.is_empty() {
            let marks = exercised.entry(caller).or_default();
            for statement in allowed_by {
                marks
                    .statements
                    .insert((statement.policy.clone(), statement.index));
                for pattern in statement.action_patterns_naming(action) {
                    marks.actions.insert((
                        statement.policy.clone(),
                        statement.index,
                        pattern.to_owned(),
                    ));
                }
            }
        } else if !undecided.is_empty() {
            refuse(format!(
                "{what}{leading}: cannot be decided, so it is not passed: {}",
                undecided.join("; ")
            ));
        } else {
            refuse(format!(
                "{what}{leading}: no statement of its role's policies allows it"
            ));
        }
    }

    report.refused = refused
        .into_iter()
        .map(|(line, count)| {
            if count > 1 {
                format!("{line} (x{count})")
            } else {
                line
            }
        })
        .collect();
    report.recorded = recorded
        .into_iter()
        .map(|(call, count)| format!("{call} x{count}"))
        .collect();
    for (caller, policy_statements) in &statements {
        let marks = exercised.remove(caller).unwrap_or_default();
        for statement in policy_statements {
            if statement.effect == Effect::Deny {
                continue;
            }
            let key = (statement.policy.clone(), statement.index);
            if !marks.statements.contains(&key) {
                report.unexercised.push(format!("{caller}: {statement}"));
                continue;
            }
            let unused: Vec<&str> = statement
                .actions
                .patterns()
                .iter()
                .filter(|pattern| {
                    matches!(statement.actions, policy::Patterns::Only(_))
                        && !marks.actions.contains(&(
                            statement.policy.clone(),
                            statement.index,
                            (*pattern).clone(),
                        ))
                })
                .map(String::as_str)
                .collect();
            if !unused.is_empty() {
                report.unexercised.push(format!(
                    "{caller}: {}[{}] actions {} (the statement's other actions were used)",
                    statement.policy,
                    statement.index,
                    unused.join(", ")
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::request::Authorization;
    use super::*;
    use crate::template::transformed_template;

    fn call(caller: &str, action: &str, resource: &str, partition_key: Option<&str>) -> AwsCall {
        AwsCall {
            caller: caller.to_owned(),
            credentials: CallerCredentials::Own,
            region: Some("us-east-1".to_owned()),
            authorization: Authorization {
                action: Some(action.to_owned()),
                resource: resource.to_owned(),
                operation: action.rsplit(':').next().unwrap_or_default().to_owned(),
                dynamodb_keys: partition_key.map(|key| {
                    vec![BTreeMap::from([
                        ("PK".to_owned(), key.to_owned()),
                        ("SK".to_owned(), "X".to_owned()),
                    ])]
                }),
            },
            status: 200,
        }
    }

    /// The workspace's template, transformed, as a stack with a terminator image (so every
    /// principal is deployed).
    fn stack() -> Stack {
        let template = transformed_template().expect("the SAM transform runs");
        let parameters: Vec<(&str, &str)> = [
            ("TableName", "t"),
            ("SecretPrefix", "t/"),
            ("EdgeHostname", "edge.example.net"),
            ("TerminatorImage", "registry.example/terminator:1"),
        ]
        .into_iter()
        .filter(|(name, _)| template["Parameters"].get(*name).is_some())
        .collect();
        Stack::new(template, "iam-unit", &parameters).expect("a stack of the template")
    }

    #[test]
    fn recorded_calls_are_checked_against_the_transformed_templates_policies() {
        let stack = stack();
        let mut principals: Vec<(String, Principal)> = stack
            .lambda_binaries()
            .unwrap()
            .into_iter()
            .map(|(_, binary)| (binary.clone(), Principal::LambdaBinary(binary)))
            .collect();
        for (_, container) in stack.containers().unwrap() {
            principals.push((container.clone(), Principal::Container(container)));
        }
        assert!(principals.len() > 20, "{principals:?}");
        let table = format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
            stack.physical_id("Table").unwrap()
        );
        let table = table.as_str();
        let calls = [
            call("authorizer", "dynamodb:GetItem", table, Some("APIKEY#abc")),
            // Nothing grants the authorizer writes, nor the issuer other partitions.
            call("authorizer", "dynamodb:PutItem", table, Some("APIKEY#abc")),
            call("issuer", "dynamodb:PutItem", table, Some("APIKEY#abc")),
            // Leading keys not derivable: undecidable, so refused.
            call("issuer", "dynamodb:PutItem", table, None),
        ];
        let report = check(&stack, &principals, &calls).unwrap();
        assert_eq!(report.checked, 4);
        assert_eq!(report.refused.len(), 3, "{report}");
        assert!(
            report.refused[0].starts_with(&format!("authorizer: dynamodb:PutItem on {table}")),
            "{report}"
        );
        assert!(report.refused[0].contains("no statement"), "{report}");
        assert!(
            report.refused[1].contains("leading keys [APIKEY#abc]"),
            "{report}"
        );
        assert!(report.refused[2].contains("cannot be decided"), "{report}");
        // The authorizer's read was allowed, so its statement is not listed; everything the
        // other functions may do is.
        assert!(
            !report
                .unexercised
                .iter()
                .any(|line| line.starts_with("authorizer:") && line.contains("dynamodb:GetItem")),
            "{report}"
        );
        assert!(
            report
                .unexercised
                .iter()
                .any(|line| line.starts_with("renewer:")),
            "{report}"
        );
        assert!(
            report
                .aws_managed
                .iter()
                .any(|line| line.contains("AWSLambdaBasicExecutionRole"))
        );
    }
}
