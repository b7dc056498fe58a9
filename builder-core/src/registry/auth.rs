//! `WWW-Authenticate` challenges and bearer tokens (the Docker token
//! protocol: a realm URL, a service name and `repository:NAME:ACTIONS` scopes).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercased).
    pub scheme: String,
    /// Parameters with lowercased names (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

/// Parses every challenge in a header value, e.g.
/// `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < b.len() && !matches!(b[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            // A stray quote or '=': skip one byte so the loop always advances.
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            i = j + 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    // Push whole UTF-8 characters, not bytes.
                    let ch = header[i..].chars().next().unwrap_or(' ');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token text.
    pub token: String,
    /// After this instant a new token is fetched.
    pub expires: Instant,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Reads a token endpoint's answer; tokens without `expires_in` last 60 s
/// (the spec's default), and are dropped 10 s early to allow for clock skew.
pub fn parse_token(body: &[u8], now: Instant) -> Option<(Token, Option<String>)> {
    let r: TokenResponse = serde_json::from_slice(body).ok()?;
    let token = r.token.filter(|t| !t.is_empty()).or(r.access_token)?;
    let life = r.expires_in.unwrap_or(60).max(20);
    Some((
        Token {
            token,
            expires: now + Duration::from_secs(life - 10),
        },
        r.refresh_token,
    ))
}

/// Pull scope of a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// Pull and push scope of a repository.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["scope"], "repository:samalba/my-app:pull,push");
        let c = parse_challenges(r#"Basic realm="Registry Realm", Bearer realm=x ,service="a\"b""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[1].params["realm"], "x");
        assert_eq!(c[1].params["service"], "a\"b");
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("=\"").len(), 0);
    }

    #[test]
    fn tokens() {
        let now = Instant::now();
        let (t, _) = parse_token(br#"{"token":"abc","expires_in":300}"#, now).unwrap();
        assert_eq!(t.token, "abc");
        assert_eq!(t.expires, now + Duration::from_secs(290));
        let (t, _) = parse_token(br#"{"access_token":"x"}"#, now).unwrap();
        assert_eq!(t.token, "x");
        assert!(parse_token(b"{}", now).is_none());
    }
}
