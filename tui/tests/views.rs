//! Whole-screen snapshots of every view from fixtures, on ratatui's TestBackend: normal,
//! empty, stale, and overflowing data, at 160×48 and 80×24.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use surge_tui::app::{App, View};
mod common;

use common::{NOW, flash_sale, flash_sale_with, labels};
use surge_client::fetch::Update;
use surge_client::model::Metrics;
use surge_client::store::Store;
use surge_tui::config::ThemeName;
use surge_tui::ui::render_text;
use surge_tui::ui::theme::Theme;

fn app() -> App {
    App::new(false, "oncall")
}

/// A frame at the fixtures' fixed "now" (2026-11-28T09:00:00Z), in the mono theme.
fn render(app: &App, store: &Store, width: u16, height: u16) -> String {
    render_text(app, store, &Theme::new(ThemeName::Mono), NOW, width, height)
}

fn key(app: &mut App, store: &Store, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE), store);
}

fn keys(app: &mut App, store: &Store, text: &str) {
    for c in text.chars() {
        key(app, store, KeyCode::Char(c));
    }
}

#[test]
fn overview_mid_flash_sale() {
    let store = flash_sale();
    insta::assert_snapshot!("overview_160x48", render(&app(), &store, 160, 48));
    insta::assert_snapshot!("overview_80x24", render(&app(), &store, 80, 24));
    // The README's frame.
    insta::assert_snapshot!("overview_160x26", render(&app(), &store, 160, 26));
    insta::assert_snapshot!("overview_120x40", render(&app(), &store, 120, 40));
    // Charts (CPU against target and alert line, lag, replica lag) where there is room;
    // 80×24 keeps the compact layout.
    for (w, h, charts) in [
        (80, 24, false),
        (120, 40, true),
        (160, 48, true),
        (240, 70, true),
    ] {
        let frame = render(&app(), &store, w, h);
        assert_eq!(
            frame.contains("CPU of request")
                && frame.contains("Kafka lag (messages)")
                && frame.contains("Replica lag"),
            charts,
            "{w}x{h}:\n{frame}"
        );
    }
    let wide = render(&app(), &store, 240, 70);
    insta::assert_snapshot!("overview_240x70", wide);
    // Without colour, each line is drawn its own way, its mark before its name in the legend.
    for legend in ["⠒ orders", "• payment", "▄ payment-dlq-audit", "█ shipping"] {
        assert!(wide.contains(legend), "{legend} in\n{wide}");
    }
    // Room for every column: the lag-scaled service's target says what it scales on.
    let payment = wide
        .lines()
        .find(|l| l.contains("shop/payment"))
        .unwrap_or_default();
    assert!(
        payment.contains("▲ lag") && payment.contains("saturated"),
        "{payment}"
    );
}

#[test]
fn service_detail() {
    let store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, ":svc payment");
    key(&mut app, &store, KeyCode::Enter);
    assert_eq!(
        app.view,
        View::Service {
            namespace: "shop".into(),
            workload: "payment".into()
        }
    );
    insta::assert_snapshot!("service_payment_160x48", render(&app, &store, 160, 48));
    insta::assert_snapshot!("service_payment_80x24", render(&app, &store, 80, 24));
}

#[test]
fn kafka_groups_and_partitions() {
    let store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, "2");
    insta::assert_snapshot!("kafka_160x48", render(&app, &store, 160, 48));
    // payment on order-placed, the growing one, is second (groups sort by name).
    key(&mut app, &store, KeyCode::Down);
    key(&mut app, &store, KeyCode::Enter);
    insta::assert_snapshot!("partitions_160x48", render(&app, &store, 160, 48));
    insta::assert_snapshot!("partitions_80x24", render(&app, &store, 80, 24));
    key(&mut app, &store, KeyCode::Esc);
    keys(&mut app, &store, "t");
    insta::assert_snapshot!("kafka_1h_80x24", render(&app, &store, 80, 24));
}

