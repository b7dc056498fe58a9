//! RUN steps with their writable directories in a memory scratch
//! (`SandboxRunner::with_scratch`, `kiln build --scratch memory`): the same
//! layers as on disk, nothing left in memory after a build (failed or not),
//! volatile snapshots never kept in the store, and a step that fills the
//! scratch run again on disk. Run as root by `cargo test` and again as an
//! unprivileged user with subordinate ids by scripts/test.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use builder_core::build::resolve::StoreResolver;
use builder_core::build::run::SandboxRunner;
use builder_core::build::{self, BuildHooks, BuildOptions, BuiltImage, LayerBlob};
use builder_core::graph::{CancelReason, CancelToken};
use builder_core::snapshot::ScratchLimits;
use builder_core::store::Store;
use common::Scratch;

const BASE: &str = "FROM scratch\n\
                    COPY busybox /bin/busybox\n\
                    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Creates, modifies, deletes (whiteouts) and replaces directories
/// (opaque) across steps.
const CHURN: &str = "RUN mkdir -p /a/b/c /d /e && echo one > /a/b/c/f && echo two > /d/g \
                     && echo three > /e/h && ln -s /d/g /a/link && mkfifo /a/fifo\n\
                     RUN echo more >> /d/g && rm -rf /a/b && rm /e/h && chmod 700 /d \
                     && touch /a/new\n\
                     RUN rm -rf /d && mkdir /d && echo fresh > /d/only && rm -rf /e \
                     && mkdir -p /e/x && echo y > /e/x/y\n\
                     RUN rm -rf /bin/ls && mkdir -p /usr/local/lib && seq 300 | while read i; \
                     do echo $i > /usr/local/lib/f$i; done\n";

/// A context with busybox, a store, and a memory directory of our own that
/// the scratch is made in.
struct Fixture {
    dir: Scratch,
    store: Store,
    memory: MemoryDir,
}

/// A directory in /dev/shm (a tmpfs) deleted at the end.
struct MemoryDir(PathBuf);

impl Drop for MemoryDir {
    fn drop(&mut self) {
        let _ = builder_core::sandbox::remove_tree(&common::idmap(), &self.0);
    }
}

/// What one build gave.
struct Outcome {
    result: Result<BuiltImage, build::BuildError>,
    warnings: Vec<String>,
    /// The scratch directory the runner made, if it made one.
    scratch: Option<PathBuf>,
    /// Volatile snapshots in it when the build had ended (runner alive).
    volatile: Vec<PathBuf>,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let (dir, store) = common::build_dir(name);
        let memory = PathBuf::from(format!("/dev/shm/kiln-test-{}-{name}", std::process::id()));
        let _ = builder_core::sandbox::remove_tree(&common::idmap(), &memory);
        std::fs::create_dir_all(&memory).unwrap();
        Fixture {
            dir,
            store,
            memory: MemoryDir(memory),
        }
    }

    /// Builds `dockerfile` with the scratch in `memory` (when given) and
    /// the layer cache on or off.
    fn build(
        &self,
        dockerfile: &str,
        memory: Option<(&Path, ScratchLimits)>,
        cache: bool,
    ) -> Outcome {
        self.build_in(&self.store, dockerfile, memory, cache, &CancelToken::new())
    }

    fn build_in(
        &self,
        store: &Store,
        dockerfile: &str,
        memory: Option<(&Path, ScratchLimits)>,
        cache: bool,
        cancel: &CancelToken,
    ) -> Outcome {
        let df = builder_core::parser::parse_str(dockerfile).unwrap();
        let work = self.dir.join("work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let opts = BuildOptions {
            // Clamped mtimes: the digests of a disk and a memory build
            // can be compared.
            source_date_epoch: Some(0),
            ..common::build_options(&self.dir.join("ctx"), &work)
        };
        let mut resolver = StoreResolver {
            store,
            client: None,
            pull: false,
        };
        let mut runner = SandboxRunner::new(
            store,
            &opts.context,
            &work,
            true,
            Default::default(),
            Some(0),
        )
        .unwrap();
        if let Some((base, limits)) = memory {
            runner = runner.with_scratch(base, limits);
        }
        let scratch = runner.scratch_dir().map(Path::to_path_buf);
        let mut hooks = BuildHooks::none();
        hooks.cache = cache;
        hooks.use_cache = cache;
        hooks.cancel = cancel.clone();
        let result = build::build_with(&df, &opts, store, &mut resolver, Some(&runner), hooks)
            .map(|(image, _)| image);
        let volatile = scratch
            .as_ref()
            .map(|d| listing(&d.join("layers")))
            .unwrap_or_default();
        let warnings = runner.warnings();
        drop(runner);
        Outcome {
            result,
            warnings,
            scratch,
            volatile,
        }
    }

    /// The store's own (persistent) snapshot directory of `diff_id`.
    fn persistent_layer(&self, diff_id: &str) -> PathBuf {
        let hex = diff_id.trim_start_matches("sha256:");
        self.store
            .cache_dir("snapshots")
            .unwrap()
            .join("snapshots/v1/layers/sha256")
            .join(hex)
    }
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn diff_ids(image: &BuiltImage) -> Vec<String> {
    image.layers.iter().map(|l| l.diff_id.clone()).collect()
}

