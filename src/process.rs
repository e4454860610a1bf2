//! Process-wide allocator tuning: glibc's heap arenas, set once by the binary before a sync starts its
//! threads, and handed back to the system between a run's steps.

/// Keeps the threads a run starts (planning's rayon pool, the fetch runtime) on the one heap arena: with one
/// arena per thread each kept its own freed pages and fragments, and the 5,000-student first sync peaked at
/// 187 MB resident for a 96 MB heap (137 MB with one arena). Set before those threads first allocate.
pub fn one_heap_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointer; M_ARENA_MAX only bounds the arenas glibc creates from now on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the heap's free pages back to the system between the steps of a run. glibc keeps what a step freed
/// (records, a group's ops), much of it in the arenas of the threads that planned or fetched, so each step's
/// peak would otherwise sit on top of the leftovers of the one before in the process's resident memory.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
