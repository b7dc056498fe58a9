//! File names that are not UTF-8 keep their bytes through COPY, COPY
//! --from, ADD of an archive and .dockerignore, as BuildKit keeps them
//! (docker 20.10 checked: see docs/decisions.md, "Non-UTF-8 file names").
mod build_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use build_support::*;

/// A host path below `dir` from raw bytes.
fn raw(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// One member of a layer tar: (type, link target, content), by raw name.
type Members = std::collections::BTreeMap<Vec<u8>, (char, Vec<u8>, Vec<u8>)>;

/// The last layer of a layout: its raw tar and its members.
fn last_layer(layout: &Path) -> (Vec<u8>, Members) {
    let (_, manifest, _) = image(layout);
    let d = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = layer_tar(layout, &d);
    let mut out = Members::new();
    let mut archive = tar::Archive::new(&data[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = unslashed(&e.path_bytes());
        let kind = e.header().entry_type().as_byte() as char;
        let link = e.link_name_bytes().map(|b| b.to_vec()).unwrap_or_default();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut content).unwrap();
        out.insert(name, (kind, link, content));
    }
    (data, out)
}

/// A member name without a directory's trailing `/`.
fn unslashed(name: &[u8]) -> Vec<u8> {
    name.strip_suffix(b"/").unwrap_or(name).to_vec()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The raw names of a members map, for messages.
fn names(m: &Members) -> Vec<String> {
    m.keys()
        .map(|k| format!("{:?}", OsStr::from_bytes(k)))
        .collect()
}

fn build(work: &Path, ctx: &Path, df: &str) -> PathBuf {
    let dockerfile = work.join("Dockerfile");
    std::fs::write(&dockerfile, df).unwrap();
    build_to_layout(work, &dockerfile, ctx, &[], &[])
}

#[test]
fn copy_from_the_context_keeps_raw_names_links_and_pax_records() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(raw(&ctx, b"d\xe9")).unwrap();
    std::fs::write(raw(&ctx, b"caf\xe9"), "latin1").unwrap();
    std::fs::write(ctx.join("café"), "utf8").unwrap();
    std::fs::write(raw(&ctx, b"d\xe9/f"), "inside").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xe9"), ctx.join("lnk")).unwrap();
    std::fs::write(ctx.join("h1"), "linked").unwrap();
    std::fs::hard_link(ctx.join("h1"), raw(&ctx, b"h\xe9")).unwrap();
    let layout = build(work.path(), &ctx, "FROM scratch\nCOPY . /\n");
    let (tar, m) = last_layer(&layout);
    let get = |n: &[u8]| {
        m.get(n)
            .cloned()
            .unwrap_or_else(|| panic!("{:?} not in {:?}", OsStr::from_bytes(n), names(&m)))
    };
    assert_eq!(get(b"caf\xe9"), ('0', vec![], b"latin1".to_vec()));
    assert_eq!(get("café".as_bytes()), ('0', vec![], b"utf8".to_vec()));
    assert_eq!(get(b"d\xe9").0, '5');
    assert_eq!(get(b"d\xe9/f"), ('0', vec![], b"inside".to_vec()));
    assert_eq!(get(b"lnk"), ('2', b"t\xe9".to_vec(), vec![]));
    // The group's first name in byte order carries the content.
    assert_eq!(get(b"h1"), ('0', vec![], b"linked".to_vec()));
    assert_eq!(get(b"h\xe9"), ('1', b"h1".to_vec(), vec![]));
    // Nothing was turned into U+FFFD.
    assert!(!contains(&tar, "\u{FFFD}".as_bytes()));
    // The raw header bytes are Go archive/tar's: a PAX `path` (or
    // `linkpath`) record with the raw bytes, the USTAR field keeping only
    // the ASCII bytes.
    assert!(contains(&tar, b"13 path=caf\xe9\n"));
    assert!(contains(&tar, b"13 path=d\xe9/f\n"));
    assert!(contains(&tar, b"15 linkpath=t\xe9\n"));
    let pos = tar
        .windows(13)
        .position(|w| w == b"13 path=caf\xe9\n")
        .unwrap();
    let header = &tar[pos - 512..pos];
    assert_eq!(header[156], b'x');
    assert_eq!(&header[..16], b"PaxHeaders.0/caf");
    let ustar = &tar[pos + 512..pos + 1024];
    assert_eq!(&ustar[..4], b"caf\0");
    assert_eq!(ustar[156], b'0');
}

#[test]
fn copy_from_a_stage_keeps_raw_names_symlink_targets_and_hard_links() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN mkdir /o && cd /o && echo x > \"$(printf 'caf\\351')\" \
         && ln -s \"$(printf 't\\351')\" lnk && ln \"$(printf 'caf\\351')\" \"$(printf 'h\\351')\" \
         && mkdir \"$(printf 'd\\351')\" && echo y > \"$(printf 'd\\351/f')\"\n\
         FROM scratch\nCOPY --from=0 /o/ /x/\n",
    );
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let (tar, m) = last_layer(&layout);
    let get = |n: &[u8]| {
        m.get(n)
            .cloned()
            .unwrap_or_else(|| panic!("{:?} not in {:?}", OsStr::from_bytes(n), names(&m)))
    };
    assert_eq!(get(b"x/caf\xe9"), ('0', vec![], b"x\n".to_vec()));
    assert_eq!(get(b"x/h\xe9"), ('1', b"x/caf\xe9".to_vec(), vec![]));
    assert_eq!(get(b"x/lnk"), ('2', b"t\xe9".to_vec(), vec![]));
    assert_eq!(get(b"x/d\xe9/f"), ('0', vec![], b"y\n".to_vec()));
    assert!(!contains(&tar, "\u{FFFD}".as_bytes()), "{:?}", names(&m));
    assert!(contains(&tar, b"19 linkpath=x/caf\xe9\n"));
}

