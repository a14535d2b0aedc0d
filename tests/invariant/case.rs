//! The policies the property runs on: tenants with random classes, shares
//! and reserves, and what a reload changes them to.

use proptest::prelude::*;

const QOS: [&str; 4] = ["platinum", "gold", "silver", "bronze"];

#[derive(Debug, Clone)]
pub struct TenantCase {
    pub qos: usize,
    /// Share of the room (capacity − emergency) guaranteed, in percent.
    pub rate_share: u64,
    pub burst_factor: u64,
    pub slot_share: u64,
    pub reserve: bool,
}

#[derive(Debug, Clone)]
pub struct PolicyCase {
    pub rate_capacity: u64,
    pub slot_capacity: u64,
    pub emergency_pct: u64,
    pub tenants: Vec<TenantCase>,
    /// What a reload changes them to (same tenants, other limits)...
    pub reloaded: Vec<TenantCase>,
    /// ... less the last one, which the reload removes (and the next adds
    /// back, with an empty bucket).
    pub drop_last: bool,
}

impl PolicyCase {
    pub fn yaml(&self) -> String {
        let emergency = self.emergency_pct as f64 / 100.0;
        let mut y = format!(
            "resources:\n  api: {{ kind: rate, capacity: {}, emergency: {emergency} }}\n  \
             slots: {{ kind: concurrency, capacity: {}, emergency: {emergency}, lease_ttl: 10s }}\n\
             tenants:\n",
            self.rate_capacity, self.slot_capacity
        );
        let room = |c: u64| c - (c as f64 * emergency).floor() as u64;
        // Shares are scaled so their sum stays within the room.
        let rate_total: u64 = self
            .tenants
            .iter()
            .map(|t| t.rate_share)
            .sum::<u64>()
            .max(100);
        let slot_total: u64 = self
            .tenants
            .iter()
            .map(|t| t.slot_share)
            .sum::<u64>()
            .max(100);
        for (i, t) in self.tenants.iter().enumerate() {
            let g = room(self.rate_capacity) * t.rate_share / rate_total;
            let s = room(self.slot_capacity) * t.slot_share / slot_total;
            let reserve = if t.reserve { ", reserve: {}" } else { "" };
            let burst = if g > 0 {
                format!(", burst: {}", g * t.burst_factor)
            } else {
                String::new()
            };
            y += &format!(
                "  t{i}:\n    qos: {}\n    limits:\n      api: {{ guaranteed: {g}{burst}{reserve} }}\n      \
                 slots: {{ guaranteed: {s}{reserve} }}\n",
                QOS[t.qos]
            );
        }
        y
    }
}

pub fn policy_case() -> impl Strategy<Value = PolicyCase> {
    let tenant = (0..4usize, 0..60u64, 1..4u64, 0..60u64, any::<bool>()).prop_map(
        |(qos, rate_share, burst_factor, slot_share, reserve)| TenantCase {
            qos,
            rate_share,
            burst_factor,
            slot_share,
            reserve,
        },
    );
    (
        10..2000u64,
        1..20u64,
        0..30u64,
        prop::collection::vec((tenant.clone(), tenant), 1..5),
        any::<bool>(),
    )
        .prop_map(
            |(rate_capacity, slot_capacity, emergency_pct, pairs, drop_last)| PolicyCase {
                rate_capacity,
                slot_capacity,
                emergency_pct,
                tenants: pairs.iter().map(|p| p.0.clone()).collect(),
                reloaded: pairs.into_iter().map(|p| p.1).collect(),
                drop_last,
            },
        )
}
