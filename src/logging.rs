//! The log file: one per process (`LOGDIR/_tracker.log`, `LOGDIR/node<N>.log`), as in the
//! seed. A minimal `log` backend: one line per record, UTC time to the millisecond, level,
//! message. Lines are written whole, so a crash never leaves half a line. A log that would
//! grow past its bound ([`LOG_BYTES_MAX`] unless `--log-size` says otherwise) is moved to
//! `NAME.1`, replacing the one before, so a process never keeps more than twice the bound.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size at which a log file is moved to `NAME.1` (replacing the one before) and a new one
/// begun, by default (`--log-size`): a process keeps at most twice this on disk.
pub const LOG_BYTES_MAX: u64 = 64 << 20;
/// The smallest `--log-size` accepted: a few dozen lines.
pub const LOG_BYTES_MIN: u64 = 4 << 10;

struct FileLogger {
    file: Mutex<LogFile>,
    level: log::LevelFilter,
}

/// The open log, its path and how many bytes it holds.
struct LogFile {
    file: File,
    path: PathBuf,
    bytes: u64,
    bytes_max: u64,
}

impl LogFile {
    fn open(path: &Path, bytes_max: u64) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let bytes = file.metadata()?.len();
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            bytes,
            bytes_max,
        })
    }

    fn write_line(&mut self, line: &[u8]) {
        if self.bytes > 0 && self.bytes + line.len() as u64 > self.bytes_max {
            self.rotate();
        }
        // A log line that cannot be written is lost; the process goes on.
        if self.file.write_all(line).is_ok() {
            self.bytes += line.len() as u64;
        }
    }

    /// `NAME` becomes `NAME.1` (the one before is replaced), and a new `NAME` is begun.
    /// When that fails, the log is emptied instead: its size stays bounded either way.
    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let reopened = fs::rename(&self.path, &old).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
        });
        match reopened {
            Ok(file) => self.file = file,
            Err(_) => {
                let _ = self.file.set_len(0);
            }
        }
        self.bytes = 0;
    }
}

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.args()
        );
        if let Ok(mut file) = self.file.lock() {
            file.write_line(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut file) = self.file.lock() {
            let _ = file.file.flush();
        }
    }
}

/// Sends the `log` macros of this process to `dir/file_name` (appending), at `level`; the
/// file is moved to `file_name.1` whenever it would grow past `bytes_max`.
pub fn init(
    dir: &Path,
    file_name: &str,
    level: log::LevelFilter,
    bytes_max: u64,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let file = LogFile::open(&dir.join(file_name), bytes_max)?;
    let logger = FileLogger {
        file: Mutex::new(file),
        level,
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}

/// `2026-11-25T11:41:10.123Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_log_rotates_at_its_bound_keeping_one_old_file() {
        let dir = std::env::temp_dir().join(format!("torrent-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.log");
        let mut log = LogFile::open(&path, 100).unwrap();
        let line = [b'x'; 39];
        for _ in 0..10 {
            log.write_line(&line);
        }
        let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(len(&path) <= 100, "{}", len(&path));
        assert_eq!(len(&dir.join("n.log.1")), 78);
        assert!(!dir.join("n.log.2").exists());
        // A line longer than the bound is still written whole, alone.
        log.write_line(&[b'y'; 150]);
        assert_eq!(len(&path), 150);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_606_870_123);
        assert_eq!(utc_timestamp(t), "2026-11-25T11:41:10.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
