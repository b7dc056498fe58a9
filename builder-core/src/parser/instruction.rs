//! One instruction line (continuations already joined) to a [`Node`]:
//! keyword, flags, and the arguments split the way each instruction's
//! BuildKit line parser splits them.
use super::ast::{Args, NameValue, Node, Span};
use super::error::ParseErrorKind;
use super::gostr::{is_space_byte, to_lower, to_upper};
use super::json::{parse_json_args, JsonArgs};
use super::words::{parse_words, split_blanks, split_blanks_once, split_command};

/// The eighteen instructions, upper-case, in the order suggestions try them.
pub(super) const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parsed arguments: the args and whether they were a JSON array.
type Parsed = Result<(Args, bool), ParseErrorKind>;

/// BuildKit's `newNodeFromLine`, except that an unknown keyword is an error
/// here (BuildKit reports it one stage later). `line` is also kept as the
/// node's `original`.
pub(super) fn node_from_line(
    line: &str,
    escape: char,
    comments: Vec<String>,
) -> Result<Node, ParseErrorKind> {
    let split = split_command(line, escape);
    let keyword = to_lower(split.keyword);
    let rest = split.args.as_str();
    let (args, json) = match keyword.as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest),
        "arg" => Ok((name_or_name_value(rest, escape), false)),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest),
        "env" => name_value(rest, "ENV", escape),
        "label" => name_value(rest, "LABEL", escape),
        "expose" | "from" => Ok((Args::Words(whitespace_delimited(rest)), false)),
        "healthcheck" => health_config(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => Ok((string(rest), false)),
        "onbuild" => sub_command(rest, escape),
        "" => Err(ParseErrorKind::EmptyInstruction),
        _ => Err(unknown_instruction(split.keyword)),
    }?;
    Ok(Node {
        keyword,
        flags: split.flags,
        args,
        json,
        original: line.to_string(),
        heredocs: Vec::new(),
        comments,
        span: Span::default(),
    })
}

/// The error for a keyword we do not know, with BuildKit's suggestion (an
/// instruction within edit distance 2, in the keyword's case).
fn unknown_instruction(name: &str) -> ParseErrorKind {
    let lower = to_lower(name);
    let mut best: Option<(&str, usize)> = None;
    for option in INSTRUCTIONS {
        let dist = levenshtein(&lower, &to_lower(option));
        if dist < best.map_or(3, |(_, d)| d) {
            best = Some((option, dist));
        }
    }
    let suggestion = best.map(|(option, _)| {
        if name == to_lower(name) {
            to_lower(option)
        } else {
            option.to_string()
        }
    });
    ParseErrorKind::UnknownInstruction {
        name: name.to_string(),
        suggestion,
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ONBUILD: the rest of the line is an instruction of its own. FROM,
/// MAINTAINER and ONBUILD are refused as triggers (BuildKit does this when it
/// reads the instruction; we do it here, before recursing, so a long
/// `ONBUILD ONBUILD ...` chain cannot recurse deeply).
fn sub_command(rest: &str, escape: char) -> Parsed {
    if rest.is_empty() {
        return Ok((Args::Words(Vec::new()), false));
    }
    let trigger = split_blanks_once(super::words::trim_space(rest)).0;
    match to_lower(trigger).as_str() {
        "onbuild" => return Err(ParseErrorKind::OnbuildChain),
        "from" | "maintainer" => return Err(ParseErrorKind::OnbuildTrigger(to_upper(trigger))),
        _ => {}
    }
    let child = node_from_line(rest, escape, Vec::new())?;
    Ok((Args::Nested(Box::new(child)), false))
}

/// BuildKit's `parseNameVal` (ENV, LABEL): `k=v ...`, or the legacy `k v`
/// form when the first word has no `=`.
fn name_value(rest: &str, instruction: &str, escape: char) -> Parsed {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok((Args::NameValues(Vec::new()), false));
    };
    if !first.contains('=') {
        let (key, value) = split_blanks_once(rest);
        let Some(value) = value else {
            return Err(ParseErrorKind::MissingValue(instruction.to_string()));
        };
        let pair = NameValue {
            key: key.to_string(),
            value: Some(value.to_string()),
            equals: false,
        };
        return Ok((Args::NameValues(vec![pair]), false));
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word));
        };
        pairs.push(NameValue {
            key: key.to_string(),
            value: Some(value.to_string()),
            equals: true,
        });
    }
    Ok((Args::NameValues(pairs), false))
}

/// BuildKit's `parseNameOrNameVal` (ARG): words, each `name` or `name=value`.
fn name_or_name_value(rest: &str, escape: char) -> Args {
    let pairs = parse_words(rest, escape)
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => NameValue {
                key: key.to_string(),
                value: Some(value.to_string()),
                equals: true,
            },
            None => NameValue {
                key: word,
                value: None,
                equals: false,
            },
        })
        .collect();
    Args::NameValues(pairs)
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_blanks(rest).into_iter().map(str::to_string).collect()
}

fn string(rest: &str) -> Args {
    if rest.is_empty() {
        Args::Words(Vec::new())
    } else {
        Args::Words(vec![rest.to_string()])
    }
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or else the whole text as one
/// shell-form string.
fn maybe_json(rest: &str) -> Parsed {
    if rest.is_empty() {
        return Ok((Args::Words(Vec::new()), false));
    }
    match parse_json_args(rest) {
        JsonArgs::Strings(words) => Ok((Args::Words(words), true)),
        JsonArgs::NotStrings => Err(ParseErrorKind::NotStringArray),
        JsonArgs::Invalid => Ok((Args::Words(vec![rest.to_string()]), false)),
    }
}

/// ADD, COPY, VOLUME: a JSON array, or else whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Parsed {
    match parse_json_args(rest) {
        JsonArgs::Strings(words) => Ok((Args::Words(words), true)),
        JsonArgs::NotStrings => Err(ParseErrorKind::NotStringArray),
        JsonArgs::Invalid => Ok((Args::Words(whitespace_delimited(rest)), false)),
    }
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`), then a command as for CMD.
/// BuildKit finds the first word byte by byte, so we do too.
fn health_config(rest: &str) -> Parsed {
    let bytes = rest.as_bytes();
    let sep = bytes
        .iter()
        .position(|&b| is_space_byte(b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok((Args::Words(Vec::new()), false));
    }
    let next = bytes
        .iter()
        .skip(sep)
        .position(|&b| !is_space_byte(b))
        .map_or(bytes.len(), |i| sep + i);
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let typ = lossy(bytes.get(..sep).unwrap_or_default());
    let cmd = lossy(bytes.get(next..).unwrap_or_default());
    let (args, json) = maybe_json(&cmd)?;
    let mut words = vec![typ];
    if let Args::Words(more) = args {
        words.extend(more);
    }
    Ok((Args::Words(words), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_follow_case() {
        let s = |name: &str| match unknown_instruction(name) {
            ParseErrorKind::UnknownInstruction { suggestion, .. } => suggestion,
            _ => None,
        };
        assert_eq!(s("RUNN").as_deref(), Some("RUN"));
        assert_eq!(s("copyy").as_deref(), Some("copy"));
        assert_eq!(s("Frm").as_deref(), Some("FROM"));
        assert_eq!(s("XYZZYQ"), None);
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("run", "run"), 0);
    }
}
