//! Synthetic per-minute demand for the fits and the fleet: seasonal,
//! flat and daily shapes from a deterministic generator.

use std::f64::consts::PI;

/// xorshift64*: deterministic noise without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f64 {
        2.0 * self.next_f64() - 1.0
    }
}

/// Per-minute demand with a 60-minute cycle (the "day" of a compressed
/// trace): level 100, swing ±40, a slight upward trend, ±10 uniform noise.
pub fn seasonal_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|t| {
            let t = t as f64;
            100.0 + 40.0 * (2.0 * PI * t / 60.0).sin() + 0.002 * t + 10.0 * rng.signed()
        })
        .collect()
}

/// Per-minute demand with no cycle: level 100 with AR(1) noise.
pub fn flat_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    let mut x = 0.0;
    (0..len)
        .map(|_| {
            x = 0.7 * x + 10.0 * rng.signed();
            100.0 + x
        })
        .collect()
}

/// Per-minute demand with an hourly and a daily cycle (a real day): level
/// 100, ±40 over the hour, ±30 over the day, ±10 uniform noise.
pub fn daily_series(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|t| {
            let t = t as f64;
            100.0
                + 40.0 * (2.0 * PI * t / 60.0).sin()
                + 30.0 * (2.0 * PI * t / 1440.0).sin()
                + 10.0 * rng.signed()
        })
        .collect()
}
