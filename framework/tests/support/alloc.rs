//! A global allocator that counts, per thread, the largest single allocation and the peak of
//! live bytes: what "no allocation beyond the file's size" is checked with. A test binary
//! installs it with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`; tests run
//! on several threads, and each measures its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct CountingAlloc;

thread_local! {
    // `const` initialisers without destructors: using them from the allocator never
    // allocates or registers anything.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn grew(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size as isize;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    });
}

fn shrank(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - size as isize));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrank(layout.size());
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What a closure allocated on this thread: its largest single allocation and how far live
/// memory rose above where it started.
#[derive(Debug, Clone, Copy)]
pub struct Allocated {
    pub largest: usize,
    pub peak: usize,
}

/// Runs `f`, measuring its allocations on this thread (meaningful only in a binary that
/// installs [`CountingAlloc`]).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Allocated) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    LARGEST.with(|l| l.set(0));
    let out = f();
    let allocated = Allocated {
        largest: LARGEST.with(Cell::get),
        peak: (PEAK.with(Cell::get) - start).max(0) as usize,
    };
    (out, allocated)
}
