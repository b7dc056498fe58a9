//! Rendering build progress: `--progress=auto|tty|plain|rawjson|quiet`.
//!
//! The library emits [`Event`]s through its `Reporter` trait; this module is
//! the only place they become text. Each renderer is also usable on any
//! writer so the tests can compare its output exactly.
mod plain;
mod tty;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use builder_core::progress::{Event, Reporter, StepId, StepPlace};

pub use plain::Plain;
pub use tty::Tty;

/// The `--progress` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// A live view of the running steps.
    Tty,
    /// Plain lines (CI logs).
    Plain,
    /// One JSON event per line.
    Rawjson,
    /// Nothing but errors.
    Quiet,
}

enum Kind {
    Plain(Mutex<Plain>),
    Json(Mutex<Box<dyn Write + Send>>),
    Tty(Tty),
}

/// A [`Reporter`] that renders to stderr (or a given writer).
pub struct Renderer {
    kind: Kind,
}

impl Renderer {
    /// The renderer for `mode` on stderr.
    pub fn stderr(mode: ProgressMode) -> Renderer {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        if mode == ProgressMode::Tty {
            let (width, height) = tty::terminal_size();
            return Renderer {
                kind: Kind::Tty(Tty::start(Box::new(std::io::stderr()), width, height)),
            };
        }
        Renderer::on(mode, Box::new(std::io::stderr()))
    }

    /// The renderer for `mode` on `out` (`Auto` and `Tty` render plain
    /// lines here: only [`Renderer::stderr`] knows about terminals).
    pub fn on(mode: ProgressMode, out: Box<dyn Write + Send>) -> Renderer {
        let kind = match mode {
            ProgressMode::Rawjson => Kind::Json(Mutex::new(out)),
            ProgressMode::Quiet => Kind::Plain(Mutex::new(Plain::quiet(out))),
            _ => Kind::Plain(Mutex::new(Plain::new(out))),
        };
        Renderer { kind }
    }

    /// Stops live updates and draws the final state.
    pub fn finish(self) {
        if let Kind::Tty(t) = self.kind {
            t.finish();
        }
    }
}

impl Reporter for Renderer {
    fn event(&self, e: &Event) {
        match &self.kind {
            Kind::Plain(p) => p.lock().unwrap_or_else(|p| p.into_inner()).event(e),
            Kind::Json(out) => {
                let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(line) = serde_json::to_string(e) {
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Kind::Tty(t) => t.event(e),
        }
    }
}

/// `[stage 2/5] TEXT`, BuildKit's step header.
pub fn header(place: &StepPlace, text: &str) -> String {
    if place.position == 0 || place.total == 0 {
        format!("[{}] {text}", place.stage)
    } else {
        format!(
            "[{} {}/{}] {text}",
            place.stage, place.position, place.total
        )
    }
}

/// `0.4s`.
pub fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `3.40MB`, as BuildKit shows sizes.
pub fn fmt_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.2}kB", n / 1e3)
    } else {
        format!("{n}B")
    }
}

/// Splits each step's output into lines, keeping unfinished ones.
#[derive(Default)]
pub struct LineBuffer {
    partial: HashMap<StepId, Vec<u8>>,
}

impl LineBuffer {
    /// Adds output of `id`; returns the lines it completed.
    pub fn push(&mut self, id: StepId, data: &[u8]) -> Vec<String> {
        let buf = self.partial.entry(id).or_default();
        buf.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            lines.push(clean(&line));
        }
        lines
    }

    /// The unfinished line of `id`, if any.
    pub fn flush(&mut self, id: StepId) -> Option<String> {
        let buf = self.partial.remove(&id)?;
        (!buf.is_empty()).then(|| clean(&buf))
    }
}

/// A line as text: trailing newline and carriage returns dropped (progress
/// bars redraw with `\r`: the last redraw wins), control bytes removed so
/// a step's output cannot move the cursor.
fn clean(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    let text = text.rsplit('\r').next().unwrap_or("");
    text.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}

#[cfg(test)]
mod tests;
