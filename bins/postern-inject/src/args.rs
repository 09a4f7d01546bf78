//! The sendmail command line, as mutt (`-oem -oi -f ADDR -N DSN -R RET
//! -B8BITMIME -- RCPTS`), alpine (`-bs`), cron (`-FCronDaemon -i
//! -B8BITMIME -oem USER`) and scripts (`-t`) write it. Hand-parsed: sendmail
//! bundles option and argument (`-FCronDaemon`, `-oi`) in ways no argument
//! crate models, and an option's argument must never turn into a recipient.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub mode: Mode,
    pub recipients: Vec<String>,
    /// `-f` / `-r`: the envelope sender.
    pub sender: Option<String>,
    /// `-F`: the full name for a `From:` Postern adds.
    pub full_name: Option<String>,
    /// `-t`: recipients from To, Cc and Bcc.
    pub from_headers: bool,
    /// `-i` / `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-N`, `-R`, `-V`: DSN requests, kept for the bounce issue.
    pub notify: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// `--config DIR`.
    pub config: Option<String>,
    /// What was accepted but has no effect, for warnings.
    pub ignored: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `-bm`, the default: deliver the message on stdin.
    #[default]
    Deliver,
    /// `-bp`, or invoked as `mailq`: list the queue.
    ListQueue,
    /// `-bs`: SMTP on stdin and stdout.
    Smtp,
    Help,
    Version,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses the arguments after the program name. `name` is how we were
/// called: as `mailq` the default mode is to list the queue.
pub fn parse(name: &str, args: &[String]) -> Result<Invocation, UsageError> {
    let mut invocation = Invocation::default();
    if name.ends_with("mailq") {
        invocation.mode = Mode::ListQueue;
    }
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            invocation.recipients.extend(args.by_ref().cloned());
            break;
        }
        if arg == "--help" {
            invocation.mode = Mode::Help;
            continue;
        }
        if arg == "--version" {
            invocation.mode = Mode::Version;
            continue;
        }
        if let Some(dir) = arg.strip_prefix("--config=") {
            invocation.config = Some(dir.to_string());
            continue;
        }
        if arg == "--config" {
            invocation.config = Some(value(&mut args, "--config", "")?);
            continue;
        }
        let Some(option) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
            invocation.recipients.push(arg.clone());
            continue;
        };
        let (letter, rest) = option.split_at(option.chars().next().map_or(0, char::len_utf8));
        match letter {
            "f" | "r" => invocation.sender = Some(value(&mut args, arg, rest)?),
            "F" => invocation.full_name = Some(value(&mut args, arg, rest)?),
            "N" => invocation.notify = Some(value(&mut args, arg, rest)?),
            "R" => invocation.ret = Some(value(&mut args, arg, rest)?),
            "V" => invocation.envid = Some(value(&mut args, arg, rest)?),
            "B" => {
                let body = value(&mut args, arg, rest)?;
                if !["7BIT", "8BITMIME"].contains(&body.to_ascii_uppercase().as_str()) {
                    return Err(UsageError(format!("-B {body}: expected 7BIT or 8BITMIME")));
                }
            }
            // -C (a config file) and -L (a syslog tag) take an argument that
            // is not a recipient either.
            "C" | "L" | "h" => {
                let given = value(&mut args, arg, rest)?;
                invocation.ignored.push(format!("{arg} {given}"));
            }
            "t" if rest.is_empty() => invocation.from_headers = true,
            "i" if rest.is_empty() => invocation.ignore_dots = true,
            "v" | "m" | "n" | "U" | "G" if rest.is_empty() => invocation.ignored.push(arg.clone()),
            "b" => match rest {
                "m" => invocation.mode = Mode::Deliver,
                "p" => invocation.mode = Mode::ListQueue,
                "s" => invocation.mode = Mode::Smtp,
                _ => {
                    return Err(UsageError(format!(
                        "{arg}: unsupported mode (-bm, -bp and -bs are)"
                    )));
                }
            },
            "o" => match rest {
                "i" => invocation.ignore_dots = true,
                // Error reporting by mail or exit status, and background or
                // interactive delivery: what Postern does anyway (errors come
                // back as the exit status and, once queued, as a bounce; the
                // queue delivers at once), so mutt, alpine and cron see no
                // warning.
                "em" | "ee" | "eq" | "ep" | "ew" | "db" | "di" => {}
                _ => invocation.ignored.push(arg.clone()),
            },
            "q" => {
                return Err(UsageError(
                    "-q: the queue runs by itself; use postern-queue".to_string(),
                ));
            }
            _ => return Err(UsageError(format!("{arg}: unknown option"))),
        }
    }
    Ok(invocation)
}

/// An option's argument: attached (`-fADDR`) or the next argument.
fn value<'a>(
    args: &mut impl Iterator<Item = &'a String>,
    option: &str,
    attached: &str,
) -> Result<String, UsageError> {
    if !attached.is_empty() {
        return Ok(attached.to_string());
    }
    args.next()
        .cloned()
        .ok_or_else(|| UsageError(format!("{option} needs an argument")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Invocation {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse("sendmail", &args).unwrap()
    }

    #[test]
    fn mutt() {
        let i = parse_line(
            "-oem -oi -f me@example.org -N success,failure -R hdrs -B8BITMIME -- a@x.test b@x.test",
        );
        assert_eq!(i.recipients, ["a@x.test", "b@x.test"]);
        assert_eq!(i.sender.as_deref(), Some("me@example.org"));
        assert_eq!(i.notify.as_deref(), Some("success,failure"));
        assert_eq!(i.ret.as_deref(), Some("hdrs"));
        assert!(i.ignore_dots);
    }

    #[test]
    fn cron_and_scripts() {
        let i = parse_line("-FCronDaemon -i -B8BITMIME -oem root");
        assert_eq!(i.full_name.as_deref(), Some("CronDaemon"));
        assert_eq!(i.recipients, ["root"]);
        let i = parse_line("-t -i");
        assert!(i.from_headers && i.recipients.is_empty());
        let i = parse_line("-fme@x.test -F Real -V env1 rcpt@x.test");
        assert_eq!(
            (
                i.sender.as_deref(),
                i.full_name.as_deref(),
                i.envid.as_deref()
            ),
            (Some("me@x.test"), Some("Real"), Some("env1"))
        );
        assert_eq!(i.recipients, ["rcpt@x.test"]);
    }

    #[test]
    fn modes_and_errors() {
        assert_eq!(parse_line("-bp").mode, Mode::ListQueue);
        assert_eq!(parse("mailq", &[]).unwrap().mode, Mode::ListQueue);
        assert_eq!(parse_line("-bs").mode, Mode::Smtp);
        assert!(parse("sendmail", &["-f".to_string()]).is_err());
        assert!(parse("sendmail", &["-B".into(), "9BIT".into()]).is_err());
        assert!(parse("sendmail", &["-x".to_string()]).is_err());
        let i = parse_line("-odb -oem -oQ/var/spool -odq -- -weird@x.test");
        assert_eq!(i.ignored, ["-oQ/var/spool", "-odq"]);
        assert_eq!(i.recipients, ["-weird@x.test"]);
    }
}
