//! PyTorch's side of the comparison: `scripts/speed/torch_speed.py` kept running beside us and
//! asked for one round at a time, so that its models stay built between rounds.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use lrlab_runs::Precision;
use serde::Deserialize;

use crate::checkout;

/// The script, relative to the repository root.
const SCRIPT: &str = "scripts/speed/torch_speed.py";

/// A running `torch_speed.py`.
pub struct PyTorch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    about: String,
}

#[derive(Deserialize)]
struct About {
    torch: String,
    threads: usize,
    device: String,
}

#[derive(Deserialize)]
struct Answer {
    seconds: Vec<f64>,
}

impl PyTorch {
    /// Starts the script with `python` on `device` in `precision`.
    pub fn start(python: &str, device: &Device, precision: Precision, tf32: bool) -> Result<Self> {
        let script = checkout::file(Path::new(SCRIPT), None)?;
        let device = if device.is_cuda() { "cuda" } else { "cpu" };
        let mut command = Command::new(python);
        command
            .arg(&script)
            .args(["--device", device, "--dtype", precision.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        crate::allocator::restore_for(&mut command);
        if tf32 {
            command.arg("--tf32");
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting `{python} {}`", script.display()))?;
        let stdin = child.stdin.take().context("the script's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the script's stdout")?);
        let mut pytorch = Self {
            child,
            stdin,
            stdout,
            about: String::new(),
        };
        let about: About = pytorch.read_line().with_context(|| {
            format!(
                "{} did not start: it needs torch, torchvision and transformers \
                 (pip install torch torchvision transformers), or drop --pytorch",
                script.display()
            )
        })?;
        pytorch.about = format!(
            "torch {} on {}, {} threads",
            about.torch, about.device, about.threads
        );
        Ok(pytorch)
    }

    /// The script's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Torch's version, device and threads.
    pub fn about(&self) -> String {
        self.about.clone()
    }

    /// Seconds of each of `steps` steps of `workload`, after `warmup` untimed ones.
    pub fn time(&mut self, workload: &str, steps: usize, warmup: usize) -> Result<Vec<f64>> {
        let request = serde_json::json!({"workload": workload, "steps": steps, "warmup": warmup});
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let answer: Answer = self.read_line()?;
        if answer.seconds.len() != steps {
            bail!(
                "{SCRIPT} answered {} timings for {steps} steps",
                answer.seconds.len()
            );
        }
        Ok(answer.seconds)
    }

    fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("{SCRIPT} exited ({status}); its error is above");
        }
        serde_json::from_str(&line).with_context(|| format!("{SCRIPT} answered {line:?}"))
    }
}

impl Drop for PyTorch {
    fn drop(&mut self) {
        // The script would end when its stdin closes, but may be in the middle of a step.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
