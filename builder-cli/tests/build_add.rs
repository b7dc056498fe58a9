//! `kiln build` end to end: ADD of archives (extracted safely) and URLs,
//! and the images read back by real consumers (skopeo, umoci, podman).
mod build_support;

use std::io::{Read, Write};

use build_support::*;

/// A tar member written with a raw name, as a hostile archive would have it
/// (the tar crate refuses `..` and absolute names).
fn raw_member(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn add_extracts_archives_without_escaping_the_destination() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            ("etc/passwd", "original\n"),
            ("plain.txt", "not an archive\n"),
        ],
    );
    let mut evil = Vec::new();
    raw_member(
        &mut evil,
        "../../escape-dotdot",
        tar::EntryType::Regular,
        "",
        b"1",
    );
    raw_member(
        &mut evil,
        "/etc/escape-absolute",
        tar::EntryType::Regular,
        "",
        b"2",
    );
    raw_member(&mut evil, "link", tar::EntryType::Symlink, "/etc", b"");
    raw_member(
        &mut evil,
        "link/passwd",
        tar::EntryType::Regular,
        "",
        b"through the link\n",
    );
    raw_member(&mut evil, "up", tar::EntryType::Symlink, "../../..", b"");
    raw_member(
        &mut evil,
        "up/etc/passwd",
        tar::EntryType::Regular,
        "",
        b"up and out\n",
    );
    raw_member(&mut evil, "pkg/", tar::EntryType::Directory, "", b"");
    raw_member(&mut evil, "pkg/data", tar::EntryType::Regular, "", b"data");
    raw_member(&mut evil, "pkg/same", tar::EntryType::Link, "pkg/data", b"");
    std::fs::write(ctx.join("evil.tar.gz"), gzip(&finish(evil))).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch\nCOPY etc /etc\nADD evil.tar.gz /dest/\nADD plain.txt /dest/\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    for path in fs.keys() {
        assert!(
            path == "etc" || path == "etc/passwd" || path == "dest" || path.starts_with("dest/"),
            "{path} landed outside the destination"
        );
    }
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("etc/passwd"), "file 0644 0:0 \"original\\n\"");
    assert_eq!(get("dest/escape-dotdot"), "file 0644 1234:5678 \"1\"");
    assert_eq!(get("dest/etc/escape-absolute"), "file 0644 1234:5678 \"2\"");
    assert_eq!(
        get("dest/etc/passwd"),
        "file 0644 1234:5678 \"up and out\\n\""
    );
    assert_eq!(get("dest/link"), "symlink 1234:5678 -> /etc");
    // A hard link to a member stays a link (Docker's unpack uses link(2)).
    assert_eq!(get("dest/pkg/same"), "hardlink 1234:5678 -> dest/pkg/data");
    // A file that is not an archive is copied as it is.
    assert_eq!(get("dest/plain.txt"), "file 0644 0:0 \"not an archive\\n\"");
}

#[test]
fn add_copies_a_zstd_archive_as_a_file_as_docker_20_10_does() {
    // docker 20.10's archive package knows gzip, bzip2 and xz only, so a
    // .tar.zst lands as it is (moby unpacks zstd since Docker 23).
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let mut t = Vec::new();
    raw_member(&mut t, "m", tar::EntryType::Regular, "", b"member\n");
    let t = finish(t);
    let zst = zstd::encode_all(&t[..], 3).unwrap();
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("t.tar.zst"), &zst).unwrap();
    std::fs::write(ctx.join("t.tar.gz"), gzip(&t)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD t.tar.zst t.tar.gz /x/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(fs["x/t.tar.zst"].kind, "file");
    assert_eq!(fs["x/t.tar.zst"].data, zst);
    assert_eq!(describe(&fs["x/m"]), "file 0644 1234:5678 \"member\\n\"");
    assert!(!fs.contains_key("x/t.tar.gz"));
}

