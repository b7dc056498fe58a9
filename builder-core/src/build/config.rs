//! The image config the engine mutates, with Docker's fields and BuildKit's
//! semantics for each metadata instruction.
//!
//! Fields kiln does not know are kept (`extra`) so a base image's config
//! passes through unchanged. Serialisation goes through `serde_json::Value`,
//! whose maps are sorted: the JSON is canonical, so equal images hash equal.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The PATH BuildKit gives an image that has none (Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A container's runtime settings (the `config` object of an image config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// `USER`.
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`, normalised to `port/proto`.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `ENV`, as `KEY=value` in definition order.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL` and `--label`.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Docker's marker that CMD/ENTRYPOINT are already escaped (set by CMD).
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub args_escaped: bool,
    /// `HEALTHCHECK`.
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, as written after the keyword.
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `SHELL`.
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields kiln does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Docker's health check settings; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// `--timeout`.
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// `--start-period`.
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// `--start-interval`.
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// `--retries`.
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One history entry of an image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, as BuildKit writes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// The builder's comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields kiln does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `rootfs` object: the layers' uncompressed digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One `sha256:` digest per layer, bottom first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// A whole image config (OCI image config with Docker's extensions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// The runtime settings.
    #[serde(default)]
    pub config: RuntimeConfig,
    /// The layers.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields kiln does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageConfig {
    /// The config of `FROM scratch` as BuildKit starts it: WorkingDir `/`
    /// and the default PATH.
    pub fn scratch(os: &str, architecture: &str, variant: &str) -> Self {
        ImageConfig {
            architecture: architecture.into(),
            os: os.into(),
            variant: variant.into(),
            config: RuntimeConfig {
                working_dir: "/".into(),
                env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
                ..RuntimeConfig::default()
            },
            ..ImageConfig::default()
        }
    }

    /// Parses a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Canonical JSON: sorted keys, no whitespace.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let value = serde_json::to_value(self)?;
        serde_json::to_vec(&value)
    }

    /// Looks up an environment variable of the config.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.config.env.as_ref()?.iter().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    /// Sets an environment variable, replacing it in place when present.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        for kv in env.iter_mut() {
            let k = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            if k == key {
                *kv = entry;
                return;
            }
        }
        env.push(entry);
    }

    /// Makes sure PATH is set, as BuildKit does for every stage.
    pub fn ensure_path(&mut self) {
        if self.env_get("PATH").is_none() {
            self.env_set("PATH", DEFAULT_PATH);
        }
    }

    /// Appends a history entry.
    pub fn add_history(&mut self, created_by: String, empty_layer: bool, created: Option<String>) {
        self.history.push(History {
            created,
            created_by,
            comment: "buildkit.dockerfile.v0".into(),
            empty_layer,
            extra: Map::new(),
        });
    }

    /// The shell that wraps shell-form commands.
    pub fn shell(&self) -> Vec<String> {
        match &self.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Domainname":"x"},"rootfs":{"type":"layers","diff_ids":[]},"os.features":["f"]}"#;
        let cfg = ImageConfig::from_json(raw).unwrap();
        let back: Value = serde_json::from_slice(&cfg.to_canonical_json().unwrap()).unwrap();
        assert_eq!(back["config"]["Domainname"], "x");
        assert_eq!(back["os.features"][0], "f");
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut cfg = ImageConfig::scratch("linux", "amd64", "");
        cfg.env_set("A", "1");
        cfg.env_set("PATH", "/");
        assert_eq!(cfg.config.env.as_deref().unwrap(), ["PATH=/", "A=1"]);
    }
}
