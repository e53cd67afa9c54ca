//! The two ways to run: the interactive panel (redraws on input or new data only) and the
//! headless `--once` frame.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};

use surge_client::fetch::plan::Want;
use surge_client::fetch::{self, Command, Update};
use surge_client::store::Store;

use crate::app::{Action, App, View};
use crate::cli::Settings;
use crate::snapshot;
use crate::ui::{self, theme::Theme};

struct Wiring {
    updates: mpsc::Receiver<Update>,
    want: watch::Sender<Want>,
    commands: mpsc::Sender<Command>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn wire(settings: &Settings, app: &App) -> Result<Wiring, String> {
    let (update_tx, updates) = mpsc::channel(64);
    let (want, want_rx) = watch::channel(app.want());
    let (commands, command_rx) = mpsc::channel(8);
    let tasks = fetch::spawn(&settings.endpoints, update_tx, want_rx, command_rx)?;
    Ok(Wiring {
        updates,
        want,
        commands,
        _tasks: tasks,
    })
}

fn new_store(settings: &Settings, app: &App) -> Store {
    let mut store = Store::new(settings.stale_after);
    store.service_groups = settings.service_groups.clone();
    store.range = app.range;
    store.insecure_sources = insecure_sources(settings);
    store
}

/// The sources whose certificates are not checked, by the names the panel shows.
fn insecure_sources(settings: &Settings) -> Vec<String> {
    let e = &settings.endpoints;
    let mut names = Vec::new();
    if e.prometheus.as_ref().is_some_and(|p| p.access.insecure()) {
        names.push("prometheus".to_string());
    }
    if e.alertmanager.as_ref().is_some_and(|a| a.access.insecure()) {
        names.push("alertmanager".to_string());
    }
    for exporter in e.exporters.iter().filter(|x| x.access.insecure()) {
        names.push(fetch::direct::source_name(&exporter.url));
    }
    names
}

fn new_app(settings: &Settings) -> App {
    let user = std::env::var("USER").unwrap_or_else(|_| "surge".into());
    let mut app = App::new(settings.readonly, &user);
    app.range = settings.range;
    app
}

/// The theme asked for, or `mono` under `NO_COLOR`.
fn theme(settings: &Settings) -> Theme {
    Theme::resolve(
        settings.theme,
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

/// The names the store will know each configured source by.
fn expected_sources(settings: &Settings) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if settings.endpoints.prometheus.is_some() {
        names.insert("prometheus".to_string());
    }
    if settings.endpoints.alertmanager.is_some() {
        names.insert("alertmanager".to_string());
    }
    for url in &settings.endpoints.exporters {
        names.insert(fetch::direct::source_name(&url.url));
    }
    names
}

/// `--view` for `--once`: overview, kafka, pg, alerts, svc:NAME.
fn once_view(text: &str, store: &Store) -> Result<View, String> {
    Ok(match text {
        "overview" => View::Overview,
        "kafka" => View::Kafka,
        "pg" | "postgres" => View::Postgres,
        "alerts" => View::Alerts,
        other => {
            let Some(name) = other.strip_prefix("svc:") else {
                return Err(format!(
                    "--view {other:?}: use overview, kafka, pg, alerts or svc:NAME"
                ));
            };
            let (namespace, workload) = match name.split_once('/') {
                Some((ns, w)) => (ns.to_string(), w.to_string()),
                None => {
                    let ns = store
                        .derived
                        .services
                        .iter()
                        .find(|s| s.workload == name)
                        .map(|s| s.namespace.clone())
                        .unwrap_or_default();
                    (ns, name.to_string())
                }
            };
            View::Service {
                namespace,
                workload,
            }
        }
    })
}

/// Wait for every source's first answer (or `wait`), render one frame. Returns the frame and
/// whether every source answered.
pub async fn once(
    settings: &Settings,
    view: &str,
    size: (u16, u16),
    wait: Duration,
) -> Result<(String, bool), String> {
    once_view(view, &Store::default())?;
    let mut app = new_app(settings);
    let mut store = new_store(settings, &app);
    let mut wiring = wire(settings, &app)?;
    let expected = expected_sources(settings);
    // Prometheus answers instant data first, history after: sparklines need both.
    let mut history_seen = false;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let heard: BTreeSet<String> = store.health.keys().cloned().collect();
        let prometheus_failed = store
            .health
            .get("prometheus")
            .is_some_and(|h| h.error.is_some());
        let prometheus_done =
            settings.endpoints.prometheus.is_none() || history_seen || prometheus_failed;
        if expected.is_subset(&heard) && prometheus_done {
            break;
        }
        match tokio::time::timeout_at(deadline, wiring.updates.recv()).await {
            Ok(Some(update)) => {
                history_seen |= carries_history(&update);
                store.apply(update, fetch::now());
            }
            Ok(None) | Err(_) => break,
        }
    }
    let now = fetch::now();
    store.rebuild(now);
    app.view = once_view(view, &store)?;
    let all_ok = expected.iter().all(|name| {
        store
            .health
            .get(name)
            .is_some_and(|h| h.error.is_none() && h.last_ok.is_some())
    });
    Ok((
        ui::render_text(&app, &store, &theme(settings), now, size.0, size.1),
        all_ok,
    ))
}

fn carries_history(update: &Update) -> bool {
    match update {
        Update::History { .. } => true,
        Update::Batch(updates) => updates.iter().any(carries_history),
        _ => false,
    }
}

/// How long to wait after one update for the rest of the same refresh (Prometheus and
/// Alertmanager answer within milliseconds of each other): one redraw instead of several.
const COALESCE: Duration = Duration::from_millis(25);

fn write_snapshot(store: &Store, dir: &Path, clipboard: bool) -> String {
    let now = fetch::now();
    let text = snapshot::markdown(store, now);
    let path = dir.join(snapshot::file_name(now));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &text));
    let mut notice = match written {
        Ok(()) => format!("snapshot written to {}", path.display()),
        Err(e) => format!("snapshot not written to {}: {e}", path.display()),
    };
    if clipboard {
        let mut out = std::io::stdout();
        match out
            .write_all(snapshot::osc52(&text).as_bytes())
            .and_then(|()| out.flush())
        {
            Ok(()) => notice.push_str(", copied to the clipboard (OSC 52)"),
            Err(e) => notice.push_str(&format!(", clipboard failed: {e}")),
        }
    }
    tracing::info!("{notice}");
    notice
}

