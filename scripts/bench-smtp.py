#!/usr/bin/env python3
"""bench-smtp.py — SMTP in, Maildir out, beside Postfix.

../shared/bench/smtp-load sends N messages of 4 KiB over 10 concurrent
sessions to 10 mailboxes; ../shared/bench/wait-maildirs times until every
one is in its Maildir. Against `postern up` (postern-smtpd, the queue,
postern-local --batch) and against the Postfix of ../shared/bench/peers-up
(smtpd, cleanup, qmgr, virtual), alternately in the same run, medians of R
rounds. Also printed: Postern's server CPU per message (smtpd, auth, the
queue, the spawner and every postern-local) and its fsync calls per
message, counted by strace in a separate untimed run. Needs root (peers-up
does). Environment: BENCH_SMTP_MESSAGES (default 2000), BENCH_SMTP_ROUNDS
(3), BENCH_SETTLE_SECONDS (12, the pause before each round).
"""
import json, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import (  # noqa: E402
    FSYNC_CALLS, SHARED, add_mailboxes, cpu_seconds, empty_maildirs, pid_of, port_of, start_up,
    strace_calls, with_peers)

N = int(os.environ.get("BENCH_SMTP_MESSAGES", "2000"))
ROUNDS = int(os.environ.get("BENCH_SMTP_ROUNDS", "3"))
SESSIONS = 10
USERS = 10
SIZE = 4096
SETTLE = float(os.environ.get("BENCH_SETTLE_SECONDS", "12"))


def settle():
    """Waits out the files the last round deleted: ext4 without a journal
    (as on the bench machines) skips inodes freed in the last 5-10 seconds
    when it allocates, so one round's clean-up would slow the next."""
    time.sleep(SETTLE)


def load_and_wait(port, recipients, maildirs, n=N):
    """smtp-load, then wait-maildirs: seconds until all are delivered."""
    settle()
    load = subprocess.run([os.path.join(SHARED, "bench", "smtp-load"), "127.0.0.1", str(port),
                           "--messages", str(n), "--sessions", str(SESSIONS), "--size", str(SIZE),
                           "--to", ",".join(recipients)], capture_output=True, text=True)
    if load.returncode != 0:
        sys.exit(f"smtp-load failed: {load.stdout} {load.stderr}")
    start = json.loads(load.stdout)["start_epoch"]
    waited = subprocess.run([os.path.join(SHARED, "bench", "wait-maildirs"), str(n), *maildirs,
                             "--since", str(start), "--timeout", "300"], capture_output=True, text=True)
    result = json.loads(waited.stdout)
    if result.get("timed_out"):
        sys.exit(f"only {result['found']} of {n} delivered")
    return result["seconds"]


def postern_sandbox(work, wrapper=()):
    sandbox = os.path.join(work, f"postern-{time.monotonic_ns()}")
    up = start_up(sandbox, wrapper)
    maildirs = add_mailboxes(sandbox, USERS)
    recipients = [f"user{u}@example.test" for u in range(USERS)]
    return sandbox, up, recipients, maildirs


def stop(up, sandbox, traced=False):
    # Under strace the signal goes to `postern up`, strace's child.
    pid = up.pid
    if traced:
        pid = int(subprocess.run(["pgrep", "-P", str(up.pid)], capture_output=True, text=True).stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    up.wait(timeout=30)
    shutil.rmtree(sandbox, ignore_errors=True)


def postern_round(work):
    sandbox, up, recipients, maildirs = postern_sandbox(work)
    etc = os.path.join(sandbox, "etc")
    pids = [pid_of(f"{name} --config {etc}") for name in ("postern-smtpd", "postern-auth", "postern-lspawn", "postern-queue")]
    cpu0 = sum(cpu_seconds(p) for p in pids)
    seconds = load_and_wait(port_of(sandbox, "SMTP"), recipients, maildirs)
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    stop(up, sandbox)
    return seconds, cpu * 1000 / N


def postern_fsyncs(work, count=300):
    trace = os.path.join(work, "smtp.strace")
    sandbox, up, recipients, maildirs = postern_sandbox(
        work, ["strace", "-f", "-qq", "-c", "-e", FSYNC_CALLS, "-o", trace])
    load_and_wait(port_of(sandbox, "SMTP"), recipients, maildirs, count)
    time.sleep(1)
    stop(up, sandbox, traced=True)
    # Mailbox creation (postern-admin) is outside the trace.
    return strace_calls(trace) / count


def postfix_round(peers):
    maildirs = [os.path.join(peers, "mail", f"user{u}", "Maildir") for u in range(1, USERS + 1)]
    empty_maildirs(maildirs)
    recipients = [f"user{u}@bench.test" for u in range(1, USERS + 1)]
    return load_and_wait(int(os.environ.get("BENCH_SMTP_PORT", "3525")), recipients, maildirs)


def main():
    with with_peers("bench-smtp", "s.") as (work, peers):
        figures = {"postern_s": [], "postfix_s": [], "postern_cpu_ms": []}
        for r in range(ROUNDS):
            seconds, cpu = postern_round(work)
            figures["postern_s"].append(seconds)
            figures["postern_cpu_ms"].append(cpu)
            figures["postfix_s"].append(postfix_round(peers))
            print(f"round {r + 1}: postern {seconds:.2f} s ({cpu:.2f} ms CPU/msg), postfix {figures['postfix_s'][-1]:.2f} s",
                  file=sys.stderr)
        med = {k: statistics.median(v) for k, v in figures.items()}
        fsyncs = postern_fsyncs(work)
        print(f"\nSMTP to Maildir: {N} x {SIZE} B, {SESSIONS} sessions, {USERS} mailboxes, medians of {ROUNDS}")
        print(f"  postern   {med['postern_s']:6.2f} s  {N / med['postern_s']:6.0f} msg/s  "
              f"({med['postern_cpu_ms']:.2f} ms server CPU per message, {fsyncs:.2f} fsync calls per message)")
        print(f"  postfix   {med['postfix_s']:6.2f} s  {N / med['postfix_s']:6.0f} msg/s")
        print(f"  postern time / postfix time = {med['postern_s'] / med['postfix_s']:.2f}")
        print(json.dumps({"messages": N, "rounds": ROUNDS, "medians": med, "fsyncs_per_message": fsyncs,
                          "samples": figures}))


if __name__ == "__main__":
    main()
