//! supd's own log, through `tracing`: text or JSON lines on stderr (`[supervisor] log_format`,
//! `log_level`), passed through the output writer so they never block the event loop.

use tracing_subscriber::filter::LevelFilter;

use crate::config::{LogFormat, LogLevel};
use crate::output::{LogWriter, Sink};

/// Installs the global subscriber. `sink` is `None` before the writer thread exists (config
/// errors, single-command mode), and lines then go straight to stderr.
pub fn init(format: LogFormat, level: LogLevel, sink: Option<Sink>) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let writer = move || sink.as_ref().map_or_else(LogWriter::direct, Sink::log_writer);
    let builder =
        tracing_subscriber::fmt().with_max_level(level).with_writer(writer).with_target(false).with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