#[test]
fn add_takes_an_archive_cut_in_a_padding_as_ended_there() {
    // Go's tar reader (docker 20.10) ends an archive that stops inside the
    // padding after a member's data without error; one that stops inside
    // the data or a header fails.
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let mut t = Vec::new();
    raw_member(&mut t, "a", tar::EntryType::Regular, "", b"first\n");
    raw_member(&mut t, "b", tar::EntryType::Regular, "", b"second\n");
    std::fs::create_dir_all(&ctx).unwrap();
    // Both headers and data, three bytes of the last padding.
    std::fs::write(ctx.join("pad.tar"), &t[..512 * 3 + 7 + 3]).unwrap();
    std::fs::write(ctx.join("data.tar"), &t[..512 * 3 + 4]).unwrap();
    std::fs::write(ctx.join("header.tar"), &t[..512 * 2 + 100]).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD pad.tar /x/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    assert_eq!(describe(&fs["x/a"]), "file 0644 1234:5678 \"first\\n\"");
    assert_eq!(describe(&fs["x/b"]), "file 0644 1234:5678 \"second\\n\"");
    for cut in ["data.tar", "header.tar"] {
        let (ok, _, err) = build_text(work.path(), &ctx, &format!("FROM scratch\nADD {cut} /x/\n"));
        assert!(!ok, "{cut} built");
        assert!(err.contains(cut), "{cut}: {err}");
    }
}

