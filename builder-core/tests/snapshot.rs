//! Layer extraction into the store, overlay roots and the upper-dir diff,
//! run for real as root and (through scripts/test) as `kiln-test`.
mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use builder_core::fsentry::{Entry, Kind};
use builder_core::sandbox::Spec;
use builder_core::snapshot::{RootfsMode, SnapshotError, Store};
use common::*;

fn header(kind: tar::EntryType, mode: u32, uid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    h
}

struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }
    fn dir(mut self, path: &str, mode: u32, uid: u64) -> Layer {
        let mut h = header(tar::EntryType::Directory, mode, uid);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn file(mut self, path: &str, data: &str, mode: u32, uid: u64) -> Layer {
        let mut h = header(tar::EntryType::Regular, mode, uid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data.as_bytes()).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Layer {
        let mut h = header(kind, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }
    fn tree(mut self, dir: &Path) -> Layer {
        self.0.follow_symlinks(false);
        self.0.mode(tar::HeaderMode::Deterministic);
        self.0.append_dir_all(".", dir).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
    fn gzip(self) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&self.bytes()).unwrap();
        e.finish().unwrap()
    }
}

const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const L3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn store(name: &str) -> (Scratch, Store) {
    let dir = scratch(name);
    let s = Store::open(&dir.join("store"), idmap()).unwrap();
    (dir, s)
}

fn base_layers(dir: &Path, s: &Store) {
    let bb = dir.join("bb");
    busybox_root(&bb);
    // dev, proc and sys as in real images: a step keeps the ones it has to
    // make (see build_run's mount point test), which these cases are not about.
    let l1 = Layer::new()
        .tree(&bb)
        .dir("dev", 0o755, 0)
        .dir("proc", 0o755, 0)
        .dir("sys", 0o755, 0)
        .dir("data", 0o755, 0)
        .file("data/a", "a\n", 0o644, 0)
        .file("data/b", "b\n", 0o644, 0)
        .dir("data/dir", 0o755, 0)
        .file("data/dir/x", "x\n", 0o644, 0)
        .dir("d2", 0o700, 0)
        .file("d2/y", "y\n", 0o644, 0)
        .file("owned", "o\n", 0o4755, 1000)
        .dir("e", 0o755, 0)
        .file("e/inner", "i\n", 0o644, 0)
        .file("hl1", "h\n", 0o644, 0)
        .link(tar::EntryType::Link, "hl2", "hl1")
        .link(tar::EntryType::Symlink, "link", "data/a");
    s.ensure_layer(L1, &mut &l1.gzip()[..]).unwrap();
    let l2 = Layer::new()
        .file("data/.wh.b", "", 0o644, 0)
        .file("d2/.wh..wh..opq", "", 0o644, 0)
        .file("d2/z", "z\n", 0o644, 0);
    let zst = zstd::encode_all(&l2.bytes()[..], 1).unwrap();
    s.ensure_layer(L2, &mut &zst[..]).unwrap();
}

#[test]
fn snapshot_extracts_whiteouts_opaque_owners_and_links() {
    let (dir, s) = store("extract");
    base_layers(&dir, &s);
    let l1 = s.layer_dir(L1).unwrap();
    let l2 = s.layer_dir(L2).unwrap();
    let owned = std::fs::symlink_metadata(l1.join("owned")).unwrap();
    let map = idmap();
    assert_eq!(
        (owned.uid(), owned.gid()),
        (map.host_uid(1000).unwrap(), map.host_gid(1000).unwrap())
    );
    assert_eq!(owned.mode() & 0o7777, 0o4755);
    assert_eq!(
        std::fs::symlink_metadata(l1.join("hl1")).unwrap().ino(),
        std::fs::symlink_metadata(l1.join("hl2")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read_link(l1.join("link")).unwrap(),
        Path::new("data/a")
    );
    assert_eq!(
        std::fs::symlink_metadata(l1.join("d2")).unwrap().mode() & 0o7777,
        0o700
    );
    let wh = std::fs::symlink_metadata(l2.join("data/b")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let key = if map.needs_userns() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    };
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(l2.join("d2"), key, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    // Extracted once: a second call does not touch the directory.
    assert!(s.has_layer(L1));
    s.ensure_layer(L1, &mut &b"not a tar"[..]).unwrap();
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    ws.remove().unwrap();
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    std::fs::write(ws.upper.join("junk"), "x").unwrap();
    ws.discard().unwrap();
    let trash = dir.join("store/snapshots/v1/trash");
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 1);
    s.empty_trash().unwrap();
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
    builder_core::sandbox::remove_tree(&map, &dir).unwrap();
    assert!(!dir.exists());
}

#[test]
fn snapshot_whiteout_of_a_name_that_is_not_utf8_is_a_whiteout() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, s) = store("rawwh");
    let mut layer = tar::Builder::new(Vec::new());
    for (name, data) in [(&b"caf\xe9"[..], "x"), (b"keep", "k")] {
        let mut h = header(tar::EntryType::Regular, 0o644, 0);
        h.set_size(data.len() as u64);
        let path = Path::new(std::ffi::OsStr::from_bytes(name));
        layer.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    s.ensure_layer(L1, &mut &layer.into_inner().unwrap()[..])
        .unwrap();
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 0o644, 0);
    let wh = Path::new(std::ffi::OsStr::from_bytes(b".wh.caf\xe9"));
    layer.append_data(&mut h, wh, &[][..]).unwrap();
    s.ensure_layer(L2, &mut &layer.into_inner().unwrap()[..])
        .unwrap();
    let l1 = s.layer_dir(L1).unwrap();
    let l2 = s.layer_dir(L2).unwrap();
    let raw = |d: &Path| d.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    assert_eq!(std::fs::read(raw(&l1)).unwrap(), b"x");
    let md = std::fs::symlink_metadata(raw(&l2)).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    assert!(!l2.join(wh).exists());
    builder_core::sandbox::remove_tree(&idmap(), &dir).unwrap();
}

