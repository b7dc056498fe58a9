//! Whole files to stages; references and targets.
use super::*;
use crate::instructions::*;

fn run(cmd: &str) -> Node {
    node("run", &[], words(&[cmd]), false, &format!("RUN {cmd}"))
}

#[test]
fn meta_args_and_stages() {
    let df = dockerfile(vec![
        node("arg", &[], arg_decls(&[("V", Some("1"))]), false, "ARG V=1"),
        from_as("alpine:$V", "Build"),
        run("make"),
        from("scratch"),
        node(
            "copy",
            &["--from=build"],
            words(&["/out", "/"]),
            false,
            "COPY --from=build /out /",
        ),
    ]);
    let s = parse_dockerfile(&df).unwrap();
    assert_eq!(s.meta_args.len(), 1);
    assert_eq!(s.stages.len(), 2);
    assert_eq!(s.stages[0].name(), Some("build"));
    assert_eq!(s.stages[0].commands.len(), 1);
    assert_eq!(s.stages[1].index, 1);
    assert_eq!(s.stages[1].span.start_line, 4);
    assert_eq!(s.stage_by_name("BUILD"), Some(0));
    assert_eq!(s.resolve_from("build").unwrap(), StageRef::Stage(0));
    assert_eq!(s.resolve_from("1").unwrap(), StageRef::Stage(1));
    assert_eq!(
        s.resolve_from("busybox").unwrap(),
        StageRef::Image("busybox".into())
    );
    assert!(s
        .resolve_from("5")
        .unwrap_err()
        .to_string()
        .contains("invalid stage index 5"));
    assert!(s.resolve_from("-1").is_err());
    assert_eq!(s.resolve_base("build", 1), StageRef::Stage(0));
    // A stage cannot be its own base, and FROM matches the exact name.
    assert_eq!(s.resolve_base("build", 0), StageRef::Image("build".into()));
    assert_eq!(s.resolve_base("Build", 1), StageRef::Image("Build".into()));
    assert_eq!(s.target(None).unwrap(), 1);
    assert_eq!(s.target(Some("Build")).unwrap(), 0);
    let e = s.target(Some("nope")).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "target stage \"nope\" could not be found"
    );
}

#[test]
fn later_stage_name_wins() {
    let df = dockerfile(vec![from_as("a", "x"), from_as("b", "x")]);
    let s = parse_dockerfile(&df).unwrap();
    assert_eq!(s.stage_by_name("x"), Some(1));
    assert_eq!(s.resolve_base("x", 1), StageRef::Stage(0));
}

#[test]
fn structure_errors() {
    let df = dockerfile(vec![run("x"), from("a")]);
    let e = parse_dockerfile(&df).unwrap_err();
    assert!(e.to_string().contains("no build stage in current context"));
    assert_eq!(e.span.start_line, 1);

    let df = dockerfile(vec![node(
        "arg",
        &[],
        arg_decls(&[("A", None)]),
        false,
        "ARG A",
    )]);
    assert!(parse_dockerfile(&df)
        .unwrap_err()
        .to_string()
        .contains("dockerfile contains no stages to build"));

    let df = dockerfile(vec![
        from("a"),
        node(
            "copy",
            &["--from=$STAGE"],
            words(&["x", "y"]),
            false,
            "COPY --from=$STAGE x y",
        ),
    ]);
    let e = parse_dockerfile(&df).unwrap_err();
    assert!(
        e.to_string()
            .contains("variable expansion is not supported for --from"),
        "{e}"
    );
    assert_eq!(e.span.start_line, 2);

    // An error inside a stage names its own line.
    let df = dockerfile(vec![
        from("a"),
        run("ok"),
        node("user", &[], words(&[]), false, "USER"),
    ]);
    let e = parse_dockerfile(&df).unwrap_err();
    assert_eq!(e.span.start_line, 3);
    assert_eq!(e.instruction, "USER");
}
