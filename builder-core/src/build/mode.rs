//! `--chmod` (octal or symbolic, as BuildKit accepts it) and `--chown`
//! (numeric or names looked up in the stage's /etc/passwd and /etc/group,
//! unknown names falling back to 0 as in BuildKit).

use crate::sandbox::user::{group_entries, passwd_entries};

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    /// `0755`: replaces the permission bits only; setuid, setgid and
    /// sticky stay the source's, as docker 20.10's BuildKit (fsutil's copy
    /// of the time) applies `--chmod`. Current BuildKit takes the value's
    /// special bits instead (decisions, "newsyntax").
    Octal(u32),
    /// `u+x,go-w`: applied to each entry's own mode.
    Symbolic(Vec<Clause>),
}

/// One clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u32,
    op: char,
    perms: String,
}

impl ModeSpec {
    /// Parses `--chmod`'s value with BuildKit's rules: octal up to 07777,
    /// otherwise chmod(1)'s symbolic syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let non_octal = || {
            format!(
                "invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777"
            )
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let v = u32::from_str_radix(text, 8).map_err(|_| non_octal())?;
            if v > 0o7777 {
                return Err(non_octal());
            }
            return Ok(ModeSpec::Octal(v));
        }
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let op_at = part
                .find(['+', '-', '='])
                .ok_or_else(|| format!("invalid chmod parameter: '{text}'"))?;
            let (who_s, rest) = part.split_at(op_at);
            let mut who = 0;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(format!("invalid chmod parameter: '{text}'")),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut chars = rest.chars();
            let op = chars.next().unwrap_or('=');
            let perms: String = chars.collect();
            if perms.chars().any(|c| !"rwxXst".contains(c)) {
                return Err(format!("invalid chmod parameter: '{text}'"));
            }
            clauses.push(Clause { who, op, perms });
        }
        Ok(ModeSpec::Symbolic(clauses))
    }

    /// The mode an entry gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            ModeSpec::Octal(m) => (mode & 0o7000) | (m & 0o777),
            ModeSpec::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for c in clauses {
                    let mut bits = 0;
                    for p in c.perms.chars() {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & c.who;
                    match c.op {
                        '+' => m |= bits,
                        '-' => m &= !bits,
                        _ => m = (m & !(c.who & 0o7777)) | bits,
                    }
                }
                m
            }
        }
    }
}

/// One side of `--chown`'s `user[:group]` as BuildKit's `llb.WithUser`
/// reads it: a number, `root` (0 without a lookup) or the empty word
/// (also 0: an empty name is sent as id 0), else a name to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerPart<'a> {
    /// Taken as is.
    Id(u32),
    /// Looked up in the stage's /etc/passwd or /etc/group.
    Name(&'a str),
}

impl<'a> OwnerPart<'a> {
    fn parse(word: &'a str) -> Self {
        if word.is_empty() || word == "root" {
            return OwnerPart::Id(0);
        }
        // Go's strconv.ParseInt(word, 10, 32): a number above 2^31-1 is
        // taken as a name. (A negative one would reach lchown as -1, "leave
        // the owner"; kiln looks it up as a name instead.)
        match word.parse::<i32>().ok().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => OwnerPart::Id(n),
            None => OwnerPart::Name(word),
        }
    }
}

/// Splits `--chown`'s value into its user part and, after a `:`, its group
/// part.
pub fn chown_parts(spec: &str) -> (OwnerPart<'_>, Option<OwnerPart<'_>>) {
    match spec.split_once(':') {
        Some((u, g)) => (OwnerPart::parse(u), Some(OwnerPart::parse(g))),
        None => (OwnerPart::parse(spec), None),
    }
}

