//! `RUN --mount=...` specifications, as BuildKit parses them.
use super::error::InstructionErrorKind as K;

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// A directory of the build context or another stage (the default).
    #[default]
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty in-memory filesystem.
    Tmpfs,
    /// A secret file (or environment variable).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// Used by several writers at once (BuildKit's default).
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// One writer at a time.
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `type=` (bind when absent).
    pub kind: MountType,
    /// `from=`: stage or image to take the files from (empty: the context).
    pub from: String,
    /// `source=`/`src=`.
    pub source: String,
    /// `target=`/`dst=`/`destination=`.
    pub target: String,
    /// Read-only: `ro`/`readonly` or not `rw`; by default true for bind,
    /// secret and ssh, false for cache and tmpfs.
    pub read_only: bool,
    /// `size=` for tmpfs, in bytes (0: unlimited).
    pub size_limit: i64,
    /// `id=`: cache id, secret id or ssh id.
    pub id: String,
    /// `sharing=` for cache mounts; `None` means shared.
    pub sharing: Option<ShareMode>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `env=` for secrets: expose as this environment variable.
    pub env: Option<String>,
    /// `mode=` (octal) for cache, secret and ssh.
    pub mode: Option<u32>,
    /// `uid=` for cache, secret and ssh.
    pub uid: Option<u32>,
    /// `gid=` for cache, secret and ssh.
    pub gid: Option<u32>,
}

impl Mount {
    /// The effective sharing mode of a cache mount.
    pub fn sharing_or_default(&self) -> ShareMode {
        self.sharing.unwrap_or(ShareMode::Shared)
    }

    /// A cache mount's id: `id=` or else the cleaned target.
    pub fn cache_id(&self) -> String {
        if self.id.is_empty() {
            clean_path(&self.target)
        } else {
            self.id.clone()
        }
    }

    /// A secret's id: `source=`, else `id=`, else the target's base name.
    pub fn secret_id(&self) -> String {
        if !self.source.is_empty() {
            return self.source.clone();
        }
        if !self.id.is_empty() {
            return self.id.clone();
        }
        base_name(&self.target)
    }

    /// Where a secret file appears: the target, or `/run/secrets/<id>`;
    /// `None` for an `env=` secret without a target.
    pub fn secret_target(&self) -> Option<String> {
        if !self.target.is_empty() {
            return Some(self.target.clone());
        }
        if self.env.is_some() {
            return None;
        }
        Some(format!("/run/secrets/{}", base_name(&self.secret_id())))
    }

    /// A secret file's mode: `mode=` or 0400.
    pub fn secret_mode(&self) -> u32 {
        self.mode.unwrap_or(0o400)
    }

    /// An SSH mount's id: `id=` or `default`.
    pub fn ssh_id(&self) -> String {
        if self.id.is_empty() {
            "default".into()
        } else {
            self.id.clone()
        }
    }
}

fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `path.Clean`.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Splits a `--mount` value as CSV: commas separate fields, a field may be
/// double-quoted with `""` for a literal quote.
fn csv_fields(s: &str) -> Result<Vec<String>, K> {
    let bad = |col: usize, what: &str| {
        K::BadMount(format!(
            "failed to parse csv mounts: parse error on line 1, column {col}: {what}"
        ))
    };
    let chars: Vec<char> = s.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad(i + 1, "extraneous or missing \" in quoted-field")),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            if !matches!(chars.get(i), None | Some(',')) {
                return Err(bad(i + 1, "extraneous or missing \" in quoted-field"));
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(bad(i + 1, "bare \" in non-quoted-field"));
                }
                field.push(c);
                i += 1;
            }
        }
        fields.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
            continue;
        }
        return Ok(fields);
    }
}

