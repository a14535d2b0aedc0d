//! The registry in force: what every call reads first, and what a reload
//! replaces whole.
//!
//! The hot path reads it through a copy each thread keeps (the registry's
//! `Arc` and the version it was taken at), checked against a version
//! number: one plain load, and a non-atomic count for the [`Current`]
//! handed out. An `arc-swap` load costs two locked instructions (taking a
//! debt slot and paying it back), about a sixth of a rate decision.
//!
//! The price: a thread's copy keeps the registry it last used alive until
//! its next call or its exit (one per thread at most). A registry stays
//! valid after a reload replaces it (late creations go to its successor),
//! so a call racing a reload may decide on the one before, as it could
//! with any load.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, Guard};

use super::registry::Registry;

/// Tells cores apart, so a thread's copy is never used for another core.
static NEXT_CORE: AtomicU64 = AtomicU64::new(1);

/// The registry in force for one core.
pub struct InForce {
    /// Unique for the process's lifetime (never reused, unlike an address).
    core: u64,
    /// Bumped after every [`store`](Self::store).
    version: AtomicU64,
    current: ArcSwap<Registry>,
}

/// A thread's copy of one core's registry, shared (non-atomically) with
/// the [`Current`]s handed out from it.
struct ThreadCopy {
    core: u64,
    version: u64,
    registry: Arc<Registry>,
}

thread_local! {
    static COPY: RefCell<Option<Rc<ThreadCopy>>> = const { RefCell::new(None) };
}

/// The registry in force, as one thread holds it for one call: cheap to
/// take and to drop (a non-atomic count), and not `Send`, so it cannot be
/// held across an `.await`.
pub struct Current(Rc<ThreadCopy>);

impl Deref for Current {
    type Target = Registry;

    #[inline]
    fn deref(&self) -> &Registry {
        &self.0.registry
    }
}

impl InForce {
    pub fn new(registry: Registry) -> Self {
        Self {
            core: NEXT_CORE.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            current: ArcSwap::from_pointee(registry),
        }
    }

    /// The registry in force, from this thread's copy when that is current
    /// (the hot path: no locked instruction).
    #[inline]
    pub fn current(&self) -> Current {
        // Read before the registry (see `refresh`).
        let version = self.version.load(Ordering::Acquire);
        let copy = COPY.try_with(|copy| {
            let copy = copy.try_borrow().ok()?;
            let copy = copy.as_ref()?;
            (copy.core == self.core && copy.version == version).then(|| Rc::clone(copy))
        });
        match copy {
            Ok(Some(copy)) => Current(copy),
            _ => self.refresh(version),
        }
    }

    /// Makes this thread a new copy: the registry in force, tagged with
    /// `version`, which was read before it, so a store between the two
    /// only makes the next call refresh again.
    #[cold]
    #[inline(never)]
    fn refresh(&self, version: u64) -> Current {
        let copy = Rc::new(ThreadCopy {
            core: self.core,
            version,
            registry: self.current.load_full(),
        });
        // Unless the thread is exiting (its copy gone): then this call
        // alone uses the new one.
        let _ = COPY.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                let old = slot.replace(Rc::clone(&copy));
                drop(slot);
                // Dropped outside the borrow: a registry's drop runs code.
                drop(old);
            }
        });
        Current(copy)
    }

    /// The registry in force, for calls off the hot path.
    pub fn load(&self) -> Guard<Arc<Registry>> {
        self.current.load()
    }

    /// The registry in force, to keep.
    pub fn load_full(&self) -> Arc<Registry> {
        self.current.load_full()
    }

    /// Puts `registry` in force; every thread's copy is stale from now on.
    pub fn store(&self, registry: Arc<Registry>) {
        self.current.store(registry);
        self.version.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn registry(resource: &str) -> Registry {
        let yaml = format!(
            "resources:\n  {resource}: {{ kind: rate, capacity: 10 }}\n\
             tenants:\n  t: {{ qos: gold, limits: {{ {resource}: {{ guaranteed: 1 }} }} }}\n"
        );
        Registry::new(&Policy::load_str(&yaml, "test").unwrap(), 10)
    }

    fn names(r: &Registry) -> Vec<&str> {
        r.resource_names().collect()
    }

    #[test]
    fn a_thread_sees_the_registry_a_store_put_in_force_on_its_next_call() {
        let in_force = InForce::new(registry("a"));
        assert_eq!(names(&in_force.current()), ["a"]);
        assert_eq!(names(&in_force.current()), ["a"], "from the copy");
        in_force.store(Arc::new(registry("b")));
        assert_eq!(names(&in_force.current()), ["b"]);
        // And another thread, whose copy is older or absent.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(names(&in_force.current()), ["b"]));
        });
    }

    #[test]
    fn two_cores_on_one_thread_never_see_each_others_registry() {
        let (one, two) = (InForce::new(registry("a")), InForce::new(registry("b")));
        for _ in 0..3 {
            assert_eq!(names(&one.current()), ["a"]);
            assert_eq!(names(&two.current()), ["b"]);
        }
        // A core made where a dropped one was is still another core.
        drop(one);
        let three = InForce::new(registry("c"));
        assert_eq!(names(&three.current()), ["c"]);
        assert_eq!(names(&two.current()), ["b"]);
    }

    #[test]
    fn a_current_held_across_a_store_keeps_the_registry_it_was_taken_from() {
        let in_force = InForce::new(registry("a"));
        let held = in_force.current();
        in_force.store(Arc::new(registry("b")));
        // Nested in the same thread: the copy is replaced under `held`.
        assert_eq!(names(&in_force.current()), ["b"]);
        assert_eq!(names(&held), ["a"]);
    }
}
