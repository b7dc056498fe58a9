//! Which host ids a step's ids map to, and how the user namespace gets its
//! maps (`newuidmap`/`newgidmap` for subordinate ranges, a direct write for
//! the single-id fallback).
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{SandboxError, Warning};

/// A contiguous range of ids: container `inside..inside+count` is host
/// `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// How container ids relate to host ids for every step and every snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    /// kiln runs as root: no user namespace, container ids are host ids.
    Host,
    /// kiln runs unprivileged: container root is the calling user, and the
    /// other ids come from its `/etc/subuid` and `/etc/subgid` ranges (an
    /// empty range list is the single-id fallback). Also root without
    /// `CAP_SYS_ADMIN` (in a container): every id it has maps to itself.
    User {
        /// Uid map ranges, container 0 first.
        uids: Vec<IdRange>,
        /// Gid map ranges, container 0 first.
        gids: Vec<IdRange>,
    },
}

impl IdMap {
    /// The mapping for the calling process: [`IdMap::Host`] as root, else the
    /// user's subordinate ranges from `/etc/subuid` and `/etc/subgid`. Without
    /// ranges the map has container root only and a warning says what fails.
    ///
    /// Root without `CAP_SYS_ADMIN` (an unprivileged container) may not make
    /// a mount namespace, but may make a user namespace (where it has every
    /// capability) when no seccomp profile refuses it: its steps get one
    /// that maps each id root has to itself ([`IdMap::for_capless_root`]).
    pub fn detect() -> (IdMap, Vec<Warning>) {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        if uid == 0 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            if has_sys_admin(&status) {
                return (IdMap::Host, Vec::new());
            }
            let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
            let map =
                IdMap::for_capless_root(&read("/proc/self/uid_map"), &read("/proc/self/gid_map"));
            return (map, Vec::new());
        }
        let name = user_name(uid, Path::new("/etc/passwd"));
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
        Self::for_user(uid, gid, name.as_deref(), &subuid, &subgid)
    }

    /// The mapping for `uid`/`gid` named `name`, given the text of
    /// `/etc/subuid` and `/etc/subgid`.
    pub fn for_user(
        uid: u32,
        gid: u32,
        name: Option<&str>,
        subuid: &str,
        subgid: &str,
    ) -> (IdMap, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut uids = vec![IdRange {
            inside: 0,
            outside: uid,
            count: 1,
        }];
        let mut gids = vec![IdRange {
            inside: 0,
            outside: gid,
            count: 1,
        }];
        let sub_u = sub_ranges(subuid, uid, name);
        let sub_g = sub_ranges(subgid, uid, name);
        if sub_u.is_empty() || sub_g.is_empty() || !helpers_present() {
            warnings.push(Warning::SingleIdMapping {
                user: name.map(str::to_owned).unwrap_or_else(|| uid.to_string()),
            });
        } else {
            append_ranges(&mut uids, &sub_u);
            append_ranges(&mut gids, &sub_g);
        }
        (IdMap::User { uids, gids }, warnings)
    }

    /// The identity mapping of every id in `uid_map` and `gid_map` (the
    /// text of `/proc/self/uid_map` and `gid_map`: `inside outside count`
    /// lines): the ids root has in its own namespace, each to itself.
    pub fn for_capless_root(uid_map: &str, gid_map: &str) -> IdMap {
        let identity = |text: &str| -> Vec<IdRange> {
            let mut out: Vec<IdRange> = text
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace().map(|v| v.parse::<u32>().ok());
                    let (inside, _, count) = (f.next()??, f.next()??, f.next()??);
                    (count > 0).then_some(IdRange {
                        inside,
                        outside: inside,
                        count,
                    })
                })
                .collect();
            out.sort_by_key(|r| r.inside);
            if out.is_empty() {
                out.push(IdRange {
                    inside: 0,
                    outside: 0,
                    count: 1,
                });
            }
            out
        };
        IdMap::User {
            uids: identity(uid_map),
            gids: identity(gid_map),
        }
    }

    /// True when steps need a user namespace (kiln is not root).
    pub fn needs_userns(&self) -> bool {
        matches!(self, IdMap::User { .. })
    }

    /// True when only container root is mapped (no subordinate ids).
    pub fn is_single(&self) -> bool {
        let one = |r: &[IdRange]| r.iter().map(|r| u64::from(r.count)).sum::<u64>() < 2;
        match self {
            IdMap::Host => false,
            IdMap::User { uids, gids } => one(uids) || one(gids),
        }
    }

    /// The host uid for a container uid, if mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        match self {
            IdMap::Host => Some(id),
            IdMap::User { uids, .. } => to_outside(uids, id),
        }
    }

    /// The host gid for a container gid, if mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        match self {
            IdMap::Host => Some(id),
            IdMap::User { gids, .. } => to_outside(gids, id),
        }
    }

    /// The container uid for a host uid (overflow id 65534 when unmapped).
    pub fn container_uid(&self, host: u32) -> u32 {
        match self {
            IdMap::Host => host,
            IdMap::User { uids, .. } => to_inside(uids, host),
        }
    }

    /// The container gid for a host gid (overflow id 65534 when unmapped).
    pub fn container_gid(&self, host: u32) -> u32 {
        match self {
            IdMap::Host => host,
            IdMap::User { gids, .. } => to_inside(gids, host),
        }
    }

    /// Writes the maps of the user namespace of process `pid`.
    pub(crate) fn apply(&self, pid: i32) -> Result<(), SandboxError> {
        let IdMap::User { uids, gids } = self else {
            return Ok(());
        };
        let root = rustix::process::geteuid().is_root();
        if root || self.is_single() {
            // Root writes any mapping of ids it has itself (CAP_SETUID in
            // its namespace; newuidmap would look for root's subuid ranges);
            // an unprivileged user may write only its own id, and must deny
            // setgroups before the gid map.
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let write = |name: &str, text: String| {
                std::fs::write(proc.join(name), text).map_err(|e| SandboxError::IdMap {
                    what: format!("writing /proc/{pid}/{name}"),
                    detail: e.to_string(),
                })
            };
            let lines = |ranges: &[IdRange]| -> String {
                ranges
                    .iter()
                    .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
                    .collect()
            };
            let (uids, gids) = if root {
                (&uids[..], &gids[..])
            } else {
                (&uids[..1], &gids[..1])
            };
            write("uid_map", lines(uids))?;
            if !root {
                write("setgroups", "deny\n".into())?;
            }
            return write("gid_map", lines(gids));
        }
        run_map_helper("newuidmap", pid, uids)?;
        run_map_helper("newgidmap", pid, gids)
    }
}

