//! Image metadata: the config, manifests, indexes, descriptors and the media
//! types that name them. Our own small typed structs rather than oci-spec's
//! (see docs/decisions.md): every document kiln digests goes through the one
//! canonical encoder in [`json`], and unknown fields of base images survive.
pub mod config;
pub mod json;
pub mod platform;
mod time;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use json::to_canonical_json;
pub use time::{created_timestamp, format_rfc3339, source_date_epoch};

/// Media types kiln reads and writes.
pub mod media {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI zstd layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer (also used for uncompressed ones by some tools).
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker uncompressed layer.
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker zstd layer (BuildKit's name for it).
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    /// Docker foreign (non-distributable) gzip layer.
    pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// OCI non-distributable gzip layer (the OCI name of a foreign layer).
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// The annotation that names an image in an OCI layout's index.json.
    pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// The annotation containerd and BuildKit use for the full image name.
    pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
    /// The annotation that records an image's creation time.
    pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
}

/// The platform an image runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`…).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// OS version (Windows only).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows only).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v8`, `v7`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform kiln itself runs on (`linux` and Go's name for the CPU).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
        }
    }
}

/// A reference to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The blob's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's length in bytes.
    pub size: u64,
    /// Where else the blob can be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type, for artifacts.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// An image manifest (OCI or Docker schema 2; they share this shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// An OCI manifest for `config` and `layers`. Layers carrying Docker
    /// media types (a base image pulled as Docker schema 2) get their OCI
    /// names: an OCI manifest listing Docker layer types is refused by
    /// strict readers (umoci), and BuildKit converts them the same way.
    pub fn oci(config: Descriptor, mut layers: Vec<Descriptor>) -> Manifest {
        for l in &mut layers {
            l.media_type = oci_layer_type(&l.media_type).to_string();
        }
        Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            config,
            layers,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// The same manifest with every layer media type in the family of the
    /// manifest's own type (OCI names in an OCI manifest, Docker names in a
    /// Docker one), so an image stored by an older kiln with mixed types
    /// exports as a consistent one.
    pub fn with_consistent_layer_types(&self) -> Manifest {
        let mut m = self.clone();
        let docker = m.media_type.as_deref() == Some(media::DOCKER_MANIFEST);
        for l in &mut m.layers {
            l.media_type = if docker {
                docker_layer_type(&l.media_type)
            } else {
                oci_layer_type(&l.media_type)
            }
            .to_string();
        }
        m
    }

    /// The canonical bytes to store and digest.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        to_canonical_json(self)
    }

    /// The same manifest with Docker schema 2 media types (for outputs and
    /// registries that want them); layer types map by compression.
    pub fn to_docker(&self) -> Manifest {
        let mut m = self.clone();
        m.media_type = Some(media::DOCKER_MANIFEST.to_string());
        m.config.media_type = media::DOCKER_CONFIG.to_string();
        for l in &mut m.layers {
            l.media_type = docker_layer_type(&l.media_type).to_string();
        }
        m
    }
}

/// The OCI name of a layer media type (unknown types are kept).
fn oci_layer_type(t: &str) -> &str {
    match t {
        media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP,
        media::DOCKER_LAYER_ZSTD => media::OCI_LAYER_ZSTD,
        media::DOCKER_LAYER_TAR => media::OCI_LAYER_TAR,
        media::DOCKER_LAYER_FOREIGN_GZIP => media::OCI_LAYER_NONDIST_GZIP,
        other => other,
    }
}

/// The Docker schema 2 name of a layer media type (unknown types are kept).
fn docker_layer_type(t: &str) -> &str {
    match t {
        media::OCI_LAYER_GZIP => media::DOCKER_LAYER_GZIP,
        media::OCI_LAYER_ZSTD => media::DOCKER_LAYER_ZSTD,
        media::OCI_LAYER_TAR => media::DOCKER_LAYER_TAR,
        media::OCI_LAYER_NONDIST_GZIP => media::DOCKER_LAYER_FOREIGN_GZIP,
        other => other,
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Index {
    /// An OCI index listing `manifests`.
    pub fn oci(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// The canonical bytes to store and digest.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        to_canonical_json(self)
    }
}
