//! `surge replay FILE`: the panel driven from a recording instead of live sources. The views,
//! keys and snapshots are the live panel's; time is the recording's (the header shows it),
//! nothing is fetched and nothing can be silenced.

use std::path::Path;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt as _;

use surge_client::fetch::Endpoints;
use surge_client::recording::{self, Replay};

use crate::app::{Action, App, Input, ReplayClock, Seek, is_replay_key, parse_at};
use crate::cli::Settings;
use crate::run::{new_app, new_store, theme, write_snapshot};
use crate::ui;

/// How often a playing replay redraws.
const FRAME: Duration = Duration::from_millis(200);

/// The recording opened for one context: its engine, the app and the clock.
fn open(
    settings: &Settings,
    file: &Path,
    at: Option<&str>,
) -> Result<(Replay, App, ReplayClock), String> {
    let recording = recording::read(file)?;
    if let Some(reason) = &recording.truncated {
        tracing::warn!(file = %file.display(), "recording {reason}");
    }
    let contexts = recording.header.contexts.clone();
    let context = match &settings.context_name {
        None => 0,
        Some(name) => contexts.iter().position(|c| c == name).ok_or_else(|| {
            format!(
                "--context {name}: not in this recording (it has: {})",
                contexts.join(", ")
            )
        })?,
    };
    let mut app = new_app(settings);
    app.contexts = contexts;
    app.context = context;
    // Nothing to act on: the alerts are history.
    app.readonly = true;
    let mut template = new_store(settings, &Endpoints::default(), &app);
    template.set_stale_after(recording.header.stale_after);
    let replay = Replay::new(&recording, context, template);
    if replay.is_empty() {
        return Err(format!(
            "{}: no updates recorded for context {}",
            file.display(),
            app.contexts[context]
        ));
    }
    let (start, end) = replay.span();
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let mut clock = ReplayClock::new(&name, start, end, replay.len());
    clock.cut_after = recording.cut_after();
    if let Some(text) = at {
        clock.at = parse_at(text, start, end)?;
    }
    Ok((replay, app, clock))
}

/// One frame of the recording at `--at` (default: its end), as text.
pub fn once(
    settings: &Settings,
    file: &Path,
    at: Option<&str>,
    view: &str,
    size: (u16, u16),
) -> Result<String, String> {
    let (replay, mut app, mut clock) = open(settings, file, at.or(Some("end")))?;
    clock.playing = false;
    let store = replay.store_at(clock.at);
    clock.position = replay.position(clock.at);
    app.view = crate::run::once_view(view, &store)?;
    app.replay = Some(clock.clone());
    Ok(ui::render_text(
        &app,
        &store,
        &theme(settings),
        clock.at,
        size.0,
        size.1,
    ))
}

/// Where a seek lands.
fn target(replay: &Replay, clock: &ReplayClock, seek: Seek) -> f64 {
    match seek {
        Seek::To(at) => at,
        Seek::Step(step) => {
            let shown = replay.position(clock.at);
            if step > 0 {
                replay.time_of(shown).unwrap_or(clock.end)
            } else {
                shown
                    .checked_sub(2)
                    .and_then(|i| replay.time_of(i))
                    .unwrap_or(clock.start)
            }
        }
        Seek::NextAlertChange => replay.next_alert_change(clock.at).unwrap_or(clock.at),
    }
}

/// The interactive replay, until q or Ctrl-C.
pub async fn interactive(settings: &Settings, file: &Path, at: Option<&str>) -> Result<(), String> {
    let (replay, mut app, mut clock) = open(settings, file, at)?;
    let theme = theme(settings);
    let mut cursor = replay.cursor();
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let mut events = EventStream::new();
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = tokio::time::Instant::now();
    let mut notice: Option<String> = None;
    let result = loop {
        replay.seek(&mut cursor, clock.at);
        if cursor.store.range() != app.range {
            cursor.store.set_range(app.range, clock.at);
        }
        clock.position = replay.position(clock.at);
        app.replay = Some(clock.clone());
        cursor.store.set_notice(notice.clone());
        let store = &cursor.store;
        if let Err(e) = terminal.draw(|frame| ui::draw(frame, &app, store, &theme, clock.at)) {
            break Err(format!("cannot draw: {e}"));
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    notice = None;
                    let plain = app.input == Input::Normal && app.popup.is_none();
                    if plain && is_replay_key(&key) {
                        if let Some(seek) = clock.handle_key(key) {
                            clock.at = clock.clamp(target(&replay, &clock, seek));
                        }
                        last_tick = tokio::time::Instant::now();
                        continue;
                    }
                    let mut quit = false;
                    for action in app.handle_key(key, &cursor.store) {
                        match action {
                            Action::Quit => quit = true,
                            Action::Snapshot { clipboard } => {
                                notice = Some(write_snapshot(
                                    &cursor.store,
                                    &settings.snapshot_dir,
                                    clipboard,
                                    clock.at,
                                    Some(&clock.file),
                                ));
                            }
                            // The range is applied before the next frame.
                            Action::WantChanged => {}
                            Action::Fetch(_) => {
                                notice = Some("a replay changes nothing: silences are live only".into());
                            }
                            Action::ToggleRecording => {
                                notice = Some("a replay records nothing: record the live panel (R or --record)".into());
                            }
                            Action::SwitchContext(_) => {
                                notice = Some("a replay shows one context: start it with --context NAME".into());
                            }
                            Action::Plan(_) | Action::Apply(_) => {
                                notice = Some("a replay changes nothing: actions are live only".into());
                            }
                        }
                    }
                    if quit {
                        break Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("terminal input: {e}")),
                None => break Ok(()),
            },
            _ = frames.tick(), if clock.playing => {
                let now = tokio::time::Instant::now();
                clock.tick((now - last_tick).as_secs_f64());
                last_tick = now;
            }
        }
    };
    ratatui::restore();
    result
}
