//! A bounded ring of samples, the storage of every [`History`] series. It
//! grows as data arrives, up to its bound, so a young or idle series costs
//! little. A ring read back from a snapshot is checked before use: its
//! arithmetic trusts `head < cap` and `len <= cap`.
//!
//! Kept by hand: its fields are the snapshot's format, checked field by
//! field with named errors before use (a `VecDeque` would need a conversion
//! whose errors postcard drops), and it grows to its bound where the
//! `ringbuffer` and `circular-buffer` crates allocate all of it up front.
//!
//! [`History`]: super::history::History

use serde::{Deserialize, Serialize};

/// Why a ring or a history read from outside (a snapshot) cannot be used:
/// which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same fault, its field named inside `outer` (`tick_demand.head`).
    fn within(mut self, outer: &str) -> Self {
        self.field = format!("{outer}.{}", self.field);
        self
    }
}

/// `Ok` if `v` is what a history stores: a rate or mean, finite and not
/// negative.
pub fn check_rate(field: impl FnOnce() -> String, v: f64) -> Result<(), Invalid> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Invalid::new(
            field(),
            format!("{v} is not a finite rate >= 0"),
        ))
    }
}

/// A bounded ring of samples, oldest first when read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ring {
    buf: Vec<f32>,
    /// Next write position once the ring is full.
    head: usize,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            head: 0,
            cap,
        }
    }

    pub fn push(&mut self, v: f32) {
        if self.buf.len() < self.cap {
            if self.buf.len() == self.buf.capacity() {
                // Grow by doubling, but never past the bound: a full ring
                // holds exactly `cap` samples, no slack.
                let extra = self.buf.len().max(64).min(self.cap - self.buf.len());
                self.buf.reserve_exact(extra);
            }
            self.buf.push(v);
        } else {
            self.buf[self.head] = v;
            self.head = (self.head + 1) % self.cap;
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Where the next sample goes once the ring is full (0 until then).
    pub fn head(&self) -> usize {
        self.head
    }

    /// Samples allocated (not just used).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The last `n` samples (fewer if there are not that many), oldest
    /// first, as f64 for the models.
    pub fn tail(&self, n: usize) -> Vec<f64> {
        let n = n.min(self.buf.len());
        let (newer, older) = self.buf.split_at(self.head);
        older
            .iter()
            .chain(newer)
            .skip(self.buf.len() - n)
            .map(|&v| v as f64)
            .collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<f32> {
        if self.buf.is_empty() {
            None
        } else if self.buf.len() < self.cap || self.head == 0 {
            self.buf.last().copied()
        } else {
            Some(self.buf[self.head - 1])
        }
    }

    /// Checks a ring read from outside, named `name` in the error, against
    /// the bound `cap` it must have.
    pub fn check(&self, name: &str, cap: usize) -> Result<(), Invalid> {
        self.check_fields(cap).map_err(|e| e.within(name))
    }

    fn check_fields(&self, cap: usize) -> Result<(), Invalid> {
        let len = self.buf.len();
        if self.cap != cap {
            return Err(Invalid::new(
                "cap",
                format!("{}, but this ring keeps {cap} samples", self.cap),
            ));
        }
        if len > cap {
            return Err(Invalid::new(
                "buf",
                format!("{len} samples, more than its capacity {cap}"),
            ));
        }
        // The head moves only once the ring is full.
        let bound = if len < cap { 1 } else { cap };
        if self.head >= bound {
            return Err(Invalid::new(
                "head",
                format!(
                    "{} is past the ring's end ({len} of {cap} samples)",
                    self.head
                ),
            ));
        }
        for (i, &v) in self.buf.iter().enumerate() {
            check_rate(|| format!("buf[{i}]"), v as f64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize, pushes: usize) -> Ring {
        let mut r = Ring::new(cap);
        for v in 1..=pushes {
            r.push(v as f32);
        }
        r
    }

    #[test]
    fn a_ring_keeps_the_newest_cap_samples_in_order() {
        let r = ring(3, 5);
        assert_eq!(r.tail(10), [3.0, 4.0, 5.0]);
        assert_eq!(r.tail(2), [4.0, 5.0]);
        assert_eq!(r.last(), Some(5.0));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn rings_as_pushed_pass_the_check() {
        for pushes in [0, 1, 2, 3, 4, 5, 7] {
            assert_eq!(ring(3, pushes).check("r", 3), Ok(()), "{pushes}");
        }
    }

    #[test]
    fn each_broken_field_is_named() {
        let cases: [(Ring, &str, &str); 8] = [
            (
                Ring {
                    cap: 0,
                    ..ring(3, 2)
                },
                "r.cap",
                "0, but this ring keeps 3",
            ),
            (
                Ring {
                    cap: 4,
                    ..ring(3, 2)
                },
                "r.cap",
                "4, but",
            ),
            (
                Ring {
                    buf: vec![1.0; 4],
                    ..ring(3, 3)
                },
                "r.buf",
                "4 samples, more than its capacity 3",
            ),
            (
                Ring {
                    head: 1_000_000,
                    ..ring(3, 5)
                },
                "r.head",
                "1000000 is past the ring's end (3 of 3",
            ),
            (
                Ring {
                    head: 3,
                    ..ring(3, 5)
                },
                "r.head",
                "3 is past",
            ),
            // Not full yet: the head has not moved.
            (
                Ring {
                    head: 1,
                    ..ring(3, 2)
                },
                "r.head",
                "1 is past",
            ),
            (
                Ring {
                    buf: vec![1.0, f32::NAN],
                    ..ring(3, 2)
                },
                "r.buf[1]",
                "NaN is not a finite rate",
            ),
            (
                Ring {
                    buf: vec![-1.0, f32::INFINITY],
                    ..ring(3, 2)
                },
                "r.buf[0]",
                "-1 is not",
            ),
        ];
        for (r, field, reason) in cases {
            let e = r.check("r", 3).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.starts_with(reason), "{e}");
        }
    }
}
