//! Kubernetes resource quantities (`250m`, `1`, `0.5`, `123456789n`, `1e3`, `2Ki`) for CPU and
//! memory.
//!
//! The HPA controller works in milli-units from `Quantity.MilliValue()`, which rounds up;
//! [`parse_cpu_millis`] does the same with exact integer arithmetic so our ratio matches.

/// A parsed non-negative quantity: `mantissa * 2^binary_exp * 10^decimal_exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: u128,
    decimal_exp: i32,
    binary_exp: u32,
}

fn parse(text: &str) -> Result<Parsed, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty quantity".into());
    }
    let (unsigned, negative) = match s.as_bytes()[0] {
        b'-' => (&s[1..], true),
        b'+' => (&s[1..], false),
        _ => (s, false),
    };
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(format!("invalid quantity {text:?}"));
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(format!("quantity {text:?} has too many digits"));
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| format!("invalid quantity {text:?}"))?
    };
    let mut decimal_exp = -(frac_part.len() as i32);
    let mut binary_exp = 0;
    match suffix {
        "" => {}
        "n" => decimal_exp -= 9,
        "u" => decimal_exp -= 6,
        "m" => decimal_exp -= 3,
        "k" => decimal_exp += 3,
        "M" => decimal_exp += 6,
        "G" => decimal_exp += 9,
        "T" => decimal_exp += 12,
        "P" => decimal_exp += 15,
        "E" => decimal_exp += 18,
        "Ki" => binary_exp = 10,
        "Mi" => binary_exp = 20,
        "Gi" => binary_exp = 30,
        "Ti" => binary_exp = 40,
        "Pi" => binary_exp = 50,
        "Ei" => binary_exp = 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| format!("invalid quantity {text:?}: unknown suffix {other:?}"))?;
            let exp: i32 = exp
                .parse()
                .map_err(|_| format!("invalid quantity {text:?}: bad exponent"))?;
            if !(-40..=40).contains(&exp) {
                return Err(format!("quantity {text:?} is out of range"));
            }
            decimal_exp += exp;
        }
    }
    if negative && mantissa != 0 {
        return Err(format!("negative quantity {text:?}"));
    }
    Ok(Parsed {
        mantissa,
        decimal_exp,
        binary_exp,
    })
}

/// CPU quantity in milli-cores, rounded up like `Quantity.MilliValue()`.
pub fn parse_cpu_millis(text: &str) -> Result<i64, String> {
    let p = parse(text)?;
    let scaled = p
        .mantissa
        .checked_mul(1u128 << p.binary_exp)
        .ok_or_else(|| format!("quantity {text:?} is out of range"))?;
    let exp = p.decimal_exp + 3;
    let millis = if exp >= 0 {
        10u128
            .checked_pow(exp as u32)
            .and_then(|f| scaled.checked_mul(f))
            .ok_or_else(|| format!("quantity {text:?} is out of range"))?
    } else {
        let divisor = 10u128
            .checked_pow((-exp) as u32)
            .ok_or_else(|| format!("quantity {text:?} is out of range"))?;
        scaled.div_ceil(divisor)
    };
    i64::try_from(millis).map_err(|_| format!("quantity {text:?} is out of range"))
}

/// A quantity in whole units (memory in bytes), rounded up like `Quantity.Value()`.
pub fn parse_bytes(text: &str) -> Result<i64, String> {
    let p = parse(text)?;
    let scaled = p
        .mantissa
        .checked_mul(1u128 << p.binary_exp)
        .ok_or_else(|| format!("quantity {text:?} is out of range"))?;
    let whole = if p.decimal_exp >= 0 {
        10u128
            .checked_pow(p.decimal_exp as u32)
            .and_then(|f| scaled.checked_mul(f))
            .ok_or_else(|| format!("quantity {text:?} is out of range"))?
    } else {
        let divisor = 10u128
            .checked_pow((-p.decimal_exp) as u32)
            .ok_or_else(|| format!("quantity {text:?} is out of range"))?;
        scaled.div_ceil(divisor)
    };
    i64::try_from(whole).map_err(|_| format!("quantity {text:?} is out of range"))
}

/// CPU quantity in cores, as a float (for display series; may lose sub-nanocore precision).
pub fn parse_cpu_cores(text: &str) -> Result<f64, String> {
    let p = parse(text)?;
    Ok(p.mantissa as f64 * 2f64.powi(p.binary_exp as i32) * 10f64.powi(p.decimal_exp))
}

/// A quantity as a number at the controller's milli precision (`Quantity.MilliValue()` / 1000),
/// for metric values such as an external metric's `averageValue`.
pub fn parse_value(text: &str) -> Result<f64, String> {
    Ok(parse_cpu_millis(text)? as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_like_kubernetes() {
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert_eq!(parse_cpu_millis("1"), Ok(1000));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("1.5"), Ok(1500));
        assert_eq!(parse_cpu_millis("123456789n"), Ok(124));
        assert_eq!(parse_cpu_millis("1n"), Ok(1));
        assert_eq!(parse_cpu_millis("0"), Ok(0));
        assert_eq!(parse_cpu_millis("2500u"), Ok(3));
        assert_eq!(parse_cpu_millis("1e3"), Ok(1_000_000));
        assert_eq!(parse_cpu_millis("1k"), Ok(1_000_000));
        assert_eq!(parse_cpu_millis("1Ki"), Ok(1_024_000));
        assert_eq!(parse_cpu_millis(".5"), Ok(500));
    }

    #[test]
    fn bytes_of_memory_quantities() {
        assert_eq!(parse_bytes("256Mi"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("123456Ki"), Ok(123_456 * 1024));
        assert_eq!(parse_bytes("128974848"), Ok(128_974_848));
        assert_eq!(parse_bytes("129e6"), Ok(129_000_000));
        assert_eq!(parse_bytes("1M"), Ok(1_000_000));
        assert_eq!(parse_bytes("1500m"), Ok(2), "milli-bytes round up");
        assert!(parse_bytes("1Zi").is_err());
        assert!(parse_bytes("-1Mi").is_err());
    }

    #[test]
    fn cores_are_exact_enough() {
        assert_eq!(parse_cpu_cores("250m"), Ok(0.25));
        assert!((parse_cpu_cores("123456789n").expect("valid") - 0.123456789).abs() < 1e-12);
    }

    #[test]
    fn values_keep_milli_precision() {
        assert_eq!(parse_value("4200"), Ok(4200.0));
        assert_eq!(parse_value("1500m"), Ok(1.5));
        assert_eq!(parse_value("2k"), Ok(2000.0));
        assert!(parse_value("lots").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_number() {
        for bad in [
            "",
            "abc",
            "1x",
            "m",
            "1.2.3",
            "-1",
            "1e",
            "1e999",
            "99999999999999999999999999999999999",
        ] {
            assert!(parse_cpu_millis(bad).is_err(), "{bad:?} parsed");
        }
    }
}
