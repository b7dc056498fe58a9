//! The HTTP side: TLS, plain HTTP for loopback and `--insecure-registry`
//! hosts, mirrors, authentication and bounded retries. Blocking (`ureq`)
//! because the builder is thread-based; concurrency is a few worker threads.
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use super::auth::{parse_challenges, parse_token, Challenge, Token};
use super::credentials::{Credential, Credentials};
use super::error::{Error, Result};
use super::reference::registry_api_host;

/// Settings shared by every registry operation (the CLI's global flags).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `--registry-mirror REGISTRY=HOST[:PORT]`: tried in order before the registry itself.
    pub mirrors: Vec<(String, String)>,
    /// `--insecure-registry HOST`: plain HTTP allowed (loopback always is).
    pub insecure: Vec<String>,
    /// `--registry-ca FILE`: extra trusted CA certificates (PEM).
    pub ca_files: Vec<PathBuf>,
    /// Where credentials come from.
    pub credentials: Credentials,
    /// Attempts per request on connection failures, 5xx and 429.
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt, capped at 2 s.
    pub backoff: Duration,
    /// Blobs transferred at once.
    pub parallel: usize,
    /// Blobs larger than this are pushed in chunks of this size.
    pub chunk_size: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            ca_files: Vec::new(),
            credentials: Credentials::from_env(),
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            parallel: 4,
            chunk_size: 32 << 20,
        }
    }
}

/// Parses a `--registry-mirror` value: `docker.io=mirror.example:5000`.
/// A bare `HOST` mirrors Docker Hub, as dockerd's flag does.
pub fn parse_mirror(value: &str) -> Result<(String, String)> {
    let (registry, host) = value.split_once('=').unwrap_or(("docker.io", value));
    let host = host.trim_end_matches('/');
    if registry.is_empty() || host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::InvalidMirror(value.to_string()));
    }
    let registry = if registry == "index.docker.io" {
        "docker.io"
    } else {
        registry
    };
    Ok((registry.to_string(), host.to_string()))
}

/// One host to talk to, as learnt from its `/v2/` answer.
#[derive(Default)]
struct HostState {
    /// `https://host` or `http://host`, once known.
    base: Option<String>,
    /// The authentication the host asked for.
    challenge: Option<Challenge>,
    /// Tokens by scope set.
    tokens: HashMap<String, Token>,
    credential: Option<Option<Credential>>,
    /// Held while fetching a token, so parallel blob transfers wait for one
    /// token instead of each asking for its own.
    fetching: Arc<Mutex<()>>,
}

/// A registry client. Cheap to share between threads.
pub struct Client {
    agent: ureq::Agent,
    pub(crate) opts: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<Mutex<HostState>>>>,
}

/// A request body that can be produced again for a retry.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    Reader(&'a (dyn Fn() -> Result<(Box<dyn Read + Send + 'a>, u64)> + Sync)),
}

pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// Path and query (`/v2/...`) or an absolute URL (upload locations).
    pub path: String,
    pub headers: Vec<(&'a str, String)>,
    pub scopes: Vec<String>,
    pub body: Body<'a>,
    /// Overrides [`ClientOptions::max_attempts`] (a probe that has a fallback
    /// should fail fast).
    pub attempts: Option<u32>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, path: String, scopes: Vec<String>) -> Self {
        Request {
            method,
            path,
            headers: Vec::new(),
            scopes,
            body: Body::Empty,
            attempts: None,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// Builds a client: system roots plus the `--registry-ca` files.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        // The --registry-ca files are read now, so a bad one fails early.
        let mut extra = Vec::new();
        for file in &opts.ca_files {
            use rustls_pki_types::pem::PemObject;
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(file)
                .map_err(|e| Error::Tls(format!("{}: {e}", file.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Tls(format!("{}: {e}", file.display())))?;
            if certs.is_empty() {
                return Err(Error::Tls(format!(
                    "{}: no PEM certificates",
                    file.display()
                )));
            }
            // What the verifier's root store would refuse later.
            let mut check = rustls::RootCertStore::empty();
            for c in &certs {
                check
                    .add(c.clone())
                    .map_err(|e| Error::Tls(format!("{}: {e}", file.display())))?;
            }
            extra.extend(certs);
        }
        let tls = super::tls::client_config(extra)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .max_idle_connections_per_host(opts.parallel.max(1) * 2)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .redirects(5)
            .build();
        Ok(Client {
            agent,
            opts,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// The hosts to try for `registry`: its mirrors, then itself.
    pub fn endpoints(&self, registry: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .opts
            .mirrors
            .iter()
            .filter(|(r, _)| r == registry)
            .map(|(_, h)| h.clone())
            .collect();
        v.push(registry_api_host(registry).to_string());
        v
    }

    fn host(&self, host: &str) -> Arc<Mutex<HostState>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.entry(host.to_string()).or_default().clone()
    }

    fn plain_http_allowed(&self, host: &str) -> bool {
        is_loopback(host) || self.opts.insecure.iter().any(|h| h == host)
    }

    fn credential(&self, host: &str) -> Result<Option<Credential>> {
        let state = self.host(host);
        if let Some(c) = &state.lock().unwrap_or_else(|e| e.into_inner()).credential {
            return Ok(c.clone());
        }
        let c = self.opts.credentials.lookup(host)?;
        state.lock().unwrap_or_else(|e| e.into_inner()).credential = Some(c.clone());
        Ok(c)
    }

    /// Overrides the credential for `host` (used by `login` to check one).
    pub fn set_credential(&self, host: &str, cred: Option<Credential>) {
        let state = self.host(host);
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.credential = Some(cred);
        s.tokens.clear();
    }

    /// Finds the scheme and authentication of `host` with `GET /v2/`.
    fn base(&self, host: &str) -> Result<String> {
        let state = self.host(host);
        if let Some(b) = &state.lock().unwrap_or_else(|e| e.into_inner()).base {
            return Ok(b.clone());
        }
        // Explicit scheme on a mirror value wins.
        let (schemes, bare): (Vec<&str>, &str) = if let Some(h) = host.strip_prefix("http://") {
            (vec!["http"], h)
        } else if let Some(h) = host.strip_prefix("https://") {
            (vec!["https"], h)
        } else if self.plain_http_allowed(host) {
            (vec!["https", "http"], host)
        } else {
            (vec!["https"], host)
        };
        let mut errors = Vec::new();
        let fallback = schemes.len() > 1;
        for scheme in schemes {
            let base = format!("{scheme}://{bare}");
            let url = format!("{base}/v2/");
            let mut probe = Request::new("GET", url.clone(), vec![]);
            if fallback && scheme == "https" {
                probe.attempts = Some(1);
            }
            match self.call_with_retries(&probe, &url, None) {
                Ok(resp) => {
                    let challenge = if resp.status() == 401 {
                        pick_challenge(&resp)
                    } else {
                        None
                    };
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    s.base = Some(base.clone());
                    s.challenge = challenge;
                    return Ok(base);
                }
                Err(e) => {
                    let text = e.to_string();
                    errors.push(text.clone());
                    // The host speaks TLS but its certificate is not trusted:
                    // plain HTTP would only hide the real problem.
                    if text.contains("certificate") {
                        break;
                    }
                }
            }
        }
        Err(Error::Transport {
            url: host.to_string(),
            detail: errors.join("; "),
        })
    }

    /// Sends `req` to `host`, authenticating as the host asks and retrying
    /// transient failures. Any final HTTP status is returned, not an error.
    pub(crate) fn send(&self, host: &str, req: &Request) -> Result<ureq::Response> {
        let base = self.base(host)?;
        let url = if req.path.starts_with("http://") || req.path.starts_with("https://") {
            req.path.clone()
        } else {
            format!("{base}{}", req.path)
        };
        let auth = self.authorization(host, &req.scopes, false)?;
        let resp = self.call_with_retries(req, &url, auth.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        // The registry wants (other) credentials: learn the challenge, maybe
        // with a wider scope, get a fresh token and try once more.
        let challenge = pick_challenge(&resp);
        let mut scopes = req.scopes.clone();
        if let Some(s) = challenge.as_ref().and_then(|c| c.params.get("scope")) {
            for scope in s.split(' ') {
                if !scopes.iter().any(|x| x == scope) {
                    scopes.push(scope.to_string());
                }
            }
        }
        {
            let state = self.host(host);
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.challenge = challenge;
        }
        let auth = self.authorization(host, &scopes, true)?;
        if auth.is_none() {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                detail: format!("{} {}: no credentials for {host}", req.method, url),
            });
        }
        let resp = self.call_with_retries(req, &url, auth.as_deref())?;
        if resp.status() == 401 {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                detail: error_detail(resp),
            });
        }
        Ok(resp)
    }

    /// The `Authorization` header for `scopes`, fetching a token if needed.
    fn authorization(&self, host: &str, scopes: &[String], fresh: bool) -> Result<Option<String>> {
        let state = self.host(host);
        let challenge = state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .challenge
            .clone();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let cred = self.credential(host)?;
        match challenge.scheme.as_str() {
            "basic" => Ok(match cred {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            }),
            "bearer" => {
                let mut sorted = scopes.to_vec();
                sorted.sort();
                let key = sorted.join(" ");
                let cached = |state: &Mutex<HostState>| {
                    let s = state.lock().unwrap_or_else(|e| e.into_inner());
                    s.tokens
                        .get(&key)
                        .filter(|t| t.expires > Instant::now())
                        .map(|t| (format!("Bearer {}", t.token), t.expires))
                };
                let seen = cached(&state);
                if let (false, Some((header, _))) = (fresh, &seen) {
                    return Ok(Some(header.clone()));
                }
                let fetching = state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .fetching
                    .clone();
                let _guard = fetching.lock().unwrap_or_else(|e| e.into_inner());
                // Another thread may have fetched a new token while this one waited.
                if let Some((header, expires)) = cached(&state) {
                    if seen.as_ref().is_none_or(|(_, e)| *e != expires) {
                        return Ok(Some(header));
                    }
                }
                let token = self.fetch_token(host, &challenge, &sorted, cred.as_ref())?;
                let header = format!("Bearer {}", token.token);
                state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .tokens
                    .insert(key, token);
                Ok(Some(header))
            }
            _ => Ok(None),
        }
    }

    fn fetch_token(
        &self,
        host: &str,
        challenge: &Challenge,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<Token> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| Error::Unauthorized {
                host: host.to_string(),
                detail: "bearer challenge without realm".into(),
            })?;
        let mut url = url::Url::parse(realm).map_err(|e| Error::Unauthorized {
            host: host.to_string(),
            detail: format!("bad token realm {realm:?}: {e}"),
        })?;
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let resp = match cred {
            Some(Credential::IdentityToken { token, .. }) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("service", &service),
                    ("client_id", "kiln"),
                ];
                for s in scopes {
                    form.push(("scope", s));
                }
                let r = self.agent.request("POST", url.as_str()).send_form(&form);
                flatten(r)
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if !service.is_empty() {
                        q.append_pair("service", &service);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = cred {
                        q.append_pair("account", username);
                    }
                }
                let mut req = Request::new("GET", url.to_string(), vec![]);
                if let Some(Credential::Basic { username, password }) = cred {
                    req.headers
                        .push(("Authorization", basic(username, password)));
                }
                self.call_with_retries(&req, url.as_str(), None)
            }
        }?;
        let status = resp.status();
        if status != 200 {
            return Err(Error::Unauthorized {
                host: host.to_string(),
                detail: format!(
                    "token endpoint {realm}: HTTP {status}: {}",
                    error_detail(resp)
                ),
            });
        }
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| Error::Transport {
                url: realm.clone(),
                detail: e.to_string(),
            })?;
        parse_token(&body, Instant::now())
            .map(|(t, _)| t)
            .ok_or_else(|| Error::Unauthorized {
                host: host.to_string(),
                detail: format!("token endpoint {realm} sent no token"),
            })
    }

    /// One request with bounded retries on connection errors, 5xx and 429.
    fn call_with_retries(
        &self,
        req: &Request,
        url: &str,
        auth: Option<&str>,
    ) -> Result<ureq::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut r = self.agent.request(req.method, url);
            for (k, v) in &req.headers {
                r = r.set(k, v);
            }
            if let Some(a) = auth {
                r = r.set("Authorization", a);
            }
            let result = match &req.body {
                Body::Empty if matches!(req.method, "PUT" | "POST" | "PATCH") => {
                    flatten(r.set("Content-Length", "0").send_bytes(&[]))
                }
                Body::Empty => flatten(r.call()),
                Body::Bytes(b) => flatten(r.send_bytes(b)),
                Body::Reader(make) => {
                    let (reader, len) = make()?;
                    flatten(r.set("Content-Length", &len.to_string()).send(reader))
                }
            };
            let retry_after = match &result {
                Ok(resp) if resp.status() == 429 || resp.status() >= 500 => resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                Ok(_) => return result,
                Err(_) => None,
            };
            if attempt >= req.attempts.unwrap_or(self.opts.max_attempts).max(1) {
                return result;
            }
            let backoff = self.opts.backoff * 2u32.saturating_pow(attempt - 1);
            let delay = retry_after.unwrap_or(backoff).min(Duration::from_secs(2));
            std::thread::sleep(delay);
        }
    }

    /// Checks `cred` against `registry` the way `docker login` does: a
    /// token (or an authenticated `/v2/`) must be granted.
    pub fn verify_login(&self, registry: &str, cred: &Credential) -> Result<()> {
        let host = registry_api_host(registry).to_string();
        self.set_credential(&host, Some(cred.clone()));
        self.base(&host)?;
        let challenge = self
            .host(&host)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .challenge
            .clone();
        match challenge {
            None => Ok(()),
            Some(c) if c.scheme == "bearer" => {
                self.fetch_token(&host, &c, &[], Some(cred)).map(|_| ())
            }
            Some(_) => {
                let resp = self.send(&host, &Request::new("GET", "/v2/".into(), vec![]))?;
                match resp.status() {
                    200..=299 => Ok(()),
                    _ => Err(Error::Unauthorized {
                        host,
                        detail: error_detail(resp),
                    }),
                }
            }
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn pick_challenge(resp: &ureq::Response) -> Option<Challenge> {
    let all: Vec<Challenge> = resp
        .all("www-authenticate")
        .iter()
        .flat_map(|h| parse_challenges(h))
        .collect();
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

/// ureq reports 4xx/5xx as errors; kiln looks at statuses itself.
fn flatten(r: std::result::Result<ureq::Response, ureq::Error>) -> Result<ureq::Response> {
    match r {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(_, resp)) => Ok(resp),
        Err(ureq::Error::Transport(t)) => Err(Error::Transport {
            url: t.url().map(|u| u.to_string()).unwrap_or_default(),
            detail: t.to_string(),
        }),
    }
}

/// The registry's error message (`{"errors":[{"message":...}]}`) or body text.
pub(crate) fn error_detail(resp: ureq::Response) -> String {
    let mut body = String::new();
    let _ = resp.into_reader().take(4096).read_to_string(&mut body);
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Errs>(&body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.trim().chars().take(200).collect(),
    }
}

/// Turns a non-success response into an error.
pub(crate) fn status_error(url: &str, resp: ureq::Response) -> Error {
    let status = resp.status();
    Error::Status {
        url: url.to_string(),
        status,
        detail: error_detail(resp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_and_loopback() {
        assert_eq!(
            parse_mirror("docker.io=127.0.0.1:5000").unwrap(),
            ("docker.io".into(), "127.0.0.1:5000".into())
        );
        assert_eq!(parse_mirror("mirror.example").unwrap().0, "docker.io");
        assert!(parse_mirror("docker.io=").is_err());
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:80"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.example"));
    }
}
