"""Lifetime value benchmark: fitting BG/NBD and Gamma-Gamma and valuing every customer.

``make bench-ltv``:

1. **Data**: ``--customers`` customers (default 10,000 and 100,000) drawn from the
   models themselves with CDNOW's published parameters (BG/NBD r=0.243, alpha=4.414,
   a=0.793, b=2.426; Gamma-Gamma p=6.25, q=3.74, v=15.44), first purchases spread over
   78 weeks before now: each customer buys at a Poisson rate drawn from Gamma(r, alpha)
   and drops out after a purchase with a probability drawn from Beta(a, b); repeat
   purchases are worth Gamma(p, nu) with nu from Gamma(q, v).
2. **Shopwatch**: ``fit_bgnbd``, ``fit_gamma_gamma`` and ``clv`` over 52 weeks for every
   customer (``shopwatch/analytics/ltv.py``), p50 of ``--repeat`` runs; the fitted
   parameters are printed next to the true ones (a fit that recovers them is right).
3. **Baseline**: the ``lifetimes`` package (``BetaGeoFitter``, ``GammaGammaFitter``,
   ``customer_lifetime_value`` with the same horizon, monthly steps as it requires, no
   discount), on the same arrays, when it is installed (the test extra installs it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopwatch.analytics import ltv

TRUE_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def simulate(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T (weeks) and mean repeat value of ``n`` simulated customers."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(1, 78, n)
    lam = rng.gamma(TRUE_BG["r"], 1 / TRUE_BG["alpha"], n)
    p = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    nu = rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], n)
    freq = np.zeros(n)
    rec = np.zeros(n)
    value = np.zeros(n)
    for i in range(n):
        t, x, total = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            x += 1
            rec[i] = t
            total += rng.gamma(TRUE_GG["p"], 1 / nu[i])
            if rng.random() < p[i]:
                break
        freq[i] = x
        value[i] = total / x if x else 0.0
    return freq, rec, T, value


def shopwatch(freq: np.ndarray, rec: np.ndarray, T: np.ndarray, value: np.ndarray
              ) -> tuple[ltv.BgNbd, ltv.GammaGamma, float]:
    bg = ltv.fit_bgnbd(freq, rec, T)
    gg = ltv.fit_gamma_gamma(freq, value)
    total = float(ltv.clv(bg, gg, freq, rec, T, value, horizon=52).sum())
    return bg, gg, total


def baseline(freq: np.ndarray, rec: np.ndarray, T: np.ndarray, value: np.ndarray
             ) -> tuple[dict[str, float], float] | None:
    try:
        import pandas as pd
        from lifetimes import BetaGeoFitter, GammaGammaFitter
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter()
        bgf.fit(freq, rec, T)
        repeat = freq > 0
        ggf = GammaGammaFitter()
        ggf.fit(freq[repeat], value[repeat])
        clv = ggf.customer_lifetime_value(
            bgf, pd.Series(freq), pd.Series(rec), pd.Series(T), pd.Series(value),
            time=12, freq="W", discount_rate=0.0)
    params = {k: float(v) for k, v in bgf.params_.items()}
    return params, float(clv.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'customers':>10} {'repeaters':>10} {'shopwatch p50':>14} {'lifetimes p50':>14} "
          f"{'ratio':>6}   fitted r, alpha, a, b (true 0.243, 4.414, 0.793, 2.426)"
          "   p, q, v (true 6.25, 3.74, 15.44)")
    for n in args.customers:
        freq, rec, T, value = simulate(n)
        ours, theirs = [], []
        bg = gg = None
        total = 0.0
        base: tuple[dict[str, float], float] | None = None
        for _ in range(args.repeat):
            t = time.perf_counter()
            bg, gg, total = shopwatch(freq, rec, T, value)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            base = baseline(freq, rec, T, value)
            theirs.append(time.perf_counter() - t)
        assert bg is not None and gg is not None
        mine = statistics.median(ours)
        other = f"{statistics.median(theirs):>13.2f}s" if base is not None else f"{'n/a':>14}"
        ratio = f"{mine / statistics.median(theirs):>6.2f}" if base is not None else "     -"
        print(f"{n:>10,} {int((freq > 0).sum()):>10,} {mine:>13.2f}s {other} {ratio}   "
              f"{bg.r:.3f}, {bg.alpha:.3f}, {bg.a:.3f}, {bg.b:.3f}"
              f"   {gg.p:.2f}, {gg.q:.2f}, {gg.v:.2f}")
        if base is not None:
            params = base[0]
            print(f"{'':>10} lifetimes' fit: r {params['r']:.3f}, alpha {params['alpha']:.3f}, "
                  f"a {params['a']:.3f}, b {params['b']:.3f}; 12-month value of all "
                  f"customers: Shopwatch {total:,.0f}, lifetimes {base[1]:,.0f}")


if __name__ == "__main__":
    main()