/// The interactive panel, until q, Ctrl-C, SIGINT, SIGTERM or SIGHUP.
pub async fn interactive(settings: &Settings, started: Instant) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut app = new_app(settings);
    let theme = theme(settings);
    let mut store = new_store(settings, &app);
    let mut wiring = wire(settings, &app)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("signal: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("signal: {e}"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("signal: {e}"))?;
    // try_init installs a panic hook that restores the terminal before the message prints.
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let mut events = EventStream::new();
    let mut dirty = true;
    let mut first_data_frame = true;
    let result = loop {
        if dirty {
            let now = fetch::now();
            if let Err(e) = terminal.draw(|frame| ui::draw(frame, &app, &store, &theme, now)) {
                break Err(format!("cannot draw: {e}"));
            }
            if first_data_frame && store.last_update.is_some() {
                first_data_frame = false;
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "first frame with data"
                );
            }
            dirty = false;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    store.notice = None;
                    let mut quit = false;
                    for action in app.handle_key(key, &store) {
                        match action {
                            Action::Quit => quit = true,
                            Action::Fetch(command) => {
                                if wiring.commands.try_send(command).is_err() {
                                    store.notice = Some("busy: the last silence request is still running".into());
                                }
                            }
                            Action::Snapshot { clipboard } => {
                                store.notice = Some(write_snapshot(&store, &settings.snapshot_dir, clipboard));
                            }
                            Action::WantChanged => {
                                store.set_range(app.range, fetch::now());
                                wiring.want.send_replace(app.want());
                            }
                        }
                    }
                    if quit {
                        break Ok(());
                    }
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("terminal input: {e}")),
                None => break Ok(()),
            },
            update = wiring.updates.recv() => {
                let Some(update) = update else { break Err("all sources stopped".into()) };
                let mut batch = vec![update];
                let until = tokio::time::Instant::now() + COALESCE;
                while let Ok(Some(more)) = tokio::time::timeout_at(until, wiring.updates.recv()).await {
                    batch.push(more);
                }
                store.apply_all(batch, fetch::now());
                dirty = true;
            }
            _ = terminate.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
        }
    };
    ratatui::restore();
    result
}
