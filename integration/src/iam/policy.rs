//! IAM policy statements and whether one applies to a call: actions and resources with
//! wildcards, and the conditions this module can evaluate.
//!
//! A statement answers [`Applies::Yes`], [`Applies::No`] or [`Applies::Unknown`]: a condition
//! operator or condition key not evaluated here makes the statement's answer unknown, never a
//! guess, so a check built on it refuses to pass rather than pass by accident.
//!
//! What is evaluated:
//! - `Action` / `NotAction` (case-insensitive, `*` and `?`), `Resource` / `NotResource` (ARNs
//!   matched segment by segment, `*` and `?` within a segment, the resource segment as a whole).
//! - Condition operators `String[Not]Equals[IgnoreCase]`, `String[Not]Like`, `Arn[Not]Equals`,
//!   `Arn[Not]Like`, `Bool` and `Null`, with the `ForAllValues:` / `ForAnyValue:` set prefixes
//!   and the `IfExists` suffix, with IAM's rules for keys absent from the request: a negated
//!   operator and `ForAllValues` match, the others do not.
//! - The condition keys a [`ConditionKeys`] gives values for.

use std::fmt;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants what it matches.
    Allow,
    /// Refuses what it matches, whatever else allows it.
    Deny,
}

/// A list of patterns, or everything but them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// `Action` / `Resource`.
    Only(Vec<String>),
    /// `NotAction` / `NotResource`.
    AllBut(Vec<String>),
}

impl Patterns {
    /// Reads `element` or `not_element` of a statement (one of them is required).
    fn read(statement: &Value, element: &str) -> anyhow::Result<Patterns> {
        let not_element = format!("Not{element}");
        match (statement.get(element), statement.get(&not_element)) {
            (Some(value), None) => Ok(Patterns::Only(strings(value, element)?)),
            (None, Some(value)) => Ok(Patterns::AllBut(strings(value, &not_element)?)),
            _ => bail!("a statement needs exactly one of {element} and {not_element}"),
        }
    }

    /// The patterns themselves.
    pub fn patterns(&self) -> &[String] {
        match self {
            Patterns::Only(patterns) | Patterns::AllBut(patterns) => patterns,
        }
    }
}

/// A string or a list of strings.
fn strings(value: &Value, what: &str) -> anyhow::Result<Vec<String>> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Bool(flag) => Ok(flag.to_string()),
                Value::Number(number) => Ok(number.to_string()),
                other => bail!("{what}: {other} is not a string"),
            })
            .collect(),
        Value::Bool(flag) => Ok(vec![flag.to_string()]),
        Value::Number(number) => Ok(vec![number.to_string()]),
        other => bail!("{what}: {other} is not a string or a list of strings"),
    }
}

/// One condition: `operator` on `key` against `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// As written, e.g. `ForAllValues:StringLike`.
    pub operator: String,
    /// The condition key, e.g. `dynamodb:LeadingKeys`.
    pub key: String,
    /// The policy's values.
    pub values: Vec<String>,
}

/// A statement of a policy, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The policy holding it: an inline policy's name, or a policy resource's logical id.
    pub policy: String,
    /// Its position in the policy, from 0.
    pub index: usize,
    /// Its `Sid`, if any.
    pub sid: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// `Action` or `NotAction`.
    pub actions: Patterns,
    /// `Resource` or `NotResource`.
    pub resources: Patterns,
    /// Every condition; all must hold.
    pub conditions: Vec<Condition>,
}

/// Whether a statement applies to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    /// Action, resource and every condition match.
    Yes,
    /// Something does not match.
    No,
    /// Action and resource match, but a condition cannot be evaluated here: why.
    Unknown(String),
}

/// The value of a condition key in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// The request has the key, with these values (one for single-valued keys).
    Values(Vec<String>),
    /// The request does not have the key.
    Absent,
    /// This test cannot tell: why.
    Unknown(String),
}

/// The condition keys of one call.
pub trait ConditionKeys {
    /// The value of `key` (as written in the policy; IAM keys are case-insensitive).
    fn value(&self, key: &str) -> KeyValue;
}

/// Reads every statement of `document` (a resolved policy document) of the policy `policy`.
pub fn statements(policy: &str, document: &Value) -> anyhow::Result<Vec<Statement>> {
    let listed = match &document["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![document["Statement"].clone()],
        other => bail!("policy {policy}: Statement is {other}"),
    };
    listed
        .iter()
        .enumerate()
        .map(|(index, statement)| {
            Statement::read(policy, index, statement)
                .with_context(|| format!("policy {policy}, statement {index}: {statement}"))
        })
        .collect()
}

