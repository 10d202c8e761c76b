//! `--config FILE`: a TOML file whose keys are the long flag names, as a service manager's
//! unit would rather say them than repeat a command line. Flags given on the command line
//! win: a key whose flag is there is left out.
//!
//! ```toml
//! id = 1
//! tracker = "192.168.1.10:12345"
//! send = ["weights.bin", "config.json"]   # repeatable flags take a list
//! exit-when-done = false                   # a switch: true gives the flag
//! ```

use super::{UsageError, did_you_mean, option_names};
use getopts::Options;
use std::io::Read;

/// Largest configuration file read.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;

/// Adds `--config` to `opts`, and returns `args` with the flags of the file it names (if
/// any) put before them.
pub(super) fn with_config(opts: &mut Options, args: &[String]) -> Result<Vec<String>, UsageError> {
    opts.optopt(
        "",
        "config",
        "read flags from a TOML file whose keys are the long flag names (flags given here win)",
        "FILE",
    );
    let Some(path) = config_path(args)? else {
        return Ok(args.to_vec());
    };
    let fail = |what: String| UsageError(format!("--config {path}: {what}"));
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(CONFIG_BYTES_MAX + 1).read_to_string(&mut text))
        .map_err(|error| fail(error.to_string()))?;
    if text.len() as u64 > CONFIG_BYTES_MAX {
        return Err(fail(format!("larger than {CONFIG_BYTES_MAX} bytes")));
    }
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(e.to_string()))?;
    let known = option_names(opts);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut merged = Vec::new();
    for (key, value) in table {
        if !known.contains(&key.as_str()) || key == "config" || key == "help" {
            let hint = did_you_mean(&key, &known)
                .map_or(String::new(), |k| format!(" (did you mean '{k}'?)"));
            return Err(fail(format!("unknown key '{key}'{hint}")));
        }
        if given(args, &key) {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => merged.push(format!("--{key}")),
                toml::Value::Boolean(false) => {}
                toml::Value::String(text) => merged.extend([format!("--{key}"), text]),
                toml::Value::Integer(n) => merged.extend([format!("--{key}"), n.to_string()]),
                toml::Value::Float(x) => merged.extend([format!("--{key}"), x.to_string()]),
                other => {
                    return Err(fail(format!(
                        "'{key}' is a {}; a flag's value is a string, a number, true or a list",
                        other.type_str()
                    )));
                }
            }
        }
    }
    merged.extend_from_slice(args);
    Ok(merged)
}

/// The file `--config` names, if it is given.
fn config_path(args: &[String]) -> Result<Option<String>, UsageError> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let flag = word.trim_start_matches('-');
        if word.starts_with('-') && flag == "config" {
            return match words.next() {
                Some(path) => Ok(Some(path.clone())),
                None => Err(UsageError("--config needs a FILE".into())),
            };
        }
        if word.starts_with('-')
            && let Some(path) = flag.strip_prefix("config=")
        {
            return Ok(Some(path.to_string()));
        }
    }
    Ok(None)
}

/// Whether the command line gives flag `key` (`--key`, `-key`, `--key=...`).
fn given(args: &[String], key: &str) -> bool {
    args.iter().any(|word| {
        let flag = word.trim_start_matches('-');
        word.starts_with('-') && (flag == key || flag.starts_with(&format!("{key}=")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        let mut opts = Options::new();
        opts.long_only(true);
        opts.optopt("", "id", "id", "N");
        opts.optmulti("", "send", "send", "FILE");
        opts.optflag("", "exit-when-done", "exit");
        opts
    }

    fn config(text: &str) -> (std::path::PathBuf, String) {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("torrent-config-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let shown = path.display().to_string();
        (path, shown)
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_become_flags_and_the_command_line_wins() {
        let (path, shown) =
            config("id = 1\nsend = [\"a.bin\", \"b c.bin\"]\nexit-when-done = true\n");
        let args = strings(&["--config", &shown, "--id", "7"]);
        let merged = with_config(&mut opts(), &args).unwrap();
        assert_eq!(
            merged,
            strings(&[
                "--exit-when-done",
                "--send",
                "a.bin",
                "--send",
                "b c.bin",
                "--config",
                &shown,
                "--id",
                "7"
            ])
        );
        let merged = with_config(
            &mut opts(),
            &strings(&[&format!("-config={shown}"), "-send", "x"]),
        )
        .unwrap();
        assert!(!merged.contains(&"a.bin".to_string()), "{merged:?}");
        assert!(merged.contains(&"--id".to_string()));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_bad_file_is_a_usage_error_that_names_it() {
        for (text, expected) in [
            ("idd = 1", "unknown key 'idd' (did you mean 'id'?)"),
            ("id = ", "--config"),
            ("id = { a = 1 }", "is a table"),
            ("config = \"x\"", "unknown key 'config'"),
        ] {
            let (path, shown) = config(text);
            let error = with_config(&mut opts(), &strings(&["--config", &shown])).unwrap_err();
            assert!(error.0.contains(expected), "{text}: {}", error.0);
            assert!(
                error.0.starts_with(&format!("--config {shown}")),
                "{}",
                error.0
            );
            std::fs::remove_file(path).unwrap();
        }
        let error =
            with_config(&mut opts(), &strings(&["--config", "/nonexistent/x.toml"])).unwrap_err();
        assert!(error.0.contains("No such file"), "{}", error.0);
        assert!(with_config(&mut opts(), &strings(&["--config"])).is_err());
    }
}
