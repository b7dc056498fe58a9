//! `kiln build`: flags to a [`builder_core::build::BuildOptions`], the
//! built image into the store and to each `-o` output.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use builder_core::build::output::{compress_plain_layers, manifest, store_image};
use builder_core::build::resolve::StoreResolver;
use builder_core::build::run::SandboxRunner;
use builder_core::build::secrets::SecretStore;
use builder_core::build::{self, BuildError, BuildOptions, NamedContext, Platform};
use builder_core::export::{self, Dest, ExportOptions, ExportReport, OutputSpec};
use builder_core::registry::Client;

use super::registry_flags::RegistryFlags;
use crate::render::{ProgressMode, Renderer};
use builder_core::cache::{transfer, transfer::CacheSpec, CacheIndex};
use builder_core::context::{self, BuildContext, ContextSource, DockerfileFlag, WalkOptions};
use builder_core::graph::{signal, CancelReason, CancelToken};
use builder_core::parser;
use builder_core::progress::{Event, Reporter};
use builder_core::registry::NoProgress;
use builder_core::snapshot::RootfsMode;
use builder_core::store::{normalize_name, Store};

/// Flags of `kiln build`.
#[derive(clap::Args)]
pub struct Args {
    /// The Dockerfile (`-` for standard input); by default `Dockerfile` at
    /// the context root.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name the image NAME[:TAG] in the store (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set a build-time variable KEY=VALUE (repeatable).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build this stage instead of the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// Add a label KEY=VALUE to the image (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Target platform os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Do not look steps up in the layer cache (results are still recorded).
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages (comma-separated names).
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Write why each step missed the cache as JSON to FILE (`-`: stdout).
    #[arg(long = "explain-cache", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub explain_cache: Option<PathBuf>,
    /// Export the build cache: type=local,dest=DIR or type=registry,ref=REF
    /// (optional mode=min|max).
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// Import a build cache first: type=local,src=DIR, type=registry,ref=REF
    /// or a bare reference (repeatable).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// No progress output, only errors and the image digest (`--progress
    /// quiet`).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Add HOST:IP to RUN steps' /etc/hosts (repeatable).
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Size of RUN steps' /dev/shm: bytes, or a number with b, k, m or g
    /// (default 64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Export the image: type=oci|docker|local|tar,dest=PATH (repeatable).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Write the image digest to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build metadata (digests) as JSON to this file.
    #[arg(long)]
    pub metadata_file: Option<PathBuf>,
    /// A named context NAME=oci-layout://PATH[:TAG|@DIGEST] or NAME=DIR.
    #[arg(long = "build-context")]
    pub build_contexts: Vec<String>,
    /// Push every `-t` name to its registry after the build.
    #[arg(long)]
    pub push: bool,
    /// Resolve base image tags again even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// Network for RUN steps: default, none or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Stages built at the same time (default: one per core).
    #[arg(long, short = 'j', default_value_t = 0, hide_default_value = true)]
    pub jobs: usize,
    /// Expose a secret to `RUN --mount=type=secret`: id=ID[,src=FILE|,env=VAR]
    /// (repeatable; with only id=ID, the variable ID if set, else the file ID).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Forward an ssh-agent or keys to `RUN --mount=type=ssh`: default, ID
    /// ($SSH_AUTH_SOCK), ID=SOCKET or ID=KEYFILE[,KEYFILE...] (repeatable; key
    /// files are served by a private ssh-agent and must not need a passphrase).
    #[arg(long = "ssh")]
    pub ssh: Vec<String>,
    /// Where RUN steps write: disk (the store's filesystem) or memory (a
    /// tmpfs: $XDG_RUNTIME_DIR or /dev/shm; steps fall back to the disk when
    /// it runs short, and a step that fills it runs again on disk).
    /// Default: $KILN_SCRATCH, else disk.
    #[arg(long, value_enum)]
    pub scratch: Option<ScratchPlace>,
    /// The store's root directory.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The build context: a directory, a tar archive, or `-` (tar on stdin).
    pub context: String,
}