fn run_map_helper(tool: &str, pid: i32, ranges: &[IdRange]) -> Result<(), SandboxError> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.inside.to_string(),
            r.outside.to_string(),
            r.count.to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| SandboxError::IdMap {
        what: tool.to_owned(),
        detail: format!("{e} (install the Debian package `uidmap`)"),
    })?;
    if !out.status.success() {
        return Err(SandboxError::IdMap {
            what: tool.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn helpers_present() -> bool {
    ["newuidmap", "newgidmap"].iter().all(|t| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false)
    })
}

fn append_ranges(map: &mut Vec<IdRange>, sub: &[(u32, u32)]) {
    let mut next = 1u32;
    for &(start, count) in sub {
        map.push(IdRange {
            inside: next,
            outside: start,
            count,
        });
        next = next.saturating_add(count);
    }
}

fn to_outside(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

fn to_inside(ranges: &[IdRange], host: u32) -> u32 {
    ranges
        .iter()
        .find(|r| host >= r.outside && host - r.outside < r.count)
        .map(|r| r.inside + (host - r.outside))
        .unwrap_or(65534)
}

/// The `start:count` ranges of `/etc/subuid`-style text that belong to the
/// user (by name or numeric uid).
fn sub_ranges(text: &str, uid: u32, name: Option<&str>) -> Vec<(u32, u32)> {
    let uid_s = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut it = line.trim().split(':');
            let owner = it.next()?;
            let start = it.next()?.trim().parse::<u32>().ok()?;
            let count = it.next()?.trim().parse::<u32>().ok()?;
            let mine = owner == uid_s || Some(owner) == name;
            (mine && count > 0).then_some((start, count))
        })
        .collect()
}

fn user_name(uid: u32, passwd: &Path) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
    })
}

/// When kiln runs under a seccomp filter (a container's default profile
/// refuses user namespaces, mounts and `sethostname` to processes without
/// `CAP_SYS_ADMIN`), what to change; None without a filter.
pub(crate) fn seccomp_hint() -> Option<String> {
    seccomp_hint_from(&|p: &str| std::fs::read_to_string(p).ok())
}

fn seccomp_hint_from(read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let filtered = read("/proc/self/status").is_some_and(|status| {
        status
            .lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    });
    filtered.then(|| {
        "kiln runs under a seccomp filter (inside a container?) that refuses what a step's \
         namespaces need: start the container with `--security-opt seccomp=unconfined \
         --security-opt apparmor=unconfined`, as rootless BuildKit and Buildah need too"
            .to_string()
    })
}

/// Whether `CAP_SYS_ADMIN` is in the effective set of a `/proc/PID/status`.
fn has_sys_admin(status: &str) -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// Explains why user namespaces are unavailable and what to change, from the
/// kernel's knobs.
pub(crate) fn userns_hint() -> String {
    userns_hint_from(&|p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned()))
}