#[test]
fn dockerignore_matches_raw_bytes_as_docker_does() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for n in [&b"caf\xe9"[..], b"caf\xe8", b"cafe", b"keep"] {
        std::fs::write(raw(&ctx, n), "1").unwrap();
    }
    let cases: [(&[u8], &[&[u8]]); 4] = [
        // `?` is one byte that is not valid UTF-8.
        (b"caf?", &[b"keep"]),
        // Each invalid byte reads as U+FFFD on both sides: a raw byte in a
        // pattern matches any invalid byte.
        (b"caf\xe9", &[b"cafe", b"keep"]),
        ("caf\u{FFFD}".as_bytes(), &[b"cafe", b"keep"]),
        (b"*\n!caf\xe9", &[b"caf\xe8", b"caf\xe9"]),
    ];
    for (pattern, want) in cases {
        let mut ignore = pattern.to_vec();
        ignore.extend_from_slice(b"\nDockerfile\n.dockerignore\n");
        std::fs::write(ctx.join(".dockerignore"), &ignore).unwrap();
        let layout = build(work.path(), &ctx, "FROM scratch\nCOPY . /\n");
        let (_, m) = last_layer(&layout);
        let got: Vec<&[u8]> = m.keys().map(Vec::as_slice).collect();
        assert_eq!(got, want, "pattern {:?}", OsStr::from_bytes(pattern));
    }
    // COPY sources: Go's filepath.Match, where `?` is one invalid byte.
    std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
    let layout = build(work.path(), &ctx, "FROM scratch\nCOPY caf? /w/\n");
    let (_, m) = last_layer(&layout);
    let got: Vec<&[u8]> = m.keys().map(Vec::as_slice).collect();
    assert_eq!(got, [&b"w"[..], b"w/cafe", b"w/caf\xe8", b"w/caf\xe9"]);
}

