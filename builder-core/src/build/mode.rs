//! `--chmod` (octal or symbolic, as BuildKit accepts it) and `--chown`
//! (numeric or names looked up in the stage's /etc/passwd and /etc/group).

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSpec {
    /// `0755`: replaces the permission bits (and setuid/setgid/sticky).
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
            ModeSpec::Octal(m) => *m,
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

/// Looks `--chown`'s `user[:group]` up. `passwd` and `group` are the
/// stage's files (None when absent). A numeric user without a group gets
/// the same number as gid; a named one its primary group.
pub fn resolve_chown(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary_gid) = if let Ok(n) = user.parse::<u32>() {
        (n, n)
    } else {
        let found = passwd.and_then(|text| {
            text.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.first() == Some(&user) && f.len() >= 4 {
                    Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?))
                } else {
                    None
                }
            })
        });
        found.ok_or_else(|| {
            format!("unable to find user {user}: no matching entries in passwd file")
        })?
    };
    let gid = match grp {
        None | Some("") => primary_gid,
        Some(g) => {
            if let Ok(n) = g.parse::<u32>() {
                n
            } else {
                group
                    .and_then(|text| {
                        text.lines().find_map(|line| {
                            let f: Vec<&str> = line.split(':').collect();
                            if f.first() == Some(&g) && f.len() >= 3 {
                                f[2].parse::<u32>().ok()
                            } else {
                                None
                            }
                        })
                    })
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?
            }
        }
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(ModeSpec::parse("755").unwrap().apply(0o644, false), 0o755);
        assert_eq!(ModeSpec::parse("0640").unwrap().apply(0o755, true), 0o640);
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
        assert_eq!(r("1001").unwrap(), (1001, 1001));
        assert_eq!(r("1001:1002").unwrap(), (1001, 1002));
        assert_eq!(r("bob").unwrap(), (2001, 2000));
        assert_eq!(r("bob:staff").unwrap(), (2001, 50));
        assert_eq!(r("0:grp").unwrap(), (0, 2000));
        assert!(r("alice").unwrap_err().contains("alice"));
        assert!(r("bob:nogroup").unwrap_err().contains("nogroup"));
        assert!(resolve_chown("bob", None, None).is_err());
    }
}
