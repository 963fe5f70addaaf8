//! What one direction of the in-memory link does to frames, and its textual form
//! (the grammar is documented on [`Impairment`]).

use std::fmt;
use std::str::FromStr;

use smoltcp::time::Duration;

/// What one direction of an in-memory link does to the frames crossing it.
///
/// Applied by the sending end, per frame, in this order (see [`crate::memory`] for the timing
/// model): `loss` → bandwidth queue (`rate_bps`, tail drop beyond the link's queue limit) →
/// `duplicate` → per copy: `corrupt`, `delay` + `jitter`, `reorder`.
///
/// # Grammar (`--impair SPEC`)
///
/// ```text
/// spec     = "none" | "" | item { "," item }
/// item     = key "=" value                  (spaces around items, keys and values are ignored)
/// key      = "loss" | "dup" | "duplicate" | "reorder" | "reorder_delay" | "corrupt"
///          | "delay" | "jitter" | "rate" | "seed"
/// prob     = number "%" | number            (a percentage, or a fraction in 0..=1)
/// duration = number ("us" | "ms" | "s") | "0"
/// rate     = number ("bit" | "kbit" | "mbit" | "gbit") | "none"   (bits per second, SI: k = 1000)
/// seed     = decimal u64 | "0x" hex u64
/// ```
///
/// `loss`, `dup`, `reorder` and `corrupt` take a `prob`; `delay`, `jitter` and `reorder_delay` a
/// `duration`; `rate` a `rate`; `seed` a `seed`. A key given twice keeps the last value.
///
/// Example: `loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=10ms,jitter=2ms,rate=100mbit,seed=7`.
///
/// Its `Display` writes this grammar back (only the fields that differ from
/// [`Impairment::none`]), so a spec round-trips.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice (each copy is impaired independently).
    pub duplicate: f64,
    /// Probability that a copy is held back by `reorder_delay`, so that the frames sent within
    /// that window overtake it. (With probability 1 every frame is held back and none is
    /// reordered.)
    pub reorder: f64,
    /// How long a reordered copy is held back (default 1 ms).
    pub reorder_delay: Duration,
    /// Probability that a copy has one bit flipped, at a random bit of a random byte.
    pub corrupt: f64,
    /// Fixed propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly in `0..=jitter` per copy (jitter alone may reorder frames).
    pub jitter: Duration,
    /// Bandwidth cap in bits per second: each frame takes `len * 8 / rate` to serialize and
    /// frames queue behind each other. `None`: infinitely fast.
    pub rate_bps: Option<u64>,
    /// Seed of this direction's PRNG; `None`: use [`crate::LinkConfig::seed`].
    pub seed: Option<u64>,
}

impl Impairment {
    /// A perfect wire: nothing lost, nothing late.
    pub fn none() -> Self {
        Impairment {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            seed: None,
        }
    }

    /// Whether this is [`Impairment::none`] (ignoring `seed` and `reorder_delay`, which change
    /// nothing on their own).
    pub fn is_none(&self) -> bool {
        let none = Impairment::none();
        Impairment {
            seed: None,
            reorder_delay: none.reorder_delay,
            ..self.clone()
        } == none
    }
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment::none()
    }
}

/// Why an impairment spec did not parse. Messages name the offending item and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseImpairmentError {
    /// An item without `=`.
    #[error("impairment item `{item}` has no value: write it as `key=value`, e.g. `loss=5%`")]
    MissingValue {
        /// The item as written.
        item: String,
    },
    /// A key that is not in the grammar.
    #[error(
        "unknown impairment key `{key}`: expected one of loss, dup, reorder, reorder_delay, \
         corrupt, delay, jitter, rate, seed"
    )]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A probability that is not a percentage or a fraction in 0..=1.
    #[error(
        "bad probability `{value}` for `{key}`: write a percentage like `5%` or a fraction in \
         0..=1 like `0.05`"
    )]
    BadProbability {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A duration without a valid number or unit.
    #[error(
        "bad duration `{value}` for `{key}`: write a non-negative number with a unit `us`, `ms` \
         or `s`, like `10ms`"
    )]
    BadDuration {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A rate without a valid number or unit.
    #[error(
        "bad rate `{value}`: write a positive number of bits per second with a unit `bit`, \
         `kbit`, `mbit` or `gbit` (SI, k = 1000), like `100mbit`, or `none`"
    )]
    BadRate {
        /// The value as written.
        value: String,
    },
    /// A seed that is not a u64.
    #[error("bad seed `{value}`: write an unsigned 64-bit integer, decimal or 0x-prefixed hex")]
    BadSeed {
        /// The value as written.
        value: String,
    },
}

