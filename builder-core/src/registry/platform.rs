//! Platforms (`os/arch[/variant]`), normalised the way containerd's platforms
//! package does, so `linux/aarch64` and `linux/arm64/v8` pick the same image.
use std::fmt;
use std::str::FromStr;

use super::error::Error;

/// An operating system, CPU architecture and optional variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... (empty when none)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// Builds and normalises a platform ([`crate::image::platform::normalize`]).
    pub fn new(os: &str, arch: &str, variant: &str) -> Platform {
        let (os, architecture, variant) = crate::image::platform::normalize(os, arch, variant);
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform kiln runs on (`linux/amd64` on x86-64 Linux): the image
    /// module's host platform, normalised.
    pub fn host() -> Platform {
        Platform::from(&crate::image::Platform::host())
    }

    /// The same platform in the shape image configs and descriptors carry.
    pub fn to_image(&self) -> crate::image::Platform {
        crate::image::Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: None,
            os_features: None,
            variant: Some(self.variant.clone()).filter(|v| !v.is_empty()),
        }
    }

    /// How well an image for `candidate` fits this platform: `None` when it
    /// cannot run, lower is better. An exact variant wins; an older ARM variant
    /// runs on a newer CPU; a candidate without variant fits any.
    pub fn rank(&self, candidate: &Platform) -> Option<u32> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        if self.variant == candidate.variant {
            return Some(0);
        }
        if candidate.variant.is_empty() {
            return Some(1);
        }
        if self.architecture == "arm" {
            let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
            if let (Some(want), Some(have)) = (level(&self.variant), level(&candidate.variant)) {
                if have < want {
                    return Some(1 + want - have);
                }
            }
        }
        if self.variant.is_empty() && self.architecture == "amd64" && candidate.variant == "v1" {
            return Some(1);
        }
        None
    }
}

impl From<&crate::image::Platform> for Platform {
    fn from(p: &crate::image::Platform) -> Platform {
        Platform::new(&p.os, &p.architecture, p.variant.as_deref().unwrap_or(""))
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, "")),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, variant))
            }
            _ => Err(Error::InvalidPlatform(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/6").to_string(), "linux/arm/v6");
        assert_eq!(p("Linux/i386").to_string(), "linux/386");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        assert_eq!(Platform::host().to_string(), "linux/amd64");
    }

    #[test]
    fn ranking() {
        assert_eq!(p("linux/arm/v7").rank(&p("linux/arm/v7")), Some(0));
        assert!(p("linux/arm/v7").rank(&p("linux/arm/v6")).is_some());
        assert_eq!(p("linux/arm/v6").rank(&p("linux/arm/v7")), None);
        assert_eq!(p("linux/amd64").rank(&p("linux/arm64")), None);
        assert_eq!(
            p("linux/arm64").rank(&Platform::new("linux", "arm64", "v8")),
            Some(0)
        );
    }
}
