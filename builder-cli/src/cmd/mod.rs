//! One module per subcommand. Each exposes `Args` (clap) and
//! `run(Args) -> Result<ExitCode, String>`, where the error is already
//! rendered for the terminal.
pub mod build;
pub mod debug_context;
pub mod debug_parse;
pub mod debug_pull;
pub mod images;
pub mod inspect;
pub mod login;
pub mod logout;
pub mod progress;
pub mod prune;
pub mod pull;
pub mod push;
pub mod registry_flags;
pub mod rmi;

/// Opens the store at `--root` or the default location.
pub fn open_store(root: Option<std::path::PathBuf>) -> Result<builder_core::store::Store, String> {
    let root = root.unwrap_or_else(builder_core::store::Store::default_root);
    builder_core::store::Store::open(&root).map_err(|e| format!("opening store: {e}"))
}
