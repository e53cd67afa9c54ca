//! Cells that mean the same thing in every view: CPU against target and alert line, memory
//! against request and limit, lag state, headroom, forecast, a server's role, receiver, lag
//! and connections.

use ratatui::style::Style;
use ratatui::text::Span;
use surge_client::store::{Forecast, GroupRow, Lines, Role, ScalingMetric, ServerRow, ServiceRow};
use surge_metrics::state::LagState;
use surge_metrics::state::TargetType;

use super::format;
use super::theme::Theme;

/// What marks a number derived from other exporters' series by a rule (the help lists them).
pub const DERIVED: &str = "*";

/// `span` marked derived when `derived`.
pub fn derived(span: Span<'static>, derived: bool) -> Span<'static> {
    if derived {
        Span::styled(format!("{}{DERIVED}", span.content), span.style)
    } else {
        span
    }
}

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

/// Memory working set of request: red once a pod holds the alert line's share of its limit
/// (OOM-kill risk), yellow above the request (first in line for eviction under node memory
/// pressure).
pub fn memory(
    t: &Theme,
    lines: &Lines,
    of_request: Option<f64>,
    of_limit: Option<f64>,
) -> Span<'static> {
    let style = match (of_request, of_limit) {
        (_, Some(l)) if l >= lines.memory_of_limit => t.crit,
        (Some(r), _) if r > 1.0 => t.warn,
        (Some(_), _) => t.ok,
        (None, _) => t.dim,
    };
    Span::styled(format::percent(of_request), style)
}

/// Share of a server's connection slots in use, coloured at the alert rules' levels.
pub fn connection_use(t: &Theme, lines: &Lines, share: Option<f64>) -> Span<'static> {
    let style = match share {
        Some(u) if u >= lines.connections_page => t.crit,
        Some(u) if u >= lines.connections_warning => t.warn,
        Some(_) => t.ok,
        None => t.dim,
    };
    Span::styled(format::percent(share), style)
}

/// How long the longest-idle transaction has sat idle: yellow past the alert line.
pub fn idle_in_transaction(t: &Theme, lines: &Lines, seconds: Option<f64>) -> Span<'static> {
    let style = match seconds {
        Some(s) if s > lines.idle_in_transaction => t.warn,
        Some(s) if s > 0.0 => t.text,
        _ => t.dim,
    };
    Span::styled(format::duration(seconds.map(f64::round)), style)
}

/// How long the longest lock wait has lasted (no alert line: shown when there is one).
pub fn lock_wait(t: &Theme, seconds: Option<f64>) -> Span<'static> {
    let style = if seconds.is_some_and(|s| s > 0.0) {
        t.text
    } else {
        t.dim
    };
    Span::styled(format::duration(seconds.map(f64::round)), style)
}

/// A pod's working set of its memory limit: red at the alert line.
pub fn memory_of_limit(t: &Theme, lines: &Lines, share: Option<f64>) -> Span<'static> {
    let style = match share {
        Some(l) if l >= lines.memory_of_limit => t.crit,
        Some(_) => t.text,
        None => t.dim,
    };
    Span::styled(format::percent(share), style)
}

/// A metric value in its target's unit: a percent for utilization, per replica for an
/// average value.
fn metric_value(m: &ScalingMetric, value: f64) -> String {
    match m.target_type {
        Some(TargetType::Utilization) => format::percent(Some(value)),
        Some(TargetType::AverageValue) => format!("{}/replica", format::count(Some(value))),
        _ => format::count(Some(value)),
    }
}

/// One scaling metric: `lag 4200/replica > 300/replica → 14`.
pub fn scaling_metric(m: &ScalingMetric) -> String {
    let current = m
        .current
        .map_or(format::NONE.to_string(), |c| metric_value(m, c));
    let compare = match m.current {
        Some(c) if c > m.target * 1.1 => ">",
        Some(c) if c < m.target * 0.9 => "<",
        Some(_) => "≈",
        None => "vs",
    };
    let proposal = m.proposed.map_or(String::new(), |p| format!(" → {p:.0}"));
    format!(
        "{} {current} {compare} {}{proposal}",
        m.short_name(),
        metric_value(m, m.target)
    )
}

