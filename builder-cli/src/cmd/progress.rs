//! Progress for the registry commands. `kiln debug pull` renders through
//! the build renderers (`--progress`), as one step whose blobs come from
//! the registry's own events via the library's adapter; `kiln push` keeps
//! its one-line-per-blob [`Printer`].
use std::time::Instant;

use builder_core::progress::{BlobProgress, Event, Reporter, StepId, StepPlace, StepResult};
use builder_core::registry::{BlobOutcome, Event as RegistryEvent, Progress};

use crate::render::{ProgressMode, Renderer};

/// Prints blob outcomes unless quiet.
pub struct Printer {
    /// Print nothing.
    pub quiet: bool,
}

impl Progress for Printer {
    fn event(&self, event: RegistryEvent<'_>) {
        if self.quiet {
            return;
        }
        match event {
            RegistryEvent::BlobDone { digest, outcome } => {
                let short = &digest.hex()[..12];
                let what = match outcome {
                    BlobOutcome::Downloaded => "downloaded".to_string(),
                    BlobOutcome::AlreadyPresent => "already present".to_string(),
                    BlobOutcome::Uploaded => "pushed".to_string(),
                    BlobOutcome::Exists => "already exists".to_string(),
                    BlobOutcome::Mounted { from } => format!("mounted from {from}"),
                };
                eprintln!("{short}: {what}");
            }
            RegistryEvent::Retrying { what, error } => eprintln!("retrying {what}: {error}"),
            RegistryEvent::ManifestPushed { reference, digest } => {
                eprintln!("{reference}: digest {digest}")
            }
            _ => {}
        }
    }
}

/// Runs `work` as one `[internal] TEXT` step rendered per `mode`, handing
/// it a registry progress sink wired to the renderer.
pub fn internal_step<T, E: std::fmt::Display>(
    mode: ProgressMode,
    text: &str,
    work: impl FnOnce(&dyn Progress) -> Result<T, E>,
) -> Result<T, E> {
    let renderer = Renderer::stderr(mode);
    let id = StepId(1);
    let start = Instant::now();
    renderer.event(&Event::StepStarted {
        id,
        place: StepPlace {
            stage: "internal".into(),
            position: 0,
            total: 0,
        },
        text: text.to_string(),
        lines: None,
    });
    let result = work(&BlobProgress::new(&renderer, id));
    let duration = start.elapsed();
    match &result {
        Ok(_) => renderer.event(&Event::StepFinished {
            id,
            duration,
            result: StepResult::Done,
        }),
        Err(e) => renderer.event(&Event::StepFailed {
            id,
            error: e.to_string(),
            last_lines: Vec::new(),
            duration,
        }),
    }
    renderer.finish();
    result
}
