//! EXPOSE values normalised as BuildKit stores them: `80` → `80/tcp`,
//! `8000-8002/udp` → three entries, protocol lower-cased.
use super::error::InstructionErrorKind as K;

fn port_number(s: &str) -> Result<u32, String> {
    if s.is_empty() {
        return Err("value is empty".into());
    }
    let n: i64 = s.parse().map_err(|_| "invalid syntax".to_string())?;
    if !(0..=65535).contains(&n) {
        return Err("value out of range (0–65535)".into());
    }
    Ok(n as u32)
}

fn port_range(s: &str) -> Result<(u32, u32), String> {
    if s.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let lo = port_number(start).map_err(|e| format!("invalid start port '{start}': {e}"))?;
    match end {
        None => Ok((lo, lo)),
        Some(e) if e == start => Ok((lo, lo)),
        Some(e) => {
            let hi = port_number(e).map_err(|err| format!("invalid end port '{e}': {err}"))?;
            if hi < lo {
                return Err(format!("invalid port range: {s}"));
            }
            Ok((lo, hi))
        }
    }
}

fn parse_port(raw: &str) -> Result<Vec<String>, K> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (String::new(), "", *c),
        [h, c] => (String::new(), *h, *c),
        [rest @ .., h, c] => (rest.join(":"), *h, *c),
        [] => (String::new(), "", ""),
    };
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(K::BadValue(format!(
            "invalid port: {raw:?}: no port specified"
        )));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        _ => {
            return Err(K::BadValue(format!(
                "invalid port: {raw:?}: invalid proto: {proto}"
            )))
        }
    };
    if !ip.is_empty() {
        let bare = ip
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(&ip);
        if bare.parse::<std::net::IpAddr>().is_err() {
            return Err(K::BadValue(format!("invalid IP address: {ip}")));
        }
    }
    let (lo, hi) =
        port_range(port).map_err(|_| K::BadValue(format!("invalid containerPort: {port}")))?;
    if !host.is_empty() {
        let (hlo, hhi) =
            port_range(host).map_err(|_| K::BadValue(format!("invalid hostPort: {host}")))?;
        if hi - lo != hhi - hlo && hi != lo {
            return Err(K::BadValue(format!(
                "invalid ranges specified for container and host Ports: {port} and {host}"
            )));
        }
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Normalises expanded EXPOSE words into `port/proto` entries, in order.
pub fn parse_ports(words: &[String]) -> Result<Vec<String>, K> {
    let mut out = Vec::new();
    for w in words {
        out.extend(parse_port(w)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Vec<String>, K> {
        parse_ports(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn normalises() {
        assert_eq!(p(&["80"]).unwrap(), ["80/tcp"]);
        assert_eq!(p(&["53/UDP", "9/sctp"]).unwrap(), ["53/udp", "9/sctp"]);
        assert_eq!(
            p(&["8000-8002"]).unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(p(&["7-7/udp"]).unwrap(), ["7/udp"]);
        assert_eq!(p(&["8080:80"]).unwrap(), ["80/tcp"]);
        assert_eq!(p(&["127.0.0.1:8080:80/udp"]).unwrap(), ["80/udp"]);
        assert_eq!(p(&["[::1]:8080:80"]).unwrap(), ["80/tcp"]);
    }

    #[test]
    fn rejects() {
        for (bad, msg) in [
            ("http", "invalid containerPort: http"),
            ("80/icmp", "invalid proto: icmp"),
            ("/tcp", "no port specified"),
            ("70000", "invalid containerPort"),
            ("90-80", "invalid containerPort"),
            ("1.2.3:80:80", "invalid IP address"),
            ("1-3:5-9", "invalid ranges"),
        ] {
            let e = p(&[bad]).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