/// A wedged member: payment stalled on 2 of order-placed's 12 partitions while the others
/// commit. The Overview's verdict says consumers stalled, the Kafka view how many partitions,
/// and the drill-in names them with their member and that the autoscalers leave their lag out.
#[test]
fn a_partly_stalled_group_names_its_partitions_and_does_not_scale_on_them() {
    let store = flash_sale_with(|shop| {
        shop.stall(
            "payment",
            "order-placed",
            &[(1, "payment-2-b1", 130.0), (3, "payment-2-b1", 130.0)],
            12,
            200.0,
        );
    });
    let mut app = app();
    let overview = render(&app, &store, 160, 48);
    assert!(overview.contains("consumers stalled"), "{overview}");
    keys(&mut app, &store, "2");
    let groups = render(&app, &store, 160, 48);
    assert!(groups.contains("■ stalled 2/12"), "{groups}");
    key(&mut app, &store, KeyCode::Down);
    key(&mut app, &store, KeyCode::Enter);
    let partitions = render(&app, &store, 160, 48);
    assert!(
        partitions.contains(
            "partly stalled, 2 of 12 partitions: 1 (payment-2-b1, 2m10s), 3 (payment-2-b1, 2m10s); not scaling on it (scalable lag 200)"
        ),
        "{partitions}"
    );
    assert!(
        partitions.contains("stalled 2m10s, payment-2-b1"),
        "{partitions}"
    );
    insta::assert_snapshot!("partly_stalled_partitions_160x48", partitions);
}

#[test]
fn postgres() {
    let store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, "3");
    insta::assert_snapshot!("postgres_160x48", render(&app, &store, 160, 48));
    insta::assert_snapshot!("postgres_80x24", render(&app, &store, 80, 24));
}

#[test]
fn alerts_help_and_silence_popups() {
    let store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, "4");
    insta::assert_snapshot!("alerts_160x48", render(&app, &store, 160, 48));
    insta::assert_snapshot!("alerts_80x24", render(&app, &store, 80, 24));
    keys(
        &mut app,
        &store,
        "mbypassing payment to the backup provider",
    );
    insta::assert_snapshot!("silence_form_160x48", render(&app, &store, 160, 48));
    key(&mut app, &store, KeyCode::Esc);
    key(&mut app, &store, KeyCode::Tab);
    keys(&mut app, &store, "e");
    insta::assert_snapshot!("expire_confirm_100x30", render(&app, &store, 100, 30));
    key(&mut app, &store, KeyCode::Esc);
    keys(&mut app, &store, "?");
    insta::assert_snapshot!("help_160x48", render(&app, &store, 160, 48));
    insta::assert_snapshot!("help_80x24", render(&app, &store, 80, 24));
    // Longer than the screen: it scrolls to its last page, no further.
    for _ in 0..40 {
        key(&mut app, &store, KeyCode::Char('j'));
    }
    insta::assert_snapshot!("help_80x24_end", render(&app, &store, 80, 24));
}

#[test]
fn empty_before_any_data() {
    let store = Store::new(30.0);
    insta::assert_snapshot!("empty_overview_100x24", render(&app(), &store, 100, 24));
    let mut app = app();
    keys(&mut app, &store, "4");
    insta::assert_snapshot!("empty_alerts_100x24", render(&app, &store, 100, 24));
}

#[test]
fn stale_sources_keep_their_data_with_a_banner() {
    let mut store = flash_sale();
    store.apply(
        Update::Failed {
            source: "prometheus".into(),
            error: "http://127.0.0.1:9090/api/v1/query: cannot connect (Connection refused)".into(),
        },
        NOW + 95.0,
    );
    let mut m = Metrics::default();
    m.insert(
        "surge_source_up",
        labels(&[("source", "kafka"), ("target", "shop")]),
        0.0,
    );
    m.insert(
        "surge_source_last_success_timestamp_seconds",
        labels(&[("source", "kafka"), ("target", "shop")]),
        NOW - 40.0,
    );
    store.apply(
        Update::Metrics {
            source: "exporter 127.0.0.1:9187".into(),
            metrics: m,
            at: NOW + 95.0,
        },
        NOW + 95.0,
    );
    let frame = render_text(
        &app(),
        &store,
        &Theme::new(ThemeName::Mono),
        NOW + 96.0,
        160,
        48,
    );
    assert!(frame.contains("prometheus is failing"), "{frame}");
    assert!(frame.contains("STALE"), "{frame}");
    assert!(
        frame.contains("shop/payment"),
        "last data stays on screen: {frame}"
    );
    // A verdict from stale data says so: it no longer judges now.
    let payment = frame
        .lines()
        .find(|l| l.contains("shop/payment"))
        .unwrap_or_default();
    assert!(payment.contains("STALE: saturated"), "{payment}");
    insta::assert_snapshot!("stale_160x48", frame);
    // At 80 columns the banner wraps onto a second line instead of losing its reason.
    let narrow = render_text(
        &app(),
        &store,
        &Theme::new(ThemeName::Mono),
        NOW + 96.0,
        80,
        24,
    );
    let joined: String = narrow.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains("cannot connect (Connection refused)"),
        "{narrow}"
    );
    insta::assert_snapshot!("stale_80x24", narrow);
}

