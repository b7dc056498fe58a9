//! Build secrets and SSH agents for `RUN --mount=type=secret|ssh`.
//!
//! They live on the RUN executor ([`super::run::SandboxRunner`]), never in
//! [`super::BuildOptions`] or a [`super::RunRequest`], so nothing about
//! their values can reach a cache key, the image config or its history (as
//! with BuildKit, changing a secret's content does not invalidate the
//! cache). For each step the values are staged in a private directory
//! (0700) under the build's scratch directory and removed after the step.
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::ssh_keys::{KeyAgent, SshKeyError};
use crate::sandbox::IdMap;

/// A bad `--secret`/`--ssh` value, or a secret or agent that cannot be
/// used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The flag's value does not parse.
    #[error("{flag} {value:?}: {reason}")]
    Spec {
        /// `--secret` or `--ssh`.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret's file cannot be read.
    #[error("secret {id}: {path}: {source}")]
    Read {
        /// The secret id.
        id: String,
        /// Its file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An ssh id's key files cannot be served.
    #[error(transparent)]
    SshKeys(#[from] SshKeyError),
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file, read when a step mounts it.
    File(PathBuf),
    /// A host environment variable (by name), read when a step mounts it;
    /// unset means the secret is missing.
    Env(String),
}

/// The agent behind one ssh id.
#[derive(Debug, Clone)]
enum AgentSource {
    /// The user's agent socket.
    Socket(PathBuf),
    /// kiln's private agent holding the id's key files; shared by the
    /// store's clones, stopped when the last one is dropped.
    Keys(Arc<KeyAgent>),
}

/// The secrets and SSH agents a build may expose to RUN steps, by id.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, SecretSource>,
    agents: BTreeMap<String, AgentSource>,
}

impl SecretStore {
    /// No secrets, no agents.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one `--secret` value as buildx reads it:
    /// `id=ID[,src|source=PATH][,env=VAR][,type=file|env]`. With neither
    /// `src` nor `env`, the environment variable `ID` is used when it is
    /// set, else the file `ID`. A file must exist now.
    pub fn add_secret_spec(&mut self, value: &str) -> Result<(), SecretError> {
        let bad = |reason: String| SecretError::Spec {
            flag: "--secret",
            value: value.to_string(),
            reason,
        };
        let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
        for field in value.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                return Err(bad(format!(
                    "invalid field '{field}' must be a key=value pair"
                )));
            };
            match k.to_ascii_lowercase().as_str() {
                "type" if v == "file" || v == "env" => typ = Some(v.to_string()),
                "type" => return Err(bad(format!("unsupported secret type {v:?}"))),
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                _ => return Err(bad(format!("unexpected key '{k}' in '{field}'"))),
            }
        }
        if typ.as_deref() == Some("env") && env.is_none() {
            env = src.take();
        }
        let id = match id {
            Some(i) if !i.is_empty() => i,
            _ => return Err(bad("secret id missing (id=ID)".into())),
        };
        let source = match (src, env) {
            (Some(_), Some(_)) => return Err(bad("both src and env can't be set".into())),
            (Some(p), None) => SecretSource::File(PathBuf::from(p)),
            (None, Some(e)) => SecretSource::Env(e),
            (None, None) if typ.as_deref() != Some("file") && std::env::var_os(&id).is_some() => {
                SecretSource::Env(id.clone())
            }
            (None, None) => SecretSource::File(PathBuf::from(&id)),
        };
        if let SecretSource::File(p) = &source {
            std::fs::metadata(p).map_err(|e| SecretError::Read {
                id: id.clone(),
                path: p.clone(),
                source: e,
            })?;
        }
        self.secrets.insert(id, source);
        Ok(())
    }

    /// Adds one `--ssh` value as buildx reads it: `default` or `ID` (the
    /// agent at `$SSH_AUTH_SOCK`), or `ID=PATH[,PATH…]` where a path that is
    /// a socket is an agent (one per id) and any other path a private key
    /// file. Key files are loaded now into a private agent (see
    /// [`KeyAgent`]); a missing, unreadable, malformed or
    /// passphrase-protected one fails naming it. A later value for the same
    /// id replaces the earlier one.
    pub fn add_ssh_spec(&mut self, value: &str) -> Result<(), SecretError> {
        let bad = |reason: String| SecretError::Spec {
            flag: "--ssh",
            value: value.to_string(),
            reason,
        };
        let (id, paths) = match value.split_once('=') {
            Some((id, p)) => (id, p.split(',').filter(|s| !s.is_empty()).collect()),
            None => (value, Vec::new()),
        };
        if id.is_empty() {
            return Err(bad("missing id".into()));
        }
        let paths: Vec<PathBuf> = match paths.as_slice() {
            [] => vec![std::env::var_os("SSH_AUTH_SOCK")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    bad("SSH_AUTH_SOCK is not set; give a socket or key files: ID=PATH".into())
                })?],
            given => given.iter().map(PathBuf::from).collect(),
        };
        let (mut sockets, mut keys) = (Vec::new(), Vec::new());
        for path in paths {
            // Followed like buildx's stat: a link to a socket is a socket.
            let meta = std::fs::metadata(&path).map_err(|e| SshKeyError::Read {
                id: id.to_string(),
                path: path.clone(),
                source: e,
            })?;
            if meta.file_type().is_socket() {
                sockets.push(path);
            } else {
                keys.push(path);
            }
        }
        match (sockets.pop(), keys.is_empty()) {
            (Some(_), _) if !sockets.is_empty() => Err(bad("only one agent socket per id".into())),
            (Some(_), false) => Err(bad(
                "an agent socket and key files cannot be given for the same id".into(),
            )),
            (Some(socket), true) => {
                self.insert_agent(id, socket);
                Ok(())
            }
            (None, _) => self.insert_agent_keys(id, &keys),
        }
    }

    /// Adds (or replaces) secret `id`.
    pub fn insert_secret(&mut self, id: &str, source: SecretSource) {
        self.secrets.insert(id.to_string(), source);
    }

    /// Adds (or replaces) the agent socket of ssh id `id`.
    pub fn insert_agent(&mut self, id: &str, socket: PathBuf) {
        self.agents
            .insert(id.to_string(), AgentSource::Socket(socket));
    }

    /// Starts a private agent holding the private keys in `keys` and makes
    /// it (or replaces) the agent of ssh id `id`. It runs until the store
    /// and all its clones are dropped, and dies with the thread that called
    /// this (see [`KeyAgent`]).
    pub fn insert_agent_keys(&mut self, id: &str, keys: &[PathBuf]) -> Result<(), SecretError> {
        let agent = KeyAgent::start(id, keys)?;
        self.agents
            .insert(id.to_string(), AgentSource::Keys(Arc::new(agent)));
        Ok(())
    }

    /// The value of secret `id`; `None` when the build was not given it
    /// (or its environment variable is unset).
    pub fn read_secret(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError> {
        match self.secrets.get(id) {
            None => Ok(None),
            Some(SecretSource::Env(var)) => Ok(std::env::var_os(var).map(|v| {
                use std::os::unix::ffi::OsStringExt;
                v.into_vec()
            })),
            Some(SecretSource::File(p)) => {
                std::fs::read(p).map(Some).map_err(|e| SecretError::Read {
                    id: id.to_string(),
                    path: p.clone(),
                    source: e,
                })
            }
        }
    }

    /// The agent socket of ssh id `id`, if the build was given one.
    pub fn agent(&self, id: &str) -> Option<&Path> {
        self.agents.get(id).map(|a| match a {
            AgentSource::Socket(p) => p.as_path(),
            AgentSource::Keys(agent) => agent.socket(),
        })
    }

    /// True when ssh id `id` is the user's own agent socket, which steps
    /// may only list and sign with, as in BuildKit; kiln's private agent
    /// for key files is the build's own.
    pub fn agent_is_users(&self, id: &str) -> bool {
        matches!(self.agents.get(id), Some(AgentSource::Socket(_)))
    }

    /// True when no secret and no agent were given.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.agents.is_empty()
    }
}

