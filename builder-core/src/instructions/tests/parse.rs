//! One node → one typed instruction.
use std::time::Duration;

use super::*;
use crate::instructions::*;

fn ok(n: &Node) -> Instruction {
    match parse_instruction(n) {
        Ok(Parsed::Command(c)) => c.instruction,
        other => panic!("{}: {other:?}", n.original),
    }
}

fn err(n: &Node) -> String {
    match parse_instruction(n) {
        Err(e) => e.to_string(),
        Ok(p) => panic!("{} should fail, gave {p:?}", n.original),
    }
}

#[test]
fn from_forms() {
    let Ok(Parsed::From(f)) = parse_instruction(&from_as("alpine", "Build.1")) else {
        panic!()
    };
    assert_eq!(
        (f.base.as_str(), f.name.as_deref()),
        ("alpine", Some("build.1"))
    );
    let n = node(
        "from",
        &["--platform=$BUILDPLATFORM"],
        words(&["a"]),
        false,
        "FROM --platform=$BUILDPLATFORM a",
    );
    let Ok(Parsed::From(f)) = parse_instruction(&n) else {
        panic!()
    };
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(f.name, None);

    let e = err(&node(
        "from",
        &[],
        words(&["a", "AS", "1st"]),
        false,
        "FROM a AS 1st",
    ));
    assert!(e.contains("invalid name for build stage: \"1st\""), "{e}");
    assert!(err(&node(
        "from",
        &[],
        words(&["a", "AS", "x y!"]),
        false,
        "FROM a AS x"
    ))
    .contains("invalid name"));
    assert!(
        err(&node("from", &[], words(&["a", "b"]), false, "FROM a b"))
            .contains("either one or three")
    );
    assert!(err(&node(
        "from",
        &[],
        words(&["a", "to", "b"]),
        false,
        "FROM a to b"
    ))
    .contains("either one or three"));
    assert!(err(&node(
        "from",
        &["--arch=x"],
        words(&["a"]),
        false,
        "FROM --arch=x a"
    ))
    .contains("unknown flag: --arch"));
}

#[test]
fn env_and_label_both_forms() {
    let i = ok(&node(
        "env",
        &[],
        pairs(&[("A", "1"), ("B", "two words")], false),
        false,
        "ENV A=1 B=...",
    ));
    let Instruction::Env(kv) = i else { panic!() };
    assert_eq!(kv.len(), 2);
    assert!(!kv[0].legacy);
    let i = ok(&node(
        "label",
        &[],
        pairs(&[("k", "v w")], true),
        false,
        "LABEL k v w",
    ));
    let Instruction::Label(kv) = i else { panic!() };
    assert!(kv[0].legacy);
    assert_eq!(kv[0].value, "v w");
    assert!(err(&node("env", &[], pairs(&[], false), false, "ENV"))
        .contains("ENV requires at least one argument"));
    assert!(err(&node(
        "label",
        &[],
        pairs(&[("", "x")], false),
        false,
        "LABEL =x"
    ))
    .contains("LABEL names can not be blank"));
    assert!(err(&node(
        "env",
        &["--x"],
        pairs(&[("a", "b")], false),
        false,
        "ENV --x a=b"
    ))
    .contains("unknown flag: --x"));
}

#[test]
fn arg_declarations() {
    let i = ok(&node(
        "arg",
        &[],
        arg_decls(&[("A", None), ("B", Some("")), ("C", Some("x"))]),
        false,
        "ARG A B= C=x",
    ));
    assert_eq!(
        i,
        Instruction::Arg(vec![
            ArgDecl {
                key: "A".into(),
                value: None
            },
            ArgDecl {
                key: "B".into(),
                value: Some(String::new())
            },
            ArgDecl {
                key: "C".into(),
                value: Some("x".into())
            },
        ])
    );
    assert!(err(&node("arg", &[], arg_decls(&[]), false, "ARG"))
        .contains("ARG requires at least one argument"));
    assert!(err(&node(
        "arg",
        &[],
        arg_decls(&[("", Some("v"))]),
        false,
        "ARG =v"
    ))
    .contains("ARG names can not be blank"));
}

