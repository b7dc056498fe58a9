//! Tar headers exactly as Go's `archive/tar` writes them with `FormatPAX`
//! (what containerd's differ, and so BuildKit, uses): a USTAR header, preceded
//! by a PAX extended header only when a value does not fit USTAR (long or
//! non-ASCII names and link targets, large ids, sizes or times, xattrs).
//! Long ASCII names use the USTAR prefix field when they split (Go prefers
//! USTAR); numeric ids, empty user/group names, no record padding.
use std::collections::BTreeMap;

/// Type flags.
pub(crate) const REG: u8 = b'0';
pub(crate) const LINK: u8 = b'1';
pub(crate) const SYMLINK: u8 = b'2';
pub(crate) const CHAR: u8 = b'3';
pub(crate) const BLOCK: u8 = b'4';
pub(crate) const DIR: u8 = b'5';
pub(crate) const FIFO: u8 = b'6';
const PAX: u8 = b'x';

/// The fields of one header.
pub(crate) struct Header<'a> {
    pub name: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: &'a [u8],
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

const MAX_OCTAL_8: u64 = 0o7777777;
const MAX_OCTAL_12: u64 = 0o77777777777;

/// Appends the header block(s) for `h` to `out`.
pub(crate) fn encode(h: &Header<'_>, out: &mut Vec<u8>) {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let long_name = h.name.len() > 100 || !h.name.is_ascii();
    if long_name {
        pax.insert("path".into(), h.name.to_vec());
    }
    if h.linkname.len() > 100 || !h.linkname.is_ascii() {
        pax.insert("linkpath".into(), h.linkname.to_vec());
    }
    if h.uid > MAX_OCTAL_8 {
        pax.insert("uid".into(), h.uid.to_string().into_bytes());
    }
    if h.gid > MAX_OCTAL_8 {
        pax.insert("gid".into(), h.gid.to_string().into_bytes());
    }
    if h.size > MAX_OCTAL_12 {
        pax.insert("size".into(), h.size.to_string().into_bytes());
    }
    if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_12 {
        pax.insert("mtime".into(), h.mtime.to_string().into_bytes());
    }
    for (k, v) in h.xattrs {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }
    // Go prefers USTAR whenever it can: a long ASCII name that splits into
    // prefix + name needs no PAX header unless something else does.
    let split = if long_name { split_ustar(h.name) } else { None };
    if split.is_some() && pax.len() == 1 {
        pax.clear();
    }
    let (prefix, name): (&[u8], &[u8]) = match split {
        Some((p, n)) if pax.is_empty() => (p, n),
        _ => (b"", h.name),
    };
    if !pax.is_empty() {
        let mut data = Vec::new();
        for (k, v) in &pax {
            pax_record(k.as_bytes(), v, &mut data);
        }
        let pax_name = pax_header_name(h.name);
        let mut blk = [0u8; 512];
        put_str(&mut blk[0..100], &pax_name);
        put_octal(&mut blk[100..108], 0);
        put_octal(&mut blk[108..116], 0);
        put_octal(&mut blk[116..124], 0);
        put_octal(&mut blk[124..136], data.len() as u64);
        put_octal(&mut blk[136..148], 0);
        blk[156] = PAX;
        finish_block(&mut blk);
        out.extend_from_slice(&blk);
        out.extend_from_slice(&data);
        pad(out, data.len() as u64);
    }
    let mut blk = [0u8; 512];
    put_str(&mut blk[0..100], &ascii(name));
    put_str(&mut blk[345..500], prefix);
    put_octal(&mut blk[100..108], u64::from(h.mode & 0o7777));
    put_octal(
        &mut blk[108..116],
        if h.uid > MAX_OCTAL_8 { 0 } else { h.uid },
    );
    put_octal(
        &mut blk[116..124],
        if h.gid > MAX_OCTAL_8 { 0 } else { h.gid },
    );
    put_octal(
        &mut blk[124..136],
        if h.size > MAX_OCTAL_12 { 0 } else { h.size },
    );
    let mt = if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_12 {
        0
    } else {
        h.mtime as u64
    };
    put_octal(&mut blk[136..148], mt);
    blk[156] = h.typeflag;
    put_str(&mut blk[157..257], &ascii(h.linkname));
    // uname (265..297) and gname (297..329) stay empty: numeric ids only.
    put_octal(&mut blk[329..337], u64::from(h.devmajor));
    put_octal(&mut blk[337..345], u64::from(h.devminor));
    finish_block(&mut blk);
    out.extend_from_slice(&blk);
}

