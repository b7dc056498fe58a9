//! Private key files for `--ssh ID=KEYFILE[,KEYFILE…]`, served by an
//! OpenSSH agent that only the build sees.
//!
//! buildx parses the keys itself and serves them from an in-memory
//! keyring; kiln has no crypto of its own, so it starts `ssh-agent -D` on a
//! socket in a private (0700) temporary directory and loads each key with
//! `ssh-add`. The agent is a child of kiln that dies with it
//! (`PR_SET_PDEATHSIG`) and is killed, reaped and its directory removed
//! when the [`KeyAgent`] is dropped. Steps reach it through the same
//! per-step proxy sockets as a user's own agent.
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// buildx reads at most this much of a key file; a private key is far
/// smaller.
const MAX_KEY_BYTES: u64 = 100 * 1024;
/// How long the agent may take to create its socket.
const AGENT_START: Duration = Duration::from_secs(10);
/// How long one `ssh-add` may take; it never prompts, so this only bounds
/// a wedged process.
const ADD_TIMEOUT: Duration = Duration::from_secs(30);

/// A key file that cannot be served, or an agent that cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum SshKeyError {
    /// The key file cannot be opened or read.
    #[error("ssh {id}: {path}: {source}")]
    Read {
        /// The ssh id.
        id: String,
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file holds no PEM or OpenSSH private key.
    #[error("ssh {id}: {path} is neither an agent socket nor a private key file{detail}")]
    NotAKey {
        /// The ssh id.
        id: String,
        /// The file.
        path: PathBuf,
        /// What `ssh-add` said, if it got that far (starts with ": ").
        detail: String,
    },
    /// The key is encrypted; kiln never prompts for a passphrase.
    #[error(
        "ssh {id}: {path} is passphrase-protected and kiln cannot ask for the passphrase: \
         add it to your agent (ssh-add {path}) and pass --ssh {id}=$SSH_AUTH_SOCK"
    )]
    Encrypted {
        /// The ssh id.
        id: String,
        /// The key file.
        path: PathBuf,
    },
    /// `ssh-agent` or `ssh-add` is not installed.
    #[error(
        "ssh {id}: key files need OpenSSH's {tool}, which is not installed: install \
         openssh-client, or load the keys into an agent and pass --ssh {id}=$SSH_AUTH_SOCK"
    )]
    ToolMissing {
        /// The ssh id.
        id: String,
        /// `ssh-agent` or `ssh-add`.
        tool: &'static str,
    },
    /// The private agent could not be started or a key not loaded.
    #[error("ssh {id}: {what}")]
    Agent {
        /// The ssh id.
        id: String,
        /// What went wrong, with the tool's own message.
        what: String,
    },
}

/// A private `ssh-agent` holding the keys of one ssh id. Dropping it kills
/// the agent, reaps it and removes its socket directory.
///
/// The agent is bound to the thread that starts it: Linux delivers
/// `PR_SET_PDEATHSIG` when that *thread* exits, so start it from a thread
/// that lives as long as the build (kiln's CLI uses its main thread).
#[derive(Debug)]
pub struct KeyAgent {
    child: Child,
    socket: PathBuf,
    // Dropped after the agent is reaped (field order), removing the socket.
    dir: tempfile::TempDir,
}

impl KeyAgent {
    /// Starts an agent for ssh id `id` and loads every key in `keys` into
    /// it, in order. Fails naming the file when one is missing, unreadable,
    /// not a private key or passphrase-protected; nothing is left running
    /// then.
    pub fn start(id: &str, keys: &[PathBuf]) -> Result<KeyAgent, SshKeyError> {
        let agent_err = |what: String| SshKeyError::Agent {
            id: id.to_string(),
            what,
        };
        // Read and check every file before starting anything.
        let mut files = Vec::with_capacity(keys.len());
        for path in keys {
            files.push(open_key(id, path)?);
        }
        // 0700 from the start: the socket inside is the keys.
        let dir = tempfile::Builder::new()
            .prefix("kiln-ssh-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| agent_err(format!("a private directory for its agent: {e}")))?;
        let socket = dir.path().join("agent.sock");
        let log_path = dir.path().join("agent.log");
        let log = File::create(&log_path)
            .map_err(|e| agent_err(format!("{}: {e}", log_path.display())))?;
        let mut cmd = Command::new("ssh-agent");
        cmd.arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        dies_with_kiln(&mut cmd, false);
        let child = cmd.spawn().map_err(|e| spawn_err(id, "ssh-agent", e))?;
        // From here on, dropping `agent` cleans everything up.
        let mut agent = KeyAgent { child, socket, dir };
        agent.wait_for_socket(id, &log_path)?;
        for (path, file) in keys.iter().zip(files) {
            agent.add(id, path, file)?;
        }
        Ok(agent)
    }

    /// The agent's socket, inside the private directory.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn wait_for_socket(&mut self, id: &str, log: &Path) -> Result<(), SshKeyError> {
        let started = Instant::now();
        loop {
            // Connectable, not just present: it binds before it listens.
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            let exited = match self.child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(e.to_string()),
            };
            let what = match exited {
                Some(status) => format!("ssh-agent exited ({status})"),
                None if started.elapsed() > AGENT_START => format!(
                    "ssh-agent did not create {} within {}s",
                    self.socket.display(),
                    AGENT_START.as_secs()
                ),
                None => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            let said = std::fs::read_to_string(log).unwrap_or_default();
            return Err(SshKeyError::Agent {
                id: id.to_string(),
                what: with_message(what, &said),
            });
        }
    }