#[test]
fn single_argument_instructions() {
    for (kw, upper) in [
        ("workdir", "WORKDIR"),
        ("user", "USER"),
        ("maintainer", "MAINTAINER"),
        ("stopsignal", "STOPSIGNAL"),
    ] {
        let e = err(&node(kw, &[], words(&[]), false, upper));
        assert!(
            e.contains(&format!("{upper} requires exactly one argument")),
            "{e}"
        );
    }
    assert_eq!(
        ok(&node(
            "user",
            &[],
            words(&["app:app"]),
            false,
            "USER app:app"
        )),
        Instruction::User("app:app".into())
    );
    assert!(err(&node(
        "workdir",
        &["--x=1"],
        words(&["/a"]),
        false,
        "WORKDIR --x=1 /a"
    ))
    .contains("unknown flag: --x"));
    // BuildKit never parses STOPSIGNAL's flags.
    assert_eq!(
        ok(&node(
            "stopsignal",
            &["--x"],
            words(&["SIGKILL"]),
            false,
            "STOPSIGNAL --x SIGKILL"
        )),
        Instruction::StopSignal("SIGKILL".into())
    );
}

#[test]
fn expose_volume_shell() {
    assert_eq!(
        ok(&node(
            "expose",
            &[],
            words(&["8080", "443", "$P"]),
            false,
            "EXPOSE"
        )),
        Instruction::Expose(vec!["$P".into(), "443".into(), "8080".into()])
    );
    assert!(err(&node("expose", &[], words(&[]), false, "EXPOSE"))
        .contains("EXPOSE requires at least one argument"));
    assert_eq!(
        ok(&node(
            "volume",
            &[],
            words(&[" /data ", "/logs"]),
            true,
            "VOLUME [..]"
        )),
        Instruction::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert!(
        err(&node("volume", &[], words(&["  "]), true, "VOLUME [\" \"]"))
            .contains("can not be an empty string")
    );
    assert!(err(&node("volume", &[], words(&[]), false, "VOLUME"))
        .contains("VOLUME requires at least one argument"));
    assert_eq!(
        ok(&node(
            "shell",
            &[],
            words(&["/bin/bash", "-c"]),
            true,
            "SHELL [..]"
        )),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(err(&node(
        "shell",
        &[],
        words(&["/bin/bash -c"]),
        false,
        "SHELL /bin/bash -c"
    ))
    .contains("SHELL requires the arguments to be in JSON form"));
    assert!(err(&node("shell", &[], words(&[]), true, "SHELL []"))
        .contains("SHELL requires at least one argument"));
}

#[test]
fn command_forms() {
    assert_eq!(
        ok(&node(
            "cmd",
            &[],
            words(&["echo $HOME"]),
            false,
            "CMD echo $HOME"
        )),
        Instruction::Cmd(CommandLine::Shell("echo $HOME".into()))
    );
    assert_eq!(
        ok(&node(
            "entrypoint",
            &[],
            words(&["/app", "-x"]),
            true,
            "ENTRYPOINT [..]"
        )),
        Instruction::Entrypoint(CommandLine::Exec(vec!["/app".into(), "-x".into()]))
    );
    assert_eq!(
        ok(&node("cmd", &[], words(&[]), true, "CMD []")),
        Instruction::Cmd(CommandLine::Exec(vec![]))
    );
    assert!(
        err(&node("cmd", &["--a"], words(&["x"]), false, "CMD --a x"))
            .contains("unknown flag: --a")
    );
}

#[test]
fn run_flags() {
    let mut n = node(
        "run",
        &[
            "--mount=type=cache,target=/c",
            "--mount=type=secret,id=$ID",
            "--network=none",
            "--security=insecure",
        ],
        words(&["make $TARGET"]),
        false,
        "RUN ...",
    );
    n.heredocs.push(heredoc("EOF", "\techo hi\n", true, true));
    let Instruction::Run(r) = ok(&n) else {
        panic!()
    };
    assert_eq!(r.cmd, CommandLine::Shell("make $TARGET".into()));
    assert_eq!(r.mount_specs.len(), 2);
    assert_eq!(
        (r.network, r.security),
        (NetworkMode::None, Security::Insecure)
    );
    assert_eq!(
        (r.files[0].data.as_str(), r.files[0].chomp),
        ("\techo hi\n", true)
    );

    let Instruction::Run(r) = ok(&node("run", &[], words(&["x"]), false, "RUN x")) else {
        panic!()
    };
    assert_eq!(
        (r.network, r.security),
        (NetworkMode::Default, Security::Sandbox)
    );
    assert!(
        ok(&node(
            "run",
            &["--network=host"],
            words(&["x"]),
            false,
            "RUN"
        )) != ok(&node("run", &[], words(&["x"]), false, "RUN"))
    );

    let cases: [(&[&str], &str); 6] = [
        (&["--network=bridge"], "invalid network mode \"bridge\""),
        (&["--security=root"], "security \"root\" is not valid"),
        (&["--device=x"], "unknown flag: --device"),
        (&["--network"], "missing a value on flag: --network"),
        (
            &["--network=none", "--network=host"],
            "duplicate flag specified: --network",
        ),
        (
            &["--mount=from=$STAGE,target=/x"],
            "'from' doesn't support variable expansion",
        ),
    ];
    for (flags, want) in cases {
        let e = err(&node("run", flags, words(&["x"]), false, "RUN x"));
        assert!(e.contains(want), "{flags:?}: {e}");
    }
    assert!(err(&node("run", &["-x"], words(&["x"]), false, "RUN -x x"))
        .contains("arg should start with -- : -x"));
}

#[test]
fn copy_flags_and_sources() {
    let n = node(
        "copy",
        &[
            "--from=build",
            "--chown=1:2",
            "--chmod=u+x",
            "--link",
            "--parents=true",
            "--exclude=*.md",
            "--exclude=.git",
        ],
        words(&["a", "b", "/dst/"]),
        false,
        "COPY ...",
    );
    let Instruction::Copy(c) = ok(&n) else {
        panic!()
    };
    assert_eq!(c.paths.sources, ["a", "b"]);
    assert_eq!(c.paths.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("1:2"), Some("u+x"))
    );
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", ".git"]);

    let Instruction::Copy(c) = ok(&node(
        "copy",
        &["--link=false", "--chown="],
        words(&["a", "b"]),
        false,
        "COPY",
    )) else {
        panic!()
    };
    assert!(!c.link);
    assert_eq!(c.chown, None);

    let cases: [(&str, &[&str], &str); 7] = [
        ("copy", &["--checksum=sha256:x"], "unknown flag: --checksum"),
        ("copy", &["--keep-git-dir"], "unknown flag: --keep-git-dir"),
        ("add", &["--from=x"], "unknown flag: --from"),
        (
            "copy",
            &["--link=maybe"],
            "expecting boolean value for flag --link, not: maybe",
        ),
        ("copy", &["--link="], "missing a value on flag: --link"),
        ("copy", &["--chown"], "missing a value on flag: --chown"),
        (
            "copy",
            &["--from=a", "--from=b"],
            "duplicate flag specified: --from",
        ),
    ];
    for (kw, flags, want) in cases {
        let e = err(&node(kw, flags, words(&["a", "b"]), false, "X a b"));
        assert!(e.contains(want), "{kw} {flags:?}: {e}");
    }
    let e = err(&node("copy", &[], words(&["a"]), false, "COPY a"));
    assert!(e.contains("COPY requires at least two arguments, but only one was provided. Destination could not be determined"));
}

#[test]
fn add_flags() {
    let n = node(
        "add",
        &[
            "--checksum=sha256:abc",
            "--keep-git-dir",
            "--unpack=false",
            "--link",
            "--chmod=755",
        ],
        words(&["https://x/y.tgz", "/y"]),
        false,
        "ADD ...",
    );
    let Instruction::Add(a) = ok(&n) else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(
        (a.keep_git_dir, a.unpack, a.link),
        (Some(true), Some(false), true)
    );
    let Instruction::Add(a) = ok(&node("add", &[], words(&["a", "b"]), false, "ADD a b")) else {
        panic!()
    };
    assert_eq!((a.keep_git_dir, a.unpack), (None, None));
    assert!(err(&node("add", &[], words(&["a"]), false, "ADD a"))
        .contains("ADD requires at least two arguments"));
}

#[test]
fn heredoc_sources() {
    let mut n = node(
        "copy",
        &[],
        words(&["<<-EOF", "<<'RAW'", "real", "/dst"]),
        false,
        "COPY <<-EOF <<'RAW' real /dst",
    );
    n.heredocs.push(heredoc("EOF", "\t\tline $X\n", true, true));
    n.heredocs.push(heredoc("RAW", "$Y\n", false, false));
    let Instruction::Copy(c) = ok(&n) else {
        panic!()
    };
    assert_eq!(c.paths.sources, ["real"]);
    assert_eq!(c.paths.inline_sources.len(), 2);
    assert_eq!(
        c.paths.inline_sources[0],
        InlineSource {
            path: "EOF".into(),
            data: "line $X\n".into(),
            expand: true
        }
    );
    assert_eq!(
        c.paths.inline_sources[1],
        InlineSource {
            path: "RAW".into(),
            data: "$Y\n".into(),
            expand: false
        }
    );
    let e = err(&node(
        "copy",
        &[],
        words(&["a", "<<EOF"]),
        false,
        "COPY a <<EOF",
    ));
    assert!(
        e.contains("COPY cannot accept a heredoc as a destination"),
        "{e}"
    );
}

#[test]
fn heredoc_markers() {
    let m = heredoc_marker("<<EOF").unwrap();
    assert_eq!(
        (m.name.as_str(), m.chomp, m.expand, m.file_descriptor),
        ("EOF", false, true, 0)
    );
    let m = heredoc_marker("3<<-\"E O\"").unwrap();
    assert_eq!(
        (m.name.as_str(), m.chomp, m.expand, m.file_descriptor),
        ("E O", true, false, 3)
    );
    assert!(!heredoc_marker("<<E'O'F").unwrap().expand);
    for not in ["<<", "<EOF", "a<<EOF", "<<a b", "<<a<b", "x"] {
        assert_eq!(heredoc_marker(not), None, "{not}");
    }
    assert_eq!(chomp_heredoc("\ta\n\t\tb\nc\t\n"), "a\nb\nc\t\n");
}

#[test]
fn healthcheck() {
    assert_eq!(
        ok(&node(
            "healthcheck",
            &[],
            words(&["none"]),
            false,
            "HEALTHCHECK none"
        )),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert!(err(&node(
        "healthcheck",
        &[],
        words(&["NONE", "x"]),
        false,
        "HEALTHCHECK NONE x"
    ))
    .contains("HEALTHCHECK NONE takes no arguments"));
    let n = node(
        "healthcheck",
        &[
            "--interval=1m30s",
            "--timeout=500ms",
            "--start-period=1.5s",
            "--start-interval=2s",
            "--retries=3",
        ],
        words(&["CMD", "curl -f http://localhost/"]),
        false,
        "HEALTHCHECK ...",
    );
    let Instruction::Healthcheck(Healthcheck::Check {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }) = ok(&n)
    else {
        panic!()
    };
    assert_eq!(test, ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(interval, Duration::from_secs(90));
    assert_eq!(timeout, Duration::from_millis(500));
    assert_eq!(start_period, Duration::from_millis(1500));
    assert_eq!(start_interval, Duration::from_secs(2));
    assert_eq!(retries, 3);

    let Instruction::Healthcheck(Healthcheck::Check { test, interval, .. }) = ok(&node(
        "healthcheck",
        &["--interval=0ms"],
        words(&["CMD", "a", "b"]),
        true,
        "HEALTHCHECK CMD [..]",
    )) else {
        panic!()
    };
    assert_eq!(test, ["CMD", "a", "b"]);
    assert_eq!(interval, Duration::ZERO);
    assert!(matches!(
        ok(&node(
            "healthcheck",
            &["--interval=1ms"],
            words(&["CMD", "a"]),
            false,
            "H"
        )),
        Instruction::Healthcheck(Healthcheck::Check { .. })
    ));

    let cases: [(&[&str], &[&str], &str); 8] = [
        (
            &["--interval=50ns"],
            &["CMD", "a"],
            "Interval \"interval\" cannot be less than 1ms",
        ),
        (
            &["--timeout=-1s"],
            &["CMD", "a"],
            "Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            &["--interval=10"],
            &["CMD", "a"],
            "missing unit in duration",
        ),
        (&["--interval=1y"], &["CMD", "a"], "unknown unit"),
        (
            &["--retries=-1"],
            &["CMD", "a"],
            "--retries cannot be negative (-1)",
        ),
        (&["--retries=x"], &["CMD", "a"], "invalid syntax"),
        (
            &[],
            &["RUN", "a"],
            "Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
        ),
        (&[], &["CMD"], "Missing command after HEALTHCHECK CMD"),
    ];
    for (flags, args, want) in cases {
        let e = err(&node(
            "healthcheck",
            flags,
            words(args),
            false,
            "HEALTHCHECK",
        ));
        assert!(e.contains(want), "{flags:?} {args:?}: {e}");
    }
    assert!(
        err(&node("healthcheck", &[], words(&[]), false, "HEALTHCHECK"))
            .contains("HEALTHCHECK requires at least one argument")
    );
    assert!(err(&node(
        "healthcheck",
        &["--boo=1"],
        words(&["CMD", "a"]),
        false,
        "H"
    ))
    .contains("unknown flag: --boo"));
}

#[test]
fn onbuild_keeps_raw_text() {
    let child = node("run", &[], words(&["echo $X"]), false, "RUN echo $X");
    let n = node(
        "onbuild",
        &[],
        Args::Nested(Box::new(child)),
        false,
        "  onbuild   RUN echo $X",
    );
    assert_eq!(ok(&n), Instruction::OnBuild("RUN echo $X".into()));

    let mut child = node("copy", &[], words(&["<<EOF", "/f"]), false, "COPY <<EOF /f");
    child.heredocs.push(heredoc("EOF", "hi\n", true, false));
    let mut n = node(
        "onbuild",
        &[],
        Args::Nested(Box::new(child.clone())),
        false,
        "ONBUILD COPY <<EOF /f",
    );
    n.heredocs = child.heredocs.clone();
    assert_eq!(
        ok(&n),
        Instruction::OnBuild("COPY <<EOF /f\nhi\nEOF".into())
    );

    for (kw, want) in [
        (
            "onbuild",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("from", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "maintainer",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
    ] {
        let child = node(kw, &[], words(&["x"]), false, "X x");
        let e = err(&node(
            "onbuild",
            &[],
            Args::Nested(Box::new(child)),
            false,
            "ONBUILD X x",
        ));
        assert!(e.contains(want), "{e}");
    }
    // A broken trigger fails now.
    let child = node("copy", &[], words(&["a"]), false, "COPY a");
    assert!(err(&node(
        "onbuild",
        &[],
        Args::Nested(Box::new(child)),
        false,
        "ONBUILD COPY a"
    ))
    .contains("COPY requires at least two"));
    assert!(err(&node("onbuild", &[], words(&[]), false, "ONBUILD"))
        .contains("ONBUILD requires at least one argument"));
}

#[test]
fn unknown_instruction_and_error_location() {
    let n = node_at("frobnicate", &[], words(&["x"]), false, "FROBNICATE x", 7);
    let e = parse_instruction(&n).unwrap_err();
    assert_eq!(
        e.kind,
        InstructionErrorKind::UnknownInstruction("FROBNICATE".into())
    );
    assert_eq!((e.span.start_line, e.span.start_col), (7, 1));
    let shown = e.to_string();
    assert!(
        shown.starts_with("line 7, column 1: unknown instruction: FROBNICATE"),
        "{shown}"
    );
    assert!(shown.contains("FROBNICATE x"), "{shown}");
}
