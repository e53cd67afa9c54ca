//! The two ways to run: the interactive panel (redraws on input or new data only) and the
//! headless `--once` frame.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};

use surge_client::fetch::Want;
use surge_client::fetch::{self, Command, Endpoints, Update};
use surge_client::recording::Recorder;
use surge_client::store::{ContextSummary, Store};

use crate::app::{Action, App, View};
use crate::cli::Settings;
use crate::snapshot;
use crate::ui::{self, theme::Theme};

/// One context's fetchers: what they should load, and the silence commands.
struct Wiring {
    want: watch::Sender<Want>,
    commands: mpsc::Sender<Command>,
    /// The channel its updates go down (actions' audit lines join them there).
    updates: mpsc::Sender<(usize, Update)>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start the fetchers of context `index`; their updates reach `out` tagged with the index.
fn wire(
    endpoints: &Endpoints,
    want: Want,
    index: usize,
    out: mpsc::Sender<(usize, Update)>,
) -> Result<Wiring, String> {
    let (update_tx, mut updates) = mpsc::channel(64);
    let (want_tx, want_rx) = watch::channel(want);
    let (commands, command_rx) = mpsc::channel(8);
    let mut tasks = fetch::spawn(endpoints, update_tx, want_rx, command_rx)?;
    let audit_lines = out.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(update) = updates.recv().await {
            if out.send((index, update)).await.is_err() {
                break;
            }
        }
    }));
    Ok(Wiring {
        want: want_tx,
        commands,
        updates: audit_lines,
        _tasks: tasks,
    })
}

/// A context as the panel runs it: its own store and fetchers. Every context keeps
/// collecting while another is shown, so switching back is instant and the all-contexts view
/// is current.
struct Session {
    store: Store,
    wiring: Wiring,
}

/// What a context not on screen loads: its Overview's data.
fn background_want(app: &App) -> Want {
    Want {
        partitions: None,
        range: app.range,
        dead_letters: surge_client::fetch::DeadLetterWant::Nothing,
    }
}

/// Every context's session (`None` where not started), and their updates on one channel,
/// tagged with the context's index.
type Sessions = (Vec<Option<Session>>, mpsc::Receiver<(usize, Update)>);

/// Sessions for every context, or only the current one.
fn start_sessions(settings: &Settings, app: &App, only_current: bool) -> Result<Sessions, String> {
    let (tx, rx) = mpsc::channel(64);
    let mut sessions = Vec::new();
    for (i, (name, endpoints)) in settings.contexts.iter().enumerate() {
        if only_current && i != app.context {
            sessions.push(None);
            continue;
        }
        let want = if i == app.context {
            app.want()
        } else {
            background_want(app)
        };
        let wiring =
            wire(endpoints, want, i, tx.clone()).map_err(|e| format!("context {name}: {e}"))?;
        sessions.push(Some(Session {
            store: new_store(settings, endpoints, app),
            wiring,
        }));
    }
    Ok((sessions, rx))
}

/// Each context's summary for the all-contexts view.
fn context_rows(sessions: &[Option<Session>], now: f64) -> Vec<ContextSummary> {
    sessions
        .iter()
        .map(|s| {
            s.as_ref()
                .map(|s| ContextSummary::of(&s.store, now))
                .unwrap_or_default()
        })
        .collect()
}

pub(crate) fn new_store(settings: &Settings, endpoints: &Endpoints, app: &App) -> Store {
    let mut store = Store::new(settings.stale_after);
    store.set_service_groups(settings.service_groups.clone());
    store.set_service_databases(settings.service_databases.clone());
    store.set_configured_lines(settings.lines.0, settings.lines.1);
    store.set_dead_letters(settings.dead_letters.clone());
    store.set_range(app.range, 0.0);
    store.set_insecure_sources(insecure_sources(endpoints));
    store
}

/// The sources whose certificates are not checked, by the names the panel shows.
fn insecure_sources(e: &Endpoints) -> Vec<String> {
    e.named()
        .into_iter()
        .filter(|(_, endpoint)| endpoint.access.insecure())
        .map(|(name, _)| name)
        .collect()
}

pub(crate) fn new_app(settings: &Settings) -> App {
    let user = std::env::var("USER").unwrap_or_else(|_| "surge".into());
    let mut app = App::new(settings.readonly, &user);
    app.range = settings.range;
    app.contexts = settings.contexts.iter().map(|(n, _)| n.clone()).collect();
    app.context = settings.context;
    app.kube_contexts = settings
        .kube_contexts
        .iter()
        .filter(|k| !app.contexts.contains(k))
        .cloned()
        .collect();
    app
}

