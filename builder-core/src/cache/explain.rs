//! Why a step missed: its inputs against the closest earlier build of the
//! same step, named one by one.
use std::collections::BTreeMap;

use serde::Serialize;

use super::key::{CacheKey, InputsRecord};
use crate::progress::ChangedInput;

/// At most this many changes are listed; the rest are counted.
const MAX_LISTED: usize = 20;

/// One input that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputChange {
    /// The input's name (`file:src/main.rs`, `arg:VERSION`, …).
    pub name: String,
    /// Its value in the earlier build.
    pub old: String,
    /// Its value now.
    pub new: String,
}

/// What changed since the closest earlier build of a step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MissExplanation {
    /// The step as shown (its label).
    pub step: String,
    /// The earlier build compared against; None when this step was never
    /// built before (then the lists are empty).
    pub previous: Option<CacheKey>,
    /// Inputs with another value.
    pub changed: Vec<InputChange>,
    /// Inputs that are new: `(name, value)`.
    pub added: Vec<(String, String)>,
    /// Inputs that are gone: `(name, old value)`.
    pub removed: Vec<(String, String)>,
    /// True when the inputs are the same but the earlier result is no
    /// longer usable (its blobs were pruned).
    pub result_missing: bool,
}

/// Compares `now` with `before`, expanding summary inputs into their
/// details when both sides have them.
pub fn diff(before: &InputsRecord, now: &InputsRecord) -> MissExplanation {
    let mut e = MissExplanation {
        step: now.label.clone(),
        previous: Some(before.key()),
        ..MissExplanation::default()
    };
    let details = |name: &str| match (before.details.get(name), now.details.get(name)) {
        (Some(b), Some(n)) => Some((b, n)),
        _ => None,
    };
    diff_maps(&before.inputs, &now.inputs, &mut e, &details);
    e
}

type Pair<'a> = (&'a BTreeMap<String, String>, &'a BTreeMap<String, String>);

fn diff_maps<'a>(
    before: &'a BTreeMap<String, String>,
    now: &'a BTreeMap<String, String>,
    e: &mut MissExplanation,
    details: &dyn Fn(&str) -> Option<Pair<'a>>,
) {
    for (name, new) in now {
        match before.get(name) {
            Some(old) if old == new => {}
            Some(old) => match details(name) {
                Some((b, n)) if b != n => diff_maps(b, n, e, &|_| None),
                _ => e.changed.push(InputChange {
                    name: name.clone(),
                    old: old.clone(),
                    new: new.clone(),
                }),
            },
            None => e.added.push((name.clone(), new.clone())),
        }
    }
    for (name, old) in before {
        if !now.contains_key(name) {
            e.removed.push((name.clone(), old.clone()));
        }
    }
}

/// Number of differing inputs, to pick the closest earlier build.
pub(super) fn distance(before: &InputsRecord, now: &InputsRecord) -> usize {
    let mut n = usize::from(before.kind != now.kind);
    for (k, v) in &now.inputs {
        if before.inputs.get(k) != Some(v) {
            n += 1;
        }
    }
    n + before
        .inputs
        .keys()
        .filter(|k| !now.inputs.contains_key(*k))
        .count()
}

/// A value with its digest cut to 12 hex digits: `sha256:0123…` →
/// `0123456789ab`, `alpine:3@sha256:0123…` → `alpine:3@0123456789ab`.
fn short(v: &str) -> String {
    match v.split_once("sha256:") {
        Some((name, hex)) => format!("{name}{}", hex.get(..12).unwrap_or(hex)),
        None => v.to_string(),
    }
}

/// How an input is named in a sentence.
fn describe(name: &str) -> String {
    let (prefix, rest) = name.split_once(':').unwrap_or((name, ""));
    match prefix {
        "instruction" => "instruction text".into(),
        "parent" => "an earlier step".into(),
        "base" => "base image".into(),
        "platform" => "platform".into(),
        "env" => format!("env {rest}"),
        "arg" => format!("build arg {rest}"),
        // A context path that is not UTF-8 shows its raw bytes as `\xNN`.
        "file" => format!("file {}", crate::bytename::show(rest)),
        "from" => format!("source {rest}"),
        "chown" => format!("owner lookup {rest}"),
        "config" => rest.to_string(),
        "mount" => format!("mount {rest}"),
        _ => name.to_string(),
    }
}

impl MissExplanation {
    /// The explanation for a step never built before.
    pub fn first_build(step: &str) -> MissExplanation {
        MissExplanation {
            step: step.to_string(),
            ..MissExplanation::default()
        }
    }

    /// One short sentence per reason, without the step's name
    /// (`file src/main.rs changed`, `build arg VERSION changed`).
    pub fn reasons(&self) -> Vec<String> {
        if self.previous.is_none() {
            return vec!["no earlier build of this step".into()];
        }
        if self.result_missing {
            return vec!["the earlier result is no longer in the store".into()];
        }
        let mut out: Vec<String> = Vec::new();
        let all = self
            .changed
            .iter()
            .map(|c| (&c.name, c.name == "base", "changed"))
            .chain(self.added.iter().map(|(n, _)| (n, false, "added")))
            .chain(self.removed.iter().map(|(n, _)| (n, false, "removed")));
        let mut total = 0;
        for (name, is_base, verb) in all {
            total += 1;
            if out.len() == MAX_LISTED {
                continue;
            }
            let mut s = format!("{} {verb}", describe(name));
            if is_base {
                if let Some(c) = self.changed.iter().find(|c| c.name == "base") {
                    s = format!("{s} ({} -> {})", short(&c.old), short(&c.new));
                }
            }
            out.push(s);
        }
        if total > out.len() {
            out.push(format!("and {} more", total - out.len()));
        }
        if out.is_empty() {
            out.push("step kind changed".into());
        }
        out
    }

    /// `STEP: reason; reason`, one line.
    pub fn render_text(&self) -> String {
        let reasons = self.reasons().join("; ");
        if self.step.is_empty() {
            reasons
        } else {
            format!("{}: {reasons}", self.step)
        }
    }

    /// The `--explain-cache` JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("reasons".into(), serde_json::json!(self.reasons()));
        }
        v
    }

    /// The changes as progress events carry them.
    pub fn changed_inputs(&self) -> Vec<ChangedInput> {
        self.changed
            .iter()
            .map(|c| ChangedInput {
                name: c.name.clone(),
                old: Some(c.old.clone()),
                new: Some(c.new.clone()),
            })
            .chain(self.added.iter().map(|(n, v)| ChangedInput {
                name: n.clone(),
                old: None,
                new: Some(v.clone()),
            }))
            .chain(self.removed.iter().map(|(n, v)| ChangedInput {
                name: n.clone(),
                old: Some(v.clone()),
                new: None,
            }))
            .collect()
    }
}
