//! Global scope, ARG/ENV scoping and where expansion happens.
use super::*;
use crate::instructions::*;

fn linux_amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn args(pairs: &[(&str, &str)]) -> BuildArgs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

fn meta(k: &str, v: Option<&str>) -> Node {
    node("arg", &[], arg_decls(&[(k, v)]), false, "ARG ...")
}

/// Parses `nodes` and returns the global scope and the stages.
fn setup(nodes: Vec<Node>, build_args: &BuildArgs) -> (GlobalScope, Stages) {
    let stages = parse_dockerfile(&dockerfile(nodes)).unwrap();
    let g = GlobalScope::new(&stages, build_args, &linux_amd64(), None, None).unwrap();
    (g, stages)
}

/// Runs every command of stage `i` and returns the results.
fn apply_all(st: &mut StageState, stage: &Stage) -> Vec<Resolved> {
    stage
        .commands
        .iter()
        .map(|c| st.apply(c).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn platform_args_and_target_stage() {
    let (g, _) = setup(vec![from_as("a", "final")], &BuildArgs::new());
    let a = g.args();
    assert_eq!(get(a, "BUILDPLATFORM"), Some("linux/amd64"));
    assert_eq!(get(a, "TARGETPLATFORM"), Some("linux/amd64"));
    assert_eq!(get(a, "TARGETOS"), Some("linux"));
    assert_eq!(get(a, "TARGETARCH"), Some("amd64"));
    assert_eq!(get(a, "TARGETVARIANT"), Some(""));
    assert_eq!(get(a, "BUILDARCH"), Some("amd64"));
    assert_eq!(get(a, "TARGETSTAGE"), Some("final"));

    let stages = parse_dockerfile(&dockerfile(vec![from("a")])).unwrap();
    let arm = Platform::parse("linux/arm/v7").unwrap();
    let g = GlobalScope::new(
        &stages,
        &args(&[("BUILDOS", "plan9")]),
        &linux_amd64(),
        Some(&arm),
        Some("t"),
    )
    .unwrap();
    assert_eq!(get(g.args(), "TARGETPLATFORM"), Some("linux/arm/v7"));
    assert_eq!(get(g.args(), "TARGETVARIANT"), Some("v7"));
    assert_eq!(get(g.args(), "BUILDPLATFORM"), Some("linux/amd64"));
    assert_eq!(get(g.args(), "BUILDOS"), Some("plan9"));
    assert_eq!(get(g.args(), "TARGETSTAGE"), Some("t"));
    let (g, _) = setup(vec![from("a")], &BuildArgs::new());
    assert_eq!(get(g.args(), "TARGETSTAGE"), Some("default"));
}

#[test]
fn from_lines_see_global_args_only() {
    let (g, stages) = setup(
        vec![
            meta("REG", Some("docker.io")),
            meta("TAG", Some("${REG}-1")),
            meta("ARCH", None),
            from_as("$REG/lib:${TAG}", "one"),
            node(
                "from",
                &["--platform=$TARGETOS/arm64"],
                words(&["x${ARCH:-none}"]),
                false,
                "FROM --platform=$TARGETOS/arm64 x${ARCH:-none}",
            ),
        ],
        &args(&[("TAG", "override")]),
    );
    let f = g.resolve_from(&stages.stages[0]).unwrap();
    assert_eq!(f.base, "docker.io/lib:override");
    assert_eq!(f.used_args.iter().collect::<Vec<_>>(), ["REG", "TAG"]);
    let f = g.resolve_from(&stages.stages[1]).unwrap();
    assert_eq!(f.base, "xnone");
    assert_eq!(f.platform.unwrap().format(), "linux/arm64");
}

#[test]
fn from_line_errors() {
    let (g, stages) = setup(
        vec![
            from("$NOPE"),
            node(
                "from",
                &["--platform=$NOPE"],
                words(&["a"]),
                false,
                "FROM --platform=$NOPE a",
            ),
            node(
                "from",
                &["--platform=linux/vax"],
                words(&["a"]),
                false,
                "FROM --platform=linux/vax a",
            ),
            from("${x"),
        ],
        &BuildArgs::new(),
    );
    let e = g.resolve_from(&stages.stages[0]).unwrap_err().to_string();
    assert!(e.contains("base name ($NOPE) should not be blank"), "{e}");
    let e = g.resolve_from(&stages.stages[1]).unwrap_err().to_string();
    assert!(
        e.contains("empty platform value from expression $NOPE"),
        "{e}"
    );
    let e = g.resolve_from(&stages.stages[2]).unwrap_err().to_string();
    assert!(e.contains("failed to parse platform linux/vax"), "{e}");
    let e = g.resolve_from(&stages.stages[3]).unwrap_err();
    assert_eq!(e.span.start_line, 4);
    assert!(matches!(e.kind, InstructionErrorKind::Expansion(_)));
}

#[test]
fn global_args_reach_a_stage_only_when_redeclared() {
    let (g, stages) = setup(
        vec![
            meta("VERSION", Some("1.2")),
            from("a"),
            node(
                "env",
                &[],
                pairs(&[("BEFORE", "v=$VERSION")], false),
                false,
                "ENV BEFORE=v=$VERSION",
            ),
            meta("VERSION", None),
            node(
                "env",
                &[],
                pairs(&[("AFTER", "v=$VERSION")], false),
                false,
                "ENV AFTER=v=$VERSION",
            ),
            meta("TARGETARCH", None),
            node(
                "env",
                &[],
                pairs(
                    &[("ARCH", "${TARGETARCH}"), ("PLAT", "[$TARGETPLATFORM]")],
                    false,
                ),
                false,
                "ENV ...",
            ),
        ],
        &BuildArgs::new(),
    );
    let mut st = StageState::new(&g, vec![], "");
    let r = apply_all(&mut st, &stages.stages[0]);
    assert_eq!(get(&r[0].env, "BEFORE"), Some("v="));
    assert_eq!(get(&r[2].env, "AFTER"), Some("v=1.2"));
    assert_eq!(get(st.env(), "ARCH"), Some("amd64"));
    // TARGETPLATFORM was not declared in the stage.
    assert_eq!(get(st.env(), "PLAT"), Some("[]"));
    // ARG values are in RUN's environment but not in the image config.
    assert_eq!(get(st.env(), "VERSION"), Some("1.2"));
    assert_eq!(get(st.config_env(), "VERSION"), None);
    assert_eq!(get(st.config_env(), "AFTER"), Some("v=1.2"));
    assert_eq!(
        st.declared_args()[0],
        ("VERSION".to_string(), Some("1.2".to_string()))
    );
}

#[test]
fn build_args_override_defaults() {
    let (g, stages) = setup(
        vec![
            meta("G", Some("global")),
            from("a"),
            node(
                "arg",
                &[],
                arg_decls(&[
                    ("A", Some("dflt")),
                    ("B", Some("$A-x")),
                    ("G", Some("local")),
                    ("U", None),
                ]),
                false,
                "ARG A=dflt B=$A-x G=local U",
            ),
        ],
        &args(&[("A", "cli"), ("G", "cli-g"), ("UNUSED", "1")]),
    );
    let mut st = StageState::new(&g, vec![], "");
    let r = apply_all(&mut st, &stages.stages[0]);
    let Instruction::Arg(decls) = &r[0].instruction else {
        panic!()
    };
    let values: Vec<Option<&str>> = decls.iter().map(|d| d.value.as_deref()).collect();
    // Unlike ENV, each ARG on a line sees the ones before it.
    assert_eq!(values, [Some("cli"), Some("cli-x"), Some("cli-g"), None]);
    assert_eq!(get(st.env(), "U"), None);
    assert_eq!(st.used_build_args().iter().collect::<Vec<_>>(), ["A", "G"]);
}

#[test]
fn arg_names_are_expanded_with_the_env_before_the_line() {
    // kaniko's Dockerfile_test_scratch: `ENV src file3`, `ARG ${src}=...`
    // declares file3, which `--build-arg file3=...` then sets (docker
    // 20.10 checked). Every name on the line sees the env from before it:
    // `ARG K=3 $K=4` with K=a declares K and a.
    let (g, stages) = setup(
        vec![
            from("busybox"),
            node(
                "env",
                &[],
                pairs(&[("src", "file3"), ("K", "a")], false),
                false,
                "ENV src=file3 K=a",
            ),
            node(
                "arg",
                &[],
                arg_decls(&[("${src}", Some("dflt")), ("${src}x", Some("2"))]),
                false,
                "ARG ${src}=dflt ${src}x=2",
            ),
            node(
                "arg",
                &[],
                arg_decls(&[("K", Some("3")), ("$K", Some("4"))]),
                false,
                "ARG K=3 $K=4",
            ),
        ],
        &args(&[("file3", "cli")]),
    );
    let mut st = StageState::new(&g, vec![], "");
    let r = apply_all(&mut st, &stages.stages[0]);
    let decl = |i: usize| {
        let Instruction::Arg(decls) = &r[i].instruction else {
            panic!()
        };
        decls
            .iter()
            .map(|d| format!("{}={}", d.key, d.value.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
    };
    assert_eq!(decl(1), ["file3=cli", "file3x=2"]);
    assert_eq!(decl(2), ["K=3", "a=4"]);
    assert_eq!(get(st.env(), "file3"), Some("cli"));
    assert_eq!(get(st.env(), "a"), Some("4"));
    assert_eq!(st.used_build_args().iter().collect::<Vec<_>>(), ["file3"]);
}

#[test]
fn base_image_env_and_env_semantics() {
    let (g, stages) = setup(
        vec![
            from("busybox"),
            node(
                "env",
                &[],
                pairs(&[("PATH", "/opt/bin:$PATH"), ("OLD", "$PATH")], false),
                false,
                "ENV PATH=/opt/bin:$PATH OLD=$PATH",
            ),
            node(
                "env",
                &[],
                pairs(&[("${KEYNAME:-K}", "legacy value $HOME")], true),
                false,
                "ENV ${KEYNAME:-K} legacy value $HOME",
            ),
            node(
                "arg",
                &[],
                arg_decls(&[("HOME", Some("/argh"))]),
                false,
                "ARG HOME=/argh",
            ),
            node(
                "env",
                &[],
                pairs(&[("H2", "$HOME")], false),
                false,
                "ENV H2=$HOME",
            ),
        ],
        &BuildArgs::new(),
    );
    let mut st = StageState::new(
        &g,
        env_of(&[("PATH", "/usr/bin:/bin"), ("HOME", "/root")]),
        "",
    );
    apply_all(&mut st, &stages.stages[0]);
    assert_eq!(get(st.env(), "PATH"), Some("/opt/bin:/usr/bin:/bin"));
    // Values on one line see the environment from before the line.
    assert_eq!(get(st.env(), "OLD"), Some("/usr/bin:/bin"));
    assert_eq!(get(st.env(), "K"), Some("legacy value /root"));
    // ARG replaces in the environment RUN sees, not in the image config.
    assert_eq!(get(st.env(), "H2"), Some("/argh"));
    assert_eq!(get(st.config_env(), "HOME"), Some("/root"));
    // Order is kept: base entries first, replaced in place.
    assert_eq!(st.config_env()[0].0, "PATH");
}

#[test]
fn path_is_always_set() {
    let (g, _) = setup(vec![from("scratch")], &BuildArgs::new());
    let st = StageState::new(&g, env_of(&[("A", "1")]), "");
    assert_eq!(get(st.config_env(), "PATH"), Some(DEFAULT_PATH));
    assert_eq!(st.env().last().map(|(k, _)| k.as_str()), Some("PATH"));
    let st = StageState::new(&g, env_of(&[("PATH", "/bin")]), "");
    assert_eq!(st.config_env(), env_of(&[("PATH", "/bin")]));
}

#[test]
fn proxies_need_no_declaration_and_stay_out_of_env() {
    let (g, stages) = setup(
        vec![
            from("a"),
            node(
                "run",
                &[],
                words(&["curl $HTTP_PROXY"]),
                false,
                "RUN curl $HTTP_PROXY",
            ),
        ],
        &args(&[
            ("HTTP_PROXY", "http://p:3128"),
            ("http_proxy", "http://lower:1"),
            ("no_proxy", "localhost"),
            ("Ftp_Proxy", ""),
            ("OTHER", "x"),
        ]),
    );
    let mut st = StageState::new(&g, vec![], "");
    let r = apply_all(&mut st, &stages.stages[0]);
    assert_eq!(
        r[0].proxy_env,
        // The lower-case spelling sorts last and wins; both cases exported.
        env_of(&[
            ("HTTP_PROXY", "http://lower:1"),
            ("http_proxy", "http://lower:1"),
            ("NO_PROXY", "localhost"),
            ("no_proxy", "localhost"),
        ])
    );
    assert_eq!(get(&r[0].env, "HTTP_PROXY"), None);
    // The command is never expanded by us.
    let Instruction::Run(run) = &r[0].instruction else {
        panic!()
    };
    assert_eq!(run.cmd, CommandLine::Shell("curl $HTTP_PROXY".into()));
    assert!(PROXY_ARGS.contains(&"all_proxy"));
}

#[test]
fn where_expansion_happens() {
    let mut copy = node(
        "copy",
        &[
            "--from=builder",
            "--chown=$U:$U",
            "--chmod=$MODE",
            "--exclude=$X",
        ],
        words(&["$SRC", "<<EOF", "<<'RAW'", "$DST"]),
        false,
        "COPY ...",
    );
    copy.heredocs
        .push(heredoc("EOF", "user=$U '$U' \\$U\n", true, false));
    copy.heredocs
        .push(heredoc("RAW", "user=$U\n", false, false));
    let nodes = vec![
        from_as("a", "builder"),
        node(
            "env",
            &[],
            pairs(
                &[
                    ("U", "app"),
                    ("MODE", "640"),
                    ("SRC", "s*.txt"),
                    ("DST", "/d/"),
                    ("P", "80 81/udp"),
                    ("W", "work"),
                    ("SIG", "TERM"),
                    ("V", "/vol"),
                ],
                false,
            ),
            false,
            "ENV ...",
        ),
        copy,
        node(
            "add",
            &["--checksum=$SUM", "--chown=$U"],
            words(&["http://x/$SRC", "/x"]),
            false,
            "ADD ...",
        ),
        node("workdir", &[], words(&["$W"]), false, "WORKDIR $W"),
        node(
            "workdir",
            &[],
            words(&["../$W/sub"]),
            false,
            "WORKDIR ../$W/sub",
        ),
        node("user", &[], words(&["${U}:${U}"]), false, "USER ${U}:${U}"),
        node("volume", &[], words(&["$V", "/other"]), true, "VOLUME [..]"),
        node(
            "stopsignal",
            &[],
            words(&["SIG$SIG"]),
            false,
            "STOPSIGNAL SIG$SIG",
        ),
        node(
            "expose",
            &[],
            words(&["$P", "8000-8001"]),
            false,
            "EXPOSE $P 8000-8001",
        ),
        node(
            "label",
            &[],
            pairs(&[("by", "$U")], false),
            false,
            "LABEL by=$U",
        ),
        node("cmd", &[], words(&["echo $U"]), false, "CMD echo $U"),
        node(
            "entrypoint",
            &[],
            words(&["$U"]),
            true,
            "ENTRYPOINT [\"$U\"]",
        ),
        node(
            "run",
            &["--mount=type=cache,target=/c/$U,id=$U,mode=0$MODE"],
            words(&["ls"]),
            false,
            "RUN --mount=... ls",
        ),
    ];
    let (g, stages) = setup(nodes, &BuildArgs::new());
    let mut st = StageState::new(&g, vec![], "/base");
    let r = apply_all(&mut st, &stages.stages[0]);
    let Instruction::Copy(c) = &r[1].instruction else {
        panic!()
    };
    assert_eq!(c.paths.sources, ["s*.txt"]);
    assert_eq!(c.paths.dest, "/d/");
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("app:app"), Some("640"))
    );
    assert_eq!(c.from.as_deref(), Some("builder"));
    assert_eq!(c.exclude, ["$X"]);
    // Heredoc bodies: quotes kept, escapes honoured, unquoted delimiter only.
    assert_eq!(c.paths.inline_sources[0].data, "user=app 'app' $U\n");
    assert_eq!(c.paths.inline_sources[1].data, "user=$U\n");
    let Instruction::Add(a) = &r[2].instruction else {
        panic!()
    };
    assert_eq!(a.paths.sources, ["http://x/s*.txt"]);
    assert_eq!(
        (a.checksum.as_deref(), a.chown.as_deref()),
        (None, Some("app"))
    );
    assert_eq!(r[3].instruction, Instruction::Workdir("/base/work".into()));
    assert_eq!(
        r[4].instruction,
        Instruction::Workdir("/base/work/sub".into())
    );
    assert_eq!(st.workdir(), "/base/work/sub");
    assert_eq!(r[5].instruction, Instruction::User("app:app".into()));
    assert_eq!(
        r[6].instruction,
        Instruction::Volume(vec!["/vol".into(), "/other".into()])
    );
    assert_eq!(r[7].instruction, Instruction::StopSignal("SIGTERM".into()));
    assert_eq!(
        r[8].instruction,
        Instruction::Expose(vec![
            "80/tcp".into(),
            "81/udp".into(),
            "8000/tcp".into(),
            "8001/tcp".into()
        ])
    );
    let Instruction::Label(l) = &r[9].instruction else {
        panic!()
    };
    assert_eq!(l[0].value, "app");
    assert_eq!(
        r[10].instruction,
        Instruction::Cmd(CommandLine::Shell("echo $U".into()))
    );
    assert_eq!(
        r[11].instruction,
        Instruction::Entrypoint(CommandLine::Exec(vec!["$U".into()]))
    );
    let m = &r[12].mounts[0];
    assert_eq!(
        (m.kind, m.target.as_str(), m.id.as_str(), m.mode),
        (MountType::Cache, "/c/app", "app", Some(0o640))
    );
}

#[test]
fn resolve_errors_name_the_line() {
    let nodes = vec![
        from("a"),
        node_at(
            "copy",
            &["--chmod=$M"],
            words(&["a", "b"]),
            false,
            "COPY --chmod=$M a b",
            0,
        ),
        node(
            "stopsignal",
            &[],
            words(&["SIGNOPE"]),
            false,
            "STOPSIGNAL SIGNOPE",
        ),
        node("expose", &[], words(&["$P"]), false, "EXPOSE $P"),
        node(
            "env",
            &[],
            pairs(&[("A", "${B:?must be set}")], false),
            false,
            "ENV A=${B:?must be set}",
        ),
        node(
            "run",
            &["--mount=type=tmpfs,size=$S"],
            words(&["x"]),
            false,
            "RUN --mount=type=tmpfs,size=$S x",
        ),
        node("workdir", &[], words(&["$EMPTY"]), false, "WORKDIR $EMPTY"),
        node("volume", &[], words(&["$EMPTY"]), false, "VOLUME $EMPTY"),
    ];
    let df = dockerfile(nodes);
    let stages = parse_dockerfile(&df).unwrap();
    let g = GlobalScope::new(&stages, &BuildArgs::new(), &linux_amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, env_of(&[("M", "0x7"), ("P", "http"), ("S", "big")]), "");
    let want = [
        "invalid chmod parameter: '0x7'",
        "Invalid signal: SIGNOPE",
        "invalid containerPort: http",
        "B: must be set",
        "invalid value for size: big",
        "cannot normalize nothing",
        "VOLUME specified can not be an empty string",
    ];
    for (cmd, want) in stages.stages[0].commands.iter().zip(want) {
        let e = st.apply(cmd).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(e.span.start_line, cmd.span.start_line);
        assert!(e.to_string().contains(&cmd.original), "{e}");
    }
}

#[test]
fn child_stage_inherits_parent_state() {
    let (g, stages) = setup(
        vec![
            from_as("a", "base"),
            node("arg", &[], arg_decls(&[("V", Some("7"))]), false, "ARG V=7"),
            node("env", &[], pairs(&[("E", "e")], false), false, "ENV E=e"),
            from("base"),
            node(
                "env",
                &[],
                pairs(&[("BOTH", "$V$E")], false),
                false,
                "ENV BOTH=$V$E",
            ),
        ],
        &BuildArgs::new(),
    );
    let mut parent = StageState::new(&g, vec![], "");
    apply_all(&mut parent, &stages.stages[0]);
    assert_eq!(
        stages.resolve_base(&g.resolve_from(&stages.stages[1]).unwrap().base, 1),
        StageRef::Stage(0)
    );
    let mut child = StageState::from_parent(&parent);
    apply_all(&mut child, &stages.stages[1]);
    assert_eq!(get(child.env(), "BOTH"), Some("7e"));
    assert_eq!(get(child.config_env(), "V"), None);
}

#[test]
fn onbuild_and_other_raw_instructions_pass_through() {
    let child = node("run", &[], words(&["echo $X"]), false, "RUN echo $X");
    let (g, stages) = setup(
        vec![
            from("a"),
            node(
                "onbuild",
                &[],
                Args::Nested(Box::new(child)),
                false,
                "ONBUILD RUN echo $X",
            ),
            node("shell", &[], words(&["/bin/sh", "-c"]), true, "SHELL [..]"),
            node("maintainer", &[], words(&["$ME"]), false, "MAINTAINER $ME"),
            node(
                "healthcheck",
                &[],
                words(&["CMD", "check $X"]),
                false,
                "HEALTHCHECK CMD check $X",
            ),
        ],
        &BuildArgs::new(),
    );
    let mut st = StageState::new(&g, env_of(&[("X", "1"), ("ME", "me")]), "");
    let r = apply_all(&mut st, &stages.stages[0]);
    for (res, cmd) in r.iter().zip(&stages.stages[0].commands) {
        assert_eq!(res.instruction, cmd.instruction);
    }
}

#[test]
fn platform_spellings_agree_with_the_registrys_matching() {
    // `FROM --platform` and the manifest-list match normalise alike.
    for (given, want) in [
        ("linux/aarch64/v8.0", "linux/arm64"),
        ("Linux/x86_64", "linux/amd64"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("arm64", "linux/arm64"),
    ] {
        let ours = Platform::parse(given).unwrap().format();
        assert_eq!(ours, want, "{given}");
        if given.contains('/') {
            let theirs: crate::registry::Platform = given.parse().unwrap();
            assert_eq!(theirs.to_string(), want, "{given}");
        }
    }
    for bad in ["linux/sparc", "beos/amd64", "linux/amd64/v2/x", ""] {
        assert!(Platform::parse(bad).is_err(), "{bad}");
    }
}
