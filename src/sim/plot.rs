//! `--plot FILE.svg`: one panel per tenant (its busiest resource), over
//! time: demand, the forecast band and mean, the reserve, and tokens denied
//! by the predictive and the reactive modes. Long runs are averaged into at
//! most [`MAX_POINTS`] points per line so the picture stays readable.

use std::path::Path;

use plotters::prelude::*;

use super::{Mode, Outcome};

/// A line to draw: label, points (minutes, per second), colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Points per line at most.
pub const MAX_POINTS: usize = 720;
const PANEL_HEIGHT: u32 = 260;
const WIDTH: u32 = 1200;

/// Averages `v` into at most `n` buckets; returns (bucket start index, mean).
fn downsample(v: &[f32], n: usize) -> Vec<(usize, f64)> {
    let size = v.len().div_ceil(n.max(1)).max(1);
    v.chunks(size)
        .enumerate()
        .map(|(i, c)| {
            (
                i * size,
                c.iter().map(|x| *x as f64).sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}

/// Writes the SVG. `outcomes` are the modes that ran; the panels follow
/// the predictive one (or the first that ran).
pub fn write(path: &Path, outcomes: &[Outcome]) -> Result<(), String> {
    let main = outcomes
        .iter()
        .find(|o| o.mode == Mode::Predictive)
        .or(outcomes.first())
        .ok_or("nothing to plot")?;
    let reactive = outcomes.iter().find(|o| o.mode == Mode::Reactive);
    let lines = &main.timeline.lines;
    let tick = main.timeline.tick_secs;
    let height = PANEL_HEIGHT * lines.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((lines.len().max(1), 1));
    for (k, (line, panel)) in lines.iter().zip(panels.iter()).enumerate() {
        let minutes = |i: usize| i as f64 * tick / 60.0;
        let n = line.demand.len();
        let demand = downsample(&line.demand, MAX_POINTS);
        let reserve = downsample(&line.reserve, MAX_POINTS);
        let denied = downsample(&line.denied, MAX_POINTS);
        let reactive_denied = reactive
            .and_then(|r| r.timeline.lines.get(k))
            .map(|l| downsample(&l.denied, MAX_POINTS))
            .unwrap_or_default();
        let pick = |f: fn(&crate::planner::forecast::Band) -> f32| -> Vec<f32> {
            line.band.iter().map(f).collect()
        };
        let (mean, lower, upper) = (
            downsample(&pick(|b| b.mean as f32), MAX_POINTS),
            downsample(&pick(|b| b.lower as f32), MAX_POINTS),
            downsample(&pick(|b| b.upper as f32), MAX_POINTS),
        );
        let top = demand
            .iter()
            .chain(&upper)
            .chain(&reserve)
            .chain(&reactive_denied)
            .map(|p| p.1)
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{} / {} (per second)", line.tenant, line.resource),
                ("sans-serif", 18),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..minutes(n.max(1)), 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        let to_xy = |v: &[(usize, f64)]| -> Vec<(f64, f64)> {
            v.iter().map(|&(i, y)| (minutes(i), y)).collect()
        };
        let series: [Series; 7] = [
            ("forecast upper", to_xy(&upper), RGBColor(150, 180, 230)),
            ("forecast lower", to_xy(&lower), RGBColor(150, 180, 230)),
            ("demand", to_xy(&demand), BLACK),
            ("forecast mean", to_xy(&mean), RGBColor(30, 90, 200)),
            ("reserve", to_xy(&reserve), RGBColor(20, 150, 60)),
            ("denied (predictive)", to_xy(&denied), RGBColor(220, 30, 30)),
            (
                "denied (reactive)",
                to_xy(&reactive_denied),
                RGBColor(240, 150, 20),
            ),
        ];
        for (label, points, color) in series {
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    points,
                    color.stroke_width(if label == "demand" { 2 } else { 1 }),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present()
        .map_err(|e| format!("{}: {e}", path.display()))
}
