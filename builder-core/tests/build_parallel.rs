//! The engine's scheduling of stages, end to end through the sandbox: independent
//! stages run at the same time (up to `jobs`), a failing step or a cancel
//! stops the running ones and leaves nothing behind, and a stage nothing
//! needs never runs. Run as root by `cargo test` and again as an
//! unprivileged user with subordinate ids by scripts/test.
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use builder_core::build::resolve::StoreResolver;
use builder_core::build::run::SandboxRunner;
use builder_core::build::{self, BuildError, BuildHooks, BuildOptions};
use builder_core::graph::{CancelReason, CancelToken};
use builder_core::store::Store;
use common::Scratch;

/// A context with busybox and `dockerfile`, a store, and a scratch dir.
struct Fixture {
    dir: Scratch,
    store: Store,
}

/// The stage every test starts from: busybox with its applets.
const BASE: &str = "FROM scratch AS base\n\
                    COPY busybox /bin/busybox\n\
                    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

impl Fixture {
    fn new(name: &str) -> Fixture {
        let (dir, store) = common::build_dir(name);
        Fixture { dir, store }
    }

    fn build(
        &self,
        dockerfile: &str,
        target: Option<&str>,
        jobs: usize,
        cancel: &CancelToken,
    ) -> Result<build::BuiltImage, BuildError> {
        self.build_inner(dockerfile, target, jobs, cancel, false)
    }

    /// [`build`](Self::build) on two jobs with the layer cache on.
    fn build_with_cache(&self, dockerfile: &str) -> Result<build::BuiltImage, BuildError> {
        self.build_inner(dockerfile, None, 2, &CancelToken::new(), true)
    }

    fn build_inner(
        &self,
        dockerfile: &str,
        target: Option<&str>,
        jobs: usize,
        cancel: &CancelToken,
        cache: bool,
    ) -> Result<build::BuiltImage, BuildError> {
        let df = builder_core::parser::parse_str(dockerfile).unwrap();
        let work = self.dir.join("work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let opts = BuildOptions {
            target: target.map(str::to_string),
            ..common::build_options(&self.dir.join("ctx"), &work)
        };
        let mut resolver = StoreResolver {
            store: &self.store,
            client: None,
            pull: false,
        };
        let runner = SandboxRunner::new(
            &self.store,
            &opts.context,
            &work,
            true,
            Default::default(),
            None,
        )
        .unwrap();
        let mut hooks = BuildHooks::none();
        hooks.jobs = jobs;
        hooks.cancel = cancel.clone();
        hooks.cache = cache;
        hooks.use_cache = cache;
        build::build_with(&df, &opts, &self.store, &mut resolver, Some(&runner), hooks)
            .map(|(image, _)| image)
    }

    /// The host directory behind `RUN --mount=type=cache,id=ID` (no
    /// uid/gid/mode): the engine names it after the id's digest.
    fn cache(&self, id: &str) -> PathBuf {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.store.cache_dir(&format!("run-cache-{hex}")).unwrap()
    }

    /// Files a build may leave only while it runs.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let snapshots = self
            .store
            .cache_dir("snapshots")
            .unwrap()
            .join("snapshots/v1");
        for dir in [
            self.store.temp_dir(),
            snapshots.join("tmp"),
            snapshots.join("work"),
            snapshots.join("trash"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                found.extend(rd.flatten().map(|e| e.path()));
            }
        }
        found
    }
}

/// Waits (bounded) for `path` to exist.
fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Two stages that each leave a mark in one shared cache mount and wait
/// (at most 5 s) for the other's: they only both see each other when they
/// run at the same time.
fn rendezvous(id: &str) -> String {
    let stage = |me: &str, other: &str| {
        format!(
            "FROM base AS {me}\n\
             RUN --mount=type=cache,target=/c,id={id} \\\n\
             touch /c/{me}; i=0; while [ ! -e /c/{other} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \\\n\
             if [ -e /c/{other} ]; then echo yes > /{me}-saw; else echo no > /{me}-saw; fi\n"
        )
    };
    format!(
        "{BASE}{}{}FROM scratch\nCOPY --from=a /a-saw /\nCOPY --from=b /b-saw /\n",
        stage("a", "b"),
        stage("b", "a")
    )
}