impl Statement {
    fn read(policy: &str, index: usize, statement: &Value) -> anyhow::Result<Statement> {
        let effect = match statement["Effect"].as_str() {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => bail!("Effect is {other:?}"),
        };
        if statement.get("Principal").is_some() || statement.get("NotPrincipal").is_some() {
            bail!("an identity policy statement names no principal");
        }
        let mut conditions = Vec::new();
        if let Some(block) = statement.get("Condition") {
            let operators = block.as_object().context("Condition is not an object")?;
            for (operator, keys) in operators {
                let keys = keys
                    .as_object()
                    .with_context(|| format!("Condition {operator} is not an object"))?;
                for (key, values) in keys {
                    conditions.push(Condition {
                        operator: operator.clone(),
                        key: key.clone(),
                        values: strings(values, key)?,
                    });
                }
            }
        }
        Ok(Statement {
            policy: policy.to_owned(),
            index,
            sid: statement["Sid"].as_str().map(str::to_owned),
            effect,
            actions: Patterns::read(statement, "Action")?,
            resources: Patterns::read(statement, "Resource")?,
            conditions,
        })
    }

    /// Whether the statement names `action` (`service:Operation`).
    pub fn matches_action(&self, action: &str) -> bool {
        let named =
            |pattern: &String| wildcard_match(&pattern.to_lowercase(), &action.to_lowercase());
        match &self.actions {
            Patterns::Only(patterns) => patterns.iter().any(named),
            Patterns::AllBut(patterns) => !patterns.iter().any(named),
        }
    }

    /// The `Action` patterns that name `action` (none for `NotAction`).
    pub fn action_patterns_naming(&self, action: &str) -> Vec<&str> {
        match &self.actions {
            Patterns::Only(patterns) => patterns
                .iter()
                .filter(|pattern| wildcard_match(&pattern.to_lowercase(), &action.to_lowercase()))
                .map(String::as_str)
                .collect(),
            Patterns::AllBut(_) => Vec::new(),
        }
    }

    /// Whether the statement names the resource `arn`.
    pub fn matches_resource(&self, arn: &str) -> bool {
        match &self.resources {
            Patterns::Only(patterns) => patterns.iter().any(|pattern| arn_match(pattern, arn)),
            Patterns::AllBut(patterns) => !patterns.iter().any(|pattern| arn_match(pattern, arn)),
        }
    }

