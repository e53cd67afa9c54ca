//! The replay clock: where in a recording the panel is, how fast it plays, and what the replay
//! keys do to it. Pure: time passes in through [`ReplayClock::tick`], so every key and every
//! edge (the end, the start, speed limits) is unit-tested.

use crossterm::event::{KeyCode, KeyEvent};

/// Speeds `+` and `-` step through.
pub const SPEEDS: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
/// How far ←/→ move.
pub const SCRUB_SECONDS: f64 = 10.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayClock {
    /// The moment shown (Unix seconds).
    pub at: f64,
    pub start: f64,
    pub end: f64,
    pub speed: f64,
    pub playing: bool,
    /// The recording's file name, for the header and snapshots.
    pub file: String,
    /// Updates arrived by `at`, of `total`.
    pub position: usize,
    pub total: usize,
    /// The moment of the last whole update when the file was cut short (a crash, a full disk).
    pub cut_after: Option<f64>,
}

/// What a replay key asks of the recording (the clock cannot answer it alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seek {
    /// Show this moment.
    To(f64),
    /// One update forward (+1) or back (-1), paused.
    Step(i64),
    /// The next change in the alerts shown.
    NextAlertChange,
}

impl ReplayClock {
    pub fn new(file: &str, start: f64, end: f64, total: usize) -> ReplayClock {
        ReplayClock {
            at: start,
            start,
            end,
            speed: 1.0,
            playing: true,
            file: file.to_string(),
            position: 0,
            total,
            cut_after: None,
        }
    }

    /// Time passed (wall seconds) while playing: the replay moves `speed` times as far and
    /// pauses at the end.
    pub fn tick(&mut self, wall: f64) {
        if !self.playing {
            return;
        }
        self.at = (self.at + wall * self.speed).min(self.end);
        if self.at >= self.end {
            self.playing = false;
        }
    }

    /// Clamp a moment to the recording.
    pub fn clamp(&self, at: f64) -> f64 {
        at.clamp(self.start, self.end)
    }

    /// A replay key: `Some(seek)` when the recording must answer, `None` when the clock
    /// handled it (or it is not a replay key: see [`is_replay_key`]).
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Seek> {
        match key.code {
            KeyCode::Char(' ') => {
                if !self.playing && self.at >= self.end {
                    self.at = self.start;
                }
                self.playing = !self.playing;
                None
            }
            KeyCode::Char('+') | KeyCode::Char('=') => {
                self.speed = SPEEDS
                    .into_iter()
                    .find(|s| *s > self.speed)
                    .unwrap_or(SPEEDS[SPEEDS.len() - 1]);
                None
            }
            KeyCode::Char('-') => {
                self.speed = SPEEDS
                    .into_iter()
                    .rev()
                    .find(|s| *s < self.speed)
                    .unwrap_or(SPEEDS[0]);
                None
            }
            KeyCode::Left => Some(Seek::To(self.clamp(self.at - SCRUB_SECONDS))),
            KeyCode::Right => Some(Seek::To(self.clamp(self.at + SCRUB_SECONDS))),
            KeyCode::Char(',') => {
                self.playing = false;
                Some(Seek::Step(-1))
            }
            KeyCode::Char('.') => {
                self.playing = false;
                Some(Seek::Step(1))
            }
            KeyCode::Char('n') => Some(Seek::NextAlertChange),
            _ => None,
        }
    }

    /// Where the replay is, for the header: `REPLAY 2026-11-30T10:03:04Z 35% 10× ▶`.
    pub fn status(&self) -> String {
        let span = (self.end - self.start).max(f64::EPSILON);
        let percent = ((self.at - self.start) / span * 100.0).clamp(0.0, 100.0);
        let mut status = format!(
            "REPLAY {} {:.0}% {}× {}",
            jiff::Timestamp::from_second(self.at as i64)
                .map_or_else(|_| format!("{}", self.at), |t| t.to_string()),
            percent,
            self.speed,
            if self.playing { "▶" } else { "⏸" }
        );
        if let Some(cut) = self.cut_after {
            let time = jiff::Timestamp::from_second(cut as i64)
                .map_or_else(|_| format!("{cut}"), |t| t.strftime("%H:%M:%S").to_string());
            status.push_str(&format!(" · recording ends early: cut after {time}"));
        }
        status
    }
}

/// Keys the replay takes before the views do (outside the command line and popups).
pub fn is_replay_key(key: &KeyEvent) -> bool {
    matches!(
        key.code,
        KeyCode::Char(' ' | '+' | '=' | '-' | ',' | '.' | 'n') | KeyCode::Left | KeyCode::Right
    )
}

