//! Acting from the panel: `:max N`, `:min N`, `:bounds MIN MAX`, `:scale N`, `:restart` on
//! the service shown. A command asks for a plan (read from the cluster, permissions checked);
//! the plan comes back as a popup saying exactly what changes, and is applied only once
//! confirmed — `y`, or the target's name typed when the plan is destructive.

use crossterm::event::{KeyCode, KeyEvent};
use surge_client::act::dead_letters::Selection;
use surge_client::act::{Action as Act, Plan, WorkloadKind};
use surge_client::store::Store;

/// Letters a second when `:redrive` names no rate.
pub const DEFAULT_RATE: u32 = 10;

use super::state::{Action, App, Popup, View};

/// A plan on screen, waiting for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct ActForm {
    pub plan: Plan,
    /// What has been typed towards the confirmation word.
    pub typed: String,
    pub error: Option<String>,
}

impl App {
    /// The action a command names, on the service shown; `None` (with a message) otherwise.
    pub(super) fn act_command(&mut self, verb: &str, args: &[&str]) -> Vec<Action> {
        if self.readonly {
            self.message = Some("read-only (--readonly): actions are off".into());
            return Vec::new();
        }
        let View::Service {
            namespace,
            workload,
        } = &self.view
        else {
            self.message = Some(format!(
                ":{verb} acts on a service: open one first (:svc NAME)"
            ));
            return Vec::new();
        };
        let (namespace, name) = (namespace.clone(), workload.clone());
        let number = |text: Option<&&str>| -> Result<i32, String> {
            let text = text.ok_or_else(|| format!(":{verb} needs a number"))?;
            text.parse::<i32>()
                .map_err(|_| format!(":{verb}: {text:?} is not a whole number"))
        };
        let act = match verb {
            "max" => number(args.first()).map(|max| Act::HpaBounds {
                namespace,
                name,
                min: None,
                max: Some(max),
            }),
            "min" => number(args.first()).map(|min| Act::HpaBounds {
                namespace,
                name,
                min: Some(min),
                max: None,
            }),
            "bounds" => number(args.first()).and_then(|min| {
                number(args.get(1)).map(|max| Act::HpaBounds {
                    namespace,
                    name,
                    min: Some(min),
                    max: Some(max),
                })
            }),
            "scale" => number(args.first()).map(|replicas| Act::Scale {
                namespace,
                kind: WorkloadKind::Deployment,
                name,
                replicas,
            }),
            _ => Ok(Act::Restart {
                namespace,
                kind: WorkloadKind::Deployment,
                name,
            }),
        };
        match act {
            Ok(act) => {
                self.message = Some(format!("planning: {} {}…", act.verb(), act.target()));
                vec![Action::Plan(act)]
            }
            Err(e) => {
                self.message = Some(e);
                Vec::new()
            }
        }
    }

    /// `:redrive [RATE]` in a dead-letter topic: the letters picked (space), else every letter
    /// whose error matches the filter (all of them without one), at RATE a second (10).
    pub(super) fn redrive_command(&mut self, rate: Option<&str>) -> Vec<Action> {
        if self.readonly {
            self.message = Some("read-only (--readonly): actions are off".into());
            return Vec::new();
        }
        let View::DeadLetters { topic: Some(topic) } = &self.view else {
            self.message =
                Some(":redrive acts on a dead-letter topic: open one first (:dlq)".into());
            return Vec::new();
        };
        let rate = match rate.map(str::parse::<u32>) {
            None => DEFAULT_RATE,
            Some(Ok(rate)) if rate > 0 => rate,
            Some(_) => {
                self.message =
                    Some(":redrive RATE: letters a second, a whole number above 0".into());
                return Vec::new();
            }
        };
        let selection = if self.picked.is_empty() {
            Selection::Matching(super::rows::letter_filter(&self.filter))
        } else {
            Selection::Picked(self.picked.clone())
        };
        let act = Act::Redrive {
            topic: topic.clone(),
            selection,
            rate,
        };
        self.message = Some(format!("planning: redrive from {topic}…"));
        vec![Action::Plan(act)]
    }

    /// A plan (or why there is none) is back: show it for confirmation, with what the store
    /// knows that the cluster does not say (the partitions a consumer's replicas share).
    pub fn planned(&mut self, plan: Result<Plan, String>, store: &Store) {
        match plan {
            Ok(mut plan) => {
                if let Act::HpaBounds {
                    namespace, name, ..
                } = &plan.action
                    && let Some(service) = store
                        .derived()
                        .services
                        .iter()
                        .find(|s| &s.namespace == namespace && &s.workload == name)
                    && let (Some(partitions), Some(group)) = (service.partitions, &service.kafka)
                {
                    let after = plan
                        .changes
                        .iter()
                        .find(|c| c.field == "maxReplicas")
                        .and_then(|c| c.after.parse::<f64>().ok());
                    if after.is_some_and(|max| max > partitions) {
                        plan.notes.push(format!(
                            "{name} consumes {}: {partitions:.0} partitions, so replicas past {partitions:.0} sit idle",
                            group.topic
                        ));
                    }
                }
                self.message = None;
                self.popup = Some(Popup::Act(Box::new(ActForm {
                    plan,
                    typed: String::new(),
                    error: None,
                })));
            }
            Err(e) => self.message = Some(e),
        }
    }

