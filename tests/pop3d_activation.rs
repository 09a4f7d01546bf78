//! postern-pop3d started by systemd socket activation, both ways: with
//! the listening socket (`Accept=no`) and one session per connection on
//! stdin (`Accept=yes`, as inetd does).

use crate::suite::{Suite, python};
use crate::util::socket_activated;

#[test]
fn socket_activation_with_and_without_accept() {
    let s = Suite::start(&[]);
    let pop3d = crate::util::program("postern-pop3d");
    let etc = s.etc();
    let (listening, _listening) = socket_activated(&pop3d, &etc, false);
    let (per_connection, _per_connection) = socket_activated(&pop3d, &etc, true);
    for port in [listening, per_connection] {
        python(
            r#"
import poplib, sys, time
deadline = time.time() + 30
while True:
    try:
        pop = poplib.POP3("127.0.0.1", int(sys.argv[1]))
        break
    except OSError:
        assert time.time() < deadline
        time.sleep(0.2)
pop.user("demo@example.test")
assert pop.pass_(sys.argv[2]).startswith(b"+OK")
assert pop.stat() == (0, 0)
pop.quit()
print("ok")
"#,
            &[&port.to_string(), &s.password()],
        );
    }
    s.stop();
}