/// `--add-host NAME:IP` (or `NAME=IP`) as (name, address), as docker
/// checks it: the address must be an IP (an IPv6 one may follow the first
/// `:`, as in `db:::1`).
fn parse_add_host(v: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("error: --add-host {v:?}: {why} (expected HOST:IP)");
    let (name, addr) = v
        .split_once('=')
        .or_else(|| v.split_once(':'))
        .ok_or_else(|| bad("no address"))?;
    let name = name.trim();
    let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("invalid host name"));
    }
    if addr == "host-gateway" {
        return Err(bad(
            "host-gateway needs a daemon's bridge network; give an address",
        ));
    }
    addr.parse::<std::net::IpAddr>()
        .map_err(|_| bad("invalid IP address"))?;
    Ok((name.to_string(), addr.to_string()))
}

/// `--shm-size` as docker reads it (`RAMInBytes`): a number with an
/// optional b, k, m or g suffix (binary units; `kb`, `mib` and the like too).
fn parse_shm_size(v: &str) -> Result<u64, String> {
    let bad = || format!("error: --shm-size {v:?}: expected a size such as 128m or 1g");
    let t = v.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = num * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Where RUN steps' writable directories live (`--scratch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScratchPlace {
    /// The store's filesystem.
    Disk,
    /// A RAM-backed filesystem.
    Memory,
}

impl ScratchPlace {
    /// The flag, else `$KILN_SCRATCH`, else disk.
    fn choose(flag: Option<ScratchPlace>) -> Result<ScratchPlace, String> {
        if let Some(p) = flag {
            return Ok(p);
        }
        match std::env::var("KILN_SCRATCH").ok().as_deref() {
            None | Some("") | Some("disk") => Ok(ScratchPlace::Disk),
            Some("memory") => Ok(ScratchPlace::Memory),
            Some(v) => Err(format!(
                "error: KILN_SCRATCH={v:?}: expected memory or disk"
            )),
        }
    }
}

/// `$KILN_ROOTFS_MODE` (`overlay`, `fuse-overlayfs` or `copy`): how RUN
/// steps' roots are assembled, when not as detected.
fn rootfs_mode() -> Result<Option<RootfsMode>, String> {
    match std::env::var("KILN_ROOTFS_MODE").ok().as_deref() {
        None | Some("") => Ok(None),
        Some(v) => RootfsMode::parse(v).map(Some).ok_or_else(|| {
            format!("error: KILN_ROOTFS_MODE={v:?}: expected overlay, fuse-overlayfs or copy")
        }),
    }
}

fn key_value(flag: &str, text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{flag} {text:?}: expected KEY=VALUE")),
    }
}

fn render(err: &BuildError, source: &str, name: &str) -> String {
    match err.line {
        Some(line) => {
            parser::render_snippet(source, name, line, err.column.unwrap_or(1), &err.message)
        }
        None => format!("error: {}", err.message),
    }
}