/// `--at`: an RFC 3339 time, an offset from the start (`90s`, `5m`), or `end`; clamped to
/// the recording. The error names the problem.
pub fn parse_at(text: &str, start: f64, end: f64) -> Result<f64, String> {
    if text == "end" {
        return Ok(end);
    }
    if text == "start" {
        return Ok(start);
    }
    let at = if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        ts.as_millisecond() as f64 / 1000.0
    } else if let Ok(offset) = humantime::parse_duration(text) {
        start + offset.as_secs_f64()
    } else {
        return Err(format!(
            "--at {text:?}: give an RFC 3339 time, an offset from the start (90s, 5m), start or end"
        ));
    };
    if at < start - 1.0 || at > end + 1.0 {
        return Err(format!(
            "--at {text}: outside the recording ({} to {})",
            stamp(start),
            stamp(end)
        ));
    }
    Ok(at.clamp(start, end))
}

fn stamp(at: f64) -> String {
    jiff::Timestamp::from_second(at as i64).map_or_else(|_| format!("{at}"), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn playing_moves_at_speed_and_stops_at_the_end() {
        let mut clock = ReplayClock::new("r.surge", 1000.0, 1100.0, 40);
        clock.tick(2.0);
        assert_eq!(clock.at, 1002.0);
        for _ in 0..3 {
            clock.handle_key(key(KeyCode::Char('+')));
        }
        assert_eq!(clock.speed, 10.0);
        clock.tick(2.0);
        assert_eq!(clock.at, 1022.0);
        clock.tick(100.0);
        assert_eq!((clock.at, clock.playing), (1100.0, false));
        // Space at the end plays again from the start.
        clock.handle_key(key(KeyCode::Char(' ')));
        assert_eq!((clock.at, clock.playing), (1000.0, true));
        clock.handle_key(key(KeyCode::Char(' ')));
        clock.tick(5.0);
        assert_eq!(clock.at, 1000.0, "paused");
    }

    #[test]
    fn speed_stays_between_1_and_60() {
        let mut clock = ReplayClock::new("r", 0.0, 10.0, 1);
        for _ in 0..10 {
            clock.handle_key(key(KeyCode::Char('+')));
        }
        assert_eq!(clock.speed, 60.0);
        for _ in 0..10 {
            clock.handle_key(key(KeyCode::Char('-')));
        }
        assert_eq!(clock.speed, 1.0);
    }

    #[test]
    fn scrub_step_and_next_alert_are_asked_of_the_recording() {
        let mut clock = ReplayClock::new("r", 1000.0, 1100.0, 40);
        assert_eq!(
            clock.handle_key(key(KeyCode::Left)),
            Some(Seek::To(1000.0)),
            "clamped"
        );
        clock.at = 1095.0;
        assert_eq!(
            clock.handle_key(key(KeyCode::Right)),
            Some(Seek::To(1100.0))
        );
        assert_eq!(clock.handle_key(key(KeyCode::Left)), Some(Seek::To(1085.0)));
        assert_eq!(
            clock.handle_key(key(KeyCode::Char('.'))),
            Some(Seek::Step(1))
        );
        assert!(!clock.playing, "stepping pauses");
        assert_eq!(
            clock.handle_key(key(KeyCode::Char(','))),
            Some(Seek::Step(-1))
        );
        assert_eq!(
            clock.handle_key(key(KeyCode::Char('n'))),
            Some(Seek::NextAlertChange)
        );
        for code in [KeyCode::Left, KeyCode::Char('n'), KeyCode::Char(' ')] {
            assert!(is_replay_key(&key(code)));
        }
        assert!(!is_replay_key(&key(KeyCode::Char('j'))));
    }

    #[test]
    fn status_says_replay_time_position_speed_and_state() {
        let mut clock = ReplayClock::new("r", 1_796_000_000.0, 1_796_000_100.0, 40);
        clock.at = 1_796_000_035.0;
        assert_eq!(clock.status(), "REPLAY 2026-11-30T00:53:55Z 35% 1× ▶");
        clock.playing = false;
        assert!(clock.status().ends_with("⏸"));
        clock.cut_after = Some(1_796_000_099.0);
        assert!(
            clock
                .status()
                .ends_with("⏸ · recording ends early: cut after 00:54:59"),
            "{}",
            clock.status()
        );
    }

    #[test]
    fn at_takes_a_time_an_offset_or_the_ends() {
        let (start, end) = (1_796_000_000.0, 1_796_000_600.0);
        assert_eq!(parse_at("end", start, end), Ok(end));
        assert_eq!(parse_at("90s", start, end), Ok(start + 90.0));
        assert_eq!(
            parse_at("2026-11-30T01:01:40Z", start, end),
            Ok(start + 500.0)
        );
        let late = parse_at("20m", start, end).err().unwrap_or_default();
        assert!(late.contains("outside the recording"), "{late}");
        let bad = parse_at("soon", start, end).err().unwrap_or_default();
        assert!(bad.starts_with("--at \"soon\""), "{bad}");
    }
}
