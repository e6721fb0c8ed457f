//! What `supctl top` shows and how keys change it, with no terminal in sight: the programs as
//! supd last reported them, the selection, sort, filter, the log pane's lines and the prompt.
//! The terminal side ([`super::view`]) only draws it; the threads ([`super`]) only feed it.

use std::collections::{HashMap, VecDeque};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use supd::api::protocol::{ProgramStatus, Request, Resources, SupdFigures};
use supd::gpu::GpuView;
use supd::lifecycle::State;

/// The most log lines kept for the log pane.
const LOG_LINES: usize = 500;

/// The column the table is sorted by; `o` goes to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// supd's start order (priority, then name).
    Order,
    Name,
    State,
    Cpu,
    Memory,
    Restarts,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Order => Sort::Name,
            Sort::Name => Sort::State,
            Sort::State => Sort::Cpu,
            Sort::Cpu => Sort::Memory,
            Sort::Memory => Sort::Restarts,
            Sort::Restarts => Sort::Order,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Order => "start order",
            Sort::Name => "name",
            Sort::State => "state",
            Sort::Cpu => "cpu",
            Sort::Memory => "memory",
            Sort::Restarts => "restarts",
        }
    }
}

/// What the keys do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the filter.
    Filter,
    /// Typing a signal name for the target.
    Signal {
        target: String,
        typed: String,
    },
    /// Waiting for `y` to do this.
    Confirm {
        what: String,
        request: Request,
    },
}

/// What a key asks the threads to do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    None,
    Quit,
    /// Send this request and report its result.
    Send(Request),
}

/// Everything on the screen.
pub struct Model {
    /// As supd last listed them, in its start order.
    pub programs: Vec<ProgramStatus>,
    /// The latest figures by full name: kept when a change refreshes the states only.
    resources: HashMap<String, Resources>,
    pub supd: Option<SupdFigures>,
    /// GPU indices held, by full name.
    gpus: HashMap<String, Vec<u32>>,
    /// The selected program's full name.
    pub selected: Option<String>,
    pub sort: Sort,
    pub filter: String,
    /// Act on the selected program's whole group instead of the program.
    pub whole_group: bool,
    pub mode: Mode,
    /// The log pane shows stderr instead of stdout.
    pub stderr: bool,
    pub log: VecDeque<String>,
    /// The latest change or result, for the message line.
    pub message: String,
}

impl Model {
    pub fn new() -> Model {
        Model {
            programs: Vec::new(),
            resources: HashMap::new(),
            supd: None,
            gpus: HashMap::new(),
            selected: None,
            sort: Sort::Order,
            filter: String::new(),
            whole_group: false,
            mode: Mode::Normal,
            stderr: false,
            log: VecDeque::new(),
            message: String::new(),
        }
    }

    /// supd's latest list; with figures (`full`) the resources are replaced, else kept.
    pub fn set_programs(&mut self, programs: Vec<ProgramStatus>, supd: Option<SupdFigures>, full: bool) {
        if full {
            self.resources = programs.iter().filter_map(|p| Some((p.full_name.clone(), p.resources?))).collect();
            self.supd = supd.or(self.supd);
        }
        self.programs = programs;
        if self.selected.is_none() {
            self.selected = self.visible().first().map(|p| p.full_name.clone());
        }
    }

    pub fn set_gpus(&mut self, view: &GpuView) {
        self.gpus.clear();
        for d in &view.devices {
            for name in &d.programs {
                self.gpus.entry(name.clone()).or_default().push(d.device.index);
            }
        }
    }

    /// Output for the log pane. Its last line is always the one still open (`""` after a
    /// newline), as a chunk may end mid-line.
    pub fn add_log(&mut self, data: &str) {
        let mut parts = data.split('\n');
        match (parts.next(), self.log.back_mut()) {
            (Some(first), Some(open)) => open.push_str(first),
            (Some(first), None) => self.log.push_back(first.to_string()),
            (None, _) => {}
        }
        self.log.extend(parts.map(str::to_string));
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }

    /// The programs shown: filtered and sorted.
    pub fn visible(&self) -> Vec<&ProgramStatus> {
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<&ProgramStatus> = self
            .programs
            .iter()
            .filter(|p| {
                filter.is_empty()
                    || p.full_name.to_lowercase().contains(&filter)
                    || p.state.as_str().to_lowercase().contains(&filter)
            })
            .collect();
        let cpu = |p: &ProgramStatus| self.resources.get(&p.full_name).and_then(|r| r.cpu_percent).unwrap_or(0.0);
        let rss = |p: &ProgramStatus| self.resources.get(&p.full_name).map_or(0, |r| r.rss_bytes);
        match self.sort {
            Sort::Order => {}
            Sort::Name => rows.sort_by(|a, b| a.full_name.cmp(&b.full_name)),
            Sort::State => rows.sort_by_key(|p| (state_rank(p.state), p.full_name.clone())),
            Sort::Cpu => rows.sort_by(|a, b| cpu(b).total_cmp(&cpu(a))),
            Sort::Memory => rows.sort_by_key(|p| std::cmp::Reverse(rss(p))),
            Sort::Restarts => rows.sort_by_key(|p| std::cmp::Reverse(p.restarts)),
        }
        rows
    }

