//! template.yaml as CloudFormation receives it (the SAM transform's output): two stacks
//! coexist in one account and region, the `Rules` refuse half-given combinations, and the
//! operations settings (log retention, the admin key's secret, failure destinations, alarms)
//! are on every resource they must be on.

use std::collections::{BTreeMap, BTreeSet};

use edgecert_integration::template::{
    FUNCTION_VARIABLE, StackContext, parameter_values, rule_refusals, sam_transformed,
};
use serde_json::{Value, json};

fn transformed() -> &'static Value {
    sam_transformed().unwrap_or_else(|error| panic!("transforming template.yaml: {error:#}"))
}

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"]
        .as_object()
        .expect("the template has Resources")
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .collect()
}

/// `...Name` properties that name no resource in the account: something inside another
/// resource (an API's stage) or something the resource refers to (an alarm's metric).
const NOT_ACCOUNT_NAMES: &[(&str, &str)] = &[
    ("AWS::ApiGatewayV2::Stage", "StageName"),
    ("AWS::CloudWatch::Alarm", "MetricName"),
];

/// Every name a stack gives something in the account's namespaces: each resource's top-level
/// `...Name` properties (a table's, a log group's, a schedule's, a secret's...), and the prefix
/// of the secrets the functions and the terminator create (`EDGECERT_SECRET_PREFIX`).
fn names_in(stack_name: &str, template: &Value) -> BTreeMap<String, String> {
    let parameters = parameter_values(template, &[("EdgeHostname", "edge.example.net")]);
    let stack = StackContext {
        stack_name,
        parameters: &parameters,
    };
    let mut names = BTreeMap::new();
    for (id, resource) in resources(template) {
        let Some(properties) = resource["Properties"].as_object() else {
            continue;
        };
        for (property, value) in properties {
            let kind = resource["Type"].as_str().unwrap_or_default();
            if property.ends_with("Name") && !NOT_ACCOUNT_NAMES.contains(&(kind, property.as_str()))
            {
                let evaluated = stack.evaluate(value, template).unwrap_or_else(|error| {
                    panic!("{id}.{property}: cannot evaluate {value}: {error:#}")
                });
                names.insert(format!("{id}.{property}"), evaluated);
            }
        }
        let prefixes = properties
            .get("Environment")
            .and_then(|environment| environment["Variables"].get("EDGECERT_SECRET_PREFIX"))
            .into_iter()
            .chain(
                properties
                    .get("ContainerDefinitions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|container| container["Environment"].as_array())
                    .flatten()
                    .filter(|pair| pair["Name"] == "EDGECERT_SECRET_PREFIX")
                    .map(|pair| &pair["Value"]),
            );
        for (index, prefix) in prefixes.enumerate() {
            let evaluated = stack
                .evaluate(prefix, template)
                .unwrap_or_else(|error| panic!("{id}: EDGECERT_SECRET_PREFIX {prefix}: {error:#}"));
            names.insert(format!("{id} EDGECERT_SECRET_PREFIX #{index}"), evaluated);
        }
    }
    names
}

#[test]
fn two_stacks_coexist_in_one_account_and_region() {
    let template = transformed();
    let first = names_in("edgecert-prod", template);
    let second = names_in("edgecert-staging", template);
    // What must be named at all: the log groups of every function and the terminator, the
    // secret prefix of every function.
    let functions = of_type(template, "AWS::Lambda::Function").len();
    assert!(
        first
            .keys()
            .filter(|key| key.ends_with(".LogGroupName"))
            .count()
            > functions,
        "the log groups are named: {first:#?}"
    );
    assert_eq!(
        first
            .keys()
            .filter(|key| key.contains("EDGECERT_SECRET_PREFIX"))
            .count(),
        functions + 1,
        "every function and the terminator are given the secret prefix: {first:#?}"
    );
    let second_values: BTreeSet<&String> = second.values().collect();
    let clashes: Vec<String> = first
        .iter()
        .filter(|(_, name)| second_values.contains(name))
        .map(|(what, name)| format!("{what} = {name:?} in both stacks"))
        .collect();
    assert!(
        clashes.is_empty(),
        "two stacks in one account and region would clash on:\n  {}",
        clashes.join("\n  ")
    );
    // Within one stack, no two things share a name either.
    let mut seen = BTreeMap::new();
    for (what, name) in &first {
        if what.contains("EDGECERT_SECRET_PREFIX") {
            continue;
        }
        if let Some(other) = seen.insert(name, what) {
            panic!("{what} and {other} are both named {name:?}");
        }
    }
}

#[test]
fn names_that_would_outlive_a_deleted_stack_are_left_to_cloudformation() {
    let template = transformed();
    // `sam delete` keeps the table (DeletionPolicy: Retain) and schedules the secret's
    // deletion: a fixed name would make the next stack of the same name fail.
    for (kind, property) in [
        ("AWS::DynamoDB::Table", "TableName"),
        ("AWS::SecretsManager::Secret", "Name"),
        ("AWS::Scheduler::Schedule", "Name"),
    ] {
        let named: Vec<&String> = of_type(template, kind)
            .into_iter()
            .filter(|(_, resource)| resource["Properties"].get(property).is_some())
            .map(|(id, _)| id)
            .collect();
        assert!(
            named.is_empty(),
            "{kind} {named:?} sets {property}; CloudFormation must generate it"
        );
        assert!(
            !of_type(template, kind).is_empty(),
            "the template has a {kind}"
        );
    }
}

#[test]
fn the_rules_refuse_half_given_combinations() {
    let template = transformed();
    let refusals = |given: &[(&str, &str)]| {
        let mut all = vec![("EdgeHostname", "edge.example.net")];
        all.extend_from_slice(given);
        rule_refusals(template, &parameter_values(template, &all))
            .unwrap_or_else(|error| panic!("evaluating the Rules on {given:?}: {error:#}"))
    };
    let vpc = ("VpcId", "vpc-0123456789abcdef0");
    let subnet_a = ("SubnetIdA", "subnet-0123456789abcdef0");
    let subnet_b = ("SubnetIdB", "subnet-0fedcba9876543210");
    let ipv6_a = ("EdgeIpv6AddressA", "2600:1f18:aaaa:bb00::ec");
    let ipv6_b = ("EdgeIpv6AddressB", "2600:1f18:aaaa:bb01::ec");
    let custom_ca = ("AcmeEnvironment", "https://acme.example.net/directory");
    let accepted: &[&[(&str, &str)]] = &[
        &[],
        &[vpc, subnet_a, subnet_b],
        &[vpc, subnet_a, subnet_b, ipv6_a, ipv6_b],
        &[("AcmeEnvironment", "production")],
        &[custom_ca, ("CaaIdentities", "example-ca.net")],
    ];
    for given in accepted {
        assert_eq!(refusals(given), Vec::<String>::new(), "{given:?}");
    }
    let refused: &[(&[(&str, &str)], &str)] = &[
        (&[vpc], "NetworkIsGivenWhole"),
        (&[subnet_a, subnet_b], "NetworkIsGivenWhole"),
        (&[vpc, subnet_a], "NetworkIsGivenWhole"),
        (&[vpc, subnet_b], "NetworkIsGivenWhole"),
        (&[ipv6_a, ipv6_b], "Ipv6AddressesComeWithTheirSubnets"),
        (
            &[vpc, subnet_a, subnet_b, ipv6_a],
            "Ipv6AddressesComeWithTheirSubnets",
        ),
        (&[custom_ca], "CustomCaNamesItsCaaIdentity"),
    ];
    for (given, rule) in refused {
        let refusals = refusals(given);
        assert!(
            refusals.iter().any(|refusal| refusal.starts_with(rule)),
            "{given:?} must be refused by {rule}, got {refusals:?}"
        );
    }
}

#[test]
fn every_function_logs_to_a_group_kept_for_the_retention_parameter() {
    let template = transformed();
    let retention = json!({ "Ref": "LogRetentionDays" });
    let groups = of_type(template, "AWS::Logs::LogGroup");
    for (group, resource) in &groups {
        assert_eq!(
            resource["Properties"]["RetentionInDays"], retention,
            "{group} keeps its logs for LogRetentionDays"
        );
    }
    let functions = of_type(template, "AWS::Lambda::Function");
    assert!(!functions.is_empty(), "the template deploys functions");
    for (id, function) in functions {
        let group = &function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"];
        assert!(
            group.as_str().is_some_and(|group| {
                groups
                    .iter()
                    .any(|(candidate, _)| candidate.as_str() == group)
            }),
            "{id} logs to a log group of the template, not {group}"
        );
    }
    assert_eq!(
        parameter_values(template, &[])["LogRetentionDays"],
        "30",
        "30 days by default"
    );
}

#[test]
fn only_the_authorizer_reads_the_admin_key_and_only_from_its_secret() {
    let template = transformed();
    let secret = json!({ "Ref": "AdminKeySecret" });
    let secrets = of_type(template, "AWS::SecretsManager::Secret");
    let [(id, admin_secret)] = secrets.as_slice() else {
        panic!("one generated secret, the admin key: {secrets:?}");
    };
    assert_eq!(id.as_str(), "AdminKeySecret");
    assert!(
        admin_secret["Properties"]["GenerateSecretString"].is_object(),
        "generated at deploy time"
    );
    for (id, function) in of_type(template, "AWS::Lambda::Function") {
        let variables = function["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{id} has variables"));
        let is_authorizer = variables[FUNCTION_VARIABLE] == "authorizer";
        for (name, value) in variables {
            let about_the_admin_key =
                name.contains("ADMIN") || value.to_string().contains("AdminKey");
            if about_the_admin_key {
                assert!(
                    is_authorizer && name == "EDGECERT_ADMIN_KEY_SECRET" && *value == secret,
                    "{id}: {name} = {value}: only the authorizer gets the admin key, as its secret's ARN"
                );
            }
        }
        assert_eq!(
            variables.get("EDGECERT_ADMIN_KEY_SECRET").is_some(),
            is_authorizer,
            "{id}"
        );
    }
    // The outputs name the secret (its ARN), nothing else of it.
    let outputs = template["Outputs"].as_object().expect("outputs");
    for (name, output) in outputs {
        let value = output["Value"].to_string();
        if value.contains("AdminKeySecret") {
            assert_eq!(output["Value"], secret, "output {name}");
        }
    }
}