/// Go's USTAR prefix/name split of a long ASCII path: the last `/` that
/// leaves at most 155 bytes before it and 1–100 after it.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = name.len();
    if len <= 100 || !name.is_ascii() {
        return None;
    }
    let mut limit = len;
    if limit > 156 {
        limit = 156;
    } else if name.get(limit - 1) == Some(&b'/') {
        limit -= 1;
    }
    let i = name.get(..limit)?.iter().rposition(|&b| b == b'/')?;
    let nlen = len - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((name.get(..i)?, name.get(i + 1..)?))
}

/// Zero bytes that pad `len` bytes of content to a whole block.
pub(crate) fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % 512) as usize;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

// Go keeps only the ASCII characters in USTAR fields when a PAX record
// carries the real value.
fn ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(u8::is_ascii).collect()
}

// Go names the extended header `DIR/PaxHeaders.0/BASE`, ASCII only, cut to
// 100 bytes, without a trailing slash.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, file): (&[u8], &[u8]) = if name.ends_with(b"/") {
        (trimmed, b"")
    } else {
        match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (b"", trimmed),
        }
    };
    let mut n = Vec::new();
    if !dir.is_empty() {
        n.extend_from_slice(dir);
        n.push(b'/');
    }
    n.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        n.push(b'/');
        n.extend_from_slice(file);
    }
    let mut n = ascii(&n);
    n.truncate(100);
    while n.last() == Some(&b'/') {
        n.pop();
    }
    n
}

fn pax_record(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    // "LEN KEY=VALUE\n" where LEN counts itself.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

// Zero-padded octal filling all but the last byte, which stays NUL.
fn put_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    put_str(field, s.as_bytes());
}

fn finish_block(blk: &mut [u8; 512]) {
    blk[257..263].copy_from_slice(b"ustar\0");
    blk[263..265].copy_from_slice(b"00");
    blk[148..156].fill(b' ');
    let sum: u32 = blk.iter().map(|&b| u32::from(b)).sum();
    put_octal(&mut blk[148..155], u64::from(sum));
    blk[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr<'a>(name: &'a [u8], x: &'a BTreeMap<String, Vec<u8>>) -> Header<'a> {
        Header {
            name,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            typeflag: REG,
            linkname: b"",
            devmajor: 0,
            devminor: 0,
            xattrs: x,
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(b"path", &[b'a'; 5], &mut v);
        assert_eq!(v, b"14 path=aaaaa\n");
        let mut v = Vec::new();
        pax_record(b"path", &[b'a'; 91], &mut v);
        assert_eq!(v.len(), 101);
        assert!(v.starts_with(b"101 "));
    }

    #[test]
    fn short_names_are_plain_ustar_and_long_ones_get_pax() {
        let x = BTreeMap::new();
        let mut out = Vec::new();
        encode(&hdr(b"etc/passwd", &x), &mut out);
        assert_eq!(out.len(), 512);
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[257..265], b"ustar\x0000");
        // Splittable long names use the USTAR prefix, as Go does.
        let split = [vec![b'd'; 120], b"/file".to_vec()].concat();
        let mut out = Vec::new();
        encode(&hdr(&split, &x), &mut out);
        assert_eq!(out.len(), 512);
        assert_eq!(&out[0..5], b"file\0");
        assert_eq!(&out[345..465], &split[..120]);
        // Unsplittable ones get a PAX path record.
        let long = vec![b'a'; 150];
        let mut out = Vec::new();
        encode(&hdr(&long, &x), &mut out);
        assert_eq!(out.len(), 512 * 3);
        assert_eq!(out[156], b'x');
        assert_eq!(&out[0..13], b"PaxHeaders.0/");
    }

    #[test]
    fn names_that_are_not_utf8_go_into_pax_records_byte_for_byte() {
        // As Go's archive/tar (and so BuildKit) writes them: the raw bytes
        // in `path`/`linkpath` records, only the ASCII ones in the fields.
        let x = BTreeMap::new();
        let mut h = hdr(b"d/caf\xe9", &x);
        h.typeflag = SYMLINK;
        h.linkname = b"t\xe9";
        let mut out = Vec::new();
        encode(&h, &mut out);
        assert_eq!(out.len(), 512 * 3);
        assert_eq!(&out[0..18], b"d/PaxHeaders.0/caf");
        assert_eq!(&out[512..542], b"15 linkpath=t\xe9\n15 path=d/caf\xe9\n");
        assert_eq!(&out[1024..1030], b"d/caf\0");
        assert_eq!(&out[1024 + 157..1024 + 159], b"t\0");
    }
}