#[test]
fn snapshot_refuses_escaping_members() {
    let (_dir, s) = store("escape");
    let mut h = header(tar::EntryType::Regular, 0o644, 0);
    h.as_old_mut().name[..9].copy_from_slice(b"../evil\0\0");
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0u8; 1024]);
    let err = s.ensure_layer(L1, &mut &raw[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::BadLayer { .. }), "{err}");
    assert!(!s.has_layer(L1));
    let through_link = Layer::new()
        .link(tar::EntryType::Symlink, "a", "/tmp")
        .file("a/pwned", "x", 0o644, 0)
        .bytes();
    let err = s.ensure_layer(L2, &mut &through_link[..]).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(!Path::new("/tmp/pwned").exists());
    assert!(s.layer_dir("sha256:../../x").is_err());
}

fn find<'a>(d: &'a [Entry], p: &str) -> Option<&'a Entry> {
    d.iter().find(|e| e.path == Path::new(p))
}

#[test]
fn snapshot_diff_matches_what_the_step_changed() {
    diff_case("diff-ov", RootfsMode::KernelOverlay);
}

#[test]
fn snapshot_copy_fallback_diff_matches_what_the_step_changed() {
    diff_case("diff-copy", RootfsMode::Copy);
}

#[test]
fn snapshot_diff_deleting_base_files_writes_whiteouts() {
    whiteout_case("wh-ov", RootfsMode::KernelOverlay);
}

#[test]
fn snapshot_copy_fallback_diff_writes_whiteouts() {
    whiteout_case("wh-copy", RootfsMode::Copy);
}

