//! Tests over hand-built syntax-tree nodes (own fixtures).
use crate::parser::{Args, Dockerfile, Heredoc, NameValue, Node, Span};

mod parse;
mod run;
mod stages;
mod state;

/// A node as the parser would produce it.
pub(super) fn node(keyword: &str, flags: &[&str], args: Args, json: bool, original: &str) -> Node {
    node_at(keyword, flags, args, json, original, 1)
}

pub(super) fn node_at(
    keyword: &str,
    flags: &[&str],
    args: Args,
    json: bool,
    original: &str,
    line: usize,
) -> Node {
    Node {
        keyword: keyword.to_string(),
        flags: flags.iter().map(|s| s.to_string()).collect(),
        args,
        json,
        original: original.to_string(),
        heredocs: Vec::new(),
        comments: Vec::new(),
        span: Span {
            start_line: line,
            start_col: 1,
            end_line: line,
            end_col: original.len() + 1,
        },
    }
}

pub(super) fn words(w: &[&str]) -> Args {
    Args::Words(w.iter().map(|s| s.to_string()).collect())
}

/// `k=v` pairs (`equals`), or `k v` when `legacy`.
pub(super) fn pairs(p: &[(&str, &str)], legacy: bool) -> Args {
    Args::NameValues(
        p.iter()
            .map(|(k, v)| NameValue {
                key: k.to_string(),
                value: Some(v.to_string()),
                equals: !legacy,
            })
            .collect(),
    )
}

pub(super) fn arg_decls(p: &[(&str, Option<&str>)]) -> Args {
    Args::NameValues(
        p.iter()
            .map(|(k, v)| NameValue {
                key: k.to_string(),
                value: v.map(str::to_string),
                equals: v.is_some(),
            })
            .collect(),
    )
}

pub(super) fn heredoc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.to_string(),
        content: content.to_string(),
        expand,
        chomp,
        file_descriptor: 0,
    }
}

/// A Dockerfile of `nodes`, lines numbered in order.
pub(super) fn dockerfile(nodes: Vec<Node>) -> Dockerfile {
    Dockerfile {
        directives: Vec::new(),
        escape: '\\',
        nodes: nodes
            .into_iter()
            .enumerate()
            .map(|(i, mut n)| {
                n.span.start_line = i + 1;
                n.span.end_line = i + 1;
                n
            })
            .collect(),
        warnings: Vec::new(),
    }
}

pub(super) fn from(base: &str) -> Node {
    node("from", &[], words(&[base]), false, &format!("FROM {base}"))
}

pub(super) fn from_as(base: &str, name: &str) -> Node {
    node(
        "from",
        &[],
        words(&[base, "AS", name]),
        false,
        &format!("FROM {base} AS {name}"),
    )
}
