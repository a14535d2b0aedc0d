//! A series' forecast scores since it began, beside the trailing window
//! [`super::forecast::Accuracy`] the daemon publishes: the simulator reports
//! them per tenant for the whole replay.

/// Scores summed since a series began; they add up over series, so a
/// tenant's coverage and MASE pool every series and daemon it has.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Ticks whose forecast band was scored against their demand.
    pub scored: u64,
    /// Of which inside the band.
    pub hits: u64,
    /// Σ |demand − forecast mean|.
    pub abs_error: f64,
    /// Σ |demand − previous demand| over `naive_scored` ticks.
    pub naive_error: f64,
    pub naive_scored: u64,
}

impl Tally {
    pub(super) fn score(&mut self, hit: bool, abs_error: f64) {
        self.scored += 1;
        self.hits += hit as u64;
        self.abs_error += abs_error;
    }

    pub(super) fn score_naive(&mut self, abs_error: f64) {
        self.naive_error += abs_error;
        self.naive_scored += 1;
    }

    pub fn add(&mut self, o: &Tally) {
        self.scored += o.scored;
        self.hits += o.hits;
        self.abs_error += o.abs_error;
        self.naive_error += o.naive_error;
        self.naive_scored += o.naive_scored;
    }

    /// Share of scored ticks inside their band; `None` before any.
    pub fn coverage(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.hits as f64 / self.scored as f64)
    }

    /// Mean absolute error over the naive forecast's ("same as last
    /// tick"): below 1 beats it. `None` without a naive error to scale by.
    pub fn mase(&self) -> Option<f64> {
        let naive = self.naive_error / self.naive_scored.max(1) as f64;
        (naive > 0.0).then(|| self.abs_error / self.scored.max(1) as f64 / naive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_pool_into_coverage_and_mase() {
        let mut t = Tally {
            scored: 4,
            hits: 3,
            abs_error: 8.0,
            naive_error: 12.0,
            naive_scored: 3,
        };
        t.add(&Tally {
            scored: 6,
            hits: 6,
            abs_error: 2.0,
            naive_error: 8.0,
            naive_scored: 5,
        });
        assert_eq!(t.coverage(), Some(0.9));
        // MAE 10/10 = 1 over naive 20/8 = 2.5.
        assert_eq!(t.mase(), Some(0.4));
        assert_eq!(Tally::default().coverage(), None);
        assert_eq!(Tally::default().mase(), None);
    }
}
