//! The manifest formats a registry serves (OCI and Docker schema 2, images and
//! indexes), just the fields kiln reads. Raw bytes are always kept beside the
//! parsed form: digests are over the bytes, never over a re-serialisation.
use std::collections::BTreeMap;

use super::digest::Digest;
use super::error::Error;
use super::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1, signed (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests: every format kiln reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    /// The media type of the content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Alternative URLs (foreign layers); kept so manifests round-trip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ImageManifest {
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Index {
    /// One entry per platform (or attestation).
    pub manifests: Vec<Descriptor>,
}

/// A manifest as served: either an image or an index of images.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// A single-platform image.
    Image(ImageManifest),
    /// A multi-platform index.
    Index(Index),
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

/// Works out a manifest's media type from the `Content-Type` the registry
/// sent, the document's own `mediaType`, or its shape.
pub fn parse(
    reference: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<(String, Manifest), Error> {
    let bad = |reason: String| Error::BadManifest {
        reference: reference.to_string(),
        reason,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| {
            [
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_MANIFEST,
                DOCKER_LIST,
                DOCKER_SCHEMA1,
                DOCKER_SCHEMA1_SIGNED,
            ]
            .contains(&c.as_str())
        });
    let media_type = match (probe.media_type.clone(), header) {
        (Some(m), _) => m,
        (None, Some(h)) => h,
        (None, None) if probe.schema_version == 1 => DOCKER_SCHEMA1.to_string(),
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if probe.layers.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err(bad("no mediaType and neither layers nor manifests".into())),
    };
    if probe.schema_version == 1
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err(Error::Schema1(reference.to_string()));
    }
    let manifest = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            Manifest::Index(serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?)
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            Manifest::Image(serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?)
        }
        other => return Err(bad(format!("unsupported media type {other}"))),
    };
    Ok((media_type, manifest))
}

/// Picks the best entry of `index` for `platform` (see [`Platform::rank`]).
pub fn select<'a>(
    reference: &str,
    index: &'a Index,
    platform: &Platform,
) -> Result<&'a Descriptor, Error> {
    index
        .manifests
        .iter()
        .filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
        .filter_map(|d| {
            let p = d.platform.as_ref()?;
            let p = Platform::new(&p.os, &p.architecture, &p.variant);
            platform.rank(&p).map(|r| (r, d))
        })
        .min_by_key(|(r, _)| *r)
        .map(|(_, d)| d)
        .ok_or_else(|| Error::NoMatchingPlatform {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    #[test]
    fn index_selection() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D3}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let (mt, m) = parse("x", None, list.as_bytes()).unwrap();
        assert_eq!(mt, DOCKER_LIST);
        let Manifest::Index(idx) = m else {
            panic!("not an index")
        };
        let pick = |p: &str| select("x", &idx, &p.parse().unwrap()).map(|d| d.digest.to_string());
        assert_eq!(pick("linux/amd64").unwrap(), D3);
        assert_eq!(pick("linux/arm64").unwrap(), D2);
        assert_eq!(pick("linux/arm/v7").unwrap(), D1);
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("linux/s390x") && err.contains("linux/arm/v6"),
            "{err}"
        );
    }

    #[test]
    fn media_types() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":2}},"layers":[]}}"#
        );
        let (mt, _) = parse(
            "x",
            Some("application/vnd.docker.distribution.manifest.v2+json"),
            m.as_bytes(),
        )
        .unwrap();
        assert_eq!(mt, DOCKER_MANIFEST);
        let (mt, _) = parse("x", Some("application/json"), m.as_bytes()).unwrap();
        assert_eq!(mt, OCI_MANIFEST);
        let s1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        let err = parse("docker.io/library/old:1", None, s1.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1") && err.contains("old:1"), "{err}");
        assert!(parse("x", None, b"{").is_err());
    }
}