/// A service's scaling target: its CPU target, or `▲ lag` (the deciding metric's short name)
/// when the HPA follows a metric other than CPU.
pub fn target(t: &Theme, s: &ServiceRow) -> Span<'static> {
    match s.deciding() {
        Some(m) if m.short_name() != "cpu" => {
            Span::styled(format!("▲ {}", m.short_name()), t.accent)
        }
        _ => Span::styled(format::percent(s.target), t.dim),
    }
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

/// The exporter's lag state: growing and stalled are trouble, draining is recovery, and a
/// state the exporter did not give is `unknown`.
pub fn lag_state(t: &Theme, state: Option<LagState>) -> Span<'static> {
    let style = match state {
        Some(LagState::Growing | LagState::Stalled) => t.crit,
        Some(LagState::Draining) => t.ok,
        Some(LagState::Ok | LagState::Idle) => t.dim,
        None => t.warn,
    };
    let text = match state {
        Some(LagState::Growing) => "↑ growing",
        Some(LagState::Draining) => "↓ draining",
        Some(LagState::Stalled) => "■ stalled",
        Some(s) => s.label(),
        None => "unknown",
    };
    Span::styled(text, style)
}

/// A group's lag state, with the count when only some of the topic's partitions are stalled
/// (`■ stalled 2/12`): the others still move.
pub fn group_state(t: &Theme, g: &GroupRow) -> Span<'static> {
    match g.partly_stalled() {
        Some((stalled, of)) => Span::styled(format!("■ stalled {stalled}/{of}"), t.crit),
        None => lag_state(t, g.state),
    }
}

/// What the stall means for scaling, for the drill-in: which partitions, whose, for how long,
/// and that autoscalers leave their lag out (`None` when nothing is stalled).
pub fn stall_note(g: &GroupRow) -> Option<String> {
    if g.stalled.is_empty() {
        return None;
    }
    let which: Vec<String> = g
        .stalled
        .iter()
        .map(|s| {
            let member = if s.member.is_empty() {
                "unassigned".to_string()
            } else {
                s.member.clone()
            };
            format!(
                "{} ({member}, {})",
                s.partition,
                format::duration(Some(s.seconds.round()))
            )
        })
        .collect();
    let how = match g.partly_stalled() {
        Some((stalled, of)) => format!("partly stalled, {stalled} of {of} partitions"),
        None => "stalled".to_string(),
    };
    Some(format!(
        "{how}: {}; not scaling on it (scalable lag {})",
        which.join(", "),
        format::count(g.scalable_lag)
    ))
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

/// Time to drain, only while the trend says draining: at equal rates in and out a tiny
/// surplus of consumption would otherwise give an alarming ETA to a pipeline that keeps up.
pub fn eta(t: &Theme, g: &GroupRow) -> Span<'static> {
    match (g.state, g.eta) {
        (Some(LagState::Draining), Some(e)) if e.is_infinite() => Span::styled("never", t.crit),
        (Some(LagState::Draining), Some(e)) => derived(
            Span::styled(format::duration(Some(e.round())), t.text),
            g.derived,
        ),
        _ => Span::styled(format::NONE, t.dim),
    }
}

/// A service's verdict in a few words, coloured by what it asks of the reader; drawn from
/// stale data it says so first (the last verdict is no longer a judgement of now).
pub fn verdict(t: &Theme, row: &ServiceRow) -> Span<'static> {
    use surge_client::store::{Urgency, Verdict};
    let v = surge_client::store::verdict(row);
    let style = match v.urgency() {
        Urgency::Act => t.crit,
        Urgency::Watch => t.warn,
        Urgency::Fine => t.ok,
        Urgency::Unknown if matches!(v, Verdict::Stale(_)) => t.crit,
        Urgency::Unknown => t.dim,
    };
    Span::styled(verdict_text(&v), style)
}

