//! `supctl top`: a live view of every program (state, health, pid, uptime, restarts, CPU,
//! memory, GPUs) with the selected one's output, and keys to start, stop, restart and signal.
//!
//! Fed by threads, each on its own connection to supd, all into one channel the screen loop
//! reads: the event feed (`supctl events`), after each change a status without figures, one
//! status with figures (`status -v`) and the GPUs a second, the log follower of the selected
//! program, the keyboard, and each verb's result. supd itself does nothing for `top` beyond
//! answering these requests: close `top` and its work stops.

mod model;
mod view;

use std::io::IsTerminal;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use supd::api::protocol::{Request, Response};

use crate::client;
use crate::render::{self, EXIT_FAILED, EXIT_OK};
use model::{Effect, Model};

/// How often programs' CPU and memory (and the GPUs) are asked for.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long a status request may take before `top` says supd does not answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Lines of the selected program's output shown when it is selected.
const LOG_BACKLOG: usize = 50;

/// What the threads tell the screen loop.
enum Msg {
    Input(Event),
    /// Programs; `full` when with CPU and memory.
    Status {
        response: Response,
        full: bool,
    },
    Gpu(supd::gpu::GpuView),
    Change(String),
    /// Output of the log follower of this generation.
    Log {
        generation: u64,
        data: String,
    },
    /// A verb's result, or a failure to reach supd.
    Said(String),
}

/// Runs `top` against the supd at `socket`; with `once` (or when stdout is not a terminal)
/// prints the table once as text. The exit code.
pub fn run(socket: &Path, once: bool) -> i32 {
    if once || !std::io::stdout().is_terminal() {
        return print_once(socket);
    }
    // At most this many messages wait for the screen; a thread with more waits for it.
    let (tx, rx) = sync_channel::<Msg>(256);
    let (poke, poked) = sync_channel::<()>(1);
    spawn(&tx, socket, move |tx, socket| sample(&tx, &socket));
    spawn(&tx, socket, move |tx, socket| follow_events(&tx, &socket, &poke));
    spawn(&tx, socket, move |tx, socket| refresh(&tx, &socket, &poked));
    spawn(&tx, socket, |tx, _| read_keys(&tx));
    let mut terminal = ratatui::init();
    let code = screen(&mut terminal, &rx, &tx, socket);
    ratatui::restore();
    code
}

/// Starts `work` on a thread with its own sender and the socket's path.
fn spawn(tx: &SyncSender<Msg>, socket: &Path, work: impl FnOnce(SyncSender<Msg>, PathBuf) + Send + 'static) {
    let (tx, socket) = (tx.clone(), socket.to_path_buf());
    std::thread::spawn(move || work(tx, socket));
}

/// `--once`: one status with figures, printed as the table. 0, or 4 when supd is unreachable.
fn print_once(socket: &Path) -> i32 {
    let mut model = Model::new();
    let status =
        client::call(socket, &Request::Status { names: Vec::new(), tree: false, verbose: true }, ANSWER_WITHIN);
    match status {
        Ok(Response::Status { programs, supd, .. }) => model.set_programs(programs, supd, true),
        Ok(other) => {
            eprintln!(
                "supctl: {}",
                render::render(&Request::Status { names: vec![], tree: false, verbose: true }, &other).0
            );
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("supctl: {e}");
            return e.code;
        }
    }
    if let Ok(Response::Gpu(view)) = client::call(socket, &Request::Gpu {}, ANSWER_WITHIN) {
        model.set_gpus(&view);
    }
    crate::print(&view::plain(&model));
    EXIT_OK
}

/// The screen loop: draw, wait for a message, apply it (and whatever else is waiting), draw.
fn screen(terminal: &mut ratatui::DefaultTerminal, rx: &Receiver<Msg>, tx: &SyncSender<Msg>, socket: &Path) -> i32 {
    let mut model = Model::new();
    let mut log = LogFollower::default();
    loop {
        if let Err(e) = terminal.draw(|frame| view::draw(frame, &model)) {
            ratatui::restore();
            eprintln!("supctl: cannot draw: {e}");
            return EXIT_FAILED;
        }
        let Ok(first) = rx.recv() else { return EXIT_OK };
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match apply(&mut model, msg, log.generation) {
                Effect::Quit => return EXIT_OK,
                Effect::Send(request) => act(tx, socket, request),
                Effect::None => {}
            }
        }
        log.keep_up(&mut model, tx, socket);
    }
}

