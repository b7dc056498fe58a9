//! Arbitrary bytes through the parser, the dump and the heredoc helpers:
//! nothing may panic, and the results must be self-consistent.
#![no_main]

use builder_core::parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most random bytes are not UTF-8 and stop at the first check; the lossy
    // text reaches every later stage.
    let text = String::from_utf8_lossy(data);
    check(text.as_bytes());
    for line in text.lines().take(8) {
        let _ = parser::heredocs_from_line(line);
        let _ = parser::parse_heredoc(line);
    }
});

fn check(data: &[u8]) {
    match parser::parse(data) {
        Ok(dockerfile) => {
            let dump = dockerfile.dump();
            // One line per instruction: %q quoting escapes every newline.
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
