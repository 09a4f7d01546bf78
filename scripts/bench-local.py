#!/usr/bin/env python3
"""bench-local.py — local delivery speed, as ratios to the disk's own rate.

Delivers 10,000 messages of 4 KiB into 100 virtual mailboxes with the
release build of postern-local, and measures in the same run, interleaved:

  disk-rate     ../shared/bench/disk-rate: write+fsync+rename+dir-fsync, the
                floor every durable Maildir writer pays (1 and 10 jobs)
  true          starting /bin/true as often: what a process start costs
  refuse        postern-local for an unknown address: start, config, maps,
                resolution, no write (where the time of (a) goes)
  (a) process   one postern-local per delivery, 1 and 10 at a time
  (b) batch     postern-local --batch, one process per writer (1 and 10)

Each figure is operations per second, the median of ROUNDS rounds; ratios
divide by disk-rate with the same number of writers. Prints a table and a
JSON line. Runs as root (mail owned by a numeric uid) or as a user.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release")
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
MAILBOXES = 100
SIZE = 4096
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DOMAIN = "bench.test"


def setup(work):
    etc, mail, queue = (os.path.join(work, d) for d in ("etc", "mail", "queue"))
    for d in (etc, mail, queue):
        os.makedirs(d)
    uid, gid = (64200, 64200) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    with open(os.path.join(etc, "postern.toml"), "w") as f:
        f.write(f'hostname = "bench.local"\nmail_root = "{mail}"\nqueue_dir = "{queue}"\n'
                f'mail_owner = "{uid}:{gid}"\nlog = "syslog"\n')
    with open(os.path.join(etc, "domains"), "w") as f:
        f.write(f"{DOMAIN} virtual\n")
    with open(os.path.join(etc, "accounts"), "w") as f:
        for i in range(MAILBOXES):
            f.write(f"user{i}@{DOMAIN}:{{PLAIN}}bench::::::\n")
    for path, _, _ in os.walk(mail):
        os.chown(path, uid, gid)
    maildirs = []
    for i in range(MAILBOXES):
        md = os.path.join(mail, DOMAIN, f"user{i}", "Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub), mode=0o700)
        maildirs.append(md)
    for path, dirs, _ in os.walk(mail):
        os.chown(path, uid, gid)
    # In the queue directory: root-run batches read only from beneath it.
    message = os.path.join(queue, "message")
    body = b"From: bench@example.org\nTo: user@bench.test\nSubject: bench\n\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\n"
    body += line * ((SIZE - len(body)) // len(line))
    body += b"x" * (SIZE - len(body) - 1) + b"\n"
    with open(message, "wb") as f:
        f.write(body)
    return etc, maildirs, message


def clear(maildirs):
    for md in maildirs:
        for sub in ("new", "tmp"):
            d = os.path.join(md, sub)
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))


def count(maildirs):
    return sum(len(os.listdir(os.path.join(md, "new"))) for md in maildirs)


def run_pool(commands, jobs, stdin_path=None):
    """Runs the commands, `jobs` at a time; returns (seconds, failures)."""
    t0 = time.monotonic()
    running, failures, pending = [], 0, list(commands)
    while pending or running:
        while pending and len(running) < jobs:
            stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
            running.append((subprocess.Popen(pending.pop(), stdin=stdin, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL), stdin))
        still = []
        for proc, stdin in running:
            if proc.poll() is None:
                still.append((proc, stdin))
            else:
                failures += proc.returncode not in (0, 67)
                if stdin_path:
                    stdin.close()
        running = still
        if running:
            time.sleep(0.0002)
    return time.monotonic() - t0, failures


def per_process(etc, message, jobs, recipient=None):
    local = os.path.join(BIN, "postern-local")
    commands = [[local, "--config", etc, "-f", "bench@example.org",
                 recipient or f"user{i % MAILBOXES}@{DOMAIN}"] for i in range(MESSAGES)]
    secs, failures = run_pool(commands, jobs, message)
    return MESSAGES / secs, failures


def true_rate(jobs):
    secs, failures = run_pool([["/bin/true"]] * MESSAGES, jobs)
    return MESSAGES / secs, failures


def batch(etc, message, jobs):
    local = os.path.join(BIN, "postern-local")
    share = [MESSAGES // jobs + (j < MESSAGES % jobs) for j in range(jobs)]
    inputs, n = [], 0
    for j in range(jobs):
        lines = []
        for _ in range(share[j]):
            lines.append(f"{message}\t0\tbench@example.org\tuser{n % MAILBOXES}@{DOMAIN}\t-\t0\t0\n")
            n += 1
        inputs.append("".join(lines).encode())
    t0 = time.monotonic()
    procs = [subprocess.Popen([local, "--config", etc, "--batch"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(jobs)]
    # Feed and drain each from its own thread so no pipe fills up.
    import threading
    outs = [None] * jobs
    def drive(i):
        outs[i] = procs[i].communicate(inputs[i])[0]
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    failures = sum(1 for out in outs for line in out.decode().splitlines() if line.split("\t")[1] != "0")
    return MESSAGES / secs, failures


def disk_rate(work, jobs):
    out = subprocess.run([os.path.join(SHARED, "bench", "disk-rate"), work, str(MESSAGES), str(SIZE), str(jobs)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ops_per_s"], 0


def main():
    if not os.path.exists(os.path.join(BIN, "postern-local")):
        sys.exit("bench-local: build first (make bench does)")
    if not os.path.exists(os.path.join(SHARED, "bench", "disk-rate")):
        sys.exit(f"bench-local: {SHARED}/bench/disk-rate is missing (set SHARED)")
    base = os.path.join(ROOT, "target", "bench")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="local.", dir=base)
    os.chmod(work, 0o755)
    try:
        etc, maildirs, message = setup(work)
        figures = {}
        plan = []
        for jobs in (1, 10):
            plan += [
                (f"disk_rate_{jobs}", lambda j=jobs: disk_rate(work, j), False),
                (f"true_{jobs}", lambda j=jobs: true_rate(j), False),
                (f"refuse_{jobs}", lambda j=jobs: per_process(etc, message, j, f"nobody@{DOMAIN}"), False),
                (f"process_{jobs}", lambda j=jobs: per_process(etc, message, j), True),
                (f"batch_{jobs}", lambda j=jobs: batch(etc, message, j), True),
            ]
        for round_ in range(ROUNDS):
            for name, run, delivers in plan:
                clear(maildirs)
                rate, failures = run()
                if delivers and count(maildirs) != MESSAGES:
                    sys.exit(f"{name}: {count(maildirs)} of {MESSAGES} delivered ({failures} failures)")
                figures.setdefault(name, []).append(rate)
                print(f"round {round_ + 1} {name}: {rate:.0f}/s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"\nlocal delivery of {MESSAGES} x {SIZE} B into {MAILBOXES} mailboxes, medians of {ROUNDS} (per second)")
        print(f"{'':22} {'1 writer':>10} {'10 writers':>11}")
        for label, key in [("disk-rate", "disk_rate"), ("/bin/true starts", "true"),
                           ("refusal (no write)", "refuse"), ("(a) process each", "process"),
                           ("(b) --batch", "batch")]:
            print(f"{label:22} {med[key + '_1']:10.0f} {med[key + '_10']:11.0f}")
        for key in ("process", "batch"):
            print(f"{key} / disk-rate: {med[key + '_1'] / med['disk_rate_1']:.2f} (1), "
                  f"{med[key + '_10'] / med['disk_rate_10']:.2f} (10)")
        # Where a per-process delivery's time goes, per message, 1 writer.
        per = lambda key: 1000 / med[key + "_1"]
        print(f"(a) per message: {per('process'):.2f} ms = process start {per('true'):.2f} ms"
              f" + Postern start, config and maps {per('refuse') - per('true'):.2f} ms"
              f" + the rest {per('process') - per('refuse'):.2f} ms (disk-rate alone {per('disk_rate'):.2f} ms)")
        print(json.dumps({"messages": MESSAGES, "size": SIZE, "mailboxes": MAILBOXES, "rounds": ROUNDS,
                          "medians": med, "samples": figures}))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
