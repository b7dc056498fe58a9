//! The image config the engine mutates is the image module's
//! [`ImageConfig`]; this file adds what only the build needs: BuildKit's
//! starting config for `FROM scratch`, the SHELL in force, and history
//! entries that leave `rootfs` to the engine.
pub use crate::image::{Healthcheck, ImageConfig};

use crate::image::History;

/// The comment BuildKit puts on every history entry of a Dockerfile build.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The config of `FROM scratch` as BuildKit starts it: WorkingDir `/` and
/// the default PATH.
pub fn scratch(platform: &super::Platform) -> ImageConfig {
    let p = crate::image::Platform {
        os: platform.os.clone(),
        architecture: platform.architecture.clone(),
        variant: (!platform.variant.is_empty()).then(|| platform.variant.clone()),
        ..crate::image::Platform::host()
    };
    let mut c = ImageConfig::scratch(&p);
    c.config.working_dir = Some("/".into());
    c
}

/// The shell that wraps shell-form commands: SHELL, else `/bin/sh -c`.
pub fn shell(c: &ImageConfig) -> Vec<String> {
    match &c.config.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

/// The working directory, `/` when unset.
pub fn working_dir(c: &ImageConfig) -> String {
    match c.config.working_dir.as_deref() {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".into(),
    }
}

/// Appends a history entry (the engine keeps `rootfs` itself).
pub fn add_history(
    c: &mut ImageConfig,
    created_by: String,
    empty_layer: bool,
    created: Option<String>,
) {
    c.history.push(History {
        created,
        created_by: Some(created_by),
        comment: Some(HISTORY_COMMENT.into()),
        empty_layer,
        ..History::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_starts_like_buildkit() {
        let c = scratch(&super::super::Platform::host());
        assert_eq!(c.config.working_dir.as_deref(), Some("/"));
        assert!(c.env_get("PATH").is_some());
        assert_eq!(shell(&c), ["/bin/sh", "-c"]);
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Domainname":"x"},"rootfs":{"type":"layers","diff_ids":[]},"os.features":["f"]}"#;
        let cfg = ImageConfig::from_json(raw).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&cfg.to_json().unwrap()).unwrap();
        assert_eq!(back["config"]["Domainname"], "x");
        assert_eq!(back["os.features"][0], "f");
    }
}
