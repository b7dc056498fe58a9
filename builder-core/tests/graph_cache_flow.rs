//! The graph, the cache and the reporter together, the way the engine is
//! to use them: four independent stages merged by a fifth, each step keyed
//! by its stage's `KeyChain`, looked up before any work, recorded after,
//! with events for every step. No Dockerfile engine here: a step's "work"
//! writes a real blob into a real store.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use builder_core::cache::{CacheIndex, CacheKey, CacheResult, CachedLayer, KeyChain};
use builder_core::digest::Digest;
use builder_core::graph::{Graph, NodeCtx, RunError, Scheduler};
use builder_core::image::{media, Descriptor};
use builder_core::progress::{Event, Recorder, Reporter, StepId, StepPlace, StepResult};
use builder_core::store::Store;

struct Stage {
    name: &'static str,
    /// ARG VERSION in scope for its RUN.
    version: String,
    /// `RUN` text, then (for the merge) one `COPY --from` per dependency.
    run: String,
    fail: bool,
}

struct World<'a> {
    index: CacheIndex<'a>,
    reporter: Recorder,
    ids: AtomicUsize,
    executed: Mutex<Vec<String>>,
    spans: Mutex<BTreeMap<&'static str, (Instant, Instant)>>,
}

fn step<'a>(
    w: &World<'a>,
    ctx: &NodeCtx<'_, CacheKey>,
    identity: String,
    place: StepPlace,
    label: &str,
    builder: builder_core::cache::KeyBuilder,
    fail: bool,
) -> Result<CacheKey, String> {
    let id = StepId(w.ids.fetch_add(1, Ordering::SeqCst) as u64);
    let start = Instant::now();
    w.reporter.event(&Event::StepStarted {
        id,
        place,
        text: label.to_string(),
        lines: None,
    });
    let (key, inputs) = builder.build();
    if w.index.lookup(&key).map_err(|e| e.to_string())?.is_some() {
        w.index.touch(&identity, &key).map_err(|e| e.to_string())?;
        w.reporter.event(&Event::StepCached {
            id,
            key: key.to_string(),
        });
        return Ok(key);
    }
    let why = w
        .index
        .explain_miss(&identity, &inputs)
        .map_err(|e| e.to_string())?;
    w.reporter.event(&Event::CacheMiss {
        id,
        reasons: why.reasons(),
        changed: why.changed_inputs(),
    });
    // The "work": poll the token while busy, then commit atomically.
    let busy = Instant::now() + Duration::from_millis(if fail { 5 } else { 200 });
    while Instant::now() < busy {
        if let Err(c) = ctx.cancel().check() {
            w.reporter.event(&Event::StepFinished {
                id,
                duration: start.elapsed(),
                result: StepResult::Cancelled,
            });
            return Err(c.to_string());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if fail {
        let error = "exit code 1".to_string();
        w.reporter.event(&Event::StepFailed {
            id,
            error: error.clone(),
            last_lines: vec![],
            duration: start.elapsed(),
        });
        return Err(error);
    }
    let content = format!("layer of {label} under {key}");
    let store = w.index.store();
    let blob = store
        .put_bytes(content.as_bytes())
        .map_err(|e| e.to_string())?;
    let result = CacheResult {
        layer: Some(CachedLayer {
            descriptor: Descriptor::new(media::OCI_LAYER_GZIP, blob, content.len() as u64),
            diff_id: Digest::of(content.as_bytes()),
        }),
        ..CacheResult::default()
    };
    w.index
        .record(&identity, &inputs, &result)
        .map_err(|e| e.to_string())?;
    w.executed.lock().unwrap().push(label.to_string());
    w.reporter.event(&Event::StepFinished {
        id,
        duration: start.elapsed(),
        result: StepResult::Done,
    });
    Ok(key)
}

/// Builds the graph (a-d independent, merge copies from each, one unused
/// stage that would fail) and runs it.
fn build(w: &World, versions: [&str; 4], fail_c: bool) -> Result<CacheKey, RunError<String>> {
    let mut g: Graph<Stage> = Graph::new();
    let names = ["a", "b", "c", "d"];
    let mut deps = Vec::new();
    for (i, name) in names.iter().enumerate() {
        deps.push(g.add(
            format!("stage:{name}"),
            Stage {
                name,
                version: versions[i].to_string(),
                run: format!("RUN compile {name}"),
                fail: fail_c && *name == "c",
            },
        ));
    }
    g.add(
        "stage:broken",
        Stage {
            name: "broken",
            version: String::new(),
            run: "RUN false".into(),
            fail: true,
        },
    );
    let merge = g
        .add_with_deps(
            "stage:merge",
            Stage {
                name: "merge",
                version: String::new(),
                run: String::new(),
                fail: false,
            },
            &deps,
        )
        .unwrap();
    let out = Scheduler::new(4).run(&g, &[merge], |ctx: &NodeCtx<CacheKey>, stage| {
        let begin = Instant::now();
        let mut chain = KeyChain::from_image("sha256:base", "linux/amd64");
        let place = |position| StepPlace {
            stage: stage.name.to_string(),
            position,
            total: 2,
        };
        let key = if stage.name == "merge" {
            for (n, (dep, from_key)) in ctx.deps().enumerate() {
                let text = format!("COPY --from={} /out /{}", dep.index(), dep.index());
                let b = chain
                    .copy("COPY", &text)
                    .from_source(&dep.index().to_string(), from_key.to_string());
                let k = step(w, ctx, format!("merge/{n}"), place(n + 2), &text, b, false)?;
                chain.advance(k);
            }
            chain.key().clone()
        } else {
            chain.set_arg("VERSION", &stage.version);
            // LABEL / CMD would be here: they leave the chain alone.
            let b = chain.run(&stage.run);
            let k = step(
                w,
                ctx,
                format!("{}/1", stage.name),
                place(2),
                &stage.run,
                b,
                stage.fail,
            )?;
            chain.advance(k);
            chain.key().clone()
        };
        w.spans
            .lock()
            .unwrap()
            .insert(stage.name, (begin, Instant::now()));
        Ok(key)
    });
    out.map(|mut o| o.take(merge).unwrap())
}

fn world(store: &Store) -> World<'_> {
    World {
        index: CacheIndex::open(store).unwrap(),
        reporter: Recorder::new(),
        ids: AtomicUsize::new(1),
        executed: Mutex::new(Vec::new()),
        spans: Mutex::new(BTreeMap::new()),
    }
}

#[test]
fn stages_overlap_unused_ones_never_run_and_rebuilds_hit_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    let w = world(&store);
    let k1 = build(&w, ["1", "1", "1", "1"], false).unwrap();
    let ran = w.executed.lock().unwrap().clone();
    assert_eq!(ran.len(), 8, "4 RUNs + 4 COPYs: {ran:?}");
    assert!(
        !ran.iter().any(|r| r.contains("false")),
        "unused stage never ran"
    );
    let spans = w.spans.lock().unwrap().clone();
    let leaves: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| spans[n]).collect();
    let latest_start = leaves.iter().map(|s| s.0).max().unwrap();
    let earliest_end = leaves.iter().map(|s| s.1).min().unwrap();
    assert!(latest_start < earliest_end, "independent stages overlapped");

    // No-op rebuild: every step is a hit, nothing runs, same final key.
    let w = world(&store);
    assert_eq!(build(&w, ["1", "1", "1", "1"], false).unwrap(), k1);
    assert!(w.executed.lock().unwrap().is_empty());
    let cached = w
        .reporter
        .events()
        .iter()
        .filter(|e| matches!(e, Event::StepCached { .. }))
        .count();
    assert_eq!(cached, 8);

    // A build arg of stage b: b's RUN and the COPY from b rebuild, and
    // each miss names its cause.
    let w = world(&store);
    let k3 = build(&w, ["1", "2", "1", "1"], false).unwrap();
    assert_ne!(k3, k1);
    let mut ran = w.executed.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran.len(), 4, "{ran:?}");
    assert_eq!(ran[0], "COPY --from=1 /out /1");
    assert_eq!(ran[3], "RUN compile b");
    let reasons: Vec<Vec<String>> = w
        .reporter
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::CacheMiss { reasons, .. } => Some(reasons.clone()),
            _ => None,
        })
        .collect();
    assert!(reasons.contains(&vec!["build arg VERSION changed".to_string()]));
    assert!(reasons.contains(&vec!["source 1 changed".to_string()]));
    assert!(reasons.contains(&vec!["an earlier step changed".to_string()]));
}

#[test]
fn a_failing_stage_stops_the_others_and_leaves_the_store_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = world(&store);
    let err = build(&w, ["1", "1", "1", "1"], true).unwrap_err();
    match err {
        RunError::Failed { key, error, .. } => {
            assert_eq!(key, "stage:c");
            assert_eq!(error, "exit code 1");
        }
        other => panic!("{other:?}"),
    }
    let events = w.reporter.events();
    let cancelled = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::StepFinished {
                    result: StepResult::Cancelled,
                    ..
                }
            )
        })
        .count();
    // Siblings that had started were stopped; none finished.
    assert!(cancelled <= 3);
    assert!(!events.iter().any(|e| matches!(
        e,
        Event::StepFinished {
            result: StepResult::Done,
            ..
        }
    )));
    assert!(
        w.executed.lock().unwrap().is_empty(),
        "none of them committed"
    );
    assert!(w.index.keys().unwrap().is_empty(), "no cache entry");
    let tmp: Vec<_> = std::fs::read_dir(store.temp_dir()).unwrap().collect();
    assert!(tmp.is_empty(), "no half-written file: {tmp:?}");
    let blobs = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "no layer blob");
}
