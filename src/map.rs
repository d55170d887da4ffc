//! [`MappedFile`], the mapping object, and its builder [`MapOptions`].

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use crate::object::{Access, Backing, Object};
use crate::range;
use crate::shm;
use crate::stream::{StreamOptions, ViewStream};
use crate::sys;
use crate::view::{View, ViewMut};

/// A memory-mapping object: a file on disk (persisted), named shared memory,
/// or anonymous memory (non-persisted). Make [views](MappedFile::view) of it
/// to read and write its bytes.
///
/// `MappedFile` is `Send + Sync`, and cloning it is cheap (all clones share
/// one object). Views keep the object alive: a named map lives on while any
/// view of it does.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("data.bin");
/// // SAFETY: nothing else changes or truncates this new file.
/// let map = unsafe { mapview::MappedFile::create(&path, 10_000)? };
/// let mut view = map.view_mut(5000..5005)?;
/// view.copy_from_slice(b"hello");
/// view.flush()?;
/// assert_eq!(&std::fs::read(&path)?[5000..5005], b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MappedFile {
    object: Arc<Object>,
}

/// A builder for persisted [`MappedFile`]s, from [`MappedFile::options`].
/// Each setting takes and returns the builder, as [`StreamOptions`](crate::StreamOptions)'s
/// do; [`open`](MapOptions::open) borrows it, so one builder can open many
/// files.
///
/// Defaults: [`Access::Read`], capacity = the file's length, no creation.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use mapview::{Access, MappedFile};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("log.bin");
/// let options = MappedFile::options()
///     .access(Access::ReadWrite)
///     .create(true)
///     .capacity(8192);
/// // SAFETY: this program is the only user of the new file.
/// let map = unsafe { options.open(&path)? };
/// assert_eq!(map.capacity(), 8192);
/// assert_eq!(std::fs::metadata(&path)?.len(), 8192);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    access: Access,
    capacity: Option<u64>,
    create: bool,
}

