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

/// Expands and normalises EXPOSE words the way BuildKit does: `80` →
/// `80/tcp`, `8000-8002/udp` → three entries, protocol lower-cased.
pub fn parse_ports(word: &str) -> Result<Vec<String>, String> {
    // [ip:][hostPort:]containerPort[/proto]; only the container part counts.
    let (rest, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (word, "tcp"),
    };
    let proto = if proto.is_empty() { "tcp" } else { proto };
    let lower = proto.to_ascii_lowercase();
    if !matches!(lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port {word:?}: invalid proto: {proto}"));
    }
    let container = rest.rsplit(':').next().unwrap_or(rest);
    if container.is_empty() {
        return Err(format!("invalid port {word:?}: no port specified"));
    }
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| format!("invalid containerPort: {container}"))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let p = number(container)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!("invalid port range: {container}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{lower}")).collect())
}

/// Parses a Go duration (`1h2m3.5s`, `300ms`) to nanoseconds, as
/// HEALTHCHECK's flags take them.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {text:?}");
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Ok(total.round() as i64)
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_normalised_and_ranges_expanded() {
        assert_eq!(parse_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_ports("8000-8002/udp").unwrap(),
            vec!["8000/udp", "8001/udp", "8002/udp"]
        );
        assert_eq!(parse_ports("127.0.0.1:8080:80").unwrap(), vec!["80/tcp"]);
        assert!(parse_ports("99999").is_err());
        assert!(parse_ports("80/icmp").is_err());
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("300ms").unwrap(), 300_000_000);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

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
