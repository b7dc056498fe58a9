//! `flock(2)` locks on files under `kiln/v1/`: advisory, released by the
//! kernel when the process dies, so a crashed kiln never wedges the store.
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::StoreError;

/// An open lock file.
pub(crate) struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    pub(crate) fn open(path: &Path) -> Result<Lock, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(super::io_err(path))?;
        Ok(Lock {
            file,
            path: path.to_path_buf(),
        })
    }

    fn op(&self, op: FlockOperation) -> Result<(), StoreError> {
        loop {
            match flock(&self.file, op) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(StoreError::Io {
                        path: self.path.clone(),
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Takes (or converts to) a shared lock, waiting if needed.
    pub(crate) fn shared(&self) -> Result<(), StoreError> {
        self.op(FlockOperation::LockShared)
    }

    /// Takes (or converts to) an exclusive lock, waiting if needed.
    pub(crate) fn exclusive(&self) -> Result<(), StoreError> {
        self.op(FlockOperation::LockExclusive)
    }

    pub(crate) fn unlock(&self) -> Result<(), StoreError> {
        self.op(FlockOperation::Unlock)
    }
}

/// Holds an exclusive lock until dropped.
pub(crate) struct Guard(pub(crate) Lock);

impl Drop for Guard {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first just
        // makes the release immediate for waiters.
        let _ = self.0.unlock();
    }
}
