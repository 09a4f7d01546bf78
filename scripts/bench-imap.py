#!/usr/bin/env python3
"""bench-imap.py — IMAP beside Dovecot.

../shared/bench/fill-maildir fills a 10,000- and a 100,000-message
mailbox with the same seed for Postern (`postern up`, user0 and user1
@example.test) and for the Dovecot of ../shared/bench/peers-up (user0,
user1); ../shared/bench/imap-bench measures each, alternately in the same
run: LOGIN+SELECT, UID FETCH 1:* (FLAGS), FETCH 1:* (ENVELOPE), UID SEARCH
SUBJECT, 100 full bodies, warm (medians of runs) and cold (`--cold`: the
first session on a mailbox whose index files are gone; for Postern its
index, cache and UID list, for Dovecot its dovecot* files).

Then the memory of idle connections: IDLE_CONNECTIONS clients each log in
and SELECT INBOX (the 10,000-message one) and wait, in plaintext and over
STARTTLS, and the private memory (PSS) the server's processes add is
measured: for Postern the imapd listener and its sessions, for Dovecot a
second instance of the peer's configuration with TLS and limits that
admit that many connections (its master and every child: imap, imap-login
and the rest). Needs root (peers-up does).

Environment: BENCH_IMAP_SIZES (10000,100000), BENCH_IMAP_ROUNDS (3),
BENCH_IMAP_RUNS (5), BENCH_IMAP_IDLE (200).
"""
import json, os, re, shutil, signal, socket, ssl, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import BIN, SHARED, add_mailboxes, port_of, start_up, with_peers  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_IMAP_SIZES", "10000,100000").split(",")]
ROUNDS = int(os.environ.get("BENCH_IMAP_ROUNDS", "3"))
RUNS = int(os.environ.get("BENCH_IMAP_RUNS", "5"))
IDLE = int(os.environ.get("BENCH_IMAP_IDLE", "200"))
SEED = "42"
OPS = ("login_select_s", "fetch_flags_s", "fetch_envelope_s", "search_s", "fetch_bodies_s")
IDLE_PORT = 3144


def bench(port, user, password, cold=None):
    args = [os.path.join(SHARED, "bench", "imap-bench"), "127.0.0.1", str(port), user, password,
            "--runs", str(RUNS if cold is None else 1), "--search", "zephyr", "--bodies", "100"]
    if cold:
        args += ["--cold", cold]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"imap-bench failed: {out.stdout} {out.stderr}")
    return json.loads(out.stdout)


