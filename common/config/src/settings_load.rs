//! Reading postern.toml: strictly, as every daemon and delivery does (any
//! error refuses the file, so a typo never silently changes where mail
//! goes), or salvaged, as `postern-admin check` lists every error and
//! `sendmail` keeps queueing mail through a typo (it needs only the queue
//! and the host name). Each error names its line: toml gives a value's
//! error its span, and the checks made after the parse find their key's
//! line themselves.

use std::path::Path;

use crate::settings::SETTINGS_FILE;
use crate::settings::system_hostname;
use crate::{ConfigError, LineError, Settings};

/// Salvaging gives up after this many bad lines.
const MAX_BAD_LINES: usize = 100;

impl Settings {
    /// Reads `DIR/postern.toml`. A missing or unreadable file is an error:
    /// running on defaults by accident would put mail in the wrong place.
    pub fn load(dir: &Path) -> Result<Settings, ConfigError> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::read(&path, e))?;
        Settings::parse(&path, &text)
    }

    /// `load`, but a bad line is left out rather than refusing the file:
    /// the settings without every bad line, and an error for each. Only a
    /// file that cannot be read fails.
    pub fn load_salvaged(dir: &Path) -> Result<(Settings, Vec<LineError>), ConfigError> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::read(&path, e))?;
        Ok(Settings::salvage(&path, &text))
    }

    /// `load_salvaged`, but refused (with that line's error) when a bad line
    /// is one of the `vital` keys — as written, quoted or misspelt — or
    /// salvage fell back to every default: what those keys decide must
    /// never be a default by accident.
    pub fn load_salvaged_except(
        dir: &Path,
        vital: &[&str],
    ) -> Result<(Settings, Vec<LineError>), ConfigError> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::read(&path, e))?;
        let (settings, errors) = Settings::salvage(&path, &text);
        match errors.iter().find(|e| is_about(&text, e, vital)) {
            Some(error) => Err(ConfigError::Settings(vec![error.clone()])),
            None => Ok((settings, errors)),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        match parse_once(path, text) {
            Ok(settings) => Ok(settings),
            Err(_) => {
                let (_, errors) = Settings::salvage(path, text);
                Err(ConfigError::Settings(errors))
            }
        }
    }

    /// Parses `text`, leaving out each line an error points at (blanked,
    /// so the others keep their numbers) until the rest loads; past
    /// `MAX_BAD_LINES`, or for an error no line can be found for, the
    /// defaults stand in, and a last error of line 0 says so.
    pub fn salvage(path: &Path, text: &str) -> (Settings, Vec<LineError>) {
        let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        let mut errors = Vec::new();
        loop {
            let current = lines.concat();
            let (error, last) = match parse_once(path, &current) {
                Ok(settings) => {
                    errors.sort_by_key(|e: &LineError| e.line);
                    return (settings, errors);
                }
                Err(error) => error,
            };
            let first = error.line;
            errors.push(error);
            let bad = first
                .checked_sub(1)
                .map_or(0..0, |i| i..last.min(lines.len()));
            if bad.is_empty()
                || lines[bad.clone()].iter().all(|l| l.trim().is_empty())
                || errors.len() >= MAX_BAD_LINES
            {
                errors.sort_by_key(|e: &LineError| e.line);
                // Said as an error of no line, so a reader that salvages
                // knows every setting is a default now.
                errors.push(LineError {
                    file: path.to_path_buf(),
                    line: 0,
                    message: "the rest cannot be read either: every setting is its default".into(),
                });
                let defaults = parse_once(path, "").expect("the defaults load");
                return (defaults, errors);
            }
            for line in &mut lines[bad] {
                // Its own line end only: a last line without one stays
                // without, so no error can point past the file.
                *line = if line.ends_with('\n') { "\n" } else { "" }.to_string();
            }
        }
    }
}

/// Whether `error` may be about one of `keys`: on a line of one of them
/// (quoted or not), suggesting one of them, or on no line at all.
fn is_about(text: &str, error: &LineError, keys: &[&str]) -> bool {
    let line = error
        .line
        .checked_sub(1)
        .and_then(|i| text.lines().nth(i))
        .unwrap_or("");
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches(['"', '\'']);
    error.line == 0
        || keys.contains(&key)
        || keys
            .iter()
            .any(|k| error.message.contains(&format!("did you mean `{k}`?")))
}