fn verdict_text(v: &surge_client::store::Verdict) -> String {
    use surge_client::store::Verdict;
    let n = |x: &f64| format!("{x:.0}");
    let pct = |x: &f64| format::percent(Some(*x));
    match v {
        Verdict::NoData => "no data".to_string(),
        Verdict::Stale(last) => format!("STALE: {}", verdict_text(last)),
        Verdict::DatabasePrimaryDown => "DB primary down".into(),
        Verdict::KafkaLagUnknown => "lag unknown, Kafka down".into(),
        Verdict::DatabaseServersDown { targets } => match targets.as_slice() {
            [one] => format!("DB {one} down"),
            many => format!("DB {} servers down", many.len()),
        },
        Verdict::ConsumersStalled => "consumers stalled".into(),
        Verdict::SaturatedAtMax { lag_growing: true } => "saturated, lag growing".into(),
        Verdict::SaturatedAtMax { lag_growing: false } => "saturated at max".into(),
        Verdict::LagGrowingAtMax => "lag growing at max".into(),
        Verdict::LagGrowingScalingOut { from, to } => {
            format!("lag growing, scaling {}→{}", n(from), n(to))
        }
        Verdict::LagGrowing => "lag growing, not scaling".into(),
        Verdict::ScalingOut { from, to } => format!("scaling out {}→{}", n(from), n(to)),
        Verdict::OverTargetNotScaling { .. } => "over target, not scaling".into(),
        Verdict::Alerting { alert, page: true } => format!("paging: {alert}"),
        Verdict::Alerting { alert, page: false } => format!("warning: {alert}"),
        Verdict::Draining { eta: Some(e) } if e.is_finite() => {
            format!("draining, ETA {}", format::duration(Some(e.round())))
        }
        Verdict::Draining { .. } => "draining".into(),
        Verdict::ReplicaBehind { seconds } => {
            format!("replica {} behind", format::duration(Some(seconds.round())))
        }
        Verdict::DatabaseConnectionsHigh { share } => format!("DB connections {}", pct(share)),
        Verdict::MemoryNearLimit { share } => format!("memory {} of limit", pct(share)),
        Verdict::ScalingIn { from, to } => format!("scaling in {}→{}", n(from), n(to)),
        Verdict::KeepingUp => "keeping up".into(),
    }
}

/// Replica lag in seconds, coloured at the alert rules' levels.
pub fn replica_lag(t: &Theme, lines: &Lines, seconds: Option<f64>) -> Span<'static> {
    let style = match seconds {
        Some(s) if s >= lines.replica_lag_page => t.crit,
        Some(s) if s >= lines.replica_lag_warning => t.warn,
        Some(_) => t.ok,
        None => t.dim,
    };
    Span::styled(format::duration(seconds), style)
}

/// A PostgreSQL server's role; `down` in red.
pub fn role(t: &Theme, s: &ServerRow) -> Span<'static> {
    let style = if s.role == Role::Down { t.crit } else { t.text };
    Span::styled(s.role.label(), style)
}

/// A replica's WAL receiver: streaming, not streaming, or replay paused.
pub fn receiver(t: &Theme, s: &ServerRow) -> Span<'static> {
    match (s.role, s.receiver_streaming, s.paused) {
        (Role::Replica, _, true) => Span::styled("replay paused", t.warn),
        (Role::Replica, Some(true), _) => Span::styled("streaming", t.ok),
        (Role::Replica, Some(false), _) => Span::styled("NOT STREAMING", t.crit),
        _ => Span::styled(format::NONE, t.dim),
    }
}

/// A replica's replay lag in seconds (a primary has none).
pub fn server_lag(t: &Theme, lines: &Lines, s: &ServerRow) -> Span<'static> {
    if s.role == Role::Replica {
        replica_lag(t, lines, s.replay_lag_seconds)
    } else {
        Span::styled(format::NONE, t.dim)
    }
}

/// A byte count, in `style`.
pub fn bytes(style: Style, bytes: Option<f64>) -> Span<'static> {
    Span::styled(format::bytes(bytes), style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ThemeName;

    #[test]
    fn an_eta_shows_only_while_draining() {
        let t = Theme::new(ThemeName::Mono);
        // 21 messages behind at 42 msg/s in and out: a tiny surplus gives 8m45s.
        let keeping_up = GroupRow {
            lag: Some(21.0),
            consume_rate: Some(42.04),
            produce_rate: Some(42.0),
            eta: Some(525.0),
            state: Some(LagState::Ok),
            ..GroupRow::default()
        };
        let text = |g: &GroupRow| eta(&t, g).content.to_string();
        assert_eq!(text(&keeping_up), format::NONE);
        for state in [LagState::Growing, LagState::Stalled, LagState::Idle] {
            let g = GroupRow {
                state: Some(state),
                ..keeping_up.clone()
            };
            assert_eq!(text(&g), format::NONE, "{state:?}");
        }
        let draining = GroupRow {
            state: Some(LagState::Draining),
            ..keeping_up.clone()
        };
        assert_eq!(text(&draining), "8m45s");
        let unknown = GroupRow {
            state: None,
            ..keeping_up
        };
        assert_eq!(text(&unknown), format::NONE);
    }
}
