//! `edgecert-migrate-table`: moves an EdgeCert table written by an earlier build to the
//! sharded layout ([`DynamoStore::migrate_layout`]), then exits.
//!
//! ```text
//! edgecert-migrate-table --table NAME [--endpoint URL] [--segments N] [--concurrency N]
//!                        [--max-passes N]
//! ```
//!
//! AWS credentials and region come from the environment as for any SDK tool (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`...); `--endpoint` points it at a local emulator with
//! dummy credentials instead. Exit status: 0 when the table is migrated, 2 when writers of an
//! earlier build kept adding items (run it again once they are gone), 1 on an error.

use std::process::ExitCode;

use edgecert_aws::{AwsClients, DynamoStore, MigrationOptions};

const USAGE: &str = "usage: edgecert-migrate-table --table NAME [--endpoint URL] \
                     [--segments N] [--concurrency N] [--max-passes N]";

/// The command line.
struct Args {
    table: String,
    endpoint: Option<String>,
    options: MigrationOptions,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut table = None;
    let mut endpoint = None;
    let mut options = MigrationOptions::default();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |value: &str| {
            value
                .parse::<u32>()
                .ok()
                .filter(|number| *number > 0)
                .ok_or_else(|| format!("{flag} takes a positive number, not {value:?}"))
        };
        match flag.as_str() {
            "--table" => table = Some(value),
            "--endpoint" => endpoint = Some(value),
            "--segments" => options.segments = number(&value)?,
            "--concurrency" => options.concurrency = number(&value)? as usize,
            "--max-passes" => options.max_passes = number(&value)?,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(Args {
        table: table.ok_or_else(|| format!("--table is required\n{USAGE}"))?,
        endpoint,
        options,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(1);
        }
    };
    let clients = match &args.endpoint {
        Some(endpoint) => AwsClients::for_local_endpoint(endpoint).await,
        None => AwsClients::from_env().await,
    };
    let store = DynamoStore::new(clients.dynamodb, args.table.clone());
    match store.migrate_layout(&args.options).await {
        Ok(report) => {
            println!(
                "table {}: {} pass(es), {} items scanned; moved {} domains, {} zones, {} \
                 certificates; re-keyed {} tombstones",
                args.table,
                report.passes,
                report.items_scanned,
                report.domains_moved,
                report.zones_moved,
                report.certificates_moved,
                report.tombstones_rekeyed,
            );
            if report.already_migrated {
                println!("already migrated: nothing to do");
            }
            if report.complete {
                println!("migrated: every item has the sharded layout");
                ExitCode::SUCCESS
            } else {
                println!(
                    "not finished: every pass found new items of the earlier layout (is a \
                     process of an earlier build still writing?); run it again"
                );
                ExitCode::from(2)
            }
        }
        Err(error) => {
            eprintln!("migrating table {} failed: {error}", args.table);
            ExitCode::from(1)
        }
    }
}
