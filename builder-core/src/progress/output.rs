//! A RUN step's process output as events: the sandbox's [`OutputSink`]
//! turned into `StepLog` events of one step, keeping the last lines for the
//! `StepFailed` event if the process fails.
use std::collections::VecDeque;

use super::{Event, Reporter, StepId, Stream};
use crate::sandbox::{self, OutputSink};

/// Lines kept for a failure report.
const KEEP: usize = 20;

/// Forwards a process's output to a [`Reporter`] as step `id`'s log.
pub struct StepOutput<'a> {
    reporter: &'a dyn Reporter,
    id: StepId,
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl<'a> StepOutput<'a> {
    /// Output of step `id`.
    pub fn new(reporter: &'a dyn Reporter, id: StepId) -> StepOutput<'a> {
        StepOutput {
            reporter,
            id,
            lines: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    /// The last lines written (both streams, in arrival order), for
    /// `Event::StepFailed::last_lines`.
    pub fn last_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lines.iter().cloned().collect();
        if !self.partial.is_empty() {
            v.push(String::from_utf8_lossy(&self.partial).into_owned());
            if v.len() > KEEP {
                v.remove(0);
            }
        }
        v
    }

    fn keep(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            self.lines
                .push_back(text.trim_end_matches(['\n', '\r']).to_string());
            if self.lines.len() > KEEP {
                self.lines.pop_front();
            }
        }
        // A process printing no newline must not grow this without bound.
        if self.partial.len() > 64 * 1024 {
            self.partial.clear();
        }
    }
}

impl OutputSink for StepOutput<'_> {
    fn output(&mut self, stream: sandbox::Stream, data: &[u8]) {
        self.keep(data);
        self.reporter.event(&Event::StepLog {
            id: self.id,
            stream: match stream {
                sandbox::Stream::Stdout => Stream::Stdout,
                sandbox::Stream::Stderr => Stream::Stderr,
            },
            data: data.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Recorder;

    #[test]
    fn output_becomes_log_events_and_the_tail_is_kept() {
        let rec = Recorder::new();
        let mut out = StepOutput::new(&rec, StepId(4));
        for i in 0..30 {
            out.output(sandbox::Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        out.output(sandbox::Stream::Stderr, b"err: no newline");
        let last = out.last_lines();
        assert_eq!(last.len(), 20);
        assert_eq!(last.first().map(String::as_str), Some("line 11"));
        assert_eq!(last.last().map(String::as_str), Some("err: no newline"));
        let ev = rec.events();
        assert_eq!(ev.len(), 31);
        assert_eq!(
            ev[30],
            Event::StepLog {
                id: StepId(4),
                stream: Stream::Stderr,
                data: b"err: no newline".to_vec(),
            }
        );
    }
}
