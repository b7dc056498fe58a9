//! Dockerfile text → parser → stages → per-stage expansion, end to end,
//! with our own Dockerfiles.
use builder_core::instructions::*;
use builder_core::parser::{parse_str, Span};

fn stages(text: &str) -> Stages {
    let df = parse_str(text).unwrap_or_else(|e| panic!("parse: {e}"));
    parse_dockerfile(&df).unwrap_or_else(|e| panic!("{e}"))
}

fn instruction_error(text: &str) -> InstructionError {
    let df = parse_str(text).unwrap_or_else(|e| panic!("parse: {e}"));
    parse_dockerfile(&df).expect_err("should fail")
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn build_args(pairs: &[(&str, &str)]) -> BuildArgs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
ARG BASE=debian
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS Build
ARG TARGETOS TARGETARCH
ENV CGO_ENABLED=0 \
    OUT=/out/app-${TARGETOS}-${TARGETARCH}
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,source=.,target=/src,rw \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o "$OUT" .

FROM ${BASE}:stable-slim
LABEL org.opencontainers.image.title="app" maintainer="kiln <k@example.org>"
COPY --from=build --chmod=0755 /out/ /usr/local/bin/
COPY <<EOF /etc/app.conf
listen = ${PORT:-8080}
EOF
EXPOSE ${PORT:-8080} 9090/udp
USER 1000:1000
HEALTHCHECK --interval=30s --retries=3 CMD ["/usr/local/bin/app", "-check"]
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--help"]
"#;

#[test]
fn multi_stage_file_end_to_end() {
    let s = stages(MULTI_STAGE);
    assert_eq!(s.meta_args.len(), 2);
    assert_eq!(s.stages.len(), 2);
    assert_eq!(s.stages[0].name(), Some("build"));
    assert_eq!(s.stages[0].span.start_line, 4);
    assert_eq!(s.target(Some("BUILD")).unwrap(), 0);

    let arm = Platform::parse("linux/arm64").unwrap();
    let g = GlobalScope::new(
        &s,
        &build_args(&[("BASE", "ubuntu")]),
        &amd64(),
        Some(&arm),
        None,
    )
    .unwrap();
    let from0 = g.resolve_from(&s.stages[0]).unwrap();
    assert_eq!(from0.base, "golang:1.22-bookworm");
    assert_eq!(from0.platform.unwrap().format(), "linux/amd64");
    assert_eq!(
        g.resolve_from(&s.stages[1]).unwrap().base,
        "ubuntu:stable-slim"
    );

    let mut build = StageState::new(
        &g,
        vec![("PATH".into(), "/usr/local/go/bin:/usr/bin".into())],
        "/go",
    );
    let r: Vec<Resolved> = s.stages[0]
        .commands
        .iter()
        .map(|c| build.apply(c).unwrap())
        .collect();
    assert_eq!(get(build.env(), "OUT"), Some("/out/app-linux-arm64"));
    assert_eq!(r[2].instruction, Instruction::Workdir("/src".into()));
    let Instruction::Run(run) = &r[3].instruction else {
        panic!()
    };
    assert!(matches!(&run.cmd, CommandLine::Shell(c) if c.contains("GOOS=$TARGETOS")));
    assert_eq!(r[3].mounts.len(), 2);
    assert_eq!(r[3].mounts[0].cache_id(), "/root/.cache/go-build");
    assert!(!r[3].mounts[1].read_only);
    assert_eq!(get(&r[3].env, "TARGETARCH"), Some("arm64"));

    let mut fin = StageState::new(&g, vec![], "");
    let r: Vec<Resolved> = s.stages[1]
        .commands
        .iter()
        .map(|c| fin.apply(c).unwrap())
        .collect();
    let Instruction::Label(labels) = &r[0].instruction else {
        panic!()
    };
    assert_eq!(labels[1].value, "kiln <k@example.org>");
    let Instruction::Copy(c) = &r[1].instruction else {
        panic!()
    };
    assert_eq!(
        s.resolve_from(c.from.as_deref().unwrap()).unwrap(),
        StageRef::Stage(0)
    );
    assert_eq!(
        FileMode::parse(c.chmod.as_deref().unwrap()).unwrap(),
        FileMode::Octal(0o755)
    );
    let Instruction::Copy(c) = &r[2].instruction else {
        panic!()
    };
    assert_eq!(c.paths.inline_sources[0].data, "listen = 8080\n");
    assert_eq!(
        r[3].instruction,
        Instruction::Expose(vec!["8080/tcp".into(), "9090/udp".into()])
    );
    let Instruction::Healthcheck(Healthcheck::Check { test, retries, .. }) = &r[5].instruction
    else {
        panic!()
    };
    assert_eq!((test.len(), *retries), (3, 3));
    assert_eq!(
        r[7].instruction,
        Instruction::Cmd(CommandLine::Exec(vec!["--help".into()]))
    );
    // In shell form a leading `--help` is a flag, and CMD takes none.
    let e = instruction_error("FROM a\nCMD --help\n");
    assert_eq!(e.kind, InstructionErrorKind::UnknownFlag("--help".into()));
}

#[test]
fn backtick_escape_file() {
    let text = "# escape=`\nFROM scratch\nENV DIR=C:\\app `\n    NAME=a`$b\nWORKDIR /w\n";
    let s = stages(text);
    assert_eq!(s.escape, '`');
    let g = GlobalScope::new(&s, &BuildArgs::new(), &amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, vec![], "");
    for c in &s.stages[0].commands {
        st.apply(c).unwrap();
    }
    assert_eq!(get(st.env(), "DIR"), Some("C:\\app"));
    assert_eq!(get(st.env(), "NAME"), Some("a$b"));
}

#[test]
fn errors_name_line_and_column() {
    let e = instruction_error("FROM a\n\nRUN echo ok\n  COPY --frm=x a b\n");
    assert_eq!(e.kind, InstructionErrorKind::UnknownFlag("--frm".into()));
    assert_eq!(e.span.start_line, 4);
    let shown = e.to_string();
    assert!(shown.starts_with("line 4, column "), "{shown}");
    assert!(shown.contains("COPY --frm=x a b"), "{shown}");

    let source = "FROM a\n\nRUN echo ok\n  COPY --frm=x a b\n";
    let shown = instruction_error(source).render(source, "Dockerfile");
    assert!(
        shown.starts_with("error: unknown flag: --frm\n --> Dockerfile:4:"),
        "{shown}"
    );
    assert!(shown.contains("4 |   COPY --frm=x a b"), "{shown}");

    let e = instruction_error("FROM a AS 9lives\n");
    assert!(e.to_string().contains("invalid name for build stage"));
    let e = instruction_error("EXPOSE 80\nFROM a\n");
    assert!(e.to_string().contains("no build stage in current context"));

    // Expansion errors come from the stage state, on the right line.
    let s = stages("FROM a\nENV A=1\nWORKDIR ${A:?}/x\nUSER ${B:?no user}\n");
    let g = GlobalScope::new(&s, &BuildArgs::new(), &amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, vec![], "");
    st.apply(&s.stages[0].commands[0]).unwrap();
    st.apply(&s.stages[0].commands[1]).unwrap();
    let e = st.apply(&s.stages[0].commands[2]).unwrap_err();
    assert_eq!(e.span.start_line, 4);
    assert!(e.to_string().contains("B: no user"), "{e}");
}

#[test]
fn onbuild_triggers_round_trip() {
    let s = stages("FROM a\nONBUILD COPY --chown=$U . /app\nONBUILD RUN echo \"$U\"\n");
    let triggers: Vec<String> = s.stages[0]
        .commands
        .iter()
        .map(|c| match &c.instruction {
            Instruction::OnBuild(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(triggers, ["COPY --chown=$U . /app", "RUN echo \"$U\""]);

    // A later build starting FROM that image runs the triggers first.
    let child = stages("FROM parent\nENV X=1\n");
    let g = GlobalScope::new(&child, &BuildArgs::new(), &amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, vec![("U".into(), "app".into())], "");
    let from_span = child.stages[0].span;
    let cmd = parse_trigger(&triggers[0], from_span).unwrap();
    assert_eq!(cmd.span, from_span);
    let Instruction::Copy(c) = st.apply(&cmd).unwrap().instruction else {
        panic!()
    };
    assert_eq!(c.chown.as_deref(), Some("app"));

    let bad = parse_trigger(
        "COPY onlyone",
        Span {
            start_line: 3,
            start_col: 1,
            end_line: 3,
            end_col: 5,
        },
    )
    .unwrap_err();
    assert_eq!(bad.span.start_line, 3);
    assert!(
        bad.to_string()
            .contains("COPY requires at least two arguments"),
        "{bad}"
    );
    assert!(parse_trigger("FROM x", Span::default()).is_err());
    assert!(parse_trigger("RUN a\nRUN b", Span::default()).is_err());
}

#[test]
fn heredoc_run_and_add_end_to_end() {
    let text = "FROM a\nRUN <<EOT bash\n\techo $HOME\nEOT\nADD --unpack=true --link <<-'X' /f\n\tkeep $HOME\nX\n";
    let s = stages(text);
    let g = GlobalScope::new(&s, &BuildArgs::new(), &amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, vec![("HOME".into(), "/root".into())], "");
    let r: Vec<Resolved> = s.stages[0]
        .commands
        .iter()
        .map(|c| st.apply(c).unwrap())
        .collect();
    let Instruction::Run(run) = &r[0].instruction else {
        panic!()
    };
    assert_eq!(run.files[0].data, "\techo $HOME\n");
    let Instruction::Add(a) = &r[1].instruction else {
        panic!()
    };
    assert_eq!((a.unpack, a.link), (Some(true), true));
    assert_eq!(a.paths.inline_sources[0].data, "keep $HOME\n");
}

/// Results observed with the reference dockerd (BuildKit built into Debian's
/// docker.io 20.10) for this Dockerfile of ours, `FROM scratch`.
#[test]
fn matches_reference_dockerd_observations() {
    let text = r#"ARG G=global
ARG TARGETOS
FROM scratch
ENV X=env
ARG X=arg
ENV C=1 D=$C
ARG G
LABEL x=$X d=[$D] g=$G tp=[$TARGETPLATFORM] tos=[$TARGETOS] key_${G}=v
LABEL legacy value with  spaces $G
ENV XX=$X
EXPOSE 8000-8001 80/UDP 7/sctp
WORKDIR app
WORKDIR ../srv/./x/
USER ${G}:${NOPE:-grp}
VOLUME $G /v2
STOPSIGNAL SIG${G:+TERM}
"#;
    let s = stages(text);
    let g = GlobalScope::new(&s, &BuildArgs::new(), &amd64(), None, None).unwrap();
    let mut st = StageState::new(&g, vec![], "");
    let r: Vec<Resolved> = s.stages[0]
        .commands
        .iter()
        .map(|c| st.apply(c).unwrap())
        .collect();
    let env: Vec<String> = st
        .config_env()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        env,
        [
            format!("PATH={DEFAULT_PATH}"),
            "X=env".into(),
            "C=1".into(),
            "D=".into(),
            "XX=arg".into()
        ]
    );
    let mut labels: Vec<(String, String)> = Vec::new();
    for res in &r {
        if let Instruction::Label(l) = &res.instruction {
            labels.extend(l.iter().map(|kv| (kv.key.clone(), kv.value.clone())));
        }
    }
    labels.sort();
    let want: Vec<(String, String)> = [
        ("d", "[]"),
        ("g", "global"),
        ("key_global", "v"),
        ("legacy", "value with  spaces global"),
        ("tos", "[]"),
        ("tp", "[]"),
        ("x", "arg"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
    let mut ports = match &r[7].instruction {
        Instruction::Expose(p) => p.clone(),
        other => panic!("{other:?}"),
    };
    ports.sort();
    assert_eq!(ports, ["7/sctp", "80/udp", "8000/tcp", "8001/tcp"]);
    assert_eq!(st.workdir(), "/srv/x");
    assert_eq!(r[10].instruction, Instruction::User("global:grp".into()));
    assert_eq!(
        r[11].instruction,
        Instruction::Volume(vec!["global".into(), "/v2".into()])
    );
    assert_eq!(r[12].instruction, Instruction::StopSignal("SIGTERM".into()));
}
