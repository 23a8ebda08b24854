//! `pyrogate-load`: see the library documentation (`pyrogate_load`) for the subcommands.

use std::process::ExitCode;

use clap::Parser as _;
use pyrogate_load::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
    let report = pyrogate_load::load::run(&cfg, &mut err)?;
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
