//! `SIGTERM` and `SIGINT` as a request to stop: what a cluster scheduler sends before it
//! preempts a job or ends it at its time limit (SLURM: `SIGTERM`, then `SIGKILL` `KillWait`
//! seconds later). The run in progress stops before its next optimizer step with the checkpoint
//! of its last finished epoch intact, and the command exits with 128 + the signal's number, so
//! that a job script sees that it was stopped, not finished. A second Ctrl-C ends the process
//! at once; a second `SIGTERM` changes nothing (SLURM signals every process of a job, and a job
//! script may pass the signal on).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use lrlab_trainer::StopRequest;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// The signals that stop a command, once listened to.
pub struct Termination {
    stop: StopRequest,
    /// The number of the signal that came last, 0 before any.
    signal: Arc<AtomicUsize>,
}

/// The error of a command stopped by a signal.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {}", signal_name(*.signal))]
pub struct Interrupted {
    /// The signal's number.
    pub signal: i32,
}

impl Interrupted {
    /// The conventional exit status of a process ended by the signal: 128 + its number.
    pub fn exit_status(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(u8::MAX)
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT (Ctrl-C)",
        _ => "a signal",
    }
}

impl Termination {
    /// Starts listening to `SIGTERM` and `SIGINT`.
    pub fn listen() -> Result<Self> {
        let stop = StopRequest::new();
        let signal = Arc::new(AtomicUsize::new(0));
        let register = |number: i32| -> std::io::Result<()> {
            if number == SIGINT {
                // Registered first: the second Ctrl-C finds the flag set and exits.
                flag::register_conditional_shutdown(number, 128 + number, stop.flag().clone())?;
            }
            flag::register_usize(number, signal.clone(), number as usize)?;
            flag::register(number, stop.flag().clone())?;
            Ok(())
        };
        for number in [SIGTERM, SIGINT] {
            register(number).with_context(|| format!("cannot listen to signal {number}"))?;
        }
        Ok(Self { stop, signal })
    }

    /// The request a signal makes, for the trainer to watch.
    pub fn stop(&self) -> &StopRequest {
        &self.stop
    }

    /// [`Interrupted`] once a signal has come.
    pub fn check(&self) -> std::result::Result<(), Interrupted> {
        if !self.stop.is_requested() {
            return Ok(());
        }
        let signal = self.signal.load(Ordering::SeqCst);
        Err(Interrupted {
            signal: i32::try_from(signal).unwrap_or(SIGTERM),
        })
    }
}
