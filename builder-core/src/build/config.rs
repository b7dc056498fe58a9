//! The image config the engine mutates is the image module's
//! [`ImageConfig`]; this file adds what only the build needs: BuildKit's
//! starting config for `FROM scratch`, the SHELL in force, and history
//! entries that leave `rootfs` to the engine.
pub use crate::image::{Healthcheck, ImageConfig};

use std::collections::BTreeMap;

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

/// A base image's config as BuildKit reads it: decoded into its own image
/// struct and encoded again, so only the fields that struct has survive
/// (`container_config`, `docker_version`, a top-level `comment`, `Hostname`,
/// `Image`… are dropped) and its `omitempty` fields drop empty values
/// (`"User": ""`, `"Env": []`). docker 20.10's builds show exactly this.
pub fn as_buildkit_reads(c: &mut ImageConfig) {
    c.extra.clear();
    for h in &mut c.history {
        h.extra.clear();
    }
    // The one field docker 20.10's BuildKit keeps that kiln does not model
    // (current BuildKit's struct has no StopTimeout either).
    c.config.extra.retain(|k, _| k == "StopTimeout");
    omit_empty(c);
}

/// Go's `omitempty` on BuildKit's image config: empty strings, lists and
/// maps are not written (`CMD []` leaves no `"Cmd": []`), `ArgsEscaped`
/// only when true. Applied to a base config as read and to the result.
pub fn omit_empty(c: &mut ImageConfig) {
    if c.author.as_deref() == Some("") {
        c.author = None;
    }
    let cc = &mut c.config;
    let empty_str = |v: &mut Option<String>| {
        if v.as_deref() == Some("") {
            *v = None;
        }
    };
    empty_str(&mut cc.user);
    empty_str(&mut cc.working_dir);
    empty_str(&mut cc.stop_signal);
    for v in [&mut cc.env, &mut cc.entrypoint, &mut cc.cmd, &mut cc.shell] {
        if v.as_ref().is_some_and(Vec::is_empty) {
            *v = None;
        }
    }
    for v in [&mut cc.exposed_ports, &mut cc.volumes] {
        if v.as_ref().is_some_and(BTreeMap::is_empty) {
            *v = None;
        }
    }
    if cc.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        cc.labels = None;
    }
    if cc.args_escaped == Some(false) {
        cc.args_escaped = None;
    }
}

/// Go's `%q` of a string slice, as the CMD and ENTRYPOINT history entries
/// print it: `["a" "b c"]`.
pub fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| crate::parser::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// The history entry of EXPOSE as docker 20.10's BuildKit writes it: Go's
/// `%v` of the instruction's port map, keys sorted, duplicates gone
/// (`EXPOSE map[443/tcp:{} 80/tcp:{}]`).
pub fn expose_history(ports: &[String]) -> String {
    let set: std::collections::BTreeSet<&str> = ports.iter().map(String::as_str).collect();
    let items: Vec<String> = set.iter().map(|p| format!("{p}:{{}}")).collect();
    format!("EXPOSE map[{}]", items.join(" "))
}

/// The history entry of HEALTHCHECK as docker 20.10's BuildKit writes it:
/// Go's `%q` of the `*HealthConfig`, durations as `Duration.String()` and
/// the retries as a quoted rune (`HEALTHCHECK &{["CMD-SHELL" "true"] "5s"
/// "0s" "0s" '\x03'}`). A start interval, which that version lacks, is
/// printed after the start period when set.
pub fn healthcheck_history(h: &Healthcheck) -> String {
    let dur = |d: Option<i64>| {
        let nanos = u64::try_from(d.unwrap_or(0)).unwrap_or(0);
        crate::parser::go_quote(&go_duration(nanos))
    };
    let mut fields = vec![
        go_quote_list(h.test.as_deref().unwrap_or_default()),
        dur(h.interval),
        dur(h.timeout),
        dur(h.start_period),
    ];
    if h.start_interval.is_some_and(|d| d != 0) {
        fields.push(dur(h.start_interval));
    }
    let retries = u64::try_from(h.retries.unwrap_or(0)).unwrap_or(0);
    fields.push(crate::parser::go_quote_rune(retries));
    format!("HEALTHCHECK &{{{}}}", fields.join(" "))
}

