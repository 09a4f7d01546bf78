#!/usr/bin/env python3
"""bench-queue.py — the whole local path, sendmail to Maildir, beside Postfix.

S concurrent streams run sendmail once per message (as cron, mutt and
scripts do) until N messages of 4 KiB have been injected for 100 local
mailboxes; the figure is the time until every message is delivered.
Measured in the same run, interleaved, medians of R rounds:

  postern   postern-inject into a `postern up` sandbox (release build)
  postfix   Postfix's own sendmail (MAIL_CONFIG) into ../shared/bench's
            peers-up sandbox, delivering with virtual(8) into Maildirs
  disk-rate ../shared/bench/disk-rate with S jobs and N operations

Also printed: Postern's server-side CPU per message (postern-lspawn with
every postern-local it waited for, and postern-queue) and its fsync calls
per message, counted by strace over injector and server in a separate
run of 300 messages (strace slows everything, so it is not timed). Needs root (peers-up does). Environment: BENCH_QUEUE_MESSAGES
(default 10000), BENCH_QUEUE_STREAMS (10), BENCH_QUEUE_ROUNDS (3).
"""
import json, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import (  # noqa: E402
    message, inject_streams, BIN, FSYNC_CALLS, SHARED, add_mailboxes, cpu_seconds, empty_maildirs, pid_of, start_up, strace_calls,
    with_peers)
N = int(os.environ.get("BENCH_QUEUE_MESSAGES", "10000"))
STREAMS = int(os.environ.get("BENCH_QUEUE_STREAMS", "10"))
ROUNDS = int(os.environ.get("BENCH_QUEUE_ROUNDS", "3"))
USERS = 100
SIZE = 4096
LIMIT_S = 600


def inject(command_for):
    """N sendmail processes, STREAMS at a time; when they started."""
    return inject_streams(N, STREAMS, command_for, lambda n: message(n, SIZE))


def wait_for(maildirs, start, n=None):
    n = N if n is None else n
    deadline = time.monotonic() + LIMIT_S
    while True:
        count = sum(len(os.listdir(os.path.join(m, "new"))) for m in maildirs if os.path.isdir(os.path.join(m, "new")))
        if count >= n:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            sys.exit(f"only {count} of {n} delivered")
        time.sleep(0.02)


def postern_round(work):
    sandbox = os.path.join(work, f"postern-{time.monotonic_ns()}")
    up = start_up(sandbox)
    etc = os.path.join(sandbox, "etc")
    maildirs = add_mailboxes(sandbox, USERS)
    lspawn, queue = (pid_of(f"{name} --config {etc}") for name in ("postern-lspawn", "postern-queue"))
    cpu0 = cpu_seconds(lspawn) + cpu_seconds(queue)
    start = inject(lambda n: [os.path.join(BIN, "postern-inject"), "--config", etc, "-i",
                                      f"user{n % USERS}@example.test"])
    seconds = wait_for(maildirs, start)
    cpu = cpu_seconds(lspawn) + cpu_seconds(queue) - cpu0
    up.send_signal(signal.SIGTERM)
    up.wait(timeout=30)
    shutil.rmtree(sandbox, ignore_errors=True)
    return N / seconds, cpu * 1000 / N


def postern_fsyncs(work, count=300):
    """Durable-write calls per message, counted by strace over the whole path:
    every injector and every process of `postern up`."""
    sandbox = os.path.join(work, f"fsyncs-{time.monotonic_ns()}")
    trace_up, trace_inject = os.path.join(work, "up.strace"), os.path.join(work, "inject.strace")
    up = start_up(sandbox, ["strace", "-f", "-qq", "-c", "-e", FSYNC_CALLS, "-o", trace_up])
    etc = os.path.join(sandbox, "etc")
    message_file = os.path.join(work, "message")
    with open(message_file, "wb") as f:
        f.write(message(0, SIZE))
    inject = os.path.join(BIN, "postern-inject")
    script = f"for i in $(seq {count}); do {inject} --config {etc} -i demo@example.test < {message_file} || exit 1; done"
    subprocess.run(["strace", "-f", "-qq", "-c", "-e", FSYNC_CALLS, "-o", trace_inject,
                    "sh", "-c", script], check=True)
    wait_for([os.path.join(sandbox, "mail", "example.test", "demo", "Maildir")], time.monotonic(), count)
    time.sleep(1)
    # The signal goes to `postern up`, strace's child; strace ends with it.
    child = subprocess.run(["pgrep", "-P", str(up.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(child[0]), signal.SIGTERM)
    up.wait(timeout=30)
    calls = strace_calls(trace_up) + strace_calls(trace_inject)
    shutil.rmtree(sandbox, ignore_errors=True)
    return calls / count


def postfix_round(peers):
    env = dict(os.environ, MAIL_CONFIG=os.path.join(peers, "postfix", "etc"))
    maildirs = [os.path.join(peers, "mail", f"user{u}", "Maildir") for u in range(USERS)]
    empty_maildirs(maildirs)
    def command(n):
        return ["env", f"MAIL_CONFIG={env['MAIL_CONFIG']}", "/usr/sbin/sendmail", "-i", f"user{n % USERS}@bench.test"]
    start = inject(command)
    return N / wait_for(maildirs, start)


def disk_rate(work):
    out = subprocess.run([os.path.join(SHARED, "bench", "disk-rate"), work, str(N), str(SIZE), str(STREAMS)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ops_per_s"]


def main():
    with with_peers("bench-queue", "q.") as (work, peers):
        figures = {"postern": [], "postfix": [], "disk_rate": [], "postern_cpu_ms": []}
        for r in range(ROUNDS):
            rate, cpu = postern_round(work)
            figures["postern"].append(rate)
            figures["postern_cpu_ms"].append(cpu)
            figures["postfix"].append(postfix_round(peers))
            figures["disk_rate"].append(disk_rate(work))
            print(f"round {r + 1}: postern {rate:.0f}/s ({cpu:.2f} ms CPU/msg), postfix {figures['postfix'][-1]:.0f}/s,"
                  f" disk-rate {figures['disk_rate'][-1]:.0f}/s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in figures.items()}
        fsyncs = postern_fsyncs(work)
        print(f"\nsendmail to Maildir: {N} x {SIZE} B, {STREAMS} streams, {USERS} mailboxes, medians of {ROUNDS}")
        print(f"  postern   {med['postern']:8.0f} msg/s   ({med['postern_cpu_ms']:.2f} ms server CPU per message,"
              f" {fsyncs:.2f} fsync calls per message, counted by strace)")
        print(f"  postfix   {med['postfix']:8.0f} msg/s")
        print(f"  disk-rate {med['disk_rate']:8.0f} ops/s ({STREAMS} jobs)")
        print(f"  postern / postfix = {med['postern'] / med['postfix']:.2f}")
        print(json.dumps({"messages": N, "streams": STREAMS, "rounds": ROUNDS, "medians": med,
                          "fsyncs_per_message": fsyncs, "samples": figures}))


if __name__ == "__main__":
    main()
