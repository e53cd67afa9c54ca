//! Overview render cost at 160×48 with 50 services and 200 groups (goal: median ≤ 1 ms),
//! and the store's rebuild for one refresh of the same data.

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use surge_tui::app::App;
use surge_tui::config::ThemeName;
use surge_tui::ui::theme::Theme;

#[path = "../tests/common/mod.rs"]
mod common;

fn render(c: &mut Criterion) {
    let mut store = common::large();
    let app = App::new(false, "bench");
    let theme = Theme::new(ThemeName::Default);
    let mut terminal = match Terminal::new(TestBackend::new(160, 48)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    c.bench_function("overview_160x48_50_services_200_groups", |b| {
        b.iter(|| {
            // A full redraw: clear the previous frame so nothing is skipped as unchanged.
            let _ = terminal.clear();
            let _ = terminal
                .draw(|frame| surge_tui::ui::draw(frame, &app, &store, &theme, common::NOW));
        })
    });
    c.bench_function("store_rebuild_50_services_200_groups", |b| {
        b.iter(|| store.rebuild(common::NOW))
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
