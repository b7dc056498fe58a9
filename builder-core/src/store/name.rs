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
    pub reason: &'static str,
}

/// The full form of `name`: registry host added (`docker.io`), `library/`
/// added for official images, `:latest` when neither tag nor digest is given.
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    let err = |reason| NameError {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(err("empty"));
    }
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    if let Some(d) = digest {
        d.parse::<crate::digest::Digest>()
            .map_err(|_| err("bad digest"))?;
    }
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
            });
        if !ok {
            return Err(err("bad tag"));
        }
    }
    let (domain, path) = match repo.split_once('/') {
        Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_string(), p.to_string())
        }
        _ => ("docker.io".to_string(), repo.to_string()),
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let path_ok = !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        });
    if !path_ok {
        return Err(err(
            "repository must be lowercase letters, digits and separators",
        ));
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
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