#[test]
fn snapshot_made_before_a_crash_is_extracted_again() {
    // A layer directory is not fsynced; its record says in which boot it was
    // made. One from an earlier boot is not trusted once the store is opened
    // by a process that has it to itself.
    let (dir, s) = store("crash-records");
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, _, err) = sh(
        &mut spec,
        "echo step > /made && chown 5:5 /made && mkdir -m 700 /p",
    );
    assert!(st.success(), "{err}");
    s.commit(ws, L3).unwrap();
    let snapshots = dir.join("store/snapshots/v1");
    let pending = snapshots.join("pending");
    let record = |id: &str| pending.join(id.replacen(':', "-", 1));
    for id in [L1, L2, L3] {
        assert!(record(id).is_file(), "{id} recorded");
    }
    for id in [L1, L3] {
        std::fs::write(record(id), "an-earlier-boot\n").unwrap();
    }
    // While the store is open elsewhere, nothing is touched.
    let other = Store::open(&dir.join("store"), idmap()).unwrap();
    assert!(other.has_layer(L3) && other.has_layer(L1));
    drop((s, other));
    let s = Store::open(&dir.join("store"), idmap()).unwrap();
    assert!(
        !s.has_layer(L1) && !s.has_layer(L3),
        "an earlier boot's snapshots are dropped"
    );
    assert!(s.has_layer(L2), "this boot's are kept");
    assert!(record(L2).is_file() && !record(L1).exists() && !record(L3).exists());
    // Extracted again on demand, and usable.
    std::fs::remove_dir_all(dir.join("bb")).unwrap();
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, out, err) = sh(&mut spec, "cat /data/a");
    assert!(st.success(), "{err}");
    assert_eq!(out, "a\n");
    drop(ws);
    s.empty_trash().unwrap();
    assert_eq!(
        std::fs::read_dir(snapshots.join("trash")).unwrap().count(),
        0
    );
}

#[test]
fn snapshot_detects_that_kernel_overlay_works_here() {
    let (dir, mut s) = store("probe");
    assert!(s.detect_mode().unwrap().is_none());
    assert_eq!(s.mode(), RootfsMode::KernelOverlay);
    // These machines' kernels (6.x) take `volatile`: steps' roots use it,
    // and a step's fsync still succeeds (it is just not waited for).
    assert!(builder_core::sandbox::overlay_volatile());
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, out, err) = sh(
        &mut spec,
        "echo x > /f && sync /f && sync -f /f && grep ' / / ' /proc/self/mountinfo",
    );
    assert!(st.success(), "{err}");
    assert!(out.contains("volatile"), "{out}");
}

/// Whether this process can open /dev/fuse, which fuse-overlayfs needs (in
/// a user namespace too). scripts/setup-test-env makes it 0666, as udev
/// does on Debian, so the cases run for kiln-test as well; where it is not,
/// the probe must refuse the mode instead.
fn fuse_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}

/// Runs `case` in fuse-overlayfs mode where /dev/fuse is usable; checks
/// that the probe agrees either way.
fn fuse_case(name: &str, case: fn(&str, RootfsMode)) {
    let (_dir, s) = store(&format!("{name}-probe"));
    let usable = fuse_usable();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(usable, "root cannot open /dev/fuse");
    }
    let probe = s.probe_fuse_overlay();
    assert_eq!(probe.is_ok(), usable, "{probe:?}");
    if let Err(e) = probe {
        assert!(e.to_string().contains("fuse-overlayfs"), "{e}");
        return;
    }
    case(name, RootfsMode::FuseOverlay);
}

#[test]
fn snapshot_fuse_overlayfs_diff_matches_what_the_step_changed() {
    fuse_case("diff-fuse", diff_case);
}

#[test]
fn snapshot_fuse_overlayfs_diff_writes_whiteouts() {
    fuse_case("wh-fuse", whiteout_case);
}