/// docker/go-units `RAMInBytes`: `512`, `64k`, `1.5GiB`, binary multiples.
fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_len = t
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map(|(i, c)| i + c.len_utf8())
        .last()?;
    let (num, unit) = t.split_at(num_len);
    if num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    let prefix = u.chars().next().filter(|c| "kmgtp".contains(*c));
    if let Some(p) = prefix {
        u = &u[p.len_utf8()..];
    }
    let u = u.strip_prefix('i').unwrap_or(u);
    let u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() {
        return None;
    }
    let mult: f64 = match prefix {
        None => 1.0,
        Some('k') => 1024.0,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        _ => 1024f64.powi(5),
    };
    let bytes = value * mult;
    (bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as i64)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, K> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(K::BadMount(format!("invalid value for {key}: {v}"))),
    }
}

/// Parses one `--mount` value. `expand` is applied to every `key=value`
/// value first (BuildKit expands mount options with the stage's variables).
pub fn parse_mount(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, K>,
) -> Result<Mount, K> {
    let mut m = Mount::default();
    let mut ro_auto = true;
    for field in csv_fields(spec)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                }
                "required" => {
                    return Err(K::BadMount(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    )))
                }
                _ => {
                    return Err(K::BadMount(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        let value = expand(value)?;
        let unexpected = |m: &Mount| {
            K::BadMount(format!(
                "unexpected key '{key}' for mount type '{}'",
                m.kind.name()
            ))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(K::BadMount(format!("unsupported mount type {value:?}"))),
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(unexpected(&m));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(unexpected(&m));
                }
                m.size_limit = ram_in_bytes(&value)
                    .ok_or_else(|| K::BadMount(format!("invalid value for {key}: {value}")))?;
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => ShareMode::Shared,
                    "private" => ShareMode::Private,
                    "locked" => ShareMode::Locked,
                    _ => return Err(K::BadMount(format!("unsupported sharing value {value:?}"))),
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(value.strip_prefix('+').unwrap_or(&value), 8)
                        .map_err(|_| K::BadMount(format!("invalid value {value} for mode")))?,
                )
            }
            "uid" | "gid" => {
                let n: u32 = value
                    .strip_prefix('+')
                    .unwrap_or(&value)
                    .parse()
                    .map_err(|_| K::BadMount(format!("invalid value {value} for {key}")))?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => return Err(K::BadMount(format!("unexpected key '{key}' in '{field}'"))),
        }
    }

    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (set, name) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(K::BadMount(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.name()
                )));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(K::BadMount("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(K::BadMount("secret mount should not define sharing".into()));
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(K::BadMount(
                "invalid secret mount. one of source, target required".into(),
            ));
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(K::BadMount("both source and id can't be set".into()));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(K::BadMount(format!(
            "invalid cache sharing set for {} mount",
            m.kind.name()
        )));
    }
    Ok(m)
}

