use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use super::*;
use crate::fsentry::{Content, Kind};

pub(crate) fn entry(path: &str, kind: Kind, mode: u32, mtime: i64) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime,
        mtime_nanos: 0,
        xattrs: BTreeMap::new(),
    }
}

pub(crate) fn file(path: &str, data: &[u8], mtime: i64) -> Entry {
    entry(
        path,
        Kind::File {
            content: Content::Bytes(Arc::from(data)),
            size: data.len() as u64,
        },
        0o644,
        mtime,
    )
}

fn tar_of(entries: Vec<Entry>, epoch: Option<i64>) -> Vec<u8> {
    let prepared = prepare_entries(entries).unwrap_or_default();
    let mut out = Vec::new();
    let r = write_tar(
        &prepared,
        &TarOptions {
            source_date_epoch: epoch,
        },
        &mut out,
    );
    assert!(r.is_ok(), "{r:?}");
    out
}

fn names(tar_bytes: &[u8]) -> Vec<(String, u8, String)> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut v = Vec::new();
    for e in a.entries().into_iter().flatten().flatten() {
        let h = e.header();
        let link = e
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let p = e
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        v.push((p, h.entry_type().as_byte(), link));
    }
    v
}

#[test]
fn order_is_componentwise_and_whiteouts_are_named() {
    let t = tar_of(
        vec![
            file("a-b", b"x", 1),
            entry("a", Kind::Dir, 0o755, 1),
            file("a/z", b"y", 1),
            entry("a/gone", Kind::Whiteout, 0, 0),
            entry("a", Kind::Opaque, 0, 0),
            file("b", b"1", 1),
            file("b", b"22", 1),
        ],
        None,
    );
    let n: Vec<String> = names(&t).into_iter().map(|x| x.0).collect();
    assert_eq!(n, ["a/", "a/.wh..wh..opq", "a/.wh.gone", "a/z", "a-b", "b"]);
    // Ends with exactly two zero blocks.
    assert_eq!(t.len() % 512, 0);
    assert!(t[t.len() - 1024..].iter().all(|&b| b == 0));
}

/// Found by comparing with docker 20.10's layers: a whiteout sorts where
/// the path it deletes would, an opaque marker right after its directory
/// (before a child such as `!x` that sorts before `.`), as diff walks emit
/// them; a whiteout and an entry of one name are both kept, whiteout first.
#[test]
fn whiteouts_sort_at_the_deleted_name_and_opaque_markers_first() {
    let t = tar_of(
        vec![
            entry("d", Kind::Dir, 0o755, 1),
            file("d/!x", b"x", 1),
            entry("d", Kind::Opaque, 0, 0),
            file("d/a", b"a", 1),
            entry("d/b", Kind::Whiteout, 0, 0),
            file("d/c", b"c", 1),
            entry("d/c", Kind::Whiteout, 0, 0),
            entry("e", Kind::Whiteout, 0, 0),
            file("d2", b"2", 1),
        ],
        None,
    );
    let n: Vec<String> = names(&t).into_iter().map(|x| x.0).collect();
    assert_eq!(
        n,
        [
            "d/",
            "d/.wh..wh..opq",
            "d/!x",
            "d/a",
            "d/.wh.b",
            "d/.wh.c",
            "d/c",
            "d2",
            ".wh.e"
        ]
    );
}

#[test]
fn duplicates_keep_the_last_given_and_paths_are_cleaned() {
    let prepared = prepare_entries(vec![
        file("c", b"first", 1),
        entry("", Kind::Dir, 0o755, 1),
        file("./c", b"second", 1),
        file("d/./e", b"e", 1),
        file("/c", b"third", 1),
        entry("d/", Kind::Dir, 0o700, 1),
        entry("d", Kind::Dir, 0o755, 1),
    ])
    .unwrap_or_default();
    let summary: Vec<(String, u32, u64)> = prepared
        .iter()
        .map(|e| {
            let size = match &e.kind {
                Kind::File { size, .. } => *size,
                _ => 0,
            };
            (e.path.display().to_string(), e.mode, size)
        })
        .collect();
    // The root is dropped, `./c` and `/c` are `c`, `d/` is `d`; the last
    // of each name wins (`third`, mode 0755).
    assert_eq!(
        summary,
        [
            ("c".to_string(), 0o644, 5),
            ("d".to_string(), 0o755, 0),
            ("d/e".to_string(), 0o644, 1)
        ]
    );
}

