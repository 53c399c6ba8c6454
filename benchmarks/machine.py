"""What a benchmark ran on: CPU model, cores and the ISA extensions that decide CPU inference speed
(AVX2, AVX-512, VNNI, BF16), so figures from different machines are never compared blind."""

from __future__ import annotations

import os
import platform
from typing import Any

ISA = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
       "avx512_bf16": "BF16", "amx_bf16": "AMX-BF16"}


def machine() -> dict[str, Any]:
    """CPU model, core count and ISA extensions (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "isa": [name for flag, name in ISA.items() if flag in flags]}
