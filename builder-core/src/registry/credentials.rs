//! Registry credentials from Docker's `config.json` (inline `auths`,
//! `credsStore`, `credHelpers`) and containers' `auth.json`, and `kiln
//! login`/`logout`'s writes to Docker's file.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::error::{Error, Result};
use super::reference::{DOCKER_HUB, DOCKER_HUB_API};
use super::sink::atomic_write;

/// A secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token from an earlier login (`identitytoken`).
    IdentityToken {
        /// User name, if known.
        username: String,
        /// The refresh token.
        token: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug output.
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, ***)")
            }
        }
    }
}

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Where credentials are read from, in order.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `$REGISTRY_AUTH_FILE`, consulted first because setting it is explicit.
    pub auth_file: Option<PathBuf>,
    /// Docker's `config.json`; also where `login` writes.
    pub docker_config: PathBuf,
    /// `$XDG_RUNTIME_DIR/containers/auth.json` (podman's login).
    pub containers_auth: Option<PathBuf>,
}

impl Credentials {
    /// The locations the environment names: `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`, `$REGISTRY_AUTH_FILE`, and
    /// `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub fn from_env() -> Credentials {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let docker_dir = var("DOCKER_CONFIG").unwrap_or_else(|| {
            var("HOME")
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".docker")
        });
        Credentials {
            auth_file: var("REGISTRY_AUTH_FILE"),
            docker_config: docker_dir.join("config.json"),
            containers_auth: var("XDG_RUNTIME_DIR").map(|d| d.join("containers").join("auth.json")),
        }
    }

    /// The credential for `host` (a registry name or API host), if any file
    /// or helper has one.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>> {
        if let Some(f) = &self.auth_file {
            if let Some(c) = lookup_file(f, host, false)? {
                return Ok(Some(c));
            }
        }
        if let Some(c) = lookup_file(&self.docker_config, host, true)? {
            return Ok(Some(c));
        }
        if let Some(f) = &self.containers_auth {
            if let Some(c) = lookup_file(f, host, false)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stores `cred` for `host` the way `docker login` does: through the
    /// configured helper if there is one, else base64 in `auths`.
    pub fn store(&self, host: &str, cred: &Credential) -> Result<()> {
        let mut config = read_json(&self.docker_config)?.unwrap_or_else(|| serde_json::json!({}));
        let key = server_key(host);
        if let Some(helper) = helper_for(&config, host) {
            let (user, secret) = match cred {
                Credential::Basic { username, password } => (username.as_str(), password.as_str()),
                Credential::IdentityToken { token, .. } => ("<token>", token.as_str()),
            };
            let input = serde_json::json!({"ServerURL": key, "Username": user, "Secret": secret});
            run_helper(&helper, "store", input.to_string().as_bytes())?;
            return Ok(());
        }
        let entry = match cred {
            Credential::Basic { username, password } => serde_json::json!({
                "auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            }),
            Credential::IdentityToken { username, token } => serde_json::json!({
                "auth": base64::engine::general_purpose::STANDARD.encode(format!("{username}:")),
                "identitytoken": token
            }),
        };
        let obj = config
            .as_object_mut()
            .ok_or_else(|| not_object(&self.docker_config))?;
        let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
        let auths = auths
            .as_object_mut()
            .ok_or_else(|| not_object(&self.docker_config))?;
        auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
        auths.insert(key, entry);
        write_config(&self.docker_config, &config)
    }

    /// Removes what `store` wrote for `host`; `false` when nothing was there.
    pub fn erase(&self, host: &str) -> Result<bool> {
        let Some(mut config) = read_json(&self.docker_config)? else {
            return Ok(false);
        };
        let key = server_key(host);
        let mut found = false;
        if let Some(helper) = helper_for(&config, host) {
            found |= run_helper(&helper, "erase", key.as_bytes()).is_ok();
        }
        if let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) {
            let before = auths.len();
            auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
            if auths.len() != before {
                found = true;
                write_config(&self.docker_config, &config)?;
            }
        }
        Ok(found)
    }
}

fn not_object(path: &Path) -> Error {
    Error::Layout {
        path: path.to_path_buf(),
        reason: "expected a JSON object".into(),
    }
}

fn write_config(path: &Path, config: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut bytes = serde_json::to_vec_pretty(config).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))
}

