//! Config value types that validate while they deserialize, so a bad value's error carries the
//! value's span (and so file:line:column) for free.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The longest duration any key takes: one year. Beyond it is a config error, so every
/// deadline supd computes from a config value stays far from `Instant`'s limits.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The most any count key takes (`startretries`, `retries`, `success_threshold`,
/// `*_logfile_backups`): beyond it is a config error rather than a loop of billions.
pub const MAX_COUNT: u32 = 10_000;

/// A duration: a number means seconds (supervisord style), a string takes units
/// (`"500ms"`, `"10s"`, `"1m"`, `"1h 30m"`; humantime's syntax). At most [`MAX_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { healthy: false }).map(|s| match s {
            StartSecs::After(d) => ConfigDuration(d),
            StartSecs::Healthy => ConfigDuration(Duration::ZERO),
        })
    }
}

/// Reads a duration, and also the word `"healthy"` when `healthy` is set (for `startsecs`).
struct DurationVisitor {
    healthy: bool,
}

impl Visitor<'_> for DurationVisitor {
    type Value = StartSecs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a duration: seconds as a number, or a string like "500ms", "10s", "1m""#)?;
        if self.healthy { f.write_str(r#", or "healthy""#) } else { Ok(()) }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StartSecs, E> {
        let secs = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
        self.visit_u64(secs)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StartSecs, E> {
        bounded(Duration::from_secs(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StartSecs, E> {
        if v.is_finite() && v > MAX_DURATION.as_secs_f64() {
            return bounded(Duration::MAX);
        }
        Duration::try_from_secs_f64(v)
            .map_err(|_| E::custom("a duration must be a finite number of seconds, 0 or more"))
            .and_then(bounded)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StartSecs, E> {
        if self.healthy && v.trim() == "healthy" {
            return Ok(StartSecs::Healthy);
        }
        let also = if self.healthy { r#", or "healthy""# } else { "" };
        humantime::parse_duration(v.trim())
            .map_err(|e| {
                E::custom(format!(
                    r#"invalid duration {v:?} ({e}); write e.g. "500ms", "10s", "1m" or a number of seconds{also}"#
                ))
            })
            .and_then(bounded)
    }
}

/// `d`, unless it is longer than [`MAX_DURATION`].
fn bounded<E: de::Error>(d: Duration) -> Result<StartSecs, E> {
    if d > MAX_DURATION {
        return Err(E::custom(format!("duration is too long: at most one year ({} seconds)", MAX_DURATION.as_secs())));
    }
    Ok(StartSecs::After(d))
}

/// A count from 0 to `MAX` (for example `startretries`); more is a config error that says the
/// maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count<const MAX: u32>(pub u32);

impl<'de, const MAX: u32> Deserialize<'de> for Count<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        u32::try_from(v)
            .ok()
            .filter(|n| *n <= MAX)
            .map(Count)
            .ok_or_else(|| de::Error::custom(format!("{v} is out of range: expected a whole number from 0 to {MAX}")))
    }
}

/// supd: `startsecs`. A duration, or `"healthy"`: the start counts once the healthcheck passes
/// (a readiness gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartSecs {
    /// Up this long.
    After(Duration),
    /// Healthy.
    Healthy,
}

impl<'de> Deserialize<'de> for StartSecs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { healthy: true })
    }
}