#[test]
fn add_of_a_local_archive_keeps_raw_member_names() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // A PAX archive (names in `path`/`linkpath` records) and a GNU one
    // (raw bytes in the header's name field), made with the tar crate.
    let mut pax = tar::Builder::new(Vec::new());
    let mut add = |name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_mtime(1000);
        h.set_size(data.len() as u64);
        let mut recs: Vec<(&str, &[u8])> = vec![("path", name)];
        if !link.is_empty() {
            recs.push(("linkpath", link));
        }
        pax.append_pax_extensions(recs).unwrap();
        h.set_cksum();
        pax.append(&h, data).unwrap();
    };
    add(b"caf\xe9", tar::EntryType::Regular, b"", b"pax");
    add(b"l\xe9", tar::EntryType::Symlink, b"t\xe9", b"");
    add(b"h\xe9", tar::EntryType::Link, b"caf\xe9", b"");
    std::fs::write(ctx.join("a.tar"), pax.into_inner().unwrap()).unwrap();
    let mut gnu = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..2].copy_from_slice(b"g\xe9");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(3);
    h.set_cksum();
    gnu.append(&h, &b"gnu"[..]).unwrap();
    std::fs::write(ctx.join("g.tar"), gnu.into_inner().unwrap()).unwrap();
    let layout = build(
        work.path(),
        &ctx,
        "FROM scratch\nADD a.tar /t/\nADD g.tar /g/\n",
    );
    let (_, m) = last_layer(&layout);
    assert_eq!(
        m.get(&b"g/g\xe9"[..]),
        Some(&('0', vec![], b"gnu".to_vec()))
    );
    let (_, manifest, _) = image(&layout);
    let d = manifest["layers"][0]["digest"].as_str().unwrap();
    let data = layer_tar(&layout, d);
    let mut a = tar::Archive::new(&data[..]);
    let got: Vec<(Vec<u8>, Vec<u8>)> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.link_name_bytes().map(|b| b.to_vec()).unwrap_or_default();
            (unslashed(&e.path_bytes()), link)
        })
        .collect();
    assert_eq!(
        got,
        [
            (b"t".to_vec(), vec![]),
            (b"t/caf\xe9".to_vec(), vec![]),
            (b"t/h\xe9".to_vec(), b"t/caf\xe9".to_vec()),
            (b"t/l\xe9".to_vec(), b"t\xe9".to_vec()),
        ]
    );
}

#[test]
fn raw_names_key_the_cache_apart_and_messages_show_them_escaped() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(raw(&ctx, b"caf\xe9"), "same").unwrap();
    let df = "FROM scratch\nCOPY . /\n";
    let first = build_support::cache::build(work.path(), &ctx, df, &[]);
    assert!(first.ok, "{}", first.stderr);
    let again = build_support::cache::build(work.path(), &ctx, df, &[]);
    assert_eq!(again.steps("step_cached"), ["COPY . /"], "{}", again.stderr);
    assert_eq!(again.digest, first.digest);
    // Same content under the name lossy decoding would give: a miss, and
    // another image.
    std::fs::rename(raw(&ctx, b"caf\xe9"), ctx.join("caf\u{FFFD}")).unwrap();
    let renamed = build_support::cache::build(work.path(), &ctx, df, &[]);
    assert_eq!(
        renamed.steps("cache_miss"),
        ["COPY . /"],
        "{}",
        renamed.stderr
    );
    assert_ne!(renamed.digest, first.digest);
    // The miss names the file with its raw byte escaped.
    std::fs::rename(ctx.join("caf\u{FFFD}"), raw(&ctx, b"caf\xe9")).unwrap();
    std::fs::write(raw(&ctx, b"caf\xe9"), "changed").unwrap();
    let changed = build_support::cache::build(work.path(), &ctx, df, &[]);
    let explained = changed.explain.to_string();
    assert!(explained.contains("caf\\\\xE9"), "{explained}");

    // An error about such a path names it escaped (and nothing panics).
    std::fs::create_dir_all(raw(&ctx, b"a")).unwrap();
    std::fs::write(raw(&ctx, b"a/n\xe9"), "file").unwrap();
    std::fs::create_dir_all(raw(&ctx, b"b/n\xe9")).unwrap();
    std::fs::write(raw(&ctx, b"b/n\xe9/f"), "below").unwrap();
    let (ok, _, err) = build_text(
        work.path(),
        &ctx,
        "FROM scratch\nCOPY a/ /x/\nCOPY b/ /x/\n",
    );
    assert!(!ok);
    assert!(err.contains("/x/n\\xE9"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // `kiln debug context` lists it escaped too.
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let (ok, out, err) = kiln(&["debug", "context", ctx.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "caf\\xE9"), "{out}");
}

#[test]
fn local_export_applies_whiteouts_of_raw_names() {
    let work = tempfile::tempdir().unwrap();
    let (ctx, df) = busybox_build(
        work.path(),
        "RUN echo x > \"/$(printf 'caf\\351')\" && echo k > /keep\n\
         RUN rm \"/$(printf 'caf\\351')\"\n",
    );
    let dest = work.path().join("out");
    let output = format!("type=local,dest={}", dest.display());
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            work.path().join("store").to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            "-o",
            &output,
            ctx.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(dest.join("keep")).unwrap(), b"k\n");
    assert!(!raw(&dest, b"caf\xe9").exists());
    assert!(std::fs::symlink_metadata(raw(&dest, b"caf\xe9")).is_err());
}