    pub(super) fn act_key(&mut self, mut form: Box<ActForm>, key: KeyEvent) -> Vec<Action> {
        if key.code == KeyCode::Esc {
            self.message = Some("cancelled: nothing changed".into());
            return Vec::new();
        }
        let plan = &form.plan;
        if !plan.missing.is_empty() || !plan.ready() {
            // Nothing to confirm: any key closes it.
            return Vec::new();
        }
        match (plan.confirm_word().map(str::to_owned), key.code) {
            (None, KeyCode::Char('y' | 'Y')) => return vec![Action::Apply(Box::new(form.plan))],
            (None, KeyCode::Char('n' | 'N')) => {
                self.message = Some("cancelled: nothing changed".into());
                return Vec::new();
            }
            (Some(word), KeyCode::Enter) => {
                if form.typed == word {
                    return vec![Action::Apply(Box::new(form.plan))];
                }
                form.error = Some(format!("type {word} to confirm"));
            }
            (Some(_), KeyCode::Backspace) => {
                form.typed.pop();
            }
            (Some(_), KeyCode::Char(c)) => {
                form.typed.push(c);
                form.error = None;
            }
            _ => {}
        }
        self.popup = Some(Popup::Act(form));
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;
    use surge_client::act::{Change, Missing};
    use surge_client::store::Store;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn on_payment(readonly: bool) -> App {
        let mut app = App::new(readonly, "oncall");
        app.view = View::Service {
            namespace: "shop".into(),
            workload: "payment".into(),
        };
        app
    }

    fn plan(destructive: bool, missing: Vec<Missing>) -> Plan {
        Plan {
            action: Act::HpaBounds {
                namespace: "shop".into(),
                name: "payment".into(),
                min: None,
                max: Some(4),
            },
            changes: vec![Change::new("maxReplicas", 10, 4)],
            destructive,
            missing,
            notes: Vec::new(),
            undo: "set the bounds back to 2–10".into(),
        }
    }

    #[test]
    fn commands_on_a_service_ask_for_a_plan_and_say_what_is_wrong_otherwise() {
        let store = Store::new(30.0);
        let mut app = on_payment(false);
        let actions = app.run_command("max 16", &store);
        assert_eq!(
            actions,
            vec![Action::Plan(Act::HpaBounds {
                namespace: "shop".into(),
                name: "payment".into(),
                min: None,
                max: Some(16),
            })]
        );
        assert_eq!(
            app.run_command("bounds 3 12", &store),
            vec![Action::Plan(Act::HpaBounds {
                namespace: "shop".into(),
                name: "payment".into(),
                min: Some(3),
                max: Some(12),
            })]
        );
        assert!(matches!(
            app.run_command("restart", &store).as_slice(),
            [Action::Plan(Act::Restart { .. })]
        ));
        assert!(app.run_command("scale x", &store).is_empty());
        assert_eq!(
            app.message.as_deref(),
            Some(":scale: \"x\" is not a whole number")
        );
        assert!(app.run_command("max", &store).is_empty());
        assert_eq!(app.message.as_deref(), Some(":max needs a number"));
        app.view = View::Kafka;
        assert!(app.run_command("restart", &store).is_empty());
        assert_eq!(
            app.message.as_deref(),
            Some(":restart acts on a service: open one first (:svc NAME)")
        );
        let mut readonly = on_payment(true);
        assert!(readonly.run_command("max 16", &store).is_empty());
        assert_eq!(
            readonly.message.as_deref(),
            Some("read-only (--readonly): actions are off")
        );
    }

    #[test]
    fn a_plan_is_applied_only_once_confirmed() {
        let store = Store::new(30.0);
        let mut app = on_payment(false);
        // Not destructive: y applies, n cancels.
        app.planned(Ok(plan(false, Vec::new())), &store);
        assert!(app.handle_key(key(KeyCode::Char('x')), &store).is_empty());
        assert!(app.popup.is_some(), "other keys keep it open");
        assert_eq!(
            app.handle_key(key(KeyCode::Char('y')), &store),
            vec![Action::Apply(Box::new(plan(false, Vec::new())))]
        );
        assert!(app.popup.is_none());
        app.planned(Ok(plan(false, Vec::new())), &store);
        assert!(app.handle_key(key(KeyCode::Char('n')), &store).is_empty());
        assert!(app.popup.is_none());
        assert_eq!(app.message.as_deref(), Some("cancelled: nothing changed"));

        // Destructive: y is just a letter; the name typed and Enter apply.
        app.planned(Ok(plan(true, Vec::new())), &store);
        for c in "paymnt".chars() {
            assert!(app.handle_key(key(KeyCode::Char(c)), &store).is_empty());
        }
        assert!(app.handle_key(key(KeyCode::Enter), &store).is_empty());
        let Some(Popup::Act(form)) = &app.popup else {
            panic!("{:?}", app.popup)
        };
        assert_eq!(form.error.as_deref(), Some("type payment to confirm"));
        for _ in 0..3 {
            app.handle_key(key(KeyCode::Backspace), &store);
        }
        for c in "ment".chars() {
            app.handle_key(key(KeyCode::Char(c)), &store);
        }
        assert_eq!(
            app.handle_key(key(KeyCode::Enter), &store),
            vec![Action::Apply(Box::new(plan(true, Vec::new())))]
        );

        // Missing permission: nothing can confirm it.
        let missing = Missing {
            verb: "patch".into(),
            resource: "horizontalpodautoscalers.autoscaling".into(),
            namespace: "shop".into(),
            reason: String::new(),
        };
        app.planned(Ok(plan(false, vec![missing])), &store);
        assert!(app.handle_key(key(KeyCode::Char('y')), &store).is_empty());
        assert!(app.popup.is_none());

        // No plan: the reason is the message.
        app.planned(
            Err("reading horizontalpodautoscaler shop/payment: 404 NotFound: gone".into()),
            &store,
        );
        assert!(app.popup.is_none());
        assert!(app.message.as_deref().is_some_and(|m| m.contains("404")));
    }
}
