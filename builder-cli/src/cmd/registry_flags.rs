//! The global registry flags (`--registry-mirror`, `--insecure-registry`,
//! `--registry-ca`) every command that talks to a registry shares.
use std::path::PathBuf;

use builder_core::registry::{parse_mirror, ClientOptions};

/// Registry flags, accepted before or after the subcommand.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RegistryFlags {
    /// Try HOST[:PORT] before REGISTRY (`docker.io=mirror:5000`); repeatable.
    #[arg(
        long = "registry-mirror",
        value_name = "REGISTRY=HOST[:PORT]",
        global = true
    )]
    pub mirrors: Vec<String>,
    /// Allow plain HTTP to this registry host (loopback always may).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", global = true)]
    pub insecure: Vec<String>,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long = "registry-ca", value_name = "FILE", global = true)]
    pub ca_files: Vec<PathBuf>,
}

impl RegistryFlags {
    /// The library's client options for these flags.
    pub fn client_options(&self) -> Result<ClientOptions, String> {
        let mut opts = ClientOptions::default();
        for m in &self.mirrors {
            opts.mirrors
                .push(parse_mirror(m).map_err(|e| e.to_string())?);
        }
        opts.insecure = self.insecure.clone();
        opts.ca_files = self.ca_files.clone();
        Ok(opts)
    }
}
