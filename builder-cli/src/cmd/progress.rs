//! Renders registry progress events as one line per finished blob on stderr.
use builder_core::registry::{BlobOutcome, Event, Progress};

/// Prints blob outcomes unless quiet.
pub struct Printer {
    /// Print nothing.
    pub quiet: bool,
}

impl Progress for Printer {
    fn event(&self, event: Event<'_>) {
        if self.quiet {
            return;
        }
        match event {
            Event::BlobDone { digest, outcome } => {
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
            Event::Retrying { what, error } => eprintln!("retrying {what}: {error}"),
            Event::ManifestPushed { reference, digest } => {
                eprintln!("{reference}: digest {digest}")
            }
            _ => {}
        }
    }
}
