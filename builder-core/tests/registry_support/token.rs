//! A token server for Distribution's `auth: token` mode: it checks basic
//! credentials and returns an RS256 JWT (signed with the openssl CLI) whose
//! `x5c` header carries the certificate the registry trusts.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;

/// The refresh token (`identitytoken`) the server accepts.
pub const REFRESH: &str = "kiln-refresh-token";

pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    pub requests: Arc<AtomicUsize>,
    pub service: String,
    pub issuer: String,
    _dir: tempfile::TempDir,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenServer {
    pub fn start(user: &str, pass: &str) -> TokenServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=kiln token signer",
            ])
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-in", "cert.pem", "-outform", "DER"])
            .current_dir(dir.path())
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let key = dir.path().join("key.pem");
        let counter = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut authorized = false;
                let mut content_length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") && v.trim() == expected {
                            authorized = true;
                        }
                        if k.eq_ignore_ascii_case("content-length") {
                            content_length = v.trim().parse().unwrap_or(0).min(1 << 16);
                        }
                    }
                }
                let target = line.split(' ').nth(1).unwrap_or("");
                let mut url = url::Url::parse(&format!("http://x{target}")).expect("url");
                if line.starts_with("POST ") {
                    // OAuth2 refresh-token grant: the form carries the scopes.
                    let len = content_length;
                    let mut body = vec![0u8; len];
                    let _ = std::io::Read::read_exact(&mut reader, &mut body);
                    let form = String::from_utf8_lossy(&body).into_owned();
                    authorized = form
                        .split('&')
                        .any(|kv| kv == format!("refresh_token={REFRESH}"));
                    url.set_query(Some(&form));
                }
                let mut access = Vec::new();
                for (k, v) in url.query_pairs() {
                    if k != "scope" {
                        continue;
                    }
                    let Some((kind, rest)) = v.split_once(':') else {
                        continue;
                    };
                    let Some((name, actions)) = rest.rsplit_once(':') else {
                        continue;
                    };
                    access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
                }
                let response = if authorized {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("time")
                        .as_secs();
                    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                    let claims = serde_json::json!({
                        "iss": "kiln-test-issuer", "sub": "kiln", "aud": "kiln-test",
                        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", counter.load(Ordering::SeqCst)),
                        "access": access,
                    });
                    let signing_input = format!(
                        "{}.{}",
                        b64url(header.to_string().as_bytes()),
                        b64url(claims.to_string().as_bytes())
                    );
                    let mut child = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&key)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .expect("openssl dgst");
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(signing_input.as_bytes())
                        .expect("sign input");
                    let sig = child.wait_with_output().expect("sign");
                    let token = format!("{signing_input}.{}", b64url(&sig.stdout));
                    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = conn.write_all(response.as_bytes());
            }
        });
        TokenServer {
            port,
            cert: dir.path().join("cert.pem"),
            requests,
            service: "kiln-test".into(),
            issuer: "kiln-test-issuer".into(),
            _dir: dir,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}
