//! BuildKit's `Node.Dump` format: one S-expression per instruction, strings
//! quoted as Go's `%q` quotes them. The parser golden files use it.
use super::ast::{Args, Dockerfile, Node};
use super::gostr::quote_into;

impl Dockerfile {
    /// The whole file in BuildKit's dump format: one `(keyword ...)` line per
    /// instruction, no trailing newline (BuildKit's `AST.Dump()`).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push('(');
            node.dump_into(&mut out);
            out.push(')');
        }
        out
    }
}

impl Node {
    /// This instruction in BuildKit's dump format, without the surrounding
    /// parentheses: `run ["--mount=type=cache"] "make"`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        self.dump_into(&mut out);
        out
    }

    fn dump_into(&self, out: &mut String) {
        out.push_str(&self.keyword);
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quote_into(out, flag);
            }
            out.push(']');
        }
        match &self.args {
            Args::Words(words) => {
                for word in words {
                    out.push(' ');
                    quote_into(out, word);
                }
            }
            Args::NameValues(pairs) if self.keyword == "arg" => {
                // ARG keeps each word whole: `name` or `name=value`.
                for pair in pairs {
                    out.push(' ');
                    match &pair.value {
                        Some(value) => quote_into(out, &format!("{}={}", pair.key, value)),
                        None => quote_into(out, &pair.key),
                    }
                }
            }
            Args::NameValues(pairs) => {
                for pair in pairs {
                    out.push(' ');
                    quote_into(out, &pair.key);
                    out.push(' ');
                    quote_into(out, pair.value.as_deref().unwrap_or(""));
                    out.push(' ');
                    quote_into(out, if pair.equals { "=" } else { "" });
                }
            }
            Args::Nested(child) => {
                out.push_str(" (");
                child.dump_into(out);
                out.push(')');
            }
        }
    }
}