fn invalid_input(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

/// A named map needs at least one byte: openers take a size of 0 to mean
/// "its creator is still setting it up" (see `shm::open`).
fn nonzero_shared(capacity: u64) -> io::Result<u64> {
    if capacity == 0 {
        return Err(invalid_input(
            "a named map needs a capacity of at least 1 byte",
        ));
    }
    Ok(capacity)
}

impl MapOptions {
    /// Sets how the object may be accessed.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("settings.txt");
    /// std::fs::write(&path, "original")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { MappedFile::options().access(Access::CopyOnWrite).open(&path)? };
    /// map.view_mut(..)?.copy_from_slice(b"modified");
    /// // Copy-on-write: the writes never reach the file.
    /// assert_eq!(std::fs::read(&path)?, b"original");
    /// # Ok(())
    /// # }
    /// ```
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Sets the capacity in bytes. With [`Access::ReadWrite`] a shorter file
    /// is grown to it (never shrunk); otherwise the file must be at least
    /// this long. Without it the capacity is the file's length.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::MappedFile;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("message.txt");
    /// std::fs::write(&path, "header, then body")?;
    /// // SAFETY: this program is the only user of the file.
    /// let header = unsafe { MappedFile::options().capacity(6).open(&path)? };
    /// assert_eq!(&header.view(..)?[..], b"header");
    /// // Read-only, a file can't be grown to a larger capacity.
    /// // SAFETY: as above.
    /// let longer = unsafe { MappedFile::options().capacity(100).open(&path) };
    /// assert_eq!(longer.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Creates the file if it does not exist (needs [`Access::ReadWrite`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("new.bin");
    /// let options = MappedFile::options().access(Access::ReadWrite).capacity(4096);
    /// // SAFETY: this program is the only user of the file.
    /// let missing = unsafe { options.open(&path) };
    /// assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// // SAFETY: as above.
    /// let map = unsafe { options.create(true).open(&path)? };
    /// assert_eq!(map.capacity(), 4096);
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens (and maybe creates and grows) the file at `path` as a mapping
    /// object.
    ///
    /// # Errors
    ///
    /// - `NotFound` if the file does not exist and `create` is off.
    /// - `InvalidInput` if the path is not a regular file (a directory or a
    ///   FIFO, say: opening never waits for a FIFO's writer), the file is shorter
    ///   than the capacity and the access is not `ReadWrite`, or `create` is
    ///   asked without `ReadWrite`.
    /// - Any error of opening, growing or mapping the file; `StorageFull`
    ///   if the file system has no room for the capacity. A file that could
    ///   not be grown is left as it was: cut back to its old length, or
    ///   removed if this call created it.
    ///
    /// # Safety
    ///
    /// See the [crate docs](crate#safety): the caller vouches that no other
    /// process or code changes or truncates the file behind live views in a
    /// way the program cannot tolerate.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("counter.txt");
    /// std::fs::write(&path, "count: 0")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { MappedFile::options().access(Access::ReadWrite).open(&path)? };
    /// let mut digit = map.view_mut(7..8)?;
    /// digit.copy_from_slice(b"1");
    /// digit.flush()?;
    /// assert_eq!(std::fs::read(&path)?, b"count: 1");
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn open(&self, path: impl AsRef<Path>) -> io::Result<MappedFile> {
        let path = path.as_ref();
        if self.create && self.access != Access::ReadWrite {
            return Err(invalid_input("creating a file needs Access::ReadWrite"));
        }
        let (file, metadata, created) = self.open_path(path)?;
        match self.fit(&file, metadata.len(), &path.display()) {
            Ok(capacity) => Ok(self.persisted(file, capacity)),
            Err(e) => {
                if created {
                    remove_if_same(path, &metadata);
                }
                Err(e)
            }
        }
    }

    /// Maps `file`, a regular file the caller has opened, with these
    /// settings (`create` does not apply and is ignored). The mapping object
    /// owns `file` from now on. Unlike reopening a path, this maps exactly
    /// the file the descriptor refers to, even if its path has since been
    /// renamed, removed or replaced.
    ///
    /// `file` must have been opened the way the access needs: readable for
    /// [`Access::Read`] and [`Access::CopyOnWrite`], readable and writable
    /// (and not append-only) for [`Access::ReadWrite`].
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `file` is not a regular file (a directory, a FIFO,
    ///   a socket), or is shorter than the capacity and the access is not
    ///   `ReadWrite`.
    /// - `PermissionDenied` if `file` was not opened for the access asked
    ///   (a read-only `File` for `Access::ReadWrite`, a write-only or
    ///   `O_PATH` one for any access, an append-only one for
    ///   `Access::ReadWrite`).
    /// - Any error of growing the file (`StorageFull` if the file system has
    ///   no room for the capacity; the file is then cut back to its old
    ///   length) or of its `fstat`.
    ///
    /// # Safety
    ///
    /// As for [`open`](MapOptions::open): the caller vouches that no other
    /// process or code changes or truncates the file behind live views in a
    /// way the program cannot tolerate. That includes code that still holds
    /// other descriptors of the same file.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::fs::{File, OpenOptions};
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("state.bin");
    /// let file = OpenOptions::new().read(true).write(true).create(true).open(&path)?;
    /// let options = MappedFile::options().access(Access::ReadWrite).capacity(4096);
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { options.open_file(file)? };
    /// map.view_mut(..5)?.copy_from_slice(b"ready");
    /// assert_eq!(std::fs::metadata(&path)?.len(), 4096);
    /// // A file opened read-only cannot be mapped for writing.
    /// // SAFETY: as above.
    /// let read_only = unsafe { options.open_file(File::open(&path)?) };
    /// assert_eq!(read_only.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn open_file(&self, file: File) -> io::Result<MappedFile> {
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(invalid_input("the file to map is not a regular file"));
        }
        self.check_open_mode(sys::open_mode(&file)?)?;
        let capacity = self.fit(&file, metadata.len(), &"the file")?;
        Ok(self.persisted(file, capacity))
    }
}