#[test]
fn overflow_fifty_services_two_hundred_groups_long_names() {
    let store = common::large();
    let mut app = app();
    insta::assert_snapshot!("overflow_overview_80x24", render(&app, &store, 80, 24));
    keys(&mut app, &store, "2G");
    insta::assert_snapshot!("overflow_kafka_end_160x48", render(&app, &store, 160, 48));
}

/// The guide's frames of every view (docs/src/panel.md, between its `frames` markers) are
/// the snapshots', character for character; `SURGE_WRITE_DOCS=1` writes them there.
#[test]
fn guide_shows_every_view_from_its_snapshot() -> anyhow::Result<()> {
    const VIEWS: [(&str, &str); 8] = [
        ("`1` Overview", "views__overview_160x48"),
        ("`Enter` on a service", "views__service_payment_160x48"),
        ("`2` Kafka", "views__kafka_160x48"),
        (
            "`Enter` on a group: its partitions",
            "views__partitions_160x48",
        ),
        ("`3` PostgreSQL", "views__postgres_160x48"),
        ("`4` Alerts", "views__alerts_160x48"),
        (
            "`m` on an alert: the silence form",
            "views__silence_form_160x48",
        ),
        ("`?` help: every key", "views__help_160x48"),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut block = String::from("<!-- frames:begin -->\n");
    for (title, name) in VIEWS {
        let snapshot =
            std::fs::read_to_string(root.join(format!("tui/tests/snapshots/{name}.snap")))?;
        let frame = snapshot
            .splitn(3, "---\n")
            .nth(2)
            .ok_or_else(|| anyhow::anyhow!("snapshot {name} without a header"))?
            .trim_end_matches('\n');
        block.push_str(&format!("\n### {title}\n\n```text\n{frame}\n```\n"));
    }
    block.push_str("\n<!-- frames:end -->");
    let path = root.join("docs/src/panel.md");
    let page = std::fs::read_to_string(&path)?;
    let (start, end) = (
        page.find("<!-- frames:begin -->")
            .ok_or_else(|| anyhow::anyhow!("no frames:begin"))?,
        page.find("<!-- frames:end -->")
            .ok_or_else(|| anyhow::anyhow!("no frames:end"))?
            + "<!-- frames:end -->".len(),
    );
    let wanted = format!("{}{block}{}", &page[..start], &page[end..]);
    if std::env::var_os("SURGE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &wanted)?;
    }
    assert!(
        std::fs::read_to_string(&path)? == wanted,
        "docs/src/panel.md's frames differ from the snapshots (SURGE_WRITE_DOCS=1 cargo test -p surge-tui --test views guide rewrites them)"
    );
    Ok(())
}

/// The README's frame is this snapshot, character for character.
#[test]
fn readme_frame_is_the_overview_snapshot() -> anyhow::Result<()> {
    assert!(
        common::doc_holds_snapshot("README.md", "views__overview_160x26")?,
        "README.md's frame differs from views__overview_160x26.snap: copy it over"
    );
    Ok(())
}

/// Two regions side by side: the all-contexts view from each context's own store, the header
/// naming the current context, `:ctx NAME` switching with Tab completion, `Enter` on a row.
#[test]
fn contexts_side_by_side_and_switching() {
    use surge_client::store::ContextSummary;
    let eu = flash_sale();
    let us = Store::new(30.0);
    let mut app = app();
    app.contexts = vec!["eu-west".into(), "us-east".into()];
    app.context_rows = vec![ContextSummary::of(&eu, NOW), ContextSummary::of(&us, NOW)];
    keys(&mut app, &eu, "0");
    assert_eq!(app.view, View::Contexts);
    let frame = render(&app, &eu, 160, 16);
    assert!(frame.contains("ctx eu-west"), "{frame}");
    let summary = app.context_rows[0].clone();
    assert!(summary.services > 0 && summary.firing > 0, "{summary:?}");
    // Each of eu-west's services under it, then us-east (no data yet).
    let lines: Vec<&str> = frame.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let (eu_at, us_at) = (at("▸ eu-west"), at("  us-east"));
    assert!(eu_at.is_some() && us_at > eu_at, "{frame}");
    for line in &summary.service_lines {
        let row = at(&format!("{}/{}", line.namespace, line.workload));
        assert!(
            row > eu_at && row < us_at,
            "{} not under eu-west:\n{frame}",
            line.workload
        );
    }
    insta::assert_snapshot!("contexts_160x16", frame);
    insta::assert_snapshot!("contexts_80x24", render(&app, &eu, 80, 24));
    // Enter on a service row: that service, in that context.
    key(&mut app, &eu, KeyCode::Down);
    key(&mut app, &eu, KeyCode::Enter);
    let first = &summary.service_lines[0];
    assert_eq!(
        app.view,
        View::Service {
            namespace: first.namespace.clone(),
            workload: first.workload.clone()
        }
    );
    key(&mut app, &eu, KeyCode::Esc);

    // `:ctx u` Tab → `:ctx us-east`, Enter: the other context, on its Overview.
    key(&mut app, &eu, KeyCode::Char(':'));
    keys(&mut app, &eu, "ctx u");
    key(&mut app, &eu, KeyCode::Tab);
    key(&mut app, &eu, KeyCode::Enter);
    assert_eq!((app.context, &app.view), (1, &View::Overview));
    let frame = render(&app, &us, 160, 12);
    assert!(frame.contains("ctx us-east"), "{frame}");
    // Back through the list: Enter on the first row.
    keys(&mut app, &us, "0");
    key(&mut app, &us, KeyCode::Up);
    key(&mut app, &us, KeyCode::Enter);
    assert_eq!(app.context, 0);
    // An unknown context is said, nothing switches.
    key(&mut app, &eu, KeyCode::Char(':'));
    keys(&mut app, &eu, "ctx mars");
    key(&mut app, &eu, KeyCode::Enter);
    assert_eq!(app.context, 0);
    assert_eq!(
        app.message.as_deref(),
        Some("no context \"mars\" (known: eu-west, us-east)")
    );

    // The kubeconfig's contexts are listed beside the config's, complete with Tab, and say
    // how to open them.
    app.kube_contexts = vec!["staging-eks".into(), "prod-gke".into()];
    keys(&mut app, &eu, "0");
    let frame = render(&app, &eu, 160, 16);
    assert!(
        frame.contains(
            "Contexts (2) · kubeconfig also has: staging-eks, prod-gke (surge --kube-context NAME)"
        ),
        "{frame}"
    );
    key(&mut app, &eu, KeyCode::Char(':'));
    keys(&mut app, &eu, "ctx st");
    key(&mut app, &eu, KeyCode::Tab);
    key(&mut app, &eu, KeyCode::Enter);
    assert_eq!(app.context, 0);
    assert_eq!(
        app.message.as_deref(),
        Some("staging-eks is a kubeconfig context: open it with surge --kube-context staging-eks")
    );
}

/// Dead letters as the shop writes them: two poison messages and an unknown order, the
/// newest first; one already redriven.
fn with_dead_letters(store: &mut Store) {
    use surge_client::act::dead_letters::{DeadLetterTopic, Letter, LetterId, Look};
    let letter = |partition: i32, offset: i64, age: f64, order: u32, error: &str| {
        let body = format!(
            r#"{{"error":"{error}","source_topic":"order-placed","partition":{partition},"offset":{},"attempts":1,"original":{{"order_id":"order-{order}","total_cents":4200}}}}"#,
            offset * 10 + 3
        );
        Letter::read(
            LetterId { partition, offset },
            Some(((NOW - age) * 1000.0) as i64),
            Some(format!("order-{order}").as_bytes()),
            &[],
            body.as_bytes(),
        )
    };
    store.apply(
        Update::DeadLetters(Ok(Look::Topics(vec![
            DeadLetterTopic {
                name: "order-placed.dlq".into(),
                total: 3,
                redriven: 1,
            },
            DeadLetterTopic {
                name: "shipping-request.dlq".into(),
                total: 0,
                redriven: 0,
            },
        ]))),
        NOW,
    );
    let letters = vec![
        letter(
            1,
            7,
            40.0,
            31,
            "malformed order-placed message: missing field `currency`",
        ),
        letter(
            0,
            12,
            95.0,
            30,
            "malformed order-placed message: missing field `currency`",
        ),
        letter(0, 11, 400.0, 12, "unknown order"),
    ];
    store.apply(
        Update::DeadLetters(Ok(Look::Letters {
            topic: "order-placed.dlq".into(),
            total: 3,
            letters,
            redriven: [LetterId {
                partition: 0,
                offset: 11,
            }]
            .into(),
        })),
        NOW,
    );
}

#[test]
fn dead_letters_topics_letters_a_message_and_a_redrive_plan() {
    let mut store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, ":dlq");
    key(&mut app, &store, KeyCode::Enter);
    assert_eq!(app.view, View::DeadLetters { topic: None });
    // Before the broker answered, then the topics (the letters' look replaces them).
    insta::assert_snapshot!("dead_letters_asking_100x12", render(&app, &store, 100, 12));
    {
        let mut topics_only = store.clone();
        with_dead_letters(&mut topics_only);
        topics_only.apply(
            Update::DeadLetters(Ok(surge_client::act::dead_letters::Look::Topics(vec![
                surge_client::act::dead_letters::DeadLetterTopic {
                    name: "order-placed.dlq".into(),
                    total: 3,
                    redriven: 1,
                },
            ]))),
            NOW,
        );
        insta::assert_snapshot!(
            "dead_letter_topics_100x12",
            render(&app, &topics_only, 100, 12)
        );
    }
    with_dead_letters(&mut store);
    keys(&mut app, &store, ":dlq order-placed.dlq");
    key(&mut app, &store, KeyCode::Enter);
    // The newest letter picked, the next opened.
    key(&mut app, &store, KeyCode::Char(' '));
    key(&mut app, &store, KeyCode::Enter);
    insta::assert_snapshot!("dead_letters_160x30", render(&app, &store, 160, 30));
    // The broker failing now: what was seen stays, said stale at once.
    let mut failing = store.clone();
    failing.apply(Update::DeadLetters(Err("broker down".into())), NOW);
    let frame = render(&app, &failing, 160, 30);
    assert!(
        frame.contains("held, 1 redriven, newest 3 shown, 1 picked STALE 0s ago"),
        "{frame}"
    );
    assert!(!render(&app, &store, 160, 30).contains("STALE"));
    insta::assert_snapshot!("dead_letters_80x24", render(&app, &store, 80, 24));

    // The plan a redrive of the picked letter comes back with.
    use surge_client::act::dead_letters::Selection;
    use surge_client::act::{Action as Act, Change, Plan};
    let plan = Plan {
        action: Act::Redrive {
            topic: "order-placed.dlq".into(),
            selection: Selection::Picked(app.picked.clone()),
            rate: 10,
        },
        changes: vec![Change::new("republished to order-placed", 0, 1)],
        destructive: false,
        missing: Vec::new(),
        notes: vec!["1 of the 3 letters selected; the letters stay in order-placed.dlq".into()],
        undo: "none: consumers get the messages again (marked surge-redrive-of); the letters and the ledger stay".into(),
    };
    app.planned(Ok(plan), &store);
    insta::assert_snapshot!("redrive_plan_120x30", render(&app, &store, 120, 30));
}

#[test]
fn a_saturated_service_offers_its_ceiling_and_the_plan_names_the_partitions() {
    use surge_client::act::{Action as Act, Change, Plan};
    let store = flash_sale();
    let mut app = app();
    keys(&mut app, &store, ":svc payment");
    key(&mut app, &store, KeyCode::Enter);
    let frame = render(&app, &store, 160, 48);
    assert!(
        frame.contains("saturated at max: :max N raises the ceiling"),
        "{frame}"
    );
    let plan = |max: i32| Plan {
        action: Act::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(max),
        },
        changes: vec![
            Change::new("minReplicas", 2, 2),
            Change::new("maxReplicas", 10, max),
        ],
        destructive: false,
        missing: Vec::new(),
        notes: Vec::new(),
        undo: "set the bounds back to 2–10".into(),
    };
    app.planned(Ok(plan(12)), &store);
    assert!(
        !render(&app, &store, 120, 30).contains("sit idle"),
        "12 replicas for 12 partitions is no waste"
    );
    app.popup = None;
    app.planned(Ok(plan(16)), &store);
    insta::assert_snapshot!("raise_ceiling_plan_120x30", render(&app, &store, 120, 30));
}
