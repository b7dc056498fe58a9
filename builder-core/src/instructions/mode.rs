//! `--chmod` values: octal (`755`) or symbolic (`u+x,go-w`), as BuildKit
//! accepts them, turned into something that can be applied to a file.
use super::error::InstructionErrorKind as K;

/// One symbolic clause: `who op perms`, e.g. `go+rX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeClause {
    /// Permission bits selected by `u`, `g`, `o` (or all for `a`/none).
    who: u32,
    /// `+`, `-` or `=`.
    op: char,
    /// Bits to use, given as letters.
    perms: u32,
    /// `X`: execute only for directories or already-executable files.
    cond_exec: bool,
    /// Copy from another class (`g=u`): 'u', 'g', 'o' or none.
    copy_from: Option<char>,
}

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMode {
    /// An absolute mode (`0755`), at most 0o7777.
    Octal(u32),
    /// Symbolic clauses applied in order to each file's existing mode.
    Symbolic(Vec<ModeClause>),
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl FileMode {
    /// Parses a `--chmod` value with BuildKit's checks and messages.
    pub fn parse(s: &str) -> Result<FileMode, K> {
        let non_octal = || {
            K::BadValue(format!(
                "invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"
            ))
        };
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            // Looks numeric: must be valid octal within range.
            return match u32::from_str_radix(s, 8) {
                Ok(v) if v <= 0o7777 => Ok(FileMode::Octal(v)),
                _ => Err(non_octal()),
            };
        }
        parse_symbolic(s)
            .map(FileMode::Symbolic)
            .ok_or_else(|| K::BadValue(format!("invalid chmod parameter: '{s}'")))
    }

    /// The mode a file gets, given its current permission bits (low 12 bits
    /// of `old`) and whether it is a directory.
    pub fn apply(&self, old: u32, is_dir: bool) -> u32 {
        match self {
            FileMode::Octal(m) => *m,
            FileMode::Symbolic(clauses) => {
                let mut mode = old & 0o7777;
                for c in clauses {
                    let mut bits = c.perms;
                    if c.cond_exec && (is_dir || mode & 0o111 != 0) {
                        bits |= 0o111;
                    }
                    if let Some(from) = c.copy_from {
                        let src = match from {
                            'u' => (mode >> 6) & 7,
                            'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        bits |= src | (src << 3) | (src << 6);
                    }
                    let mask = c.who;
                    match c.op {
                        '+' => mode |= bits & mask,
                        '-' => mode &= !(bits & mask),
                        _ => {
                            // `=` clears the class's rwx (not setuid/gid of
                            // classes not named) then sets.
                            let clear = mask & 0o777 | (mask & 0o7000);
                            mode = (mode & !clear) | (bits & mask);
                        }
                    }
                }
                mode
            }
        }
    }
}

fn parse_symbolic(s: &str) -> Option<Vec<ModeClause>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let mut chars = part.chars().peekable();
        let mut who = 0;
        while let Some(&c) = chars.peek() {
            who |= match c {
                'u' => USER,
                'g' => GROUP,
                'o' => OTHER,
                'a' => USER | GROUP | OTHER,
                _ => break,
            };
            chars.next();
        }
        if who == 0 {
            who = USER | GROUP | OTHER;
        }
        let mut any_op = false;
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return None;
            }
            any_op = true;
            let mut clause = ModeClause {
                who,
                op,
                perms: 0,
                cond_exec: false,
                copy_from: None,
            };
            while let Some(&c) = chars.peek() {
                match c {
                    'r' => clause.perms |= 0o444,
                    'w' => clause.perms |= 0o222,
                    'x' => clause.perms |= 0o111,
                    'X' => clause.cond_exec = true,
                    's' => clause.perms |= 0o6000,
                    't' => clause.perms |= 0o1000,
                    'u' | 'g' | 'o' if clause.perms == 0 && clause.copy_from.is_none() => {
                        clause.copy_from = Some(c)
                    }
                    '+' | '-' | '=' => break,
                    _ => return None,
                }
                chars.next();
            }
            out.push(clause);
        }
        if !any_op {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal() {
        assert_eq!(FileMode::parse("755").unwrap(), FileMode::Octal(0o755));
        assert_eq!(FileMode::parse("04755").unwrap().apply(0, false), 0o4755);
        assert!(FileMode::parse("7778")
            .unwrap_err()
            .to_string()
            .contains("octal"));
        assert!(FileMode::parse("17777").is_err());
    }

    #[test]
    fn symbolic() {
        let m = FileMode::parse("u+x,go-w").unwrap();
        assert_eq!(m.apply(0o666, false), 0o744);
        assert_eq!(FileMode::parse("a=r").unwrap().apply(0o777, false), 0o444);
        assert_eq!(FileMode::parse("+X").unwrap().apply(0o644, true), 0o755);
        assert_eq!(FileMode::parse("+X").unwrap().apply(0o644, false), 0o644);
        assert_eq!(FileMode::parse("+X").unwrap().apply(0o744, false), 0o755);
        assert_eq!(FileMode::parse("g=u").unwrap().apply(0o704, false), 0o774);
        assert_eq!(FileMode::parse("u+s").unwrap().apply(0o755, false), 0o4755);
        assert_eq!(FileMode::parse("o=").unwrap().apply(0o777, false), 0o770);
        assert_eq!(FileMode::parse("u+r-w").unwrap().apply(0o200, false), 0o400);
    }

    #[test]
    fn symbolic_errors() {
        for bad in ["", "u", "u+q", "z+x", "u+x,", "rwx"] {
            assert!(FileMode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