impl MapOptions {
    /// `PermissionDenied` unless a file opened with `mode` can be mapped
    /// with this access (`mmap` would refuse it, or a write through the
    /// mapping would fault).
    fn check_open_mode(&self, mode: sys::OpenMode) -> io::Result<()> {
        let refusal = match self.access {
            _ if !mode.read => "a file to map must be opened for reading",
            Access::ReadWrite if !mode.write => {
                "Access::ReadWrite needs a file opened for reading and writing"
            }
            Access::ReadWrite if mode.append => {
                "Access::ReadWrite cannot map a file opened for appending"
            }
            Access::Read | Access::ReadWrite | Access::CopyOnWrite => return Ok(()),
        };
        Err(io::Error::new(io::ErrorKind::PermissionDenied, refusal))
    }

    /// The capacity to map `file` (`len` bytes long, described as `what` in
    /// errors) with: the one asked, to which a `ReadWrite` file is grown if
    /// shorter, or else its length. A file that could not be grown is cut
    /// back to `len`, giving back what the failed allocation may have taken.
    fn fit(&self, file: &File, len: u64, what: &dyn fmt::Display) -> io::Result<u64> {
        let capacity = self.capacity.unwrap_or(len);
        if len < capacity {
            if self.access != Access::ReadWrite {
                return Err(invalid_input(format!(
                    "{what} is {len} bytes, shorter than the capacity {capacity}; \
                     only Access::ReadWrite grows a file"
                )));
            }
            if let Err(e) = sys::grow(file, len, capacity) {
                let _ = file.set_len(len);
                return Err(e);
            }
        }
        Ok(capacity)
    }

    /// The mapping object of a persisted `file` of at least `capacity` bytes.
    fn persisted(&self, file: File, capacity: u64) -> MappedFile {
        MappedFile::from_object(Object {
            file,
            access: self.access,
            capacity,
            backing: Backing::Persisted,
            mincore_truthful: Default::default(),
        })
    }

    /// Opens the regular file at `path`, creating it if asked and absent.
    /// Returns it with its metadata, and whether this call created it.
    fn open_path(&self, path: &Path) -> io::Result<(File, Metadata, bool)> {
        let mut options = OpenOptions::new();
        options.read(true).write(self.access == Access::ReadWrite);
        if !self.create {
            let (file, metadata) = sys::open_regular(path, &mut options)?;
            return Ok((file, metadata, false));
        }
        // A file removed between the two opens is created after all; a few
        // rounds, so that a path that keeps coming and going cannot hold us.
        let mut rounds = 0;
        loop {
            match sys::open_regular(path, options.clone().create_new(true)) {
                Ok((file, metadata)) => return Ok((file, metadata, true)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match sys::open_regular(path, &mut options) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && rounds < 3 => rounds += 1,
                opened => return opened.map(|(file, metadata)| (file, metadata, false)),
            }
        }
    }
}

/// Removes the file at `path` that a failed `open` created, as long as
/// `path` still names it (the file of `created`). Best effort: the error of
/// the `open` is the one to report.
fn remove_if_same(path: &Path, created: &Metadata) {
    let same = std::fs::metadata(path).is_ok_and(|now| sys::file_id(&now) == sys::file_id(created));
    if same {
        let _ = std::fs::remove_file(path);
    }
}

impl MappedFile {
    fn from_object(object: Object) -> Self {
        Self {
            object: Arc::new(object),
        }
    }

    /// Opens an existing file read-only; the capacity is its length.
    ///
    /// # Errors
    ///
    /// `NotFound` if the file does not exist; `InvalidInput` if it is not a
    /// regular file (a FIFO is refused at once, never waited on).
    ///
    /// # Safety
    ///
    /// See [`MapOptions::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("greeting.txt");
    /// std::fs::write(&path, "hello, world")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { mapview::MappedFile::open(&path)? };
    /// assert_eq!(map.capacity(), 12);
    /// assert_eq!(&map.view(7..)?[..], b"world");
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        // SAFETY: the caller upholds `MapOptions::open`'s contract.
        unsafe { Self::options().open(path) }
    }

