//! Platform names normalised once for the whole crate, the way
//! containerd's `platforms` package does: the Dockerfile frontend
//! (`FROM --platform`, `TARGETARCH`) and the registry's manifest-list
//! matching must agree that `linux/aarch64` and `linux/arm64/v8` are one
//! platform.

/// The normal form of `os`, `arch` and `variant` (lower case; `macos` is
/// `darwin`, `x86_64` is `amd64`, `aarch64` and `arm64/v8` are `arm64`,
/// `armhf` is `arm/v7`, …). Names it does not know pass through lower-cased.
pub fn normalize(os: &str, arch: &str, variant: &str) -> (String, String, String) {
    let os = match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        o => o.to_string(),
    };
    let arch = arch.to_ascii_lowercase();
    let v = variant.to_ascii_lowercase();
    let (arch, variant) = match arch.as_str() {
        "i386" | "386" => ("386".to_string(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".to_string(),
            if v == "v1" { String::new() } else { v },
        ),
        "aarch64" | "arm64" => (
            "arm64".to_string(),
            match v.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                _ => v,
            },
        ),
        "armhf" => ("arm".to_string(), "v7".to_string()),
        "armel" => ("arm".to_string(), "v6".to_string()),
        "arm" => (
            "arm".to_string(),
            match v.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{v}"),
                _ => v,
            },
        ),
        _ => (arch, v),
    };
    (os, arch, variant)
}

/// Whether `os` (normalised) is an operating system Go knows.
pub fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "linux"
            | "windows"
            | "darwin"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "solaris"
            | "illumos"
            | "android"
            | "ios"
            | "aix"
            | "plan9"
            | "dragonfly"
            | "js"
            | "wasip1"
    )
}

/// Whether `arch` (normalised) is an architecture Go knows.
pub fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "arm64"
            | "arm"
            | "ppc64le"
            | "ppc64"
            | "s390x"
            | "riscv64"
            | "mips64le"
            | "mips64"
            | "mipsle"
            | "mips"
            | "loong64"
            | "wasm"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(os: &str, arch: &str, variant: &str) -> String {
        let (o, a, v) = normalize(os, arch, variant);
        format!("{o}/{a}/{v}")
    }

    #[test]
    fn aliases_meet() {
        assert_eq!(n("Linux", "x86_64", ""), "linux/amd64/");
        assert_eq!(n("linux", "amd64", "v1"), "linux/amd64/");
        assert_eq!(n("linux", "aarch64", "v8.0"), "linux/arm64/");
        assert_eq!(n("linux", "arm64", "8"), "linux/arm64/");
        assert_eq!(n("linux", "armhf", ""), "linux/arm/v7");
        assert_eq!(n("linux", "armel", ""), "linux/arm/v6");
        assert_eq!(n("linux", "arm", "6"), "linux/arm/v6");
        assert_eq!(n("macos", "arm64", ""), "darwin/arm64/");
        assert_eq!(n("linux", "Sparc", "X"), "linux/sparc/x");
        assert!(is_known_arch("arm64") && !is_known_arch("sparc"));
        assert!(is_known_os("linux") && !is_known_os("beos"));
    }
}
