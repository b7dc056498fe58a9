//! `kiln build` end to end: metadata instructions give BuildKit's config,
//! and builds are reproducible.
mod build_support;

use build_support::*;
use serde_json::json;

#[test]
fn metadata_instructions_give_buildkits_config() {
    let work = tempfile::tempdir().unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        r#"ARG BASE=scratch
FROM ${BASE}
ARG V=default
ARG W
ENV A=1 B="two words"
ENV D $A-x
ENV LEGACY hello world  with  spaces
LABEL a=1 "b c"="d e" from-arg=$V
EXPOSE 80 53/UDP 8000-8002
VOLUME /data
VOLUME ["/var/log", "/cache"]
USER 1001:1002
WORKDIR /app
WORKDIR sub
SHELL ["/bin/sh", "-ec"]
CMD echo hi
ENTRYPOINT ["/bin/tool"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=3s --retries=4 CMD wget -q localhost || exit 1
MAINTAINER someone
ONBUILD RUN echo later
"#,
    )
    .unwrap();
    let layout = build_to_layout(
        work.path(),
        &df,
        work.path(),
        &["--build-arg", "W=given", "--label", "extra=flag"],
        &[],
    );
    let (_, _, config) = image(&layout);
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1",
            "B=two words",
            "D=1-x",
            "LEGACY=hello world  with  spaces"
        ]),
        "ARGs never reach Env"
    );
    assert_eq!(
        c["Labels"],
        json!({"a": "1", "b c": "d e", "from-arg": "default", "extra": "flag"})
    );
    assert_eq!(
        c["ExposedPorts"],
        json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}})
    );
    assert_eq!(
        c["Volumes"],
        json!({"/data": {}, "/var/log": {}, "/cache": {}})
    );
    assert_eq!(c["User"], "1001:1002");
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]));
    // ENTRYPOINT after CMD in the same stage keeps the CMD.
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-ec", "echo hi"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/tool"]));
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5_000_000_000i64,
               "Timeout": 3_000_000_000i64, "Retries": 4})
    );
    assert_eq!(c["OnBuild"], json!(["RUN echo later"]));
    assert_eq!(config["author"], "someone");
    // One history entry per instruction; only WORKDIR made layers.
    let history = config["history"].as_array().unwrap();
    let layers: Vec<&str> = history
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["WORKDIR /app", "WORKDIR /app/sub"]);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // The texts docker 20.10's BuildKit writes: Go's %v of the port map and
    // %q of the *HealthConfig.
    let created_by = |prefix: &str| {
        history
            .iter()
            .filter_map(|h| h["created_by"].as_str())
            .find(|c| c.starts_with(prefix))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        created_by("EXPOSE"),
        "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{} 8002/tcp:{}]"
    );
    assert_eq!(
        created_by("HEALTHCHECK"),
        r#"HEALTHCHECK &{["CMD-SHELL" "wget -q localhost || exit 1"] "5s" "3s" "0s" '\x04'}"#
    );
}

/// Replaces the config of `layout`'s single image by `edit(config)`,
/// rewriting the manifest and index to match.
fn edit_config(layout: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) {
    use builder_core::digest::Digest;
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (format!("sha256:{}", d.hex()), bytes.len())
    };
    let (_, mut manifest, mut config) = image(layout);
    edit(&mut config);
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["digest"] = json!(md);
    index["manifests"][0]["size"] = json!(ms);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_base_configs_unknown_and_empty_fields_are_dropped_as_buildkit_reads_them() {
    // `docker import` images (and docker's own builds) carry
    // container_config, docker_version, a top-level comment and empty
    // Hostname/User/... fields; BuildKit decodes the base into its own
    // struct, so its result has none of them (docker 20.10 checked).
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("f", "x")]);
    let base_df = work.path().join("Base.Dockerfile");
    std::fs::write(&base_df, "FROM scratch\nCOPY f /f\nCMD [\"sh\"]\n").unwrap();
    let base = build_to_layout(work.path(), &base_df, &ctx, &[], &[]);
    edit_config(&base, |c| {
        c["comment"] = json!("Imported from -");
        c["docker_version"] = json!("20.10.24");
        c["container_config"] = json!({"Hostname": "abc", "Cmd": null});
        let cc = c["config"].as_object_mut().unwrap();
        for (k, v) in [
            ("Hostname", json!("")),
            ("Tty", json!(false)),
            ("Image", json!("")),
            ("User", json!("")),
            ("WorkingDir", json!("")),
            ("Labels", json!({})),
            ("StopTimeout", json!(7)),
        ] {
            cc.insert(k.into(), v);
        }
    });
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM imported\nENV A=1\n").unwrap();
    let ctxarg = format!("imported=oci-layout://{}", base.display());
    let layout = build_to_layout(work.path(), &df, &ctx, &["--build-context", &ctxarg], &[]);
    let (_, _, config) = image(&layout);
    let mut top: Vec<&String> = config.as_object().unwrap().keys().collect();
    top.sort();
    assert_eq!(top, ["architecture", "config", "history", "os", "rootfs"]);
    let mut inner: Vec<&String> = config["config"].as_object().unwrap().keys().collect();
    inner.sort();
    assert_eq!(inner, ["ArgsEscaped", "Cmd", "Env", "StopTimeout"]);
    assert_eq!(config["config"]["StopTimeout"], 7);
}

