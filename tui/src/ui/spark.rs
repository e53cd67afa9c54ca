//! Text sparklines for table cells: points bucketed by time across the shown range, so a
//! gap in the data is a gap on screen, not a squeezed line.

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `width` characters covering `[now - range, now]`; each bucket shows its highest value,
/// scaled from 0 (or the lowest value, when negative) to `ceiling` or the highest value.
pub fn line(
    points: &[(f64, f64)],
    now: f64,
    range: f64,
    width: usize,
    ceiling: Option<f64>,
) -> String {
    if width == 0 || range <= 0.0 {
        return String::new();
    }
    let start = now - range;
    let mut buckets: Vec<Option<f64>> = vec![None; width];
    for &(t, v) in points {
        if t < start || t > now || !v.is_finite() {
            continue;
        }
        let i = (((t - start) / range) * width as f64).floor() as usize;
        let slot = &mut buckets[i.min(width - 1)];
        *slot = Some(slot.map_or(v, |old: f64| old.max(v)));
    }
    // Bridge short holes (buckets narrower than the sampling step) by holding the previous
    // value, as Prometheus does between samples; holes longer than 1/20 of the range stay.
    let bridge = ((width as f64) / 20.0).floor() as usize;
    let mut previous: Option<(usize, f64)> = None;
    for i in 0..width {
        if let Some(v) = buckets[i] {
            if let Some((j, held)) = previous
                && i - j > 1
                && i - j <= bridge + 1
            {
                buckets[j + 1..i].fill(Some(held));
            }
            previous = Some((i, v));
        }
    }
    let values = buckets.iter().flatten();
    let low = values.clone().copied().fold(0.0_f64, f64::min);
    let high = ceiling
        .unwrap_or(f64::MIN)
        .max(values.copied().fold(f64::MIN, f64::max));
    let span = high - low;
    buckets
        .iter()
        .map(|b| match b {
            None => ' ',
            Some(_) if span <= 0.0 => BARS[0],
            Some(v) => {
                let level = ((v - low) / span * (BARS.len() - 1) as f64).round() as usize;
                BARS[level.min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_time_and_shows_gaps() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64 * 10.0, i as f64)).collect();
        assert_eq!(line(&points, 100.0, 100.0, 10, None), "▁▂▃▃▄▅▆▆▇█");
        // Only the last half of the range has data: the first half is blank.
        let late: Vec<(f64, f64)> = (5..10).map(|i| (i as f64 * 10.0, 1.0)).collect();
        assert_eq!(line(&late, 100.0, 100.0, 10, Some(1.0)), "     █████");
        assert_eq!(line(&[], 100.0, 100.0, 4, None), "    ");
        assert_eq!(line(&[(50.0, 0.0)], 100.0, 100.0, 2, None), " ▁");
        // Samples every 2 buckets at width 40: the holes between them are bridged...
        let sparse: Vec<(f64, f64)> = (0..20).map(|i| (f64::from(i) * 5.0, 1.0)).collect();
        assert_eq!(
            line(&sparse, 100.0, 100.0, 40, None).trim_end(),
            "█".repeat(39)
        );
        // ...but a hole of a quarter of the range is a gap.
        let gap = [(0.0, 1.0), (10.0, 1.0), (40.0, 1.0)];
        assert_eq!(line(&gap, 100.0, 100.0, 10, None), "██  █     ");
    }
}
