//! Progress of a run: a bar per epoch on a terminal, one line per epoch otherwise (CI logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use lrlab_runs::EpochRow;

/// How a run shows its progress on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar when stderr is a terminal, a line per epoch otherwise.
    #[default]
    Auto,
    /// Nothing.
    Quiet,
}

/// The display of one epoch.
pub(crate) struct EpochProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    loss_sum: f64,
    steps: u64,
}

impl Progress {
    /// Starts showing epoch `epoch` of `epochs`, which has `steps` steps.
    pub(crate) fn epoch(self, epoch: u32, epochs: u32, steps: usize) -> EpochProgress {
        let terminal = self == Progress::Auto && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(steps as u64);
            let style = ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        });
        EpochProgress {
            bar,
            lines: self == Progress::Auto && !terminal,
            loss_sum: 0.0,
            steps: 0,
        }
    }
}

impl EpochProgress {
    /// A step finished at rate `lr`, with its batch loss when it was read at once (only when
    /// the scheduler needs it: reading it waits for the device; otherwise the epoch's line
    /// gives the mean).
    pub(crate) fn step(&mut self, loss: Option<f64>, lr: f64) {
        if let Some(loss) = loss {
            self.loss_sum += loss;
            self.steps += 1;
        }
        if let Some(bar) = &self.bar {
            let message = match self.steps {
                0 => format!("lr {lr:.3e}"),
                steps => format!("loss {:.4} lr {lr:.3e}", self.loss_sum / steps as f64),
            };
            bar.set_message(message);
            bar.inc(1);
        }
    }

    /// The epoch finished with `row`.
    pub(crate) fn finish(self, row: &EpochRow) {
        let line = format!(
            "epoch {:>3}: lr {:.3e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4}{}  {:.1} s",
            row.epoch,
            row.lr,
            row.train_loss,
            row.train_acc,
            row.val_loss,
            row.val_acc,
            match (row.test_loss, row.test_acc) {
                (Some(l), Some(a)) => format!("  test loss {l:.4} acc {a:.4}"),
                _ => String::new(),
            },
            row.epoch_seconds,
        );
        match self.bar {
            Some(bar) => bar.finish_with_message(line),
            None if self.lines => eprintln!("{line}"),
            None => {}
        }
    }
}
