//! A counting global allocator for memory-cost tests and measurements:
//!
//! ```ignore
//! #[global_allocator]
//! static A: eddy_testkit::alloc::Counting = eddy_testkit::alloc::Counting;
//! let before = eddy_testkit::alloc::live();
//! // ... build the structure ...
//! let bytes = eddy_testkit::alloc::live() - before;
//! ```
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards and counts

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Forwards to the system allocator and counts live bytes.
pub struct Counting;

/// Bytes currently allocated through [`Counting`].
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every call forwards to `System` with the caller's own pointer and layout.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as requested.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.realloc(p, l, new) }
    }
}
