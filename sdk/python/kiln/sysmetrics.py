"""System metrics of a run, sampled on an interval as ``system/*`` metrics.

Linux, stdlib only: CPU from ``/proc/stat``, memory from ``/proc/meminfo``,
the process's resident memory from ``/proc/self/statm``, disk from
``os.statvfs`` and, when ``libnvidia-ml.so.1`` loads, every GPU's
utilization, memory and power through NVML (ctypes). Metric names follow
MLflow's: ``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``,
``system/system_memory_usage_percentage``, ``system/process_memory_rss_megabytes``,
``system/disk_usage_percentage``, ``system/gpu_<i>_utilization_percentage``,
``system/gpu_<i>_memory_usage_megabytes``, ``system/gpu_<i>_memory_usage_percentage``,
``system/gpu_<i>_power_usage_watts``. Each sample is one step (0, 1, 2, ...).
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["SystemMetricsMonitor", "sample", "Nvml"]

_MB = 1024.0 * 1024.0


def _cpu_times() -> Optional[Tuple[int, int]]:
    """(busy, total) jiffies of all CPUs."""
    try:
        with open("/proc/stat", "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != b"cpu":
        return None
    vals = [int(x) for x in first[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])  # guest time is already counted in user
    return total - idle, total


def _meminfo() -> Dict[str, int]:
    out: Dict[str, int] = {}
    try:
        with open("/proc/meminfo", "r") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[name] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


class Nvml:
    """The few NVML calls needed, through ctypes; ``Nvml.load()`` is None
    when the library or a GPU is absent."""

    class _Util(ctypes.Structure):
        _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

    class _Mem(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    def __init__(self, lib: ctypes.CDLL, count: int) -> None:
        self.lib = lib
        self.count = count
        self.handles: List[ctypes.c_void_p] = []
        for i in range(count):
            h = ctypes.c_void_p()
            if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)) == 0:
                self.handles.append(h)

    @classmethod
    def load(cls) -> Optional["Nvml"]:
        for name in ("libnvidia-ml.so.1", "libnvidia-ml.so"):
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            return None
        try:
            if lib.nvmlInit_v2() != 0:
                return None
            n = ctypes.c_uint()
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(n)) != 0 or n.value == 0:
                return None
            return cls(lib, n.value)
        except AttributeError:
            return None

    def sample(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for i, h in enumerate(self.handles):
            u = self._Util()
            if self.lib.nvmlDeviceGetUtilizationRates(h, ctypes.byref(u)) == 0:
                out[f"system/gpu_{i}_utilization_percentage"] = float(u.gpu)
            m = self._Mem()
            if self.lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m)) == 0 and m.total:
                out[f"system/gpu_{i}_memory_usage_megabytes"] = m.used / _MB
                out[f"system/gpu_{i}_memory_usage_percentage"] = 100.0 * m.used / m.total
            p = ctypes.c_uint()
            if self.lib.nvmlDeviceGetPowerUsage(h, ctypes.byref(p)) == 0:
                out[f"system/gpu_{i}_power_usage_watts"] = p.value / 1000.0
        return out

    def close(self) -> None:
        try:
            self.lib.nvmlShutdown()
        except Exception:  # pragma: no cover
            pass


def sample(prev_cpu: Optional[Tuple[int, int]], nvml: Optional[Nvml] = None,
           ) -> Tuple[Dict[str, float], Optional[Tuple[int, int]]]:
    """One sample; pass the previous CPU times back in for the CPU %."""
    out: Dict[str, float] = {}
    cpu = _cpu_times()
    if cpu is not None and prev_cpu is not None and cpu[1] > prev_cpu[1]:
        out["system/cpu_utilization_percentage"] = 100.0 * (cpu[0] - prev_cpu[0]) / (cpu[1] - prev_cpu[1])
    mem = _meminfo()
    total, avail = mem.get("MemTotal"), mem.get("MemAvailable")
    if total and avail is not None:
        used = total - avail
        out["system/system_memory_usage_megabytes"] = used / _MB
        out["system/system_memory_usage_percentage"] = 100.0 * used / total
    try:
        with open("/proc/self/statm") as f:
            rss_pages = int(f.read().split()[1])
        out["system/process_memory_rss_megabytes"] = rss_pages * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError):
        pass
    try:
        st = os.statvfs("/")
        if st.f_blocks:
            out["system/disk_usage_percentage"] = 100.0 * (st.f_blocks - st.f_bfree) / st.f_blocks
            out["system/disk_available_megabytes"] = st.f_bavail * st.f_frsize / _MB
    except OSError:
        pass
    if nvml is not None:
        try:
            out.update(nvml.sample())
        except Exception:  # a GPU vanished: keep the rest
            pass
    return out, cpu


class SystemMetricsMonitor:
    """A daemon thread calling ``log(metrics, step)`` every ``interval`` seconds
    (first sample after one interval, so the CPU % covers it), and once more
    at :meth:`stop`."""

    def __init__(self, log: Callable[[Dict[str, float], int], None], interval: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.log = log
        self.interval = float(interval)
        self.step = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-sysmetrics", daemon=True)
        self._nvml = Nvml.load()
        self._cpu = _cpu_times()

    @property
    def has_gpu(self) -> bool:
        return self._nvml is not None

    def start(self) -> None:
        self._thread.start()

    def _emit(self) -> None:
        metrics, self._cpu = sample(self._cpu, self._nvml)
        if metrics:
            self.log(metrics, self.step)
            self.step += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._emit()
            except Exception:  # pragma: no cover - sampling must never break training
                pass

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        try:
            self._emit()
        except Exception:  # pragma: no cover
            pass
        if self._nvml is not None:
            self._nvml.close()