/// What one step was given: the private directory its secret files and
/// agent sockets live in, and the agent proxies serving them. Dropping it
/// stops the proxies and removes the directory.
pub(super) struct StepSecrets {
    dir: PathBuf,
    created: bool,
    idmap: IdMap,
    counter: usize,
    proxies: Vec<AgentProxy>,
}

impl StepSecrets {
    /// Nothing staged yet; `dir` is created (0700) on first use.
    pub(super) fn new(dir: PathBuf, idmap: &IdMap) -> Self {
        StepSecrets {
            dir,
            created: false,
            idmap: idmap.clone(),
            counter: 0,
            proxies: Vec::new(),
        }
    }

    fn next_path(&mut self, what: &str) -> Result<PathBuf, String> {
        if !self.created {
            std::fs::create_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
            self.created = true;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        }
        self.counter += 1;
        Ok(self.dir.join(format!("{what}{}", self.counter)))
    }

    /// Writes a secret's value as a file owned by container `uid`:`gid`
    /// with `mode`; returns its host path.
    pub(super) fn file(
        &mut self,
        id: &str,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<PathBuf, String> {
        let path = self.next_path("secret")?;
        let err = |e: std::io::Error| format!("secret {id}: {}: {e}", path.display());
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(err)?;
            f.write_all(data).map_err(err)?;
        }
        self.give(&path, uid, gid, mode)
            .map_err(|e| format!("secret {id}: {e}"))?;
        Ok(path)
    }