def fill(maildir, n):
    out = subprocess.run([os.path.join(SHARED, "bench", "fill-maildir"), maildir, str(n), "--seed", SEED],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def tree(root):
    """root and every process under it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


def read_tagged(conn, tag):
    data = b""
    while not re.search(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n", data):
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed: {data[-200:]!r}")
        data += chunk
    if not re.search(rb"(^|\r\n)" + tag + rb" OK", data):
        raise RuntimeError(f"{tag.decode()} failed: {data[-200:]!r}")
    return data


def idle_memory(port, user, password, tls, root):
    """The PSS (KiB) that IDLE selected connections add to root's tree."""
    before = pss_kib(tree(root))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    held = []
    try:
        for _ in range(IDLE):
            conn = socket.create_connection(("127.0.0.1", port), timeout=60)
            greeting = b""
            while b"\r\n" not in greeting:
                greeting += conn.recv(4096)
            if tls:
                conn.sendall(b"s STARTTLS\r\n")
                read_tagged(conn, b"s")
                conn = context.wrap_socket(conn)
            conn.sendall(f"l LOGIN {user} {password}\r\n".encode())
            read_tagged(conn, b"l")
            conn.sendall(b"x SELECT INBOX\r\n")
            read_tagged(conn, b"x")
            held.append(conn)
        time.sleep(2)
        after = pss_kib(tree(root))
    finally:
        for conn in held:
            try:
                conn.sendall(b"z LOGOUT\r\n")
                conn.close()
            except OSError:
                pass
    return (after - before) / IDLE


def idle_dovecot(peers, cert, key, work):
    """A second Dovecot of the peer's configuration with TLS and room for
    IDLE connections; its master's pid and its configuration."""
    with open(os.path.join(peers, "dovecot", "dovecot.conf")) as f:
        conf = f.read()
    base = os.path.join(work, "di")
    os.makedirs(os.path.join(base, "run"), exist_ok=True)
    os.makedirs(os.path.join(base, "state"), exist_ok=True)
    conf = re.sub(r"^base_dir = .*$", f"base_dir = {base}/run", conf, flags=re.M)
    conf = re.sub(r"^state_dir = .*$", f"state_dir = {base}/state", conf, flags=re.M)
    conf = re.sub(r"^instance_name = .*$", "instance_name = bench-idle", conf, flags=re.M)
    conf = re.sub(r"^protocols = .*$", "protocols = imap", conf, flags=re.M)
    conf = re.sub(r"^ssl = no$", f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}", conf, flags=re.M)
    conf = re.sub(r"port = \d+\n(\s*)\}\n(\s*)inet_listener imaps",
                  f"port = {IDLE_PORT}\n\\1}}\n\\2inet_listener imaps", conf, count=1)
    conf = conf.replace("service imap-login {", "service imap-login {\n  process_limit = 1000", 1)
    conf = re.sub(r"service pop3-login \{.*?\n\}\n", "", conf, flags=re.S)
    conf += ("default_client_limit = 2000\nprotocol imap {\n  mail_max_userip_connections = 1000\n}\n"
             "service imap {\n  process_limit = 1000\n}\n")
    path = os.path.join(base, "dovecot.conf")
    with open(path, "w") as f:
        f.write(conf)
    subprocess.run(["dovecot", "-c", path], check=True)
    pid_file = os.path.join(base, "run", "master.pid")
    for _ in range(100):
        if os.path.exists(pid_file):
            try:
                socket.create_connection(("127.0.0.1", IDLE_PORT), timeout=1).close()
                break
            except OSError:
                pass
        time.sleep(0.1)
    with open(pid_file) as f:
        return int(f.read().strip()), path


def main():
    with with_peers("bench-imap", "i.") as (work, peers):
        sandbox = os.path.join(work, "postern")
        # Room for every idle connection from 127.0.0.1.
        subprocess.run([os.path.join(BIN, "postern"), "init", "--dir", sandbox], check=True,
                       capture_output=True)
        with open(os.path.join(sandbox, "etc", "postern.toml"), "a") as f:
            f.write(f"imapd.max_connections_per_ip = {min(999, IDLE + 10)}\n"
                    f"imapd.max_connections = {min(999, IDLE + 10)}\n")
        up = start_up(sandbox)
        idle_master = None
        try:
            maildirs = add_mailboxes(sandbox, len(SIZES))
            password = open(os.path.join(sandbox, "etc", "demo.password")).read().strip()
            port = port_of(sandbox, "IMAP")
            results = {}
            for u, (n, maildir) in enumerate(zip(SIZES, maildirs)):
                dovecot_maildir = os.path.join(peers, "mail", f"user{u}", "Maildir")
                fill(maildir, n)
                fill(dovecot_maildir, n)
                postern_cold = f"rm -f {maildir}/postern-index {maildir}/postern-cache {maildir}/dovecot-uidlist"
                dovecot_cold = f"rm -f {dovecot_maildir}/dovecot*"
                figures = {side: {k: [] for k in OPS + tuple("cold_" + o for o in OPS)}
                           for side in ("postern", "dovecot")}
                for r in range(ROUNDS):
                    for side, run in (
                            ("postern", lambda c=None: bench(port, f"user{u}@example.test", password, c)),
                            ("dovecot", lambda c=None: bench(3143, f"user{u}", "bench", c))):
                        cold = run(postern_cold if side == "postern" else dovecot_cold)
                        warm = run()
                        if warm["body_bytes"] == 0 or warm["search_hits"] != n // 100:
                            sys.exit(f"{side}: {warm}")
                        for k in OPS:
                            figures[side][k].append(warm[k])
                            figures[side]["cold_" + k].append(cold[k])
                        print(f"{n} round {r + 1} {side}: "
                              f"{json.dumps({k: v[-1] for k, v in figures[side].items()})}", file=sys.stderr)
                results[n] = {side: {k: statistics.median(v) for k, v in f.items()}
                              for side, f in figures.items()}
                results[n]["samples"] = figures
            # Idle connections on the 10,000-message INBOX (user0).
            tls = os.path.join(sandbox, "tls")
            idle_master, _ = idle_dovecot(peers, os.path.join(tls, "cert.pem"),
                                          os.path.join(tls, "key.pem"), work)
            etc = os.path.join(sandbox, "etc")
            listener = int(subprocess.run(["pgrep", "-o", "-f", f"postern-imapd --config {etc}$"],
                                          capture_output=True, text=True, check=True).stdout.split()[0])
            idle = {}
            for tls_on in (False, True):
                mode = "tls" if tls_on else "plain"
                idle[mode] = {
                    "postern": idle_memory(port, "user0@example.test", password, tls_on, listener),
                    "dovecot": idle_memory(IDLE_PORT, "user0", "bench", tls_on, idle_master),
                }
                print(f"idle {mode}: {json.dumps(idle[mode])}", file=sys.stderr)
            for n in SIZES:
                med = results[n]
                print(f"\nIMAP: {n} messages, medians of {ROUNDS} rounds ({RUNS} runs each)")
                for k in OPS + tuple("cold_" + o for o in OPS):
                    p, d = med["postern"][k], med["dovecot"][k]
                    print(f"  {k:24} postern {p * 1000:9.1f} ms  dovecot {d * 1000:9.1f} ms  ratio {p / d:5.2f}")
            if len(SIZES) > 1:
                small, big = SIZES[0], SIZES[-1]
                print(f"\nIMAP: {big} against {small} messages (warm, postern)")
                for k in OPS:
                    p = results[big]["postern"][k] / results[small]["postern"][k]
                    d = results[big]["dovecot"][k] / results[small]["dovecot"][k]
                    print(f"  {k:24} postern x{p:6.1f}  dovecot x{d:6.1f}")
            print(f"\nIMAP: memory of {IDLE} idle selected connections, PSS per connection")
            for mode, sides in idle.items():
                p, d = sides["postern"], sides["dovecot"]
                print(f"  {mode:24} postern {p:8.0f} KiB  dovecot {d:8.0f} KiB  ratio {p / d:5.2f}")
            print(json.dumps({"sizes": SIZES, "rounds": ROUNDS, "results": results, "idle": idle}))
        finally:
            if idle_master:
                subprocess.run(["doveadm", "-c", os.path.join(work, "di", "dovecot.conf"), "stop"],
                               capture_output=True)
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)
            shutil.rmtree(sandbox, ignore_errors=True)


if __name__ == "__main__":
    main()
