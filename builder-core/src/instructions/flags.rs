//! Per-instruction `--flag` checking, as BuildKit's `BFlags` does it.
use std::collections::BTreeMap;

use super::error::InstructionErrorKind as K;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagType {
    Bool,
    String,
    /// Repeatable; every value kept.
    Strings,
}

#[derive(Debug, Default)]
struct Value {
    used: bool,
    value: Option<String>,
    values: Vec<String>,
}

/// The flags an instruction accepts, filled from the words the parser kept.
pub(super) struct Flags {
    defs: Vec<(&'static str, FlagType)>,
    values: BTreeMap<&'static str, Value>,
}

impl Flags {
    pub(super) fn new(defs: &[(&'static str, FlagType)]) -> Self {
        Flags {
            defs: defs.to_vec(),
            values: BTreeMap::new(),
        }
    }

    /// Checks and records `args` (each `--name[=value]`).
    pub(super) fn parse(mut self, args: &[String]) -> Result<Self, K> {
        for a in args {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(K::BadFlag(format!("arg should start with -- : {a}")));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some(&(key, ty)) = self.defs.iter().find(|(n, _)| *n == name) else {
                return Err(K::UnknownFlag(flag_name));
            };
            let slot = self.values.entry(key).or_default();
            if slot.used && ty != FlagType::Strings {
                return Err(K::BadFlag(format!("duplicate flag specified: {flag_name}")));
            }
            slot.used = true;
            match ty {
                FlagType::Bool => {
                    if value == Some("") {
                        return Err(K::BadFlag(format!("missing a value on flag: {flag_name}")));
                    }
                    let v = value.unwrap_or("").to_ascii_lowercase();
                    slot.value = Some(match v.as_str() {
                        "true" | "" => "true".into(),
                        "false" => "false".into(),
                        _ => {
                            return Err(K::BadFlag(format!(
                                "expecting boolean value for flag {flag_name}, not: {}",
                                value.unwrap_or("")
                            )))
                        }
                    });
                }
                FlagType::String => {
                    let Some(v) = value else {
                        return Err(K::BadFlag(format!("missing a value on flag: {flag_name}")));
                    };
                    slot.value = Some(v.to_string());
                }
                FlagType::Strings => {
                    let Some(v) = value else {
                        return Err(K::BadFlag(format!("missing a value on flag: {flag_name}")));
                    };
                    slot.values.push(v.to_string());
                }
            }
        }
        Ok(self)
    }

    /// A string flag's value; `None` when absent. An explicitly empty value
    /// (`--chown=`) counts as absent, as in BuildKit.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|v| v.value.clone())
            .filter(|v| !v.is_empty())
    }

    /// A string flag's value even when empty; `None` only when absent.
    pub(super) fn raw_string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.value.clone())
    }

    /// A bool flag: `false` when absent.
    pub(super) fn bool(&self, name: &str) -> bool {
        self.opt_bool(name).unwrap_or(false)
    }

    /// A bool flag: `None` when absent.
    pub(super) fn opt_bool(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.value.as_deref())
            .map(|v| v == "true")
    }

    /// Every value of a repeatable flag.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|v| v.values.clone())
            .unwrap_or_default()
    }
}