#[test]
fn add_refuses_a_hard_link_out_of_the_destination() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("etc/shadow", "secret\n")]);
    let mut evil = Vec::new();
    raw_member(
        &mut evil,
        "steal",
        tar::EntryType::Link,
        "../etc/shadow",
        b"",
    );
    std::fs::write(ctx.join("evil.tar"), finish(evil)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY etc /etc\nADD evil.tar /dest/\n").unwrap();
    let out = work.path().join("out.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok, "a hard link to a file outside the archive must fail");
    assert!(err.contains("steal"), "{err}");
    assert!(!out.exists());
}

#[test]
fn add_makes_implied_parents_as_root_and_not_through_a_dangling_link() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut t = Vec::new();
    raw_member(&mut t, "real/", tar::EntryType::Directory, "", b"");
    raw_member(&mut t, "to-real", tar::EntryType::Symlink, "/real", b"");
    raw_member(&mut t, "to-real/a/b/f", tar::EntryType::Regular, "", b"f");
    raw_member(&mut t, "x/y/z", tar::EntryType::Regular, "", b"z");
    std::fs::write(ctx.join("ok.tar"), finish(t)).unwrap();
    let mut bad = Vec::new();
    raw_member(&mut bad, "link", tar::EntryType::Symlink, "/nowhere", b"");
    raw_member(&mut bad, "link/evil", tar::EntryType::Regular, "", b"e");
    std::fs::write(ctx.join("bad.tar"), finish(bad)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD --chown=7:8 ok.tar /dest/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    // The destination follows --chown, the members keep the archive's
    // owners (as docker 20.10's BuildKit extracts them); directories the
    // archive only implies are root's, as Docker's unpack makes them.
    assert_eq!(get("dest"), "dir 0755 7:8");
    assert_eq!(get("dest/x/y/z"), "file 0644 1234:5678 \"z\"");
    assert_eq!(get("dest/real"), "dir 0644 1234:5678");
    assert_eq!(get("dest/x"), "dir 0755 0:0");
    assert_eq!(get("dest/x/y"), "dir 0755 0:0");
    // Below a symlink to an existing directory they are created there.
    assert_eq!(get("dest/real/a/b/f"), "file 0644 1234:5678 \"f\"");
    assert_eq!(get("dest/real/a"), "dir 0755 0:0");

    // Through a symlink whose target is missing the unpack fails.
    std::fs::write(&df, "FROM scratch\nADD bad.tar /dest/\n").unwrap();
    let out = work.path().join("out.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok, "extracting through a dangling symlink must fail");
    assert!(
        err.contains("link/evil") && err.contains("/dest/link"),
        "{err}"
    );
}

#[test]
fn add_hard_links_to_symlinks_and_fifos_but_not_directories() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut t = Vec::new();
    raw_member(&mut t, "a", tar::EntryType::Regular, "", b"a");
    raw_member(&mut t, "s", tar::EntryType::Symlink, "a", b"");
    raw_member(&mut t, "h2", tar::EntryType::Link, "s", b"");
    raw_member(&mut t, "fifo", tar::EntryType::Fifo, "", b"");
    raw_member(&mut t, "h3", tar::EntryType::Link, "fifo", b"");
    std::fs::write(ctx.join("links.tar"), finish(t)).unwrap();
    let mut d = Vec::new();
    raw_member(&mut d, "dir/", tar::EntryType::Directory, "", b"");
    raw_member(&mut d, "hd", tar::EntryType::Link, "dir", b"");
    std::fs::write(ctx.join("dirlink.tar"), finish(d)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD links.tar /x/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    // link(2) does not follow a symlink: the link is one more symlink.
    assert_eq!(get("x/h2"), "symlink 1234:5678 -> a");
    assert_eq!(get("x/h3"), get("x/fifo"));
    assert_ne!(get("x/h3"), "absent");

    std::fs::write(&df, "FROM scratch\nADD dirlink.tar /x/\n").unwrap();
    let out = work.path().join("out.tar");
    let (ok, _, err) = build_to_archive(work.path(), &df, &ctx, &out);
    assert!(!ok, "a hard link to a directory must fail");
    assert!(err.contains("hd"), "{err}");
}

/// Serves `body` to `n` requests on 127.0.0.1 and returns the port.
fn serve(body: &'static [u8], n: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    port
}

#[test]
fn add_a_url_with_mode_0600_last_modified_and_checksum() {
    let work = tempfile::tempdir().unwrap();
    let port = serve(b"hello\n", 2);
    let df = work.path().join("Dockerfile");
    let sum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    std::fs::write(
        &df,
        format!(
            "FROM scratch\nADD --checksum={sum} http://127.0.0.1:{port}/files/payload.txt /p/\n"
        ),
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, work.path(), &[], &[]);
    let fs = files(&layout);
    let item = fs.get("p/payload.txt").expect("downloaded");
    assert_eq!(describe(item), "file 0600 0:0 \"hello\\n\"");
    assert_eq!(item.mtime, 1_700_000_000);

    let bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    std::fs::write(
        &df,
        format!(
            "FROM scratch\nADD --checksum={bad} http://127.0.0.1:{port}/files/payload.txt /p/\n"
        ),
    )
    .unwrap();
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            work.path().join("store").to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
            work.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("digest mismatch"), "{err}");
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/setup-test-env installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn real_consumers_read_the_outputs() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    tree(
        w,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY hello /hello\nENV GREETING=hi\nCMD [\"/hello\"]\n",
            ),
            ("hello", "hello\n"),
        ],
    );
    let store = w.join("store");
    let oci_tar = w.join("img.tar");
    let oci_dir = w.join("img-dir");
    let docker_tar = w.join("docker.tar");
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            store.to_str().unwrap(),
            "-t",
            "kiln-test/consumers:v1",
            "-o",
            &format!("type=oci,dest={}", oci_tar.display()),
            "-o",
            &format!("type=oci,dest={},tar=false,name=v1", oci_dir.display()),
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            w.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");

    let inspect = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", oci_tar.display())],
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Env"][1], "GREETING=hi");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);

    let bundle = w.join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", oci_dir.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello")).unwrap(),
        "hello\n"
    );

    let proot = w.join("podman-root");
    let prun = w.join("podman-run");
    let base = [
        "--root",
        proot.to_str().unwrap(),
        "--runroot",
        prun.to_str().unwrap(),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ];
    let mut load: Vec<&str> = base.to_vec();
    let docker_path = docker_tar.display().to_string();
    load.extend(["load", "-i", &docker_path]);
    tool("podman", &load);
    let mut inspect: Vec<&str> = base.to_vec();
    inspect.extend(["image", "inspect", "kiln-test/consumers:v1"]);
    let out = tool("podman", &inspect);
    assert!(out.contains("GREETING=hi"), "{out}");
}

