"""Energy model of the spiking papers: E = E_MAC x MACs (real-valued inputs) + E_AC x SOPs (spike inputs).

Costs per operation in pJ, 45 nm CMOS (Horowitz, ISSCC 2014): fp32 MAC = mult 3.7 + add 0.9 = 4.6, fp32
AC = add 0.9 (the SDT / QSD default); fp16 MAC = 1.1 + 0.4, AC = 0.4; int8 MAC = 0.2 + 0.03, AC = 0.03.
"""

from __future__ import annotations

from bench.errors import check_choice

ENERGY_PRESETS: dict[str, tuple[float, float]] = {
    "fp32_45nm": (4.6, 0.9),
    "fp16_45nm": (1.5, 0.4),
    "int8_45nm": (0.23, 0.03),
}


def energy_mj(mac_ops: float, sops: float, preset: str = "fp32_45nm") -> float:
    """Energy in mJ of ``mac_ops`` multiply-accumulates and ``sops`` accumulates under ``preset``."""
    check_choice("energy preset", preset, ENERGY_PRESETS)
    e_mac, e_ac = ENERGY_PRESETS[preset]
    return (e_mac * mac_ops + e_ac * sops) * 1e-9
