//! How quantities are shown to the user: in binary units, as the flags take them, so that a
//! node run with `--max-upload-rate 8M` shows `8.0 MiB/s`, not `8.4 MB/s`. (The benchmark
//! scripts report MB/s, 10^6 bytes a second, as benchmarks do; they parse no rate of ours.)

/// A rate in bytes a second: `512 B/s`, `97.7 KiB/s`, `8.0 MiB/s`, `1.1 GiB/s`.
pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", amount(bytes_per_second))
}

/// A number of bytes: `512 B`, `97.7 KiB`, `8.0 MiB`, `1.1 GiB`.
pub fn bytes(count: u64) -> String {
    amount(count as f64)
}

fn amount(value: f64) -> String {
    const UNITS: [(f64, &str); 3] = [
        ((1u64 << 30) as f64, "GiB"),
        ((1u64 << 20) as f64, "MiB"),
        ((1u64 << 10) as f64, "KiB"),
    ];
    for (size, unit) in UNITS {
        if value >= size {
            return format!("{:.1} {unit}", value / size);
        }
    }
    format!("{:.0} B", value.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_in_the_units_the_flags_take() {
        assert_eq!(rate(8.0 * 1024.0 * 1024.0), "8.0 MiB/s");
        assert_eq!(rate(100_000.0), "97.7 KiB/s");
        assert_eq!(rate(1.2e9), "1.1 GiB/s");
        assert_eq!(rate(512.0), "512 B/s");
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(1023), "1023 B");
    }
}
