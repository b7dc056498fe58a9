//! Turning a user spec (`name`, `uid`, `name:group`, `uid:gid`) into the ids
//! a step runs with, reading the root's `/etc/passwd` and `/etc/group` the way
//! BuildKit does (through runc's `GetExecUser`): supplementary groups come
//! only from the implicit form, a numeric user without a passwd entry gets
//! gid 0, and `uid:gid` in numbers skips the files entirely.

/// The ids a step's process runs with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the groups listing the user as a member).
    pub additional_gids: Vec<u32>,
}

/// Why a user spec cannot be resolved (BuildKit's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No passwd entry for a user name.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// No group entry for a group name.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

/// One line of /etc/passwd, as far as ids go.
pub(crate) struct Passwd<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
}

/// The entries of a passwd file (comments and malformed lines skipped).
pub(crate) fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.first().is_none_or(|n| n.is_empty() || n.starts_with('#')) {
            return None;
        }
        Some(Passwd {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
        })
    })
}

/// One line of /etc/group.
pub(crate) struct Group<'a> {
    pub name: &'a str,
    pub gid: u32,
    pub members: Vec<&'a str>,
}

/// The entries of a group file (comments and malformed lines skipped).
pub(crate) fn group_entries(text: &str) -> impl Iterator<Item = Group<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.first().is_none_or(|n| n.is_empty() || n.starts_with('#')) {
            return None;
        }
        Some(Group {
            name: f.first()?,
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

fn numeric(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    s.parse().ok()
}

/// Resolves `spec` against the root's passwd and group files (`None` when
/// the file does not exist).
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, UserError> {
    if spec.is_empty() {
        return Ok(ExecUser::default());
    }
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // BuildKit's fast path: both parts numeric (or "root").
    if let (Some(u), Some(g)) = (numeric(user_arg), group_arg.and_then(numeric)) {
        return Ok(ExecUser {
            uid: u,
            gid: g,
            additional_gids: Vec::new(),
        });
    }
    // An empty user part (`:5`) is GetExecUser's default user, uid 0: the
    // passwd entry with that uid when there is one, no error when not.
    let uid_num: Option<u32> = if user_arg.is_empty() {
        Some(0)
    } else {
        user_arg.parse().ok()
    };
    let mut out = ExecUser::default();
    let found = passwd.and_then(|text| {
        passwd_entries(text).find(|p| match uid_num {
            Some(n) => p.uid == n,
            None => p.name == user_arg,
        })
    });
    let matched_name = match &found {
        Some(p) => {
            out.uid = p.uid;
            out.gid = p.gid;
            Some(p.name.to_owned())
        }
        None => {
            out.uid = uid_num.ok_or_else(|| UserError::NoUser(user_arg.to_owned()))?;
            None
        }
    };
    let group_arg = group_arg.filter(|g| !g.is_empty());
    match group_arg {
        Some(g) => {
            let gid_num: Option<u32> = g.parse().ok();
            let hit = group.and_then(|text| {
                group_entries(text).find(|e| match gid_num {
                    Some(n) => e.gid == n,
                    None => e.name == g,
                })
            });
            out.gid = match hit {
                Some(e) => e.gid,
                None => gid_num.ok_or_else(|| UserError::NoGroup(g.to_owned()))?,
            };
        }
        None => {
            if let (Some(name), Some(text)) = (&matched_name, group) {
                out.additional_gids = group_entries(text)
                    .filter(|e| e.members.contains(&name.as_str()))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nbob:x:1000:\nwheel:x:10:bob,alice\naudio:x:29:bob\n";

    fn r(spec: &str) -> Result<ExecUser, UserError> {
        resolve_user(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn names_take_ids_and_member_groups_from_the_files() {
        assert_eq!(
            r("bob").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 29]
            }
        );
        assert_eq!(r("1000").unwrap().additional_gids, vec![10, 29]);
        assert_eq!(
            r("www").unwrap(),
            ExecUser {
                uid: 33,
                gid: 33,
                additional_gids: vec![]
            }
        );
    }

    #[test]
    fn explicit_group_replaces_gid_and_drops_supplementary_groups() {
        assert_eq!(
            r("bob:wheel").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 10,
                additional_gids: vec![]
            }
        );
        assert_eq!(r("bob:4242").unwrap().gid, 4242);
        assert_eq!(
            r("1000:1000").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![]
            }
        );
        assert_eq!(r("root:root").unwrap(), ExecUser::default());
    }

    #[test]
    fn unknown_numeric_user_gets_gid_zero_and_unknown_names_fail() {
        assert_eq!(
            r("4000").unwrap(),
            ExecUser {
                uid: 4000,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            r("nobody").unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert!(matches!(r("bob:nogroup"), Err(UserError::NoGroup(_))));
        assert_eq!(
            resolve_user("bob", None, None).unwrap_err(),
            UserError::NoUser("bob".into())
        );
        assert_eq!(resolve_user("7", None, None).unwrap().uid, 7);
    }

    #[test]
    fn empty_user_part_is_root() {
        assert_eq!(
            r(":wheel").unwrap(),
            ExecUser {
                uid: 0,
                gid: 10,
                additional_gids: vec![]
            }
        );
        assert_eq!(r(":5").unwrap().gid, 5);
        assert_eq!(resolve_user(":5", None, None).unwrap().uid, 0);
        assert!(matches!(r(":nogroup"), Err(UserError::NoGroup(_))));
    }
}
