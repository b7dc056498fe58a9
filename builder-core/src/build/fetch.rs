//! ADD of an http(s) URL: the file lands with mode 0600 and the
//! Last-Modified time, named after the URL's last path component, and
//! `--checksum` is verified before anything is used.
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::fsview::{FsView, Origin};
use crate::fsentry::{Content, Entry, Kind};

/// Downloads `url` into `scratch` and returns a one-file tree holding it.
pub fn download(url: &str, checksum: Option<&str>, scratch: &Path) -> Result<FsView, String> {
    let name = url_file_name(url);
    let response = ureq::get(url)
        .call()
        .map_err(|e| format!("ADD {url}: {e}"))?;
    let modified = response
        .header("Last-Modified")
        .and_then(parse_http_date)
        .unwrap_or(0);
    let spool = super::images::spool_path(scratch, "url-");
    let mut file =
        std::fs::File::create(&spool).map_err(|e| format!("{}: {e}", spool.display()))?;
    let mut reader = response.into_reader();
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("ADD {url}: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        std::io::Write::write_all(&mut file, &buf[..n])
            .map_err(|e| format!("{}: {e}", spool.display()))?;
        size += n as u64;
    }
    let got = format!(
        "sha256:{}",
        hash.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if let Some(want) = checksum {
        if !want.starts_with("sha256:") {
            return Err(format!("unsupported checksum {want:?}: use sha256:..."));
        }
        if want != got {
            return Err(format!(
                "ADD {url}: digest mismatch: expected {want}, got {got}"
            ));
        }
    }
    let mut view = FsView::new();
    view.apply([(
        Entry {
            path: name.clone().into(),
            kind: Kind::File {
                content: Content::Path(spool),
                size,
            },
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime: modified,
            mtime_nanos: 0,
            xattrs: Default::default(),
        },
        Origin::Entry,
    )]);
    Ok(view)
}

/// Parses an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, mi, s] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// The file name BuildKit gives a downloaded URL: Go's `path.Base` of the
/// URL's decoded path (trailing slashes dropped, so `/dir/` names `dir`),
/// or `__unnamed__` when that is `.` or `/` or the URL does not parse.
fn url_file_name(url: &str) -> String {
    const UNNAMED: &str = "__unnamed__";
    let Some(path) = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path)
    else {
        return UNNAMED.into();
    };
    let Some(decoded) = percent_decode(path) else {
        return UNNAMED.into();
    };
    let base = decoded
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if base.is_empty() || base == "." || base == ".." {
        return UNNAMED.into();
    }
    base.to_string()
}

/// `%XX` escapes decoded as Go's url.Parse decodes a path; None for a
/// malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_buildkit_gives_them() {
        let n = |u: &str| url_file_name(u);
        assert_eq!(n("http://h/payload.txt"), "payload.txt");
        assert_eq!(n("http://h/dir/"), "dir");
        assert_eq!(n("http://h/a/b//"), "b");
        assert_eq!(n("http://h/f.txt?x=1#y"), "f.txt");
        assert_eq!(n("http://h/a%20b.txt"), "a b.txt");
        assert_eq!(n("http://h/"), "__unnamed__");
        assert_eq!(n("http://h"), "__unnamed__");
        assert_eq!(n("http://h/x/."), "__unnamed__");
        assert_eq!(n("http://h/bad%zz"), "__unnamed__");
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
