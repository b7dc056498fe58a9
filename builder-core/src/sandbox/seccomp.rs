//! The seccomp filter a step runs under: what Docker's default profile
//! (which BuildKit applies to every RUN) refuses and the capabilities a
//! step lacks do not already refuse.
//!
//! Most of that profile guards calls that need a capability the step does
//! not have (`mount`, `setns`, `kexec_load`, ...); the kernel refuses
//! those anyway. What remains reaches the host or escapes the step without
//! any capability:
//! - the kernel keyrings (`keyctl`, `add_key`, `request_key`): not
//!   namespaced, so a step running as host root could read root's keys;
//! - new user namespaces (`unshare`/`clone` with `CLONE_NEWUSER`), in
//!   which a step would get back every capability it was denied; `clone3`
//!   gets `ENOSYS`, as Docker's profile gives it, so that libc falls back
//!   to `clone`, whose flags a filter can read;
//! - `userfaultfd`, `perf_event_open`, `bpf` and `syslog`, which Docker
//!   refuses for the host information and attack surface they expose.
//!
//! A denylist rather than Docker's allowlist: it refuses what differs and
//! nothing a build could need. Calls of the other ABIs the kernel runs on
//! the same machine (i386 and x32 on x86-64, arm on arm64) are checked
//! with their own numbers.

/// One BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct Prog {
    len: u16,
    filter: *const Insn,
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of the first argument (little-endian ABIs only).
const ARG0: u32 = 16;

const CLONE_NEWUSER: u32 = 0x1000_0000;

/// The calls an ABI names by its own numbers.
struct Abi {
    arch: u32,
    /// Applied to the number first (x32 sets bit 30 on x86-64's numbers).
    mask: Option<u32>,
    denied: [u32; 7],
    clone: u32,
    unshare: u32,
    clone3: u32,
}

// keyctl, add_key, request_key, userfaultfd, perf_event_open, bpf, syslog
const X86_64: Abi = Abi {
    arch: 0xc000_003e,
    mask: Some(!0x4000_0000),
    denied: [250, 248, 249, 323, 298, 321, 103],
    clone: 56,
    unshare: 272,
    clone3: 435,
};
const I386: Abi = Abi {
    arch: 0x4000_0003,
    mask: None,
    denied: [288, 286, 287, 374, 336, 357, 103],
    clone: 120,
    unshare: 310,
    clone3: 435,
};
const AARCH64: Abi = Abi {
    arch: 0xc000_00b7,
    mask: None,
    denied: [219, 217, 218, 282, 241, 280, 116],
    clone: 220,
    unshare: 97,
    clone3: 435,
};
const ARM: Abi = Abi {
    arch: 0x4000_0028,
    mask: None,
    denied: [311, 309, 310, 388, 364, 386, 103],
    clone: 120,
    unshare: 337,
    clone3: 435,
};

/// The ABIs of this machine's kernel, native first.
fn abis() -> &'static [Abi] {
    if cfg!(target_arch = "x86_64") {
        &[X86_64, I386]
    } else if cfg!(target_arch = "aarch64") {
        &[AARCH64, ARM]
    } else {
        &[]
    }
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// One ABI's checks; every path ends in a return.
fn block(abi: &Abi) -> Vec<Insn> {
    let mut b = vec![stmt(LD_W_ABS, NR)];
    if let Some(m) = abi.mask {
        b.push(stmt(AND_K, m));
    }
    b.push(jump(JEQ_K, abi.clone3, 0, 1));
    b.push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    for nr in abi.denied {
        b.push(jump(JEQ_K, nr, 0, 1));
        b.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    }
    // clone or unshare: refused when the flags ask for a user namespace.
    b.push(jump(JEQ_K, abi.clone, 1, 0));
    b.push(jump(JEQ_K, abi.unshare, 0, 3));
    b.push(stmt(LD_W_ABS, ARG0));
    b.push(jump(JSET_K, CLONE_NEWUSER, 0, 1));
    b.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
    b.push(stmt(RET_K, RET_ALLOW));
    b
}

/// The filter program; empty on an architecture without a table (the
/// step then runs unfiltered, as before).
pub(crate) fn program() -> Vec<Insn> {
    let mut p = vec![stmt(LD_W_ABS, ARCH)];
    for abi in abis() {
        let b = block(abi);
        let skip = u8::try_from(b.len()).unwrap_or(u8::MAX);
        p.push(jump(JEQ_K, abi.arch, 0, skip));
        p.extend(b);
    }
    if p.len() == 1 {
        return Vec::new();
    }
    // An ABI this table does not know: its numbers cannot be read.
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// Installs `program` for the calling thread and what it executes. Needs
/// `CAP_SYS_ADMIN` in the user namespace or `no_new_privs`. Only system
/// calls: safe between fork and exec.
///
/// # Safety
/// `program` must come from [`program`].
pub(crate) unsafe fn install(program: &[Insn]) -> bool {
    if program.is_empty() {
        return true;
    }
    let prog = Prog {
        len: program.len() as u16,
        filter: program.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    libc::syscall(
        libc::SYS_seccomp,
        SECCOMP_SET_MODE_FILTER,
        0 as libc::c_ulong,
        &prog as *const Prog,
    ) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let p = program();
        assert!(p.len() > 10 && p.len() < 200, "{}", p.len());
        for (i, insn) in p.iter().enumerate() {
            if insn.code == JEQ_K || insn.code == JSET_K {
                for off in [insn.jt, insn.jf] {
                    assert!(i + 1 + (off as usize) < p.len(), "insn {i}: {insn:?}");
                }
            }
        }
        assert_eq!(p.last().map(|i| i.k), Some(RET_ALLOW));
    }

    /// In a forked child with the filter on: keyrings, user namespaces and
    /// clone3 are refused as Docker refuses them; everything else works.
    #[test]
    fn the_filter_refuses_what_docker_refuses_and_nothing_else() {
        let p = program();
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain system calls in the forked child.
            unsafe {
                let errno = || *libc::__errno_location();
                let mut code = 0;
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !install(&p) {
                    libc::_exit(10);
                }
                // KEYCTL_GET_KEYRING_ID of the session keyring.
                if libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) != -1 || errno() != libc::EPERM {
                    code |= 1;
                }
                if libc::unshare(CLONE_NEWUSER as i32) != -1 || errno() != libc::EPERM {
                    code |= 2;
                }
                if libc::syscall(libc::SYS_clone3, 0usize, 0usize) != -1 || errno() != libc::ENOSYS
                {
                    code |= 4;
                }
                // clone without a user namespace (fork) still works.
                let child = libc::fork();
                if child == 0 {
                    libc::_exit(0);
                }
                let mut st = 0;
                if child < 0 || libc::waitpid(child, &mut st, 0) != child || st != 0 {
                    code |= 8;
                }
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "{status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "failed checks (bits)");
    }
}
