#!/usr/bin/env python3
"""bench-pop3.py — POP3 beside Dovecot.

../shared/bench/fill-maildir fills a 10,000-message mailbox with the same
seed for Postern (`postern up`, user0@example.test) and for the Dovecot of
../shared/bench/peers-up (user0); ../shared/bench/pop3-bench measures
each, alternately in the same run: connect+login+STAT+UIDL+LIST, RETR of
100 messages, the memory of an idle logged-in session, and the first
login on a mailbox the server has never opened (`--cold`, with each
server's own index or cache removed). Needs root (peers-up does).
Environment: BENCH_POP3_MESSAGES (10000), BENCH_POP3_ROUNDS (3),
BENCH_POP3_RUNS (5, runs per pop3-bench call).
"""
import json, os, shutil, signal, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_bench import SHARED, add_mailboxes, port_of, start_up, with_peers  # noqa: E402

N = int(os.environ.get("BENCH_POP3_MESSAGES", "10000"))
ROUNDS = int(os.environ.get("BENCH_POP3_ROUNDS", "3"))
RUNS = int(os.environ.get("BENCH_POP3_RUNS", "5"))
SEED = "42"


def bench(port, user, password, cold=None):
    args = [os.path.join(SHARED, "bench", "pop3-bench"), "127.0.0.1", str(port), user, password,
            "--runs", str(RUNS if cold is None else 1)]
    if cold:
        args += ["--cold", cold]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"pop3-bench failed: {out.stdout} {out.stderr}")
    return json.loads(out.stdout)


def fill(maildir):
    out = subprocess.run([os.path.join(SHARED, "bench", "fill-maildir"), maildir, str(N), "--seed", SEED],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    with with_peers("bench-pop3", "p.") as (work, peers):
        sandbox = os.path.join(work, "postern")
        up = start_up(sandbox)
        try:
            maildir = add_mailboxes(sandbox, 1)[0]
            password = open(os.path.join(sandbox, "etc", "demo.password")).read().strip()
            fill(maildir)
            dovecot_maildir = os.path.join(peers, "mail", "user0", "Maildir")
            fill(dovecot_maildir)
            port = port_of(sandbox, "POP3")
            postern_cold = f"rm -f {maildir}/postern-pop3-cache"
            dovecot_cold = f"rm -f {dovecot_maildir}/dovecot*"
            keys = ("login_stat_uidl_list_s", "retr_s")
            figures = {side: {k: [] for k in keys + ("rss_kib", "uss_kib", "cold_login_s")}
                       for side in ("postern", "dovecot")}
            for r in range(ROUNDS):
                for side, result in (
                        ("postern", lambda c=None: bench(port, "user0@example.test", password, c)),
                        ("dovecot", lambda c=None: bench(3110, "user0", "bench", c))):
                    cold = result(postern_cold if side == "postern" else dovecot_cold)
                    warm = result()
                    for k in keys:
                        figures[side][k].append(warm[k])
                    figures[side]["rss_kib"].append(warm["idle_session"]["rss_kib"])
                    figures[side]["uss_kib"].append(warm["idle_session"]["uss_kib"])
                    figures[side]["cold_login_s"].append(cold["login_stat_uidl_list_s"])
                    print(f"round {r + 1} {side}: {json.dumps({k: v[-1] for k, v in figures[side].items()})}",
                          file=sys.stderr)
                    if warm["retr_bytes"] == 0:
                        sys.exit(f"{side} sent no bytes")
            med = {side: {k: statistics.median(v) for k, v in f.items()} for side, f in figures.items()}
            print(f"\nPOP3: {N} messages, medians of {ROUNDS} rounds ({RUNS} runs each, warm)")
            for k in ("login_stat_uidl_list_s", "retr_s", "cold_login_s", "rss_kib", "uss_kib"):
                p, d = med["postern"][k], med["dovecot"][k]
                print(f"  {k:24} postern {p:10.4f}  dovecot {d:10.4f}  ratio {p / d:5.2f}")
            print(json.dumps({"messages": N, "rounds": ROUNDS, "medians": med, "samples": figures}))
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)
            shutil.rmtree(sandbox, ignore_errors=True)


if __name__ == "__main__":
    main()