    /// A socket forwarding every connection to the agent at `upstream`,
    /// owned by container `uid`:`gid` with `mode`; returns its host path.
    pub(super) fn agent(
        &mut self,
        id: &str,
        upstream: &Path,
        uid: u32,
        gid: u32,
        mode: u32,
        read_only: bool,
    ) -> Result<PathBuf, String> {
        let path = self.next_path("agent")?;
        let proxy = AgentProxy::start(&path, upstream, read_only)
            .map_err(|e| format!("ssh {id}: {}: {e}", path.display()))?;
        self.proxies.push(proxy);
        self.give(&path, uid, gid, mode)
            .map_err(|e| format!("ssh {id}: {e}"))?;
        Ok(path)
    }

    /// Sets `mode`, then gives `path` to container `uid`:`gid` (inside the
    /// user namespace when the host ids are subordinate ones).
    fn give(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
        let mode = mode & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (hu, hg) = match (self.idmap.host_uid(uid), self.idmap.host_gid(gid)) {
            (Some(u), Some(g)) => (u, g),
            _ => {
                return Err(format!(
                    "{uid}:{gid} is not mapped into the build's user namespace"
                ))
            }
        };
        // SAFETY: geteuid/getegid have no preconditions.
        let (me, mg) = unsafe { (libc::geteuid(), libc::getegid()) };
        if (hu, hg) == (me, mg) {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(hu), Some(hg))
            .map_err(|e| e.to_string())
            .or_else(|e| {
                crate::sandbox::chown_in_userns(
                    &self.idmap,
                    &[(path.to_path_buf(), uid, gid, Some(mode))],
                )
                .map_err(|e2| format!("{}: {e}; in the user namespace: {e2}", path.display()))
            })
    }
}

impl Drop for StepSecrets {
    fn drop(&mut self) {
        for p in &mut self.proxies {
            p.stop();
        }
        if self.created && std::fs::remove_dir_all(&self.dir).is_err() {
            let _ = crate::sandbox::remove_tree(&self.idmap, &self.dir);
        }
    }
}