/// Runs the subcommand.
pub fn run(mut args: Args, registry: &RegistryFlags) -> Result<ExitCode, String> {
    if args.quiet {
        args.progress = ProgressMode::Quiet;
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        // `--build-arg NAME` takes the value from the environment.
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                Err(_) => continue,
            },
        };
        build_args.insert(k, v);
    }
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        // As docker's ConvertKVStringsToMap: a bare key has an empty value.
        let (k, v) = if l.contains('=') || l.is_empty() {
            key_value("--label", l)?
        } else {
            (l.clone(), String::new())
        };
        labels.insert(k, v);
    }
    let mut named_contexts = BTreeMap::new();
    for c in &args.build_contexts {
        let (k, v) = key_value("--build-context", c)?;
        named_contexts.insert(k, NamedContext::parse(&v)?);
    }
    if args.push && args.tags.is_empty() {
        return Err("error: --push needs at least one -t NAME to push to".to_string());
    }
    let mut image_outputs = Vec::new();
    let mut file_outputs = Vec::new();
    for o in &args.outputs {
        match image_output(o)? {
            Some(io) => image_outputs.push(io),
            None => file_outputs.push(o),
        }
    }
    let outputs: Vec<OutputSpec> = file_outputs
        .iter()
        .map(|o| export::parse_output(o).map_err(|e| format!("error: {e}")))
        .collect::<Result<_, _>>()?;
    let mut compression = builder_core::layer::CompressionOptions::default();
    let mut chosen: Option<(builder_core::layer::Compression, Option<i32>)> = None;
    for o in &outputs {
        if o.compression.is_none() && o.compression_level.is_none() {
            continue;
        }
        let c = (
            o.compression.unwrap_or(compression.compression),
            o.compression_level,
        );
        match chosen {
            Some(prev) if prev != c => {
                return Err("error: every -o of one build must use the same compression".into())
            }
            _ => chosen = Some(c),
        }
    }
    if let Some((c, level)) = chosen {
        compression.compression = c;
        compression.level = level;
    }
    // An image that only goes to the store keeps plain tar layers, as
    // Docker's image store does: compressing is most of what a build costs
    // beyond its steps. Pushes, archives and cache exports compress on the
    // way out; when the build itself does one, compressing as the layer is
    // written saves a second pass.
    let leaves_store = args.push
        || image_outputs.iter().any(|o| o.push)
        || !args.cache_to.is_empty()
        || outputs
            .iter()
            .any(|o| matches!(o.kind, export::OutputKind::Oci | export::OutputKind::Docker));
    if chosen.is_none() && !leaves_store {
        compression.compression = builder_core::layer::Compression::Uncompressed;
    }
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    if let Some(n) = &args.network {
        if !matches!(n.as_str(), "default" | "none" | "host") {
            return Err(format!("--network {n:?}: expected default, none or host"));
        }
    }
    let scratch_place = ScratchPlace::choose(args.scratch)?;
    let source_date_epoch = match build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
    {
        Some(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| format!("SOURCE_DATE_EPOCH {v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };

    let source = ContextSource::from_arg(&args.context);
    let flag = match &args.file {
        None => DockerfileFlag::Default,
        Some(p) if p.as_os_str() == "-" => DockerfileFlag::Stdin,
        Some(p) => DockerfileFlag::Path(p.clone()),
    };
    let ctx = BuildContext::open(&source, &flag, &mut std::io::stdin().lock())
        .map_err(|e| format!("error: {e}"))?;
    let df_name = ctx.dockerfile().name.clone();
    let df_text = String::from_utf8_lossy(&ctx.dockerfile().text).into_owned();
    let df = parser::parse(&ctx.dockerfile().text).map_err(|e| e.render(&df_text, &df_name))?;

    let root = args.root.clone().unwrap_or_else(Store::default_root);
    let store = Store::open(&root).map_err(|e| format!("error: store: {e}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(store.temp_dir())
        .map_err(|e| format!("error: {}: {e}", store.temp_dir().display()))?;

    let opts = BuildOptions {
        dockerfile_name: df_name.clone(),
        context: ctx.root().to_path_buf(),
        ignore: Some(ctx.ignore_rules().clone()),
        build_args,
        target: args.target.clone(),
        labels,
        platform,
        source_date_epoch,
        named_contexts,
        scratch: scratch.path().to_path_buf(),
        compression,
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<Result<_, _>>()?,
        shm_size: args.shm_size.as_deref().map(parse_shm_size).transpose()?,
    };
    let client = Client::new(registry.client_options()?).map_err(|e| format!("error: {e}"))?;
    let mut resolver = StoreResolver {
        store: &store,
        client: Some(client),
        pull: args.pull,
    };
    let mut secrets = SecretStore::new();
    for v in &args.secrets {
        secrets
            .add_secret_spec(v)
            .map_err(|e| format!("error: {e}"))?;
    }
    for v in &args.ssh {
        secrets.add_ssh_spec(v).map_err(|e| format!("error: {e}"))?;
    }
    let runner = SandboxRunner::new(
        &store,
        ctx.root(),
        scratch.path(),
        args.network.as_deref() == Some("none"),
        compression,
        source_date_epoch,
    )
    .map_err(|e| format!("error: {e}"))?
    .with_secrets(secrets)
    .with_ignore_rules(ctx.ignore_rules().clone());
    let runner = match rootfs_mode()? {
        Some(mode) => runner
            .with_rootfs_mode(mode)
            .map_err(|e| format!("error: KILN_ROOTFS_MODE: {e}"))?,
        None => runner,
    };
    let runner = match scratch_place {
        ScratchPlace::Memory => runner.with_memory_scratch(),
        ScratchPlace::Disk => runner,
    };
    // Content digests of the context, through the stat cache in the store:
    // what COPY/ADD keys are made of.
    let listing = ctx
        .walk(&WalkOptions {
            hash: true,
            cache_dir: Some(context::stat_cache_dir(store.root())),
        })
        .map_err(|e| format!("error: {e}"))?;
    let cache_to: Vec<CacheSpec> = args
        .cache_to
        .iter()
        .map(|v| CacheSpec::parse_to(v).map_err(|e| format!("error: --cache-to: {e}")))
        .collect::<Result<_, _>>()?;
    let cache_from: Vec<CacheSpec> = args
        .cache_from
        .iter()
        .map(|v| CacheSpec::parse_from(v).map_err(|e| format!("error: --cache-from: {e}")))
        .collect::<Result<_, _>>()?;
    let transfer_client = if cache_to.is_empty() && cache_from.is_empty() {
        None
    } else {
        Some(Client::new(registry.client_options()?).map_err(|e| format!("error: {e}"))?)
    };
    let renderer = Renderer::stderr(args.progress);
    if !cache_from.is_empty() {
        let index = CacheIndex::open(&store).map_err(|e| format!("error: build cache: {e}"))?;
        for (spec, value) in cache_from.iter().zip(&args.cache_from) {
            // As in BuildKit, a cache source that cannot be used (not there
            // yet, unreachable, a blob that fails its digest) only costs
            // cache hits: nothing of it is used and the build goes on.
            if let Err(e) = transfer::import(&index, spec, transfer_client.as_ref(), &NoProgress) {
                renderer.event(&Event::Warning {
                    id: None,
                    message: format!("--cache-from {value}: not used: {e}"),
                });
            }
        }
    }
    let started = std::time::Instant::now();
    // Ctrl-C and SIGTERM stop the running steps (their process trees are
    // killed, their mounts undone) and nothing half-made is stored; the
    // scratch directory goes when `scratch` is dropped on the way out.
    let cancel = CancelToken::new();
    // Held to the end: a second signal exits at once (128+signal).
    let _signals = signal::cancel_on_signals(&cancel).map_err(|e| format!("error: {e}"))?;
    let hooks = build::BuildHooks {
        reporter: &renderer,
        use_cache: !args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        listing: Some(&listing),
        cache: true,
        jobs: args.jobs,
        cancel: cancel.clone(),
    };
    let result = build::build_with(&df, &opts, &store, &mut resolver, Some(&runner), hooks);
    renderer.event(&Event::BuildFinished {
        duration: started.elapsed(),
        success: result.is_ok(),
        image: None,
    });
    renderer.finish();
    for w in runner.warnings() {
        eprintln!("warning: {w}");
    }
    if let Some(CancelReason::Signal(sig)) = cancel.reason() {
        eprintln!("error: build {}", CancelReason::Signal(sig));
        drop(runner);
        drop(scratch);
        return Ok(ExitCode::from((128 + sig.clamp(0, 127)) as u8));
    }
    let (mut image, build_report) = result.map_err(|e| render(&e, &df_text, &df_name))?;
    if leaves_store {
        compress_plain_layers(&store, &mut image, &compression)
            .map_err(|e| format!("error: {e}"))?;
    }
    if !cache_to.is_empty() {
        let index = CacheIndex::open(&store).map_err(|e| format!("error: build cache: {e}"))?;
        for spec in &cache_to {
            let keys = match spec.mode {
                transfer::ExportMode::Min => &build_report.target_keys,
                transfer::ExportMode::Max => &build_report.keys,
            };
            transfer::export(&index, spec, keys, transfer_client.as_ref(), &NoProgress)
                .map_err(|e| format!("error: --cache-to: {e}"))?;
        }
    }
    if let Some(path) = &args.explain_cache {
        let json = serde_json::to_string_pretty(&build_report.explanations)
            .map_err(|e| format!("error: {e}"))?;
        if path.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .map_err(|e| format!("error: {}: {e}", path.display()))?;
        }
    }
    let m = manifest(&image).map_err(|e| format!("error: {e}"))?;

    let mut names: Vec<String> = args
        .tags
        .iter()
        .map(|t| normalize_name(t).map_err(|e| format!("error: -t {t}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut to_push: Vec<String> = if args.push { names.clone() } else { Vec::new() };
    for io in &image_outputs {
        for n in &io.names {
            let full = normalize_name(n).map_err(|e| format!("error: -o name={n}: {e}"))?;
            if io.push {
                to_push.push(full.clone());
            }
            names.push(full);
        }
    }
    names.dedup();
    to_push.dedup();
    let desc = store_image(&store, &image, &m, &names).map_err(|e| format!("error: {e}"))?;
    if !to_push.is_empty() {
        push_names(
            registry,
            &store,
            &desc.digest.to_string(),
            &to_push,
            args.progress,
        )?;
    }
    let export_opts = ExportOptions {
        names: names.clone(),
        base_layers: image.base_layers,
        source_date_epoch,
        threads: 0,
    };
    let mut report: Option<ExportReport> = None;
    for o in &outputs {
        let r =
            export::export(&store, &desc, o, &export_opts).map_err(|e| format!("error: {e}"))?;
        report.get_or_insert(r);
    }
    let report = report.unwrap_or_else(|| ExportReport {
        manifest: desc.clone(),
        config: builder_core::image::Descriptor::new(
            builder_core::build::images::MT_CONFIG,
            builder_core::digest::Digest::of(&m.config),
            m.config.len() as u64,
        ),
    });
    if let Some(path) = &args.iidfile {
        export::write_iidfile(path, &report, false).map_err(|e| format!("error: {e}"))?;
    }
    if let Some(path) = &args.metadata_file {
        export::write_metadata_file(path, &report, &names).map_err(|e| format!("error: {e}"))?;
    }
    if outputs.iter().all(|o| o.dest != Dest::Stdout) {
        println!("{}", report.manifest.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// An `-o type=image|registry,name=…[,push=true]` output: names for the
/// store, pushed when asked (`type=registry` always pushes, as in buildx).
struct ImageOutput {
    names: Vec<String>,
    push: bool,
}

fn image_output(spec: &str) -> Result<Option<ImageOutput>, String> {
    let mut kind = None;
    let mut names = Vec::new();
    let mut push = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => kind = Some(t.to_string()),
            Some(("name", n)) => names.push(n.to_string()),
            Some(("push", p)) => push = Some(p.to_string()),
            _ => {}
        }
    }
    let always = match kind.as_deref() {
        Some("image") => false,
        Some("registry") => true,
        _ => return Ok(None),
    };
    let push = match push.as_deref() {
        None => always,
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => always,
        Some(other) => {
            return Err(format!(
                "error: -o {spec}: push={other}: expected true or false"
            ))
        }
    };
    if names.is_empty() {
        return Err(format!("error: -o {spec}: name= is required"));
    }
    Ok(Some(ImageOutput { names, push }))
}

/// Pushes the built image (by digest, from the store) to each name.
fn push_names(
    registry: &RegistryFlags,
    store: &Store,
    digest: &str,
    names: &[String],
    mode: ProgressMode,
) -> Result<(), String> {
    let client = Client::new(registry.client_options()?).map_err(|e| format!("error: {e}"))?;
    let refs = names
        .iter()
        .map(|n| {
            builder_core::registry::Reference::parse(n)
                .map_err(|e| format!("error: pushing {n}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let text = format!("pushing {}", names.join(", "));
    super::progress::internal_step(mode, &text, |progress| {
        builder_core::registry::push_from_store(&client, store, digest, &refs, progress)
            .map_err(|e| format!("error: push: {e}"))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::image_output;

    #[test]
    fn image_outputs_name_and_push() {
        assert!(image_output("type=oci,dest=x.tar").unwrap().is_none());
        let o = image_output("type=image,name=r/a:1,push=true")
            .unwrap()
            .unwrap();
        assert_eq!(o.names, ["r/a:1"]);
        assert!(o.push);
        assert!(!image_output("type=image,name=r/a").unwrap().unwrap().push);
        assert!(
            image_output("type=registry,name=r/a")
                .unwrap()
                .unwrap()
                .push
        );
        assert!(image_output("type=image").is_err());
        assert!(image_output("type=image,name=r/a,push=maybe").is_err());
    }
}