/// Path → size of the regular files in a layer blob.
fn layer_files(blob: &LayerBlob) -> Vec<(String, u64)> {
    let f = std::fs::File::open(&blob.path).unwrap();
    let reader: Box<dyn Read> = if blob.media_type.ends_with("+gzip") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if blob.media_type.ends_with("+zstd") {
        Box::new(zstd::Decoder::new(f).unwrap())
    } else {
        Box::new(f)
    };
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().size().unwrap())
        })
        .collect()
}

/// Limits a small test filesystem can meet.
fn small_limits() -> ScratchLimits {
    ScratchLimits {
        min_free: 1 << 20,
        budget: None,
        margin: 1 << 20,
        inode_margin: 16,
    }
}

#[test]
fn memory_scratch_gives_the_layers_disk_gives_and_leaves_nothing() {
    let fx = Fixture::new("same-layers");
    let dockerfile = format!("{BASE}{CHURN}");
    let disk = fx.build(&dockerfile, None, false);
    let disk_image = disk.result.expect("disk build");
    assert!(disk.scratch.is_none());

    let other = Store::open(&fx.dir.join("store2")).unwrap();
    let mem = fx.build_in(
        &other,
        &dockerfile,
        Some((&fx.memory.0, small_limits())),
        false,
        &CancelToken::new(),
    );
    let mem_image = mem.result.expect("memory build");
    let dir = mem.scratch.expect("the scratch was set up");
    assert!(dir.starts_with(&fx.memory.0), "{}", dir.display());
    // Every RUN ran in memory and became a volatile snapshot there.
    assert_eq!(
        mem.volatile.len(),
        5,
        "{:?} {:?}",
        mem.volatile,
        mem.warnings
    );
    assert!(
        !mem.warnings.iter().any(|w| w.contains("scratch")),
        "{:?}",
        mem.warnings
    );
    assert_eq!(diff_ids(&mem_image), diff_ids(&disk_image));
    let digests = |i: &BuiltImage| {
        i.layers
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&mem_image), digests(&disk_image));
    // Gone with the build, and not kept in the store either.
    assert!(!dir.exists());
    assert!(
        listing(&fx.memory.0).is_empty(),
        "{:?}",
        listing(&fx.memory.0)
    );
    let layers = other
        .cache_dir("snapshots")
        .unwrap()
        .join("snapshots/v1/layers/sha256");
    for id in diff_ids(&mem_image).iter().skip(1) {
        let hex = id.trim_start_matches("sha256:");
        assert!(!layers.join(hex).exists(), "{id} kept in the store");
    }
}

#[test]
fn a_failed_build_leaves_nothing_in_memory() {
    let fx = Fixture::new("failed");
    let dockerfile = format!("{BASE}RUN mkdir /x && echo a > /x/a\nRUN echo no >&2 && false\n");
    let out = fx.build(&dockerfile, Some((&fx.memory.0, small_limits())), false);
    let err = out.result.expect_err("the second RUN fails");
    assert!(
        err.message.contains("did not complete successfully"),
        "{err}"
    );
    let dir = out.scratch.expect("the scratch was set up");
    assert!(!dir.exists());
    assert!(
        listing(&fx.memory.0).is_empty(),
        "{:?}",
        listing(&fx.memory.0)
    );
}

#[test]
fn a_later_build_extracts_layers_that_were_volatile() {
    let fx = Fixture::new("later");
    let first = format!("{BASE}RUN mkdir /x && echo a > /x/a\nRUN echo b > /x/b && rm /x/a\n");
    let out = fx.build(&first, Some((&fx.memory.0, small_limits())), true);
    let image = out.result.expect("first build");
    assert_eq!(out.volatile.len(), 3, "{:?}", out.volatile);
    let top = image.layers.last().unwrap().diff_id.clone();
    assert!(!fx.persistent_layer(&top).exists());
    // Cache hits up to here, then a step over those layers: they come
    // back from their blobs, in the store this time.
    let second = format!("{first}RUN test ! -e /x/a && test \"$(cat /x/b)\" = b && touch /x/c\n");
    let out = fx.build(&second, None, true);
    let image = out.result.expect("second build");
    assert!(fx.persistent_layer(&top).is_dir());
    let files = layer_files(image.layers.last().unwrap());
    assert!(files.iter().any(|(p, _)| p == "x/c"), "{files:?}");
}

