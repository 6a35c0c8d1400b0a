//! `cargo xtask speed`: lrlab's training step — the real models, cross-entropy and the trainer's
//! Adam — timed on the CPU or a CUDA GPU, and with `--pytorch` PyTorch's same step on the same
//! machine in the same call, the two tools taking turns round by round, so that both see the
//! same machine. The workloads are defined once, in `scripts/speed/workloads.json`, for both.
//! On the CPU it refuses to report a round during which other processes used the machine.

mod load;
mod pytorch;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor, Var};
use candle_nn::loss::cross_entropy;
use indexmap::IndexMap;
use lrlab_kernels::ConvParams;
use lrlab_models::{BertConfig, Network};
use lrlab_runs::{OptimizerConfig, Precision};
use lrlab_trainer::{Adam, compute_dtype};
use serde::{Deserialize, Serialize};

use crate::device::DeviceArg;
use crate::tasks::{Architecture, Task};
use load::LoadMonitor;
use pytorch::PyTorch;

/// The workloads of both tools (`scripts/speed/workloads.json`).
const WORKLOADS: &str = include_str!("../../../scripts/speed/workloads.json");

/// Arguments of `cargo xtask speed`.
#[derive(clap::Args)]
pub struct Args {
    /// Workloads, comma-separated names of `scripts/speed/workloads.json`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet18-b32,resnet18-infer-b256,minilm-b32,bert-base-b8,matmul-4096"
    )]
    workloads: Vec<String>,
    /// The device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// The compute precision (`f32` | `bf16`), in both tools.
    #[arg(long, default_value = "f32")]
    dtype: Precision,
    /// TF32 tensor cores for `f32` products on a CUDA GPU, in both tools.
    #[arg(long)]
    tf32: bool,
    /// Timed steps per tool and round.
    #[arg(allow_negative_numbers = true, long, default_value_t = 2)]
    steps: usize,
    /// Rounds per workload; the tools take turns at going first.
    #[arg(allow_negative_numbers = true, long, default_value_t = 3)]
    rounds: usize,
    /// Untimed steps before a workload's first round.
    #[arg(allow_negative_numbers = true, long, default_value_t = 1)]
    warmup: usize,
    /// Time PyTorch too (`scripts/speed/torch_speed.py`; needs torch, torchvision and
    /// transformers).
    #[arg(long)]
    pytorch: bool,
    /// The Python that runs PyTorch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The largest share of the machine's CPU time other processes may take during a round
    /// before it is measured again.
    #[arg(allow_negative_numbers = true, long, default_value_t = 0.1)]
    max_load: f64,
    /// Report whatever the load (the table marks the rounds other processes disturbed).
    #[arg(long)]
    allow_busy: bool,
    /// Also write every timing to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `scripts/speed/workloads.json`.
#[derive(Deserialize)]
struct Spec {
    models: IndexMap<String, ModelSpec>,
    workloads: IndexMap<String, WorkloadSpec>,
}

#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ModelSpec {
    Resnet18 {
        width: usize,
        num_classes: usize,
    },
    Bert {
        num_labels: usize,
        config: serde_json::Value,
    },
}

