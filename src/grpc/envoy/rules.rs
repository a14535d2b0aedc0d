//! The `envoy:` section in force, swapped whole when a policy reload has
//! been put in force by the core, so the face never maps descriptors with
//! rules of a policy the core refused.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::oneshot;

use crate::policy::{EnvoySpec, Policy};
use crate::watcher::Reload;

/// The live rules (empty when the policy has no `envoy:` section: every
/// domain is then unknown, and every descriptor OK).
#[derive(Debug, Default)]
pub struct EnvoyRules(ArcSwap<EnvoySpec>);

impl EnvoyRules {
    /// The rules of `policy` (validated).
    pub fn new(policy: &Policy) -> Arc<Self> {
        Arc::new(Self(ArcSwap::from_pointee(
            policy.envoy.clone().unwrap_or_default(),
        )))
    }

    /// The rules in force now.
    pub fn current(&self) -> Guard<Arc<EnvoySpec>> {
        self.0.load()
    }

    /// Wraps the watcher's `apply` (which hands a reload to the planner):
    /// once the core has put a reload in force, its rules are put in force
    /// too, then the watcher hears the outcome. A refused reload changes
    /// nothing here either. Called from the watcher's task (a runtime).
    pub fn follow(
        self: &Arc<Self>,
        apply: impl Fn(Reload) -> bool + Send + 'static,
    ) -> impl Fn(Reload) -> bool + Send + 'static {
        let rules = self.clone();
        move |mut reload: Reload| {
            let spec = reload.policy.envoy.clone().unwrap_or_default();
            let (done, outcome) = oneshot::channel();
            let watcher = std::mem::replace(&mut reload.done, done);
            if !apply(reload) {
                return false;
            }
            let rules = rules.clone();
            tokio::spawn(async move {
                // No answer: the planner stopped; the watcher sees that too.
                if let Ok(result) = outcome.await {
                    if result.is_ok() {
                        rules.0.store(Arc::new(spec));
                    }
                    let _ = watcher.send(result);
                }
            });
            true
        }
    }
}
