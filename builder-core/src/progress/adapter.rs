//! The registry client reports through its own [`registry::Progress`]
//! trait (borrowed events, no step ids); this adapter turns those into
//! build [`Event`]s attributed to one step, so pulls, pushes and cache
//! transfers show up in the same view as the steps.
use std::collections::HashMap;
use std::sync::Mutex;

use super::{Event, Reporter, StepId, Stream};
use crate::registry::{self, BlobOutcome};

/// A [`registry::Progress`] that forwards to a [`Reporter`] as events of
/// step `id`.
pub struct BlobProgress<'a> {
    reporter: &'a dyn Reporter,
    id: StepId,
    sizes: Mutex<HashMap<String, u64>>,
}

impl<'a> BlobProgress<'a> {
    /// Reports blob transfers as part of step `id`.
    pub fn new(reporter: &'a dyn Reporter, id: StepId) -> BlobProgress<'a> {
        BlobProgress {
            reporter,
            id,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    fn size(&self, digest: &str) -> u64 {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .copied()
            .unwrap_or(0)
    }
}

fn outcome_text(o: &BlobOutcome) -> String {
    match o {
        BlobOutcome::Downloaded => "downloaded".into(),
        BlobOutcome::AlreadyPresent => "already present".into(),
        BlobOutcome::Uploaded => "pushed".into(),
        BlobOutcome::Exists => "already exists".into(),
        BlobOutcome::Mounted { from } => format!("mounted from {from}"),
    }
}

impl registry::Progress for BlobProgress<'_> {
    fn event(&self, event: registry::Event<'_>) {
        let e = match event {
            registry::Event::Resolved { reference, digest } => Event::StepLog {
                id: self.id,
                stream: Stream::Stdout,
                data: format!("resolve {reference} to {digest}\n").into_bytes(),
            },
            registry::Event::BlobStarted { digest, size } => {
                self.sizes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(digest.to_string(), size);
                Event::Blob {
                    id: self.id,
                    digest: digest.to_string(),
                    done: 0,
                    total: size,
                    outcome: None,
                }
            }
            registry::Event::BlobProgress {
                digest,
                done,
                total,
            } => Event::Blob {
                id: self.id,
                digest: digest.to_string(),
                done,
                total,
                outcome: None,
            },
            registry::Event::BlobDone { digest, outcome } => {
                let d = digest.to_string();
                let total = self.size(&d);
                Event::Blob {
                    id: self.id,
                    digest: d,
                    done: total,
                    total,
                    outcome: Some(outcome_text(&outcome)),
                }
            }
            registry::Event::Retrying { what, error } => Event::Warning {
                id: Some(self.id),
                message: format!("retrying {what}: {error}"),
            },
            registry::Event::ManifestPushed { reference, digest } => Event::StepLog {
                id: self.id,
                stream: Stream::Stdout,
                data: format!("pushed {reference} as {digest}\n").into_bytes(),
            },
        };
        self.reporter.event(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Recorder;
    use crate::registry::{Digest, Progress};

    #[test]
    fn blob_events_carry_the_step_and_the_size_to_the_end() {
        let rec = Recorder::new();
        let p = BlobProgress::new(&rec, StepId(7));
        let d = Digest::of(b"x");
        p.event(registry::Event::BlobStarted {
            digest: &d,
            size: 10,
        });
        p.event(registry::Event::BlobDone {
            digest: &d,
            outcome: BlobOutcome::Downloaded,
        });
        p.event(registry::Event::Retrying {
            what: "w",
            error: "e",
        });
        let ev = rec.events();
        assert_eq!(
            ev[1],
            Event::Blob {
                id: StepId(7),
                digest: d.to_string(),
                done: 10,
                total: 10,
                outcome: Some("downloaded".into()),
            }
        );
        assert_eq!(
            ev[2],
            Event::Warning {
                id: Some(StepId(7)),
                message: "retrying w: e".into()
            }
        );
    }
}
