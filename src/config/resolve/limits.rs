//! `memory_max`, `cpu_max` and the other cgroup limits of one program, and `limits`: checked
//! and turned into [`CgroupLimits`].

use toml::Spanned;

use super::NamedTable;
use crate::config::error::ConfigError;
use crate::config::limits::{CPU_PERIOD_US, CgroupLimits, LimitsMode};
use crate::config::raw::RawProgram;

/// The limits of `found`. Errors: a weight out of 1..=10,000, a bad `cpu_max`, a
/// `pids_max` or `memory_max` of 0, an unknown `limits`.
pub(super) fn limits(found: &NamedTable<'_, RawProgram>) -> Result<(CgroupLimits, LimitsMode), ConfigError> {
    let raw = found.raw;
    let key = |k: &str| format!("{}.{}.{k}", found.kind, found.name);
    let bytes = |v: &Option<Spanned<crate::config::value::Bytes>>, k: &str, zero: bool| match v {
        Some(b) if b.get_ref().0 == 0 && !zero => {
            Err(found.error(b.span().start, &key(k), "must be more than 0 bytes (\"512MB\")"))
        }
        Some(b) => Ok(Some(b.get_ref().0)),
        None => Ok(None),
    };
    let weight = |v: &Option<Spanned<u32>>, k: &str| match v {
        Some(w) if !(1..=10_000).contains(w.get_ref()) => {
            Err(found.error(w.span().start, &key(k), "must be from 1 to 10000 (100 is the default share)"))
        }
        Some(w) => Ok(Some(*w.get_ref())),
        None => Ok(None),
    };
    let cpu_max_us = match &raw.cpu_max {
        Some(c) => Some(cpu_max(c.get_ref()).map_err(|m| found.error(c.span().start, &key("cpu_max"), m))?),
        None => None,
    };
    let pids_max = match &raw.pids_max {
        Some(p) if *p.get_ref() == 0 => {
            return Err(found.error(p.span().start, &key("pids_max"), "must be at least 1"));
        }
        Some(p) => Some(*p.get_ref()),
        None => None,
    };
    let limits = CgroupLimits {
        memory_max: bytes(&raw.memory_max, "memory_max", false)?,
        memory_high: bytes(&raw.memory_high, "memory_high", false)?,
        memory_swap_max: bytes(&raw.memory_swap_max, "memory_swap_max", true)?,
        cpu_max_us,
        cpu_weight: weight(&raw.cpu_weight, "cpu_weight")?,
        pids_max,
        io_weight: weight(&raw.io_weight, "io_weight")?,
    };
    let mode = match raw.limits.as_ref().map(|l| (l.get_ref().as_str(), l.span().start)) {
        None | Some(("required", _)) => LimitsMode::Required,
        Some(("best_effort", _)) => LimitsMode::BestEffort,
        Some((other, at)) => {
            return Err(found.error(
                at,
                &key("limits"),
                format!("expected \"required\" or \"best_effort\", not {other:?}"),
            ));
        }
    };
    Ok((limits, mode))
}

/// `cpu_max` as µs of CPU per 100 ms: `"50%"` (of one core), `"2 cores"`, `"1.5 cores"`, `"1 core"`.
fn cpu_max(text: &str) -> Result<u64, String> {
    let bad = || format!("expected a share of one core like \"50%\" or a count like \"2 cores\", not {text:?}");
    let t = text.trim();
    let cores: f64 = if let Some(percent) = t.strip_suffix('%') {
        percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0
    } else if let Some(n) = t.strip_suffix("cores").or_else(|| t.strip_suffix("core")) {
        n.trim().parse::<f64>().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    // The kernel takes a quota of at least 1 ms; 1,024 cores is beyond any machine.
    if !cores.is_finite() || !(0.01..=1024.0).contains(&cores) {
        return Err(format!("{text:?} is out of range: from 1% to 1024 cores"));
    }
    Ok((cores * CPU_PERIOD_US as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::cpu_max;

    #[test]
    fn cpu_max_reads_shares_and_cores() {
        assert_eq!(cpu_max("50%"), Ok(50_000));
        assert_eq!(cpu_max("2 cores"), Ok(200_000));
        assert_eq!(cpu_max(" 1.5 cores "), Ok(150_000));
        assert_eq!(cpu_max("1 core"), Ok(100_000));
        assert!(cpu_max("0%").unwrap_err().contains("out of range"));
        assert!(cpu_max("two").unwrap_err().contains("\"50%\""));
        assert!(cpu_max("NaN%").is_err());
    }
}
