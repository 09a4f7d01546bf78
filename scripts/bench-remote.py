#!/usr/bin/env python3
"""bench-remote.py — mail leaving the host, beside Postfix.

N messages of 4 KiB for 20 outside domains, each domain's next hop a
Postfix smtp-sink of its own on a loopback test address (127.0.0.10 to
.29), named by a transport map for both servers (so no DNS is timed),
against the Postfix of ../shared/bench/peers-up given an smtp transport
and the same map, alternately in the same run, medians of R rounds. Two
figures:

  queued  the messages are in the queue (sendmail, 10 streams) while
          nothing delivers — Postern's daemons not started, Postfix with
          defer_transports = smtp — then delivery starts (`postern up`;
          defer_transports emptied, `postfix reload`, `postqueue -f`):
          the time until the queue is empty.
  smtp    the messages come in over SMTP (../shared/bench/smtp-load, 10
          sessions, several messages each) while the server delivers: the
          time from the first one in until the queue is empty.

Also: connections opened to the sinks per message (the kernel's TCP
ActiveOpens, less the load's own) and the server's CPU per message (every
process of `postern up`, or of the Postfix master; for `smtp`, reception
included). Needs root. Environment: BENCH_REMOTE_MESSAGES (2000),
BENCH_REMOTE_ROUNDS (3), BENCH_SETTLE_SECONDS (12).
"""
import json, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import (  # noqa: E402
    message, inject_streams, BIN, SHARED, active_opens, port_of, start_up, tree_cpu_seconds, with_peers)

N = int(os.environ.get("BENCH_REMOTE_MESSAGES", "2000"))
ROUNDS = int(os.environ.get("BENCH_REMOTE_ROUNDS", "3"))
SETTLE = float(os.environ.get("BENCH_SETTLE_SECONDS", "12"))
DOMAINS = 20
SESSIONS = 10
SIZE = 4096
SINK_PORT = 2626
LIMIT_S = 600


def domains():
    return [(f"d{i}.remote.test", f"127.0.0.{10 + i}") for i in range(DOMAINS)]


