//! Tables that fit the terminal: each column has a width and a priority; the least important
//! columns go first when the screen is narrow, the first column takes what is left.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use super::ctx::Ctx;

pub struct Column<'a, T> {
    pub header: &'static str,
    pub width: u16,
    /// 0 = always shown; higher numbers are dropped first.
    pub priority: u8,
    pub right: bool,
    /// Takes the room left over (default: the first left-aligned column).
    pub grows: bool,
    pub cell: Box<dyn Fn(&T) -> Span<'static> + 'a>,
}

impl<T> Column<'_, T> {
    /// Make this the column that takes the room left over.
    pub fn grows(mut self) -> Self {
        self.grows = true;
        self
    }
}

pub fn col<'a, T>(
    header: &'static str,
    width: u16,
    priority: u8,
    cell: impl Fn(&T) -> Span<'static> + 'a,
) -> Column<'a, T> {
    Column {
        header,
        width,
        priority,
        right: false,
        grows: false,
        cell: Box::new(cell),
    }
}

/// A right-aligned column (numbers).
pub fn num<'a, T>(
    header: &'static str,
    width: u16,
    priority: u8,
    cell: impl Fn(&T) -> Span<'static> + 'a,
) -> Column<'a, T> {
    Column {
        right: true,
        ..col(header, width, priority, cell)
    }
}

/// The columns that fit `width` (borders and the selection mark taken off already).
pub fn fit<T>(mut columns: Vec<Column<'_, T>>, width: u16) -> Vec<Column<'_, T>> {
    loop {
        let needed: u16 = columns.iter().map(|c| c.width + 1).sum();
        if needed <= width {
            return columns;
        }
        let Some(drop) = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.priority > 0)
            .max_by_key(|(i, c)| (c.priority, *i))
            .map(|(i, _)| i)
        else {
            return columns;
        };
        columns.remove(drop);
    }
}

/// Width for a sparkline column after the other columns, leaving the growing column some
/// room for long names; at most `max`.
pub fn spark_width<T>(columns: &[Column<'_, T>], width: u16, max: u16) -> u16 {
    let used: u16 = columns.iter().map(|c| c.width + 1).sum();
    width.saturating_sub(used).saturating_sub(9).min(max)
}

fn align(span: Span<'static>, width: u16, right: bool) -> Line<'static> {
    let line = Line::from(super::format::fit(&span.content, usize::from(width))).style(span.style);
    if right { line.right_aligned() } else { line }
}

/// The rows to draw, the cursor row (highlighted and kept in view), and what to say when
/// there are none.
pub struct Body<'r, T> {
    pub rows: &'r [T],
    pub cursor: Option<usize>,
    pub empty: &'r str,
}

pub fn draw<T>(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    block: Block<'static>,
    columns: Vec<Column<'_, T>>,
    body: Body<'_, T>,
) {
    let Body {
        rows,
        cursor,
        empty,
    } = body;
    let inner_width = area.width.saturating_sub(4);
    let columns = fit(columns, inner_width);
    if rows.is_empty() {
        let text =
            Paragraph::new(Line::from(Span::styled(empty.to_string(), ctx.theme.dim))).block(block);
        frame.render_widget(text, area);
        return;
    }
    let grow = columns
        .iter()
        .position(|c| c.grows)
        .or_else(|| columns.iter().position(|c| !c.right))
        .unwrap_or(0);
    let header = Row::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let width = if i == grow { u16::MAX } else { c.width };
                Cell::from(align(Span::raw(c.header), width, c.right))
            })
            .collect::<Vec<_>>(),
    )
    .style(ctx.theme.header);
    // Build only the rows that fit: a 200-row list costs what its visible 20 rows cost.
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let offset = match cursor {
        Some(c) if c.min(rows.len() - 1) >= visible => c.min(rows.len() - 1) + 1 - visible,
        _ => 0,
    };
    let end = (offset + visible).min(rows.len());
    let body: Vec<Row> = rows[offset..end]
        .iter()
        .map(|r| {
            Row::new(
                columns
                    .iter()
                    .enumerate()
                    // The growing column is clipped by ratatui only.
                    .map(|(i, c)| {
                        Cell::from(align(
                            (c.cell)(r),
                            if i == grow { u16::MAX } else { c.width },
                            c.right,
                        ))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let widths: Vec<Constraint> = columns
        .iter()
        .enumerate()
        // The growing column takes the room that is left.
        .map(|(i, c)| {
            if i == grow {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width)
            }
        })
        .collect();
    let table = Table::new(body, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(ctx.theme.selected)
        .highlight_symbol("▶ ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state =
        TableState::default().with_selected(cursor.map(|c| c.min(rows.len() - 1) - offset));
    frame.render_stateful_widget(table, area, &mut state);
}
