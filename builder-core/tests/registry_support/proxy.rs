//! A fault-injecting TCP proxy on loopback: it can refuse (close) new
//! connections, cut blob responses short, or flip a byte in one blob.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Faults {
    /// Close this many new connections at once.
    pub refuse: AtomicUsize,
    /// Cut this many blob GET responses after a few KiB of body.
    pub cut: AtomicUsize,
    /// Flip one byte in responses for this blob digest.
    pub corrupt: Mutex<Option<String>>,
    /// Blob requests that carried a Range header (resumes).
    pub ranged: AtomicUsize,
    /// Answer this many requests with 503 (or 429 when `throttle` is set) without forwarding.
    pub unavailable: AtomicUsize,
    /// Use 429 Too Many Requests instead of 503.
    pub throttle: std::sync::atomic::AtomicBool,
    /// Connections accepted.
    pub connections: AtomicUsize,
}

pub struct Proxy {
    pub port: u16,
    pub faults: Arc<Faults>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Cut,
    Corrupt,
}

impl Proxy {
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let faults = Arc::new(Faults::default());
        let f = faults.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                f.connections.fetch_add(1, Ordering::SeqCst);
                if f.refuse.load(Ordering::SeqCst) > 0 {
                    f.refuse.fetch_sub(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let f = f.clone();
                std::thread::spawn(move || relay(client, upstream, f));
            }
        });
        Proxy { port, faults }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn relay(client: TcpStream, upstream: TcpStream, faults: Arc<Faults>) {
    // The fault for the response to the latest request, and a counter that
    // tells the response side a new response has begun (no pipelining).
    let state = Arc::new(Mutex::new((Mode::Normal, 0u64)));
    let (mut c_read, mut u_write) = (
        client.try_clone().expect("clone"),
        upstream.try_clone().expect("clone"),
    );
    let mut c_reply = client.try_clone().expect("clone");
    let st = state.clone();
    let f = faults.clone();
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let text = String::from_utf8_lossy(&buf[..n.min(2048)]).into_owned();
            let is_request = ["GET ", "HEAD ", "PUT ", "POST ", "PATCH ", "DELETE "]
                .iter()
                .any(|m| text.starts_with(m));
            if is_request && f.unavailable.load(Ordering::SeqCst) > 0 {
                f.unavailable.fetch_sub(1, Ordering::SeqCst);
                let status = if f.throttle.load(Ordering::SeqCst) {
                    "429 Too Many Requests"
                } else {
                    "503 Service Unavailable"
                };
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nRetry-After: 0\r\nConnection: close\r\n\r\n");
                let _ = c_reply.write_all(reply.as_bytes());
                let _ = c_reply.shutdown(Shutdown::Both);
                break;
            }
            if is_request {
                let mut next = Mode::Normal;
                if text.starts_with("GET ") && text.contains("/blobs/sha256:") {
                    if text.to_ascii_lowercase().contains("\r\nrange:") {
                        f.ranged.fetch_add(1, Ordering::SeqCst);
                    }
                    let corrupt = f.corrupt.lock().expect("lock").clone();
                    if corrupt.is_some_and(|d| text.contains(&d)) {
                        next = Mode::Corrupt;
                    } else if f.cut.load(Ordering::SeqCst) > 0 {
                        next = Mode::Cut;
                    }
                }
                let mut s = st.lock().expect("lock");
                *s = (next, s.1 + 1);
            }
            if u_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = vec![0u8; 64 * 1024];
    let mut generation = 0u64;
    let mut current = Mode::Normal;
    let mut seen = 0usize;
    let mut head: Vec<u8> = Vec::new();
    let mut body_start: Option<usize> = None;
    loop {
        let n = match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (mode_now, gen_now) = *state.lock().expect("lock");
        if gen_now != generation {
            generation = gen_now;
            current = mode_now;
            seen = 0;
            head.clear();
            body_start = None;
        }
        let chunk = &mut buf[..n];
        if current != Mode::Normal {
            if body_start.is_none() {
                head.extend_from_slice(chunk);
                body_start = head
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4);
            }
            if let Some(start) = body_start {
                if current == Mode::Corrupt {
                    let target = start + 100;
                    if target >= seen && target < seen + n {
                        chunk[target - seen] ^= 0xff;
                        current = Mode::Normal;
                    }
                }
                // Only bodies longer than 4 KiB are cut; each cut uses one from the budget.
                if current == Mode::Cut
                    && seen + n > start + 4096
                    && faults.cut.load(Ordering::SeqCst) > 0
                {
                    faults.cut.fetch_sub(1, Ordering::SeqCst);
                    let keep = (start + 4096).saturating_sub(seen).min(n);
                    let _ = c_write.write_all(&chunk[..keep]);
                    break;
                }
            }
        }
        seen += n;
        if c_write.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = u_read.shutdown(Shutdown::Both);
    let _ = up.join();
}
