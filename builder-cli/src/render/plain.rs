//! `--progress=plain`: BuildKit's plain lines, for CI logs.
//!
//! ```text
//! #3 [app 2/5] COPY . /app
//! #3 CACHED
//!
//! #4 [app 3/5] RUN make
//! #4 cache miss: file src/main.rs changed
//! #4 cc -o app main.c
//! #4 DONE 0.4s
//! ```
//!
//! `quiet` uses the same renderer with everything but failures switched off.
use std::collections::HashMap;
use std::io::Write;

use builder_core::progress::{Event, StepId, StepResult};

use super::{fmt_bytes, fmt_secs, header, LineBuffer};

/// Renders events as lines.
pub struct Plain {
    out: Box<dyn Write + Send>,
    only_errors: bool,
    headers: HashMap<StepId, String>,
    partial: LineBuffer,
}

impl Plain {
    /// Everything, as lines.
    pub fn new(out: Box<dyn Write + Send>) -> Plain {
        Plain {
            out,
            only_errors: false,
            headers: HashMap::new(),
            partial: LineBuffer::default(),
        }
    }

    /// Only failed steps and the build's failure.
    pub fn quiet(out: Box<dyn Write + Send>) -> Plain {
        Plain {
            only_errors: true,
            ..Plain::new(out)
        }
    }

    /// Renders one event.
    pub fn event(&mut self, e: &Event) {
        let mut lines: Vec<String> = Vec::new();
        match e {
            Event::StepStarted {
                id, place, text, ..
            } => {
                let h = header(place, text);
                lines.push(format!("#{} {h}", id.0));
                self.headers.insert(*id, h);
            }
            Event::StepCached { id, .. } => {
                lines.push(format!("#{} CACHED", id.0));
                lines.push(String::new());
            }
            Event::CacheMiss { id, reasons, .. } => {
                lines.push(format!("#{} cache miss: {}", id.0, reasons.join("; ")));
            }
            Event::StepLog { id, data, .. } => {
                for l in self.partial.push(*id, data) {
                    lines.push(format!("#{} {l}", id.0));
                }
            }
            Event::StepFinished {
                id,
                duration,
                result,
            } => {
                if let Some(l) = self.partial.flush(*id) {
                    lines.push(format!("#{} {l}", id.0));
                }
                let word = match result {
                    StepResult::Done => "DONE",
                    StepResult::Cancelled => "CANCELED",
                };
                lines.push(format!("#{} {word} {}", id.0, fmt_secs(*duration)));
                lines.push(String::new());
            }
            Event::StepFailed {
                id,
                error,
                last_lines,
                ..
            } => {
                let rest = self.partial.flush(*id);
                if !self.only_errors {
                    if let Some(l) = rest {
                        lines.push(format!("#{} {l}", id.0));
                    }
                }
                lines.push(format!("#{} ERROR: {error}", id.0));
                if !last_lines.is_empty() {
                    let h = self.headers.get(id).cloned().unwrap_or_default();
                    lines.push("------".into());
                    lines.push(format!(" > {h}:"));
                    lines.extend(last_lines.iter().cloned());
                    lines.push("------".into());
                }
                lines.push(String::new());
            }
            Event::Blob {
                id,
                digest,
                total,
                outcome: Some(outcome),
                ..
            } => {
                let short = digest
                    .strip_prefix("sha256:")
                    .and_then(|h| h.get(..12))
                    .unwrap_or(digest);
                lines.push(format!(
                    "#{} sha256:{short} {} {outcome}",
                    id.0,
                    fmt_bytes(*total)
                ));
            }
            Event::Warning { id, message } => match id {
                Some(id) => lines.push(format!("#{} WARN: {message}", id.0)),
                None => lines.push(format!("WARN: {message}")),
            },
            Event::BuildFinished {
                success: false,
                duration,
                ..
            } => lines.push(format!("ERROR: build failed after {}", fmt_secs(*duration))),
            _ => {}
        }
        if self.only_errors
            && !matches!(
                e,
                Event::StepFailed { .. } | Event::BuildFinished { success: false, .. }
            )
        {
            return;
        }
        for l in lines {
            // A closed stderr must not stop the build.
            let _ = writeln!(self.out, "{l}");
        }
        let _ = self.out.flush();
    }
}
