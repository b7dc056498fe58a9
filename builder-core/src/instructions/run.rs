//! What a RUN step executes, as BuildKit's `dispatchRun` builds it: the
//! shell prefix, heredoc scripts, and the history line.
use super::error::InstructionErrorKind as K;
use super::heredoc::{chomp_heredoc, heredoc_marker};
use super::state::StageState;
use super::types::{CommandLine, InlineFile, Run};

/// The shell used when the image sets none (Linux).
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// A RUN step ready to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInvocation {
    /// The process's argv.
    pub args: Vec<String>,
    /// A heredoc starting with `#!`: write `data` as file `name` with mode
    /// 0755 into an otherwise empty directory mounted read-only at
    /// `/dev/pipes/`; `args` runs `/dev/pipes/<name>`.
    pub script: Option<InlineFile>,
    /// The image history entry's `created_by`.
    pub created_by: String,
}

/// Shell form: `shell... "joined args"` (BuildKit's `withShell`); `shell`
/// empty means [`DEFAULT_SHELL`].
pub fn with_shell(shell: &[String], args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = if shell.is_empty() {
        DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()
    } else {
        shell.to_vec()
    };
    out.push(args.join(" "));
    out
}

impl StageState {
    /// The argv, optional script file and history line for `run`, given the
    /// image's current SHELL (`[]` for none). Heredocs: a lone `<<EOF`
    /// command runs the body (as a file when it starts with `#!`);
    /// otherwise the bodies are appended for the shell to read.
    pub fn run_invocation(&self, run: &Run, shell: &[String]) -> Result<RunInvocation, K> {
        let mut args = run.cmd.args();
        let shell_form = matches!(run.cmd, CommandLine::Shell(_));
        let mut script = None;
        if !run.files.is_empty() {
            let ([only], true) = (args.as_slice(), shell_form) else {
                return Err(K::BadArguments(format!(
                    "parsing produced an invalid run command: {args:?}"
                )));
            };
            match (heredoc_marker(only), run.files.first()) {
                (Some(_), Some(first)) => {
                    let data = if first.chomp {
                        chomp_heredoc(&first.data)
                    } else {
                        first.data.clone()
                    };
                    if data.starts_with("#!") {
                        args = vec![format!("/dev/pipes/{}", first.name)];
                        script = Some(InlineFile {
                            data,
                            chomp: false,
                            ..first.clone()
                        });
                    } else {
                        args = vec![data];
                    }
                }
                _ => {
                    let mut s = only.clone();
                    for f in &run.files {
                        s.push('\n');
                        s.push_str(&f.data);
                        s.push_str(&f.name);
                    }
                    args = vec![s];
                }
            }
        }
        // A `#!` script is executed directly: BuildKit still prefixes the
        // shell, which then runs the file path as a command.
        if shell_form {
            args = with_shell(shell, &args);
        }
        Ok(RunInvocation {
            created_by: format!("RUN {} # buildkit", self.history_args(&args)),
            args,
            script,
        })
    }

    /// BuildKit's `runCommandString`: `|N K=V ...` for the stage's declared
    /// ARGs (values as the step sees them), then the argv.
    fn history_args(&self, args: &[String]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, default) in self.declared_args() {
            let v = self
                .env()
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .or_else(|| default.clone())
                .unwrap_or_default();
            match pairs.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v,
                None => pairs.push((k.clone(), v)),
            }
        }
        let mut parts: Vec<String> = Vec::new();
        if !pairs.is_empty() {
            parts.push(format!("|{}", pairs.len()));
            parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(args.iter().cloned());
        parts.join(" ")
    }
}
