#!/usr/bin/env python3
"""Who held the CPU while a thread waited for one: reads a system-wide
`sched_switch` trace and, for every time the thread was preempted (switched
out runnable) and stayed off its CPU for at least --min-ms, sums the time
each other thread ran on that CPU meanwhile, and lists the longest of those
turns with the kernel and user stack at which each ended.

    perf record -e sched:sched_switch -g -a -o sw.data -- \
        target/release/scale child mapview 1024 FILE 1073741824
    perf script -i sw.data -F cpu,time,trace,ip,sym > sw.txt
    python3 benches/cpu_waits.py sw.txt TID [--min-ms 10]

TID is the waiting thread's id: for `scale child`, the process id (its
runtime runs on the main thread). Standard library only.
"""

import argparse
import collections
import re

SWITCH = re.compile(
    r"\[(\d+)\]\s+([\d.]+): prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ "
    r"prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)

# Frames of the switch itself, which every stack starts with.
SCHEDULER = ("__schedule", "schedule", "0x")


class Switch:
    """One sched_switch event and the stack of the thread it switched out."""

    def __init__(self, match):
        self.cpu = int(match[1])
        self.time = float(match[2])
        self.prev_comm = match[3]
        self.prev_pid = int(match[4])
        self.prev_state = match[5]
        self.next_comm = match[6]
        self.next_pid = int(match[7])
        self.stack = []


def read_switches(path):
    switches = []
    for line in open(path):
        match = SWITCH.match(line)
        if match:
            switches.append(Switch(match))
        elif switches and line.strip():
            frame = line.split()
            if len(frame) >= 2 and not frame[1].startswith(SCHEDULER):
                switches[-1].stack.append(frame[1])
    return switches


def turns_by_cpu(switches):
    """Per CPU: the turns, (start, end, comm, the switch that ended it), and
    the spans where events were lost (perf drops some under load): a turn
    whose end switched out another thread than the one it switched in."""
    turns = collections.defaultdict(list)
    lost = collections.defaultdict(list)
    started = {}
    for switch in switches:
        if switch.cpu in started:
            start, comm, pid = started[switch.cpu]
            if pid == switch.prev_pid:
                turns[switch.cpu].append((start, switch.time, comm, switch))
            else:
                lost[switch.cpu].append((start, switch.time))
        started[switch.cpu] = (switch.time, switch.next_comm, switch.next_pid)
    return turns, lost


def preempted_waits(switches, tid, min_seconds):
    """(start, end, cpu) of each time `tid` was switched out runnable and
    came back at least `min_seconds` later."""
    waits = []
    out = None
    for switch in switches:
        if switch.prev_pid == tid:
            runnable = switch.prev_state.startswith("R")
            out = (switch.time, switch.cpu) if runnable else None
        elif switch.next_pid == tid and out is not None:
            if switch.time - out[0] >= min_seconds:
                waits.append((out[0], switch.time, out[1]))
            out = None
    return waits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", help="`perf script -F cpu,time,trace,ip,sym` output")
    parser.add_argument("tid", type=int, help="the waiting thread's id")
    parser.add_argument("--min-ms", type=float, default=10.0)
    parser.add_argument("--longest", type=int, default=12)
    args = parser.parse_args()

    switches = read_switches(args.trace)
    turns, lost = turns_by_cpu(switches)
    waits = preempted_waits(switches, args.tid, args.min_ms / 1000)
    # A wait with events lost on its CPU may not have been one at all (the
    # thread's own switches may be among those lost): left out.
    seen = [
        (start, end, cpu)
        for start, end, cpu in waits
        if not any(a < end and b > start for a, b in lost[cpu])
    ]
    print(f"{len(seen)} preempted waits of {args.min_ms:g} ms or more, "
          f"{sum(end - start for start, end, _ in seen):.3f} s in all "
          f"({len(waits) - len(seen)} more with events lost, left out)")
    waits = seen

    held = collections.Counter()
    longest = []
    for start, end, cpu in waits:
        for turn_start, turn_end, comm, ended in turns[cpu]:
            overlap = min(turn_end, end) - max(turn_start, start)
            if overlap <= 0:
                continue
            held[re.sub(r"[\d/:.-]+$", "", comm)] += overlap
            longest.append((turn_end - turn_start, comm, ended))
    print("CPU held during the waits, by thread name (s):")
    for name, seconds in held.most_common(10):
        print(f"  {name:<20} {seconds:.3f}")
    print("The longest turns that overlapped a wait, and where each ended:")
    longest.sort(key=lambda turn: -turn[0])
    for seconds, comm, ended in longest[: args.longest]:
        frames = " < ".join(ended.stack[:7])
        print(f"  {seconds * 1000:6.1f} ms {comm} (then {ended.prev_state}) at {frames}")


if __name__ == "__main__":
    main()
