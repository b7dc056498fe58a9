//! Arbitrary bytes through the parser and the dump: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most random bytes are not UTF-8 and stop at the first check; the lossy
    // text reaches every later stage.
    let text = String::from_utf8_lossy(data);
    check(text.as_bytes());
});

fn check(data: &[u8]) {
    match builder_core::parser::parse(data) {
        Ok(dockerfile) => {
            let dump = dockerfile.dump();
            assert_eq!(dump.lines().count(), dockerfile.nodes.len());
            for node in &dockerfile.nodes {
                let _ = node.dump();
                assert!(node.span.start_line >= 1 && node.span.end_line >= node.span.start_line);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.end_line >= e.line);
            let text = String::from_utf8_lossy(data);
            let _ = e.render(&text, "Dockerfile");
        }
    }
}