/// A size in bytes: an integer, or a string with a unit as supervisord writes them (`"50MB"`,
/// `"1GB"`, `"512KB"`; units of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a size: bytes as a number, or a string like "50MB", "1GB", "512KB""#)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v).map(Bytes).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                let t = v.trim().to_ascii_uppercase();
                let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
                    Some(i) => t.split_at(i),
                    None => (t.as_str(), ""),
                };
                let mult: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "KB" | "K" => 1 << 10,
                    "MB" | "M" => 1 << 20,
                    "GB" | "G" => 1 << 30,
                    _ => {
                        return Err(E::custom(format!(
                            r#"invalid size {v:?}; write e.g. "50MB", "1GB" or a number of bytes"#
                        )));
                    }
                };
                num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).map(Bytes).ok_or_else(|| {
                    E::custom(format!(r#"invalid size {v:?}; write e.g. "50MB", "1GB" or a number of bytes"#))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A resource limit (`rlimit_*`, `minfds`): a number (`65536`), a size (`"64MB"`), or
/// `"unlimited"`, which is `u64::MAX` (the kernel's RLIM_INFINITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub u64);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A string that is not "unlimited" is read as a size, with its error.
        let v = toml::Value::deserialize(d)?;
        if v.as_str().is_some_and(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "unlimited" | "infinity")) {
            return Ok(Limit(u64::MAX));
        }
        Bytes::deserialize(v).map(|b| Limit(b.0)).map_err(de::Error::custom)
    }
}

/// A signal by name: `"TERM"`, `"SIGTERM"` or `"term"` (supervisord: stopsignal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub Signal);

impl SignalName {
    /// Parses a signal name with or without the `SIG` prefix, in any case.
    pub fn parse(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        full.parse().ok()
    }
}

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map(SignalName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown signal {name:?}; expected a name like TERM, INT, QUIT, HUP, KILL, USR1, USR2"
            ))
        })
    }
}

/// supervisord: autorestart. `true`, `false` or `"unexpected"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Autorestart {
    /// Restart whenever the program exits.
    Always,
    /// Never restart on its own.
    Never,
    /// Restart when the exit code is not in `exitcodes`, or the program died by a signal.
    #[default]
    Unexpected,
}

