#!/usr/bin/env python3
"""bench-remote.py — mail leaving the host, beside Postfix.

N messages of 4 KiB, sent in over SMTP (../shared/bench/smtp-load, 10
sessions, several messages each) for 20 outside domains, each domain's
next hop a Postfix smtp-sink of its own on a loopback test address
(127.0.0.10 to .29), named by a transport map for both servers (so no DNS
is timed). The figure is the time from the first message in until the
queue is empty, against the Postfix of ../shared/bench/peers-up given an
smtp transport and the same map, alternately in the same run, medians of
R rounds. Also: connections opened to the sinks per message (the kernel's
TCP ActiveOpens, less the load's own), and the server's CPU per message
(every process of `postern up`, or of the Postfix master, reception
included). Needs root. Environment: BENCH_REMOTE_MESSAGES (2000),
BENCH_REMOTE_ROUNDS (3), BENCH_SETTLE_SECONDS (12).
"""
import json, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import (  # noqa: E402
    SHARED, active_opens, port_of, start_up, tree_cpu_seconds, with_peers)

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
    started = json.loads(load.stdout)["start_epoch"]
    deadline = time.monotonic() + LIMIT_S
    while files_under(queue_dirs) > 0:
        if time.monotonic() > deadline:
            sys.exit(f"the queue never emptied: {files_under(queue_dirs)} files left")
        time.sleep(0.02)
    seconds = time.time() - started
    # smtp-load's own connections: one per session and recipient it served.
    load_opens = json.loads(load.stdout).get("sessions", SESSIONS)
    opens = max(0, active_opens() - opens0 - load_opens)
    cpu = tree_cpu_seconds(server_pid) - cpu0
    return seconds, opens / N, cpu * 1000 / N


def postern_round(work):
    sandbox = os.path.join(work, f"postern-{time.monotonic_ns()}")
    up = start_up(sandbox)
    etc = os.path.join(sandbox, "etc")
    with open(os.path.join(etc, "transport"), "w") as f:
        for domain, ip in domains():
            f.write(f"{domain} [{ip}]:{SINK_PORT}\n")
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


def postfix_round(peers, env):
    spool = os.path.join(peers, "postfix", "spool")
    dirs = [os.path.join(spool, d) for d in ("maildrop", "incoming", "active", "deferred", "hold")]
    return load_and_drain(int(env.get("SMTP_PORT", "3525")), dirs, int(env["POSTFIX_PID"]))


def main():
    sinks = start_sinks()
    try:
        with with_peers("bench-remote", "r.") as (work, peers):
            env = postfix_setup(peers)
            samples = {"postern": [], "postfix": []}
            for r in range(ROUNDS):
                samples["postern"].append(postern_round(work))
                samples["postfix"].append(postfix_round(peers, env))
                p, q = samples["postern"][-1], samples["postfix"][-1]
                print(f"round {r + 1}: postern {p[0]:.2f} s ({p[1]:.3f} connections/msg, {p[2]:.2f} ms CPU/msg),"
                      f" postfix {q[0]:.2f} s ({q[1]:.3f} connections/msg, {q[2]:.2f} ms CPU/msg)", file=sys.stderr)
            med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}
            print(f"\nmail to {DOMAINS} other domains (smtp-sink each): {N} x {SIZE} B in over SMTP,"
                  f" time until the queue is empty, medians of {ROUNDS}")
            for name in ("postern", "postfix"):
                s, c, cpu = med[name]
                print(f"  {name:8} {s:7.2f} s  {N / s:7.0f} msg/s  {c:.3f} connections/msg  {cpu:.2f} ms CPU/msg")
            print(f"  postern / postfix time = {med['postern'][0] / med['postfix'][0]:.2f}")
            print(json.dumps({"messages": N, "domains": DOMAINS, "rounds": ROUNDS, "medians": med, "samples": samples}))
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
