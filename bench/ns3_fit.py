"""Fit the link-abstraction parameters of cosim's ``lte`` preset to the ns-3 reference times.

Model (the flow-level abstraction the engine implements, per direction):

    T = L + 8·bytes / (x·B·(1 − OH)·min(log2(1 + SINR(x)/Γ), SE_max)),   0 rate if SINR(x) < SINR_min

with x = 1/k the share of each of the k measured flows of the cell (equal sharing),
uplink SINR(x) = S/(x·(I + N)) (the UE puts its power on its share; I = full-power
uplink of the loaded neighbour's device, N = thermal noise with the eNB's 5 dB noise
figure), downlink SINR = S/(I + N) (eNB power per resource; I from a loaded neighbour
eNB at 43 dBm; UE noise figure 9 dB). S and I use the path loss stored with each case.

The fit is a grid search minimising the worst |ln(T_model/T_ns3)| over the cases ns-3
completes, with one access latency L shared by both directions (as ``LinkPreset``
has; the L minimising the sum of both directions' worst log errors); SINR_min is put midway between the highest SINR at which ns-3 never delivered
and the lowest at which it did, so every ns-3 outage is an outage of the model.
"""

from __future__ import annotations

import math

import numpy as np

from ns3_cases import CASES, LOAD, MEASURED, PAYLOAD_BYTES

BANDWIDTH_HZ = 20e6
UE_POWER_DBM, ENB_POWER_DBM = 23.0, 43.0
ENB_NF_DB, UE_NF_DB = 5.0, 9.0


def _noise_dbm(nf_db: float) -> float:
    return -174.0 + 10.0 * math.log10(BANDWIDTH_HZ) + nf_db


def case_links(ref: dict) -> dict[str, list[dict]]:
    """Per direction: one entry per case with its SINR at the flows' share [dB], share and ns-3 time."""
    out: dict[str, list[dict]] = {"ul": [], "dl": []}
    for case in CASES:
        entry = ref["cases"].get(case.name)
        if entry is None:
            continue
        loss = entry["loss_db"]
        measured = [j for j, r in enumerate(case.ue_role) if r == MEASURED]
        load = [j for j, r in enumerate(case.ue_role) if r == LOAD]
        j = measured[0]  # the measured flows of a case are symmetric
        cell = case.ue_cell[j]
        k = sum(1 for m in measured if case.ue_cell[m] == cell)
        if case.uplink:
            s = UE_POWER_DBM - loss[cell][j]
            i_mw = sum(10 ** ((UE_POWER_DBM - loss[cell][b]) / 10) for b in load if case.ue_cell[b] != cell)
            n_mw = 10 ** (_noise_dbm(ENB_NF_DB) / 10)
            sinr_db = s + 10 * math.log10(k) - 10 * math.log10(i_mw + n_mw)
        else:
            s = ENB_POWER_DBM - loss[cell][j]
            loaded = {case.ue_cell[b] for b in load} - {cell}
            i_mw = sum(10 ** ((ENB_POWER_DBM - loss[c][j]) / 10) for c in loaded)
            sinr_db = s - 10 * math.log10(i_mw + 10 ** (_noise_dbm(UE_NF_DB) / 10))
        times = entry["times_s"]
        t = math.nan if any(x is None for x in times) else max(times)
        out["ul" if case.uplink else "dl"].append({"name": case.name, "sinr_db": sinr_db, "share": 1.0 / k, "ns3_s": t})
    return out


def model_time_s(sinr_db, share, gap_db, efficiency, se_max, min_sinr_db, latency_s):
    """T of the abstraction [s] (inf below the minimum SINR); broadcasts."""
    sinr = 10 ** (np.asarray(sinr_db) / 10)
    se = np.minimum(np.log2(1 + sinr / 10 ** (gap_db / 10)), se_max)
    rate = np.asarray(share) * BANDWIDTH_HZ * efficiency * se
    t = latency_s + 8.0 * PAYLOAD_BYTES / rate
    return np.where(np.asarray(sinr_db) >= min_sinr_db, t, np.inf)


def _min_sinr(rows: list[dict]) -> tuple[float, float, float]:
    done = [r["sinr_db"] for r in rows if not math.isnan(r["ns3_s"])]
    failed = [r["sinr_db"] for r in rows if math.isnan(r["ns3_s"])]
    lo, hi = (max(failed) if failed else -math.inf), min(done)
    mid = (lo + hi) / 2 if math.isfinite(lo) else hi - 1.0
    return lo, hi, mid