fn saw(image: &build::BuiltImage, who: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    for l in &image.layers {
        let f = std::fs::File::open(&l.path).unwrap();
        let r = builder_core::layer::decompressing_reader(std::io::BufReader::new(f)).unwrap();
        tar::Archive::new(r).unpack(dir.path()).unwrap();
    }
    std::fs::read_to_string(dir.path().join(format!("{who}-saw")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn independent_stages_overlap_with_two_jobs_and_not_with_one() {
    let f = Fixture::new("overlap");
    let image = f
        .build(&rendezvous("meet2"), None, 2, &CancelToken::new())
        .unwrap();
    assert_eq!(saw(&image, "a"), "yes", "stage a saw b running");
    assert_eq!(saw(&image, "b"), "yes", "stage b saw a running");

    // One job: the stages run one after the other, so the first one built
    // never sees the second.
    let f = Fixture::new("serial");
    let image = f
        .build(&rendezvous("meet1"), None, 1, &CancelToken::new())
        .unwrap();
    let seen = [saw(&image, "a"), saw(&image, "b")];
    assert!(
        seen.contains(&"no".to_string()),
        "with --jobs 1 one stage ran alone: {seen:?}"
    );
}

#[test]
fn a_failing_step_stops_running_steps_and_leaves_nothing_behind() {
    let f = Fixture::new("fail");
    let df = format!(
        "{BASE}\
         FROM base AS slow\n\
         RUN --mount=type=cache,target=/c,id=slow touch /c/started; sleep 3; touch /c/finished\n\
         FROM base AS broken\n\
         RUN i=0; while [ ! -e /c/started ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo broken; exit 3\n\
         FROM scratch\n\
         COPY --from=slow /bin/busybox /slow\n\
         COPY --from=broken /bin/busybox /broken\n"
    )
    // Both stages see the same cache so the failure comes once the slow
    // step is surely running.
    .replace(
        "FROM base AS broken\nRUN ",
        "FROM base AS broken\nRUN --mount=type=cache,target=/c,id=slow ",
    );
    let started = Instant::now();
    let err = f.build(&df, None, 2, &CancelToken::new()).unwrap_err();
    assert!(err.message.contains("exit code: 3"), "{}", err.message);
    assert!(
        err.message.contains("broken"),
        "the step's output: {}",
        err.message
    );
    assert_eq!(err.line, Some(7), "the failing RUN's line");
    let cache = f.cache("slow");
    assert!(cache.join("started").exists(), "the slow step had started");
    // Give a survivor time to finish its sleep: it must have been killed.
    let remaining = Duration::from_secs(4).saturating_sub(started.elapsed());
    std::thread::sleep(remaining);
    assert!(
        !cache.join("finished").exists(),
        "the slow step was stopped"
    );
    assert_eq!(f.leftovers(), Vec::<PathBuf>::new());
    assert!(
        f.store.images().unwrap().is_empty(),
        "no image entered the store"
    );
}

#[test]
fn cancelling_the_token_stops_the_build_like_ctrl_c() {
    let f = Fixture::new("cancel");
    let df = format!(
        "{BASE}RUN --mount=type=cache,target=/c,id=long touch /c/started; sleep 5; touch /c/finished\n"
    );
    let cancel = CancelToken::new();
    let marker = f.cache("long").join("started");
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            if wait_for(&marker, Duration::from_secs(20)) {
                cancel.cancel(CancelReason::Signal(2));
            }
        });
        f.build(&df, None, 2, &cancel).unwrap_err()
    });
    assert_eq!(err.message, "build interrupted");
    std::thread::sleep(Duration::from_secs(5));
    assert!(!f.cache("long").join("finished").exists());
    assert_eq!(f.leftovers(), Vec::<PathBuf>::new());
}

#[test]
fn a_broken_stage_nothing_needs_never_runs() {
    let f = Fixture::new("unused");
    let df = format!(
        "{BASE}\
         FROM base AS broken\n\
         RUN --mount=type=cache,target=/c,id=unused touch /c/ran; exit 1\n\
         FROM base AS good\n\
         RUN echo ok > /ok\n"
    );
    let image = f.build(&df, None, 2, &CancelToken::new()).unwrap();
    assert!(!image.layers.is_empty());
    assert!(!f.cache("unused").join("ran").exists());
    // Named as the target, it does run (and fails).
    let err = f
        .build(&df, Some("broken"), 2, &CancelToken::new())
        .unwrap_err();
    assert!(err.message.contains("exit code: 1"), "{}", err.message);
}

#[test]
fn identical_steps_of_parallel_stages_run_once() {
    let f = Fixture::new("dedupe");
    let step =
        "RUN --mount=type=cache,target=/c,id=dedupe echo ran >> /c/log; sleep 1; echo out > /out\n";
    let df = format!(
        "{BASE}FROM base AS a\n{step}FROM base AS b\n{step}\
         FROM scratch\nCOPY --from=a /out /a\nCOPY --from=b /out /b\n"
    );
    f.build_with_cache(&df).unwrap();
    let log = std::fs::read_to_string(f.cache("dedupe").join("log")).unwrap();
    assert_eq!(log, "ran\n", "the step shared by a and b ran once");
}
