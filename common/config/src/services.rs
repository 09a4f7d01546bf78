//! The table of the suite's services (`services.tab`, built in): each
//! program, the user it runs as, who starts it and its ports, and the
//! system users with their sandbox roles. Everything that needs one of
//! those lists reads this one, so they cannot drift apart.

/// The table as built into every program.
pub const TABLE: &str = include_str!("../services.tab");

/// A system user of the suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUser {
    /// Its name on an installed host: `postern-smtpd`.
    pub name: &'static str,
    /// Its name in a sandbox's `etc/ids`: `mail` for the mail owner.
    pub role: &'static str,
}

/// A program of the suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    /// The user it runs as (`root`: started as root, see DESIGN.md).
    pub user: &'static str,
    /// `postern` (postern up starts and watches it), another program that
    /// spawns it, `operator` or `user` (run by hand), or `planned`.
    pub started_by: &'static str,
    /// How `make install` installs it (`0755`, `2755` setgid the queue's
    /// group); `None` while planned.
    pub mode: Option<&'static str>,
    pub ports: Vec<Port>,
}

/// A port a server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// The service's name, as the sandbox's `etc/ports` and banner call
    /// it: `SMTP`, `submission`, `POP3S`.
    pub service: &'static str,
    /// Its well-known port.
    pub standard: u16,
    /// Its loopback port in a sandbox of `postern up`.
    pub sandbox: u16,
}

impl Program {
    /// Whether `postern up` starts and watches it.
    pub fn under_postern_up(&self) -> bool {
        self.started_by == "postern"
    }

    pub fn is_planned(&self) -> bool {
        self.started_by == "planned"
    }
}

/// The lines of one `[section]`, without comments and blank lines.
fn section(name: &str) -> impl Iterator<Item = &'static str> {
    let mut current = "";
    TABLE.lines().filter(move |line| {
        let line = line.trim();
        if line.starts_with('[') {
            current = line;
            return false;
        }
        current.trim_matches(['[', ']']) == name && !line.is_empty() && !line.starts_with('#')
    })
}

/// The system users, in the table's order.
pub fn users() -> Vec<ServiceUser> {
    section("users")
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(ServiceUser {
                name: words.next()?,
                role: words.next()?,
            })
        })
        .collect()
}

/// The programs, in the table's order (`postern up` starts its own in
/// that order).
pub fn programs() -> Vec<Program> {
    section("programs").filter_map(program).collect()
}

fn program(line: &'static str) -> Option<Program> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let user = words.next()?;
    let started_by = words.next()?;
    let mode = Some(words.next()?).filter(|&mode| mode != "-");
    let ports = words
        .filter(|&word| word != "-")
        .map(|word| {
            let (service, ports) = word.split_once('=')?;
            let (standard, sandbox) = ports.split_once('/')?;
            Some(Port {
                service,
                standard: standard.parse().ok()?,
                sandbox: sandbox.parse().ok()?,
            })
        })
        .collect::<Option<Vec<Port>>>()?;
    Some(Program {
        name,
        user,
        started_by,
        mode,
        ports,
    })
}

/// Every server's ports, in the table's order (SMTP first).
pub fn ports() -> Vec<Port> {
    programs().into_iter().flat_map(|p| p.ports).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_parses() {
        let lines = TABLE
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
            .count();
        assert_eq!(users().len() + programs().len(), lines);
    }

    #[test]
    fn every_program_runs_as_root_or_a_user_of_the_table() {
        let users = users();
        for program in programs() {
            assert!(
                program.user == "root" || users.iter().any(|u| u.name == program.user),
                "{program:?}"
            );
            assert_eq!(program.mode.is_none(), program.is_planned(), "{program:?}");
        }
    }

    #[test]
    fn ports_and_roles_are_each_given_once() {
        let ports = ports();
        assert_eq!(ports.first().map(|p| p.service), Some("SMTP"));
        for (i, port) in ports.iter().enumerate() {
            for other in &ports[i + 1..] {
                assert_ne!(port.service, other.service);
                assert_ne!(port.standard, other.standard);
                assert_ne!(port.sandbox, other.sandbox);
            }
        }
        let users = users();
        for (i, user) in users.iter().enumerate() {
            assert!(users[i + 1..].iter().all(|u| u.role != user.role));
        }
        let up: Vec<&str> = programs()
            .iter()
            .filter(|p| p.under_postern_up())
            .map(|p| p.name)
            .collect();
        assert_eq!(
            up,
            [
                "postern-lspawn",
                "postern-auth",
                "postern-smtpd",
                "postern-pop3d",
                "postern-imapd"
            ]
        );
    }
}