impl FromStr for Impairment {
    type Err = ParseImpairmentError;

    /// Parses the grammar documented on [`Impairment`].
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut imp = Impairment::none();
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("none") {
            return Ok(imp);
        }
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ParseImpairmentError::MissingValue { item: item.into() });
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "loss" => imp.loss = parse_probability(&key, value)?,
                "dup" | "duplicate" => imp.duplicate = parse_probability(&key, value)?,
                "reorder" => imp.reorder = parse_probability(&key, value)?,
                "corrupt" => imp.corrupt = parse_probability(&key, value)?,
                "reorder_delay" => imp.reorder_delay = parse_duration(&key, value)?,
                "delay" => imp.delay = parse_duration(&key, value)?,
                "jitter" => imp.jitter = parse_duration(&key, value)?,
                "rate" => imp.rate_bps = parse_rate(value)?,
                "seed" => imp.seed = Some(parse_seed(value)?),
                _ => return Err(ParseImpairmentError::UnknownKey { key }),
            }
        }
        Ok(imp)
    }
}

fn parse_probability(key: &str, value: &str) -> Result<f64, ParseImpairmentError> {
    let bad = || ParseImpairmentError::BadProbability {
        key: key.into(),
        value: value.into(),
    };
    let p = match value.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => value.parse::<f64>().map_err(|_| bad())?,
    };
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(bad())
    }
}

/// Splits `"10ms"` into `(10.0, "ms")`.
fn split_number(value: &str) -> Option<(f64, String)> {
    let at = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let number = value[..at].trim().parse::<f64>().ok()?;
    (number.is_finite() && number >= 0.0).then(|| (number, value[at..].to_ascii_lowercase()))
}

fn parse_duration(key: &str, value: &str) -> Result<Duration, ParseImpairmentError> {
    let bad = || ParseImpairmentError::BadDuration {
        key: key.into(),
        value: value.into(),
    };
    let (number, unit) = split_number(value).ok_or_else(bad)?;
    let micros_per_unit = match unit.as_str() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "" if number == 0.0 => 0.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_micros(
        (number * micros_per_unit).round() as u64
    ))
}

fn parse_rate(value: &str) -> Result<Option<u64>, ParseImpairmentError> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || ParseImpairmentError::BadRate {
        value: value.into(),
    };
    let (number, unit) = split_number(value).ok_or_else(bad)?;
    let bits_per_unit = match unit.as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(bad()),
    };
    let bps = (number * bits_per_unit).round();
    if bps >= 1.0 && bps < u64::MAX as f64 {
        Ok(Some(bps as u64))
    } else {
        Err(bad())
    }
}

fn parse_seed(value: &str) -> Result<u64, ParseImpairmentError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.map_err(|_| ParseImpairmentError::BadSeed {
        value: value.into(),
    })
}

struct Probability(f64);

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = format!("{}", self.0 * 100.0);
        // Percent when it reads back exactly, else the exact fraction.
        if pct.parse::<f64>().map(|p| p / 100.0) == Ok(self.0) {
            write!(f, "{pct}%")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "0"),
            us if us % 1_000_000 == 0 => write!(f, "{}s", us / 1_000_000),
            us if us % 1_000 == 0 => write!(f, "{}ms", us / 1_000),
            us => write!(f, "{us}us"),
        }
    }
}