    /// Whether the statement applies to `action` on `resource` with the condition keys `keys`.
    pub fn applies(&self, action: &str, resource: &str, keys: &dyn ConditionKeys) -> Applies {
        if !self.matches_action(action) || !self.matches_resource(resource) {
            return Applies::No;
        }
        let mut unknown = Vec::new();
        for condition in &self.conditions {
            match evaluate(condition, keys) {
                Ok(true) => {}
                Ok(false) => return Applies::No,
                Err(reason) => unknown.push(reason),
            }
        }
        if unknown.is_empty() {
            Applies::Yes
        } else {
            Applies::Unknown(unknown.join("; "))
        }
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.policy, self.index)?;
        if let Some(sid) = &self.sid {
            write!(f, " ({sid})")?;
        }
        let effect = match self.effect {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        };
        let list = |patterns: &Patterns| match patterns {
            Patterns::Only(patterns) => patterns.join(", "),
            Patterns::AllBut(patterns) => format!("everything but {}", patterns.join(", ")),
        };
        write!(
            f,
            " {effect} {} on {}",
            list(&self.actions),
            list(&self.resources)
        )?;
        for condition in &self.conditions {
            write!(
                f,
                " if {} {} [{}]",
                condition.operator,
                condition.key,
                condition.values.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The comparison of a condition operator, without set prefix and `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equals { ignore_case: bool },
    Like,
    ArnEquals,
    ArnLike,
    Bool,
}

/// Evaluates one condition; `Err` says why it cannot be evaluated here.
fn evaluate(condition: &Condition, keys: &dyn ConditionKeys) -> Result<bool, String> {
    let cannot = |why: &str| {
        Err(format!(
            "condition {} on {} cannot be evaluated by this check ({why})",
            condition.operator, condition.key
        ))
    };
    let mut operator = condition.operator.as_str();
    let set = if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        operator = rest;
        Some(true)
    } else if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        operator = rest;
        Some(false)
    } else {
        None
    };
    let if_exists = match operator.strip_suffix("IfExists") {
        Some(rest) => {
            operator = rest;
            true
        }
        None => false,
    };
    let value = keys.value(&condition.key);
    if operator == "Null" {
        let wanted_absent = match condition.values.as_slice() {
            [flag] if flag.eq_ignore_ascii_case("true") => true,
            [flag] if flag.eq_ignore_ascii_case("false") => false,
            _ => return cannot("Null takes one true or false"),
        };
        return match value {
            KeyValue::Unknown(why) => cannot(&why),
            KeyValue::Absent => Ok(wanted_absent),
            KeyValue::Values(_) => Ok(!wanted_absent),
        };
    }
    let (comparison, negated) = match operator {
        "StringEquals" => (Comparison::Equals { ignore_case: false }, false),
        "StringNotEquals" => (Comparison::Equals { ignore_case: false }, true),
        "StringEqualsIgnoreCase" => (Comparison::Equals { ignore_case: true }, false),
        "StringNotEqualsIgnoreCase" => (Comparison::Equals { ignore_case: true }, true),
        "StringLike" => (Comparison::Like, false),
        "StringNotLike" => (Comparison::Like, true),
        "ArnEquals" => (Comparison::ArnEquals, false),
        "ArnNotEquals" => (Comparison::ArnEquals, true),
        "ArnLike" => (Comparison::ArnLike, false),
        "ArnNotLike" => (Comparison::ArnLike, true),
        "Bool" => (Comparison::Bool, false),
        _ => return cannot("operator not supported"),
    };
    let values = match value {
        KeyValue::Unknown(why) => return cannot(&why),
        // IAM: a key absent from the request matches `IfExists`, negated operators and
        // `ForAllValues` (vacuously), and nothing else.
        KeyValue::Absent => return Ok(if_exists || negated || set == Some(true)),
        KeyValue::Values(values) => values,
    };
    let one = |value: &String| {
        let any = condition
            .values
            .iter()
            .any(|pattern| compare(comparison, pattern, value));
        any != negated
    };
    match set {
        Some(true) => Ok(values.iter().all(one)),
        Some(false) => Ok(values.iter().any(one)),
        None => match values.as_slice() {
            [single] => Ok(one(single)),
            _ => cannot("a single-valued operator on a key with several values"),
        },
    }
}

fn compare(comparison: Comparison, pattern: &str, value: &str) -> bool {
    match comparison {
        Comparison::Equals { ignore_case: false } => pattern == value,
        Comparison::Equals { ignore_case: true } => pattern.eq_ignore_ascii_case(value),
        Comparison::Like => wildcard_match(pattern, value),
        Comparison::ArnEquals | Comparison::ArnLike => arn_match(pattern, value),
        Comparison::Bool => pattern.eq_ignore_ascii_case(value),
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and
/// `?` any one character. Case-sensitive.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Whether the ARN `arn` matches the ARN pattern `pattern`: `*` alone matches everything;
/// otherwise partition, service, region and account are matched one by one, and the resource
/// part (which may hold `:` and `/`) as a whole.
pub fn arn_match(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let pattern_parts: Vec<&str> = pattern.splitn(6, ':').collect();
    let arn_parts: Vec<&str> = arn.splitn(6, ':').collect();
    if pattern_parts.len() != 6 || arn_parts.len() != 6 {
        return wildcard_match(pattern, arn);
    }
    pattern_parts
        .iter()
        .zip(&arn_parts)
        .all(|(pattern, part)| wildcard_match(pattern, part))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    struct Keys(HashMap<&'static str, KeyValue>);

    impl ConditionKeys for Keys {
        fn value(&self, key: &str) -> KeyValue {
            self.0
                .get(key)
                .cloned()
                .unwrap_or_else(|| KeyValue::Unknown(format!("no value for {key}")))
        }
    }

    fn leading(keys: &[&str]) -> Keys {
        Keys(HashMap::from([(
            "dynamodb:LeadingKeys",
            KeyValue::Values(keys.iter().map(|key| (*key).to_owned()).collect()),
        )]))
    }

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/edgecert";

    fn statement(value: Value) -> Statement {
        statements("TestPolicy", &json!({ "Statement": [value] }))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a*", "a"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("a*d", "abc"));
        assert!(wildcard_match("*b*b", "abcbb"));
        assert!(!wildcard_match("ACCT#*", "acct#x"));
    }

    #[test]
    fn arns_match_segment_by_segment() {
        let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/cert/c1-AbCdEf";
        assert!(arn_match(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/cert/*",
            secret
        ));
        assert!(arn_match("arn:aws:secretsmanager:*:*:secret:*", secret));
        assert!(!arn_match(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/acme-account/*",
            secret
        ));
        assert!(!arn_match(TABLE, &format!("{TABLE}/index/by_due")));
        assert!(arn_match(
            &format!("{TABLE}/index/*"),
            &format!("{TABLE}/index/by_due")
        ));
        assert!(arn_match("*", "*"));
        assert!(!arn_match(TABLE, "*"));
    }

    #[test]
    fn actions_are_case_insensitive_and_not_action_inverts() {
        let granted = statement(json!({
            "Effect": "Allow", "Action": ["dynamodb:Get*", "dynamodb:query"], "Resource": "*"
        }));
        assert!(granted.matches_action("dynamodb:GetItem"));
        assert!(granted.matches_action("dynamodb:Query"));
        assert!(!granted.matches_action("dynamodb:PutItem"));
        assert_eq!(
            granted.action_patterns_naming("dynamodb:GetItem"),
            ["dynamodb:Get*"]
        );
        let everything_else = statement(json!({
            "Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": TABLE
        }));
        assert!(everything_else.matches_action("dynamodb:PutItem"));
        assert!(!everything_else.matches_action("dynamodb:DeleteItem"));
    }

    #[test]
    fn leading_keys_conditions_follow_iams_set_rules() {
        let scoped = statement(json!({
            "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ACCT#*", "LEASE#*"]}}
        }));
        let keys = Keys(HashMap::new());
        assert_eq!(
            scoped.applies("dynamodb:PutItem", TABLE, &leading(&["ACCT#a"])),
            Applies::Yes
        );
        assert_eq!(
            scoped.applies("dynamodb:PutItem", TABLE, &leading(&["ACCT#a", "HOST#x"])),
            Applies::No
        );
        assert_eq!(
            scoped.applies("dynamodb:GetItem", TABLE, &leading(&["ACCT#a"])),
            Applies::No
        );
        // No value known for the key: never a pass.
        assert!(matches!(
            scoped.applies("dynamodb:PutItem", TABLE, &keys),
            Applies::Unknown(reason) if reason.contains("dynamodb:LeadingKeys")
        ));
        // Absent from the request: ForAllValues holds vacuously, ForAnyValue does not.
        let absent = Keys(HashMap::from([("dynamodb:LeadingKeys", KeyValue::Absent)]));
        assert_eq!(
            scoped.applies("dynamodb:PutItem", TABLE, &absent),
            Applies::Yes
        );
        let any = statement(json!({
            "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE,
            "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "ACCT#a"}}
        }));
        assert_eq!(any.applies("dynamodb:PutItem", TABLE, &absent), Applies::No);
        assert_eq!(
            any.applies("dynamodb:PutItem", TABLE, &leading(&["HOST#x", "ACCT#a"])),
            Applies::Yes
        );
    }

    #[test]
    fn single_valued_operators_and_unsupported_ones_are_never_guessed() {
        let region = statement(json!({
            "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"},
                          "StringNotEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}
        }));
        let keys = Keys(HashMap::from([
            (
                "aws:RequestedRegion",
                KeyValue::Values(vec!["us-east-1".to_owned()]),
            ),
            ("aws:SourceVpc", KeyValue::Absent),
        ]));
        assert_eq!(
            region.applies("sts:GetCallerIdentity", "*", &keys),
            Applies::Yes
        );
        let elsewhere = Keys(HashMap::from([
            (
                "aws:RequestedRegion",
                KeyValue::Values(vec!["eu-west-1".to_owned()]),
            ),
            ("aws:SourceVpc", KeyValue::Absent),
        ]));
        assert_eq!(
            region.applies("sts:GetCallerIdentity", "*", &elsewhere),
            Applies::No
        );
        let dates = statement(json!({
            "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}
        }));
        assert!(matches!(
            dates.applies("sts:GetCallerIdentity", "*", &keys),
            Applies::Unknown(reason) if reason.contains("DateLessThan")
        ));
        let several = statement(json!({
            "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"StringLike": {"dynamodb:LeadingKeys": "ACCT#*"}}
        }));
        assert!(matches!(
            several.applies("dynamodb:GetItem", TABLE, &leading(&["ACCT#a", "ACCT#b"])),
            Applies::Unknown(_)
        ));
    }

    #[test]
    fn statements_are_shown_with_their_policy_and_conditions() {
        let shown = statement(json!({
            "Sid": "Scoped", "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ACCT#*"]}}
        }))
        .to_string();
        assert_eq!(
            shown,
            format!(
                "TestPolicy[0] (Scoped) Allow dynamodb:GetItem on {TABLE} if ForAllValues:StringLike dynamodb:LeadingKeys [ACCT#*]"
            )
        );
        assert!(
            statements(
                "P",
                &json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]})
            )
            .is_err()
        );
    }
}