/// Forwards connections from a socket in the step's private directory to
/// the user's agent, so the step sees a socket with the owner and mode its
/// mount asks for without touching the user's own socket.
struct AgentProxy {
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AgentProxy {
    /// A proxy at `path` to the agent at `upstream`; with `read_only`, a
    /// step can list the agent's keys and sign with them, nothing else.
    fn start(path: &Path, upstream: &Path, read_only: bool) -> std::io::Result<AgentProxy> {
        let listener = UnixListener::bind(path)?;
        let accepting = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, up) = (stop.clone(), upstream.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("kiln-ssh-agent".into())
            .spawn(move || loop {
                let conn = accepting.accept();
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                match conn {
                    Ok((client, _)) => {
                        if let Ok(agent) = UnixStream::connect(&up) {
                            if read_only {
                                forward_read_only(client, agent);
                            } else {
                                forward(client, agent);
                            }
                        }
                    }
                    // E.g. out of descriptors: do not spin.
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            })?;
        Ok(AgentProxy {
            listener,
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop: shutting a listening socket down makes a
        // blocked accept return (connecting to it would not do, the socket
        // may now belong to a container id we cannot connect as).
        // SAFETY: shutdown on a descriptor we own.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between a step's connection and the agent on two
/// threads; each ends when its side closes (the step's processes are all
/// gone once the step ends).
fn forward(client: UnixStream, agent: UnixStream) {
    let (Ok(c2), Ok(a2)) = (client.try_clone(), agent.try_clone()) else {
        return;
    };
    let pump = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    };
    let _ = std::thread::Builder::new()
        .name("kiln-ssh-fwd".into())
        .spawn(pump(client, agent));
    let _ = std::thread::Builder::new()
        .name("kiln-ssh-fwd".into())
        .spawn(pump(a2, c2));
}

/// ssh-agent protocol message types a read-only forward lets through:
/// SSH_AGENTC_REQUEST_IDENTITIES and SSH_AGENTC_SIGN_REQUEST.
const AGENT_READ_REQUESTS: [u8; 2] = [11, 13];
/// SSH_AGENT_FAILURE, the answer to anything else.
const AGENT_FAILURE: u8 = 5;
/// OpenSSH's own limit on one agent message.
const AGENT_MAX_MESSAGE: u32 = 256 * 1024;

/// Relays a step's requests to the user's agent one at a time, answering
/// those that would change or lock it (adding or removing keys, locking,
/// extensions) with a failure, as BuildKit's read-only agent does: a step
/// may use the user's keys, not alter the agent the user's session relies
/// on. Ends when either side closes or breaks the protocol.
fn forward_read_only(mut client: UnixStream, mut agent: UnixStream) {
    let mut relay = move || -> std::io::Result<()> {
        while let Some(request) = read_agent_message(&mut client)? {
            if request
                .first()
                .is_some_and(|t| AGENT_READ_REQUESTS.contains(t))
            {
                write_agent_message(&mut agent, &request)?;
                match read_agent_message(&mut agent)? {
                    Some(reply) => write_agent_message(&mut client, &reply)?,
                    None => break,
                }
            } else {
                write_agent_message(&mut client, &[AGENT_FAILURE])?;
            }
        }
        Ok(())
    };
    let _ = std::thread::Builder::new()
        .name("kiln-ssh-fwd".into())
        .spawn(move || {
            let _ = relay();
        });
}

/// One length-prefixed message; `None` at a clean end of stream.
fn read_agent_message(from: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > AGENT_MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "ssh-agent message of {len} bytes"
        )));
    }
    let mut body = vec![0u8; len as usize];
    from.read_exact(&mut body)?;
    Ok(Some(body))
}

fn write_agent_message(to: &mut UnixStream, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    to.write_all(&len.to_be_bytes())?;
    to.write_all(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs_follow_buildx() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "v").unwrap();
        let mut s = SecretStore::new();
        s.add_secret_spec(&format!("id=a,src={}", f.display()))
            .unwrap();
        s.add_secret_spec(&format!("id=b,source={},type=file", f.display()))
            .unwrap();
        s.add_secret_spec("id=c,env=KILN_TEST_SECRET_UNSET_VAR")
            .unwrap();
        s.add_secret_spec("id=d,src=PATH,type=env").unwrap();
        s.add_secret_spec("id=PATH").unwrap();
        assert_eq!(s.read_secret("a").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.read_secret("b").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.read_secret("c").unwrap(), None, "unset env: missing");
        assert_eq!(s.secrets.get("d"), Some(&SecretSource::Env("PATH".into())));
        assert_eq!(
            s.secrets.get("PATH"),
            Some(&SecretSource::Env("PATH".into()))
        );
        assert_eq!(s.read_secret("nope").unwrap(), None);
        for (bad, want) in [
            ("src=x", "secret id missing"),
            ("id=x,src=a,env=B", "both src and env"),
            ("id=x,type=bogus", "unsupported secret type"),
            ("id=x,color=red", "unexpected key 'color'"),
            ("id", "must be a key=value pair"),
            ("id=kiln-no-such-file-or-var", "kiln-no-such-file-or-var"),
        ] {
            let e = s.add_secret_spec(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn ssh_specs_tell_sockets_from_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _l = UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (scripts/setup-test-env installs openssh-client)");
        assert!(status.success());
        let mut s = SecretStore::new();
        s.add_ssh_spec(&format!("default={}", sock.display()))
            .unwrap();
        assert_eq!(s.agent("default"), Some(sock.as_path()));
        s.add_ssh_spec(&format!("git={}", key.display())).unwrap();
        let private = s.agent("git").unwrap().to_path_buf();
        assert!(private != key && private.exists(), "{}", private.display());
        // A clone shares the agent; it stops with the last one.
        let clone = s.clone();
        drop(s);
        assert!(clone.agent("git").unwrap().exists());
        drop(clone);
        assert!(!private.exists());
        let mut s = SecretStore::new();
        for (bad, want) in [
            (
                format!("x={},{}", sock.display(), sock.display()),
                "one agent socket per id",
            ),
            (
                format!("x={},{}", sock.display(), key.display()),
                "an agent socket and key files",
            ),
            ("x=/nonexistent/k".to_string(), "ssh x: /nonexistent/k: "),
            ("=/x".to_string(), "missing id"),
        ] {
            let e = s.add_ssh_spec(&bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert!(s.is_empty());
    }

    #[test]
    fn step_files_are_private_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (idmap, _) = IdMap::detect();
        let stage = dir.path().join("step");
        let path = {
            let mut st = StepSecrets::new(stage.clone(), &idmap);
            let p = st.file("tok", b"hunter2", 0, 0, 0o400).unwrap();
            let dmode = std::fs::metadata(&stage).unwrap().permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
            let fmode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(fmode & 0o777, 0o400);
            assert_eq!(std::fs::read(&p).unwrap(), b"hunter2");
            p
        };
        assert!(!path.exists() && !stage.exists());
    }

    #[test]
    fn agent_proxy_forwards_and_stops() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up.sock");
        let listener = UnixListener::bind(&up).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
        });
        let (idmap, _) = IdMap::detect();
        let stage = dir.path().join("step");
        let mut st = StepSecrets::new(stage.clone(), &idmap);
        let p = st.agent("default", &up, 0, 0, 0o600, false).unwrap();
        let mut c = UnixStream::connect(&p).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        echo.join().unwrap();
        drop(st);
        assert!(!stage.exists());
        assert!(UnixStream::connect(&p).is_err());
    }