impl fmt::Display for Impairment {
    /// Writes the grammar documented on [`Impairment`] back; `none` for a perfect wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = Impairment::none();
        let mut items: Vec<String> = Vec::new();
        if self.loss != 0.0 {
            items.push(format!("loss={}", Probability(self.loss)));
        }
        if self.duplicate != 0.0 {
            items.push(format!("dup={}", Probability(self.duplicate)));
        }
        if self.reorder != 0.0 {
            items.push(format!("reorder={}", Probability(self.reorder)));
        }
        if self.reorder_delay != none.reorder_delay {
            let us = Micros(self.reorder_delay.total_micros());
            items.push(format!("reorder_delay={us}"));
        }
        if self.corrupt != 0.0 {
            items.push(format!("corrupt={}", Probability(self.corrupt)));
        }
        if self.delay != Duration::ZERO {
            items.push(format!("delay={}", Micros(self.delay.total_micros())));
        }
        if self.jitter != Duration::ZERO {
            items.push(format!("jitter={}", Micros(self.jitter.total_micros())));
        }
        if let Some(bps) = self.rate_bps {
            let rate = match bps {
                b if b % 1_000_000_000 == 0 => format!("{}gbit", b / 1_000_000_000),
                b if b % 1_000_000 == 0 => format!("{}mbit", b / 1_000_000),
                b if b % 1_000 == 0 => format!("{}kbit", b / 1_000),
                b => format!("{b}bit"),
            };
            items.push(format!("rate={rate}"));
        }
        if let Some(seed) = self.seed {
            items.push(format!("seed={seed}"));
        }
        if items.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", items.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_example() {
        let imp: Impairment =
            "loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=10ms,jitter=2ms,rate=100mbit,seed=7"
                .parse()
                .unwrap();
        assert_eq!(imp.loss, 0.05);
        assert_eq!(imp.duplicate, 0.01);
        assert_eq!(imp.reorder, 0.02);
        assert_eq!(imp.corrupt, 0.005);
        assert_eq!(imp.delay, Duration::from_millis(10));
        assert_eq!(imp.jitter, Duration::from_millis(2));
        assert_eq!(imp.rate_bps, Some(100_000_000));
        assert_eq!(imp.seed, Some(7));
        assert_eq!(imp.reorder_delay, Duration::from_millis(1));
    }

    #[test]
    fn accepts_fractions_units_spaces_and_none() {
        let imp: Impairment = " loss = 0.25 , duplicate=1 , delay=1.5ms, jitter=250us, \
                                reorder_delay=2s, rate=1.5kbit, seed=0x10, "
            .parse()
            .unwrap();
        assert_eq!(imp.loss, 0.25);
        assert_eq!(imp.duplicate, 1.0);
        assert_eq!(imp.delay, Duration::from_micros(1500));
        assert_eq!(imp.jitter, Duration::from_micros(250));
        assert_eq!(imp.reorder_delay, Duration::from_secs(2));
        assert_eq!(imp.rate_bps, Some(1500));
        assert_eq!(imp.seed, Some(16));
        assert_eq!("none".parse::<Impairment>().unwrap(), Impairment::none());
        assert_eq!("".parse::<Impairment>().unwrap(), Impairment::none());
        assert!("delay=0,rate=none".parse::<Impairment>().unwrap().is_none());
    }

    #[test]
    fn rejects_bad_specs_with_a_named_reason() {
        use ParseImpairmentError::*;
        let err = |s: &str| s.parse::<Impairment>().unwrap_err();
        assert!(matches!(err("loss"), MissingValue { .. }));
        assert!(matches!(err("lose=5%"), UnknownKey { key } if key == "lose"));
        assert!(matches!(err("loss=5"), BadProbability { .. }));
        assert!(matches!(err("loss=-1%"), BadProbability { .. }));
        assert!(matches!(err("dup=abc"), BadProbability { .. }));
        assert!(matches!(err("delay=10"), BadDuration { .. }));
        assert!(matches!(err("delay=10min"), BadDuration { .. }));
        assert!(matches!(err("jitter=-2ms"), BadDuration { .. }));
        assert!(matches!(err("rate=100mbps"), BadRate { .. }));
        assert!(matches!(err("rate=0mbit"), BadRate { .. }));
        assert!(matches!(err("seed=-1"), BadSeed { .. }));
        let msg = err("lose=5%").to_string();
        assert!(msg.contains("expected one of loss"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "none",
            "loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=10ms,jitter=2ms,rate=100mbit,seed=7",
            "loss=33.3%,reorder_delay=250us,delay=1s,rate=1500bit",
            "loss=0.123456789",
        ] {
            let imp: Impairment = spec.parse().unwrap();
            let shown = imp.to_string();
            assert_eq!(
                shown.parse::<Impairment>().unwrap(),
                imp,
                "{spec} -> {shown}"
            );
        }
        assert_eq!(
            "delay=10ms,loss=5%"
                .parse::<Impairment>()
                .unwrap()
                .to_string(),
            "loss=5%,delay=10ms"
        );
    }
}