    /// The selected row's index among [`Model::visible`].
    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_ref()?;
        self.visible().iter().position(|p| &p.full_name == name)
    }

    /// One row's cells, as [`COLUMNS`] names them.
    pub fn cells(&self, p: &ProgramStatus) -> [String; 9] {
        let resources = self.resources.get(&p.full_name).filter(|_| p.pid.is_some());
        let health = match (&p.health, &p.last_probe) {
            (Some(h), Some(probe)) => format!("{} {:.0}ms", h.as_str(), probe.latency_ms),
            (Some(h), None) => h.as_str().to_string(),
            _ => "-".into(),
        };
        let gpus = self
            .gpus
            .get(&p.full_name)
            .map_or("-".into(), |g| g.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        [
            p.full_name.clone(),
            p.state.as_str().to_string(),
            health,
            p.pid.map_or("-".into(), |pid| pid.to_string()),
            p.uptime_secs.map_or("-".into(), duration),
            p.restarts.to_string(),
            resources.and_then(|r| r.cpu_percent).map_or("-".into(), |c| format!("{c:.1}")),
            resources.map_or("-".into(), |r| bytes(r.rss_bytes)),
            gpus,
        ]
    }

    /// The header: supd's own figures, then the counts and how the table is arranged.
    pub fn header(&self) -> [String; 2] {
        let own = match self.supd {
            Some(s) => {
                let memory = match (s.memory_used_bytes, s.memory_limit_bytes) {
                    (Some(used), Some(limit)) if limit > 0 => {
                        format!(" · container memory {} / {} ({}%)", bytes(used), bytes(limit), used * 100 / limit)
                    }
                    _ => String::new(),
                };
                format!("supd pid {} · up {} · rss {}{memory}", s.pid, duration(s.uptime_secs), bytes(s.rss_bytes))
            }
            None => "supd".to_string(),
        };
        let mut counts: Vec<(State, usize)> = Vec::new();
        for p in &self.programs {
            match counts.iter_mut().find(|(s, _)| *s == p.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((p.state, 1)),
            }
        }
        counts.sort_by_key(|(s, _)| state_rank(*s));
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {}", s.as_str().to_lowercase())).collect();
        let filter = if self.filter.is_empty() { String::new() } else { format!(" · filter: {}", self.filter) };
        let scope = if self.whole_group { " · acting on groups" } else { "" };
        let summary = format!(
            "{} programs: {} · sort: {}{filter}{scope}",
            self.programs.len(),
            counts.join(", "),
            self.sort.as_str()
        );
        [own, summary]
    }

    /// The name verbs act on: the selected program, or with `g` its group (`GROUP:*`).
    fn target(&self) -> Option<String> {
        let name = self.selected.as_ref()?;
        let p = self.programs.iter().find(|p| &p.full_name == name)?;
        Some(if self.whole_group { format!("{}:*", p.group) } else { p.full_name.clone() })
    }

    /// Applies a key; what the threads must do about it.
    pub fn key(&mut self, key: KeyEvent) -> Effect {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Effect::Quit;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key.code),
            Mode::Filter => {
                match key.code {
                    KeyCode::Enter => {}
                    KeyCode::Esc => self.filter.clear(),
                    KeyCode::Backspace => {
                        self.filter.pop();
                        self.mode = Mode::Filter;
                    }
                    KeyCode::Char(c) => {
                        self.filter.push(c);
                        self.mode = Mode::Filter;
                    }
                    _ => self.mode = Mode::Filter,
                }
                self.keep_selection_visible()
            }
            Mode::Signal { target, mut typed } => match key.code {
                KeyCode::Enter if !typed.is_empty() => {
                    let request = Request::Signal { signal: typed.clone(), names: vec![target.clone()] };
                    self.mode = Mode::Confirm { what: format!("send SIG{} to {target}", typed), request };
                    Effect::None
                }
                KeyCode::Esc => Effect::None,
                KeyCode::Backspace => {
                    typed.pop();
                    self.mode = Mode::Signal { target, typed };
                    Effect::None
                }
                KeyCode::Char(c) if c.is_ascii_alphanumeric() && typed.len() < 12 => {
                    typed.push(c.to_ascii_uppercase());
                    self.mode = Mode::Signal { target, typed };
                    Effect::None
                }
                _ => {
                    self.mode = Mode::Signal { target, typed };
                    Effect::None
                }
            },
            Mode::Confirm { request, .. } => match key.code {
                KeyCode::Char('y' | 'Y') => Effect::Send(request),
                _ => {
                    self.message = "cancelled".into();
                    Effect::None
                }
            },
        }
    }

    fn normal_key(&mut self, code: KeyCode) -> Effect {
        let verb = |model: &mut Model, word: &str, request: fn(Vec<String>) -> Request| {
            if let Some(target) = model.target() {
                let request = request(vec![target.clone()]);
                model.mode = Mode::Confirm { what: format!("{word} {target}"), request };
            }
            Effect::None
        };
        match code {
            KeyCode::Char('q') | KeyCode::Esc => Effect::Quit,
            KeyCode::Up => self.step(-1),
            KeyCode::Down => self.step(1),
            KeyCode::PageUp => self.step(-10),
            KeyCode::PageDown => self.step(10),
            KeyCode::Home => self.step(isize::MIN / 2),
            KeyCode::End => self.step(isize::MAX / 2),
            KeyCode::Char('o') => {
                self.sort = self.sort.next();
                Effect::None
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Filter;
                Effect::None
            }
            KeyCode::Char('g') => {
                self.whole_group = !self.whole_group;
                Effect::None
            }
            KeyCode::Char('e') => {
                self.stderr = !self.stderr;
                Effect::None
            }
            KeyCode::Char('s') => verb(self, "start", |names| Request::Start { names }),
            KeyCode::Char('x') => verb(self, "stop", |names| Request::Stop { names }),
            KeyCode::Char('r') => verb(self, "restart", |names| Request::Restart { names }),
            KeyCode::Char('k') => {
                if let Some(target) = self.target() {
                    self.mode = Mode::Signal { target, typed: String::new() };
                }
                Effect::None
            }
            _ => Effect::None,
        }
    }

    /// Moves the selection `by` rows.
    fn step(&mut self, by: isize) -> Effect {
        let rows = self.visible();
        if rows.is_empty() {
            return Effect::None;
        }
        let at = self.selected_index().unwrap_or(0);
        let to = at.saturating_add_signed(by).min(rows.len() - 1);
        let name = rows.get(to).map(|p| p.full_name.clone());
        if name == self.selected {
            return Effect::None;
        }
        self.selected = name;
        Effect::None
    }

    /// After the filter changed: select the first row shown when the selected one is hidden.
    fn keep_selection_visible(&mut self) -> Effect {
        if self.selected_index().is_some() {
            return Effect::None;
        }
        let first = self.visible().first().map(|p| p.full_name.clone());
        if first.is_none() || first == self.selected {
            return Effect::None;
        }
        self.selected = first;
        Effect::None
    }
}

