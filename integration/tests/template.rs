//! template.yaml as CloudFormation receives it (the SAM transform's output): two stacks
//! coexist in one account and region, the `Rules` refuse half-given combinations, the
//! operations settings (log retention, the admin key's secret, failure destinations, alarms)
//! are on every resource they must be on, the DNS instructions carry the addresses the edge's
//! NLB holds, and the terminator scales on CPU.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use edgecert_integration::template::{
    FUNCTION_VARIABLE, Stack, StackContext, parameter_values, rule_refusals, sam_transformed,
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
    // A permission names the function it lets API Gateway invoke; it creates no name.
    ("AWS::Lambda::Permission", "FunctionName"),
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

/// The functions whose answers carry DNS instructions, A/AAAA records for apex names included:
/// the handlers of functions/api/src/handlers that render `DomainView`, `SslView` (`ssl_view`)
/// or `dns_instructions`.
const DNS_INSTRUCTION_FUNCTIONS: &[&str] = &[
    "domains-create",
    "domains-get",
    "domains-list",
    "domains-update",
    "domains-verify",
    "domains-dns",
    "domains-ssl",
    "domains-nudge",
];

/// The variable holding the edge's addresses (functions/deployment, `vars::EDGE_IPS`).
const EDGE_IPS: &str = "EDGECERT_EDGE_IPS";

/// Any image: with one, the stack deploys the terminator and its NLB.
const TERMINATOR_IMAGE: (&str, &str) = (
    "TerminatorImage",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/edgecert-terminator@sha256:0000000000000000000000000000000000000000000000000000000000000000",
);

/// A stack of the transformed template with `given` (and `EdgeHostname`), checked against
/// the `Rules` first: the combinations tested here are ones a deploy accepts.
fn stack_with(template: &Value, given: &[(&str, &str)]) -> Stack {
    let mut all = vec![("EdgeHostname", "edge.example.net")];
    all.extend_from_slice(given);
    let refusals = rule_refusals(template, &parameter_values(template, &all))
        .unwrap_or_else(|error| panic!("evaluating the Rules on {given:?}: {error:#}"));
    assert!(refusals.is_empty(), "{given:?} is refused: {refusals:?}");
    Stack::new(template.clone(), "edgecert-prod", &all)
        .unwrap_or_else(|error| panic!("a stack with {given:?}: {error:#}"))
}

/// A comma-separated list of addresses, as the functions and the terminator parse it; an item
/// that is no IP address is reported (customers would get no record for it).
fn address_list(what: &str, value: &str) -> BTreeSet<IpAddr> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    let addresses: BTreeSet<IpAddr> = items
        .iter()
        .map(|item| {
            item.parse()
                .unwrap_or_else(|_| panic!("{what}: {item:?} of {value:?} is not an IP address"))
        })
        .collect();
    assert_eq!(
        addresses.len(),
        items.len(),
        "{what}: {value:?} names an address twice"
    );
    addresses
}

/// The addresses the NLB holds in `stack`: the Elastic IP whose allocation each subnet mapping
/// gets, and the mapping's IPv6 address if any. `None` when the stack deploys no NLB.
fn load_balancer_addresses(
    stack: &Stack,
    template: &Value,
    elastic_ips: &[&String],
) -> Option<BTreeSet<IpAddr>> {
    let balancers = of_type(template, "AWS::ElasticLoadBalancingV2::LoadBalancer");
    let [(id, balancer)] = balancers.as_slice() else {
        panic!("one load balancer, the edge's NLB: {balancers:?}");
    };
    if !stack
        .is_deployed(id)
        .expect("the NLB's condition evaluates")
    {
        return None;
    }
    let mappings = stack
        .resolve(&balancer["Properties"]["SubnetMappings"])
        .unwrap_or_else(|error| panic!("{id}.SubnetMappings: {error:#}"));
    let mappings = mappings
        .as_array()
        .unwrap_or_else(|| panic!("{id} places its addresses with SubnetMappings: {mappings}"));
    let mut addresses = BTreeSet::new();
    for mapping in mappings {
        let allocation = mapping["AllocationId"].as_str().unwrap_or_else(|| {
            panic!(
                "{id}: the subnet mapping {mapping} gets no Elastic IP: its address would change"
            )
        });
        let elastic_ip = elastic_ips
            .iter()
            .find(|eip| allocation == allocation_id(eip))
            .unwrap_or_else(|| {
                panic!("{id}: the allocation {allocation} is none of the stack's Elastic IPs {elastic_ips:?}")
            });
        let address = stack
            .physical_id(elastic_ip)
            .expect("an Elastic IP's address");
        addresses.insert(address.parse().expect("an Elastic IP's address parses"));
        if let Some(ipv6) = mapping.get("IPv6Address") {
            let ipv6 = ipv6
                .as_str()
                .unwrap_or_else(|| panic!("{id}: IPv6Address {ipv6}"));
            addresses.insert(
                ipv6.parse()
                    .unwrap_or_else(|_| panic!("{id}: IPv6Address {ipv6:?} is not an address")),
            );
        }
    }
    let dual_stack = addresses.iter().any(IpAddr::is_ipv6);
    let address_type = stack
        .resolve_string(&balancer["Properties"]["IpAddressType"])
        .unwrap_or_else(|error| panic!("{id}.IpAddressType: {error:#}"));
    assert_eq!(
        address_type == "dualstack",
        dual_stack,
        "{id} is {address_type} but holds {addresses:?}: AAAA records would point at nothing, or IPv6 addresses be refused"
    );
    Some(addresses)
}

