//! `kiln build --progress=rawjson` runs for the layer-cache tests, and
//! what their events say: which steps hit, which missed and why.
use std::path::{Path, PathBuf};

use super::kiln;

/// One finished `kiln build`.
pub struct Build {
    /// The process succeeded.
    pub ok: bool,
    /// stdout: the image digest.
    pub digest: String,
    /// Every `--progress=rawjson` event.
    pub events: Vec<serde_json::Value>,
    /// All of stderr, for failure messages.
    pub stderr: String,
    /// The `--explain-cache` JSON array.
    pub explain: serde_json::Value,
}

impl Build {
    fn text_of(&self, id: &serde_json::Value) -> String {
        self.events
            .iter()
            .find(|e| e["type"] == "step_started" && e["id"] == *id)
            .and_then(|e| e["text"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The instruction text of every step with an event of `kind`
    /// (`step_cached`, `cache_miss`, `step_failed`, …), in order (which
    /// is fixed within a stage; independent stages run at the same time).
    pub fn steps(&self, kind: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["type"] == kind)
            .map(|e| self.text_of(&e["id"]))
            .collect()
    }

    fn misses_of(&self, text: &str) -> Vec<&serde_json::Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "cache_miss" && self.text_of(&e["id"]).starts_with(text))
            .collect()
    }

    /// The reasons of the miss of the step whose text starts with `text`.
    pub fn reasons(&self, text: &str) -> Vec<String> {
        self.misses_of(text)
            .iter()
            .flat_map(|e| e["reasons"].as_array().cloned().unwrap_or_default())
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The names of the inputs the miss event of that step lists as changed.
    pub fn changed(&self, text: &str) -> Vec<String> {
        self.misses_of(text)
            .iter()
            .flat_map(|e| e["changed"].as_array().cloned().unwrap_or_default())
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The `--explain-cache` reasons of the step whose text starts with
    /// `text` (matched through its place: the explanation's step identity
    /// is `DOCKERFILE#STAGE#POSITION#KIND`).
    pub fn explained(&self, text: &str) -> Vec<String> {
        let places: Vec<String> = self
            .events
            .iter()
            .filter(|e| {
                e["type"] == "step_started"
                    && e["text"].as_str().is_some_and(|t| t.starts_with(text))
            })
            .map(|e| {
                let stage = e["place"]["stage"].as_str().unwrap_or_default();
                format!("#{stage}#{}#", e["place"]["position"])
            })
            .collect();
        self.explain
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["step"]
                    .as_str()
                    .is_some_and(|s| places.iter().any(|p| s.contains(p.as_str())))
            })
            .flat_map(|e| {
                e["explanation"]["reasons"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every warning message.
    pub fn warnings(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["type"] == "warning")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Builds `df` (written to WORK/Dockerfile) with context `ctx` into the
/// store WORK/store, with `--progress=rawjson` and `--explain-cache`.
pub fn build(work: &Path, ctx: &Path, df: &str, extra: &[&str]) -> Build {
    build_env(work, ctx, df, extra, &[])
}

/// [`build`] with extra environment variables.
pub fn build_env(work: &Path, ctx: &Path, df: &str, extra: &[&str], env: &[(&str, &str)]) -> Build {
    let dockerfile = work.join("Dockerfile");
    std::fs::write(&dockerfile, df).unwrap();
    let root = work.join("store");
    let explain = work.join("explain.json");
    let _ = std::fs::remove_file(&explain);
    let explain_flag = format!("--explain-cache={}", explain.display());
    let mut args = vec![
        "build",
        "--root",
        root.to_str().unwrap(),
        "--progress=rawjson",
        "-f",
        dockerfile.to_str().unwrap(),
    ];
    if !extra.iter().any(|a| a.starts_with("--explain-cache")) {
        args.push(&explain_flag);
    }
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let mut envs = vec![("SOURCE_DATE_EPOCH", "0")];
    envs.extend_from_slice(env);
    let (ok, stdout, stderr) = kiln(&args, &envs);
    let events = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let explain = std::fs::read(&explain)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    Build {
        ok,
        digest: stdout.trim().to_string(),
        events,
        stderr,
        explain,
    }
}

/// A context directory WORK/ctx with `files` and a static busybox at
/// `busybox`.
pub fn context_with_busybox(work: &Path, files: &[(&str, &str)]) -> PathBuf {
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    super::tree(&ctx, files);
    std::fs::copy("/bin/busybox", ctx.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
    ctx
}
