//! One module per subcommand. Each exposes `Args` (clap) and
//! `run(Args) -> Result<ExitCode, String>`, where the error is already
//! rendered for the terminal.
pub mod debug_context;
pub mod debug_parse;
pub mod debug_pull;
pub mod login;
pub mod logout;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry_flags;
