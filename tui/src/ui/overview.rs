//! Overview: is every service keeping up? One row per service, then what pages and the
//! pipeline at a glance.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use surge_client::model::Alert;
use surge_client::store::{GroupRow, ServerRow};
use surge_metrics::catalogue;
use surge_metrics::state::LagState;

use super::cells;
use super::charts;
use super::ctx::Ctx;
use super::table::{self, col, num};
use super::widgets::{alert_list, services_table};
use crate::app;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let services = app::services(ctx.store, &ctx.app.filter);
    // The services table as tall as its rows, leaving at least 8 rows for the panels below.
    let top_height = (services.len().max(1) as u16 + 3)
        .min(area.height.saturating_sub(8))
        .max(area.height.min(4));
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(area);
    services_table(frame, top, ctx, &services, Some(ctx.app.cursor()));
    let alerts: Vec<&Alert> = ctx.store.derived().alerts.iter().collect();
    let groups = ctx.store.derived().groups.len().max(1) as u16 + 3;
    // Room to spare (a tall, wide screen): real charts along the bottom.
    let bottom = if bottom.width >= 120 && bottom.height >= charts::MIN_HEIGHT + 14 {
        let height = (bottom.height / 3).clamp(charts::MIN_HEIGHT, 24);
        let [rest, chart_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(height)]).areas(bottom);
        charts::draw(frame, chart_area, ctx);
        rest
    } else {
        bottom
    };
    if bottom.width >= 120 {
        // Wide: alerts on the left; pipeline over replicas on the right.
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(bottom);
        alert_list(frame, left, ctx, "Alerts", &alerts, None);
        let pipeline_height = groups.min(right.height / 2).max(right.height.min(4));
        let [pipeline_area, replicas_area] =
            Layout::vertical([Constraint::Length(pipeline_height), Constraint::Min(0)])
                .areas(right);
        pipeline(frame, pipeline_area, ctx);
        replicas(frame, replicas_area, ctx);
    } else {
        // Narrow: alerts full width (their subject needs it), then pipeline beside replicas.
        let alerts_height = (alerts.len().max(1) as u16 + 3).min(bottom.height / 2);
        let [top_area, rest] =
            Layout::vertical([Constraint::Length(alerts_height), Constraint::Min(0)]).areas(bottom);
        alert_list(frame, top_area, ctx, "Alerts", &alerts, None);
        let [pipeline_area, replicas_area] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(rest);
        pipeline(frame, pipeline_area, ctx);
        replicas(frame, replicas_area, ctx);
    }
}

/// The PostgreSQL servers at a glance: role, streaming, replay lag, connection use.
fn replicas(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let lines = ctx.store.lines();
    let servers: Vec<&ServerRow> = ctx.store.derived().servers.iter().collect();
    let columns = vec![
        col("SERVER", 12, 0, move |s: &&ServerRow| {
            Span::styled(s.target.clone(), t.text)
        }),
        col("ROLE", 7, 1, move |s: &&ServerRow| cells::role(&t, s)),
        col("RECEIVER", 13, 0, move |s: &&ServerRow| {
            cells::receiver(&t, s)
        }),
        num("LAG", 7, 0, move |s: &&ServerRow| {
            cells::derived(cells::server_lag(&t, &lines, s), s.lag_derived)
        }),
        num("BYTES", 9, 2, move |s: &&ServerRow| {
            cells::bytes(t.dim, s.replay_lag_bytes)
        }),
        num("CONN", 5, 1, move |s: &&ServerRow| {
            cells::connection_use(&t, &lines, s.connection_use())
        }),
    ];
    let block = ctx.panel(
        &format!("Replicas ({})", servers.len()),
        ctx.store.age_of(&catalogue::exporter::SOURCE_UP, ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &servers,
            cursor: None,
            empty: "no PostgreSQL targets",
        },
    );
}

/// The pipeline at a glance: every group-topic, worst first.
fn pipeline(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let mut groups: Vec<&GroupRow> = ctx.store.derived().groups.iter().collect();
    groups.sort_by(|a, b| {
        let rank = |g: &GroupRow| match g.state {
            Some(LagState::Stalled) => 0,
            Some(LagState::Growing) => 1,
            Some(LagState::Draining) => 2,
            _ => 3,
        };
        rank(a)
            .cmp(&rank(b))
            .then(b.lag.unwrap_or(0.0).total_cmp(&a.lag.unwrap_or(0.0)))
    });
    let columns = vec![
        col("GROUP → TOPIC", 12, 0, move |g: &&GroupRow| {
            Span::styled(format!("{} → {}", g.group, g.topic), t.text)
        }),
        num("LAG", 6, 0, move |g: &&GroupRow| cells::lag(&t, g)),
        num("TIME", 7, 1, move |g: &&GroupRow| cells::lag_time(&t, g)),
        col("STATE", 11, 0, move |g: &&GroupRow| {
            cells::derived(cells::lag_state(&t, g.state), g.derived)
        }),
        num("ETA", 6, 2, move |g: &&GroupRow| cells::eta(&t, g)),
    ];
    let block = ctx.panel(
        &format!("Pipeline ({})", groups.len()),
        ctx.store.age_of(&catalogue::kafka::TOPIC_LAG, ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &groups,
            cursor: None,
            empty: "no consumer groups seen",
        },
    );
}
