//! One deployment configuration: every environment variable EdgeCert's code reads is tied to
//! template.yaml and to the local runner's defaults.
//!
//! What a process reads is not listed by hand: each process's configuration parsers (the
//! shared [`DeploymentConfig`], the authorizer's admin key, the workers' [`WorkerConfig`], the
//! terminator's [`TerminatorDeployment`]) run on a lookup that records every name they ask
//! for. Then:
//!
//! - every function and container template.yaml deploys (SAM-transformed, default parameters)
//!   starts with the environment the template gives it, and reads every variable it is given
//!   (no dead or misspelt variable);
//! - the local runner's variables parse with the same parser, and every shared variable is
//!   either set locally or listed, with its reason, in [`NOT_SET_LOCALLY`]; the workers' and
//!   the edge's local defaults are their parsers' own;
//! - no `"EDGECERT_…"` name appears in product code that no parser reads and that is not one
//!   of the local runner's own flags ([`edgecert_local::vars`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use edgecert_api::ROUTES;
use edgecert_deployment::DeploymentConfig;
use edgecert_integration::template::{Stack, transformed_template};
use edgecert_integration::workspace_root;
use edgecert_local::stack::NOT_SET_LOCALLY;
use edgecert_local::{LocalCa, LocalOptions};
use edgecert_terminator::{DeploymentConfig as TerminatorDeployment, TerminatorConfig};
use edgecert_workers::WorkerConfig;

/// Read by every process outside its configuration: the log filter (tracing's `EnvFilter`).
const READ_BY_EVERY_PROCESS: &[&str] = &["RUST_LOG"];

/// A variable's name and value.
type Environment = Vec<(String, String)>;

/// What the processes of EdgeCert are, by what they parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    /// An API route's function.
    ApiFunction,
    /// The API's Lambda authorizer.
    Authorizer,
    /// The issuer or the renewer.
    Worker,
    /// The edge terminator's container.
    Terminator,
    /// The dashboard's function: it serves files built into it and reads no configuration
    /// (the template's Globals reach it all the same).
    Dashboard,
}

impl Process {
    /// The process a Lambda binary is.
    fn of_binary(binary: &str) -> Process {
        if binary == "authorizer" {
            Process::Authorizer
        } else if binary == "dashboard" {
            Process::Dashboard
        } else if ["issuer", "renewer"].contains(&binary) {
            Process::Worker
        } else if ROUTES.iter().any(|route| route.function == binary) {
            Process::ApiFunction
        } else {
            panic!(
                "template.yaml deploys the binary {binary}, which is no EdgeCert process this test knows"
            )
        }
    }

    /// Runs the process's configuration parsers on `lookup`.
    fn parse(self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let shared = || DeploymentConfig::from_lookup(lookup).map_err(|error| error.to_string());
        match self {
            Process::ApiFunction => shared().map(drop),
            Process::Authorizer => {
                shared()?;
                edgecert_api::config::admin_key(lookup)
                    .map(drop)
                    .map_err(|error| error.to_string())
            }
            Process::Worker => {
                shared()?
                    .required_acme("the workers")
                    .map_err(|error| error.to_string())?;
                WorkerConfig::from_lookup(lookup)
                    .map(drop)
                    .map_err(|error| error.to_string())
            }
            Process::Terminator => TerminatorDeployment::from_lookup(lookup)
                .map(drop)
                .map_err(|error| error.to_string()),
            Process::Dashboard => Ok(()),
        }
    }
}

/// Runs `process`'s parsers on `environment`; returns their outcome and every name they read.
fn read(
    process: Process,
    environment: &[(String, String)],
) -> (Result<(), String>, BTreeSet<String>) {
    let asked = RefCell::new(BTreeSet::new());
    let values: BTreeMap<&str, &str> = environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let lookup = |name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        values.get(name).map(|value| (*value).to_owned())
    };
    let outcome = process.parse(&lookup);
    let mut asked = asked.into_inner();
    asked.extend(READ_BY_EVERY_PROCESS.iter().map(|name| (*name).to_owned()));
    (outcome, asked)
}

/// template.yaml transformed, with the parameters it has no default for, and a terminator
/// image so that the terminator is deployed too.
fn stack() -> Stack {
    let template = transformed_template().expect("template.yaml transforms (SAM venv)");
    Stack::new(
        template,
        "edgecert-configuration",
        &[
            ("EdgeHostname", "edge.example.net"),
            (
                "TerminatorImage",
                "registry.example.net/edgecert-terminator:1",
            ),
        ],
    )
    .expect("a stack of template.yaml with its default parameters")
}