#[test]
fn snapshot_fuse_overlayfs_diff_equals_the_kernel_overlay_diff() {
    if !fuse_usable() {
        // Covered by the probe check in fuse_case.
        return;
    }
    let script = "set -e; echo new > /new; ln /new /new2; echo more >> /data/a; \
         rm -r /data/dir; echo f > /data/dir; rm -rf /d2; mkdir /d2; touch /d2/q; \
         chmod 600 /owned; chown 7:7 /hl1; ln -sf other /link; rm /e/inner; \
         rm /bin/ls; mkdir -p /x/y; ln -s /new /x/y/s; chmod 700 /data";
    let opener = builder_core::sandbox::Opener::new(&idmap());
    let run = |name: &str, mode: RootfsMode| {
        let (dir, mut s) = store(name);
        s.set_mode(mode);
        base_layers(&dir, &s);
        let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
        let mut spec = Spec::new(ws.rootfs(), vec![]);
        let (st, _, err) = sh(&mut spec, script);
        assert!(st.success(), "{mode:?}: {err}");
        let d: Vec<String> = ws
            .diff()
            .unwrap()
            .into_iter()
            .map(|mut e| {
                // Content paths differ (two upper dirs); compare the bytes.
                if let Kind::File { content, size } = &mut e.kind {
                    if let builder_core::fsentry::Content::Path(p) = content {
                        // As container root: rootless, the step's files
                        // belong to subordinate ids.
                        let mut data = Vec::new();
                        std::io::Read::read_to_end(&mut opener.open(p).unwrap(), &mut data)
                            .unwrap();
                        *content = builder_core::fsentry::Content::Bytes(data.into());
                    }
                    let _ = size;
                }
                // Times are the step's own; only the metadata must agree.
                format!("{:?} {:?} {:o} {}:{}", e.path, e.kind, e.mode, e.uid, e.gid)
            })
            .collect();
        ws.remove().unwrap();
        (dir, d)
    };
    let (_a, kernel) = run("eq-kernel", RootfsMode::KernelOverlay);
    let (_b, fuse) = run("eq-fuse", RootfsMode::FuseOverlay);
    assert_eq!(fuse, kernel);
}

fn diff_case(name: &str, mode: RootfsMode) {
    let (dir, mut s) = store(name);
    s.set_mode(mode);
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, out, err) = sh(
        &mut spec,
        "set -e; test ! -e /data/b; test ! -e /d2/y; cat /d2/z; \
         echo new > /new; ln /new /new2; echo more >> /data/a; rm /data/dir/x; \
         rm -r /data/dir; echo f > /data/dir; rm -rf /d2; mkdir /d2; touch /d2/q; \
         chmod 600 /owned; chown 7:7 /hl1; ln -sf other /link; rm /d2/q; mkdir /d2/sub; \
         rm -r /e; echo f > /e; rm /e; mkdir /e",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out, "z\n");
    assert_eq!(
        ws.read_file(Path::new("/new")).unwrap().as_deref(),
        Some(&b"new\n"[..])
    );
    assert_eq!(
        ws.read_file(Path::new("d2/z")).unwrap(),
        None,
        "hidden by the opaque dir"
    );
    assert_eq!(ws.read_file(Path::new("data/b")).unwrap(), None, "whiteout");
    assert!(ws
        .read_file(Path::new("etc/passwd"))
        .unwrap()
        .unwrap()
        .starts_with(b"root:x:0:0"));
    let d = ws.diff().unwrap();
    let paths: Vec<String> = d
        .iter()
        .map(|e| format!("{}:{:?}", e.path.display(), std::mem::discriminant(&e.kind)))
        .collect();
    let mut sorted = d.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    sorted.sort();
    assert_eq!(
        sorted,
        d.iter().map(|e| e.path.clone()).collect::<Vec<_>>(),
        "entries not sorted"
    );
    assert!(
        matches!(find(&d, "new").unwrap().kind, Kind::File { size: 4, .. }),
        "{paths:?}"
    );
    assert_eq!(
        find(&d, "new2").unwrap().kind,
        Kind::Hardlink {
            target: "new".into()
        }
    );
    assert!(matches!(
        find(&d, "data/a").unwrap().kind,
        Kind::File { size: 7, .. }
    ));
    assert!(
        matches!(find(&d, "data/dir").unwrap().kind, Kind::File { .. }),
        "dir→file: {paths:?}"
    );
    assert!(find(&d, "data/dir/x").is_none(), "{paths:?}");
    assert!(
        find(&d, "data/b").is_none(),
        "already deleted below: {paths:?}"
    );
    // /d2 was removed and recreated: an opaque directory after its Dir entry.
    // With overlay: an opaque directory after its Dir entry; with the copy
    // fallback: the directory and a whiteout for each old child.
    let d2: Vec<&Entry> = d.iter().filter(|e| e.path == Path::new("d2")).collect();
    if mode != RootfsMode::Copy {
        assert_eq!(d2.len(), 2, "{paths:?}");
        assert_eq!((&d2[0].kind, &d2[1].kind), (&Kind::Dir, &Kind::Opaque));
    } else {
        assert_eq!(d2.len(), 1, "{paths:?}");
        assert_eq!(
            find(&d, "d2/z").map(|e| &e.kind),
            Some(&Kind::Whiteout),
            "{paths:?}"
        );
    }
    assert!(
        find(&d, "d2/sub").is_some() && find(&d, "d2/q").is_none(),
        "{paths:?}"
    );
    // A directory replaced by a file and back: the old child stays hidden.
    assert_eq!(ws.read_file(Path::new("e/inner")).unwrap(), None);
    if mode != RootfsMode::Copy {
        let e: Vec<&Kind> = d
            .iter()
            .filter(|x| x.path == Path::new("e"))
            .map(|x| &x.kind)
            .collect();
        assert_eq!(e, [&Kind::Dir, &Kind::Opaque], "{paths:?}");
    } else {
        assert_eq!(
            find(&d, "e/inner").map(|x| &x.kind),
            Some(&Kind::Whiteout),
            "{paths:?}"
        );
    }
    let owned = find(&d, "owned").unwrap();
    assert_eq!((owned.mode, owned.uid, owned.gid), (0o600, 1000, 1000));
    let hl1 = find(&d, "hl1").unwrap();
    assert_eq!((hl1.uid, hl1.gid), (7, 7));
    assert_eq!(
        find(&d, "link").unwrap().kind,
        Kind::Symlink {
            target: "other".into()
        }
    );
    // Parents of changes are present; untouched base entries, the step's
    // /etc files and mount points are not.
    assert_eq!(find(&d, "data").unwrap().kind, Kind::Dir);
    for absent in ["etc", "etc/hosts", "proc", "dev", "sys", "bin", "hl2"] {
        assert!(find(&d, absent).is_none(), "{absent} in diff: {paths:?}");
    }
    ws.remove().unwrap();
}

