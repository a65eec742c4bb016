"""Where a running process's resident memory is, from /proc/PID/smaps.

Kinds of mapping, told apart the way glibc and the kernel lay them out on
x86-64 Linux:

* the binary and shared libraries (file-backed; mostly pages shared with
  every process using the same files, counted in RSS all the same);
* malloc's main arena ([heap], the brk area);
* malloc's thread arenas: anonymous mappings starting on a 64 MiB boundary
  (glibc's HEAP_MAX_SIZE on 64-bit), one or more per arena;
* thread stacks: anonymous read-write mappings of exactly the default stack
  size (RLIMIT_STACK, usually 8 MiB) right after a guard page;
* other anonymous memory (mmap'ed large allocations, OpenSSL/gRPC caches);
* our SQLite queue's files when mapped (failures.db, its -shm WAL index).

Used by poller_scale_bench.py and tracker_rss_bench.py.
"""

from __future__ import annotations

import os
import resource
import subprocess

MIB = 1024 * 1024
ARENA_ALIGN = 64 * MIB


def _stack_size_kib() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft in (resource.RLIM_INFINITY, 0):
        return 8 * 1024
    return soft // 1024


def _numeric_fields(path: str) -> dict:
    fields = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0])
    return fields


def proc_status(pid: int) -> dict:
    """Numeric fields of /proc/PID/status (kB values as kB)."""
    return _numeric_fields(f"/proc/{pid}/status")


def memory_breakdown(pid: int) -> dict:
    """RSS in MiB by kind of mapping, the smaps_rollup totals, the thread
    count and the number of thread arenas and stacks seen."""
    stack_kib = _stack_size_kib()
    kinds: dict[str, int] = {}
    files: dict[str, int] = {}
    arenas = stacks = 0
    current = path = None
    previous_guard = False
    with open(f"/proc/{pid}/smaps", encoding="utf-8",
              errors="replace") as f:
        for line in f:
            first = line.split(None, 5)
            if "-" in first[0] and len(first) >= 5 and ":" in first[3]:
                start_s, end_s = first[0].split("-")
                start, end = int(start_s, 16), int(end_s, 16)
                perms = first[1]
                path = first[5].strip() if len(first) > 5 else ""
                size_kib = (end - start) // 1024
                if path == "[heap]":
                    current = "malloc main arena ([heap])"
                elif path == "[stack]":
                    current = "main thread stack"
                elif path.endswith("failures.db-shm"):
                    # The SQLite queue's WAL index (tracker or poller spool).
                    current = "SQLite WAL index (failures.db-shm)"
                elif path.startswith("/") and "failures.db" in path:
                    current = "failures.db mapped"
                elif path.startswith("/"):
                    current = "binary and shared libraries (file-backed)"
                elif path.startswith("["):
                    current = f"other {path}"
                elif start % ARENA_ALIGN == 0 and perms.startswith("rw"):
                    current = "malloc thread arenas"
                    arenas += 1
                elif (previous_guard and perms.startswith("rw")
                      and size_kib == stack_kib):
                    current = "thread stacks"
                    stacks += 1
                else:
                    current = "other anonymous (large mallocs, caches)"
                previous_guard = perms.startswith("---") and not path
            elif line.startswith("Rss:") and current is not None:
                kb = int(line.split()[1])
                kinds[current] = kinds.get(current, 0) + kb
                if path.startswith("/"):
                    name = os.path.basename(path)
                    files[name] = files.get(name, 0) + kb
    rollup = _numeric_fields(f"/proc/{pid}/smaps_rollup")
    status = proc_status(pid)
    return {
        "kinds": {k: v / 1024 for k, v in sorted(kinds.items(),
                                                 key=lambda kv: -kv[1])},
        "top_files": {k: v / 1024 for k, v in sorted(
            files.items(), key=lambda kv: -kv[1])[:6]},
        "rollup_rss": rollup.get("Rss", 0) / 1024,
        "rollup_pss": rollup.get("Pss", 0) / 1024,
        "rollup_anonymous": rollup.get("Anonymous", 0) / 1024,
        "rss_anon": status.get("RssAnon", 0) / 1024,
        "rss_file": status.get("RssFile", 0) / 1024,
        "rss_shmem": status.get("RssShmem", 0) / 1024,
        "threads": status.get("Threads", 0),
        "arenas": arenas,
        "stacks": stacks,
    }


def format_breakdown(title: str, breakdown: dict) -> str:
    lines = [
        f"{title}: Rss {breakdown['rollup_rss']:.1f} MiB (Pss "
        f"{breakdown['rollup_pss']:.1f}; RssAnon {breakdown['rss_anon']:.1f}, "
        f"RssFile {breakdown['rss_file']:.1f}, RssShmem "
        f"{breakdown['rss_shmem']:.1f}), {breakdown['threads']} threads, "
        f"{breakdown['arenas']} thread-arena mappings, "
        f"{breakdown['stacks']} thread stacks"]
    for kind, mib in breakdown["kinds"].items():
        if mib >= 0.05:
            lines.append(f"  {mib:7.1f} MiB  {kind}")
    lines.append("  largest files: " + ", ".join(
        f"{name} {mib:.1f}" for name, mib in breakdown["top_files"].items()))
    return "\n".join(lines)


def linked_libraries(binary: str) -> str:
    """One line on what `binary` loads at start (ldd): the number of shared
    libraries and which libcurl, since the static lean build
    (scripts/build-curl.sh) and Debian's libcurl.so differ by about 25
    libraries and, for the poller at 1000 servers, 3.8 MiB of resident
    memory (tests/bench/README.md)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    libs = [line.split()[0] for line in out.splitlines()
            if "=>" in line or line.strip().startswith("/")]
    curl = [lib for lib in libs if lib.startswith("libcurl")]
    return (f"{os.path.basename(binary)} loads {len(libs)} shared libraries; "
            f"libcurl: {curl[0] if curl else 'static (linked in)'}")
