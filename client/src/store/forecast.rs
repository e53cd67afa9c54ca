//! When would the HPA run out of replicas at the current CPU trend, and counter rates.

/// Seconds of CPU × replicas history the time-to-max forecast fits.
pub const FORECAST_WINDOW: f64 = 900.0;

/// When the HPA would run out of replicas at the current CPU trend.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Forecast {
    /// Not enough history, or no HPA.
    #[default]
    Unknown,
    /// Demand is flat or falling.
    NotRising,
    /// Demand moves, but not along a line (R² < 0.5): no honest projection.
    NoTrend,
    /// Already needs more than max.
    Now,
    /// Seconds until demand needs max replicas.
    In(f64),
}

/// Seconds until demand (in pods at 100% of request) needs `max` replicas at `target`
/// utilization, from a least-squares trend of `demand`. Needs points spanning a minute.
pub fn time_to_max(demand: &[(f64, f64)], max: f64, target: f64) -> Forecast {
    let (Some(first), Some(last)) = (demand.first(), demand.last()) else {
        return Forecast::Unknown;
    };
    if target <= 0.0 {
        return Forecast::Unknown;
    }
    let capacity = max * target;
    if last.1 > capacity {
        return Forecast::Now;
    }
    if demand.len() < 3 || last.0 - first.0 < 60.0 {
        return Forecast::Unknown;
    }
    let n = demand.len() as f64;
    let mean_t = demand.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_d = demand.iter().map(|(_, d)| d).sum::<f64>() / n;
    let cov: f64 = demand
        .iter()
        .map(|(t, d)| (t - mean_t) * (d - mean_d))
        .sum();
    let var: f64 = demand.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if var <= 0.0 {
        return Forecast::Unknown;
    }
    let slope = cov / var;
    if slope <= 0.0 {
        return Forecast::NotRising;
    }
    let var_d: f64 = demand.iter().map(|(_, d)| (d - mean_d).powi(2)).sum();
    let r_squared = if var_d > 0.0 {
        cov * cov / (var * var_d)
    } else {
        0.0
    };
    if r_squared < 0.5 {
        return Forecast::NoTrend;
    }
    // Project from the fitted value now, not the last noisy sample.
    let fitted_now = mean_d + slope * (last.0 - mean_t);
    Forecast::In(((capacity - fitted_now) / slope).max(0.0))
}

/// Per-second rate of a counter over its history (resets handled like Prometheus).
pub fn counter_rate(points: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.0 - first.0;
    if span <= 0.0 {
        return None;
    }
    let mut increase = 0.0;
    for w in points.windows(2) {
        let delta = w[1].1 - w[0].1;
        // A drop is a counter reset: everything after it is new increase.
        increase += if delta >= 0.0 { delta } else { w[1].1 };
    }
    Some(increase / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forecast_from_a_rising_demand() {
        // Demand grows 0.01 pods/s from 3.0; capacity at max 10 × 0.7 = 7.0 → 400 s away.
        let demand: Vec<(f64, f64)> = (0..=10)
            .map(|i| (i as f64 * 10.0, 3.0 + i as f64 * 0.1))
            .collect();
        match time_to_max(&demand, 10.0, 0.7) {
            Forecast::In(s) => assert!((s - 300.0).abs() < 1e-6, "{s}"),
            other => panic!("{other:?}"),
        }
        let flat: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 * 10.0, 3.0)).collect();
        assert_eq!(time_to_max(&flat, 10.0, 0.7), Forecast::NotRising);
        assert_eq!(time_to_max(&[(0.0, 8.0)], 10.0, 0.7), Forecast::Now);
        assert_eq!(time_to_max(&demand[..2], 10.0, 0.7), Forecast::Unknown);
        // A spike then quiet: rising on average, but no line to project along.
        let spiky: Vec<(f64, f64)> = (0..=10)
            .map(|i| (i as f64 * 10.0, if i == 8 { 6.0 } else { 1.0 }))
            .collect();
        assert_eq!(time_to_max(&spiky, 10.0, 0.7), Forecast::NoTrend);
    }

    #[test]
    fn counter_rate_handles_resets() {
        assert_eq!(counter_rate(&[(0.0, 10.0), (10.0, 30.0)]), Some(2.0));
        // Reset to 5 after 30: increase 20 + 5 over 20 s.
        assert_eq!(
            counter_rate(&[(0.0, 10.0), (10.0, 30.0), (20.0, 5.0)]),
            Some(1.25)
        );
        assert_eq!(counter_rate(&[(0.0, 1.0)]), None);
    }
}
