//! Content digests of context entries, the inputs of COPY/ADD cache keys.
//!
//! A file's digest covers what an image would show of it: type,
//! permission bits, owner (always 0:0 for context files, as BuildKit sends
//! them), size, link target, `security.capability` and content. The mtime
//! is left out so a fresh checkout hits the cache. A directory's digest
//! covers its own header and its sorted children's names and digests.
use std::fmt;

use sha2::{Digest as _, Sha256};

/// Version tag mixed into every digest: changing the layout changes it.
const DOMAIN: &[u8] = b"kiln.context.v1\0";

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lower-case hex without a prefix.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Entry types as they enter a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TypeTag {
    File = b'f',
    Dir = b'd',
    Symlink = b'l',
    Char = b'c',
    Block = b'b',
    Fifo = b'p',
}

/// The parts of an entry's header that enter its digest.
pub(crate) struct Header<'a> {
    pub tag: TypeTag,
    /// Permission bits plus setuid/setgid/sticky.
    pub mode: u32,
    pub size: u64,
    pub link_target: &'a [u8],
    pub capability: Option<&'a [u8]>,
    /// Device number for character and block devices.
    pub rdev: u64,
}

fn header_hasher(h: &Header<'_>) -> Sha256 {
    let mut s = Sha256::new();
    s.update(DOMAIN);
    s.update([h.tag as u8]);
    s.update((h.mode & 0o7777).to_le_bytes());
    // Owner: context files count as 0:0.
    s.update(0u32.to_le_bytes());
    s.update(0u32.to_le_bytes());
    s.update(h.size.to_le_bytes());
    s.update((h.link_target.len() as u64).to_le_bytes());
    s.update(h.link_target);
    match h.capability {
        Some(cap) => {
            s.update([1]);
            s.update((cap.len() as u64).to_le_bytes());
            s.update(cap);
        }
        None => s.update([0]),
    }
    s.update(h.rdev.to_le_bytes());
    s
}

fn finish(s: Sha256) -> Digest {
    let out = s.finalize();
    let mut d = [0u8; 32];
    d.copy_from_slice(out.as_slice());
    Digest(d)
}

/// Digest of a non-directory entry; `content` is the SHA-256 of a regular
/// file's bytes (`None` for other types).
pub(crate) fn entry_digest(h: &Header<'_>, content: Option<&Digest>) -> Digest {
    let mut s = header_hasher(h);
    if let Some(c) = content {
        s.update(c.0);
    }
    finish(s)
}

/// Digest of a directory from its mode and its children, which must be
/// sorted by name.
pub(crate) fn dir_digest<'a>(
    mode: u32,
    children: impl Iterator<Item = (&'a [u8], &'a Digest)>,
) -> Digest {
    let mut s = header_hasher(&Header {
        tag: TypeTag::Dir,
        mode,
        size: 0,
        link_target: &[],
        capability: None,
        rdev: 0,
    });
    for (name, d) in children {
        s.update((name.len() as u64).to_le_bytes());
        s.update(name);
        s.update(d.0);
    }
    finish(s)
}

/// Streams bytes into a SHA-256.
pub(crate) struct ContentHasher(Sha256);

impl ContentHasher {
    pub(crate) fn new() -> Self {
        ContentHasher(Sha256::new())
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub(crate) fn finish(self) -> Digest {
        finish(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32, cap: Option<&[u8]>) -> Digest {
        let mut c = ContentHasher::new();
        c.update(b"hello");
        let content = c.finish();
        entry_digest(
            &Header {
                tag: TypeTag::File,
                mode,
                size: 5,
                link_target: &[],
                capability: cap,
                rdev: 0,
            },
            Some(&content),
        )
    }

    #[test]
    fn every_header_field_counts() {
        let base = file(0o644, None);
        assert_ne!(base, file(0o755, None));
        assert_ne!(base, file(0o644, Some(b"cap")));
        assert_eq!(base, file(0o100644, None), "only permission bits count");
    }

    #[test]
    fn empty_sha256_is_standard() {
        assert_eq!(
            ContentHasher::new().finish().hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