/// What Docker calls the registry in its files and helper calls.
pub fn server_key(host: &str) -> String {
    if is_docker_hub(host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(host, DOCKER_HUB | DOCKER_HUB_API | "index.docker.io")
}

/// `https://host/v2/`, `http://host`, `host` all name `host`; Docker Hub's
/// several names are one.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    if is_docker_hub(k) {
        DOCKER_HUB.to_string()
    } else {
        k.to_string()
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                what: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn helper_for(config: &serde_json::Value, host: &str) -> Option<String> {
    let want = normalize_key(host);
    if let Some(helpers) = config.get("credHelpers").and_then(|h| h.as_object()) {
        for (k, v) in helpers {
            if normalize_key(k) == want {
                return v.as_str().map(str::to_string);
            }
        }
    }
    config
        .get("credsStore")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn lookup_file(path: &Path, host: &str, docker: bool) -> Result<Option<Credential>> {
    let Some(config) = read_json(path)? else {
        return Ok(None);
    };
    let want = normalize_key(host);
    if docker {
        if let Some(helper) = helper_for(&config, host) {
            if let Some(c) = helper_get(&helper, &server_key(host))? {
                return Ok(Some(c));
            }
        }
    }
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for (key, entry) in auths {
        if normalize_key(key) != want {
            continue;
        }
        let field = |n: &str| {
            entry
                .get(n)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (mut username, mut password) = (field("username"), field("password"));
        let auth = field("auth");
        if !auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::Layout {
                    path: path.to_path_buf(),
                    reason: format!("auths.{key}.auth is not base64 of user:password"),
                })?;
            let (u, p) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
            username = u.to_string();
            password = p.to_string();
        }
        let token = field("identitytoken");
        if !token.is_empty() {
            return Ok(Some(Credential::IdentityToken { username, token }));
        }
        if !username.is_empty() || !password.is_empty() {
            return Ok(Some(Credential::Basic { username, password }));
        }
    }
    Ok(None)
}

fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>> {
    let fail = |detail: String| Error::CredentialHelper {
        helper: helper.to_string(),
        detail,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may answer (e.g. "credentials not found") and exit without
        // reading its input; its exit status and output say what happened.
        match stdin.write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(fail(e.to_string()))
            }
            _ => {}
        }
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        }
        return Err(fail(format!("{action}: {msg}")));
    }
    Ok(out.stdout)
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>> {
    let out = match run_helper(helper, "get", server.as_bytes()) {
        Ok(out) => out,
        // The protocol's way of saying "none stored".
        Err(Error::CredentialHelper { detail, .. }) if detail.contains("credentials not found") => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let r: Reply = serde_json::from_slice(&out).map_err(|source| Error::Json {
        what: format!("docker-credential-{helper} get"),
        source,
    })?;
    Ok(Some(if r.username == "<token>" {
        Credential::IdentityToken {
            username: String::new(),
            token: r.secret,
        }
    } else {
        Credential::Basic {
            username: r.username,
            password: r.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(dir: &Path) -> Credentials {
        Credentials {
            auth_file: None,
            docker_config: dir.join("docker/config.json"),
            containers_auth: Some(dir.join("containers/auth.json")),
        }
    }

    #[test]
    fn docker_config_auths_and_login_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = creds(dir.path());
        assert_eq!(c.lookup("ghcr.io").unwrap(), None);
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::write(
            &c.docker_config,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},"http://reg.example:5000/v2/":{"identitytoken":"tok"}},"other":1}"#,
        )
        .unwrap();
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            c.lookup("registry-1.docker.io").unwrap(),
            Some(basic("user", "pa:ss"))
        );
        assert_eq!(c.lookup("docker.io").unwrap(), Some(basic("user", "pa:ss")));
        assert!(
            matches!(c.lookup("reg.example:5000").unwrap(), Some(Credential::IdentityToken { token, .. }) if token == "tok")
        );

        c.store("ghcr.io", &basic("a", "b")).unwrap();
        assert_eq!(c.lookup("ghcr.io").unwrap(), Some(basic("a", "b")));
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&c.docker_config).unwrap()).unwrap();
        assert_eq!(saved["other"], 1, "unrelated settings survive");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&c.docker_config)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(c.erase("ghcr.io").unwrap());
        assert!(!c.erase("ghcr.io").unwrap());
        assert_eq!(c.lookup("ghcr.io").unwrap(), None);
    }

    #[test]
    fn containers_auth_json_and_bad_base64() {
        let dir = tempfile::tempdir().unwrap();
        let c = creds(dir.path());
        std::fs::create_dir_all(dir.path().join("containers")).unwrap();
        std::fs::write(
            c.containers_auth.as_ref().unwrap(),
            r#"{"auths":{"quay.io":{"auth":"cTp3"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.lookup("quay.io").unwrap(),
            Some(Credential::Basic {
                username: "q".into(),
                password: "w".into()
            })
        );
        std::fs::write(
            c.containers_auth.as_ref().unwrap(),
            r#"{"auths":{"quay.io":{"auth":"!!"}}}"#,
        )
        .unwrap();
        let err = c.lookup("quay.io").unwrap_err().to_string();
        assert!(err.contains("auth.json") && err.contains("base64"), "{err}");
    }

    #[test]
    fn credential_helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-kilntest");
        // A real helper process speaking the protocol: get prints JSON for one server.
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = helped.example ]; then echo '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}'; exit 0; fi\necho 'credentials not found in native keychain'; exit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = creds(dir.path());
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::write(
            &c.docker_config,
            r#"{"credHelpers":{"helped.example":"kilntest"}}"#,
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // PATH is process-wide; this test is the only one that runs helpers.
        std::env::set_var("PATH", path);
        assert_eq!(
            c.lookup("helped.example").unwrap(),
            Some(Credential::Basic {
                username: "hu".into(),
                password: "hs".into()
            })
        );
        assert_eq!(c.lookup("other.example").unwrap(), None);

        // credsStore: login stores through the helper, not in the file.
        let stored = dir.path().join("stored.json");
        let store_helper = bin.join("docker-credential-kilnstore");
        std::fs::write(
            &store_helper,
            format!("#!/bin/sh\nif [ \"$1\" = store ]; then cat > {}; exit 0; fi\necho 'credentials not found in native keychain'; exit 1\n", stored.display()),
        )
        .unwrap();
        std::fs::set_permissions(&store_helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&c.docker_config, r#"{"credsStore":"kilnstore"}"#).unwrap();
        c.store(
            "docker.io",
            &Credential::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        )
        .unwrap();
        let sent: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
        assert_eq!(sent["ServerURL"], DOCKER_HUB_KEY);
        assert_eq!(sent["Username"], "u");
        assert_eq!(sent["Secret"], "p");
        assert!(!std::fs::read_to_string(&c.docker_config)
            .unwrap()
            .contains("auths"));
        assert_eq!(c.lookup("docker.io").unwrap(), None);
    }
}