/// One strict parse, or its first error with its line (0 if none was
/// found) and the last line of what it is about (a value may span lines).
fn parse_once(path: &Path, text: &str) -> Result<Settings, (LineError, usize)> {
    let error = |line: usize, message: String| LineError {
        file: path.to_path_buf(),
        line,
        message,
    };
    // By bytes: a span may end inside a character.
    let line_at = |offset: usize| {
        let before = &text.as_bytes()[..offset.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let mut settings: Settings = toml::from_str(text).map_err(|e| {
        let (first, last) = e.span().map_or((0, 0), |span| {
            (
                line_at(span.start),
                line_at(span.end.max(span.start + 1) - 1),
            )
        });
        (error(first, readable(e.message().trim_end())), last)
    })?;
    if settings.hostname.is_empty() {
        settings.hostname = system_hostname();
    }
    settings.hostname = settings.hostname.to_lowercase();
    for name in settings.pop3d.instances.keys() {
        if let Err(message) = settings.pop3d.instance(name) {
            let table = format!("pop3d.instances.{name}");
            let header = line_of_table(text, &table);
            return Err((error(header, message), end_of_table(text, header)));
        }
    }
    if !settings.tls.is_configured() {
        let smtps = settings
            .smtpd
            .listen
            .iter()
            .find(|l| l.kind == postern_listen::SmtpPort::Smtps)
            .map(ToString::to_string);
        let pop3s = settings
            .pop3d
            .listen
            .iter()
            .find(|l| l.kind == postern_listen::Pop3Port::Pop3s)
            .map(ToString::to_string);
        let imaps = settings
            .imapd
            .listen
            .iter()
            .find(|l| l.kind == postern_listen::ImapPort::Imaps)
            .map(ToString::to_string);
        for (table, spec) in [("smtpd", smtps), ("pop3d", pop3s), ("imapd", imaps)] {
            if let Some(spec) = spec {
                let line = line_of_key(text, table, "listen");
                let message = format!(
                    "{spec:?} is an implicit-TLS listener, which needs [tls] certificate and key"
                );
                return Err((error(line, message), line));
            }
        }
    }
    Ok(settings)
}

/// The line of `key` in `[table]` (or of `table.key` at the top), 0 when
/// it is not there.
fn line_of_key(text: &str, table: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_string();
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if (current == table && name == key)
            || (current.is_empty() && name == format!("{table}.{key}"))
        {
            return i + 1;
        }
    }
    0
}

/// The line of the header `[table]`, 0 when it is not there.
fn line_of_table(text: &str, table: &str) -> usize {
    text.lines()
        .position(|line| line.trim() == format!("[{table}]"))
        .map_or(0, |i| i + 1)
}

/// serde's "unknown field `x`, expected one of `a`, `b`, ..." and
/// "unknown variant `x`, expected ..." as a person reads them: the key and
/// the one it was probably meant to be, or the word and the words allowed.
pub(crate) fn readable(message: &str) -> String {
    let unknown = |kind: &str| {
        let rest = message.strip_prefix(&format!("unknown {kind} `"))?;
        let (word, expected) = rest.split_once('`')?;
        let words: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        Some((word, words))
    };
    if let Some((key, keys)) = unknown("field") {
        let closest = keys
            .iter()
            .map(|candidate| (edit_distance(key, candidate), candidate))
            .filter(|&(distance, _)| distance <= 2)
            .min();
        return match closest {
            Some((_, candidate)) => format!("unknown key `{key}` (did you mean `{candidate}`?)"),
            None => format!("unknown key `{key}`"),
        };
    }
    if let Some((word, words)) = unknown("variant")
        && let Some((last, rest)) = words.split_last()
    {
        let listed = match rest {
            [] => last.to_string(),
            _ => format!("{} or {last}", rest.join(", ")),
        };
        return format!("{word:?} is not one of {listed}");
    }
    message.to_string()
}

/// Levenshtein distance, for the handful of short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The last line of the table whose header is on line `header`: the line
/// before the next header, or the last line.
fn end_of_table(text: &str, header: usize) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    (header..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len())
}