impl ModelSpec {
    /// The task whose network this is, its architecture, and the classes the file gives it.
    fn network(&self) -> Result<(Task, Architecture, usize)> {
        Ok(match self {
            ModelSpec::Resnet18 { width, num_classes } => (
                Task::Cifar10,
                Architecture::Resnet18 { width: *width },
                *num_classes,
            ),
            ModelSpec::Bert { num_labels, config } => {
                let config: BertConfig = serde_json::from_value(config.clone())
                    .context("workloads.json: a BERT config")?;
                (
                    Task::Imdb,
                    Architecture::Bert(Box::new(config)),
                    *num_labels,
                )
            }
        })
    }
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum WorkloadSpec {
    Matmul {
        matmul: usize,
    },
    Conv {
        conv: ConvSpec,
    },
    Model {
        model: String,
        batch: usize,
        #[serde(default)]
        max_len: usize,
        train: bool,
    },
}

/// One convolution, timed forward and backward.
#[derive(Clone, Copy, Deserialize)]
struct ConvSpec {
    batch: usize,
    channels: usize,
    out_channels: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ConvSpec {
    fn params(&self) -> ConvParams {
        ConvParams {
            stride: self.stride,
            padding: self.padding,
            ..ConvParams::default()
        }
    }

    /// The output's side.
    fn out_size(&self) -> usize {
        self.params().output_size(self.size, self.kernel)
    }

    /// Multiply-adds of the forward pass, times two; the backward pass does twice as many.
    fn gflop(&self) -> f64 {
        let per_output = (self.channels * self.kernel * self.kernel) as f64;
        let outputs = (self.batch * self.out_channels * self.out_size().pow(2)) as f64;
        3.0 * 2.0 * per_output * outputs / 1e9
    }
}

impl WorkloadSpec {
    /// Items one step processes (images, sequences) and their unit, or the operations of a
    /// product.
    fn work(&self, models: &IndexMap<String, ModelSpec>) -> (f64, &'static str) {
        match self {
            WorkloadSpec::Matmul { matmul } => (2.0 * (*matmul as f64).powi(3) / 1e9, "GFLOP"),
            WorkloadSpec::Conv { conv } => (conv.gflop(), "GFLOP"),
            WorkloadSpec::Model { model, batch, .. } => match models.get(model) {
                Some(ModelSpec::Resnet18 { .. }) => (*batch as f64, "img"),
                _ => (*batch as f64, "seq"),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            WorkloadSpec::Matmul { matmul } => format!("{matmul}³ product"),
            WorkloadSpec::Conv { conv: c } => format!(
                "{k}×{k} convolution, stride {s}, forward + backward, {b}×{ci}×{n}×{n} → {co}",
                k = c.kernel,
                s = c.stride,
                b = c.batch,
                ci = c.channels,
                n = c.size,
                co = c.out_channels
            ),
            WorkloadSpec::Model {
                model,
                batch,
                max_len,
                train,
            } => {
                let what = if *train { "train step" } else { "inference" };
                let len = if *max_len > 0 {
                    format!(", len {max_len}")
                } else {
                    String::new()
                };
                format!("{model} {what}, batch {batch}{len}")
            }
        }
    }
}

/// One tool's timings of one workload.
#[derive(Default, Serialize)]
struct Timings {
    /// Seconds per step, every round.
    seconds: Vec<f64>,
    /// The largest share of the CPUs other processes took during a kept round.
    max_others_share: f64,
}

impl Timings {
    fn median(&self) -> f64 {
        let mut sorted = self.seconds.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    }
}

#[derive(Serialize)]
struct Measured {
    workload: String,
    description: String,
    lrlab: Timings,
    pytorch: Option<Timings>,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec: Spec = serde_json::from_str(WORKLOADS).context("scripts/speed/workloads.json")?;
    for name in &args.workloads {
        if !spec.workloads.contains_key(name) {
            let known: Vec<&str> = spec.workloads.keys().map(String::as_str).collect();
            bail!(
                "--workloads: no workload `{name}` in scripts/speed/workloads.json \
                 (it has: {})",
                known.join(", ")
            );
        }
    }
    if args.steps == 0 || args.rounds == 0 {
        bail!("--steps and --rounds must be at least 1");
    }
    let device = args.device.device()?;
    candle_core::cuda::set_gemm_reduced_precision_f32(args.tf32);
    let mut pytorch = match args.pytorch {
        true => Some(PyTorch::start(
            &args.python,
            &device,
            args.dtype,
            args.tf32,
        )?),
        false => None,
    };
    // Without /proc (not Linux) the load can only be ignored, which --allow-busy says to do.
    let mut monitor = match (LoadMonitor::new(), args.allow_busy) {
        (Ok(monitor), _) => Some(monitor),
        (Err(_), true) => None,
        (Err(e), false) => return Err(e),
    };
    let mut results = Vec::new();
    for name in &args.workloads {
        let workload = &spec.workloads[name];
        eprintln!("{name}: {}", workload.describe());
        let mut step = lrlab_step(&spec, workload, &device, args.dtype)?;
        for _ in 0..args.warmup {
            step()?;
        }
        device.synchronize()?;
        let mut lrlab = Timings::default();
        let mut torch = pytorch.as_ref().map(|_| Timings::default());
        for round in 0..args.rounds {
            let lrlab_first = round % 2 == 0;
            for turn in 0..2 {
                if (turn == 0) == lrlab_first {
                    measured(&mut monitor, None, args, &mut lrlab, || {
                        (0..args.steps)
                            .map(|_| {
                                let started = Instant::now();
                                step()?;
                                device.synchronize()?;
                                Ok(started.elapsed().as_secs_f64())
                            })
                            .collect()
                    })?;
                } else if let (Some(py), Some(timings)) = (pytorch.as_mut(), torch.as_mut()) {
                    let warmup = if round == 0 { args.warmup } else { 0 };
                    let pid = Some(py.pid());
                    measured(&mut monitor, pid, args, timings, || {
                        py.time(name, args.steps, warmup)
                    })?;
                }
            }
            eprintln!("  round {}/{} done", round + 1, args.rounds);
        }
        results.push(Measured {
            workload: name.clone(),
            description: workload.describe(),
            lrlab,
            pytorch: torch,
        });
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let about = pytorch.as_ref().map(PyTorch::about);
    print_table(&spec, &results, &device, args, about.as_deref());
    Ok(())
}

/// Runs `measure` of process `pid` (this one when `None`) while watching the machine's load,
/// and adds its step times to `timings`; a round during which other processes (the waiting side
/// of the comparison too: PyTorch's threads spin after a step) took more than `--max-load` of
/// the CPUs is measured again (three tries, ten seconds apart), or with `--allow-busy` kept and
/// marked.
fn measured(
    monitor: &mut Option<LoadMonitor>,
    pid: Option<u32>,
    args: &Args,
    timings: &mut Timings,
    mut measure: impl FnMut() -> Result<Vec<f64>>,
) -> Result<()> {
    let Some(monitor) = monitor else {
        timings.seconds.extend(measure()?);
        return Ok(());
    };
    let mut share = 0.0;
    for attempt in 1..=3 {
        monitor.start(pid)?;
        let seconds = measure()?;
        share = monitor.others_share()?;
        if share <= args.max_load || args.allow_busy {
            timings.seconds.extend(seconds);
            timings.max_others_share = timings.max_others_share.max(share);
            return Ok(());
        }
        eprintln!(
            "  other processes took {:.0}% of the CPUs during this round (try {attempt}/3): \
             measuring again in 10 s",
            100.0 * share
        );
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
    bail!(
        "the machine is busy: other processes took {:.0}% of its CPUs during the last try \
         (the limit is --max-load {:.0}%), so the timings would be wrong; stop them (see `top`) \
         or pass --allow-busy",
        100.0 * share,
        100.0 * args.max_load
    )
}

/// A closure running one step of `workload` in lrlab.
fn lrlab_step<'a>(
    spec: &Spec,
    workload: &WorkloadSpec,
    device: &'a Device,
    precision: Precision,
) -> Result<Box<dyn FnMut() -> Result<()> + 'a>> {
    let (model, batch, max_len, train) = match workload {
        WorkloadSpec::Matmul { matmul } => {
            let n = *matmul;
            let draw = || -> Result<Tensor> {
                Ok(Tensor::randn(0f32, 1.0, (n, n), device)?.to_dtype(compute_dtype(precision))?)
            };
            let (a, b) = (draw()?, draw()?);
            return Ok(Box::new(move || {
                a.matmul(&b)?;
                Ok(())
            }));
        }
        WorkloadSpec::Conv { conv } => return conv_step(*conv, device, precision),
        WorkloadSpec::Model {
            model,
            batch,
            max_len,
            train,
        } => (model, *batch, *max_len, *train),
    };
    let (task, architecture, _) = spec
        .models
        .get(model)
        .with_context(|| format!("workloads.json: no model `{model}`"))?
        .network()?;
    let network = task.fresh_network(&architecture, 0, device)?;
    let inputs = match architecture {
        Architecture::Resnet18 { .. } => Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), device)?,
        Architecture::Bert(_) => {
            let ids: Vec<u32> = (0..batch * max_len)
                .map(|i| 1000 + (i as u32).wrapping_mul(7919) % 28000)
                .collect();
            Tensor::from_vec(ids, (batch, max_len), device)?
        }
    };
    model_step(network, inputs, task.classes(), train, precision)
}

/// One convolution's forward and backward pass (both gradients), as a network's layer runs it.
fn conv_step<'a>(
    conv: ConvSpec,
    device: &'a Device,
    precision: Precision,
) -> Result<Box<dyn FnMut() -> Result<()> + 'a>> {
    let dtype = compute_dtype(precision);
    let (n, c, k) = (conv.size, conv.channels, conv.kernel);
    let draw = |shape: &[usize]| -> Result<Tensor> {
        Ok(Tensor::randn(0f32, 1.0, shape, device)?.to_dtype(dtype)?)
    };
    let x = Var::from_tensor(&draw(&[conv.batch, c, n, n])?)?;
    let w = Var::from_tensor(&draw(&[conv.out_channels, c, k, k])?)?;
    let out = conv.out_size();
    let dy = draw(&[conv.batch, conv.out_channels, out, out])?;
    Ok(Box::new(move || {
        let y = lrlab_kernels::conv2d(&x, &w, conv.params())?;
        let grads = (y * &dy)?.sum_all()?.backward()?;
        anyhow::ensure!(
            grads.get(&x).is_some() && grads.get(&w).is_some(),
            "the convolution's gradients"
        );
        Ok(())
    }))
}