/// The table's columns.
pub const COLUMNS: [&str; 9] = ["NAME", "STATE", "HEALTH", "PID", "UPTIME", "RST", "CPU%", "RSS", "GPU"];

/// Troubles first: the order of the `state` sort and of the header's counts.
fn state_rank(s: State) -> u8 {
    match s {
        State::Fatal => 0,
        State::Backoff => 1,
        State::Exited => 2,
        State::Starting => 3,
        State::Stopping => 4,
        State::Running => 5,
        State::Stopped => 6,
    }
}

/// `45s`, `3m05s`, `2h07m`, `3d04h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// `812K`, `12.4M`, `1.9G`: 1024-based, short enough for the RSS column.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n < 1024.0 * 1024.0 => format!("{:.0}K", n / 1024.0),
        n if n < 1024.0 * 1024.0 * 1024.0 => format!("{:.1}M", n / (1024.0 * 1024.0)),
        n => format!("{:.1}G", n / (1024.0 * 1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_chunks_become_lines_whatever_their_cut() {
        let mut model = Model::new();
        for chunk in ["one\ntw", "o\n", "", "three"] {
            model.add_log(chunk);
        }
        assert_eq!(model.log, ["one", "two", "three"]);
        model.add_log(&"x\n".repeat(LOG_LINES * 2));
        assert_eq!(model.log.len(), LOG_LINES, "bounded");
    }

    #[test]
    fn durations_and_sizes_fit_their_columns() {
        assert_eq!(
            [duration(45), duration(185), duration(7620), duration(273_600)],
            ["45s", "3m05s", "2h07m", "3d04h"]
        );
        assert_eq!([bytes(812 * 1024), bytes(13_002_342), bytes(2_040_109_465)], ["812K", "12.4M", "1.9G"]);
    }
}
