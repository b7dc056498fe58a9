use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use builder_core::progress::{
    ChangedInput, Event, Reporter, StepId, StepPlace, StepResult, Stream,
};

use super::tty::TtyState;
use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn place(stage: &str, position: usize, total: usize) -> StepPlace {
    StepPlace {
        stage: stage.into(),
        position,
        total,
    }
}

/// A small build: a cached COPY, a RUN that misses and logs (in pieces,
/// with a `\r` progress bar), a RUN that fails, and a pull.
fn build_events() -> Vec<Event> {
    let s = |id| StepId(id);
    vec![
        Event::BuildStarted {
            target: None,
            steps: 4,
        },
        Event::StepStarted {
            id: s(1),
            place: place("internal", 0, 0),
            text: "pull docker.io/library/alpine".into(),
            lines: None,
        },
        Event::Blob {
            id: s(1),
            digest: format!("sha256:{}", "ab".repeat(32)),
            done: 3_400_000,
            total: 3_400_000,
            outcome: Some("downloaded".into()),
        },
        Event::StepFinished {
            id: s(1),
            duration: Duration::from_millis(1230),
            result: StepResult::Done,
        },
        Event::StepStarted {
            id: s(2),
            place: place("app", 2, 4),
            text: "COPY . /app".into(),
            lines: Some((2, 2)),
        },
        Event::StepCached {
            id: s(2),
            key: "sha256:00".into(),
        },
        Event::StepStarted {
            id: s(3),
            place: place("app", 3, 4),
            text: "RUN make".into(),
            lines: Some((3, 3)),
        },
        Event::CacheMiss {
            id: s(3),
            reasons: vec!["file src/main.rs changed".into()],
            changed: vec![ChangedInput {
                name: "file:src/main.rs".into(),
                old: Some("sha256:01".into()),
                new: Some("sha256:02".into()),
            }],
        },
        Event::StepLog {
            id: s(3),
            stream: Stream::Stdout,
            data: b"cc -o app ma".to_vec(),
        },
        Event::StepLog {
            id: s(3),
            stream: Stream::Stdout,
            data: b"in.c\n10%\r50%\r100%\nno newline".to_vec(),
        },
        Event::StepFinished {
            id: s(3),
            duration: Duration::from_millis(420),
            result: StepResult::Done,
        },
        Event::StepStarted {
            id: s(4),
            place: place("app", 4, 4),
            text: "RUN make test".into(),
            lines: Some((4, 4)),
        },
        Event::StepLog {
            id: s(4),
            stream: Stream::Stderr,
            data: b"FAIL: t1\n".to_vec(),
        },
        Event::Warning {
            id: Some(s(4)),
            message: "slow test".into(),
        },
        Event::StepFailed {
            id: s(4),
            error: "process \"/bin/sh -c make test\" exited with code 2".into(),
            last_lines: vec!["FAIL: t1".into()],
            duration: Duration::from_millis(50),
        },
        Event::BuildFinished {
            duration: Duration::from_millis(2000),
            success: false,
            image: None,
        },
    ]
}

fn render(mode: ProgressMode) -> String {
    let buf = Buf::default();
    let r = Renderer::on(mode, Box::new(buf.clone()));
    for e in build_events() {
        r.event(&e);
    }
    r.finish();
    buf.text()
}

#[test]
fn plain_lines_are_buildkits() {
    assert_eq!(
        render(ProgressMode::Plain),
        "\
#1 [internal] pull docker.io/library/alpine
#1 sha256:abababababab 3.40MB downloaded
#1 DONE 1.2s

#2 [app 2/4] COPY . /app
#2 CACHED

#3 [app 3/4] RUN make
#3 cache miss: file src/main.rs changed
#3 cc -o app main.c
#3 100%
#3 no newline
#3 DONE 0.4s

#4 [app 4/4] RUN make test
#4 FAIL: t1
#4 WARN: slow test
#4 ERROR: process \"/bin/sh -c make test\" exited with code 2
------
 > [app 4/4] RUN make test:
FAIL: t1
------

ERROR: build failed after 2.0s
"
    );
}

#[test]
fn quiet_shows_only_the_failure() {
    assert_eq!(
        render(ProgressMode::Quiet),
        "\
#4 ERROR: process \"/bin/sh -c make test\" exited with code 2
------
 > [app 4/4] RUN make test:
FAIL: t1
------

ERROR: build failed after 2.0s
"
    );
}

