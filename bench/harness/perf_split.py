#!/usr/bin/env python3
"""perf_split.py - where a blocking scenario's client CPU goes, from perf.

Runs fsesl-bench on one scenario at a time and attaches perf to the
client process only (the simulators live in a child process, which perf
-p does not follow), in the middle of the measured window:

  profile  perf record -g; every sample is put in one bucket by its
           kernel call chain (waking others, sleeping, being preempted,
           socket I/O, ...), separately for the I/O thread (the busiest
           thread: the engine's reactor, the baseline's I/O thread) and
           the callers (every other thread).
  stat     perf stat -e task-clock,context-switches over exactly the
           harness's measured window (FSESL_BENCH_PERF_CTL: the window's
           edges enable and disable perf's counters), set beside the
           harness's own client CPU and context switches: a check of
           cpu.c's figure by an independent counter.

Needs perf and root (or perf_event_paranoid <= 1). docs/benchmarks.md
shows what it printed. Usage:

  bench/harness/perf_split.py [--bench PATH] [--seconds N] profile|stat SCENARIO...
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

# First match wins, looked up anywhere in the kernel call chain. io_uring's
# futex wake calls futex_wake, so it comes first.
BUCKETS = [
    ("wake others: io_uring_enter", ("__do_sys_io_uring_enter", "io_submit_sqes")),
    ("wake others: FUTEX_WAKE", ("futex_wake",)),
    ("sleep: FUTEX_WAIT (incl. the switch back)", ("futex_wait", "__futex_wait")),
    ("preempted (resched IPI, or at syscall exit)",
     ("asm_sysvec_reschedule_ipi", "irqentry_exit_to_user_mode", "exit_to_user_mode_loop")),
    ("epoll_wait", ("do_epoll_wait",)),
    ("doorbell: eventfd", ("eventfd_write", "eventfd_read")),
    ("socket send", ("tcp_sendmsg", "__sys_sendto")),
    ("socket recv", ("tcp_recvmsg", "__sys_recvfrom")),
    ("other syscalls", ("do_syscall_64",)),
]
OTHER = "user space (parse, match, spin, ...)"


def start_bench(bench, scenario, seconds, extra, env=None):
    out = tempfile.NamedTemporaryFile(prefix="perf_split-", suffix=".json", delete=False)
    # A window long enough that perf sees only its middle.
    args = [bench, "--only", scenario, "--duration", str(seconds + 6), "--json",
            "--no-progress"] + extra
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL, env=env)
    return p, out.name


def finish_bench(p, path):
    if p.wait() != 0:
        sys.exit(f"perf_split: fsesl-bench failed (exit {p.returncode})")
    with open(path) as f:
        sc = json.load(f)["scenarios"][0]
    os.unlink(path)
    return sc


def samples(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    cur = None
    for line in out.splitlines():
        if not line.strip():
            if cur:
                yield cur
            cur = None
        elif not line[0].isspace():
            if cur:
                yield cur
            cur = (int(line.split()[0]), set())
        else:
            parts = line.split()
            if len(parts) > 1:
                cur[1].add(parts[1])
    if cur:
        yield cur


def bucket(chain):
    for name, keys in BUCKETS:
        if any(k in chain for k in keys):
            return name
    return OTHER


def profile(args, scenario):
    p, path = start_bench(args.bench, scenario, args.seconds, args.extra)
    time.sleep(3)
    with tempfile.NamedTemporaryFile(prefix="perf_split-", suffix=".data") as data:
        subprocess.run(["perf", "record", "-q", "-F", "1999", "-e", "cpu-clock", "-g",
                        "-p", str(p.pid), "-o", data.name, "--", "sleep", str(args.seconds)],
                       check=True, stderr=subprocess.DEVNULL)
        sc = finish_bench(p, path)
        all_samples = list(samples(data.name))
    n = len(all_samples)
    by_tid = collections.Counter(t for t, _ in all_samples)
    io_tid = by_tid.most_common(1)[0][0]
    print(f"\n{scenario}: {sc['cmds_per_s']:.0f} cmds/s, client CPU {sc['cpu_us_per_cmd']:.1f} us/cmd"
          f" (I/O side {sc['io_cpu_us_per_cmd'] or 0:.1f}), {n} samples")
    for label, sel in (("I/O thread", lambda t: t == io_tid), ("callers", lambda t: t != io_tid)):
        chains = [c for t, c in all_samples if sel(t)]
        counts = collections.Counter(bucket(c) for c in chains)
        switch = sum(1 for c in chains if "finish_task_switch.isra.0" in c or "finish_task_switch" in c)
        ttwu = sum(1 for c in chains if "try_to_wake_up" in c)
        print(f"  {label}: {100 * len(chains) / n:.1f} % of the client's samples")
        for name, k in counts.most_common():
            print(f"    {100 * k / n:5.1f} % of client  {name}")
        print(f"    ({100 * switch / n:.1f} % of client under finish_task_switch,"
              f" {100 * ttwu / n:.1f} % under try_to_wake_up)")


def stat(args, scenario):
    with tempfile.TemporaryDirectory(prefix="perf_split-") as d:
        ctl, ack = os.path.join(d, "ctl"), os.path.join(d, "ack")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        env = dict(os.environ, FSESL_BENCH_PERF_CTL=f"{ctl},{ack}")
        p, path = start_bench(args.bench, scenario, args.seconds, args.extra, env)
        # Attach after the simulators' process is forked (at start), so
        # that only the client's threads - and those it creates - count.
        time.sleep(0.1)
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock,context-switches",
                                 "-D", "-1", "--control", f"fifo:{ctl},{ack}",
                                 "-p", str(p.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sc = finish_bench(p, path)
        err = perf.communicate()[1]
    ev = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            ev[f[2]] = float(f[0])
    n = sc["commands"]
    print(f"{scenario}: {sc['cmds_per_s']:.0f} cmds/s; client CPU per command: fsesl-bench"
          f" {sc['cpu_us_per_cmd']:.2f} us (getrusage {sc['rusage_cpu_us_per_cmd']:.2f}),"
          f" perf stat task-clock {ev['task-clock'] * 1e3 / n:.2f} us;"
          f" context switches per command {sc['ctx_switches_per_cmd']:.2f},"
          f" perf {ev['context-switches'] / n:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench/harness/fsesl-bench")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--extra", action="append", default=[],
                    help="one more fsesl-bench argument (repeatable)")
    ap.add_argument("mode", choices=("profile", "stat"))
    ap.add_argument("scenarios", nargs="+")
    args = ap.parse_args()
    for sc in args.scenarios:
        (profile if args.mode == "profile" else stat)(args, sc)


if __name__ == "__main__":
    main()