fn whiteout_case(name: &str, mode: RootfsMode) {
    let (dir, mut s) = store(name);
    s.set_mode(mode);
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into(), L2.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, _, err) = sh(
        &mut spec,
        "rm /data/a /hl2 && rm -r /data/dir && rm /bin/ls",
    );
    assert!(st.success(), "{err}");
    let d = ws.diff().unwrap();
    for p in ["data/a", "hl2", "data/dir", "bin/ls"] {
        assert_eq!(
            find(&d, p).map(|e| &e.kind),
            Some(&Kind::Whiteout),
            "{p}: {d:?}"
        );
    }
    assert_eq!(d.len(), 6, "{d:?}"); // 4 whiteouts + the parents data/ and bin/
    if mode != RootfsMode::KernelOverlay {
        assert!(matches!(
            s.commit(ws, L3),
            Err(SnapshotError::CommitUnsupported)
        ));
        return;
    }
    // The upper directory becomes the next step's lower layer as it is.
    s.commit(ws, L3).unwrap();
    let next = s.workspace(&[L1.into(), L2.into(), L3.into()]).unwrap();
    let mut spec = Spec::new(next.rootfs(), vec![]);
    let (st, out, err) = sh(
        &mut spec,
        "ls /data; test -e /bin/ls || echo no-ls; cat /hl1",
    );
    assert!(st.success(), "{err}");
    assert_eq!(out, "no-ls\nh\n");
    next.remove().unwrap();
}