/// The `AllocationId` a test's stack gives the Elastic IP `id`.
fn allocation_id(id: &str) -> String {
    format!("eipalloc-{id}")
}

/// Customers are told to point apex names (A/AAAA records) at the addresses of
/// `EDGECERT_EDGE_IPS`: those must be the Elastic IPs (and IPv6 addresses) the NLB holds, known
/// to the API, the terminator and the stack's outputs in the deploy that creates them, with no
/// second deploy to copy them over, and the same before and after the terminator arrives.
#[test]
fn apex_dns_instructions_give_the_addresses_the_edge_holds_from_the_first_deploy() {
    let template = transformed();
    let elastic_ips: Vec<&String> = of_type(template, "AWS::EC2::EIP")
        .into_iter()
        .map(|(id, resource)| {
            assert!(
                resource.get("Condition").is_none(),
                "{id} exists only under a condition: the DNS instructions would lack it until a later deploy"
            );
            id
        })
        .collect();
    assert!(
        elastic_ips.len() >= 2,
        "an Elastic IP per subnet of the NLB: {elastic_ips:?}"
    );
    let vpc = ("VpcId", "vpc-0123456789abcdef0");
    let subnet_a = ("SubnetIdA", "subnet-0123456789abcdef0");
    let subnet_b = ("SubnetIdB", "subnet-0fedcba9876543210");
    let ipv6_a = ("EdgeIpv6AddressA", "2600:1f18:aaaa:bb00::ec");
    let ipv6_b = ("EdgeIpv6AddressB", "2600:1f18:aaaa:bb01::ec");
    // Each network a deploy accepts, its parameters, and whether the edge is dual-stack in it.
    type Parameters<'a> = &'a [(&'a str, &'a str)];
    let networks: &[(&str, Parameters<'_>, bool)] = &[
        ("the stack's own VPC", &[], true),
        ("a given IPv4 VPC", &[vpc, subnet_a, subnet_b], false),
        (
            "a given dual-stack VPC",
            &[vpc, subnet_a, subnet_b, ipv6_a, ipv6_b],
            true,
        ),
    ];
    for (network, given, dual_stack) in networks {
        let with_image: Vec<(&str, &str)> =
            given.iter().copied().chain([TERMINATOR_IMAGE]).collect();
        let before_terminator = stack_with(template, given);
        let with_terminator = elastic_ips
            .iter()
            .fold(stack_with(template, &with_image), |stack, eip| {
                stack.with_attribute(eip, "AllocationId", &allocation_id(eip))
            });
        let held = load_balancer_addresses(&with_terminator, template, &elastic_ips)
            .unwrap_or_else(|| panic!("{network}: a TerminatorImage deploys the NLB"));
        let elastic_addresses: BTreeSet<IpAddr> = elastic_ips
            .iter()
            .map(|eip| with_terminator.physical_id(eip).unwrap().parse().unwrap())
            .collect();
        assert!(
            elastic_addresses.is_subset(&held),
            "{network}: the NLB holds {held:?}, not every Elastic IP of the stack {elastic_addresses:?}"
        );
        assert_eq!(
            held.iter().any(IpAddr::is_ipv6),
            *dual_stack,
            "{network}: the NLB holds {held:?}"
        );
        // Every function that is told the addresses is told these, and the ones answering DNS
        // instructions must be told.
        for stack in [&before_terminator, &with_terminator] {
            let binaries = stack.lambda_binaries().expect("the functions");
            for binary in DNS_INSTRUCTION_FUNCTIONS {
                assert!(
                    binaries.iter().any(|(_, deployed)| deployed == binary),
                    "{network}: no function {binary}: {binaries:?}"
                );
            }
            for (id, binary) in &binaries {
                let environment = stack
                    .function_environment(binary)
                    .unwrap_or_else(|error| panic!("{network}: {id}'s environment: {error:#}"));
                let value = environment.iter().find(|(name, _)| name == EDGE_IPS);
                let Some((_, value)) = value else {
                    assert!(
                        !DNS_INSTRUCTION_FUNCTIONS.contains(&binary.as_str()),
                        "{network}: {id} ({binary}) answers DNS instructions without {EDGE_IPS}: apex names would get no A/AAAA records"
                    );
                    continue;
                };
                assert_eq!(
                    address_list(&format!("{network}: {id}.{EDGE_IPS}"), value),
                    held,
                    "{network}: {id} ({binary}) is told other addresses than the NLB holds{}",
                    if DNS_INSTRUCTION_FUNCTIONS.contains(&binary.as_str()) {
                        ": customers would point apex names at them"
                    } else {
                        ""
                    }
                );
            }
        }
        let containers = with_terminator.containers().expect("the containers");
        assert!(
            !containers.is_empty(),
            "{network}: a TerminatorImage deploys the terminator"
        );
        for (task, container) in &containers {
            let environment = with_terminator
                .container_environment(container)
                .unwrap_or_else(|error| panic!("{network}: {task}/{container}: {error:#}"));
            let (_, value) = environment
                .iter()
                .find(|(name, _)| name == EDGE_IPS)
                .unwrap_or_else(|| panic!("{network}: {task}/{container} is not given {EDGE_IPS}"));
            assert_eq!(
                address_list(&format!("{network}: {task}/{container}"), value),
                held,
                "{network}: {task}/{container} is told other addresses than the NLB holds"
            );
        }
        // The operator points EdgeHostname at the outputs: the same addresses, by family.
        for stack in [&before_terminator, &with_terminator] {
            let mut outputs = BTreeSet::new();
            for (name, ipv6) in [("EdgeIpv4Addresses", false), ("EdgeIpv6Addresses", true)] {
                let output = &template["Outputs"][name];
                assert!(output.is_object(), "the stack outputs {name}");
                let listed = output["Condition"].as_str().is_none_or(|condition| {
                    stack.condition(condition).expect("the output's condition")
                });
                if !listed {
                    continue;
                }
                let value = stack
                    .resolve_string(&output["Value"])
                    .unwrap_or_else(|error| panic!("{network}: output {name}: {error:#}"));
                let addresses = address_list(&format!("{network}: output {name}"), &value);
                assert!(
                    addresses.iter().all(|address| address.is_ipv6() == ipv6),
                    "{network}: output {name} = {value}"
                );
                outputs.extend(addresses);
            }
            assert_eq!(
                outputs, held,
                "{network}: the outputs list other addresses than the NLB holds"
            );
        }
    }
}

/// The edge holds average CPU near a target by adding and removing terminator tasks, between
/// the fewest and most tasks the operator chose; a deploy never resets the count the policy
/// set, and without a terminator there is nothing to scale.
#[test]
fn the_terminator_scales_on_cpu_between_the_tasks_the_operator_chose() {
    let template = transformed();
    let (min_tasks, max_tasks) = ("TerminatorMinTasks", "TerminatorMaxTasks");
    let services = of_type(template, "AWS::ECS::Service");
    let [(service_id, service)] = services.as_slice() else {
        panic!("one ECS service, the terminator's: {services:?}");
    };
    assert!(
        service["Properties"].get("DesiredCount").is_none(),
        "{service_id} sets DesiredCount: every deploy would reset the task count the scaling policy chose"
    );
    let targets = of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget");
    let [(target_id, target)] = targets.as_slice() else {
        panic!("one scalable target, the terminator's task count: {targets:?}");
    };
    let policies = of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy");
    let [(policy_id, policy)] = policies.as_slice() else {
        panic!("one scaling policy, on the terminator's CPU: {policies:?}");
    };
    // Without an image there is no service, and a target or policy on it would fail the stack.
    for given in [&[][..], &[TERMINATOR_IMAGE][..]] {
        let stack = stack_with(template, given);
        let deployed = stack.is_deployed(service_id).unwrap();
        assert_eq!(deployed, !given.is_empty(), "{service_id} with {given:?}");
        for id in [target_id, policy_id] {
            assert_eq!(
                stack.is_deployed(id).unwrap(),
                deployed,
                "{id} with {given:?}: deployed exactly when {service_id} is"
            );
        }
    }
    // The operator's numbers (not the defaults) reach the target.
    let stack = stack_with(
        template,
        &[TERMINATOR_IMAGE, (min_tasks, "3"), (max_tasks, "9")],
    )
    .with_attribute(service_id, "Name", "edgecert-terminator-service");
    let target_properties = &target["Properties"];
    let resolve = |value: &Value| {
        stack
            .resolve_string(value)
            .unwrap_or_else(|error| panic!("{target_id}: {value}: {error:#}"))
    };
    assert_eq!(resolve(&target_properties["ServiceNamespace"]), "ecs");
    assert_eq!(
        resolve(&target_properties["ScalableDimension"]),
        "ecs:service:DesiredCount",
        "{target_id} scales the task count"
    );
    let cluster = resolve(&service["Properties"]["Cluster"]);
    assert_eq!(
        resolve(&target_properties["ResourceId"]),
        format!("service/{cluster}/edgecert-terminator-service"),
        "{target_id} scales {service_id} in its cluster"
    );
    assert_eq!(
        resolve(&target_properties["MinCapacity"]),
        "3",
        "{target_id}'s minimum is {min_tasks}"
    );
    assert_eq!(
        resolve(&target_properties["MaxCapacity"]),
        "9",
        "{target_id}'s maximum is {max_tasks}"
    );
    let policy = &policy["Properties"];
    assert_eq!(policy["PolicyType"], "TargetTrackingScaling", "{policy_id}");
    assert_eq!(
        stack
            .resolve_string(&policy["ScalingTargetId"])
            .unwrap_or_else(|error| panic!("{policy_id}.ScalingTargetId: {error:#}")),
        stack.physical_id(target_id).unwrap(),
        "{policy_id} scales {target_id}"
    );
    let tracking = &policy["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"],
        "ECSServiceAverageCPUUtilization",
        "{policy_id} tracks the service's average CPU"
    );
    let cpu = tracking["TargetValue"].as_f64().unwrap_or_default();
    assert!(
        cpu > 0.0 && cpu < 100.0,
        "{policy_id} holds CPU at {cpu} %: between 0 and 100 or it never scales one way"
    );
    // The defaults and the constraints. Rules cannot compare numbers (no rule function does),
    // so a minimum above the maximum is refused by Application Auto Scaling when the target is
    // registered, not before the stack starts.
    let defaults = parameter_values(template, &[]);
    let number = |name: &str| -> u32 {
        defaults[name]
            .parse()
            .unwrap_or_else(|_| panic!("{name}'s default {:?} is a number", defaults[name]))
    };
    let (min, max) = (number(min_tasks), number(max_tasks));
    assert!(
        min >= 2,
        "{min_tasks} defaults to {min}: one task per subnet at least, so the edge stays up when one fails"
    );
    assert!(
        min <= max,
        "{min_tasks} ({min}) above {max_tasks} ({max}) by default: the stack would fail"
    );
    for name in [min_tasks, max_tasks] {
        let parameter = &template["Parameters"][name];
        assert_eq!(parameter["Type"], "Number", "{name}");
        assert!(
            parameter["MinValue"]
                .as_u64()
                .is_some_and(|least| least >= 1),
            "{name} must refuse 0 tasks (MinValue 1 or more): the edge would answer nothing; {parameter}"
        );
    }
}
