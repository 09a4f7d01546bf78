//! Golden log lines: the lines other programs parse (fail2ban's filters,
//! a log watcher) asserted as exactly as a protocol's replies.
//!
//! A golden file holds log lines in the order they must appear, with `*`
//! standing for any run of characters (a pid, a time, a queue id); lines
//! starting with `#` are comments. The log may hold other lines between
//! them. Order is kept within each program's lines (the text before the
//! first `[`, `postern-auth[123]: ...`): the programs of a suite write
//! their logs through pipes of their own, so two programs' lines may
//! reach the log in either order.

use std::collections::HashMap;

/// Checks that each golden line matches a line of `log`, in order among
/// the lines of its program.
pub fn log_lines(log: &str, golden: &str) -> Result<(), String> {
    let lines: Vec<&str> = log.lines().collect();
    // For each program, where its next golden line's search starts.
    let mut next: HashMap<&str, usize> = HashMap::new();
    for pattern in golden
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let program = program_of(pattern);
        let start = next.get(program).copied().unwrap_or(0);
        let found = (start..lines.len()).find(|&i| {
            (program.is_empty() || program_of(lines[i]) == program) && matches(pattern, lines[i])
        });
        match found {
            Some(i) => {
                next.insert(program, i + 1);
            }
            None => {
                return Err(format!(
                    "no log line, after the ones matched before it, is\n  {pattern}\n--- the log\n{log}"
                ));
            }
        }
    }
    Ok(())
}

/// The program a line is from; empty when a pattern leaves it open.
fn program_of(line: &str) -> &str {
    match line.split_once('[') {
        Some((program, _)) if !program.contains(['*', ' ']) => program,
        _ => "",
    }
}

/// Whether `line` is `pattern`, each `*` standing for any characters.
fn matches(pattern: &str, line: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_stand_for_any_run_of_characters() {
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*c", "ac"));
        assert!(matches("*", "anything"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact and more"));
        assert!(!matches("a*c", "abd"));
        assert!(matches("p[*]: x=* y=*", "p[12]: x=1 y=2"));
        assert!(!matches("p[*]: x=* y=2", "p[12]: x=1 y=3"));
    }

    #[test]
    fn golden_lines_appear_in_order_with_others_between() {
        let log = "p[1]: start\np[1]: noise\np[1]: login failed: user=<a>\np[2]: end\n";
        let golden = "# what fail2ban reads\np[*]: login failed: user=<a>\np[*]: end\n";
        assert_eq!(log_lines(log, golden), Ok(()));
        let wrong_order = "p[*]: end\np[*]: login failed: user=<a>\n";
        assert!(log_lines(log, wrong_order).is_err());
        // Another program's lines may come before or after.
        let interleaved = "a[1]: one\nb[2]: two\na[1]: three\n";
        assert_eq!(
            log_lines(interleaved, "b[*]: two\na[*]: one\na[*]: three\n"),
            Ok(())
        );
        assert!(log_lines(interleaved, "a[*]: three\na[*]: one\n").is_err());
        let missing = "p[*]: login failed: user=<b>\n";
        let failure = log_lines(log, missing).unwrap_err();
        assert!(failure.contains("user=<b>"), "{failure}");
    }
}