/// A training step (forward, cross-entropy, backward, Adam) or an inference pass of `model`.
fn model_step<'a>(
    model: Box<dyn Network>,
    inputs: Tensor,
    classes: usize,
    train: bool,
    precision: Precision,
) -> Result<Box<dyn FnMut() -> Result<()> + 'a>> {
    model.set_compute_dtype(compute_dtype(precision))?;
    let batch = inputs.dim(0)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
    let labels = Tensor::new(labels, inputs.device())?;
    if !train {
        return Ok(Box::new(move || {
            model.forward_t(&inputs, false)?;
            Ok(())
        }));
    }
    let optimizer = OptimizerConfig::plan();
    let lr = optimizer.lr;
    let mut adam = Adam::new(optimizer, model.parameters().trainable(), false)?;
    let mut step = 0;
    Ok(Box::new(move || {
        model.set_random_stream(step);
        step += 1;
        let logits = model.forward_t(&inputs, true)?;
        let loss = cross_entropy(&logits, &labels)?;
        adam.step(&loss.backward()?, lr)?;
        Ok(())
    }))
}

fn print_table(
    spec: &Spec,
    results: &[Measured],
    device: &Device,
    args: &Args,
    pytorch: Option<&str>,
) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let where_ = match device {
        Device::Cpu => format!("CPU, {threads} threads"),
        _ => format!("{:?}", device.location()),
    };
    let tf32 = if args.tf32 { ", tf32" } else { "" };
    println!(
        "\nmedian seconds per step, {where_}, {}{tf32}, {} round(s) × {} step(s){}",
        args.dtype,
        args.rounds,
        args.steps,
        pytorch
            .map(|p| format!("; PyTorch: {p}"))
            .unwrap_or_default()
    );
    println!("| workload | lrlab | PyTorch | lrlab speed / PyTorch's |");
    println!("| --- | --- | --- | --- |");
    for r in results {
        let (work, unit) = spec.workloads[&r.workload].work(&spec.models);
        let cell = |t: &Timings| {
            let median = t.median();
            let busy = if t.max_others_share > args.max_load {
                format!(" (busy: {:.0}%)", 100.0 * t.max_others_share)
            } else {
                String::new()
            };
            format!("{median:.4} s ({:.1} {unit}/s){busy}", work / median)
        };
        let (torch, ratio) = match &r.pytorch {
            Some(t) => (cell(t), format!("{:.3}×", t.median() / r.lrlab.median())),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {} | {torch} | {ratio} |",
            r.description,
            cell(&r.lrlab)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_names_a_model_the_spec_defines() {
        let spec: Spec = serde_json::from_str(WORKLOADS).unwrap();
        for (name, workload) in &spec.workloads {
            if let WorkloadSpec::Model { model, .. } = workload {
                assert!(spec.models.contains_key(model), "{name}: {model}");
            }
        }
        for (name, model) in &spec.models {
            let (task, _, classes) = model.network().unwrap();
            assert_eq!(
                classes,
                task.classes(),
                "{name}: the classes of {}",
                task.name()
            );
        }
    }

    #[test]
    fn the_convolution_workload_is_resnets_layer_3_downsampling_and_runs() {
        let spec: Spec = serde_json::from_str(WORKLOADS).unwrap();
        let Some(WorkloadSpec::Conv { conv }) = spec.workloads.get("conv3x3-s2-b32") else {
            panic!("workloads.json: no convolution `conv3x3-s2-b32`");
        };
        assert_eq!(conv.out_size(), 8);
        // Forward: 2 · (128 · 3 · 3) per output, 32 · 256 · 8 · 8 outputs; backward twice that.
        let expected = 3.0 * 2.0 * 1152.0 * 524_288.0 / 1e9;
        assert!((conv.gflop() - expected).abs() < 1e-9, "{}", conv.gflop());
        let small = ConvSpec {
            batch: 2,
            channels: 3,
            out_channels: 4,
            size: 5,
            kernel: 3,
            stride: 2,
            padding: 1,
        };
        for precision in [Precision::F32, Precision::Bf16] {
            let mut step = conv_step(small, &Device::Cpu, precision).unwrap();
            step().unwrap();
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let t = |s: &[f64]| Timings {
            seconds: s.to_vec(),
            max_others_share: 0.0,
        };
        assert_eq!(t(&[3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(t(&[4.0, 1.0, 2.0, 3.0]).median(), 2.5);
    }
}