#[test]
fn label_flag_without_value_is_an_empty_label() {
    // docker's CLI turns `--label key` into key="" (and a later flag wins
    // over the Dockerfile's LABEL of the same key).
    let work = tempfile::tempdir().unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM scratch\nLABEL bare=fromfile\n").unwrap();
    let layout = build_to_layout(
        work.path(),
        &df,
        work.path(),
        &["--label", "bare", "--label", "other=", "--label", "third"],
        &[],
    );
    let (_, _, config) = image(&layout);
    assert_eq!(
        config["config"]["Labels"],
        json!({"bare": "", "other": "", "third": ""})
    );
}

#[test]
fn entrypoint_resets_an_inherited_cmd_and_shell_form_wraps() {
    let work = tempfile::tempdir().unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS base\nCMD [\"base\"]\nFROM base\nENTRYPOINT exec top -b\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, work.path(), &[], &[]);
    let (_, _, config) = image(&layout);
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/bin/sh", "-c", "exec top -b"])
    );
    assert!(config["config"]["Cmd"].is_null(), "{config}");
}

#[test]
fn empty_cmd_and_entrypoint_are_not_written() {
    // BuildKit's config fields are `omitempty`: `CMD []` and
    // `ENTRYPOINT []` clear what the base set and leave no key (docker
    // 20.10 checked).
    let work = tempfile::tempdir().unwrap();
    let df = work.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM scratch AS base\nCMD [\"c\"]\nENTRYPOINT [\"e\"]\nFROM base\nCMD []\nENTRYPOINT []\n",
    )
    .unwrap();
    let layout = build_to_layout(work.path(), &df, work.path(), &[], &[]);
    let (_, _, config) = image(&layout);
    let c = config["config"].as_object().unwrap();
    assert!(
        !c.contains_key("Cmd") && !c.contains_key("Entrypoint"),
        "{config}"
    );
}

fn build_digest(work: &std::path::Path, ctx: &std::path::Path, env: &[(&str, &str)]) -> String {
    let layout = build_to_layout(work, &ctx.join("Dockerfile"), ctx, &[], env);
    image(&layout).0
}

fn set_mtime(path: &std::path::Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn builds_are_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY . /app\nWORKDIR /app/w\nCOPY <<EOF /h\nhi\nEOF\n",
            ),
            ("a", "a"),
            ("d/b", "b"),
        ],
    );
    let first = build_digest(work.path(), &ctx, &[]);
    let second = build_digest(work.path(), &ctx, &[]);
    assert_eq!(first, second, "same inputs, same manifest digest");

    // With SOURCE_DATE_EPOCH, checkouts whose files have other mtimes give
    // the same image; mtimes in the layers are clamped to it.
    let sde = [("SOURCE_DATE_EPOCH", "1700000000")];
    set_mtime(&ctx.join("a"), 1_800_000_000);
    set_mtime(&ctx.join("d/b"), 1_900_000_000);
    let x = build_digest(work.path(), &ctx, &sde);
    set_mtime(&ctx.join("a"), 1_850_000_000);
    set_mtime(&ctx.join("d/b"), 1_950_000_000);
    let layout = build_to_layout(work.path(), &ctx.join("Dockerfile"), &ctx, &[], &sde);
    assert_eq!(x, image(&layout).0);
    assert!(files(&layout).values().all(|i| i.mtime <= 1_700_000_000));
    let (_, _, config) = image(&layout);
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_ne!(x, first, "SOURCE_DATE_EPOCH is recorded");
}

