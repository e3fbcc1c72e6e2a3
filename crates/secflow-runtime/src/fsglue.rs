//! Replaces the write-side functions of `wasi:filesystem` with versions that ask the
//! [`FsGuard`](crate::fsguard::FsGuard) first, then call wasmtime-wasi's own implementation.
//! Reads, stats and directory listings stay wasmtime-wasi's.
//!
//! The linker is told to allow shadowing, and these definitions come after
//! `wasmtime_wasi::p2::add_to_linker_async`, so the names below replace its ones. The
//! quota tests fail if a name here drifts from the WIT package version wasmtime-wasi ships.

use crate::fsguard::{FsGuard, Refusal};
use crate::host::HostState;
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsError, OutputStream, Pollable, StreamError};

/// The `wasi:filesystem` version wasmtime-wasi 48 implements.
const TYPES: &str = "wasi:filesystem/types@0.2.12";
const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

type FsReturn<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

fn refused<T>(r: Refusal) -> FsReturn<T> {
    Ok((Err(match r {
        Refusal::NotPermitted => ErrorCode::NotPermitted,
        Refusal::Quota => ErrorCode::Quota,
        Refusal::CrossDevice => ErrorCode::CrossDevice,
    }),))
}

/// wasmtime-wasi's result as the import's result; a trap stays a trap.
fn done<T>(r: Result<T, FsError>) -> FsReturn<T> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

fn borrow(rep: u32) -> Resource<Descriptor> {
    Resource::new_borrow(rep)
}

/// Size of an open file, when the descriptor is a file.
fn file_size(state: &HostState, rep: u32) -> Option<u64> {
    match state.table.get(&borrow(rep)).ok()? {
        Descriptor::File(f) => f.file.metadata().ok().map(|m| m.len()),
        Descriptor::Dir(_) => None,
    }
}

/// What is at `path` under a directory descriptor, resolved as `flags` say (a final
/// symlink followed or not): `Some(bytes it counts for)` or `None` when nothing is there.
async fn entry_at(state: &mut HostState, rep: u32, path: &str, flags: PathFlags) -> Option<u64> {
    let stat = state
        .filesystem()
        .stat_at(borrow(rep), flags, path.to_string())
        .await
        .ok()?;
    Some(
        if stat.type_ == wasmtime_wasi::p2::bindings::filesystem::types::DescriptorType::RegularFile
        {
            stat.size
        } else {
            0
        },
    )
}

