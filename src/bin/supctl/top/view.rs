//! How `supctl top` draws its [`Model`]: a header, the program table, the selected program's
//! log, a message line and the keys, fitted to the terminal (80x24 and up); and the same table
//! as plain text for `--once`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use supd::lifecycle::State;

use super::model::{COLUMNS, Mode, Model};

/// Each column's width; NAME takes what is left.
const WIDTHS: [Constraint; 9] = [
    Constraint::Min(12),
    Constraint::Length(8),
    Constraint::Length(14),
    Constraint::Length(7),
    Constraint::Length(6),
    Constraint::Length(3),
    Constraint::Length(5),
    Constraint::Length(6),
    Constraint::Length(3),
];

const KEYS: &str = "q:quit ↑↓ s:start x:stop r:restart k:signal g:group o:sort /:filter e:stderr";

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, model: &Model) {
    let [header, table, log, message, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(8),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [own, summary] = model.header();
    frame.render_widget(Paragraph::new(vec![Line::from(own), Line::from(summary)]), header);

    let rows: Vec<Row> =
        model.visible().iter().map(|p| Row::new(model.cells(p)).style(Style::default().fg(color(p.state)))).collect();
    let head = Row::new(COLUMNS).style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED));
    let mut state = TableState::default().with_selected(model.selected_index());
    let widget = Table::new(rows, WIDTHS)
        .header(head)
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    frame.render_stateful_widget(widget, table, &mut state);

    let stream = if model.stderr { "stderr" } else { "stdout" };
    let title = format!(" {} {stream} ", model.selected.as_deref().unwrap_or("-"));
    let shown = usize::from(log.height.saturating_sub(2));
    let complete = model.log.len().saturating_sub(usize::from(model.log.back().is_some_and(String::is_empty)));
    let lines: Vec<Line> =
        model.log.iter().take(complete).skip(complete.saturating_sub(shown)).map(|l| Line::raw(l.as_str())).collect();
    frame.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(title)), log);

    frame.render_widget(Paragraph::new(model.message.as_str()), message);
    let prompt = match &model.mode {
        Mode::Normal => KEYS.to_string(),
        Mode::Filter => format!("filter: {}_  (Enter keep, Esc clear)", model.filter),
        Mode::Signal { target, typed } => format!("signal for {target}: {typed}_  (HUP, USR1, TERM...; Enter, Esc)"),
        Mode::Confirm { what, .. } => format!("{what}? y/N"),
    };
    frame.render_widget(Paragraph::new(prompt).style(Style::default().add_modifier(Modifier::BOLD)), keys);
}

/// `--once`: the header and the table as plain text.
pub fn plain(model: &Model) -> String {
    let rows: Vec<[String; 9]> = model.visible().iter().map(|p| model.cells(p)).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out: String = model.header().iter().map(|l| format!("{l}\n")).collect();
    out.push_str(&line(&COLUMNS.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

fn color(state: State) -> Color {
    match state {
        State::Running => Color::Green,
        State::Starting | State::Backoff | State::Stopping => Color::Yellow,
        State::Exited | State::Fatal => Color::Red,
        State::Stopped => Color::DarkGray,
    }
}
