//! `pyrogate-load`: see the library documentation (`pyrogate_load`) for the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pyrogate_load::cli::Command;

/// The command line: the subcommands of [`pyrogate_load::cli`] plus `soak`.
#[derive(Debug, Parser)]
#[command(
    name = "pyrogate-load",
    version,
    about = "Load generator and Pyroscope-compatible sink for pyrogate"
)]
struct MainCli {
    #[command(subcommand)]
    command: MainCommand,
}

#[derive(Debug, Subcommand)]
enum MainCommand {
    #[command(flatten)]
    Base(Command),
    /// Chaos soak: the real `pyrogate` (ack all and ack durable) under flapping sinks,
    /// hostile clients, reloads and connection floods; fails on growth, lost
    /// acknowledged profiles or failed health checks.
    Soak(pyrogate_load::soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = MainCli::parse();
    let command = match cli.command {
        MainCommand::Base(c) => c,
        MainCommand::Soak(args) => {
            return finish(args.config().and_then(|cfg| soak(&cfg)));
        }
    };
    let result = match command {
        Command::Sink(args) => {
            if let Some(dir) = &args.keep_profiles {
                pyrogate_load::sink::check::keep_profiles_in(dir.clone());
            }
            args.config()
                .and_then(|cfg| pyrogate_load::sink::run(cfg, args.exit_after))
        }
        Command::Run(args) => run(&args),
        Command::Demo(args) => demo(&args),
        Command::Bench(args) => bench(&args),
    };
    finish(result)
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyrogate-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &pyrogate_load::cli::RunArgs) -> Result<(), String> {
    let cfg = args.config()?;
    let mut err = std::io::stderr();
    let report = match args.grpc(&cfg)? {
        Some(g) => pyrogate_load::load::h2::run(&cfg, &g, &mut err)?,
        None => pyrogate_load::load::run(&cfg, &mut err)?,
    };
    print!("{}", report.render_text());
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn demo(args: &pyrogate_load::cli::DemoArgs) -> Result<(), String> {
    let cfg = args.config()?;
    let mut out = std::io::stdout();
    if pyrogate_load::demo::run(&cfg, &mut out)? {
        Ok(())
    } else {
        Err("demo: some checks failed".into())
    }
}

fn bench(args: &pyrogate_load::cli::BenchArgs) -> Result<(), String> {
    let cfg = args.config()?;
    let mut out = std::io::stdout();
    let report = pyrogate_load::bench::run(&cfg, &mut out)?;
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("bench: {} run(s) failed", report.failures.len()))
    }
}

fn soak(cfg: &pyrogate_load::soak::SoakConfig) -> Result<(), String> {
    let mut out = std::io::stdout();
    if pyrogate_load::soak::run(cfg, &mut out)? {
        Ok(())
    } else {
        Err("soak: FAILED (see the verdict above)".into())
    }
}