/// Applies one message to the model.
fn apply(model: &mut Model, msg: Msg, generation: u64) -> Effect {
    match msg {
        Msg::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => return model.key(key),
        Msg::Input(_) => {}
        Msg::Status { response: Response::Status { programs, supd, .. }, full } => {
            model.set_programs(programs, supd, full);
        }
        Msg::Status { response, .. } => model.message = first_line(&render::render(&status(false), &response).0),
        Msg::Gpu(view) => model.set_gpus(&view),
        Msg::Change(text) | Msg::Said(text) => model.message = text,
        Msg::Log { generation: g, data } if g == generation => model.add_log(&data),
        Msg::Log { .. } => {}
    }
    Effect::None
}

/// The follower of the selected program's output: a connection of its own, shut down to
/// follow another.
#[derive(Default)]
struct LogFollower {
    /// Bumped for each new follower; output of older ones is dropped.
    generation: u64,
    /// What it follows: the program and whether stderr.
    following: Option<(String, bool)>,
    /// A clone of its connection, to shut it down.
    connection: Option<UnixStream>,
}

impl LogFollower {
    /// Follows the selected program's stream when that is not what it follows.
    fn keep_up(&mut self, model: &mut Model, tx: &SyncSender<Msg>, socket: &Path) {
        let wanted = model.selected.clone().map(|name| (name, model.stderr));
        if wanted == self.following {
            return;
        }
        if let Some(old) = self.connection.take() {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        model.log.clear();
        self.generation += 1;
        self.following = wanted.clone();
        let Some((name, stderr)) = wanted else { return };
        let Ok(connection) = client::connect(socket) else { return };
        self.connection = connection.try_clone().ok();
        let (tx, generation) = (tx.clone(), self.generation);
        let stream = Some(if stderr { "stderr" } else { "stdout" }.to_string());
        let request = Request::Tail { name, stream, lines: LOG_BACKLOG, bytes: None, follow: true };
        std::thread::spawn(move || {
            let _ = client::exchange(connection, &request, None, |response| match response {
                Response::Tail { data } => tx.send(Msg::Log { generation, data }).is_ok(),
                _ => false,
            });
        });
    }
}

/// Sends `request` on a thread of its own (start and stop wait for the programs) and reports
/// its result on the message line.
fn act(tx: &SyncSender<Msg>, socket: &Path, request: Request) {
    spawn(tx, socket, move |tx, socket| {
        let said = match client::call(&socket, &request, Duration::from_secs(300)) {
            Ok(response) => render::render(&request, &response).0.trim_end().replace('\n', "; "),
            Err(e) => e.message,
        };
        let _ = tx.send(Msg::Said(said));
    });
}

fn status(verbose: bool) -> Request {
    Request::Status { names: Vec::new(), tree: false, verbose }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// Once a second: every program with its figures, and the GPUs.
fn sample(tx: &SyncSender<Msg>, socket: &Path) {
    loop {
        let sent = match client::call(socket, &status(true), ANSWER_WITHIN) {
            Ok(response) => tx.send(Msg::Status { response, full: true }),
            Err(e) => tx.send(Msg::Said(e.message)),
        };
        if sent.is_err() {
            return;
        }
        if let Ok(Response::Gpu(view)) = client::call(socket, &Request::Gpu {}, ANSWER_WITHIN)
            && view.available
            && tx.send(Msg::Gpu(view)).is_err()
        {
            return;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Each change from supd's feed to the message line, and a poke to [`refresh`]; follows again
/// a second after the feed ends (supd dropped a slow follower, or restarted).
fn follow_events(tx: &SyncSender<Msg>, socket: &Path, poke: &SyncSender<()>) {
    let mut open = true;
    while open {
        let _ = client::stream(socket, &Request::Events {}, None, |response| {
            if matches!(response, Response::Change(_)) {
                let text = render::render(&Request::Events {}, &response).0;
                open = tx.send(Msg::Change(first_line(&text))).is_ok();
                // A poke already waiting covers this change too.
                if let Err(TrySendError::Disconnected(())) = poke.try_send(()) {
                    open = false;
                }
            }
            open
        });
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// After each poke, the states without figures (cheap for supd: no /proc walk), so a change
/// shows at once rather than at the next sample.
fn refresh(tx: &SyncSender<Msg>, socket: &Path, poked: &Receiver<()>) {
    while poked.recv().is_ok() {
        if let Ok(response) = client::call(socket, &status(false), ANSWER_WITHIN)
            && tx.send(Msg::Status { response, full: false }).is_err()
        {
            return;
        }
    }
}

/// The keyboard and resizes.
fn read_keys(tx: &SyncSender<Msg>) {
    while let Ok(ev) = event::read() {
        if tx.send(Msg::Input(ev)).is_err() {
            return;
        }
    }
}