#[test]
fn every_deployed_process_starts_with_its_template_environment_and_reads_all_of_it() {
    let stack = stack();
    let mut deployed: Vec<(String, Process, Environment)> = Vec::new();
    for (_, binary) in stack.lambda_binaries().expect("the stack's functions") {
        let environment = stack
            .function_environment(&binary)
            .unwrap_or_else(|error| panic!("the environment of {binary}: {error:#}"));
        deployed.push((binary.clone(), Process::of_binary(&binary), environment));
    }
    for (_, container) in stack.containers().expect("the stack's containers") {
        assert_eq!(
            container, "terminator",
            "a container this test does not know"
        );
        let environment = stack
            .container_environment(&container)
            .unwrap_or_else(|error| panic!("the environment of {container}: {error:#}"));
        deployed.push((container, Process::Terminator, environment));
    }
    for process in [
        Process::ApiFunction,
        Process::Authorizer,
        Process::Worker,
        Process::Terminator,
    ] {
        assert!(
            deployed.iter().any(|(_, kind, _)| *kind == process),
            "template.yaml deploys no {process:?}"
        );
    }

    let mut problems = Vec::new();
    for (name, process, environment) in &deployed {
        if *process == Process::Dashboard {
            // Only the Globals every function gets; it reads none of them.
            continue;
        }
        let (outcome, asked) = read(*process, environment);
        if let Err(error) = outcome {
            // A parser stops at its first error: what it did not read yet says nothing.
            problems.push(format!(
                "{name} would not start with the environment template.yaml gives it: {error}"
            ));
            continue;
        }
        for (variable, _) in environment {
            if !asked.contains(variable) {
                problems.push(format!(
                    "template.yaml gives {name} {variable}, which its code never reads"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_local_runner_sets_every_shared_variable_through_the_same_parser() {
    let options = LocalOptions::new(PathBuf::from(".edgecert"));
    let ca = LocalCa {
        directory_url: "https://127.0.0.1:14000/dir".to_owned(),
        listener_root: PathBuf::from("/tmp/pebble/ca.pem"),
        dns_server: "127.0.0.1:8053".parse().expect("an address"),
    };
    let local: Vec<(String, String)> = options
        .deployment_variables(&ca)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let (outcome, asked) = read(Process::ApiFunction, &local);
    outcome.expect("the local runner's variables parse");
    let config = options
        .deployment_config(&ca)
        .expect("the local configuration");
    assert!(config.origin_policy.allow_loopback);
    assert_eq!(config.dns_server, Some(ca.dns_server));

    let set: BTreeSet<&str> = local.iter().map(|(name, _)| name.as_str()).collect();
    let not_set: BTreeMap<&str, &str> = NOT_SET_LOCALLY.iter().copied().collect();
    let mut problems = Vec::new();
    for variable in asked
        .iter()
        .filter(|name| !READ_BY_EVERY_PROCESS.contains(&name.as_str()))
    {
        match (set.contains(variable.as_str()), not_set.get(variable.as_str())) {
            (true, None) | (false, Some(_)) => {}
            (true, Some(_)) => problems.push(format!(
                "{variable} is set locally but listed in NOT_SET_LOCALLY"
            )),
            (false, None) => problems.push(format!(
                "the shared configuration reads {variable}, which the local runner neither sets nor lists in NOT_SET_LOCALLY"
            )),
        }
    }
    for variable in &set {
        if !asked.contains(*variable) {
            problems.push(format!(
                "the local runner sets {variable}, which the shared configuration never reads"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The workers' and the edge's local defaults are what their parsers give a deployment
    // that does not set their variables.
    assert_eq!(
        options.workers,
        WorkerConfig::from_lookup(|_| None).expect("the workers' defaults")
    );
    assert_eq!(
        format!("{:?}", options.edge),
        format!(
            "{:?}",
            TerminatorConfig::from_lookup(|_| None).expect("the edge's defaults")
        )
    );
}

/// The `"EDGECERT_…"` string literals of the Rust files under `dir`, with their file.
fn variable_names_in(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            variable_names_in(&path, found);
            continue;
        }
        if path.extension().and_then(|extension| extension.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        let mut rest = text.as_str();
        while let Some(start) = rest.find("\"EDGECERT_") {
            let literal = &rest[start + 1..];
            let end = literal
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(literal.len());
            if literal[end..].starts_with('"') {
                found.push((path.clone(), literal[..end].to_owned()));
            }
            rest = &literal[end..];
        }
    }
}

#[test]
fn every_variable_named_in_product_code_is_read_by_a_parser_or_the_local_runner() {
    // Every name any parser reads, on an environment where every conditional read happens.
    let mut read_somewhere: BTreeSet<String> = BTreeSet::new();
    let everything: Vec<(String, String)> = [
        (edgecert_deployment::vars::EDGE_HOSTNAME, "edge.example.net"),
        (edgecert_deployment::vars::TABLE_NAME, "edgecert"),
        (
            edgecert_deployment::vars::ACME_DIRECTORY,
            "https://acme.example.net/directory",
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    for process in [
        Process::ApiFunction,
        Process::Authorizer,
        Process::Worker,
        Process::Terminator,
    ] {
        let (outcome, asked) = read(process, &everything);
        outcome.unwrap_or_else(|error| panic!("{process:?}: {error}"));
        read_somewhere.extend(asked);
    }
    read_somewhere.extend(
        edgecert_local::vars::ALL
            .iter()
            .map(|name| (*name).to_owned()),
    );

    let root = workspace_root();
    let mut product_sources: Vec<PathBuf> = vec![
        root.join("edge-terminator/src"),
        root.join("integration/local/src"),
    ];
    for crate_dir in std::fs::read_dir(root.join("functions")).expect("functions/") {
        let source = crate_dir.expect("a crate").path().join("src");
        if source.is_dir() {
            product_sources.push(source);
        }
    }
    let mut found = Vec::new();
    for dir in &product_sources {
        variable_names_in(dir, &mut found);
    }
    assert!(
        found.iter().any(|(_, name)| name == "EDGECERT_TABLE_NAME"),
        "the scan finds the variables' names"
    );
    let unread: Vec<String> = found
        .iter()
        .filter(|(_, name)| !read_somewhere.contains(name))
        .map(|(path, name)| format!("{name} in {}", path.display()))
        .collect();
    assert!(
        unread.is_empty(),
        "named in product code but read by no configuration parser (add it to one, or to edgecert_local::vars):\n{}",
        unread.join("\n")
    );
}
