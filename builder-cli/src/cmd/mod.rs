//! One module per subcommand. Each exposes `Args` (clap) and
//! `run(Args) -> Result<ExitCode, String>`, where the error is already
//! rendered for the terminal.
pub mod build;
pub mod debug_context;
pub mod debug_parse;