/// Looks `--chown`'s `user[:group]` up as BuildKit's file operation does.
/// `passwd` and `group` are the stage's files (None when absent). A
/// numeric user gets the same number as gid, a named one its primary
/// group. A name that is not found (or a missing file) is not an error
/// there: an unknown user leaves 0:0, an unknown group leaves the gid the
/// user part gave.
pub fn resolve_chown(spec: &str, passwd: Option<&str>, group: Option<&str>) -> (u32, u32) {
    let (user, grp) = chown_parts(spec);
    let (uid, mut gid) = match user {
        OwnerPart::Id(n) => (n, n),
        OwnerPart::Name(name) => passwd
            .and_then(|text| passwd_entries(text).find(|p| p.name == name))
            .map_or((0, 0), |p| (p.uid, p.gid)),
    };
    match grp {
        None => {}
        Some(OwnerPart::Id(n)) => gid = n,
        Some(OwnerPart::Name(name)) => {
            if let Some(g) = group.and_then(|text| group_entries(text).find(|g| g.name == name)) {
                gid = g.gid;
            }
        }
    }
    (uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(ModeSpec::parse("755").unwrap().apply(0o644, false), 0o755);
        assert_eq!(ModeSpec::parse("0640").unwrap().apply(0o755, true), 0o640);
        // Special bits: the source's stay, the value's are ignored (docker
        // 20.10: 4755 on a 0644 file gives 0755, 0644 on 4755 gives 4644).
        assert_eq!(ModeSpec::parse("4755").unwrap().apply(0o644, false), 0o755);
        assert_eq!(
            ModeSpec::parse("0644").unwrap().apply(0o4755, false),
            0o4644
        );
        assert_eq!(
            ModeSpec::parse("7777").unwrap().apply(0o4755, false),
            0o4777
        );
        assert_eq!(
            ModeSpec::parse("0600").unwrap().apply(0o2700, false),
            0o2600
        );
        assert!(ModeSpec::parse("17777").is_err());
        assert!(ModeSpec::parse("u+q").is_err());
        let s = ModeSpec::parse("u+x,go-w").unwrap();
        assert_eq!(s.apply(0o666, false), 0o744);
        let x = ModeSpec::parse("a+X").unwrap();
        assert_eq!(x.apply(0o644, false), 0o644);
        assert_eq!(x.apply(0o644, true), 0o755);
        assert_eq!(
            ModeSpec::parse("u=rw,g=r,o=").unwrap().apply(0o777, false),
            0o640
        );
        assert_eq!(ModeSpec::parse("+t").unwrap().apply(0o777, true), 0o1777);
    }

    #[test]
    fn chown_by_number_and_name() {
        let passwd = "root:x:0:0::/root:/bin/sh\nbob:x:2001:2000::/home/bob:/bin/sh\n";
        let group = "root:x:0:\ngrp:x:2000:\nstaff:x:50:\n";
        let r = |s| resolve_chown(s, Some(passwd), Some(group));
        assert_eq!(r("1001"), (1001, 1001));
        assert_eq!(r("1001:1002"), (1001, 1002));
        assert_eq!(r("bob"), (2001, 2000));
        assert_eq!(r("bob:staff"), (2001, 50));
        assert_eq!(r("0:grp"), (0, 2000));
        assert_eq!(r(":staff"), (0, 50));
        assert_eq!(r("root:staff"), (0, 50));
    }

    #[test]
    fn chown_unknown_names_fall_back_as_in_buildkit() {
        let passwd = "bob:x:2001:2000::/home/bob:/bin/sh\n";
        let group = "staff:x:50:\n";
        let r = |s| resolve_chown(s, Some(passwd), Some(group));
        // An unknown user is 0:0; an unknown group keeps the user's gid.
        assert_eq!(r("alice"), (0, 0));
        assert_eq!(r("alice:staff"), (0, 50));
        assert_eq!(r("7:nogroup"), (7, 7));
        assert_eq!(r("bob:nogroup"), (2001, 2000));
        // An empty group word is id 0, not the user's primary group.
        assert_eq!(r("7:"), (7, 0));
        // `root` needs no /etc/passwd.
        assert_eq!(resolve_chown("root:root", None, None), (0, 0));
        assert_eq!(resolve_chown("bob", None, None), (0, 0));
        // Ids are 32-bit signed numbers; a bigger one is an unknown name.
        assert_eq!(r("2147483647:4294967294"), (2147483647, 2147483647));
    }

    #[test]
    fn chown_parts_name_only_words_to_look_up() {
        assert_eq!(chown_parts("5"), (OwnerPart::Id(5), None));
        assert_eq!(
            chown_parts("root:"),
            (OwnerPart::Id(0), Some(OwnerPart::Id(0)))
        );
        assert_eq!(
            chown_parts("app:staff"),
            (OwnerPart::Name("app"), Some(OwnerPart::Name("staff")))
        );
    }
}