#[test]
fn podman_runs_a_docker_archive_kiln_built() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::copy("/bin/busybox", w.join("busybox"))
        .expect("/bin/busybox (scripts/setup-test-env installs busybox-static)");
    std::fs::write(
        w.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENV GREETING=hello\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\"]\nCMD [\"echo $GREETING from kiln\"]\n",
    )
    .unwrap();
    let docker_tar = w.join("docker.tar");
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            w.join("store").to_str().unwrap(),
            "-t",
            "kiln-test/runs:v1",
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            w.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    let proot = w.join("podman-root");
    let prun = w.join("podman-run");
    let base = [
        "--root",
        proot.to_str().unwrap(),
        "--runroot",
        prun.to_str().unwrap(),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ];
    let docker_path = docker_tar.display().to_string();
    let mut load: Vec<&str> = base.to_vec();
    load.extend(["load", "-i", &docker_path]);
    tool("podman", &load);
    // Explicit limits: podman's defaults for root exceed the hard limits of
    // some CI containers, and then runc refuses to start anything.
    let mut run: Vec<&str> = base.to_vec();
    run.extend([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "kiln-test/runs:v1",
    ]);
    let out = tool("podman", &run);
    assert_eq!(out.trim(), "hello from kiln");
}

/// A PAX extended header (`x`) with `records`, for the member after it.
fn pax_header(out: &mut Vec<u8>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders.0/x").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&data);
    out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
}

/// Found by comparing with docker 20.10: ADD of a tar took mtimes from the
/// octal field only (a PAX mtime, fractional or beyond 2242, was lost),
/// dropped `security.capability` and turned hard links into copies.
#[test]
fn add_keeps_pax_mtimes_capabilities_and_hard_links() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut t = Vec::new();
    // A fractional PAX time: its seconds.
    pax_header(&mut t, &[("mtime", b"1600000000.75")]);
    raw_member(&mut t, "frac", tar::EntryType::Regular, "", b"f");
    pax_header(&mut t, &[("mtime", b"8589934599")]);
    raw_member(&mut t, "far", tar::EntryType::Regular, "", b"f");
    // Before the epoch: Docker's unpack sets the epoch.
    pax_header(&mut t, &[("mtime", b"-1000")]);
    raw_member(&mut t, "old", tar::EntryType::Regular, "", b"o");
    let cap: &[u8] =
        b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    pax_header(
        &mut t,
        &[
            ("SCHILY.xattr.security.capability", cap),
            ("SCHILY.xattr.user.note", b"dropped"),
        ],
    );
    raw_member(&mut t, "cap", tar::EntryType::Regular, "", b"c");
    raw_member(&mut t, "a", tar::EntryType::Regular, "", b"a");
    raw_member(&mut t, "h", tar::EntryType::Link, "a", b"");
    raw_member(&mut t, "h2", tar::EntryType::Link, "h", b"");
    // Written with mode 0644 in the member.
    raw_member(&mut t, "s", tar::EntryType::Symlink, "a", b"");
    std::fs::write(ctx.join("t.tar"), finish(t)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD t.tar /x/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let m = last_layer_members(&layout);
    let get = |p: &str| {
        m.get(p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} missing: {m:?}"))
    };
    assert_eq!(get("x/frac").1, 1_600_000_000);
    assert_eq!(get("x/far").1, 8_589_934_599);
    assert_eq!(get("x/far").2, vec!["mtime=8589934599".to_string()]);
    assert_eq!(get("x/old").1, 0);
    let cap_rec = format!(
        "SCHILY.xattr.security.capability={}",
        String::from_utf8_lossy(cap)
    );
    assert_eq!(get("x/cap").2, vec![cap_rec]);
    assert_eq!(get("x/a").0, '0');
    assert_eq!((get("x/h").0, get("x/h").3), ('1', "x/a".to_string()));
    assert_eq!((get("x/h2").0, get("x/h2").3), ('1', "x/a".to_string()));
    let fs = files(&layout);
    assert_eq!(fs.get("x/s").map(|i| i.mode), Some(0o777));
}