#[test]
fn hardlink_content_moves_to_the_first_member() {
    let t = tar_of(
        vec![
            file("z", b"data", 1),
            entry("a", Kind::Hardlink { target: "z".into() }, 0o644, 1),
        ],
        None,
    );
    let n = names(&t);
    assert_eq!(n[0], ("a".into(), b'0', String::new()));
    assert_eq!(n[1], ("z".into(), b'1', "a".into()));
    let bad = prepare_entries(vec![entry(
        "a",
        Kind::Hardlink {
            target: "nope".into(),
        },
        0,
        0,
    )]);
    assert!(matches!(bad, Err(LayerError::HardlinkTarget { .. })));
    assert!(matches!(
        prepare_entries(vec![file("../x", b"", 0)]),
        Err(LayerError::BadPath(_))
    ));
}

#[test]
fn long_names_and_xattrs_use_pax_and_read_back() {
    let long = format!("{}/{}", "d".repeat(80), "f".repeat(80));
    let mut e = file(&long, b"hi", 5);
    e.xattrs.insert(
        "security.capability".into(),
        vec![1, 0, 0, 2, 0, 0x20, 0, 0],
    );
    e.uid = 3_000_000;
    let t = tar_of(vec![e], None);
    let mut a = tar::Archive::new(&t[..]);
    let mut entries = a.entries().into_iter().flatten().flatten();
    let mut first = entries.next().into_iter().next();
    let Some(first) = first.as_mut() else {
        panic!("no entry")
    };
    assert_eq!(
        first.path().ok().map(|p| p.to_string_lossy().into_owned()),
        Some(long)
    );
    let keys: Vec<String> = first
        .pax_extensions()
        .ok()
        .flatten()
        .into_iter()
        .flatten()
        .filter_map(|x| x.ok().and_then(|x| x.key().ok().map(str::to_string)))
        .collect();
    assert_eq!(keys, ["SCHILY.xattr.security.capability", "path", "uid"]);
    let mut s = String::new();
    let _ = first.read_to_string(&mut s);
    assert_eq!(s, "hi");
}

#[test]
fn source_date_epoch_clamps_mtimes() {
    let a = tar_of(vec![file("f", b"x", 1_000), file("g", b"x", 5)], Some(100));
    let b = tar_of(vec![file("f", b"x", 2_000), file("g", b"x", 5)], Some(100));
    assert_eq!(a, b);
    let c = tar_of(vec![file("f", b"x", 2_000), file("g", b"x", 5)], None);
    assert_ne!(a, c);
}

fn gz(data: &[u8], threads: usize, level: u32) -> Vec<u8> {
    let mut e = ParGzEncoder::new(Vec::new(), level, threads);
    let _ = std::io::Write::write_all(&mut e, data);
    e.finish().unwrap_or_default()
}