/// Adds the guarded functions; call after `wasmtime_wasi::p2::add_to_linker_async`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    {
        let mut preopens = linker.instance(PREOPENS)?;
        preopens.func_wrap("get-directories", |mut store, (): ()| {
            let dirs = store.data_mut().filesystem().get_directories()?;
            let fs = store.data().fs.clone();
            for (fd, guest) in &dirs {
                if let Some(index) = fs.grant_index(guest) {
                    fs.bind(fd.rep(), index);
                }
            }
            Ok((dirs,))
        })?;
    }
    let mut types = linker.instance(TYPES)?;

    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store, (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let rep = fd.rep();
                let grant = match fs.check_writable(rep, "a write") {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                let size = file_size(store.data(), rep);
                let end = offset.saturating_add(buffer.len() as u64);
                let growth = size.map_or(0, |s| end.saturating_sub(s));
                if let Err(r) = fs.reserve(grant, growth, 0) {
                    return refused(r);
                }
                let result = store
                    .data_mut()
                    .filesystem()
                    .write(fd, buffer, offset)
                    .await;
                let used = match &result {
                    Ok(n) => size.map_or(0, |s| offset.saturating_add(*n).saturating_sub(s)),
                    Err(_) => 0,
                };
                fs.unreserve(grant, growth.saturating_sub(used), 0);
                done(result)
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store, (fd, new_size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let rep = fd.rep();
                let grant = match fs.check_writable(rep, "a truncation") {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                let size = file_size(store.data(), rep).unwrap_or(0);
                let growth = new_size.saturating_sub(size);
                if let Err(r) = fs.reserve(grant, growth, 0) {
                    return refused(r);
                }
                let result = store.data_mut().filesystem().set_size(fd, new_size).await;
                match &result {
                    Ok(()) => fs.release(grant, size.saturating_sub(new_size), 0),
                    Err(_) => fs.unreserve(grant, growth, 0),
                }
                done(result)
            })
        },
    )?;

    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store, (fd, offset): (Resource<Descriptor>, u64)| {
            open_stream(store.data_mut(), fd, Some(offset))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store, (fd,): (Resource<Descriptor>,)| open_stream(store.data_mut(), fd, None),
    )?;

    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let rep = fd.rep();
                let creating = open_flags.contains(OpenFlags::CREATE);
                let truncating = open_flags.contains(OpenFlags::TRUNCATE);
                let writes = creating
                    || truncating
                    || flags.intersects(DescriptorFlags::WRITE | DescriptorFlags::MUTATE_DIRECTORY);
                let grant = if writes {
                    match fs.check_writable(rep, &format!("opening `{path}` for writing")) {
                        Ok(g) => g,
                        Err(r) => return refused(r),
                    }
                } else {
                    fs.grant_of(rep).unwrap_or(usize::MAX)
                };
                // Resolved the way the open will be: creating through a dangling symlink makes
                // a new file at its target.
                let before = if creating || truncating {
                    entry_at(store.data_mut(), rep, &path, path_flags).await
                } else {
                    None
                };
                let new_entry = creating && before.is_none();
                if new_entry && let Err(r) = fs.reserve(grant, 0, 1) {
                    return refused(r);
                }
                let result = store
                    .data_mut()
                    .filesystem()
                    .open_at(fd, path_flags, path, open_flags, flags)
                    .await;
                match &result {
                    Ok(opened) => {
                        fs.bind(opened.rep(), grant);
                        if truncating && let Some(old) = before {
                            fs.release(grant, old, 0);
                        }
                    }
                    Err(_) if new_entry => fs.unreserve(grant, 0, 1),
                    Err(_) => {}
                }
                done(result)
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let grant = match fs.check_writable(fd.rep(), &format!("creating `{path}`")) {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                if let Err(r) = fs.reserve(grant, 0, 1) {
                    return refused(r);
                }
                let result = store
                    .data_mut()
                    .filesystem()
                    .create_directory_at(fd, path)
                    .await;
                if result.is_err() {
                    fs.unreserve(grant, 0, 1);
                }
                done(result)
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (fd, target, link): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let rep = fd.rep();
                let grant = match fs.check_writable(rep, &format!("creating the symlink `{link}`"))
                {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                if let Err(r) = fs.check_symlink(rep, &target, &link) {
                    return refused(r);
                }
                if let Err(r) = fs.reserve(grant, 0, 1) {
                    return refused(r);
                }
                let result = store
                    .data_mut()
                    .filesystem()
                    .symlink_at(fd, target, link)
                    .await;
                if result.is_err() {
                    fs.unreserve(grant, 0, 1);
                }
                done(result)
            })
        },
    )?;

    types.func_wrap(
        "[method]descriptor.link-at",
        |store,
         (fd, _old_flags, _old_path, _new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| { refused::<()>(store.data().fs.refuse_hard_link(fd.rep(), &new_path)) },
    )?;

    types.func_wrap_async(
        "[method]descriptor.unlink-file-at",
        |mut store, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let rep = fd.rep();
                let grant = match fs.check_writable(rep, &format!("removing `{path}`")) {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                let before = entry_at(store.data_mut(), rep, &path, PathFlags::empty()).await;
                let result = store.data_mut().filesystem().unlink_file_at(fd, path).await;
                if result.is_ok() {
                    fs.release(grant, before.unwrap_or(0), 1);
                }
                done(result)
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.remove-directory-at",
        |mut store, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let grant = match fs.check_writable(fd.rep(), &format!("removing `{path}`")) {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                let result = store
                    .data_mut()
                    .filesystem()
                    .remove_directory_at(fd, path)
                    .await;
                if result.is_ok() {
                    fs.release(grant, 0, 1);
                }
                done(result)
            })
        },
    )?;

    types.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store,
         (fd, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let fs = store.data().fs.clone();
                let (from, to) = (fd.rep(), new_fd.rep());
                let grant = match fs.check_writable(from, &format!("renaming `{old_path}`")) {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                let target = match fs.check_writable(to, &format!("renaming onto `{new_path}`")) {
                    Ok(g) => g,
                    Err(r) => return refused(r),
                };
                if grant != target {
                    return refused(Refusal::CrossDevice);
                }
                let replaced = entry_at(store.data_mut(), to, &new_path, PathFlags::empty()).await;
                let result = store
                    .data_mut()
                    .filesystem()
                    .rename_at(fd, old_path, new_fd, new_path)
                    .await;
                if result.is_ok()
                    && let Some(bytes) = replaced
                {
                    fs.release(grant, bytes, 1);
                }
                done(result)
            })
        },
    )?;
    Ok(())
}

