//! `kiln debug parse [FILE|-]`: the parse tree in BuildKit's dump format.
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::parser;

/// Flags of `kiln debug parse`.
#[derive(clap::Args)]
pub struct Args {
    /// The Dockerfile to parse, or `-` for standard input.
    #[arg(default_value = "Dockerfile")]
    pub file: PathBuf,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let (name, bytes) = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
        ("<stdin>".to_string(), bytes)
    } else {
        let bytes =
            std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
        (args.file.display().to_string(), bytes)
    };
    match parser::parse(&bytes) {
        Ok(dockerfile) => {
            for warning in &dockerfile.warnings {
                eprintln!("warning: {name}:{}: {}", warning.line, warning.message);
            }
            println!("{}", dockerfile.dump());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.render(&String::from_utf8_lossy(&bytes), &name)),
    }
}
