//! The time a protocol has left, from the epochs this call has trained: runs finished by an
//! earlier call (a resume) cost nothing now and count for nothing.

use std::time::Duration;

use anyhow::Result;
use lrlab_runs::RunDir;

/// Epochs trained by this call, and epochs still to train in the protocol.
#[derive(Debug)]
pub struct Eta {
    /// Epochs this call has trained so far.
    trained: u64,
    /// Epochs the runs not yet taken up still have to train.
    left: u64,
}

impl Eta {
    /// An estimate for runs that have `left` epochs each to train.
    pub fn new(left: impl IntoIterator<Item = u32>) -> Self {
        Eta {
            trained: 0,
            left: left.into_iter().map(u64::from).sum(),
        }
    }

    /// Records a run taken up with `planned` epochs left, which trained `trained` of them
    /// (fewer when it diverged or was stopped).
    pub fn record(&mut self, planned: u32, trained: u32) {
        self.left -= u64::from(planned).min(self.left);
        self.trained += u64::from(trained);
    }

    /// `, ETA N s` after `elapsed` of this call, or nothing before the first epoch is trained.
    pub fn suffix(&self, elapsed: Duration) -> String {
        if self.trained == 0 {
            return String::new();
        }
        let per_epoch = elapsed.as_secs_f64() / self.trained as f64;
        format!(", ETA {:.0} s", per_epoch * self.left as f64)
    }
}

/// The epochs `dir` has left of `epochs`: none once the run reached an outcome, else those
/// after the epochs it has written.
pub fn epochs_left(dir: &RunDir, epochs: u32) -> Result<u32> {
    if dir.read_record()?.is_some_and(|r| r.status.is_outcome()) {
        return Ok(0);
    }
    let written = u32::try_from(dir.read_epochs()?.len()).unwrap_or(u32::MAX);
    Ok(epochs.saturating_sub(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_protocol_counts_only_the_epochs_this_call_trains() {
        // Two runs finished by an earlier call, a third stopped after 5 of 15 epochs, a fourth
        // not started.
        let mut eta = Eta::new([0, 0, 10, 15]);
        assert_eq!(eta.suffix(Duration::from_secs(1)), "");
        eta.record(0, 0);
        eta.record(0, 0);
        assert_eq!(
            eta.suffix(Duration::from_secs(1)),
            "",
            "nothing trained yet"
        );
        eta.record(10, 10);
        // 10 epochs in 300 s: 30 s an epoch, 15 epochs left.
        assert_eq!(eta.suffix(Duration::from_secs(300)), ", ETA 450 s");
    }

    #[test]
    fn a_run_that_stops_early_leaves_no_epochs_behind() {
        let mut eta = Eta::new([15, 15]);
        eta.record(15, 4);
        assert_eq!(eta.suffix(Duration::from_secs(40)), ", ETA 150 s");
        eta.record(15, 15);
        assert_eq!(eta.suffix(Duration::from_secs(100)), ", ETA 0 s");
    }
}
