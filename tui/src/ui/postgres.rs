//! PostgreSQL: each server as it sees itself (role, receiver, replay lag, connection use,
//! idle transactions, lock waits), each standby as its primary sees it, and replication slots.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use surge_client::store::{ServerRow, SlotRow, StandbyRow};
use surge_metrics::catalogue;

use super::ctx::Ctx;
use super::table::{self, col, num};
use super::{cells, format, spark};
use crate::app;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let lines = ctx.store.lines();
    let (now, range) = (ctx.now, ctx.range());
    let servers = app::servers(ctx.store, &ctx.app.filter);
    let standbys: Vec<&StandbyRow> = ctx.store.derived().standbys.iter().collect();
    let slots: Vec<&SlotRow> = ctx.store.derived().slots.iter().collect();
    let h = |n: usize| (n.max(1) as u16) + 3;
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(h(servers.len())),
        Constraint::Length(h(standbys.len())),
        Constraint::Min(0),
    ])
    .areas(area);

    let columns = vec![
        col("SERVER", 14, 0, move |s: &&ServerRow| {
            Span::styled(s.target.clone(), t.text)
        }),
        col("ROLE", 8, 0, move |s: &&ServerRow| cells::role(&t, s)),
        col("RECEIVER", 13, 1, move |s: &&ServerRow| {
            cells::receiver(&t, s)
        }),
        num("REPLAY LAG", 10, 0, move |s: &&ServerRow| {
            cells::derived(cells::server_lag(&t, &lines, s), s.lag_derived)
        }),
        num("REPLAY BYTES", 12, 2, move |s: &&ServerRow| {
            cells::bytes(t.text, s.replay_lag_bytes)
        }),
        num("RECEIVE BYTES", 13, 4, move |s: &&ServerRow| {
            cells::bytes(t.text, s.receive_lag_bytes)
        }),
        num("CONN/SLOTS", 10, 1, move |s: &&ServerRow| {
            let text = match (s.connections, s.connection_slots) {
                (Some(c), Some(slots)) => format!("{c:.0}/{slots:.0}"),
                _ => format::NONE.into(),
            };
            Span::styled(text, t.text)
        }),
        num("USE", 5, 0, move |s: &&ServerRow| {
            cells::connection_use(&t, &lines, s.connection_use())
        }),
        num("IDLE TX", 7, 3, move |s: &&ServerRow| {
            Span::styled(format::count(s.idle_in_transaction), t.text)
        }),
        num("OLDEST TX", 9, 1, move |s: &&ServerRow| {
            cells::idle_in_transaction(&t, &lines, s.longest_idle_in_transaction)
        }),
        num("LOCK WAIT", 9, 2, move |s: &&ServerRow| {
            cells::lock_wait(&t, s.longest_lock_wait)
        }),
    ];
    let inner = top.width.saturating_sub(4);
    let mut columns = table::fit(columns, inner);
    let spark_width = table::spark_width(&columns, inner, 48);
    if spark_width >= 8 {
        columns.push(col(
            "REPLAY LAG (range)",
            spark_width,
            0,
            move |s: &&ServerRow| {
                Span::styled(
                    spark::line(
                        &s.history,
                        now,
                        range,
                        usize::from(spark_width),
                        Some(lines.replica_lag_warning),
                    ),
                    t.accent,
                )
            },
        ));
    }
    let block = ctx.panel(
        &format!("Servers ({})", servers.len()),
        ctx.store.age_of(&catalogue::exporter::SOURCE_UP, ctx.now),
    );
    table::draw(
        frame,
        top,
        ctx,
        block,
        columns,
        table::Body {
            rows: &servers,
            cursor: Some(ctx.app.cursor()),
            empty: "no PostgreSQL targets (is the postgres source configured?)",
        },
    );

    let columns = vec![
        col("PRIMARY → STANDBY", 22, 0, move |s: &&StandbyRow| {
            Span::styled(format!("{} → {}", s.primary, s.replica), t.text)
        }),
        col("STATE", 13, 0, move |s: &&StandbyRow| {
            if s.streaming {
                Span::styled("streaming", t.ok)
            } else {
                Span::styled("NOT STREAMING", t.crit)
            }
        }),
        num("LAG BYTES", 10, 0, move |s: &&StandbyRow| {
            Span::styled(format::bytes(s.lag_bytes), t.text)
        }),
        num("REPLAY LAG", 10, 1, move |s: &&StandbyRow| {
            cells::replica_lag(&t, &lines, s.replay_seconds)
        }),
    ];
    let inner = middle.width.saturating_sub(4);
    let mut columns = table::fit(columns, inner);
    let spark_width = table::spark_width(&columns, inner, 48);
    if spark_width >= 8 {
        columns.push(col(
            "LAG BYTES (range)",
            spark_width,
            0,
            move |s: &&StandbyRow| {
                Span::styled(
                    spark::line(&s.history, now, range, usize::from(spark_width), None),
                    t.accent,
                )
            },
        ));
    }
    let block = ctx.panel(
        &format!("Standbys seen by their primary ({})", standbys.len()),
        ctx.store
            .age_of(&catalogue::postgres::REPLICA_STREAMING, ctx.now),
    );
    table::draw(
        frame,
        middle,
        ctx,
        block,
        columns,
        table::Body {
            rows: &standbys,
            cursor: None,
            empty: "no standbys in pg_stat_replication",
        },
    );

    let columns = vec![
        col("SLOT", 16, 0, move |s: &&SlotRow| {
            Span::styled(s.slot.clone(), t.text)
        }),
        col("SERVER", 12, 0, move |s: &&SlotRow| {
            Span::styled(s.target.clone(), t.dim)
        }),
        col("ACTIVE", 8, 0, move |s: &&SlotRow| {
            if s.active {
                Span::styled("active", t.ok)
            } else {
                Span::styled("INACTIVE", t.warn)
            }
        }),
        num("RETAINED WAL", 12, 0, move |s: &&SlotRow| {
            Span::styled(format::bytes(s.retained_bytes), t.text)
        }),
    ];
    let block = ctx.panel(
        &format!("Replication slots ({})", slots.len()),
        ctx.store.age_of(&catalogue::postgres::SLOT_ACTIVE, ctx.now),
    );
    table::draw(
        frame,
        bottom,
        ctx,
        block,
        columns,
        table::Body {
            rows: &slots,
            cursor: None,
            empty: "no replication slots",
        },
    );
}