LTE_SE_MAX_BPS_HZ = 5.5547
"""Efficiency of LTE CQI 15 (64QAM, 948/1024; TS 36.213 Table 7.2.3-1) [bit/s/Hz]."""


def fit(ref: dict, free_se_max: bool = False) -> dict:
    """Grid-search fit; returns the parameters per direction and the worst ratio.

    SE_max is fixed at LTE's 64QAM cap unless ``free_se_max`` (SE_max and 1 − OH are
    nearly interchangeable in the near-cell cases, so freeing both is ill-posed).
    """
    links = case_links(ref)
    gaps = np.arange(0.0, 10.01, 0.25)
    effs = np.arange(0.30, 0.951, 0.01)  # OH >= 5 %: reference signals and control always cost something
    se_maxs = np.arange(2.0, 7.41, 0.1) if free_se_max else np.array([LTE_SE_MAX_BPS_HZ])
    lats = np.arange(0.0, 0.0401, 0.001)
    best: dict = {}
    err_by_dir = {}
    for direction, rows in links.items():
        done = [r for r in rows if not math.isnan(r["ns3_s"])]
        sinr = np.array([r["sinr_db"] for r in done])
        share = np.array([r["share"] for r in done])
        t_ref = np.array([r["ns3_s"] for r in done])
        bits = 8.0 * PAYLOAD_BYTES
        # err[g, s, e, l] = max over cases of |ln((l + bits/(x B e SE_gs)) / t)|
        err = np.full((len(gaps), len(se_maxs), len(effs), len(lats)), np.inf)
        for gi, g in enumerate(gaps):
            se = np.minimum.outer(se_maxs, np.log2(1 + 10 ** (sinr / 10) / 10 ** (g / 10)))  # (S, cases)
            air = bits / (share * BANDWIDTH_HZ * se)  # (S, cases)
            t = lats[None, None, :, None] + air[:, None, None, :] / effs[None, :, None, None]  # (S, E, L, cases)
            err[gi] = np.abs(np.log(t / t_ref)).max(axis=-1)
        err_by_dir[direction] = err
    # Shared latency: the L minimising the sum of the two directions' best worst-case log errors.
    per_l = {d: e.reshape(-1, len(lats)).min(axis=0) for d, e in err_by_dir.items()}
    li = int(np.argmin(per_l["ul"] + per_l["dl"]))
    for direction, err in err_by_dir.items():
        gi, si, ei = np.unravel_index(np.argmin(err[..., li]), err.shape[:3])
        lo, hi, mid = _min_sinr(links[direction])
        best[direction] = {"snr_gap_db": float(gaps[gi]), "efficiency": float(effs[ei]),
                           "overhead": round(float(1 - effs[ei]), 2), "se_max": float(se_maxs[si]), "min_sinr_db": round(mid, 2), "min_sinr_bracket_db": (lo, hi),
                           "worst_ratio": float(math.exp(err[gi, si, ei, li]))}
    best["access_latency_s"] = float(lats[li])
    best["links"] = links
    return best


def fit_and_print(ref: dict, free_se_max: bool = False) -> dict:
    res = fit(ref, free_se_max)
    print(f"\nfit of T = L + 8·bytes/(x·B·(1−OH)·min(log2(1+SINR/Γ), SE_max)) to ns-3 "
          f"(shared access latency L = {res['access_latency_s'] * 1e3:.0f} ms):")
    for d in ("ul", "dl"):
        p = res[d]
        lo, hi = p["min_sinr_bracket_db"]
        print(f"  {d}: Γ = {p['snr_gap_db']:.2f} dB, 1−OH = {p['efficiency']:.2f} (OH {p['overhead']:.2f}), "
              f"SE_max = {p['se_max']:.4g} bit/s/Hz, SINR_min = {p['min_sinr_db']:.2f} dB "
              f"(ns-3: outage at <= {lo:.2f} dB, delivers at >= {hi:.2f} dB); worst ratio {p['worst_ratio']:.2f}x")
        for r in res["links"][d]:
            t = model_time_s(r["sinr_db"], r["share"], p["snr_gap_db"], p["efficiency"], p["se_max"], p["min_sinr_db"],
                             res["access_latency_s"])
            ns3 = "outage" if math.isnan(r["ns3_s"]) else f"{r['ns3_s']:.4f}"
            mod = "outage" if not np.isfinite(t) else f"{float(t):.4f}"
            print(f"    {r['name']:44s} SINR {r['sinr_db']:6.2f} dB  ns-3 {ns3:>8s}  model {mod:>8s}")
    return res
