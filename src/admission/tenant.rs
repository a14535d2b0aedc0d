//! A tenant: a caller identity, its QoS class, and one allotment per
//! resource (indexed by resource id).

use std::sync::Arc;

use super::allotment::Allotment;
use super::qos::Qos;

/// A caller identity with its allotments, indexed by resource id.
#[derive(Debug)]
pub struct Tenant {
    /// Unique for the registry's lifetime (keys idempotency records).
    pub id: u64,
    pub name: Arc<str>,
    pub qos_name: Arc<str>,
    pub qos: Qos,
    /// Orders waiters between classes: higher weight first.
    pub rank: u32,
    pub allotments: Box<[Allotment]>,
    /// Created from `defaults` rather than listed.
    pub from_defaults: bool,
}

/// A tenant found by name: borrowed from the listed ones (no atomic
/// touched) or shared with the table of those created from defaults.
pub enum TenantRef<'a> {
    Listed(&'a Arc<Tenant>),
    Created(Arc<Tenant>),
}

impl std::ops::Deref for TenantRef<'_> {
    type Target = Arc<Tenant>;
    #[inline]
    fn deref(&self) -> &Arc<Tenant> {
        match self {
            TenantRef::Listed(t) => t,
            TenantRef::Created(t) => t,
        }
    }
}