/// The parse-time check BuildKit makes before any expansion: `from=` may
/// not use variables. A spec with nothing expansion could change (no `$`,
/// no quote, no backslash) is also checked whole, so a bad type, key or
/// value fails the Dockerfile even in a stage the target does not need, as
/// docker 20.10, which parses every stage's mounts before building, fails
/// it; specs with variables are checked once expanded, as BuildKit now does.
pub(super) fn precheck_mount(spec: &str) -> Result<(), K> {
    if !spec.contains(['$', '\\', '\'', '"']) {
        parse_mount(spec, &mut |v| Ok(v.to_string()))?;
    }
    for field in csv_fields(spec)? {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("from") {
                if let Some(i) = v.find('$') {
                    if i != v.len() - 1 {
                        return Err(K::BadMount(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Mount, K> {
        parse_mount(s, &mut |v| Ok(v.to_string()))
    }

    #[test]
    fn defaults_per_type() {
        let b = parse("target=/src").unwrap();
        assert_eq!((b.kind, b.read_only), (MountType::Bind, true));
        let c = parse("type=cache,target=/root/.cache//x/").unwrap();
        assert_eq!((c.kind, c.read_only), (MountType::Cache, false));
        assert_eq!(c.cache_id(), "/root/.cache/x");
        assert_eq!(c.sharing_or_default(), ShareMode::Shared);
        let t = parse("type=tmpfs,dst=/t,size=64m").unwrap();
        assert_eq!((t.read_only, t.size_limit), (false, 64 << 20));
        let s = parse("type=secret,id=tok").unwrap();
        assert_eq!(s.secret_target().as_deref(), Some("/run/secrets/tok"));
        assert_eq!(s.secret_mode(), 0o400);
        assert!(!s.required);
        let s = parse("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(s.secret_target(), None);
        let s = parse("type=secret,target=/etc/key.pem,required").unwrap();
        assert_eq!((s.secret_id().as_str(), s.required), ("key.pem", true));
        let ssh = parse("type=ssh").unwrap();
        assert_eq!((ssh.ssh_id().as_str(), ssh.read_only), ("default", true));
    }

    #[test]
    fn every_option() {
        let m = parse(
            "type=cache,id=x,sharing=locked,mode=0700,uid=1000,gid=+10,from=stage,source=/s,rw=false",
        )
        .unwrap();
        assert_eq!(m.sharing, Some(ShareMode::Locked));
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o700), Some(1000), Some(10)));
        assert_eq!((m.from.as_str(), m.source.as_str()), ("stage", "/s"));
        assert!(m.read_only);
        assert!(!parse("src=a,readonly=false").unwrap().read_only);
        assert!(!parse("rw").unwrap().read_only);
        assert!(parse("type=bind,ro").unwrap().read_only);
        assert_eq!(
            parse("destination=/d,TYPE=Cache").unwrap().kind,
            MountType::Cache
        );
        assert_eq!(parse("\"target=/a,b\"").unwrap().target, "/a,b");
    }

    #[test]
    fn errors() {
        let cases = [
            ("type=nfs", "unsupported mount type \"nfs\""),
            ("type=bind,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
            ("bogus", "invalid field 'bogus' must be a key=value pair"),
            (
                "type=bind,required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=bind,size=1m",
                "unexpected key 'size' for mount type 'bind'",
            ),
            ("type=tmpfs,size=lots", "invalid value for size: lots"),
            (
                "type=cache,sharing=all",
                "unsupported sharing value \"all\"",
            ),
            (
                "type=bind,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            ("type=cache,mode=999", "invalid value 999 for mode"),
            ("type=cache,uid=x", "invalid value x for uid"),
            (
                "type=bind,uid=1",
                "uid not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,mode=1",
                "mode not allowed for \"tmpfs\" type mounts",
            ),
            ("type=secret", "one of source, target required"),
            (
                "type=secret,id=a,from=b",
                "secret mount should not have a from",
            ),
            (
                "type=secret,id=a,sharing=shared",
                "secret mount should not define sharing",
            ),
            ("type=secret,id=a,src=b", "both source and id can't be set"),
            ("ro=maybe", "invalid value for ro: maybe"),
            ("target=a\"b", "bare \""),
        ];
        for (spec, want) in cases {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert!(precheck_mount("from=$STAGE").is_err());
        assert!(precheck_mount("from=a$").is_ok());
        // Literal specs are checked whole before the build (docker 20.10
        // refuses `--mount=type=bogus` in a stage the target does not use);
        // what expansion may change waits for it.
        for (spec, want) in [
            ("type=bogus", "unsupported mount type"),
            ("type=bind,size=1", "unexpected key 'size'"),
            ("type=cache,sharing=x", "unsupported sharing value"),
            ("target=/t,nokey", "must be a key=value pair"),
        ] {
            let e = precheck_mount(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        for spec in [
            "type=$T",
            "type=cache,sharing=${S}",
            "type=\\x",
            "target=/t,'x'",
        ] {
            assert!(precheck_mount(spec).is_ok(), "{spec}");
        }
    }

    #[test]
    fn sizes_and_paths() {
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("2GiB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("1 mb"), Some(1 << 20));
        assert_eq!(ram_in_bytes("1x"), None);
        assert_eq!(clean_path("a/../../b/./"), "../b");
        assert_eq!(base_name("/a/b/"), "b");
    }
}
