//! Many daemons, one capacity (DESIGN §9): each daemon enforces locally
//! from a lease, its share of every resource's capacity, kept in a store
//! all daemons share (Redis or Valkey; an in-memory one for the simulator).
//!
//! Data flow, once per tick and per resource: [`plan`] turns every live
//! instance's wants into this instance's target share; the daemon lowers its
//! pools to `min(in force, target)`, sends an [`store::Ask`], and the store
//! grants `min(target, C − Σ others' leases)`; the grant is put in force
//! (raised only now). The store's script holds the invariant (Σ leases ≤ C);
//! the targets only decide who gets what.

pub mod plan;
pub mod store;