/// Go's `time.Duration.String()` of a non-negative count of nanoseconds:
/// `0s`, `1.5s`, `1m30s`, `1h0m0s`, `250ms`, `1.5µs`, `7ns`.
pub fn go_duration(nanos: u64) -> String {
    // Appends the digits of `v`'s fraction below 10^prec, trailing zeros
    // dropped (and the point with them); returns the integer part.
    fn frac(out: &mut String, v: u64, prec: u32) -> u64 {
        let scale = 10u64.pow(prec);
        let f = v % scale;
        if f != 0 {
            let digits = format!("{f:0width$}", width = prec as usize);
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        v / scale
    }
    const SECOND: u64 = 1_000_000_000;
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < SECOND {
        let (prec, unit) = match nanos {
            n if n < 1_000 => (0, "ns"),
            n if n < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let mut f = String::new();
        let int = frac(&mut f, nanos, prec);
        return format!("{int}{f}{unit}");
    }
    let mut f = String::new();
    let secs = frac(&mut f, nanos, 9);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}{f}s")
    } else if secs >= 60 {
        format!("{m}m{s}{f}s")
    } else {
        format!("{s}{f}s")
    }
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
    fn a_base_config_keeps_only_what_buildkit_reads() {
        // The shape `docker import` writes, which docker 20.10's builds drop.
        let raw = br#"{"architecture":"amd64","os":"linux","comment":"Imported from -","docker_version":"20.10",
            "container_config":{"Cmd":null},"author":"",
            "config":{"Hostname":"","Image":"","Tty":false,"User":"","WorkingDir":"","Env":[],"Cmd":["sh"],
                "Labels":{},"StopTimeout":5,"ArgsEscaped":false,"OnBuild":null},
            "rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"comment":"Imported from -","x":1}]}"#;
        let mut cfg = ImageConfig::from_json(raw).unwrap();
        as_buildkit_reads(&mut cfg);
        let back: serde_json::Value = serde_json::from_slice(&cfg.to_json().unwrap()).unwrap();
        let mut keys: Vec<&String> = back.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["architecture", "config", "history", "os", "rootfs"]);
        assert_eq!(
            back["config"],
            serde_json::json!({"Cmd": ["sh"], "StopTimeout": 5})
        );
        assert_eq!(
            back["history"],
            serde_json::json!([{"comment": "Imported from -"}])
        );
    }

    #[test]
    fn go_durations() {
        // Expected values are Go's time.Duration(n).String().
        let cases = [
            (0, "0s"),
            (7, "7ns"),
            (1_500, "1.5µs"),
            (250_000_000, "250ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_661_000_000_001, "1h1m1.000000001s"),
        ];
        for (n, want) in cases {
            assert_eq!(go_duration(n), want, "{n}");
        }
    }

    #[test]
    fn history_texts_are_docker_20_10s() {
        // Both as docker 20.10's `docker build` recorded them.
        assert_eq!(
            expose_history(&[
                "80/tcp".into(),
                "443/tcp".into(),
                "53/udp".into(),
                "80/tcp".into()
            ]),
            "EXPOSE map[443/tcp:{} 53/udp:{} 80/tcp:{}]"
        );
        let h = Healthcheck {
            test: Some(vec![
                "CMD-SHELL".into(),
                "curl -f http://x/ || exit 1".into(),
            ]),
            interval: Some(5_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(2_000_000_000),
            retries: Some(4),
            ..Healthcheck::default()
        };
        assert_eq!(
            healthcheck_history(&h),
            r#"HEALTHCHECK &{["CMD-SHELL" "curl -f http://x/ || exit 1"] "5s" "3s" "2s" '\x04'}"#
        );
        let none = Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Healthcheck::default()
        };
        assert_eq!(
            healthcheck_history(&none),
            r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" '\x00'}"#
        );
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