def start_sinks():
    sinks = []
    for _, ip in domains():
        sinks.append(subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"{ip}:{SINK_PORT}", "256"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 20
    for _, ip in domains():
        while subprocess.run(["sh", "-c", f"exec 3<>/dev/tcp/{ip}/{SINK_PORT}"],
                             capture_output=True, executable="/bin/bash").returncode != 0:
            if time.monotonic() > deadline:
                sys.exit(f"smtp-sink on {ip} did not start")
            time.sleep(0.05)
    return sinks


def recipients():
    return ",".join(f"user{n}@{d}" for n in range(5) for d, _ in domains())


def inject(command_for):
    """N sendmail processes, SESSIONS at a time, to the recipients in turn."""
    addresses = recipients().split(",")
    inject_streams(N, SESSIONS, lambda n: command_for(addresses[n % len(addresses)]),
                   lambda n: message(n, SIZE, "remote bench"))


def drain(queue_dirs, started):
    deadline = time.monotonic() + LIMIT_S
    while files_under(queue_dirs) > 0:
        if time.monotonic() > deadline:
            sys.exit(f"the queue never emptied: {files_under(queue_dirs)} files left")
        time.sleep(0.02)
    return time.monotonic() - started


def files_under(dirs):
    return sum(len(files) for d in dirs for _, _, files in os.walk(d))


def load_and_drain(port, queue_dirs, server_pid):
    """smtp-load into `port`; seconds from its start until the queue
    directories are empty, connections opened by the server per message,
    server CPU ms per message."""
    time.sleep(SETTLE)
    cpu0, opens0 = tree_cpu_seconds(server_pid), active_opens()
    load = subprocess.run([os.path.join(SHARED, "bench", "smtp-load"), "127.0.0.1", str(port),
                           "--messages", str(N), "--sessions", str(SESSIONS), "--size", str(SIZE),
                           "--to", recipients(), "--reuse"],
                          check=True, capture_output=True, text=True)
    loaded = json.loads(load.stdout)
    started = loaded["start_epoch"]
    deadline = time.monotonic() + LIMIT_S
    while files_under(queue_dirs) > 0:
        if time.monotonic() > deadline:
            sys.exit(f"the queue never emptied: {files_under(queue_dirs)} files left")
        time.sleep(0.02)
    seconds = time.time() - started
    # smtp-load's own connections: with --reuse, one per recipient (it runs
    # an smtp-source of one session for each, SESSIONS at a time).
    load_opens = len(recipients().split(","))
    opens = max(0, active_opens() - opens0 - load_opens)
    cpu = tree_cpu_seconds(server_pid) - cpu0
    print(f"  (in over SMTP {loaded['seconds']:.2f} s, the rest {seconds - loaded['seconds']:.2f} s)", file=sys.stderr)
    return seconds, opens / N, cpu * 1000 / N


def postern_sandbox(work):
    """A sandbox made (not started), with the transport map."""
    sandbox = os.path.join(work, f"postern-{time.monotonic_ns()}")
    subprocess.run([os.path.join(BIN, "postern"), "init", "--dir", sandbox], check=True, capture_output=True)
    with open(os.path.join(sandbox, "etc", "transport"), "w") as f:
        for domain, ip in domains():
            f.write(f"{domain} [{ip}]:{SINK_PORT}\n")
    return sandbox


def postern_queued(work):
    """Queued with the daemons down, then `postern up`: seconds until the
    queue is empty, connections per message, server CPU ms per message."""
    sandbox = postern_sandbox(work)
    etc = os.path.join(sandbox, "etc")
    queue = os.path.join(sandbox, "queue")
    inject(lambda to: [os.path.join(BIN, "postern-inject"), "--config", etc, "-i", "-f", "bench@example.org", to])
    time.sleep(SETTLE)
    opens0 = active_opens()
    started = time.monotonic()
    up = subprocess.Popen([os.path.join(BIN, "postern"), "up", "--dir", sandbox],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = drain([os.path.join(queue, "queue"), os.path.join(queue, "state")], started)
    opens = active_opens() - opens0
    cpu = tree_cpu_seconds(up.pid)
    up.send_signal(signal.SIGTERM)
    up.wait(timeout=30)
    shutil.rmtree(sandbox, ignore_errors=True)
    return seconds, opens / N, cpu * 1000 / N


def postern_round(work):
    sandbox = postern_sandbox(work)
    up = start_up(sandbox)
    queue = os.path.join(sandbox, "queue")
    figures = load_and_drain(port_of(sandbox, "SMTP"), [os.path.join(queue, "queue"), os.path.join(queue, "state")],
                             up.pid)
    up.send_signal(signal.SIGTERM)
    up.wait(timeout=30)
    shutil.rmtree(sandbox, ignore_errors=True)
    return figures


def postfix_setup(peers):
    """Gives the peer an smtp transport and the transport map."""
    etc = os.path.join(peers, "postfix", "etc")
    with open(os.path.join(etc, "transport"), "w") as f:
        for domain, ip in domains():
            f.write(f"{domain} smtp:[{ip}]:{SINK_PORT}\n")
    with open(os.path.join(etc, "master.cf"), "a") as f:
        f.write("smtp      unix  -       -       n       -       -       smtp\n")
        # Opportunistic TLS, as Postern's default, needs the TLS manager.
        f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")
    subprocess.run(["postconf", "-c", etc, "-e", f"transport_maps = texthash:{etc}/transport",
                    "default_transport = smtp", "smtp_tls_security_level = may"], check=True)
    subprocess.run(["postfix", "-c", etc, "reload"], check=True, capture_output=True)
    env = {}
    with open(os.path.join(peers, "peers.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                env[k] = v.strip("'\"")
    return env


def postfix_queued(peers):
    """Queued under defer_transports = smtp, then released: seconds until
    the queue is empty, connections and CPU per message."""
    etc = os.path.join(peers, "postfix", "etc")
    subprocess.run(["postconf", "-c", etc, "-e", "defer_transports = smtp"], check=True)
    subprocess.run(["postfix", "-c", etc, "reload"], check=True, capture_output=True)
    time.sleep(1)
    env = dict(os.environ, MAIL_CONFIG=etc)
    inject(lambda to: ["env", f"MAIL_CONFIG={etc}", "/usr/sbin/sendmail", "-i", "-f", "bench@example.org", to])
    spool = os.path.join(peers, "postfix", "spool")
    incoming = [os.path.join(spool, d) for d in ("maildrop", "incoming")]
    deadline = time.monotonic() + LIMIT_S
    while files_under(incoming) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(SETTLE)
    master = int(open(os.path.join(spool, "pid", "master.pid")).read().strip())
    cpu0, opens0 = tree_cpu_seconds(master), active_opens()
    started = time.monotonic()
    subprocess.run(["postconf", "-c", etc, "-e", "defer_transports ="], check=True)
    subprocess.run(["postfix", "-c", etc, "reload"], check=True, capture_output=True, env=env)
    subprocess.run(["postqueue", "-c", etc, "-f"], check=True, capture_output=True, env=env)
    dirs = [os.path.join(spool, d) for d in ("maildrop", "incoming", "active", "deferred", "hold")]
    seconds = drain(dirs, started)
    opens = active_opens() - opens0
    cpu = tree_cpu_seconds(master) - cpu0
    return seconds, opens / N, cpu * 1000 / N


def postfix_round(peers, env):
    spool = os.path.join(peers, "postfix", "spool")
    dirs = [os.path.join(spool, d) for d in ("maildrop", "incoming", "active", "deferred", "hold")]
    return load_and_drain(int(env.get("SMTP_PORT", "3525")), dirs, int(env["POSTFIX_PID"]))


def main():
    sinks = start_sinks()
    try:
        with with_peers("bench-remote", "r.") as (work, peers):
            env = postfix_setup(peers)
            samples = {"postern queued": [], "postfix queued": [], "postern smtp": [], "postfix smtp": []}
            for r in range(ROUNDS):
                samples["postern queued"].append(postern_queued(work))
                samples["postfix queued"].append(postfix_queued(peers))
                samples["postern smtp"].append(postern_round(work))
                samples["postfix smtp"].append(postfix_round(peers, env))
                print(f"round {r + 1}: " + ", ".join(
                    f"{name} {v[-1][0]:.2f} s ({v[-1][1]:.3f} conn/msg, {v[-1][2]:.2f} ms CPU/msg)"
                    for name, v in samples.items()), file=sys.stderr)
            med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}
            print(f"\nmail to {DOMAINS} other domains (smtp-sink each), {N} x {SIZE} B, medians of {ROUNDS}:"
                  " time until the queue is empty")
            for name in samples:
                s, c, cpu = med[name]
                print(f"  {name:15} {s:7.2f} s  {N / s:7.0f} msg/s  {c:.3f} connections/msg  {cpu:.2f} ms CPU/msg")
            for kind in ("queued", "smtp"):
                print(f"  {kind}: postern / postfix time = {med['postern ' + kind][0] / med['postfix ' + kind][0]:.2f}")
            print(json.dumps({"messages": N, "domains": DOMAINS, "rounds": ROUNDS, "medians": med, "samples": samples}))
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
