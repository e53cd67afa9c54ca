//! Cells that mean the same thing in every view: CPU against target and alert line, lag
//! state, headroom, forecast.

use ratatui::text::Span;

use super::format;
use super::theme::Theme;
use crate::store::{Forecast, GroupRow, ServiceRow};

/// CPU utilization: red at the alert line, yellow above the HPA target.
pub fn cpu(t: &Theme, utilization: Option<f64>, target: Option<f64>, alert: f64) -> Span<'static> {
    let text = format::percent(utilization);
    let style = match (utilization, target) {
        (Some(u), _) if u >= alert => t.crit,
        (Some(u), Some(target)) if u > target => t.warn,
        (Some(_), _) => t.ok,
        (None, _) => t.dim,
    };
    Span::styled(text, style)
}

/// Replicas left before max; `SATURATED` when at max and above target.
pub fn headroom(t: &Theme, s: &ServiceRow) -> Span<'static> {
    match s.headroom {
        _ if s.saturated => Span::styled("SATURATED", t.crit),
        Some(h) if h <= 0.0 => Span::styled("at max", t.warn),
        Some(h) => Span::styled(format!("{h:.0} left"), t.ok),
        None => Span::styled(format::NONE, t.dim),
    }
}

pub fn forecast(t: &Theme, f: Forecast) -> Span<'static> {
    match f {
        Forecast::Unknown => Span::styled(format::NONE, t.dim),
        Forecast::NotRising => Span::styled("not rising", t.dim),
        Forecast::NoTrend => Span::styled("no trend", t.dim),
        Forecast::In(s) if s > 3600.0 => Span::styled("> 1h", t.dim),
        Forecast::Now => Span::styled("NOW", t.crit),
        Forecast::In(s) if s < 600.0 => {
            Span::styled(format!("in {}", format::duration(Some(s))), t.crit)
        }
        Forecast::In(s) => Span::styled(format!("in {}", format::duration(Some(s))), t.warn),
    }
}

/// The exporter's lag state: growing and stalled are trouble, draining is recovery.
pub fn lag_state(t: &Theme, state: &str) -> Span<'static> {
    let style = match state {
        "growing" | "stalled" => t.crit,
        "draining" => t.ok,
        "ok" | "idle" => t.dim,
        _ => t.warn,
    };
    let arrow = match state {
        "growing" => "↑ ",
        "draining" => "↓ ",
        "stalled" => "■ ",
        _ => "",
    };
    Span::styled(format!("{arrow}{state}"), style)
}

/// Lag in messages, `≥` marked when the exporter only knows a lower bound of its age.
pub fn lag(t: &Theme, g: &GroupRow) -> Span<'static> {
    Span::styled(
        format::count(g.lag),
        if g.lag.unwrap_or(0.0) > 0.0 {
            t.text
        } else {
            t.dim
        },
    )
}

pub fn lag_time(t: &Theme, g: &GroupRow) -> Span<'static> {
    let text = format::duration(g.lag_seconds.map(f64::round));
    let text = if g.lower_bound {
        format!("≥{text}")
    } else {
        text
    };
    Span::styled(text, t.text)
}

pub fn eta(t: &Theme, g: &GroupRow) -> Span<'static> {
    match g.eta {
        Some(e) if e.is_infinite() => Span::styled("never", t.crit),
        Some(e) => Span::styled(format::duration(Some(e.round())), t.text),
        None => Span::styled(format::NONE, t.dim),
    }
}

/// Replica lag in seconds: yellow from 30 s, red from 300 s (the alert rules' levels).
pub fn replica_lag(t: &Theme, seconds: Option<f64>) -> Span<'static> {
    let style = match seconds {
        Some(s) if s >= 300.0 => t.crit,
        Some(s) if s >= 30.0 => t.warn,
        Some(_) => t.ok,
        None => t.dim,
    };
    Span::styled(format::duration(seconds), style)
}
