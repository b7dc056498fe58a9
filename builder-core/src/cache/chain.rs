//! The key chain of one stage, as the engine should build it.
//!
//! Only layer steps (RUN, COPY, ADD, a WORKDIR that creates its directory)
//! get keys. Each one's parent is the previous layer step's key (the
//! engine derives it from that step's key and result), or the stage's base
//! key; the first step of a stage built on an image names the image and
//! platform themselves. The config that changes what it does enters as
//! named inputs: ENV, ARG, WORKDIR, USER and SHELL for RUN; WORKDIR for
//! COPY/ADD (it resolves relative destinations). Metadata-only steps
//! (LABEL, EXPOSE, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL, HEALTHCHECK,
//! MAINTAINER, ONBUILD) touch nothing here, so changing them changes no key.
use std::collections::BTreeMap;

use super::key::{CacheKey, KeyBuilder};

/// The image a stage starts from, named in the inputs of the stage's first
/// layer step so that a miss there says "base image changed".
#[derive(Clone, Debug)]
struct Base {
    digest: String,
    platform: String,
    /// How the Dockerfile named it; shown, never part of a key.
    name: Option<String>,
}

/// Tracks a stage's parent key and execution-relevant config.
#[derive(Clone, Debug)]
pub struct KeyChain {
    parent: CacheKey,
    /// Until the first layer step: the base image (its key is `parent`).
    base: Option<Base>,
    env: BTreeMap<String, String>,
    args: BTreeMap<String, String>,
    workdir: String,
    user: String,
    shell: Vec<String>,
    excluded: Vec<String>,
}

impl KeyChain {
    /// A stage from an image (its manifest digest; `scratch` for none) on
    /// `platform` (`linux/amd64`).
    pub fn from_image(manifest_digest: &str, platform: &str) -> KeyChain {
        let (key, _) = KeyBuilder::new("FROM")
            .base(manifest_digest)
            .input("platform", platform)
            .build();
        KeyChain {
            base: Some(Base {
                digest: manifest_digest.to_string(),
                platform: platform.to_string(),
                name: None,
            }),
            ..KeyChain::from_key(key)
        }
    }

    /// Names the base image as the Dockerfile wrote it (`alpine:3.20`), so
    /// an explanation can say which image changed. Not part of any key: the
    /// same image under another name is the same base.
    pub fn named(mut self, name: &str) -> KeyChain {
        if let Some(b) = &mut self.base {
            b.name = Some(name.to_string());
        }
        self
    }

    /// A stage built on another stage, whose current key is `parent`.
    pub fn from_key(parent: CacheKey) -> KeyChain {
        KeyChain {
            parent,
            base: None,
            env: BTreeMap::new(),
            args: BTreeMap::new(),
            workdir: "/".into(),
            user: String::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            excluded: Vec::new(),
        }
    }

    /// Names (secrets, extra proxy variables) kept out of every key.
    pub fn exclude(&mut self, names: &[String]) {
        self.excluded.extend(names.iter().cloned());
    }

    /// The key of the last layer step (or the base): what a `--from` user
    /// or a child stage depends on.
    pub fn key(&self) -> &CacheKey {
        &self.parent
    }

    /// ENV (also the base image's environment when the stage starts).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.into(), value.into());
    }

    /// An ARG now in scope with its value.
    pub fn set_arg(&mut self, name: &str, value: &str) {
        self.args.insert(name.into(), value.into());
    }

    /// WORKDIR, resolved to an absolute path.
    pub fn set_workdir(&mut self, dir: &str) {
        self.workdir = dir.into();
    }

    /// USER.
    pub fn set_user(&mut self, user: &str) {
        self.user = user.into();
    }

    /// SHELL.
    pub fn set_shell(&mut self, shell: &[String]) {
        self.shell = shell.to_vec();
    }

    /// The first layer step of a stage built on an image names the image
    /// (`base`, `platform`) instead of the key made of them, so its miss
    /// says what changed; later steps have the previous step as `parent`.
    fn step(&self, kind: &str, instruction: &str) -> KeyBuilder {
        let b = KeyBuilder::new(kind)
            .label(instruction)
            .instruction(instruction)
            .exclude(&self.excluded);
        match &self.base {
            None => b.parent(&self.parent),
            Some(base) => {
                let b = b
                    .base(base.digest.as_str())
                    .input("platform", base.platform.as_str());
                match &base.name {
                    None => b,
                    Some(name) => b.detail(
                        "base",
                        BTreeMap::from([("base".to_string(), format!("{name}@{}", base.digest))]),
                    ),
                }
            }
        }
    }

    /// A RUN: everything it can observe of the config. Add `mount:…`,
    /// `file:…` (bind mounts from the context) and `from:…` inputs to the
    /// returned builder.
    pub fn run(&self, instruction: &str) -> KeyBuilder {
        let mut b = self
            .step("RUN", instruction)
            .config("WORKDIR", &self.workdir)
            .config("USER", &self.user)
            .config("SHELL", self.shell.join("\u{0}"));
        for (k, v) in &self.env {
            b = b.env(k, v);
        }
        for (k, v) in &self.args {
            b = b.build_arg(k, v);
        }
        b
    }

    /// A COPY or ADD (`kind`): add the sources' `file:…` digests,
    /// `chown:…` resolutions and `from:…` keys to the returned builder.
    pub fn copy(&self, kind: &str, instruction: &str) -> KeyBuilder {
        self.step(kind, instruction)
            .config("WORKDIR", &self.workdir)
    }

    /// Any other layer step (a WORKDIR that creates its directory).
    pub fn other(&self, kind: &str, instruction: &str) -> KeyBuilder {
        self.step(kind, instruction).config("USER", &self.user)
    }

    /// After a layer step (hit or built): its key is the next parent.
    pub fn advance(&mut self, key: CacheKey) {
        self.parent = key;
        self.base = None;
    }
}