/// The theme asked for, or `mono` under `NO_COLOR`. A theme asked for by name wins over
/// `NO_COLOR` (as no-color.org asks of flags and config), so the terminal backend is told to
/// draw its colours even then: crossterm drops every colour under `NO_COLOR` by itself.
pub(crate) fn theme(settings: &Settings) -> Theme {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color && settings.theme.is_some() {
        crossterm::style::force_color_output(true);
    }
    Theme::resolve(settings.theme, no_color)
}

/// The names the store will know each configured source by.
fn expected_sources(endpoints: &Endpoints) -> BTreeSet<String> {
    endpoints
        .named()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Whether a session has heard from every source (and Prometheus' history, which sparklines
/// need, or its failure).
fn session_ready(endpoints: &Endpoints, store: &Store, history_seen: bool) -> bool {
    let heard: BTreeSet<String> = store.health().keys().cloned().collect();
    let prometheus_failed = store
        .health()
        .get("prometheus")
        .is_some_and(|h| h.error.is_some());
    let prometheus_done = endpoints.prometheus.is_none() || history_seen || prometheus_failed;
    expected_sources(endpoints).is_subset(&heard) && prometheus_done
}

/// `--view` for `--once`: overview, kafka, pg, alerts, contexts, svc:NAME.
pub(crate) fn once_view(text: &str, store: &Store) -> Result<View, String> {
    Ok(match text {
        "overview" => View::Overview,
        "kafka" => View::Kafka,
        "pg" | "postgres" => View::Postgres,
        "alerts" => View::Alerts,
        "contexts" | "ctx" => View::Contexts,
        other => {
            let Some(name) = other.strip_prefix("svc:") else {
                return Err(format!(
                    "--view {other:?}: use overview, kafka, pg, alerts, contexts or svc:NAME"
                ));
            };
            let (namespace, workload) = match name.split_once('/') {
                Some((ns, w)) => (ns.to_string(), w.to_string()),
                None => {
                    let ns = store
                        .derived()
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
    let first = once_view(view, &Store::default())?;
    let mut app = new_app(settings);
    // The all-contexts view needs every context; any other view only the current one.
    let all = first == View::Contexts;
    let (mut sessions, mut updates) = start_sessions(settings, &app, !all)?;
    let mut recorder = recorder(settings)?;
    // Prometheus answers instant data first, history after: sparklines need both.
    let mut history_seen = vec![false; sessions.len()];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let ready = sessions.iter().enumerate().all(|(i, s)| {
            s.as_ref()
                .is_none_or(|s| session_ready(&settings.contexts[i].1, &s.store, history_seen[i]))
        });
        if ready {
            break;
        }
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some((i, update))) => {
                history_seen[i] |= carries_history(&update);
                let now = settings.at.unwrap_or_else(fetch::now);
                if let Some(reason) = recorder.as_mut().and_then(|r| record(r, now, i, &update)) {
                    return Err(reason);
                }
                if let Some(Some(session)) = sessions.get_mut(i) {
                    session.store.apply(update, now);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(mut r) = recorder {
        r.finish()?;
    }
    let now = settings.at.unwrap_or_else(fetch::now);
    for session in sessions.iter_mut().flatten() {
        session.store.rebuild(now);
    }
    app.context_rows = context_rows(&sessions, now);
    let all_ok = sessions.iter().enumerate().all(|(i, s)| {
        s.as_ref().is_none_or(|s| {
            expected_sources(&settings.contexts[i].1)
                .iter()
                .all(|name| {
                    s.store
                        .health()
                        .get(name)
                        .is_some_and(|h| h.error.is_none() && h.last_ok.is_some())
                })
        })
    });
    let store = sessions
        .get(app.context)
        .and_then(Option::as_ref)
        .map(|s| &s.store)
        .ok_or("no current context")?;
    app.view = once_view(view, store)?;
    Ok((
        ui::render_text(&app, store, &theme(settings), now, size.0, size.1),
        all_ok,
    ))
}

/// The recorder `--record` asks for.
fn recorder(settings: &Settings) -> Result<Option<Recorder>, String> {
    settings
        .record
        .as_ref()
        .map(|(path, cap)| {
            Recorder::create(
                path,
                settings.contexts.iter().map(|(n, _)| n.clone()).collect(),
                fetch::now(),
                settings.stale_after,
                *cap,
            )
        })
        .transpose()
}

/// `R`: stop the recording under way, or start one in the snapshot directory. Returns what
/// to tell the user.
fn toggle_recording(recorder: &mut Option<Recorder>, settings: &Settings) -> String {
    if let Some(mut r) = recorder.take()
        && r.recording()
    {
        return match r.finish() {
            Ok(()) => format!("recording stopped: {} updates in {}", r.entries(), r.path()),
            Err(e) => e,
        };
    }
    let now = fetch::now();
    let stamp: String = snapshot::timestamp(now)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let path = settings
        .snapshot_dir
        .join(format!("surge-recording-{stamp}.surge"));
    let created = std::fs::create_dir_all(&settings.snapshot_dir)
        .map_err(|e| format!("cannot record to {}: {e}", path.display()))
        .and_then(|()| {
            Recorder::create(
                &path,
                settings.contexts.iter().map(|(n, _)| n.clone()).collect(),
                now,
                settings.stale_after,
                settings.record_cap,
            )
        });
    match created {
        Ok(r) => {
            let message = format!("recording to {} (R stops)", r.path());
            *recorder = Some(r);
            message
        }
        Err(e) => e,
    }
}

/// Record one update as it arrived; the reason when recording stops (said once).
fn record(recorder: &mut Recorder, at: f64, context: usize, update: &Update) -> Option<String> {
    let stopped = recorder.record(at, context, update).err();
    if let Some(reason) = &stopped {
        tracing::warn!("{reason}");
    }
    stopped
}

/// `surge record`: every context's updates to the file, no terminal, until `duration`, a
/// signal or the cap. Returns the line to print.
pub async fn record_headless(
    settings: &Settings,
    duration: Option<Duration>,
) -> Result<String, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let app = new_app(settings);
    let (_sessions, mut updates) = start_sessions(settings, &app, false)?;
    let mut recorder = recorder(settings)?.ok_or("record: no file")?;
    let path = recorder.path().to_string();
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("signal: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("signal: {e}"))?;
    let until = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let stopped = loop {
        tokio::select! {
            update = updates.recv() => {
                let Some((i, update)) = update else { break Some("every source stopped".to_string()) };
                if let Some(reason) = record(&mut recorder, fetch::now(), i, &update) {
                    break Some(reason);
                }
            }
            _ = &mut until => break None,
            _ = terminate.recv() => break None,
            _ = interrupt.recv() => break None,
        }
    };
    recorder.finish()?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let line = format!(
        "recorded {} updates ({} KiB) to {path}",
        recorder.entries(),
        size.div_ceil(1024)
    );
    match stopped {
        Some(reason) if !reason.contains("stopped at its cap") => Err(format!("{reason}; {line}")),
        Some(reason) => Ok(format!("{reason}; {line}")),
        None => Ok(line),
    }
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

/// Write the snapshot of `store` at `now`; `replay_of` names the recording a replayed moment
/// comes from (said in the snapshot's title).
/// Snapshots hold what the panel saw: the owner's only.
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    surge_client::recording::owner_only(path)?.write_all(text.as_bytes())
}

pub(crate) fn write_snapshot(
    store: &Store,
    dir: &Path,
    clipboard: bool,
    now: f64,
    replay_of: Option<&str>,
) -> String {
    let mut text = snapshot::markdown(store, now);
    if let Some(file) = replay_of
        && let Some(end) = text.find('\n')
    {
        text.insert_str(end, &format!(" (replay of {file})"));
    }
    let path = dir.join(snapshot::file_name(now));
    let written = std::fs::create_dir_all(dir).and_then(|()| write_owner_only(&path, &text));
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

/// How long frames took to draw (building the widgets and writing the changed cells), logged
/// every 30 s: where a slow panel spends its time, and what the fleet benchmark reads.
#[derive(Default)]
struct FrameTimes {
    since: Option<Instant>,
    micros: Vec<u64>,
}

impl FrameTimes {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    fn add(&mut self, took: std::time::Duration) {
        let since = *self.since.get_or_insert_with(Instant::now);
        self.micros
            .push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        if since.elapsed() >= Self::EVERY {
            self.micros.sort_unstable();
            let at = |q: f64| {
                let i = ((self.micros.len() - 1) as f64 * q).round() as usize;
                self.micros[i] as f64 / 1000.0
            };
            tracing::info!(
                frames = self.micros.len(),
                p50_ms = at(0.5),
                p99_ms = at(0.99),
                max_ms = at(1.0),
                "frame times"
            );
            self.micros.clear();
            self.since = Some(Instant::now());
        }
    }
}

/// The interactive panel, until q, Ctrl-C, SIGINT, SIGTERM or SIGHUP.
pub async fn interactive(settings: &Settings, started: Instant) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut app = new_app(settings);
    let theme = theme(settings);
    let (mut sessions, mut updates) = start_sessions(settings, &app, false)?;
    let mut recorder = recorder(settings)?;
    app.recording = recorder.as_ref().map(|r| r.path().to_string());
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("signal: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("signal: {e}"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| format!("signal: {e}"))?;
    // try_init installs a panic hook that restores the terminal before the message prints.
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let mut events = EventStream::new();
    let (plans_tx, mut plans) = mpsc::channel(4);
    let mut dirty = true;
    let mut first_data_frame = true;
    let mut frames = FrameTimes::default();
    let result = loop {
        let current = app.context;
        let Some(Some(session)) = sessions.get(current) else {
            break Err("no current context".into());
        };
        if dirty {
            let now = fetch::now();
            // Only the all-contexts view shows them (and its keys act on what it showed).
            if app.view == View::Contexts {
                app.context_rows = context_rows(&sessions, now);
            }
            let store = &session.store;
            let drawing = Instant::now();
            if let Err(e) = terminal.draw(|frame| ui::draw(frame, &app, store, &theme, now)) {
                break Err(format!("cannot draw: {e}"));
            }
            frames.add(drawing.elapsed());
            if first_data_frame && store.last_update().is_some() {
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
                    let Some(Some(session)) = sessions.get_mut(current) else { continue };
                    session.store.set_notice(None);
                    let mut quit = false;
                    for action in app.handle_key(key, &session.store) {
                        match action {
                            Action::Quit => quit = true,
                            Action::Fetch(command) => {
                                let Some(Some(session)) = sessions.get_mut(app.context) else { continue };
                                if session.wiring.commands.try_send(command).is_err() {
                                    session.store.set_notice(Some("busy: the last silence request is still running".into()));
                                }
                            }
                            Action::Snapshot { clipboard } => {
                                let Some(Some(session)) = sessions.get_mut(app.context) else { continue };
                                session.store.set_notice(Some(write_snapshot(&session.store, &settings.snapshot_dir, clipboard, fetch::now(), None)));
                            }
                            Action::WantChanged => {
                                let now = fetch::now();
                                for (i, session) in sessions.iter_mut().enumerate() {
                                    let Some(session) = session else { continue };
                                    session.store.set_range(app.range, now);
                                    let want = if i == app.context { app.want() } else { background_want(&app) };
                                    session.wiring.want.send_replace(want);
                                }
                            }
                            Action::ToggleRecording => {
                                let message = toggle_recording(&mut recorder, settings);
                                app.recording = recorder
                                    .as_ref()
                                    .filter(|r| r.recording())
                                    .map(|r| r.path().to_string());
                                let Some(Some(session)) = sessions.get_mut(app.context) else { continue };
                                session.store.set_notice(Some(message));
                            }
                            Action::SwitchContext(i) => {
                                tracing::info!(context = %app.contexts[i], "context switched");
                            }
                            Action::Plan(act) => crate::acting::plan(settings, app.context, act, plans_tx.clone()),
                            Action::Apply(plan) => {
                                let Some(Some(session)) = sessions.get(app.context) else { continue };
                                tracing::info!(target = %plan.action.target(), verb = plan.action.verb(), "applying an action");
                                crate::acting::apply(settings, app.context, *plan, session.wiring.updates.clone());
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
            Some(plan) = plans.recv() => {
                if let Some(Some(session)) = sessions.get(app.context) {
                    app.planned(plan, &session.store);
                }
                dirty = true;
            }
            update = updates.recv() => {
                let Some(first) = update else { break Err("all sources stopped".into()) };
                let mut batch = vec![first];
                let until = tokio::time::Instant::now() + COALESCE;
                while let Ok(Some(more)) = tokio::time::timeout_at(until, updates.recv()).await {
                    batch.push(more);
                }
                let now = fetch::now();
                let mut by_session: Vec<Vec<Update>> = vec![Vec::new(); sessions.len()];
                for (i, update) in batch {
                    if let Some(reason) = recorder.as_mut().and_then(|r| record(r, now, i, &update)) {
                        app.recording = None;
                        if let Some(Some(session)) = sessions.get_mut(app.context) {
                            session.store.set_notice(Some(reason));
                        }
                    }
                    if let Some(list) = by_session.get_mut(i) {
                        list.push(update);
                    }
                }
                for (session, list) in sessions.iter_mut().zip(by_session) {
                    if let Some(session) = session
                        && !list.is_empty()
                    {
                        session.store.apply_all(list, now);
                    }
                }
                dirty = true;
            }
            _ = terminate.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
        }
    };
    ratatui::restore();
    if let Some(mut r) = recorder {
        r.finish()?;
        tracing::info!(file = r.path(), updates = r.entries(), "recording closed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_of_a_replayed_moment_says_so_in_its_title() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let at = 1_796_000_000.0;
        let notice = write_snapshot(
            &Store::new(30.0),
            dir.path(),
            false,
            at,
            Some("stall.surge"),
        );
        assert!(notice.starts_with("snapshot written to"), "{notice}");
        let text = std::fs::read_to_string(dir.path().join(snapshot::file_name(at)))
            .map_err(|e| e.to_string())?;
        assert_eq!(
            text.lines().next(),
            Some("# Surge snapshot 2026-11-30T00:53:20Z (replay of stall.surge)")
        );
        // What the panel saw is its owner's only.
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(dir.path().join(snapshot::file_name(at)))
            .map_err(|e| e.to_string())?
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }
}