/// docker 20.10: a member linking to a file a lower layer left in the
/// destination links to it (overlay copies it up), and the member's owner,
/// mode and time apply to that shared inode; kiln wrote a copy with the
/// lower file's metadata.
#[test]
fn add_links_a_lower_layers_file_and_gives_it_the_members_metadata() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("t/base", "lower\n")]);
    let mut t = Vec::new();
    raw_member(&mut t, "hl", tar::EntryType::Link, "base", b"");
    std::fs::write(ctx.join("l.tar"), finish(t)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY t /t\nADD l.tar /t/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let m = last_layer_members(&layout);
    assert_eq!(
        m.get("t/base").map(|e| (e.0, e.1)),
        Some(('0', 1_600_000_000)),
        "{m:?}"
    );
    assert_eq!(
        m.get("t/hl").map(|e| (e.0, e.3.clone())),
        Some(('1', "t/base".to_string())),
        "{m:?}"
    );
    let fs = files(&layout);
    let get = |p: &str| describe_at(&fs, p);
    assert_eq!(get("t/base"), "file 0644 1234:5678 \"lower\\n\"");
}

/// GNU tar's `--format=posix --sparse` (PAX sparse 1.0: the map at the
/// start of the data, the name in `GNU.sparse.name`) and the 0.1 format
/// (`GNU.sparse.map`) are expanded, as docker 20.10 (Go's reader) does;
/// kiln wrote the raw map and data under the made-up `GNUSparseFile.N` name.
#[test]
fn add_expands_pax_sparse_files() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut t = Vec::new();
    pax_header(
        &mut t,
        &[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sp"),
            ("GNU.sparse.realsize", b"3000"),
        ],
    );
    let mut data = b"2\n100\n5\n2990\n10\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"hello0123456789");
    raw_member(
        &mut t,
        "GNUSparseFile.0/sp",
        tar::EntryType::Regular,
        "",
        &data,
    );
    pax_header(
        &mut t,
        &[
            ("GNU.sparse.major", b"0"),
            ("GNU.sparse.minor", b"1"),
            ("GNU.sparse.name", b"s01"),
            ("GNU.sparse.size", b"12"),
            ("GNU.sparse.map", b"0,3,10,2"),
        ],
    );
    raw_member(
        &mut t,
        "GNUSparseFile.0/s01",
        tar::EntryType::Regular,
        "",
        b"abcde",
    );
    std::fs::write(ctx.join("s.tar"), finish(t)).unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nADD s.tar /x/\n").unwrap();
    let layout = build_to_layout(work.path(), &df, &ctx, &[], &[]);
    let fs = files(&layout);
    let mut want = vec![0u8; 3000];
    want[100..105].copy_from_slice(b"hello");
    want[2990..].copy_from_slice(b"0123456789");
    assert_eq!(fs.get("x/sp").map(|i| &i.data), Some(&want));
    assert_eq!(
        fs.get("x/s01").map(|i| i.data.clone()),
        Some(b"abc\0\0\0\0\0\0\0de".to_vec())
    );
    assert!(
        !fs.keys().any(|k| k.contains("GNUSparseFile")),
        "{:?}",
        fs.keys()
    );
}