    #[test]
    fn a_read_only_agent_forward_lists_and_signs_but_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up.sock");
        let listener = UnixListener::bind(&up).unwrap();
        // A stand-in agent: answers each message with 6 (SSH_AGENT_SUCCESS)
        // followed by its type, and reports the types it saw.
        let agent = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            while let Some(m) = read_agent_message(&mut c).unwrap() {
                seen.push(m[0]);
                write_agent_message(&mut c, &[6, m[0]]).unwrap();
            }
            seen
        });
        let (idmap, _) = IdMap::detect();
        let mut st = StepSecrets::new(dir.path().join("step"), &idmap);
        let p = st.agent("default", &up, 0, 0, 0o600, true).unwrap();
        let mut c = UnixStream::connect(&p).unwrap();
        // list, remove all, sign, lock, add, extension
        let mut replies = Vec::new();
        for t in [11u8, 19, 13, 22, 17, 27] {
            write_agent_message(&mut c, &[t, 0, 0]).unwrap();
            replies.push(read_agent_message(&mut c).unwrap().unwrap());
        }
        let failure = vec![AGENT_FAILURE];
        assert_eq!(
            replies,
            vec![
                vec![6, 11],
                failure.clone(),
                vec![6, 13],
                failure.clone(),
                failure.clone(),
                failure
            ]
        );
        drop(c);
        assert_eq!(agent.join().unwrap(), vec![11, 13]);
    }
}
