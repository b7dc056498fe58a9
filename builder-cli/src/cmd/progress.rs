//! Progress for the registry commands (`kiln pull`, `kiln push`,
//! `kiln debug pull`): rendered by the build renderers (`--progress`) as one
//! `[internal]` step whose blobs come from the registry's own events through
//! the library's adapter.
use std::time::Instant;

use builder_core::progress::{BlobProgress, Event, Reporter, StepId, StepPlace, StepResult};
use builder_core::registry::Progress;

use crate::render::{ProgressMode, Renderer};

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