/// [`userns_hint`] from the knobs `read` returns (trimmed file contents).
fn userns_hint_from(read: &dyn Fn(&str) -> Option<String>) -> String {
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled: run `sysctl -w kernel.unprivileged_userns_clone=1`".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces: run `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` or give kiln an AppArmor profile with the `userns,` rule".into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user namespaces are disabled: run `sysctl -w user.max_user_namespaces=15000`"
            .into();
    }
    // Docker's and Podman's default seccomp profiles refuse unshare of a
    // user namespace: the usual reason inside a CI container.
    if let Some(hint) = seccomp_hint_from(read) {
        return hint;
    }
    "the kernel refused a user namespace (check seccomp/AppArmor/SELinux policy and kernel.unprivileged_userns_clone)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userns_hint_names_the_knob_that_forbids_it() {
        let with = |knob: &'static str, value: &'static str| {
            userns_hint_from(&move |p: &str| (p == knob).then(|| value.to_string()))
        };
        let h = with("/proc/sys/kernel/unprivileged_userns_clone", "0");
        assert!(
            h.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{h}"
        );
        let h = with(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
        );
        assert!(h.contains("apparmor_restrict_unprivileged_userns=0"), "{h}");
        assert!(h.contains("`userns,` rule"), "{h}");
        let h = with("/proc/sys/user/max_user_namespaces", "0");
        assert!(h.contains("sysctl -w user.max_user_namespaces="), "{h}");
        // Knobs that allow it: the policies left to check.
        let h = with("/proc/sys/user/max_user_namespaces", "15000");
        assert!(h.contains("seccomp/AppArmor/SELinux"), "{h}");
        // Under a seccomp filter, as in a container with Docker's profile.
        let h = with(
            "/proc/self/status",
            "Name:\tkiln\nSeccomp:\t2\nSeccomp_filters:\t1",
        );
        assert!(h.contains("--security-opt seccomp=unconfined"), "{h}");
        let h = with("/proc/self/status", "Name:\tkiln\nSeccomp:\t0");
        assert!(h.contains("seccomp/AppArmor/SELinux"), "{h}");
        // This machine allows them: no knob is blamed.
        assert!(userns_hint().contains("seccomp/AppArmor/SELinux"));
    }

    #[test]
    fn root_without_sys_admin_maps_its_own_ids_to_themselves() {
        assert!(has_sys_admin("Name:\tk\nCapEff:\t000001ffffffffff\n"));
        assert!(!has_sys_admin("Name:\tk\nCapEff:\t000001fffedfffff\n"));
        assert!(!has_sys_admin("no caps line"));
        // The host's namespace, and a container's own user namespace.
        let map = IdMap::for_capless_root("0 0 4294967295\n", "0 0 4294967295\n");
        assert!(map.needs_userns() && !map.is_single());
        assert_eq!(map.host_uid(0), Some(0));
        assert_eq!(map.host_uid(70000), Some(70000));
        assert_eq!(map.container_gid(5), 5);
        let map = IdMap::for_capless_root(
            "         0          0          1\n         1     100000      65536\n",
            "0 0 65537\n",
        );
        assert_eq!(map.host_uid(1), Some(1), "ids as root sees them");
        assert_eq!(map.host_uid(65536), Some(65536));
        assert_eq!(map.host_uid(65537), None);
        assert!(!map.is_single());
        assert!(IdMap::for_capless_root("", "").is_single());
    }

    #[test]
    fn maps_root_to_user_and_rest_to_subordinate_ranges() {
        let (map, w) = IdMap::for_user(
            1000,
            1000,
            Some("kiln"),
            "other:1:5\nkiln:100000:65536\n",
            "1000:200000:10\n",
        );
        assert!(w.is_empty(), "newuidmap/newgidmap missing: {w:?}");
        assert_eq!(map.host_uid(0), Some(1000));
        assert_eq!(map.host_uid(1), Some(100000));
        assert_eq!(map.host_uid(1000), Some(100999));
        assert_eq!(map.host_gid(10), Some(200009));
        assert_eq!(map.host_gid(11), None);
        assert_eq!(map.container_uid(100999), 1000);
        assert_eq!(map.container_uid(5), 65534);
    }

    #[test]
    fn without_ranges_maps_root_only_and_warns() {
        let (map, w) = IdMap::for_user(1000, 1000, Some("kiln"), "", "");
        assert!(map.is_single());
        assert!(matches!(w.as_slice(), [Warning::SingleIdMapping { .. }]));
        assert_eq!(map.host_uid(1), None);
    }
}
