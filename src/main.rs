//! The `mtls-gate` binary: a thin shell over the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use mtls_gate::cli::init::InitArgs;
use mtls_gate::cli::serve::WebhookArgs;
use mtls_gate::cli::{self, CheckArgs, EndpointsArgs, Output, RenderArgs};
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
    /// Evaluate manifests offline. Exit 0: compliant (or only findings --fail-on lets
    /// pass); 1: violations; 2: unusable input.
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
    /// Print a starter ApiProviderProfile (enforcement Audit): the documented template, or
    /// one built from the bank's OIDC discovery document.
    Init(InitArgs),
    /// Print a shell completion script, e.g. `mtls-gate completion bash > /etc/bash_completion.d/mtls-gate`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the version, the Kubernetes API version built against, and the platform.
    Version {
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Output,
    },
    /// Serve the admission webhooks and the gate with the cluster view loaded from
    /// manifest files (tests, demos, benchmarks).
    Webhook(WebhookArgs),
    /// Run the operator: caches, leader-elected controller, admission webhooks and the
    /// /verify gate (every flag also reads the environment variable shown).
    Run(Box<RunArgs>),
}

/// Writes a line to stderr, ignoring a closed or broken stream: `eprintln!` would panic
/// (exit 101) when stderr is a pipe whose reader has gone, e.g. `mtls-gate run 2>&1 | head`.
fn report_error(message: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// Writes to stdout; a closed pipe (`| head`) is the reader's choice, not an error.
fn print_out(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            report_error(format_args!("error: cannot write the output: {e}"));
            2
        }
    }
}

/// The `version` subcommand's facts.
fn version_info() -> serde_json::Value {
    serde_json::json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "kubernetesApi": if cfg!(feature = "k8s-v1_33") { "1.33" } else { "chosen by the embedding crate" },
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// Runs an async command on a multi-threaded runtime; exit 1 on error.
fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report_error(format_args!("error: cannot start the async runtime: {e}"));
            return 1;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => 0,
        Err(e) => {
            report_error(format_args!("error: {e:#}"));
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
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(e) => {
                report_error(format_args!("error: {e}"));
                2
            }
        },
        Command::Probe(args) => probe(*args),
        Command::Init(args) => {
            let mut text = Vec::new();
            match cli::init::init(&args, &mut text) {
                Ok(()) => print_out(&String::from_utf8_lossy(&text)),
                Err(e) => {
                    report_error(format_args!("error: {e:#}"));
                    2
                }
            }
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mtls-gate", &mut script);
            print_out(&String::from_utf8_lossy(&script))
        }
        Command::Version { output } => {
            let info = version_info();
            match output {
                Output::Json => print_out(&format!("{info:#}\n")),
                Output::Text => print_out(&format!(
                    "mtls-gate {} (Kubernetes API {}, {}/{})\n",
                    info["version"].as_str().unwrap_or_default(),
                    info["kubernetesApi"].as_str().unwrap_or_default(),
                    info["os"].as_str().unwrap_or_default(),
                    info["arch"].as_str().unwrap_or_default(),
                )),
            }
        }
        Command::Webhook(args) => block_on(cli::serve::webhook(args)),
        Command::Run(args) => block_on(cli::serve::run(*args)),
        Command::Crd => match cli::crd_yaml() {
            Ok(yaml) => print_out(&yaml),
            Err(e) => {
                report_error(format_args!("error: {e:#}"));
                2
            }
        },
    };
    ExitCode::from(code)
}