#[test]
fn build_context_oci_layout_as_a_base() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("etc/os-release", "ID=kiln\n"), ("more", "m")]);
    let base_df = work.path().join("Base.Dockerfile");
    std::fs::write(
        &base_df,
        "FROM scratch\nCOPY etc /etc\nENV FROM_BASE=1\nCMD [\"/bin/x\"]\n",
    )
    .unwrap();
    let base = build_to_layout(work.path(), &base_df, &ctx, &[], &[]);
    let df = work.path().join("Dockerfile");
    std::fs::write(&df, "FROM mybase\nCOPY more /more\n").unwrap();
    let ctxarg = format!("mybase=oci-layout://{}", base.display());
    let layout = build_to_layout(work.path(), &df, &ctx, &["--build-context", &ctxarg], &[]);
    let fs = files(&layout);
    assert!(fs.contains_key("etc/os-release") && fs.contains_key("more"));
    let (_, manifest, config) = image(&layout);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(config["config"]["Cmd"], json!(["/bin/x"]));
    assert_eq!(config["config"]["Env"][1], "FROM_BASE=1");
    // The base's layer is reused as it is.
    let (_, base_manifest, _) = image(&base);
    assert_eq!(manifest["layers"][0], base_manifest["layers"][0]);
}

#[test]
fn output_compression_zstd() {
    let work = tempfile::tempdir().unwrap();
    tree(
        work.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "data")],
    );
    let out = work.path().join("z");
    let (ok, _, err) = kiln(
        &[
            "build",
            "--root",
            work.path().join("store").to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={},tar=false,compression=zstd", out.display()),
            work.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    let (_, manifest, _) = image(&out);
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let hex = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = std::fs::read(out.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
}

#[test]
fn iidfile_metadata_file_and_tags_in_the_store() {
    let work = tempfile::tempdir().unwrap();
    tree(
        work.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "data")],
    );
    let store = work.path().join("store");
    let iid = work.path().join("iid");
    let meta = work.path().join("meta.json");
    let (ok, out, err) = kiln(
        &[
            "build",
            "--root",
            store.to_str().unwrap(),
            "-t",
            "kiln-test/tagged:v2",
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            work.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    let digest = std::fs::read_to_string(&iid).unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(out.trim(), digest);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest.as_str());
    // The store names the image; `kiln images` lists it.
    let (ok, listing, err) = kiln(&["images", "--root", store.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    assert!(listing.contains("kiln-test/tagged"), "{listing}");
}

#[test]
fn every_stages_from_is_read_even_when_the_target_skips_it() {
    // docker 20.10 expands and parses each stage's FROM before building:
    // an unused stage's bad image name or platform fails the build, while
    // an unused stage of a well-formed but unknown image is never pulled.
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    tree(&ctx, &[("f", "x")]);
    let build = |unused: &str| {
        let df = work.path().join("Dockerfile");
        std::fs::write(
            &df,
            format!("FROM scratch AS good\nCOPY f /f\n{unused}\nCOPY f /g\n"),
        )
        .unwrap();
        let store = work.path().join("store");
        kiln(
            &[
                "build",
                "--root",
                store.to_str().unwrap(),
                "--target",
                "good",
                "-f",
                df.to_str().unwrap(),
                ctx.to_str().unwrap(),
            ],
            &[],
        )
    };
    let (ok, _, err) = build("FROM BusyBox AS unused");
    assert!(!ok);
    assert!(err.contains("lowercase") && err.contains(":3"), "{err}");
    let (ok, _, err) = build("FROM --platform=bogus scratch AS unused");
    assert!(!ok);
    assert!(err.contains("failed to parse platform"), "{err}");
    let (ok, _, err) = build("FROM example.invalid/nothing:1 AS unused");
    assert!(ok, "{err}");
}