#[test]
fn a_step_that_fills_the_scratch_runs_again_on_disk() {
    let fx = Fixture::new("filled");
    // Rootless, no small tmpfs can be mounted: a margin larger than any
    // filesystem makes every step count as one that filled the scratch.
    let limits = ScratchLimits {
        margin: u64::MAX,
        ..small_limits()
    };
    let dockerfile = format!("{BASE}RUN mkdir /x && echo a > /x/a\n");
    let out = fx.build(&dockerfile, Some((&fx.memory.0, limits)), false);
    let image = out.result.expect("build");
    assert!(out.volatile.is_empty(), "{:?}", out.volatile);
    let reruns = out
        .warnings
        .iter()
        .filter(|w| w.contains("filled the memory scratch; running it again on disk"))
        .count();
    assert_eq!(reruns, 2, "{:?}", out.warnings);
    let files = layer_files(image.layers.last().unwrap());
    assert!(
        files.iter().any(|(p, s)| p == "x/a" && *s == 2),
        "{files:?}"
    );
    assert!(listing(&fx.memory.0).is_empty());
}

/// An 8 MiB tmpfs in the fixture's directory (as root), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(fx: &Fixture) -> Tmpfs {
        let mnt = fx.dir.join("tiny");
        std::fs::create_dir_all(&mnt).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(status.success());
        Tmpfs(mnt)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// As root: a real 8 MiB tmpfs that steps writing 16 MiB fill, one of
/// which ignores the error. Both layers must hold the whole file, written
/// by the run on disk.
#[test]
fn a_full_tmpfs_never_gives_a_truncated_layer() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Mounting needs root; the rootless path is the test above.
        return;
    }
    let fx = Fixture::new("tmpfs");
    let tiny = Tmpfs::mount(&fx);
    let mnt = tiny.0.clone();
    let dockerfile = format!(
        "{BASE}RUN dd if=/dev/zero of=/big bs=1M count=16\n\
         RUN dd if=/dev/zero of=/big2 bs=1M count=16 || true\n\
         RUN echo small > /small\n"
    );
    let out = fx.build(&dockerfile, Some((&mnt, small_limits())), false);
    let image = out.result.expect("build");
    let reruns: Vec<&String> = out
        .warnings
        .iter()
        .filter(|w| w.contains("filled the memory scratch; running it again on disk"))
        .collect();
    assert_eq!(reruns.len(), 2, "{:?}", out.warnings);
    assert!(reruns.iter().any(|w| w.contains("of=/big2")), "{reruns:?}");
    let n = image.layers.len();
    let big = layer_files(&image.layers[n - 3]);
    let big2 = layer_files(&image.layers[n - 2]);
    assert!(big.contains(&("big".into(), 16 << 20)), "{big:?}");
    assert!(big2.contains(&("big2".into(), 16 << 20)), "{big2:?}");
    // The busybox step and the small one fit: they ran in memory.
    assert_eq!(out.volatile.len(), 2, "{:?}", out.volatile);
    assert!(listing(&mnt).is_empty(), "{:?}", listing(&mnt));
}

#[test]
fn a_scratch_is_refused_where_overlay_cannot_use_it() {
    let fx = Fixture::new("refused");
    let mut snaps =
        builder_core::snapshot::Store::open(&fx.dir.join("snaps"), common::idmap()).unwrap();
    snaps.set_mode(builder_core::snapshot::RootfsMode::Copy);
    let err = snaps
        .set_scratch(&fx.memory.0, ScratchLimits::default())
        .expect_err("copy mode has no upper directory");
    assert!(err.to_string().contains("only kernel overlayfs"), "{err}");
    assert!(snaps.scratch_dir().is_none());
    assert!(listing(&fx.memory.0).is_empty());
    // Too little room for even one step: refused, nothing left behind.
    snaps.set_mode(builder_core::snapshot::RootfsMode::KernelOverlay);
    let greedy = ScratchLimits {
        min_free: u64::MAX,
        ..ScratchLimits::default()
    };
    let err = snaps
        .set_scratch(&fx.memory.0, greedy)
        .expect_err("no filesystem has that much room");
    assert!(err.to_string().contains("MiB free"), "{err}");
    assert!(listing(&fx.memory.0).is_empty());
    // A base that does not exist: refused with the path named.
    snaps.set_mode(builder_core::snapshot::RootfsMode::KernelOverlay);
    let missing = fx.memory.0.join("missing");
    let err = snaps
        .set_scratch(&missing, ScratchLimits::default())
        .expect_err("no such directory");
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn a_cancelled_build_leaves_nothing_in_memory() {
    let fx = Fixture::new("cancel");
    let dockerfile = format!("{BASE}RUN echo a > /a\nRUN touch /started && sleep 30\n");
    let cancel = CancelToken::new();
    let start = std::time::Instant::now();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            // Cancel once the second step's workspace is in memory.
            let limit = std::time::Duration::from_secs(20);
            while start.elapsed() < limit {
                let started = std::fs::read_dir(&fx.memory.0)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .flat_map(|d| listing(&d.path().join("work")))
                    .any(|ws| ws.join("upper/started").exists());
                if started {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            cancel.cancel(CancelReason::Signal(2));
        });
        fx.build_in(
            &fx.store,
            &dockerfile,
            Some((&fx.memory.0, small_limits())),
            false,
            &cancel,
        )
    });
    assert!(out.result.is_err());
    assert!(start.elapsed() < std::time::Duration::from_secs(25));
    assert!(out.scratch.is_some());
    assert!(
        listing(&fx.memory.0).is_empty(),
        "{:?}",
        listing(&fx.memory.0)
    );
}

