//! The report's figures, drawn with plotters as PNG and SVG, with a font carried in the
//! binary (DejaVu Sans) so that they render the same on any machine.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::study::{Experiment, Quantity};

const SIZE: (u32, u32) = (960, 600);
const LEGEND_WIDTH: u32 = 170;
const FONT: &str = "sans-serif";

/// Okabe–Ito's colour-blind-safe palette (yellow darkened to read on white).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(170, 150, 0),
];

fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A figure of the report.
#[derive(Clone, Copy)]
enum Figure {
    /// One quantity per epoch: the mean over seeds with a ±1 sd band, per arm.
    Bands(Quantity, &'static str, &'static str),
    /// Both generalisation gaps per epoch, one panel each.
    Gaps,
    /// Epochs to the threshold per run, by arm; hollow marks never reached it.
    Strip,
}

const FIGURES: [(&str, Figure); 5] = [
    (
        "val_acc",
        Figure::Bands(
            Quantity::ValAcc,
            "Validation accuracy (mean ± 1 sd over seeds)",
            "validation accuracy",
        ),
    ),
    (
        "val_loss",
        Figure::Bands(
            Quantity::ValLoss,
            "Validation loss (mean ± 1 sd over seeds)",
            "validation loss",
        ),
    ),
    (
        "lr",
        Figure::Bands(
            Quantity::Lr,
            "Learning rate of each epoch's last step (mean ± 1 sd over seeds)",
            "learning rate",
        ),
    ),
    ("gap", Figure::Gaps),
    ("epochs_to_threshold", Figure::Strip),
];

/// Draws every figure of an experiment into `folder` as `<name>.png` and `<name>.svg`;
/// returns the PNG file names, for the report to show.
pub fn draw_plots(experiment: &Experiment, folder: &Path) -> Result<Vec<String>> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("DejaVu Sans is a valid font");
    });
    std::fs::create_dir_all(folder).map_err(|e| AnalysisError::file(folder, e))?;
    let mut pngs = Vec::new();
    for (name, figure) in FIGURES {
        let png = folder.join(format!("{name}.png"));
        draw(
            figure,
            experiment,
            BitMapBackend::new(&png, SIZE).into_drawing_area(),
        )
        .map_err(|e| AnalysisError::file(&png, format!("cannot draw: {e}")))?;
        let svg = folder.join(format!("{name}.svg"));
        draw(
            figure,
            experiment,
            SVGBackend::new(&svg, SIZE).into_drawing_area(),
        )
        .map_err(|e| AnalysisError::file(&svg, format!("cannot draw: {e}")))?;
        pngs.push(format!("{name}.png"));
    }
    Ok(pngs)
}

type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    figure: Figure,
    e: &Experiment,
    root: DrawingArea<DB, Shift>,
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    match figure {
        Figure::Bands(quantity, title, y) => {
            bands(&plot, e, quantity, &format!("{}: {title}", e.name), y)?
        }
        Figure::Gaps => {
            let (top, bottom) = plot.split_vertically(SIZE.1 / 2);
            let title = format!(
                "{}: generalisation gap (mean ± 1 sd; > 0 is over-fitting)",
                e.name
            );
            bands(&top, e, Quantity::LossGap, &title, "val loss − train loss")?;
            bands(&bottom, e, Quantity::AccGap, "", "train acc − val acc")?;
        }
        Figure::Strip => strip(&plot, e)?,
    }
    draw_legend(&legend, e)?;
    root.present()
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, e: &Experiment) -> Drawn<DB> {
    let style = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
    area.draw(&Text::new("arm", (10, 40), style.clone()))?;
    for (i, arm) in e.arms.iter().enumerate() {
        let y = 70 + 24 * i as i32;
        area.draw(&PathElement::new(
            vec![(10, y), (38, y)],
            colour(i).stroke_width(3),
        ))?;
        let role = match () {
            _ if e.design.baselines.contains(arm) => " (baseline)",
            _ if e.design.references.contains(arm) => " (reference)",
            _ => "",
        };
        area.draw(&Text::new(
            format!("{arm}{role}"),
            (44, y - 8),
            style.clone(),
        ))?;
    }
    Ok(())
}

/// Tick labels of epoch axes: whole numbers only.
fn whole(value: &f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round())
    } else {
        String::new()
    }
}

fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        0.5f64.max(lo.abs() * 0.1)
    };
    (lo - pad)..(hi + pad)
}

fn bands<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    e: &Experiment,
    quantity: Quantity,
    title: &str,
    y_label: &str,
) -> Drawn<DB> {
    let series: Vec<(usize, &[[f64; 4]])> = e
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.bands[&quantity].as_slice()))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let last_epoch = points().map(|p| p[0]).fold(1.0, f64::max);
    let lo = points().map(|p| p[2]).fold(f64::INFINITY, f64::min);
    let hi = points().map(|p| p[3]).fold(f64::NEG_INFINITY, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(78);
    if !title.is_empty() {
        builder.caption(title, (FONT, 19));
    }
    let mut chart = builder.build_cartesian_2d(0.5..last_epoch + 0.5, padded(lo, hi))?;
    chart
        .configure_mesh()
        .x_labels((last_epoch as usize + 1).min(12))
        .x_label_formatter(&whole)
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for &(i, points) in &series {
        let c = colour(i);
        let outline: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p[0], p[2]))
            .chain(points.iter().rev().map(|p| (p[0], p[3])))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.1).filled())))?;
        chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p[0], p[1])),
            c.stroke_width(2),
        ))?;
        if points.len() == 1 {
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 4, c.filled())),
            )?;
        }
    }
    Ok(())
}

fn strip<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, e: &Experiment) -> Drawn<DB> {
    let points: Vec<(usize, f64, f64, bool)> = e
        .arms
        .iter()
        .enumerate()
        .flat_map(|(i, arm)| {
            let seeds: Vec<_> = e
                .runs
                .iter()
                .filter(|r| r.counted && &r.arm == arm)
                .filter_map(|r| r.metrics)
                .collect();
            let count = seeds.len() as f64;
            seeds.into_iter().enumerate().map(move |(j, m)| {
                let t = m.epochs_to_threshold;
                (
                    i,
                    i as f64 + (j as f64 - (count - 1.0) / 2.0) * 0.07,
                    f64::from(t.epochs),
                    t.reached,
                )
            })
        })
        .collect();
    let top = points.iter().map(|p| p.2).fold(1.0, f64::max) + 1.0;
    let arms = e.arms.len();
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .caption(
            format!(
                "{}: epochs to val accuracy ≥ {} (hollow: never reached, shown at its last epoch)",
                e.name, e.design.threshold
            ),
            (FONT, 17),
        )
        .build_cartesian_2d(-0.5..arms as f64 - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .x_labels(arms.max(2))
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < arms {
                e.arms[i as usize].clone()
            } else {
                String::new()
            }
        })
        .disable_x_mesh()
        .y_labels((top as usize + 1).min(12))
        .y_label_formatter(&whole)
        .y_desc("epochs")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for &(i, x, y, reached) in &points {
        let c = colour(i);
        let style = if reached {
            c.filled()
        } else {
            c.stroke_width(2)
        };
        chart.draw_series(std::iter::once(Circle::new((x, y), 6, style)))?;
    }
    Ok(())
}