    /// Maps `file`, an open regular file, read-only; the capacity is its
    /// length. The mapping object owns `file` from now on. This maps exactly
    /// the file the descriptor refers to, even if its path has since been
    /// renamed, removed or replaced; for other settings see
    /// [`MapOptions::open_file`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `file` is not a regular file (a directory, a FIFO,
    /// a socket); `PermissionDenied` if it was not opened for reading (a
    /// write-only or `O_PATH` descriptor); any error of its `fstat`.
    ///
    /// # Safety
    ///
    /// See [`MapOptions::open_file`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("page.html");
    /// std::fs::write(&path, "<p>hello</p>")?;
    /// let file = std::fs::File::open(&path)?;
    /// // The path may name another file by now; the descriptor does not.
    /// std::fs::remove_file(&path)?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { mapview::MappedFile::from_file(file)? };
    /// assert_eq!(&map.view(..)?[..], b"<p>hello</p>");
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn from_file(file: File) -> io::Result<Self> {
        // SAFETY: the caller upholds `MapOptions::open_file`'s contract.
        unsafe { Self::options().open_file(file) }
    }

    /// Opens the file at `path` read-write, creating it if absent and growing
    /// it to `capacity` bytes if shorter (never shrinking it).
    ///
    /// # Errors
    ///
    /// `StorageFull` if the file system
    /// has no room for it (the file is then left as it was, or removed if
    /// this call created it); any other error of opening or growing the file.
    ///
    /// # Safety
    ///
    /// See [`MapOptions::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::MappedFile;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("table.bin");
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { MappedFile::create(&path, 65536)? };
    /// assert!(map.view(..)?.iter().all(|&byte| byte == 0));
    /// // A smaller capacity maps less of the file, but never shrinks it.
    /// // SAFETY: as above.
    /// let head = unsafe { MappedFile::create(&path, 4096)? };
    /// assert_eq!(head.capacity(), 4096);
    /// assert_eq!(std::fs::metadata(&path)?.len(), 65536);
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn create(path: impl AsRef<Path>, capacity: u64) -> io::Result<Self> {
        let options = Self::options()
            .access(Access::ReadWrite)
            .create(true)
            .capacity(capacity);
        // SAFETY: the caller upholds `MapOptions::open`'s contract.
        unsafe { options.open(path) }
    }

