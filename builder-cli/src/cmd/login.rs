//! `kiln login [-u USER] [--password-stdin] [REGISTRY]`: checks the
//! credentials against the registry, then stores them like `docker login`.
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use builder_core::registry::{Client, Credential};

use super::registry_flags::RegistryFlags;

/// Flags of `kiln login`.
#[derive(clap::Args)]
pub struct Args {
    /// The registry (default: Docker Hub).
    #[arg(default_value = "docker.io")]
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible in the process list; prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

fn read_line(prompt: &str) -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading {prompt}: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs the subcommand.
pub fn run(args: Args, flags: &RegistryFlags) -> Result<ExitCode, String> {
    let registry = normalize(&args.registry);
    let username = match args.username {
        Some(u) => u,
        None if args.password_stdin => {
            return Err("kiln login: --password-stdin needs --username".into())
        }
        None => read_line("Username: ")?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err("kiln login: --password and --password-stdin are exclusive".into())
        }
        (Some(p), false) => p,
        (None, _) => read_line("Password: ")?,
    };
    if username.is_empty() || password.is_empty() {
        return Err("kiln login: user name and password must not be empty".into());
    }
    let opts = flags.client_options()?;
    let store = opts.credentials.clone();
    let client = Client::new(opts).map_err(|e| e.to_string())?;
    let cred = Credential::Basic { username, password };
    client
        .verify_login(&registry, &cred)
        .map_err(|e| format!("kiln login: {e}"))?;
    store
        .store(&registry, &cred)
        .map_err(|e| format!("kiln login: {e}"))?;
    eprintln!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// `https://host/v1/` and `index.docker.io` name the same registries as
/// `host` and `docker.io`.
pub fn normalize(registry: &str) -> String {
    let r = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    let r = r.split('/').next().unwrap_or(r);
    match r {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}