/// `write-via-stream` (`Some(offset)`) and `append-via-stream` (`None`): wasmtime-wasi's
/// stream, wrapped so that every byte written through it is charged first.
fn open_stream(
    state: &mut HostState,
    fd: Resource<Descriptor>,
    offset: Option<u64>,
) -> FsReturn<Resource<DynOutputStream>> {
    let fs = state.fs.clone();
    let rep = fd.rep();
    let grant = match fs.check_writable(rep, "a write stream") {
        Ok(g) => g,
        Err(r) => return refused(r),
    };
    let file = match state.table.get(&borrow(rep)) {
        Ok(Descriptor::File(f)) => Some(f.file.clone()),
        _ => None,
    };
    let result = match offset {
        Some(offset) => state.filesystem().write_via_stream(fd, offset),
        None => state.filesystem().append_via_stream(fd),
    };
    let stream = match result {
        Ok(stream) => stream,
        Err(e) => return Ok((Err(e.downcast()?),)),
    };
    let Some(file) = file else {
        return Ok((Ok(stream),));
    };
    let slot = state.table.get_mut(&stream)?;
    let inner = std::mem::replace(
        slot,
        Box::new(wasmtime_wasi::p2::pipe::SinkOutputStream) as DynOutputStream,
    );
    *slot = Box::new(QuotaStream {
        inner,
        file,
        position: offset,
        high_water: 0,
        grant,
        fs,
    });
    Ok((Ok(stream),))
}

/// A file output stream that charges the grant's quota before each write.
struct QuotaStream {
    inner: DynOutputStream,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` for an append stream.
    position: Option<u64>,
    /// Highest offset this stream wrote to (its writes complete asynchronously, so the
    /// file's size may not show them yet).
    high_water: u64,
    grant: usize,
    fs: FsGuard,
}

/// The error the plugin sees for a write past the quota: `EDQUOT` where there is one, which
/// wasmtime-wasi maps to `error-code::quota`.
fn quota_error() -> StreamError {
    #[cfg(target_os = "linux")]
    let io = std::io::Error::from_raw_os_error(122);
    #[cfg(not(target_os = "linux"))]
    let io = std::io::Error::new(std::io::ErrorKind::QuotaExceeded, "write quota exceeded");
    StreamError::LastOperationFailed(wasmtime::Error::from(io))
}

impl QuotaStream {
    fn charge(&mut self, len: u64) -> Result<(), StreamError> {
        let growth = match self.position {
            None => len,
            Some(pos) => {
                let size = self
                    .file
                    .metadata()
                    .map_or(0, |m| m.len())
                    .max(self.high_water);
                pos.saturating_add(len).saturating_sub(size)
            }
        };
        self.fs
            .reserve(self.grant, growth, 0)
            .map_err(|_| quota_error())?;
        if let Some(pos) = &mut self.position {
            *pos = pos.saturating_add(len);
            self.high_water = self.high_water.max(*pos);
        }
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.charge(bytes.len() as u64)?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.charge(bytes.len() as u64)?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> Result<(), StreamError> {
        self.charge(nelem as u64)?;
        self.inner.write_zeroes(nelem)
    }

    async fn write_ready(&mut self) -> Result<usize, StreamError> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}
