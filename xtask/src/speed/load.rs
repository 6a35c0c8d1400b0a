//! How much of the machine's CPU time went to other processes while we measured: on a small
//! machine another build or test halves a timing, and `nice` does not protect it.

use std::time::Instant;

use anyhow::{Context, Result};

/// CPU time counters (clock ticks) at one instant: the whole machine's busy time and that of the
/// processes being measured.
struct Sample {
    at: Instant,
    machine_busy: u64,
    ours: u64,
}

/// Watches the CPU time of every process but the one being measured.
pub struct LoadMonitor {
    measured: Vec<u32>,
    cpus: usize,
    ticks_per_second: f64,
    start: Option<Sample>,
}

impl LoadMonitor {
    /// A monitor of the machine. Needs Linux's `/proc`.
    pub fn new() -> Result<Self> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let monitor = Self {
            measured: vec![std::process::id()],
            cpus,
            // USER_HZ: 100 on every Linux architecture lrlab builds for.
            ticks_per_second: 100.0,
            start: None,
        };
        monitor.sample().context(
            "reading /proc to check that nothing else loads the machine (Linux only; \
             pass --allow-busy to measure without the check)",
        )?;
        Ok(monitor)
    }

    /// Starts an interval measuring process `measured` (this one when `None`): the CPU time of
    /// every other process, the idle side of a comparison included, counts as load.
    pub fn start(&mut self, measured: Option<u32>) -> Result<()> {
        self.measured = vec![measured.unwrap_or_else(std::process::id)];
        self.start = Some(self.sample()?);
        Ok(())
    }

    /// The share of the machine's CPU capacity (0 to 1) that other processes used since
    /// [`Self::start`].
    pub fn others_share(&self) -> Result<f64> {
        let start = self
            .start
            .as_ref()
            .context("LoadMonitor::start was not called")?;
        let end = self.sample()?;
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        let busy = end.machine_busy.saturating_sub(start.machine_busy);
        let ours = end.ours.saturating_sub(start.ours);
        let others = busy.saturating_sub(ours) as f64 / self.ticks_per_second;
        Ok(others / (seconds * self.cpus as f64).max(1e-9))
    }

    fn sample(&self) -> Result<Sample> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let machine_busy = machine_busy(&stat).context("/proc/stat has no `cpu` line")?;
        let mut ours = 0;
        for id in &self.measured {
            // A helper that has exited has no entry; its time no longer moves.
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{id}/stat")) {
                ours += process_ticks(&text).context("unexpected /proc/<pid>/stat")?;
            }
        }
        Ok(Sample {
            at: Instant::now(),
            machine_busy,
            ours,
        })
    }
}

/// Busy ticks of all CPUs from `/proc/stat`'s first line: user, nice, system, irq, softirq and
/// steal (idle and iowait excluded; guest time is already inside user).
fn machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// User plus system ticks of a process (all its threads) from its `/proc/<pid>/stat`.
fn process_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines_parse() {
        let stat = "cpu  100 5 20 900 40 1 2 3 0 0\ncpu0 50 2 10 450 20 0 1 1 0 0\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 20 + 1 + 2 + 3));
        let process = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 77 33 0 0 20 0";
        assert_eq!(process_ticks(process), Some(110));
    }

    #[test]
    fn another_process_spinning_is_seen() -> Result<()> {
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()?;
        let mut monitor = LoadMonitor::new()?;
        monitor.start(None)?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let share = monitor.others_share();
        spinner.kill()?;
        spinner.wait()?;
        // A spinning shell takes most of a core even on a loaded machine.
        let share = share?;
        assert!(share >= 0.25 / monitor.cpus as f64, "{share}");
        Ok(())
    }
}
