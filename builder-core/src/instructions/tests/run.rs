//! RUN argv, heredoc scripts and history lines, from real Dockerfile text.
use crate::instructions::*;
use crate::parser::parse_str;

/// Applies every instruction of the only stage and returns the state and
/// the last RUN.
fn last_run(text: &str) -> (StageState, Run) {
    let stages = parse_dockerfile(&parse_str(text).unwrap()).unwrap();
    let plat = Platform::parse("linux/amd64").unwrap();
    let g = GlobalScope::new(&stages, &BuildArgs::new(), &plat, None, None).unwrap();
    let mut st = StageState::new(&g, vec![], "");
    let mut run = None;
    for c in &stages.stages[0].commands {
        if let Instruction::Run(r) = st.apply(c).unwrap().instruction {
            run = Some(r);
        }
    }
    (st, run.expect("a RUN"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn shell_and_exec_forms() {
    let (st, run) = last_run("FROM a\nRUN make  all\n");
    let inv = st.run_invocation(&run, &[]).unwrap();
    assert_eq!(inv.args, strings(&["/bin/sh", "-c", "make  all"]));
    assert_eq!(inv.created_by, "RUN /bin/sh -c make  all # buildkit");
    assert_eq!(inv.script, None);

    let bash = strings(&["/bin/bash", "-eo", "pipefail", "-c"]);
    let inv = st.run_invocation(&run, &bash).unwrap();
    assert_eq!(
        inv.args,
        strings(&["/bin/bash", "-eo", "pipefail", "-c", "make  all"])
    );

    let (st, run) = last_run("FROM a\nRUN [\"/bin/echo\", \"a b\"]\n");
    let inv = st.run_invocation(&run, &bash).unwrap();
    assert_eq!(inv.args, strings(&["/bin/echo", "a b"]));
    assert_eq!(inv.created_by, "RUN /bin/echo a b # buildkit");
}

#[test]
fn history_lists_declared_args() {
    let (st, run) = last_run("FROM a\nARG A=1 B\nARG A=2\nENV C=3\nRUN x\n");
    let inv = st.run_invocation(&run, &[]).unwrap();
    assert_eq!(inv.created_by, "RUN |2 A=2 B= /bin/sh -c x # buildkit");
}

#[test]
fn heredocs() {
    let (st, run) = last_run("FROM a\nRUN <<-EOF\n\techo hi\n\tEOF\n");
    let inv = st.run_invocation(&run, &[]).unwrap();
    assert_eq!(inv.args, strings(&["/bin/sh", "-c", "echo hi\n"]));

    let (st, run) = last_run("FROM a\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
    let inv = st.run_invocation(&run, &[]).unwrap();
    assert_eq!(inv.args, strings(&["/bin/sh", "-c", "/dev/pipes/EOF"]));
    let script = inv.script.unwrap();
    assert_eq!(
        (script.name.as_str(), script.data.as_str()),
        ("EOF", "#!/usr/bin/env python3\nprint(1)\n")
    );

    let (st, run) = last_run("FROM a\nRUN cat <<A >a && cat <<-B >b\none\nA\n\ttwo\n\tB\n");
    let inv = st.run_invocation(&run, &[]).unwrap();
    assert_eq!(
        inv.args,
        strings(&[
            "/bin/sh",
            "-c",
            "cat <<A >a && cat <<-B >b\none\nA\n\ttwo\nB"
        ])
    );
}

#[test]
fn exec_form_with_heredoc_is_refused() {
    let run = Run {
        cmd: CommandLine::Exec(strings(&["a"])),
        files: vec![InlineFile {
            name: "EOF".into(),
            data: "x\n".into(),
            chomp: false,
            expand: true,
        }],
        mount_specs: vec![],
        network: NetworkMode::Default,
        security: Security::Sandbox,
    };
    let (st, _) = last_run("FROM a\nRUN x\n");
    let e = st.run_invocation(&run, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("parsing produced an invalid run command"),
        "{e}"
    );
}

#[test]
fn with_shell_joins_args() {
    assert_eq!(
        with_shell(&[], &strings(&["a", "b"])),
        strings(&["/bin/sh", "-c", "a b"])
    );
    assert_eq!(DEFAULT_SHELL, ["/bin/sh", "-c"]);
}