#[test]
fn scratch_dirs_of_builds_that_were_killed_are_deleted() {
    let fx = Fixture::new("stale");
    // No process has a pid above the kernel's limit (2^22).
    let stale = fx.memory.0.join("kiln-scratch-99999999-0");
    let live = fx
        .memory
        .0
        .join(format!("kiln-scratch-{}-999999", std::process::id()));
    let other = fx.memory.0.join("unrelated-99999999-0");
    for d in [&stale, &live, &other] {
        std::fs::create_dir_all(d.join("layers/x")).unwrap();
    }
    let mut snaps =
        builder_core::snapshot::Store::open(&fx.dir.join("snaps"), common::idmap()).unwrap();
    snaps.detect_mode().unwrap();
    let dir = snaps
        .set_scratch(&fx.memory.0, ScratchLimits::default())
        .unwrap();
    assert!(!stale.exists());
    assert!(live.exists() && other.exists());
    let mode = std::fs::metadata(&dir).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o700);
    snaps.clear_scratch().unwrap();
    assert!(!dir.exists());
    assert!(snaps.scratch_dir().is_none());
}

#[test]
fn a_step_going_over_the_budget_is_stopped_and_runs_again_on_disk() {
    let fx = Fixture::new("budget");
    let limits = ScratchLimits {
        budget: Some(4 << 20),
        ..small_limits()
    };
    // In memory the step writes 16 MiB and then would wait 60 s; on disk
    // it does not wait.
    let dockerfile = format!(
        "{BASE}RUN dd if=/dev/zero of=/big bs=1M count=16 && \
         if grep -q 'upperdir=/dev/shm/' /proc/self/mountinfo; then sleep 60; fi\n"
    );
    let start = std::time::Instant::now();
    let out = fx.build(&dockerfile, Some((&fx.memory.0, limits)), false);
    let image = out.result.expect("build");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    let reruns = out
        .warnings
        .iter()
        .filter(|w| w.contains("filled the memory scratch; running it again on disk"))
        .count();
    // (Other users of /dev/shm count against the budget too, so the
    // busybox step may have been run again as well.)
    assert!(
        out.warnings.iter().any(|w| w.contains("of=/big")),
        "{:?}",
        out.warnings
    );
    assert!(reruns <= 2, "{:?}", out.warnings);
    let files = layer_files(image.layers.last().unwrap());
    assert!(files.contains(&("big".into(), 16 << 20)), "{files:?}");
}

/// As root, on a private 8 MiB tmpfs: once the free space is under
/// `min_free`, steps run on disk (with one warning) and still see the
/// volatile layers below them.
#[test]
fn steps_run_on_disk_while_the_scratch_is_short_of_room() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Mounting needs root.
        return;
    }
    let fx = Fixture::new("short");
    let tiny = Tmpfs::mount(&fx);
    let limits = ScratchLimits {
        min_free: 6 << 20,
        budget: Some(8 << 20),
        margin: 1 << 20,
        inode_margin: 16,
    };
    let dockerfile = format!(
        "{BASE}RUN dd if=/dev/zero of=/three bs=1M count=3\n\
         RUN test \"$(wc -c < /three)\" = 3145728 && echo ok > /after\n\
         RUN echo again > /again\n"
    );
    let out = fx.build(&dockerfile, Some((&tiny.0, limits)), false);
    let image = out.result.expect("build");
    // busybox and the 3 MiB step in memory, then no room for the others.
    assert_eq!(out.volatile.len(), 2, "{:?}", out.volatile);
    let short: Vec<&String> = out
        .warnings
        .iter()
        .filter(|w| w.contains("short of room"))
        .collect();
    assert_eq!(short.len(), 1, "{:?}", out.warnings);
    let n = image.layers.len();
    assert!(layer_files(&image.layers[n - 2]).contains(&("after".into(), 3)));
    assert!(listing(&tiny.0).is_empty(), "{:?}", listing(&tiny.0));
}
