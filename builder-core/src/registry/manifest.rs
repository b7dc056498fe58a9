//! What a registry serves, parsed into the image module's types
//! ([`crate::image::Manifest`], [`crate::image::Index`]). What is the
//! registry's own: working out a document's media type (Content-Type, its
//! `mediaType`, or its shape), refusing Docker schema 1, and choosing an
//! index entry by platform. Raw bytes are always kept beside the parsed form:
//! digests are over the bytes, never over a re-serialisation.
use super::error::Error;
use super::platform::Platform;
use crate::image::{media, Descriptor, Index, Manifest};

/// Docker schema 1 (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1, signed (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: every format kiln reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as served: either an image or an index of images.
// A handful exist per pull, briefly; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum ServedManifest {
    /// A single-platform image.
    Image(Manifest),
    /// A multi-platform index (or Docker manifest list).
    Index(Index),
}

/// Whether `media_type` names an index (OCI) or manifest list (Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST
}

/// Whether `media_type` names a single-platform image manifest.
pub fn is_image(media_type: &str) -> bool {
    media_type == media::OCI_MANIFEST || media_type == media::DOCKER_MANIFEST
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
) -> Result<(String, ServedManifest), Error> {
    let bad = |reason: String| Error::BadManifest {
        reference: reference.to_string(),
        reason,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| {
            is_index(c) || is_image(c) || c == DOCKER_SCHEMA1 || c == DOCKER_SCHEMA1_SIGNED
        });
    let media_type = match (probe.media_type.clone(), header) {
        (Some(m), _) => m,
        (None, Some(h)) => h,
        (None, None) if probe.schema_version == 1 => DOCKER_SCHEMA1.to_string(),
        (None, None) if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
        (None, None) if probe.layers.is_some() => media::OCI_MANIFEST.to_string(),
        (None, None) => return Err(bad("no mediaType and neither layers nor manifests".into())),
    };
    if probe.schema_version == 1
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err(Error::Schema1(reference.to_string()));
    }
    let manifest = if is_index(&media_type) {
        ServedManifest::Index(serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?)
    } else if is_image(&media_type) {
        ServedManifest::Image(serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?)
    } else {
        return Err(bad(format!("unsupported media type {media_type}")));
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
        .filter(|d| is_image(&d.media_type))
        .filter_map(|d| {
            let p = Platform::from(d.platform.as_ref()?);
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
                .filter_map(|d| d.platform.as_ref().map(|p| Platform::from(p).to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media::{
        DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, OCI_CONFIG, OCI_MANIFEST,
    };

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
        let ServedManifest::Index(idx) = m else {
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
