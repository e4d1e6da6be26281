//! Large bodies in sealed memory files, so a server can send them with `sendfile(2)`.
//!
//! A body of [`SEAL_MIN`] bytes or more that enters the memory tier is moved into its own
//! `memfd` (an anonymous file in the page cache), sealed against writing, shrinking and growing,
//! and mapped read-only. The object's `body` then reads the mapping (no second copy in memory),
//! and the edge's hit fast path passes the file to `sendfile`: the kernel sends the page-cache
//! pages without copying the body through user space, as nginx does with its cache files.
//!
//! The seals are what make the mapping sound: no process holding the file can change or
//! truncate the bytes while the map lives.

use bytes::Bytes;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bodies at least this large are sealed (smaller ones are cheaper to copy than a file is to
/// keep open).
pub const SEAL_MIN: usize = 64 * 1024;

/// How many bodies may be sealed at once. Each holds a file descriptor, and descriptors are
/// shared with viewer and origin connections: running out would stop the node accepting
/// connections, so sealing stops first and bodies stay on the heap.
#[derive(Debug)]
pub struct SealBudget {
    live: AtomicUsize,
    max: usize,
}

impl SealBudget {
    /// A budget of `max` sealed bodies.
    pub fn new(max: usize) -> Arc<SealBudget> {
        Arc::new(SealBudget {
            live: AtomicUsize::new(0),
            max,
        })
    }

    /// Half the process's open-file limit (as it is now), less 1024 for everything else.
    pub fn from_open_file_limit() -> Arc<SealBudget> {
        let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let current = lim.current.map_or(usize::MAX, |c| c as usize);
        SealBudget::new((current / 2).saturating_sub(1024))
    }

    /// Bodies sealed now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn take(self: &Arc<Self>) -> Option<Permit> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(self.clone()))
    }
}

struct Permit(Arc<SealBudget>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A body in a sealed, read-only mapped memory file.
pub struct SealedBody {
    file: File,
    map: memmap2::Mmap,
    _permit: Permit,
}

impl std::fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBody")
            .field("len", &self.map.len())
            .finish()
    }
}

impl SealedBody {
    /// Copy `body` into a new sealed memory file. Fails (and the caller keeps the body on the
    /// heap) when `budget` is spent, the process is out of file descriptors, or memory files
    /// are unavailable.
    pub fn new(body: &[u8], budget: &Arc<SealBudget>) -> std::io::Result<Arc<SealedBody>> {
        use rustix::fs::{MemfdFlags, SealFlags};
        if body.is_empty() {
            return Err(std::io::Error::other("an empty body needs no file"));
        }
        let permit = budget.take().ok_or_else(|| {
            std::io::Error::other(format!(
                "{} bodies are sealed already, the budget for this open-file limit",
                budget.max
            ))
        })?;
        let fd =
            rustix::fs::memfd_create("eddy-body", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        let mut file = File::from(fd);
        file.write_all(body)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        let map = map_sealed(&file)?;
        if map.len() != body.len() {
            return Err(std::io::Error::other(
                "sealed body mapped at the wrong length",
            ));
        }
        Ok(Arc::new(SealedBody {
            file,
            map,
            _permit: permit,
        }))
    }

    /// The file, for `sendfile` from offset 0.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Body length.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Never true (empty bodies are not sealed).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The body as `Bytes` over the mapping (no copy).
    pub fn bytes(self: &Arc<Self>) -> Bytes {
        Bytes::from_owner(Mapped(self.clone()))
    }
}

/// Map a sealed memory file read-only.
#[allow(unsafe_code)]
fn map_sealed(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: `file` is a memfd sealed with F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and
    // F_SEAL_SEAL before this call, so its bytes can neither change nor be truncated by anyone
    // while the mapping exists: the mapped slice is immutable for its whole life.
    unsafe { memmap2::Mmap::map(file) }
}

struct Mapped(Arc<SealedBody>);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_sealed_body_reads_back_and_cannot_be_changed() -> std::io::Result<()> {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let budget = SealBudget::new(1);
        let sealed = SealedBody::new(&body, &budget)?;
        assert_eq!(budget.live(), 1);
        // The budget is spent: a second body stays on the heap.
        assert!(SealedBody::new(&body, &budget).is_err());
        assert_eq!(sealed.len(), body.len());
        assert_eq!(&sealed.bytes()[..], &body[..]);
        let mut back = vec![0u8; body.len()];
        sealed.file().read_exact_at(&mut back, 0)?;
        assert_eq!(back, body);
        // Writes and truncation are refused by the seals.
        let mut f = sealed.file().try_clone()?;
        assert!(f.write_all(b"x").is_err());
        assert!(sealed.file().set_len(10).is_err());
        // The bytes outlive the owner's handle.
        let b = sealed.bytes();
        drop(sealed);
        assert_eq!(&b[..], &body[..]);
        assert_eq!(budget.live(), 1);
        // The last holder of the bytes gives the file and its place in the budget back.
        drop(b);
        assert_eq!(budget.live(), 0);
        assert!(SealedBody::new(&[], &budget).is_err());
        Ok(())
    }
}