impl<'de> Deserialize<'de> for Autorestart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Autorestart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"true, false or "unexpected""#)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Autorestart, E> {
                Ok(if v { Autorestart::Always } else { Autorestart::Never })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Autorestart, E> {
                match v.to_ascii_lowercase().as_str() {
                    "unexpected" => Ok(Autorestart::Unexpected),
                    "true" => Ok(Autorestart::Always),
                    "false" => Ok(Autorestart::Never),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An octal mode or umask: a string of octal digits (`"022"`, as supervisord writes it) or a TOML integer
/// (`0o022`). At most `0o777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Octal(pub u32);

impl<'de> Deserialize<'de> for Octal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Octal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an octal mode like "022" or 0o022"#)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Octal, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .map(Octal)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Octal, E> {
                u32::from_str_radix(v.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .map(Octal)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command: a string split like a shell would (quotes and backslashes, no expansion, no
/// shell run), or an array of arguments. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub Vec<String>);

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a command: a string, or an array of strings")]
        enum Form {
            Line(String),
            Argv(Vec<String>),
        }
        let argv = match Form::deserialize(d)? {
            Form::Line(line) => shell_words::split(&line)
                .map_err(|e| de::Error::custom(format!("cannot split command {line:?}: {e}")))?,
            Form::Argv(argv) => argv,
        };
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(de::Error::custom("the command is empty"));
        }
        Ok(CommandLine(argv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T<V> {
        v: V,
    }

    fn parse<V: for<'de> Deserialize<'de>>(toml_value: &str) -> Result<V, String> {
        toml::from_str::<T<V>>(&format!("v = {toml_value}")).map(|t| t.v).map_err(|e| e.message().to_string())
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse::<ConfigDuration>("10"), Ok(ConfigDuration(Duration::from_secs(10))));
        assert_eq!(parse::<ConfigDuration>("0.5"), Ok(ConfigDuration(Duration::from_millis(500))));
        assert_eq!(parse::<ConfigDuration>("\"500ms\""), Ok(ConfigDuration(Duration::from_millis(500))));
        assert_eq!(parse::<ConfigDuration>("\"1m\""), Ok(ConfigDuration(Duration::from_secs(60))));
        assert!(parse::<ConfigDuration>("-1").is_err());
        assert!(parse::<ConfigDuration>("\"soon\"").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn durations_and_counts_have_maxima() {
        assert_eq!(parse::<ConfigDuration>("31536000"), Ok(ConfigDuration(MAX_DURATION)));
        assert!(parse::<ConfigDuration>("9223372036854775807").unwrap_err().contains("at most one year"));
        assert!(parse::<ConfigDuration>("31536000.5").unwrap_err().contains("at most one year"));
        assert!(parse::<ConfigDuration>("\"400days\"").unwrap_err().contains("at most one year"));
        assert!(parse::<StartSecs>("1e300").unwrap_err().contains("at most one year"));
        assert_eq!(parse::<Count<10>>("10"), Ok(Count(10)));
        assert!(parse::<Count<10>>("11").unwrap_err().contains("from 0 to 10"));
        assert!(parse::<Count<10>>("-1").unwrap_err().contains("from 0 to 10"));
        assert!(parse::<Count<MAX_COUNT>>("4294967296").unwrap_err().contains("from 0 to 10000"));
    }

    #[test]
    fn startsecs_takes_a_duration_or_healthy() {
        assert_eq!(parse::<StartSecs>("2"), Ok(StartSecs::After(Duration::from_secs(2))));
        assert_eq!(parse::<StartSecs>("\"500ms\""), Ok(StartSecs::After(Duration::from_millis(500))));
        assert_eq!(parse::<StartSecs>("\"healthy\""), Ok(StartSecs::Healthy));
        assert!(parse::<StartSecs>("\"ready\"").unwrap_err().contains("or \"healthy\""));
    }

    #[test]
    fn sizes_take_supervisord_units() {
        assert_eq!(parse::<Bytes>("1024"), Ok(Bytes(1024)));
        assert_eq!(parse::<Bytes>("\"50MB\""), Ok(Bytes(50 << 20)));
        assert_eq!(parse::<Bytes>("\"1gb\""), Ok(Bytes(1 << 30)));
        assert_eq!(parse::<Bytes>("\"0\""), Ok(Bytes(0)));
        assert!(parse::<Bytes>("\"5 parsecs\"").unwrap_err().contains("invalid size"));
    }

    #[test]
    fn signals_by_any_spelling() {
        assert_eq!(parse::<SignalName>("\"TERM\""), Ok(SignalName(Signal::SIGTERM)));
        assert_eq!(parse::<SignalName>("\"sigint\""), Ok(SignalName(Signal::SIGINT)));
        assert!(parse::<SignalName>("\"TERMINATE\"").unwrap_err().contains("unknown signal"));
    }

    #[test]
    fn autorestart_forms() {
        assert_eq!(parse::<Autorestart>("true"), Ok(Autorestart::Always));
        assert_eq!(parse::<Autorestart>("false"), Ok(Autorestart::Never));
        assert_eq!(parse::<Autorestart>("\"unexpected\""), Ok(Autorestart::Unexpected));
        assert!(parse::<Autorestart>("\"sometimes\"").is_err());
    }

    #[test]
    fn umask_octal() {
        assert_eq!(parse::<Octal>("\"022\""), Ok(Octal(0o22)));
        assert_eq!(parse::<Octal>("0o027"), Ok(Octal(0o27)));
        assert!(parse::<Octal>("\"999\"").is_err());
    }

    #[test]
    fn commands_split_like_a_shell_without_one() {
        assert_eq!(
            parse::<CommandLine>(r#""python3 -c 'print(1)' a\\ b""#),
            Ok(CommandLine(vec!["python3".into(), "-c".into(), "print(1)".into(), "a b".into()]))
        );
        assert_eq!(parse::<CommandLine>(r#"["sh", "-c", "x"]"#).map(|c| c.0.len()), Ok(3));
        assert!(parse::<CommandLine>(r#""""#).is_err());
        assert!(parse::<CommandLine>(r#""echo 'open""#).unwrap_err().contains("cannot split"));
    }
}
