//! Arbitrary text through word expansion and the value parsers that run
//! after it. None may panic, and the single-word and word-split modes of
//! the lexer must agree on whether the input is valid. With bit 6 of the
//! first byte set, the text is also a Dockerfile taken through the whole
//! front end: stages, global scope, every stage's expansion and RUN argv.
#![no_main]

use builder_core::instructions::{
    heredoc_marker, parse_dockerfile, parse_mount, parse_ports, BuildArgs, FileMode, GlobalScope,
    Instruction, Platform, StageRef, StageState,
};
use builder_core::shell::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let env: Vec<(String, String)> = [
        ("A", "a"),
        ("EMPTY", ""),
        ("SP", " x  y "),
        ("PAT", "*/?\\*"),
        ("NL", "l1\nl2"),
        ("UNI", "é日本"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let mut lx = Lexer::new(if opts & 1 == 0 { '\\' } else { '`' });
    lx.raw_quotes = opts & 2 != 0;
    lx.raw_escapes = opts & 4 != 0;
    lx.skip_process_quotes = opts & 8 != 0;
    lx.skip_unset_env = opts & 16 != 0;

    let one = lx.process_word_with_matches(text, &env);
    let many = lx.process_words(text, &env);
    assert_eq!(one.is_ok(), many.is_ok(), "modes disagree on {text:?}");
    if let Ok(r) = &one {
        assert!(r.matched.is_disjoint(&r.unmatched));
    }

    let _ = heredoc_marker(text);
    let _ = FileMode::parse(text).map(|m| m.apply(0o644, opts & 32 != 0));
    let _ = parse_mount(text, &mut |v| Ok(v.to_string()));
    if let Ok(words) = many {
        let _ = parse_ports(&words);
    }
    if opts & 64 != 0 {
        front_end(text, &env);
    }
});

fn front_end(text: &str, env: &[(String, String)]) {
    let Ok(df) = builder_core::parser::parse_str(text) else {
        return;
    };
    let Ok(stages) = parse_dockerfile(&df) else {
        return;
    };
    let args: BuildArgs = [("A", "x"), ("http_proxy", "p")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let host = Platform::host();
    let Ok(global) = GlobalScope::new(&stages, &args, &host, None, None) else {
        return;
    };
    let _ = stages.target(Some("x"));
    let mut done: Vec<StageState> = Vec::new();
    for stage in &stages.stages {
        let mut state = match global.resolve_from(stage) {
            Ok(from) => match stages.resolve_base(&from.base, stage.index) {
                StageRef::Stage(i) => match done.get(i) {
                    Some(parent) => StageState::from_parent(parent),
                    None => return,
                },
                StageRef::Image(_) => StageState::new(&global, env.to_vec(), ""),
            },
            Err(_) => StageState::new(&global, env.to_vec(), ""),
        };
        for cmd in &stage.commands {
            if let Ok(res) = state.apply(cmd) {
                if let Instruction::Run(run) = &res.instruction {
                    let _ = state.run_invocation(run, &[]);
                }
                if let Instruction::Copy(c) = &res.instruction {
                    if let Some(from) = &c.from {
                        let _ = stages.resolve_from(from);
                    }
                }
            }
        }
        done.push(state);
    }
}
