//! A QoS class as the core uses it: its weight (waiter order, reserve
//! water-filling), whether it may borrow from the shared pool, and whether
//! it may draw on the emergency pool.

use crate::policy::QosSpec;

/// A QoS class, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Qos {
    pub weight: u32,
    pub borrow: bool,
    pub emergency: bool,
}

impl From<QosSpec> for Qos {
    fn from(q: QosSpec) -> Self {
        Self {
            weight: q.weight,
            borrow: q.borrow,
            emergency: q.emergency,
        }
    }
}
