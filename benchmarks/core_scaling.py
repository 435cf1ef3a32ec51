"""How much more a thread's work costs when every core works at once, on work that
stays in each core's own caches: the machine's own limit on a thread speed-up (part of
``benchmarks/firmware_p6m.py``).

The work is a CRC-32 by table look-ups (the firmware's packetiser's kind of work) over
16 KiB, again and again: 20 KiB in all with its tables, inside a core's L1 and L2, so
the threads share no memory traffic. Its CPU time per pass on ``workers`` threads at
once, over one thread's alone (each the best of ``repeat`` runs, timed in turn), is 1.0
where the cores are independent; above 1 where they are not (two virtual CPUs on one
physical core's hyper-threads, or a clock that drops when more cores run). A workload
whose ratio is above this one's loses the rest to what the cores share: the last-level
cache and memory.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from numba import njit

from fpga.designs.crc import CRC_T0, CRC_T1, CRC_T2, CRC_T3

TABLES = np.array([CRC_T0, CRC_T1, CRC_T2, CRC_T3], dtype=np.uint32)
DATA = np.random.default_rng(1).integers(0, 2**32, 4096, dtype=np.uint32)  # 16 KiB


@njit(nogil=True, cache=True)
def _crc_passes(tables: np.ndarray, data: np.ndarray, passes: int) -> int:  # pragma: no cover
    """The CRCs of the four quarters of ``data``, ``passes`` times: four independent
    chains of look-ups, as the packetiser's step has, so that a core's load ports, not
    one chain's latency, bound it (what a hyper-thread sharing the core takes away)."""
    a = b = c = d = np.uint32(0xFFFFFFFF)
    q = data.size // 4
    for _ in range(passes):
        for i in range(q):
            a ^= data[i]
            b ^= data[q + i]
            c ^= data[2 * q + i]
            d ^= data[3 * q + i]
            a = (tables[3, a & 0xFF] ^ tables[2, (a >> 8) & 0xFF]
                 ^ tables[1, (a >> 16) & 0xFF] ^ tables[0, a >> 24])
            b = (tables[3, b & 0xFF] ^ tables[2, (b >> 8) & 0xFF]
                 ^ tables[1, (b >> 16) & 0xFF] ^ tables[0, b >> 24])
            c = (tables[3, c & 0xFF] ^ tables[2, (c >> 8) & 0xFF]
                 ^ tables[1, (c >> 16) & 0xFF] ^ tables[0, c >> 24])
            d = (tables[3, d & 0xFF] ^ tables[2, (d >> 8) & 0xFF]
                 ^ tables[1, (d >> 16) & 0xFF] ^ tables[0, d >> 24])
    return int(a ^ b ^ c ^ d)


def _thread_cpu_s(workers: int, passes: int) -> float:
    """The mean thread CPU seconds of ``passes`` passes on each of ``workers`` threads
    started together."""
    spent: list[float] = []
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        t = time.thread_time()
        _crc_passes(TABLES, DATA, passes)
        spent.append(time.thread_time() - t)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(spent) / workers


def core_scaling(workers: int, repeat: int = 5, passes: int = 10000) -> float:
    """CPU time per pass on ``workers`` threads at once over one thread's alone (see the
    module docstring); 1.0 for one worker."""
    _crc_passes(TABLES, DATA, 1)  # (compiled, or loaded from numba's cache)
    alone = together = float("inf")
    for _ in range(repeat):
        alone = min(alone, _thread_cpu_s(1, passes))
        together = min(together, _thread_cpu_s(workers, passes))
    return together / alone