/// A step that gives a file to a subordinate id with no permission for
/// others: as an unprivileged user the layer writer cannot open it
/// directly, and reads it as container root through the opener.
#[test]
fn snapshot_layer_reads_files_owned_by_other_ids() {
    let (dir, s) = store("otherids");
    base_layers(&dir, &s);
    let ws = s.workspace(&[L1.into()]).unwrap();
    let mut spec = Spec::new(ws.rootfs(), vec![]);
    let (st, _, err) = sh(
        &mut spec,
        "set -e; echo data > /f; chown 12:34 /f; chmod 4750 /f; \
         echo gee > /g; chmod 4750 /g; chown 12:34 /g; \
         echo pw > /secret; chmod 600 /secret; chown 12:34 /secret; \
         mkdir -p /d/sub; echo s > /d/sub/s; ln -s sub/s /d/link; \
         chown -R 12:34 /d; chmod 700 /d /d/sub; chmod 600 /d/sub/s",
    );
    assert!(st.success(), "{err}");
    if idmap().needs_userns() {
        let e = std::fs::File::open(ws.upper.join("f")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    }
    assert_eq!(
        ws.read_file(Path::new("secret")).unwrap().as_deref(),
        Some(&b"pw\n"[..])
    );
    let entries = ws.diff().unwrap();
    let opener = builder_core::sandbox::Opener::new(&idmap());
    let mut tar_bytes = Vec::new();
    builder_core::layer::write_tar_with(
        &builder_core::layer::prepare_entries(entries).unwrap(),
        &Default::default(),
        &mut tar_bytes,
        &|p: &Path| opener.open(p),
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    for m in ar.entries().unwrap() {
        let mut m = m.unwrap();
        let path = m.path().unwrap().display().to_string();
        let h = m.header().clone();
        let mut data = String::new();
        std::io::Read::read_to_string(&mut m, &mut data).unwrap();
        seen.push((
            path,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
            data,
        ));
    }
    let get = |p: &str| seen.iter().find(|e| e.0 == p).cloned();
    assert_eq!(
        get("f"),
        Some(("f".into(), 12, 34, 0o4750, "data\n".into()))
    );
    // chown clears the setuid bit, as on any Linux file system.
    assert_eq!(get("g"), Some(("g".into(), 12, 34, 0o750, "gee\n".into())));
    assert_eq!(
        get("secret"),
        Some(("secret".into(), 12, 34, 0o600, "pw\n".into()))
    );
    // Inside directories the unprivileged user cannot search.
    assert_eq!(get("d/"), Some(("d/".into(), 12, 34, 0o700, String::new())));
    assert_eq!(
        get("d/sub/s"),
        Some(("d/sub/s".into(), 12, 34, 0o600, "s\n".into()))
    );
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let link = ar
        .entries()
        .unwrap()
        .map(|m| m.unwrap())
        .find(|m| m.path().unwrap().display().to_string() == "d/link")
        .map(|m| m.link_name().unwrap().unwrap().display().to_string());
    assert_eq!(link.as_deref(), Some("sub/s"));
    ws.discard().unwrap();
}

/// A rootless store's snapshots extracted before kiln set file
/// capabilities inside the user namespace lack them: they are dropped once
/// (extracted again on use), marked so it happens only once. Root stores
/// always had them and keep their snapshots.
#[test]
fn rootless_snapshots_without_capabilities_are_dropped_once() {
    let (dir, s) = store("precaps");
    let l = Layer::new().file("f", "f\n", 0o644, 0);
    s.ensure_layer(L1, &mut &l.gzip()[..]).unwrap();
    drop(s);
    let marker = dir.join("store/snapshots/v1/rootless-caps-v1");
    let rootless = idmap().needs_userns();
    assert_eq!(marker.exists(), rootless);
    // A store made before the marker existed.
    let _ = std::fs::remove_file(&marker);
    let s = Store::open(&dir.join("store"), idmap()).unwrap();
    assert_eq!(s.has_layer(L1), !rootless);
    assert_eq!(marker.exists(), rootless);
    let l = Layer::new().file("f", "f\n", 0o644, 0);
    s.ensure_layer(L1, &mut &l.gzip()[..]).unwrap();
    drop(s);
    let s = Store::open(&dir.join("store"), idmap()).unwrap();
    assert!(s.has_layer(L1), "kept once the store is marked");
    s.empty_trash().unwrap();
}
