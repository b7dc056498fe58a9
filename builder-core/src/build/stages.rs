//! Splitting a Dockerfile into stages, and the global (meta) ARGs before
//! the first FROM.
use crate::parser::{Args, Dockerfile, Node};

use super::BuildError;

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone)]
pub struct StageDef {
    /// Position among the stages.
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The FROM instruction.
    pub from: Node,
    /// The instructions after it.
    pub nodes: Vec<Node>,
}

/// The stages and the instructions before the first FROM.
#[derive(Debug, Clone)]
pub struct Plan {
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Node>,
    /// The stages in file order.
    pub stages: Vec<StageDef>,
}

/// Returns the value of `--name=value` among a node's flags; `Some("")`
/// for a bare `--name`.
pub fn flag<'a>(node: &'a Node, name: &str) -> Option<&'a str> {
    flags(node, name).into_iter().last()
}

/// Every value of a repeatable flag.
pub fn flags<'a>(node: &'a Node, name: &str) -> Vec<&'a str> {
    node.flags
        .iter()
        .filter_map(|f| {
            let body = f.strip_prefix("--")?;
            match body.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if body == name => Some(""),
                _ => None,
            }
        })
        .collect()
}

/// The instruction's words.
pub fn words(node: &Node) -> Vec<String> {
    match &node.args {
        Args::Words(w) => w.clone(),
        _ => Vec::new(),
    }
}

/// Splits the Dockerfile into stages.
pub fn plan(df: &Dockerfile) -> Result<Plan, BuildError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<StageDef> = Vec::new();
    for node in &df.nodes {
        if node.keyword == "from" {
            let w = words(node);
            let (base, name) = match w.as_slice() {
                [b] => (b.clone(), None),
                [b, as_kw, n] if as_kw.eq_ignore_ascii_case("as") => {
                    let n = n.to_ascii_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(BuildError::at(
                            &node.span,
                            format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols"),
                        ));
                    }
                    (b.clone(), Some(n))
                }
                _ => {
                    return Err(BuildError::at(
                        &node.span,
                        "FROM requires either one or three arguments",
                    ))
                }
            };
            if let Some(n) = &name {
                if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                    return Err(BuildError::at(
                        &node.span,
                        format!("duplicate stage name {n:?}"),
                    ));
                }
            }
            for f in &node.flags {
                if !f.starts_with("--platform=") {
                    return Err(BuildError::at(&node.span, format!("unknown flag: {f}")));
                }
            }
            stages.push(StageDef {
                index: stages.len(),
                name,
                base,
                platform: flag(node, "platform").map(String::from),
                from: node.clone(),
                nodes: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.nodes.push(node.clone());
        } else if node.keyword == "arg" {
            meta_args.push(node.clone());
        } else {
            return Err(BuildError::at(
                &node.span,
                format!(
                    "no build stage in current context: {} must come after FROM",
                    node.keyword.to_ascii_uppercase()
                ),
            ));
        }
    }
    if stages.is_empty() {
        return Err(BuildError::general(
            "the Dockerfile has no FROM instruction: nothing to build",
        ));
    }
    Ok(Plan { meta_args, stages })
}

fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

impl Plan {
    /// The stage a name or index refers to.
    pub fn find(&self, reference: &str) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        if let Some(s) = self
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(s.index);
        }
        reference
            .parse::<usize>()
            .ok()
            .filter(|i| *i < self.stages.len())
    }

    /// The stage `--target` names, or the last.
    pub fn target(&self, target: Option<&str>) -> Result<usize, BuildError> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(&lower))
                    .map(|s| s.index)
                    .ok_or_else(|| {
                        let names: Vec<&str> = self
                            .stages
                            .iter()
                            .filter_map(|s| s.name.as_deref())
                            .collect();
                        BuildError::general(format!(
                            "target stage {t:?} could not be found (stages: {})",
                            names.join(", ")
                        ))
                    })
            }
        }
    }
}