#[test]
fn workers_send_what_fails_for_good_to_queues_and_the_renewer_runs_alone() {
    let template = transformed();
    let resources = resources(template);
    let renewer = &resources["RenewerFunction"]["Properties"];
    assert_eq!(renewer["ReservedConcurrentExecutions"], 1);
    let invoke_config = of_type(template, "AWS::Lambda::EventInvokeConfig");
    let [(_, invoke_config)] = invoke_config.as_slice() else {
        panic!("the renewer's async invocations are configured once: {invoke_config:?}");
    };
    assert_eq!(
        invoke_config["Properties"]["FunctionName"],
        json!({ "Ref": "RenewerFunction" })
    );
    assert_eq!(
        invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        json!({ "Fn::GetAtt": ["RenewerFailureQueue", "Arn"] })
    );
    let mappings = of_type(template, "AWS::Lambda::EventSourceMapping");
    let [(_, stream)] = mappings.as_slice() else {
        panic!("one stream mapping, the issuer's: {mappings:?}");
    };
    let stream = &stream["Properties"];
    assert_eq!(stream["FunctionName"], json!({ "Ref": "IssuerFunction" }));
    assert_eq!(
        stream["DestinationConfig"]["OnFailure"]["Destination"],
        json!({ "Fn::GetAtt": ["IssuerFailureQueue", "Arn"] })
    );
    assert!(stream["MaximumRecordAgeInSeconds"].is_number(), "{stream}");
    // Each queue has an alarm on its depth, and every alarm notifies the topic.
    let topic = json!({ "Fn::If": ["CreateAlarmTopic", { "Ref": "AlarmTopic" }, { "Ref": "AlarmTopicArn" }] });
    let alarms = of_type(template, "AWS::CloudWatch::Alarm");
    for queue in ["IssuerFailureQueue", "RenewerFailureQueue"] {
        assert!(
            alarms
                .iter()
                .any(|(_, alarm)| alarm["Properties"]["Dimensions"][0]["Value"]
                    == json!({ "Fn::GetAtt": [queue, "QueueName"] })),
            "{queue} has a depth alarm"
        );
    }
    for (id, alarm) in &alarms {
        assert_eq!(alarm["Properties"]["AlarmActions"], json!([topic]), "{id}");
    }
    let metrics: BTreeSet<&str> = alarms
        .iter()
        .filter_map(|(_, alarm)| alarm["Properties"]["MetricName"].as_str())
        .collect();
    for metric in [
        "Errors",
        "5xx",
        "ApproximateNumberOfMessagesVisible",
        "UnHealthyHostCount",
        "CertificatesExpiringWithin7Days",
    ] {
        assert!(
            metrics.contains(metric),
            "an alarm on {metric}: {metrics:?}"
        );
    }
    assert_eq!(
        resources["Table"]["Properties"]["DeletionProtectionEnabled"],
        true
    );
}
