//! Test fixtures for the registry client: a real Distribution registry
//! (Debian's `docker-registry`) on loopback, certificates made with the
//! openssl CLI, a small token server, a fault-injecting TCP proxy, and
//! hand-made images.
#![allow(dead_code)]

pub mod proxy;
pub mod token;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use builder_core::image::media::{DOCKER_CONFIG, DOCKER_MANIFEST};
use builder_core::registry::sink::write_blob;
use std::sync::Mutex;

use builder_core::registry::credentials::Credentials;
use builder_core::registry::{
    BlobOutcome, ClientOptions, Descriptor, Digest, Event, OciDir, Platform, Progress, PushImage,
    Reference,
};
use builder_core::store::Store;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// How the registry authenticates.
pub enum Auth {
    None,
    /// htpasswd file with this user and password.
    Basic(String, String),
    /// Token auth: realm URL, service, issuer, root cert bundle.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

/// A running `docker-registry serve`, killed on drop.
pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start(auth: Auth, tls: Option<&Tls>) -> Registry {
        Self::start_with_storage(auth, tls, None)
    }

    /// Starts over a copy of `storage` (a registry's `docker/` tree's parent).
    pub fn start_with_storage(auth: Auth, tls: Option<&Tls>, storage: Option<&Path>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir data");
        if let Some(src) = storage {
            let st = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", src.display()))
                .arg(&data)
                .status()
                .expect("cp");
            assert!(st.success(), "copying {}", src.display());
        }
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        );
        if let Some(t) = tls {
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.server_cert.display(),
                t.server_key.display()
            );
        }
        match &auth {
            Auth::None => {}
            Auth::Basic(user, pass) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("write htpasswd");
                cfg += &format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    file.display()
                );
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => {
                cfg += &format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    cert.display()
                );
            }
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, cfg).expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("registry.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn docker-registry (Debian package docker-registry)");
        let reg = Registry { port, dir, child };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on port {}: {log}", self.port);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl CLI.
pub struct Tls {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tls {
    pub fn new() -> Tls {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=kiln test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            d,
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            d,
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
            d,
        );
        Tls {
            ca: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            dir,
        }
    }
}

/// Makes a small but valid image in `layout`: gzip tar layers holding the
/// given files, a Docker config and a Docker schema 2 manifest.
pub fn make_image(layout: &OciDir, layers: &[&[(&str, &[u8])]], tag: &str) -> PushImage {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let (gz, diff_id) = layer(files);
        diff_ids.push(diff_id.to_string());
        let d = write_blob(layout, &gz).expect("write layer");
        descs.push(desc(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            d,
            gz.len(),
        ));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let cd = write_blob(layout, &config).expect("write config");
    let config_desc = desc(DOCKER_CONFIG, cd, config.len());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config_desc,
        "layers": descs,
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest json");
    let md = write_blob(layout, &manifest).expect("write manifest");
    layout
        .set_ref(tag, &desc(DOCKER_MANIFEST, md, manifest.len()))
        .expect("set ref");
    PushImage {
        manifest,
        media_type: DOCKER_MANIFEST.into(),
        config: config_desc,
        layers: descs,
        sources: vec![],
    }
}

pub fn desc(media_type: &str, digest: Digest, size: usize) -> Descriptor {
    Descriptor::new(media_type, digest, size as u64)
}

/// Bytes that do not compress, so a layer has a predictable large size.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Files left in a layout's blob directory (to check nothing partial stays).
pub fn blob_files(layout: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The conformance registry storage, if present (required when CI=true).
pub fn conformance_storage() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        root.join("../shared/conformance/registry"),
        PathBuf::from("/work/shared/conformance/registry"),
    ];
    let found = candidates.into_iter().find(|p| p.join("docker").is_dir());
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("conformance registry storage missing (expected ../shared/conformance/registry)");
    }
    found
}

/// Records what happened to each blob.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<(Digest, BlobOutcome)>>, pub Mutex<usize>);

impl Progress for Recorder {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::BlobDone { digest, outcome } => {
                self.0.lock().unwrap().push((digest.clone(), outcome))
            }
            Event::Retrying { .. } => *self.1.lock().unwrap() += 1,
            _ => {}
        }
    }
}

impl Recorder {
    pub fn outcomes(&self) -> Vec<BlobOutcome> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }
}

/// Client options that read no credentials from the machine.
pub fn options(dir: &std::path::Path) -> ClientOptions {
    ClientOptions {
        credentials: Credentials {
            auth_file: None,
            docker_config: dir.join("config.json"),
            containers_auth: None,
        },
        backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

pub fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// A gzip tar layer holding `files`: (bytes, diff_id).
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).expect("tar append");
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), Digest::of(&tar))
}

/// Builds a one-layer OCI image for `arch` straight into the store and
/// returns its manifest's descriptor (with the platform, for an index).
pub fn store_image(store: &Store, arch: &str, files: &[(&str, &[u8])]) -> Descriptor {
    let (gz, diff_id) = layer(files);
    let ld = store.put_bytes(&gz).unwrap();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": "test"}],
    });
    let cd = store
        .put_json(builder_core::image::media::OCI_CONFIG, &config)
        .unwrap();
    let manifest = builder_core::image::Manifest::oci(
        cd,
        vec![Descriptor::new(
            builder_core::image::media::OCI_LAYER_GZIP,
            ld,
            gz.len() as u64,
        )],
    );
    let mut md = store
        .put_json(builder_core::image::media::OCI_MANIFEST, &manifest)
        .unwrap();
    md.platform = Some(Platform::new("linux", arch, "").to_image());
    md
}

/// Runs skopeo with `args`, failing the test (with its stderr) if it fails.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo inspect --tls-verify=false ARGS…` as JSON.
pub fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect", "--tls-verify=false"];
    all.extend_from_slice(args);
    serde_json::from_slice(&skopeo(&all)).expect("skopeo inspect JSON")
}
