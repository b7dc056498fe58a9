//! The image config: Docker's superset of the OCI config, with the BuildKit
//! behaviours the Dockerfile instructions need. Fields kiln does not know are
//! kept in `extra` maps so a base image's config round-trips.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{json::to_canonical_json, Platform};
use crate::digest::Digest;

/// BuildKit's PATH for Linux images whose base sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author (MAINTAINER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The platform: `architecture`, `os`, `os.version`, `os.features`,
    /// `variant`, flattened into the config as the spec has them.
    #[serde(flatten)]
    pub platform: Platform,
    /// The runtime configuration.
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rootfs: RootFs,
    /// One entry per build step.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Fields kiln does not model (`container_config`, `docker_version`…), kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

// Some tools write `"config": null`; treat it as absent.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The runtime part of the config (Docker's field names).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`d ports as `PORT/PROTO` keys.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `ENV`, as `KEY=VALUE`.
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
    /// `VOLUME`s as keys.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `LABEL`s.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Whether a shell-form command line is already escaped (Windows).
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub args_escaped: Option<bool>,
    /// `HEALTHCHECK`.
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, as written.
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `SHELL`.
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields kiln does not model (`Hostname`, `Image`…), kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HEALTHCHECK` settings; durations in nanoseconds as Docker stores them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", cmd]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between checks.
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time before a check counts as hung.
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Grace period after start.
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
    /// Time between checks during the start period.
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<i64>,
    /// Failures before unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Fields kiln does not model, kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The layers of the root filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One build step in the image's history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, as BuildKit renders it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step changed only the config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields kiln does not model, kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Why an `EXPOSE` argument is not a port.
#[derive(Debug, thiserror::Error)]
#[error("invalid port {value:?} in EXPOSE: {reason}")]
pub struct PortError {
    /// The rejected argument.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ImageConfig {
    /// The config of `FROM scratch` for `platform`, as BuildKit starts it:
    /// no layers and the default PATH.
    pub fn scratch(platform: &Platform) -> ImageConfig {
        let mut c = ImageConfig {
            platform: platform.clone(),
            ..ImageConfig::default()
        };
        c.ensure_default_path();
        c
    }

    /// Parses a config blob, keeping unknown fields.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The canonical bytes to store and digest.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        to_canonical_json(self)
    }

    /// Adds `PATH=DEFAULT_PATH` when the environment has no PATH, as BuildKit
    /// does for Linux images.
    pub fn ensure_default_path(&mut self) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) && self.platform.os != "windows" {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
    }

    /// The value of `key` in the environment.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.config.env.as_ref()?.iter().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    /// Sets `key=value`, replacing an earlier value in place (`ENV`).
    pub fn env_set(&mut self, key: &str, value: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e.as_str()) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }

    /// `ENTRYPOINT`: sets it and, as BuildKit does, drops a CMD inherited
    /// from the base unless this stage set CMD itself before.
    pub fn set_entrypoint(&mut self, entrypoint: Vec<String>, cmd_set_in_stage: bool) {
        self.config.entrypoint = Some(entrypoint);
        if !cmd_set_in_stage {
            self.config.cmd = None;
        }
    }

    /// `LABEL`: adds or overrides labels, inheriting the base's others.
    pub fn add_labels<I: IntoIterator<Item = (String, String)>>(&mut self, labels: I) {
        self.config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels);
    }

    /// `EXPOSE`: adds each argument, normalised as BuildKit does (`80` →
    /// `80/tcp`, protocol lowercased, `8000-8002/udp` expanded).
    pub fn expose<S: AsRef<str>>(&mut self, args: &[S]) -> Result<(), PortError> {
        let mut keys = Vec::new();
        for a in args {
            keys.extend(normalize_ports(a.as_ref())?);
        }
        let ports = self.config.exposed_ports.get_or_insert_with(BTreeMap::new);
        for k in keys {
            ports.insert(k, Value::Object(Default::default()));
        }
        Ok(())
    }

    /// `VOLUME`: adds mount points.
    pub fn add_volumes<S: AsRef<str>>(&mut self, paths: &[S]) {
        let v = self.config.volumes.get_or_insert_with(BTreeMap::new);
        for p in paths {
            v.insert(p.as_ref().to_string(), Value::Object(Default::default()));
        }
    }

    /// Records a build step. `layer` is the new layer's diff_id, or `None`
    /// for steps that only change the config (`empty_layer`).
    pub fn add_history(
        &mut self,
        created_by: &str,
        comment: Option<&str>,
        created: Option<&str>,
        layer: Option<Digest>,
    ) {
        let empty = layer.is_none();
        if let Some(d) = layer {
            self.rootfs.diff_ids.push(d);
        }
        self.history.push(History {
            created: created.map(str::to_string),
            created_by: Some(created_by.to_string()),
            comment: comment.map(str::to_string),
            empty_layer: empty,
            ..History::default()
        });
    }
}

/// Expands one `EXPOSE` argument into `PORT/PROTO` keys.
pub fn normalize_ports(arg: &str) -> Result<Vec<String>, PortError> {
    let err = |reason| PortError {
        value: arg.to_string(),
        reason,
    };
    let (ports, proto) = match arg.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (arg, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(err("protocol must be tcp, udp or sctp"));
    }
    // An `IP:` prefix is accepted and ignored, as Docker's nat.ParsePortSpec does.
    let ports = ports.rsplit_once(':').map(|(_, p)| p).unwrap_or(ports);
    let parse = |s: &str| s.parse::<u16>().map_err(|_| err("not a port number"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(err("range end is below its start"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_round_trip_and_output_is_sorted() {
        let src = br#"{"os":"linux","architecture":"amd64","docker_version":"20.10","config":{"Hostname":"x","Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::from_json(src).unwrap_or_default();
        let out = String::from_utf8(c.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","config":{"Cmd":["sh"],"Hostname":"x"},"docker_version":"20.10","os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
        );
    }

    #[test]
    fn null_config_and_history_are_accepted() {
        let c = ImageConfig::from_json(br#"{"os":"linux","config":null,"history":null}"#);
        assert!(c.is_ok_and(|c| c.config == ContainerConfig::default()));
    }

    #[test]
    fn expose_normalises_and_expands() {
        let mut c = ImageConfig::default();
        c.expose(&["80", "53/UDP", "8000-8002/tcp"]).unwrap_or(());
        let keys: Vec<_> = c
            .config
            .exposed_ports
            .unwrap_or_default()
            .into_keys()
            .collect();
        assert_eq!(
            keys,
            ["53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(normalize_ports("80/xyz").is_err());
        assert!(normalize_ports("9-1").is_err());
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_only() {
        let mut c = ImageConfig::scratch(&Platform::host());
        assert_eq!(c.env_get("PATH"), Some(DEFAULT_PATH));
        c.config.cmd = Some(vec!["sh".into()]);
        c.set_entrypoint(vec!["/e".into()], true);
        assert!(c.config.cmd.is_some());
        c.set_entrypoint(vec!["/e".into()], false);
        assert!(c.config.cmd.is_none());
    }
}