#[test]
fn rawjson_is_one_event_per_line() {
    let out = render(ProgressMode::Rawjson);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), build_events().len());
    assert_eq!(
        lines[0],
        r#"{"type":"build_started","target":null,"steps":4}"#
    );
    assert_eq!(
        lines[4],
        r#"{"type":"step_started","id":2,"place":{"stage":"app","position":2,"total":4},"text":"COPY . /app","lines":[2,2]}"#
    );
    assert_eq!(
        lines[7],
        r#"{"type":"cache_miss","id":3,"reasons":["file src/main.rs changed"],"changed":[{"name":"file:src/main.rs","old":"sha256:01","new":"sha256:02"}]}"#
    );
    assert_eq!(
        lines[15],
        r#"{"type":"build_finished","duration":2.0,"success":false,"image":null}"#
    );
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}

#[test]
fn tty_frame_shows_running_steps_with_timers_and_tails() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut st = TtyState::new();
    let events = build_events();
    // Up to the RUN make step's logs: COPY cached, RUN make running.
    for (i, e) in events.iter().take(10).enumerate() {
        st.apply(e, at(i as u64 * 100));
    }
    assert!(st.running());
    let frame = st.frame(at(3000), 60, 0);
    assert_eq!(
        frame,
        vec![
            "[+] Building 3.0s (2/4)",
            " => [internal] pull docker.io/library/alpine            1.2s",
            " => CACHED [app 2/4] COPY . /app                        0.1s",
            " => [app 3/4] RUN make                                  2.4s",
            " => => cache miss: file src/main.rs changed",
            " => => # cc -o app main.c",
            " => => # 100%",
        ]
    );
    // A short terminal keeps the newest lines under the title.
    let short = st.frame(at(3000), 60, 4);
    assert_eq!(short.len(), 4);
    assert_eq!(short[0], "[+] Building 3.0s (2/4)");
    assert_eq!(short[3], " => => # 100%");

    for (i, e) in events.iter().enumerate().skip(10) {
        st.apply(e, at(1000 + i as u64 * 100));
    }
    assert!(!st.running());
    let frame = st.frame(at(9000), 60, 0);
    assert_eq!(
        frame,
        vec![
            "[+] Building 2.0s (4/4) FAILED",
            " => [internal] pull docker.io/library/alpine            1.2s",
            " => CACHED [app 2/4] COPY . /app                        0.1s",
            " => [app 3/4] RUN make                                  0.4s",
            " => ERROR [app 4/4] RUN make test                       0.1s",
            " => => # FAIL: t1",
            " => ERROR: process \"/bin/sh -c make test\" exited with code 2",
            "WARN: slow test",
        ]
    );
}

#[test]
fn live_tty_redraws_in_place() {
    let buf = Buf::default();
    let tty = Tty::start(Box::new(buf.clone()), 60, 20);
    let events = build_events();
    for e in events.iter().take(2) {
        tty.event(e);
    }
    // A step is running: the ticker redraws its timer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while buf.text().matches("[+] Building").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tty.event(&events[2]);
    tty.event(&events[3]);
    tty.finish();
    let out = buf.text();
    assert!(out.matches("[+] Building").count() >= 3, "{out}");
    assert!(
        out.contains("\x1b[2A\r\x1b[J"),
        "redraws go back up: {out:?}"
    );
    assert!(
        out.ends_with(" (1/4)\n => [internal] pull docker.io/library/alpine            1.2s\n"),
        "{out:?}"
    );
}

#[test]
fn long_headers_are_cut_to_the_width() {
    assert_eq!(
        TtyState::new().frame(Instant::now(), 40, 0),
        vec!["[+] Building 0.0s (0/0)"]
    );
    let mut st = TtyState::new();
    let now = Instant::now();
    st.apply(
        &Event::StepStarted {
            id: StepId(1),
            place: place("s", 1, 1),
            text: "RUN ".to_string() + &"x".repeat(100),
            lines: None,
        },
        now,
    );
    let f = st.frame(now, 40, 0);
    assert_eq!(f[1].chars().count(), 40);
    assert!(f[1].ends_with(" 0.0s"));
}
