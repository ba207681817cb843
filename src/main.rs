//! The `mtls-gate` binary: a thin shell over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mtls_gate::cli::serve::WebhookArgs;
use mtls_gate::cli::{self, CheckArgs, EndpointsArgs, RenderArgs};
use mtls_gate::controller::RunArgs;
use mtls_gate::probe::ProbeArgs;

/// Keeps open-banking endpoints' client-certificate (MTLS) requirements correct on
/// Kubernetes ingress controllers.
#[derive(Debug, Parser)]
#[command(name = "mtls-gate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate manifests offline. Exit 0: compliant; 1: violations; 2: unusable input.
    Check(CheckArgs),
    /// Print the inputs with the managed Ingresses' client-auth settings rendered.
    /// Exit 1 when an Ingress cannot be made compliant (the message says which paths to move).
    Render(RenderArgs),
    /// Print the endpoint table.
    Endpoints(EndpointsArgs),
    /// Check the live endpoints of the profiles: each URL without and with the client
    /// certificate. Exit 0: all behave as the table demands; 1: some do not; 2: unusable
    /// input or nothing reachable.
    Probe(Box<ProbeArgs>),
    /// Print the ApiProviderProfile CRD.
    Crd,
    /// Serve the admission webhooks and the gate with the cluster view loaded from
    /// manifest files (tests, demos, benchmarks).
    Webhook(WebhookArgs),
    /// Run the operator: caches, leader-elected controller, admission webhooks and the
    /// /verify gate (every flag also reads the environment variable shown).
    Run(Box<RunArgs>),
}

/// Runs an async command on a multi-threaded runtime; exit 1 on error.
fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// `probe` prints its report and decides its own exit status (0, 1 or 2).
fn probe(args: ProbeArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(mtls_gate::probe::run(
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )) as u8
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Standard streams are locked only by the synchronous commands: the long-running ones
    // log to stderr from every thread.
    let code = match cli.command {
        Command::Check(args) => cli::check(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ) as u8,
        Command::Render(args) => cli::render(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ) as u8,
        Command::Endpoints(args) => match cli::endpoints(&args, &mut std::io::stdout().lock()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        Command::Probe(args) => probe(*args),
        Command::Webhook(args) => block_on(cli::serve::webhook(args)),
        Command::Run(args) => block_on(cli::serve::run(*args)),
        Command::Crd => match cli::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                0
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
    };
    ExitCode::from(code)
}
