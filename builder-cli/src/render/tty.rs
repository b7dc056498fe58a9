//! `--progress=tty`: a live view redrawn in place, modelled on BuildKit's:
//!
//! ```text
//! [+] Building 3.2s (2/4)
//!  => CACHED [app 2/4] COPY . /app                              0.0s
//!  => [app 3/4] RUN make                                        3.1s
//!  => => # cc -o app main.c
//! ```
//!
//! [`TtyState`] holds what is shown and renders a frame for a given instant
//! (so tests render into a buffer with no clock); [`Tty`] owns a ticker
//! thread that redraws it ten times a second with plain ANSI escapes.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use builder_core::progress::{Event, StepId, StepResult};

use super::{fmt_bytes, fmt_secs, header, LineBuffer};

/// Output lines kept per running step.
const TAIL: usize = 6;

struct StepView {
    header: String,
    start: Instant,
    end: Option<Instant>,
    cached: bool,
    failed: Option<(String, Vec<String>)>,
    cancelled: bool,
    miss: Option<String>,
    tail: VecDeque<String>,
    blobs: BTreeMap<String, (u64, u64)>,
}

/// Everything the live view shows.
#[derive(Default)]
pub struct TtyState {
    start: Option<Instant>,
    total: usize,
    steps: Vec<StepView>,
    by_id: HashMap<StepId, usize>,
    lines: LineBuffer,
    warnings: Vec<String>,
    finished: Option<(Duration, bool)>,
}

impl TtyState {
    /// An empty view.
    pub fn new() -> TtyState {
        TtyState::default()
    }

    fn step(&mut self, id: StepId) -> Option<&mut StepView> {
        let i = *self.by_id.get(&id)?;
        self.steps.get_mut(i)
    }

    /// Takes in an event that happened at `at`.
    pub fn apply(&mut self, e: &Event, at: Instant) {
        self.start.get_or_insert(at);
        match e {
            Event::BuildStarted { steps, .. } => {
                self.start = Some(at);
                self.total = *steps;
            }
            Event::BuildFinished {
                duration, success, ..
            } => self.finished = Some((*duration, *success)),
            Event::StepStarted {
                id, place, text, ..
            } => {
                self.by_id.insert(*id, self.steps.len());
                self.steps.push(StepView {
                    header: header(place, text),
                    start: at,
                    end: None,
                    cached: false,
                    failed: None,
                    cancelled: false,
                    miss: None,
                    tail: VecDeque::new(),
                    blobs: BTreeMap::new(),
                });
            }
            Event::StepCached { id, .. } => {
                if let Some(s) = self.step(*id) {
                    s.cached = true;
                    s.end = Some(at);
                }
            }
            Event::CacheMiss { id, reasons, .. } => {
                if let Some(s) = self.step(*id) {
                    s.miss = Some(reasons.join("; "));
                }
            }
            Event::StepLog { id, data, .. } => {
                let lines = self.lines.push(*id, data);
                if let Some(s) = self.step(*id) {
                    for l in lines {
                        s.tail.push_back(l);
                        if s.tail.len() > TAIL {
                            s.tail.pop_front();
                        }
                    }
                }
            }
            Event::StepFinished {
                id,
                result,
                duration,
            } => {
                self.lines.flush(*id);
                if let Some(s) = self.step(*id) {
                    // The engine's own measure of the step wins.
                    s.end = Some(s.start + *duration);
                    s.cancelled = *result == StepResult::Cancelled;
                }
            }
            Event::StepFailed {
                id,
                error,
                last_lines,
                duration,
            } => {
                self.lines.flush(*id);
                if let Some(s) = self.step(*id) {
                    s.end = Some(s.start + *duration);
                    s.failed = Some((error.clone(), last_lines.clone()));
                }
            }
            Event::Blob {
                id,
                digest,
                done,
                total,
                ..
            } => {
                if let Some(s) = self.step(*id) {
                    s.blobs.insert(digest.clone(), (*done, *total));
                }
            }
            Event::Warning { message, .. } => self.warnings.push(message.clone()),
        }
    }

    /// Whether any step is still running (the timers need redrawing).
    pub fn running(&self) -> bool {
        self.steps.iter().any(|s| s.end.is_none())
    }