    /// A builder for opening a file with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("abc.txt");
    /// std::fs::write(&path, "abc")?;
    /// // The defaults: read-only, the file's length, no creation.
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { MappedFile::options().open(&path)? };
    /// assert_eq!((map.access(), map.capacity()), (Access::Read, 3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn options() -> MapOptions {
        MapOptions::default()
    }

    /// Creates named, non-persisted shared memory of `capacity` zeroed bytes
    /// that other processes of the same user open with
    /// [`open_shared`](MappedFile::open_shared). The memory is gone when the
    /// last handle to it (map, view or stream) in any process is dropped,
    /// or its process dies.
    ///
    /// # Errors
    ///
    /// - `AlreadyExists` if a live map has this name.
    /// - `InvalidInput` if `capacity` is 0 or the name is not 1 to 200
    ///   letters, digits, `-`, `_` or `.` (or is `.` or `..`).
    ///
    /// # Safety
    ///
    /// Other processes can write the memory at any time: see the
    /// [crate docs](crate#safety).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("mapview-doc-{}", std::process::id());
    /// // SAFETY: only this example uses the name.
    /// let a = unsafe { mapview::MappedFile::create_shared(&name, 4096)? };
    /// let b = unsafe { mapview::MappedFile::open_shared(&name)? };
    /// a.view_mut(..5)?.copy_from_slice(b"hello");
    /// assert_eq!(&b.view(..5)?[..], b"hello");
    /// drop((a, b));
    /// let gone = unsafe { mapview::MappedFile::open_shared(&name) };
    /// assert_eq!(gone.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn create_shared(name: &str, capacity: u64) -> io::Result<Self> {
        let capacity = nonzero_shared(capacity)?;
        let file = shm::create(name, capacity)?;
        Ok(Self::shared(file, name, capacity))
    }

    /// Opens named shared memory made by any process of the same user,
    /// read-write.
    ///
    /// # Errors
    ///
    /// - `NotFound` if there is no live map of this name.
    /// - `InvalidInput` for a bad name (see
    ///   [`create_shared`](MappedFile::create_shared)).
    /// - `PermissionDenied` if the object under the name belongs to another
    ///   user or is open to group or others: not one mapview made for you.
    /// - `InvalidData` if the object is live but empty (not a named map).
    ///
    /// # Safety
    ///
    /// Other processes can write the memory at any time: see the
    /// [crate docs](crate#safety).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::MappedFile;
    ///
    /// let name = format!("mapview-doc-open_shared-{}", std::process::id());
    /// // SAFETY: only this example uses the name.
    /// let owner = unsafe { MappedFile::create_shared(&name, 4096)? };
    /// owner.view_mut(..4)?.write_value(0, &7u32)?;
    /// // Usually in another process:
    /// // SAFETY: only this example uses the name.
    /// let peer = unsafe { MappedFile::open_shared(&name)? };
    /// assert_eq!(peer.capacity(), 4096);
    /// assert_eq!(peer.view(..4)?.read_value::<u32>(0)?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub unsafe fn open_shared(name: &str) -> io::Result<Self> {
        let file = shm::open(name)?;
        let capacity = file.metadata()?.len();
        Ok(Self::shared(file, name, capacity))
    }

    fn shared(file: File, name: &str, capacity: u64) -> Self {
        Self::from_object(Object {
            file,
            access: Access::ReadWrite,
            capacity,
            backing: Backing::Shared {
                name: name.to_owned(),
            },
            mincore_truthful: Default::default(),
        })
    }

    /// Creates unnamed memory of `capacity` zeroed bytes. It is shared with
    /// child processes that are handed its descriptor
    /// ([`as_fd`](AsFd::as_fd)), and gone when the last user drops it.
    ///
    /// # Errors
    ///
    /// Any error of making the memory object.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(1 << 20)?;
    /// assert_eq!(map.name(), None);
    /// assert!(map.view(..)?.iter().all(|&byte| byte == 0));
    /// map.view_mut(..8)?.write_value(0, &u64::MAX)?;
    /// assert_eq!(map.view(..8)?.read_value::<u64>(0)?, u64::MAX);
    /// # Ok(())
    /// # }
    /// ```
    pub fn anonymous(capacity: u64) -> io::Result<Self> {
        Ok(Self::from_object(Object {
            file: sys::anonymous_file(capacity)?,
            access: Access::ReadWrite,
            capacity,
            backing: Backing::Anonymous,
            mincore_truthful: Default::default(),
        }))
    }

    /// The size of the mapping object in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(10_000)?;
    /// assert_eq!(map.capacity(), 10_000);
    /// // A range past the capacity is an error.
    /// let past = map.view(9_000..11_000);
    /// assert_eq!(past.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(&self) -> u64 {
        self.object.capacity
    }

    /// How the mapping object may be accessed.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::{Access, MappedFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "read me")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { MappedFile::open(&path)? };
    /// assert_eq!(map.access(), Access::Read);
    /// let write = map.view_mut(..);
    /// assert_eq!(write.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
    /// # Ok(())
    /// # }
    /// ```
    pub fn access(&self) -> Access {
        self.object.access
    }

    /// The name of a shared map, `None` for files and anonymous memory.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use mapview::MappedFile;
    ///
    /// let name = format!("mapview-doc-name-{}", std::process::id());
    /// // SAFETY: only this example uses the name.
    /// let shared = unsafe { MappedFile::create_shared(&name, 4096)? };
    /// assert_eq!(shared.name(), Some(name.as_str()));
    /// assert_eq!(MappedFile::anonymous(4096)?.name(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        match &self.object.backing {
            Backing::Shared { name } => Some(name),
            Backing::Persisted | Backing::Anonymous => None,
        }
    }

    /// A read-only view of `range` (any offset, any length; an empty range,
    /// such as `..` of an empty file, gives an empty view).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range is reversed or reaches past the capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("request.txt");
    /// std::fs::write(&path, "GET /index.html HTTP/1.1")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { mapview::MappedFile::open(&path)? };
    /// let target = map.view(4..15)?; // any offset, any length
    /// assert_eq!(&target[..], b"/index.html");
    /// assert_eq!(target.offset(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn view(&self, range: impl RangeBounds<u64>) -> io::Result<View> {
        let span = range::resolve(range, 0, self.capacity())?;
        View::new(Arc::clone(&self.object), span)
    }

    /// A writable view of `range` (any offset, any length; an empty range
    /// gives an empty view).
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the object was opened with [`Access::Read`];
    /// `InvalidInput` if the range is reversed or reaches past the capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let map = mapview::MappedFile::anonymous(4096)?;
    /// let mut page = map.view_mut(..)?;
    /// let word = map.view(100..105)?;
    /// page[100..105].copy_from_slice(b"hello");
    /// // Every view of the object sees the write at once.
    /// assert_eq!(&word[..], b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn view_mut(&self, range: impl RangeBounds<u64>) -> io::Result<ViewMut> {
        self.object.check_writable()?;
        let span = range::resolve(range, 0, self.capacity())?;
        ViewMut::new(Arc::clone(&self.object), span)
    }

    /// A sequential, async view of `range`: see [`ViewStream`]. Call it inside
    /// a tokio runtime (its background work runs on the [`Pager`](crate::Pager)).
    /// An empty range gives a stream that is at its end at once (reads
    /// return 0 bytes, writes `Ok(0)`).
    ///
    /// It maps nothing, so it never blocks (an `mmap` on an async worker
    /// could wait behind the pager's populates): the pager maps the range a
    /// window at a time, the first before the stream's first poll completes
    /// (see [`ViewStream`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range is reversed or reaches past the capacity; an
    /// error of kind `Other` outside a tokio runtime. An error of the `mmap`
    /// of a window (`OutOfMemory`, say) comes from the poll that needs it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, "line 1\nline 2\n")?;
    /// // SAFETY: this program is the only user of the file.
    /// let map = unsafe { mapview::MappedFile::open(&path)? };
    /// let mut text = String::new();
    /// map.stream(..)?.read_to_string(&mut text).await?;
    /// assert_eq!(text, "line 1\nline 2\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(&self, range: impl RangeBounds<u64>) -> io::Result<ViewStream> {
        self.stream_with(range, &StreamOptions::default())
    }

    /// Like [`stream`](MappedFile::stream), with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use mapview::{MappedFile, StreamOptions};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("out.bin");
    /// // SAFETY: this program is the only user of the new file.
    /// let map = unsafe { MappedFile::create(&path, 1 << 20)? };
    /// let options = StreamOptions::new().dirty_limit(256 << 10);
    /// let mut stream = map.stream_with(.., &options)?;
    /// stream.write_all(&vec![7; 1 << 20]).await?;
    /// stream.flush().await?; // durable when it returns
    /// assert!(std::fs::read(&path)?.iter().all(|&byte| byte == 7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream_with(
        &self,
        range: impl RangeBounds<u64>,
        options: &StreamOptions,
    ) -> io::Result<ViewStream> {
        let span = range::resolve(range, 0, self.capacity())?;
        ViewStream::new(Arc::clone(&self.object), span, options)
    }

    /// The whole object mapped once, for regions sliced from it: the HTTP
    /// services serve every response of a cached file from one mapping.
    /// Blocking (`mmap`).
    #[cfg(feature = "http")]
    pub(crate) fn shared_region(&self) -> io::Result<crate::region::Region> {
        let span = range::resolve(.., 0, self.capacity())?;
        crate::region::Region::new_shared(Arc::clone(&self.object), span)
    }
}

impl AsFd for MappedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.object.file.as_fd()
    }
}