#[test]
fn parallel_gzip_is_identical_for_any_thread_count_and_decodes() {
    // Compressible but not trivial: several blocks' worth.
    let mut data = Vec::new();
    let mut x: u32 = 1;
    while data.len() < 700_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.extend_from_slice(format!("line {} {}\n", x % 1000, x >> 20).as_bytes());
    }
    let one = gz(&data, 1, 6);
    assert_eq!(one, gz(&data, 2, 6));
    assert_eq!(one, gz(&data, 7, 6));
    let mut back = Vec::new();
    let _ = flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back);
    assert_eq!(back, data);
    // Empty input is still a valid gzip member.
    let mut back = Vec::new();
    let e = gz(b"", 3, 6);
    assert!(flate2::read::GzDecoder::new(&e[..])
        .read_to_end(&mut back)
        .is_ok());
    assert!(back.is_empty());
    // gzip(1) itself accepts the stream.
    let dir = std::env::temp_dir().join(format!("kiln-pgz-{}", std::process::id()));
    let _ = std::fs::write(&dir, &one);
    let st = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&dir)
        .status();
    let _ = std::fs::remove_file(&dir);
    assert!(st.is_ok_and(|s| s.success()));
}

#[test]
fn directory_scan_finds_hardlinks_and_writes_them_as_links() {
    let dir = std::env::temp_dir().join(format!("kiln-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(dir.join("sub"));
    let _ = std::fs::write(dir.join("sub/orig"), b"shared");
    let _ = std::fs::hard_link(dir.join("sub/orig"), dir.join("a-link"));
    let _ = std::os::unix::fs::symlink("sub/orig", dir.join("sym"));
    let entries = entries_from_dir(&dir).unwrap_or_default();
    let t = tar_of(entries, None);
    let _ = std::fs::remove_dir_all(&dir);
    let n = names(&t);
    assert_eq!(
        n,
        [
            ("a-link".to_string(), b'0', String::new()),
            ("sub/".to_string(), b'5', String::new()),
            ("sub/orig".to_string(), b'1', "a-link".to_string()),
            ("sym".to_string(), b'2', "sub/orig".to_string()),
        ]
    );
}

#[test]
fn parallel_gzip_output_does_not_depend_on_which_worker_took_a_block() {
    // Text with long-range repeats over many blocks, like a tree of source
    // files: a compressor reused from block to block once carried state
    // over, so two runs differed.
    let mut x: u64 = 7;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: Vec<String> = (0..4000)
        .map(|_| {
            let n = 2 + next() % 10;
            (0..n)
                .map(|_| char::from(b'a' + (next() % 26) as u8))
                .collect()
        })
        .collect();
    let mut data = Vec::new();
    while data.len() < 4_000_000 {
        let w = &words[(next() % 4000) as usize];
        data.extend_from_slice(w.as_bytes());
        data.push(if next() % 9 == 0 { b'\n' } else { b' ' });
    }
    let one = gz(&data, 1, 6);
    for _ in 0..3 {
        assert!(
            one == gz(&data, 2, 6),
            "the gzip stream changed between runs"
        );
    }
}

#[test]
fn a_plain_layer_is_its_own_diff_id_and_the_gzip_one_decodes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let entries = || {
        vec![
            entry("d", Kind::Dir, 0o755, 1),
            file("d/a", b"alpha\n", 2),
            file("d/b", &[7u8; 100_000], 3),
        ]
    };
    let with = |compression| LayerOptions {
        compression: CompressionOptions {
            compression,
            ..CompressionOptions::default()
        },
        source_date_epoch: None,
    };
    let plain = write_layer(&store, entries(), &with(Compression::Uncompressed)).unwrap();
    let gzip = write_layer(&store, entries(), &with(Compression::Gzip)).unwrap();
    assert_eq!(plain.descriptor.digest, plain.diff_id);
    assert_eq!(
        plain.descriptor.media_type,
        crate::image::media::OCI_LAYER_TAR
    );
    assert_eq!(plain.uncompressed_size, plain.descriptor.size);
    assert_eq!(gzip.diff_id, plain.diff_id);
    assert_eq!(gzip.uncompressed_size, plain.uncompressed_size);
    let tar = store.read_blob(&plain.descriptor.digest).unwrap();
    assert_eq!(crate::digest::Digest::of(&tar), plain.diff_id);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&store.read_blob(&gzip.descriptor.digest).unwrap()[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, tar);
}