    /// The view at `now`, `width` columns wide and at most `height` lines
    /// (older lines are dropped first; 0: no limit).
    pub fn frame(&self, now: Instant, width: usize, height: usize) -> Vec<String> {
        let start = self.start.unwrap_or(now);
        let done = self.steps.iter().filter(|s| s.end.is_some()).count();
        let total = self.total.max(self.steps.len());
        let (elapsed, suffix) = match self.finished {
            Some((d, true)) => (d, " FINISHED"),
            Some((d, false)) => (d, " FAILED"),
            None => (now.saturating_duration_since(start), ""),
        };
        let mut out = vec![format!(
            "[+] Building {} ({done}/{total}){suffix}",
            fmt_secs(elapsed)
        )];
        let mut body: Vec<String> = Vec::new();
        for s in &self.steps {
            let mark = if s.cached {
                "CACHED "
            } else if s.failed.is_some() {
                "ERROR "
            } else if s.cancelled {
                "CANCELED "
            } else {
                ""
            };
            let took = s.end.unwrap_or(now).saturating_duration_since(s.start);
            body.push(row(
                &format!(" => {mark}{}", s.header),
                &fmt_secs(took),
                width,
            ));
            if s.end.is_some() && s.failed.is_none() {
                continue;
            }
            if let Some(m) = &s.miss {
                body.push(cut(&format!(" => => cache miss: {m}"), width));
            }
            for (d, (got, all)) in &s.blobs {
                let short = d
                    .strip_prefix("sha256:")
                    .and_then(|h| h.get(..12))
                    .unwrap_or(d);
                body.push(cut(
                    &format!(
                        " => => sha256:{short} {} / {}",
                        fmt_bytes(*got),
                        fmt_bytes(*all)
                    ),
                    width,
                ));
            }
            match &s.failed {
                Some((error, last)) => {
                    for l in last.iter().rev().take(TAIL).rev() {
                        body.push(cut(&format!(" => => # {l}"), width));
                    }
                    body.push(cut(&format!(" => ERROR: {error}"), width));
                }
                None => {
                    for l in &s.tail {
                        body.push(cut(&format!(" => => # {l}"), width));
                    }
                }
            }
        }
        for w in &self.warnings {
            body.push(cut(&format!("WARN: {w}"), width));
        }
        if height > 1 && body.len() > height - 1 {
            body.drain(..body.len() - (height - 1));
        }
        out.extend(body);
        out
    }
}

/// `left` padded so `right` ends at column `width`; `left` is cut first.
fn row(left: &str, right: &str, width: usize) -> String {
    let room = width.saturating_sub(right.len() + 1).max(10);
    let left = cut(left, room);
    let pad = room.saturating_sub(left.chars().count());
    format!("{left}{} {right}", " ".repeat(pad))
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        s.chars().take(width).collect()
    }
}

struct Live {
    state: TtyState,
    out: Box<dyn Write + Send>,
    drawn: usize,
    dirty: bool,
    width: usize,
    height: usize,
}

impl Live {
    fn draw(&mut self, height: usize) {
        let frame = self.state.frame(Instant::now(), self.width, height);
        let mut buf = String::new();
        if self.drawn > 0 {
            // Back to the top of the previous frame, then clear below.
            buf.push_str(&format!("\x1b[{}A\r\x1b[J", self.drawn));
        }
        for l in &frame {
            buf.push_str(l);
            buf.push('\n');
        }
        self.drawn = frame.len();
        self.dirty = false;
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }
}

/// The live renderer: events update the state, a ticker redraws it.
pub struct Tty {
    live: Arc<Mutex<Live>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

fn lock(live: &Mutex<Live>) -> std::sync::MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tty {
    /// Starts redrawing on `out`, a terminal of `width` × `height`.
    pub fn start(out: Box<dyn Write + Send>, width: usize, height: usize) -> Tty {
        let live = Arc::new(Mutex::new(Live {
            state: TtyState::new(),
            out,
            drawn: 0,
            dirty: true,
            width,
            height,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let live = live.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kiln-progress".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        let mut l = lock(&live);
                        // Timers tick while steps run; otherwise only
                        // news is worth a redraw.
                        if l.dirty || l.state.running() {
                            let h = l.height;
                            l.draw(h);
                        }
                    }
                })
                .ok()
        };
        Tty { live, stop, ticker }
    }

    /// Records an event (drawn at the next tick).
    pub fn event(&self, e: &Event) {
        let mut l = lock(&self.live);
        l.state.apply(e, Instant::now());
        l.dirty = true;
    }

    /// Stops the ticker and draws the whole final view (no height limit).
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        lock(&self.live).draw(0);
    }
}

/// The terminal's columns and rows (80×24 when unknown).
pub fn terminal_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (usize::from(w.ws_col), usize::from(w.ws_row)),
        _ => (80, 24),
    }
}
