//! The synchronization primitives the pools are built on: the standard
//! library's in the daemon, loom's under `--cfg loom`, so the loom tests
//! (`pool/loom.rs`) explore every interleaving of the same code.

#[cfg(not(loom))]
pub(super) use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

#[cfg(loom)]
pub(super) use loom::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};
