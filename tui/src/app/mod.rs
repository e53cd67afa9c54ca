//! What the user sees and asks for: the view stack, selection, filter, command line, popups.
//! Keys change this state or become `Action`s (a fetcher command, a snapshot); nothing here
//! does I/O, so every key path is unit-tested.
//!
//! `state` is the view state and navigation; `keys` what each key does; `rows` the one
//! definition of the rows each view lists; `command` the `:` line; `silence` the silence
//! form and the confirmations.

mod act;
mod command;
mod keys;
mod replay;
mod rows;
mod silence;
mod state;

pub use act::ActForm;
pub use replay::{ReplayClock, Seek, is_replay_key, parse_at};
pub use rows::{
    alerts, alerts_for_service, dead_letter_topics, groups, letter_filter, letters, partitions,
    pods, servers, services, silences,
};
pub use silence::validate;
pub use state::{Action, AlertsFocus, App, Input, Popup, SilenceField, SilenceForm, View};

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use surge_client::fetch::Command;
    use surge_client::fetch::Update;
    use surge_client::model::{Alert, Range};
    use surge_client::model::{AlertState, Labels, Metrics};
    use surge_client::store::Store;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(app: &mut App, store: &Store, text: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.extend(app.handle_key(key(KeyCode::Char(c)), store));
        }
        actions
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn store() -> Store {
        let mut m = Metrics::default();
        for w in ["auth", "payment", "shipping"] {
            m.insert(
                "surge_hpa_current_replicas",
                labels(&[("namespace", "shop"), ("workload", w)]),
                2.0,
            );
        }
        let gt = labels(&[
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
        ]);
        m.insert("surge_kafka_group_topic_lag", gt, 10.0);
        let mut store = Store::new(30.0);
        store.apply(
            Update::Metrics {
                source: "p".into(),
                metrics: m,
                at: 0.0,
            },
            0.0,
        );
        let alert = Alert {
            name: "KafkaConsumerLagGrowing".into(),
            state: AlertState::Firing,
            severity: "page".into(),
            labels: labels(&[
                ("alertname", "KafkaConsumerLagGrowing"),
                ("cluster", "shop"),
                ("group", "payment"),
                ("topic", "order-placed"),
                ("instance", "x:1"),
            ]),
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted: false,
        };
        store.apply(
            Update::Alerts {
                source: "alertmanager".into(),
                alerts: vec![alert],
            },
            0.0,
        );
        store
    }

    fn app() -> App {
        App::new(false, "oncall")
    }

    #[test]
    fn commands_switch_views_and_esc_goes_back() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, ":kafka");
        assert_eq!(app.input, Input::Command("kafka".into()));
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(app.view, View::Kafka);
        typed(&mut app, &store, ":svc payment");
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(
            app.view,
            View::Service {
                namespace: "shop".into(),
                workload: "payment".into()
            }
        );
        typed(&mut app, &store, ":svc nope");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(app.message.as_deref().is_some_and(|m| m.contains("nope")));
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Kafka);
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Overview);
        typed(&mut app, &store, ":bogus");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.starts_with("unknown command :bogus"))
        );
        assert_eq!(typed(&mut app, &store, "q"), vec![Action::Quit]);
    }

    #[test]
    fn filter_narrows_and_selection_is_clamped() {
        let store = store();
        let mut app = app();
        for _ in 0..10 {
            app.handle_key(key(KeyCode::Char('j')), &store);
        }
        assert_eq!(app.cursor(), 2, "3 services: the cursor stops at the last");
        typed(&mut app, &store, "/pay");
        assert_eq!(services(&store, &app.filter).len(), 1);
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(app.input, Input::Normal);
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(
            app.view,
            View::Service {
                namespace: "shop".into(),
                workload: "payment".into()
            }
        );
    }

    #[test]
    fn drill_into_partitions_changes_what_is_fetched() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, "2");
        assert_eq!(
            app.handle_key(key(KeyCode::Enter), &store),
            vec![Action::WantChanged]
        );
        assert_eq!(
            app.wanted_partitions(),
            Some(("shop".into(), "payment".into(), "order-placed".into()))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Esc), &store),
            vec![Action::WantChanged]
        );
        assert_eq!(app.wanted_partitions(), None);
        assert_eq!(typed(&mut app, &store, "t"), vec![Action::WantChanged]);
        assert_eq!(app.range, Range::OneHour);
    }

    #[test]
    fn alert_jumps_to_its_group_and_silence_form_validates_then_confirms() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, "4");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(matches!(app.view, View::Partitions { ref group, .. } if group == "payment"));
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Alerts);

        typed(&mut app, &store, "m");
        let Some(Popup::Silence(form)) = &app.popup else {
            panic!("no form: {:?}", app.popup)
        };
        // instance is off by default; alertname, cluster, group, topic on.
        let on: Vec<&str> = form
            .matchers
            .iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| m.name.as_str())
            .collect();
        assert_eq!(on, ["alertname", "cluster", "group", "topic"]);
        // No comment yet: Enter says why not.
        app.handle_key(key(KeyCode::Enter), &store);
        let Some(Popup::Silence(form)) = &app.popup else {
            panic!()
        };
        assert!(
            form.error
                .as_deref()
                .is_some_and(|e| e.starts_with("comment"))
        );
        typed(&mut app, &store, "scaling payment by hand");
        app.handle_key(key(KeyCode::Enter), &store);
        let actions = app.handle_key(key(KeyCode::Char('y')), &store);
        let [Action::Fetch(Command::CreateSilence(silence))] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (silence.seconds, silence.created_by.as_str()),
            (7200, "oncall")
        );
        assert_eq!(silence.matchers.len(), 4);
        assert!(app.popup.is_none());
    }

    #[test]
    fn readonly_refuses_silences() {
        let store = store();
        let mut app = App::new(true, "oncall");
        typed(&mut app, &store, "4m");
        assert!(app.popup.is_none());
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.starts_with("read-only"))
        );
    }
}
