"""Helpers the Postern benchmarks share: `postern up` in a new sandbox, a
process tree's CPU time, and strace's count of durable-write calls."""
import contextlib, os, shutil, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
BIN = os.path.join(ROOT, "target", "release")
FSYNC_CALLS = "trace=fsync,fdatasync,syncfs"


def cpu_seconds(pid):
    """utime + stime + cutime + cstime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def message(n, size, subject="bench"):
    """A test message of `size` bytes, numbered `n`."""
    head = f"Subject: {subject} {n}\nFrom: bench@example.org\n\n".encode()
    return head + b"x" * (size - len(head) - 1) + b"\n"


def inject_streams(count, streams, command_for, input_for):
    """Runs `count` sendmail processes (`command_for(n)`, fed
    `input_for(n)`), `streams` at a time; returns when they started."""
    failures = []
    def stream(first):
        for n in range(first, count, streams):
            p = subprocess.run(command_for(n), input=input_for(n), capture_output=True)
            if p.returncode != 0:
                failures.append(p.stderr.decode(errors="replace"))
    threads = [threading.Thread(target=stream, args=(s,)) for s in range(streams)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"{len(failures)} injections failed: {failures[0]}")
    return start


def tree_cpu_seconds(root):
    """CPU of a process and every descendant alive now, with the children
    each has reaped: the whole server's CPU, for long-lived workers too."""
    parents, cpu = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        cpu[int(name)] = sum(int(x) for x in fields[11:15])
    def under(pid):
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False
    return sum(t for pid, t in cpu.items() if under(pid)) / os.sysconf("SC_CLK_TCK")


def active_opens():
    """The kernel's count of TCP connections this machine opened."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


def start_up(sandbox, wrapper=()):
    """`postern up` in a new sandbox (under `wrapper`, e.g. strace), once
    its banner says it runs."""
    up = subprocess.Popen([*wrapper, os.path.join(BIN, "postern"), "up", "--dir", sandbox],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in up.stdout:
        if line.startswith("Running in the foreground"):
            break
    return up


def strace_calls(path):
    """The calls strace -c counted of fsync, fdatasync and syncfs."""
    calls = 0
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields and fields[-1] in ("fsync", "fdatasync", "syncfs") and len(fields) >= 5:
                calls += int(fields[3])
    return calls


def add_mailboxes(sandbox, count):
    """Mailboxes user0..user{count-1}@example.test in a sandbox; their
    Maildirs."""
    etc = os.path.join(sandbox, "etc")
    password = os.path.join(etc, "demo.password")
    for u in range(count):
        subprocess.run([os.path.join(BIN, "postern-admin"), "--config", etc, "mailbox", "add",
                        f"user{u}@example.test", "--password-file", password], check=True,
                       capture_output=True)
    return [os.path.join(sandbox, "mail", "example.test", f"user{u}", "Maildir") for u in range(count)]


def pid_of(pattern):
    """The oldest process whose command line holds `pattern`."""
    out = subprocess.run(["pgrep", "-o", "-f", pattern], capture_output=True, text=True).stdout.split()
    return int(out[0])


def port_of(sandbox, service):
    """A sandbox's port for SERVICE, from its etc/ports."""
    with open(os.path.join(sandbox, "etc", "ports")) as f:
        for line in f:
            if line.startswith(service + " "):
                return int(line.split()[1])
    raise SystemExit(f"no {service} port in {sandbox}")


@contextlib.contextmanager
def with_peers(name, prefix):
    """A scratch directory under target/bench and the peers of
    ../shared/bench/peers-up, both gone afterwards. Needs root."""
    if os.geteuid() != 0:
        sys.exit(f"{name}: needs root (the Postfix peer does)")
    base = os.path.join(ROOT, "target", "bench")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(work, 0o755)
    peers = tempfile.mkdtemp(prefix="p.", dir="/tmp")
    try:
        # Not captured: the servers peers-up starts keep its output open,
        # and a reader waiting for end of file would wait for ever.
        subprocess.run([os.path.join(SHARED, "bench", "peers-up"), peers], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield work, peers
    finally:
        subprocess.run([os.path.join(SHARED, "bench", "peers-down"), peers],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(peers, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def empty_maildirs(maildirs):
    """Removes the messages of the peers' Maildirs before a round."""
    for m in maildirs:
        for sub in ("new", "cur"):
            d = os.path.join(m, sub)
            if os.path.isdir(d):
                for name in os.listdir(d):
                    os.unlink(os.path.join(d, name))
