//! The `mtls-gate` binary: a thin shell over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mtls_gate::cli::{self, CheckArgs, EndpointsArgs, RenderArgs};

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
    /// Print the ApiProviderProfile CRD.
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = match cli.command {
        Command::Check(args) => cli::check(&args, &mut out, &mut err) as u8,
        Command::Render(args) => cli::render(&args, &mut out, &mut err) as u8,
        Command::Endpoints(args) => match cli::endpoints(&args, &mut out) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
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
