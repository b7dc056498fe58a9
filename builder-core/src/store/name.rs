//! Image names as users type them (`alpine`, `me/app:1`, `reg:5000/x@sha256:…`)
//! and the full form the store records (`docker.io/library/alpine:latest`),
//! following the Docker reference grammar's normalisation.

/// Why a string is not an image name.
#[derive(Debug, thiserror::Error)]
#[error("invalid image name {name:?}: {reason}")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The full form of `name`: registry host added (`docker.io`), `library/`
/// added for official images, `:latest` when neither tag nor digest is given.
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    crate::reference::Reference::parse(name)
        .map(|r| r.to_string())
        .map_err(|e| NameError {
            name: name.to_string(),
            reason: e.reason,
        })
}

/// The short form Docker shows: `docker.io/library/` and `docker.io/` dropped.
pub fn familiar_name(full: &str) -> &str {
    full.strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
        .unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let n = |s| normalize_name(s).unwrap_or_default();
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("me/app:1.0"), "docker.io/me/app:1.0");
        assert_eq!(n("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(n("quay.io/a/b:v"), "quay.io/a/b:v");
        assert!(normalize_name("Upper").is_err());
        assert!(normalize_name("a:").is_err());
        assert_eq!(
            familiar_name("docker.io/library/alpine:latest"),
            "alpine:latest"
        );
    }
}
