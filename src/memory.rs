//! What an idle Herald keeps resident (README: Performance, idle RSS; the target is under
//! 15 MB). Two settings at start-up, each for a block of memory that serves nothing once
//! Herald is running:
//!
//! - `limit_malloc_arenas`: glibc's per-thread malloc arenas, each keeping its own free
//!   memory after a burst.
//! - `trim_executable`: the pages of the executable's code and constants that only
//!   start-up used.
//!
//! (The third, worker threads that never sent anything, is `engine::worker::Crew`.)

/// glibc gives threads that allocate at once their own malloc arena, up to 8 per core (16
/// on 2 cores), and each arena keeps its own free memory: after a burst, memory freed in
/// one arena serves no other, and an idle Herald holds the high-water mark of each. One
/// arena per core is enough here: small allocations are served by each thread's lock-free
/// cache (tcache) first, and the threads that allocate most (workers, the writer, the HTTP
/// server) run at most one per core at a time. Call before any thread starts; a
/// `MALLOC_ARENA_MAX` in the environment still wins (glibc reads it at start-up, and this
/// then leaves it alone). Other C libraries have no arenas: nothing to do.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // SAFETY: mallopt only sets an allocator parameter; called before other threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores.clamp(2, 64) as libc::c_int);
        }
    }
}

/// Drops from this process the pages of the executable's read-only segments (code,
/// constants, the relocation table) once start-up is done. Start-up runs code that never
/// runs again (argument and configuration parsing, migrations, TLS and route set-up), and
/// the kernel maps each page it touches together with its neighbours (fault-around, 64
/// KiB at a time), so a freshly started Herald held 7–8 MiB of its 15 MiB binary's code
/// and 1 MiB of relocations that only the dynamic loader reads, before `main` (README:
/// Performance). These are clean pages of the file, never written: `MADV_DONTNEED` unmaps
/// them here and the kernel maps a page back from the page cache on its next use, so what
/// stays resident is what an idle Herald runs, and a busy one maps back in a few hundred
/// minor faults. Segments that are ever writable (data, and the relocated `RELRO` part,
/// whose pages hold the relocated pointers) are left alone. Best effort: nothing happens
/// where `dl_iterate_phdr` or the segments cannot be found.
pub fn trim_executable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // `as u64`: the ELF address types are 32 bits wide on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            _data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: the loader hands a valid `dl_phdr_info` whose program headers stay
            // mapped while the object is loaded; the first object is the executable.
            unsafe {
                let info = &*info;
                let page = match libc::sysconf(libc::_SC_PAGESIZE) {
                    n if n > 0 => n as u64,
                    _ => return 1,
                };
                let base = info.dlpi_addr as u64;
                let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
                for h in headers {
                    if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
                        continue;
                    }
                    let start = (base + h.p_vaddr).div_ceil(page) * page;
                    let end = (base + h.p_vaddr + h.p_memsz) / page * page;
                    if end > start {
                        libc::madvise(
                            start as *mut libc::c_void,
                            (end - start) as usize,
                            libc::MADV_DONTNEED,
                        );
                    }
                }
                1 // the executable only
            }
        }
        // SAFETY: `each` only reads what the loader passes and stops after the executable.
        unsafe {
            libc::dl_iterate_phdr(Some(each), std::ptr::null_mut());
        }
    }
}