    /// Loads one key, fed on stdin: as with buildx, the file's permissions
    /// do not matter (ssh-add refuses group- or world-readable key files
    /// given by name).
    fn add(&self, id: &str, path: &Path, key: File) -> Result<(), SshKeyError> {
        let agent_err = |what: String| SshKeyError::Agent {
            id: id.to_string(),
            what,
        };
        let log_path = self.dir.path().join("add.log");
        let log = File::create(&log_path)
            .map_err(|e| agent_err(format!("{}: {e}", log_path.display())))?;
        let mut cmd = Command::new("ssh-add");
        cmd.args(["-q", "-"])
            .env("SSH_AUTH_SOCK", &self.socket)
            // Never an askpass program, never a terminal prompt: an
            // encrypted key the check in `open_key` missed fails at once.
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::from(key))
            .stdout(Stdio::null())
            .stderr(log);
        dies_with_kiln(&mut cmd, true);
        let mut child = cmd.spawn().map_err(|e| spawn_err(id, "ssh-add", e))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < ADD_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(agent_err(format!(
                        "ssh-add {} did not finish within {}s",
                        path.display(),
                        ADD_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(agent_err(format!("ssh-add {}: {e}", path.display()))),
            }
        };
        if status.success() {
            return Ok(());
        }
        // It names the key "(stdin)"; our message names the file.
        let said = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .replace(" \"(stdin)\"", "");
        if said.contains("passphrase") {
            return Err(SshKeyError::Encrypted {
                id: id.to_string(),
                path: path.to_path_buf(),
            });
        }
        Err(SshKeyError::NotAKey {
            id: id.to_string(),
            path: path.to_path_buf(),
            detail: with_message(String::new(), &said),
        })
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a key file, checks that it holds an unencrypted private key and
/// rewinds it for `ssh-add`.
fn open_key(id: &str, path: &Path) -> Result<File, SshKeyError> {
    let read_err = |source: std::io::Error| SshKeyError::Read {
        id: id.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut text = Vec::new();
    (&mut file)
        .take(MAX_KEY_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    file.rewind().map_err(read_err)?;
    let not_a_key = |detail: &str| SshKeyError::NotAKey {
        id: id.to_string(),
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if text.len() as u64 > MAX_KEY_BYTES {
        return Err(not_a_key(": larger than 100 KiB"));
    }
    match key_kind(&String::from_utf8_lossy(&text)) {
        KeyKind::Plain => Ok(file),
        KeyKind::Encrypted => Err(SshKeyError::Encrypted {
            id: id.to_string(),
            path: path.to_path_buf(),
        }),
        KeyKind::None => Err(not_a_key("")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum KeyKind {
    Plain,
    Encrypted,
    None,
}

/// What the first PEM block naming a private key holds: the block types
/// buildx's parser accepts (`RSA`/`EC`/`DSA`/`OPENSSH PRIVATE KEY`,
/// PKCS#8 `PRIVATE KEY`) plus the encrypted forms it refuses.
fn key_kind(text: &str) -> KeyKind {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        match lines.next() {
            None => return KeyKind::None,
            Some(l) => {
                if let Some(label) = l
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                    .filter(|l| l.ends_with("PRIVATE KEY"))
                {
                    break label.to_string();
                }
            }
        }
    };
    if label == "ENCRYPTED PRIVATE KEY" {
        return KeyKind::Encrypted;
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for l in lines {
        if l == end {
            break;
        }
        // Legacy PEM encryption is announced in a header.
        if l.starts_with("Proc-Type:") && l.contains("ENCRYPTED") {
            return KeyKind::Encrypted;
        }
        if !l.contains(':') {
            body.push_str(l);
        }
    }
    if label == "OPENSSH PRIVATE KEY" && openssh_cipher(&body).is_some_and(|c| c != b"none") {
        return KeyKind::Encrypted;
    }
    KeyKind::Plain
}

/// The cipher name of an `openssh-key-v1` blob (base64 text); `none` for
/// an unencrypted key.
fn openssh_cipher(body: &str) -> Option<Vec<u8>> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let rest = blob.strip_prefix(b"openssh-key-v1\0")?;
    let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    rest.get(4..4usize.checked_add(len)?).map(<[u8]>::to_vec)
}

/// Makes the child die with kiln and, for `ssh-add`, leave kiln's
/// terminal: without a controlling terminal it cannot prompt on /dev/tty.
///
/// Debian installs ssh-agent set-group-id (`_ssh`), and exec'ing a setgid
/// program clears the parent-death signal; with `no_new_privs` the exec
/// grants no group, so the signal stays. The agent needs no group for a
/// socket in our own directory, and still makes itself non-dumpable.
fn dies_with_kiln(cmd: &mut Command, new_session: bool) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure makes only async-signal-safe system calls
    // (prctl, getppid, setsid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // kiln may have died before the prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if new_session && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn spawn_err(id: &str, tool: &'static str, e: std::io::Error) -> SshKeyError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SshKeyError::ToolMissing {
            id: id.to_string(),
            tool,
        }
    } else {
        SshKeyError::Agent {
            id: id.to_string(),
            what: format!("{tool}: {e}"),
        }
    }
}

/// `what` followed by a tool's trimmed message, if it said anything.
fn with_message(what: String, said: &str) -> String {
    let said = said.trim();
    match (what.is_empty(), said.is_empty()) {
        (_, true) => what,
        (true, false) => format!(": {said}"),
        (false, false) => format!("{what}: {said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen(dir: &Path, name: &str, pass: &str, format: &[&str]) -> PathBuf {
        let key = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", pass, "-C", name])
            .args(format)
            .arg("-f")
            .arg(&key)
            .status()
            .expect("ssh-keygen (scripts/setup-test-env installs openssh-client)");
        assert!(status.success());
        key
    }

    fn listed(socket: &Path) -> String {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", socket)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn key_kinds_are_told_apart_without_ssh_add() {
        let dir = tempfile::tempdir().unwrap();
        let text = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let openssh = text(keygen(dir.path(), "a", "", &[]));
        let openssh_enc = text(keygen(dir.path(), "b", "secret-pass", &[]));
        let pem = text(keygen(dir.path(), "c", "", &["-m", "PEM"]));
        let pem_enc = text(keygen(dir.path(), "d", "secret-pass", &["-m", "PEM"]));
        let pkcs8 = text(keygen(dir.path(), "e", "", &["-m", "PKCS8"]));
        let pkcs8_enc = text(keygen(dir.path(), "f", "secret-pass", &["-m", "PKCS8"]));
        assert_eq!(key_kind(&openssh), KeyKind::Plain);
        assert_eq!(key_kind(&pem), KeyKind::Plain);
        assert_eq!(key_kind(&pkcs8), KeyKind::Plain);
        assert_eq!(key_kind(&openssh_enc), KeyKind::Encrypted);
        assert_eq!(key_kind(&pem_enc), KeyKind::Encrypted, "{pem_enc}");
        assert_eq!(key_kind(&pkcs8_enc), KeyKind::Encrypted, "{pkcs8_enc}");
        let public = text(dir.path().join("a.pub"));
        assert_eq!(key_kind(&public), KeyKind::None);
        assert_eq!(key_kind(""), KeyKind::None);
        assert_eq!(
            key_kind("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n"),
            KeyKind::Plain,
            "garbage is left for ssh-add to refuse"
        );
    }

    #[test]
    fn an_agent_serves_its_keys_and_goes_away_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = keygen(dir.path(), "kiln-a", "", &[]);
        let b = keygen(dir.path(), "kiln-b", "", &["-m", "PEM"]);
        // World-readable: buildx does not care, nor does kiln.
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
        let agent = KeyAgent::start("default", &[a, b]).unwrap();
        let socket = agent.socket().to_path_buf();
        let private = socket.parent().unwrap().to_path_buf();
        let mode = PermissionsExt::mode(&std::fs::metadata(&private).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        let keys = listed(&socket);
        assert!(keys.contains("kiln-a (RSA)"), "{keys}");
        assert!(
            keys.contains("(RSA)") && keys.lines().count() == 2,
            "{keys}"
        );
        let pid = agent.child.id();
        drop(agent);
        assert!(!private.exists(), "the socket directory is left");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the agent is still running (or a zombie)"
        );
    }

    #[test]
    fn bad_key_files_fail_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = keygen(dir.path(), "good", "", &[]);
        let enc = keygen(dir.path(), "enc", "secret-pass", &[]);
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n").unwrap();
        let missing = dir.path().join("missing");
        for (bad, want) in [
            (&enc, "is passphrase-protected"),
            (&junk, "is neither an agent socket nor a private key file"),
            (&missing, "No such file"),
            (&dir.path().join("good.pub"), "nor a private key file"),
        ] {
            let e = KeyAgent::start("git", &[good.clone(), bad.clone()])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("ssh git: {}", bad.display())), "{e}");
            assert!(e.contains(want), "{e}");
        }
    }
}
