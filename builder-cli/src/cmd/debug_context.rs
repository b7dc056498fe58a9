//! `kiln debug context [-f Dockerfile] [--why PATH] DIR`: what a build of
//! DIR may read, or why one path is in or out.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::context::{BuildContext, ContextSource, DockerfileFlag, WalkOptions};

/// Flags of `kiln debug context`.
#[derive(clap::Args)]
pub struct Args {
    /// The Dockerfile (`-` for standard input); by default `Dockerfile`,
    /// else `dockerfile`, at the context root.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Instead of the listing, name the .dockerignore pattern that decides
    /// whether this context-relative path is sent.
    #[arg(long, value_name = "PATH")]
    pub why: Option<String>,
    /// Print each entry's content digest before its path.
    #[arg(long)]
    pub digests: bool,
    /// The context: a directory, a tar archive, or `-` for a tar on stdin.
    pub context: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let source = ContextSource::from_arg(&args.context);
    let flag = match &args.file {
        None => DockerfileFlag::Default,
        Some(p) if p.as_os_str() == "-" => DockerfileFlag::Stdin,
        Some(p) => DockerfileFlag::Path(p.clone()),
    };
    let ctx = BuildContext::open(&source, &flag, &mut std::io::stdin().lock())
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.why {
        let why = ctx.why(path);
        let verdict = if why.excluded { "excluded" } else { "included" };
        let line = match why.rule {
            Some(rule) => format!("{path}: {verdict} by {rule}"),
            None => format!("{path}: {verdict}: no pattern matched"),
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let listing = ctx
        .walk(&WalkOptions {
            hash: args.digests,
            cache_dir: None,
        })
        .map_err(|e| e.to_string())?;
    for node in &listing.nodes {
        // A name that is not UTF-8 shows its raw bytes as `\xNN`.
        let shown = builder_core::bytename::show_path(&node.path);
        let written = match (&node.digest, args.digests) {
            (Some(d), true) => writeln!(out, "{d}  {shown}"),
            _ => writeln!(out, "{shown}"),
        };
        if let Err(e) = written {
            // A closed pipe (`| head`) is not a failure of ours.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.to_string());
        }
    }
    Ok(ExitCode::SUCCESS)
}
