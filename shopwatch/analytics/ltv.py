"""Customer lifetime value: BG/NBD + Gamma-Gamma models, with a historical fallback.

A pure module (no I/O, no store). docs/kpis.md, "Lifetime value", has the user-facing
definitions and the validation figures.

Models (fitted by maximum likelihood with scipy, on the logs of each mixing
distribution's mean and concentration, see :func:`_fit`):

- **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way: An
  alternative to the Pareto/NBD model", Marketing Science 24(2)): while alive, a customer
  buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each purchase they drop out
  with probability ``p ~ Beta(a, b)``. Per customer the inputs are ``frequency`` *x*
  (repeat purchases: purchase periods after the first), ``recency`` *t_x* (first to last
  purchase) and ``T`` (first purchase to the end of observation), all in one time unit.
  :func:`fit_bgnbd` maximises eq. 6 of the paper; :func:`expected_purchases` is eq. 10,
  ``E[Y(t) | x, t_x, T]`` (per customer in the form of its hypergeometric term that
  converges sooner, the series summed here where scipy's ``hyp2f1`` returns inf/nan:
  frequent buyers, or a fit with no spread in the dropout probability, which puts ``a``
  and ``b`` in the millions); :func:`probability_alive` is
  ``P(alive | x, t_x, T)``, which is 1 for ``x = 0`` (the model's dropout happens only
  right after a purchase).
- **Gamma-Gamma** (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"): a
  customer's transaction values are Gamma(p, nu) with ``nu ~ Gamma(q, v)``.
  :func:`fit_gamma_gamma` uses the customers with ``frequency > 0``, whose
  ``monetary_value`` is the mean value of their repeat purchases;
  :func:`expected_spend` is the conditional expected average transaction value
  ``p (v + x m) / (p x + q - 1)`` (the population mean ``p v / (q - 1)`` for ``x = 0``).

Value over a horizon (:func:`clv`): the horizon is cut into steps of ``step`` time units
(the last one may be shorter); step *k* ends at ``t_k = min(k * step, horizon)`` and
contributes ``(E[Y(t_k)] - E[Y(t_{k-1})]) * expected_spend / (1 + discount_rate) ** k``.
``discount_rate`` is per step. This is how the ``lifetimes`` package computes its
``customer_lifetime_value`` (independent code).

Fallback (:func:`historical_clv`), for thin data: ``average_value * (frequency / T) *
horizon`` (discounted per step like :func:`clv`), with ``T`` at least a quarter of the
horizon in :func:`estimate` (a week-old customer's rate is not projected over a year).
:func:`estimate` uses the models when there are at least ``min_repeat_customers``
repeat customers and both fits converge, else the fallback, and says which and why.

Inputs (:func:`summarize`): orders as ``(user_id, time, net_value)`` with net value after
refunds. An order whose net value is 0 or less (fully refunded) is not a purchase.
Purchases are grouped by UTC calendar day: a day's orders are one purchase whose value is
their sum; frequency is the number of purchase days minus one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]

DAY_S: Final = 86_400
_LOG_BOUND: Final = 15.0  # log-parameters live in [-15, 15]; a fit at the edge diverged
_EDGE: Final = 1e-3


# --------------------------------------------------------------------------- helpers


def _arr(values: npt.ArrayLike, name: str) -> FloatArray:
    found = np.asarray(values, dtype=np.float64)
    if found.ndim == 0:
        found = found.reshape(1)
    if found.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(found)):
        raise ValueError(f"{name} has non-finite values")
    return found


def _rfm(frequency: npt.ArrayLike, recency: npt.ArrayLike,
         T: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    x, tx, age = _arr(frequency, "frequency"), _arr(recency, "recency"), _arr(T, "T")
    x, tx, age = np.broadcast_arrays(x, tx, age)
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be whole numbers >= 0")
    if np.any(tx < 0) or np.any(tx > age * (1 + 1e-9) + 1e-12):
        raise ValueError("recency must be within [0, T]")
    return x.astype(np.float64), tx.astype(np.float64), age.astype(np.float64)


def _fit(nll: Callable[[FloatArray], float], start: FloatArray, what: str, names: str,
         natural: Callable[[FloatArray], FloatArray],
         concentrations: tuple[int, ...] = ()) -> FloatArray:
    """Minimise ``nll`` over parameters bounded to ``[-15, 15]`` (logs of the model's
    parameters or of their ratios); return them or raise ValueError.

    ``concentrations``: the indexes of the log-concentrations of the mixing
    distributions (Gamma's shape at a fixed mean, Beta's ``a + b``). One at its upper
    edge is the limit of a distribution with no spread (every customer has the same rate,
    dropout probability or spend level), which still predicts: accepted. Any other
    parameter at an edge means the data do not identify the model: ValueError, with the
    model's parameters (``natural``, in the rescaled units) named by ``names``."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    first = minimize(nll, start, method="L-BFGS-B", bounds=bounds,
                     options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-8})
    best = first
    if not first.success:
        # L-BFGS-B with numerical gradients may stop early on a line-search failure (on a
        # flat ridge, say): polish with Nelder-Mead, which needs no gradient, and accept
        # if it converged. Not run after a success: at 100,000 customers it costs
        # four times the first fit.
        polish = minimize(nll, np.clip(first.x, -_LOG_BOUND, _LOG_BOUND),
                          method="Nelder-Mead", bounds=bounds,
                          options={"maxiter": 20_000, "xatol": 1e-9, "fatol": 1e-11})
        if not polish.success:
            raise ValueError(f"{what} fit did not converge: {first.message}; "
                             f"{polish.message}")
        best = polish if polish.fun <= first.fun else first
    if not math.isfinite(float(best.fun)):
        raise ValueError(f"{what} fit did not converge: {first.message}")
    found = np.asarray(best.x, dtype=np.float64)
    edge = np.abs(found) > _LOG_BOUND - _EDGE
    for i in concentrations:
        edge[i] &= found[i] < 0
    if np.any(edge):
        raise ValueError(f"{what} fit diverged: a parameter ran to the edge of its range "
                         f"({names} = {np.round(natural(found), 6).tolist()}, rescaled); "
                         f"the data do not identify the model")
    return found


# scipy's hyp2f1 returns inf or nan for c > ~100 and z > 0.9 (frequent buyers over long
# horizons): from this c on, the Gauss series is summed here.
_SERIES_FROM_C: Final = 40.0
# Enough for z up to ~0.998 (the tail falls like z ** n); a series still not converged
# after it is refused (ValueError: the estimate falls back) rather than summed for long.
_SERIES_MAX_TERMS: Final = 30_000


def _tail_done(term: FloatArray, ratio: FloatArray, z: FloatArray,
               total: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether the rest of a series is below 1e-15 of its sum: past the last term the
    ratios tend to ``z`` monotonically, so none exceeds ``max(|ratio|, z)`` and the tail
    is bounded by a geometric series with that ratio."""
    bound = np.maximum(np.abs(ratio), z)
    small = bound < 1
    tail = np.abs(term) * bound / np.where(small, 1 - bound, 1)
    return np.asarray((term == 0) | (small & (tail <= 1e-15 * np.abs(total))))


def _hyp2f1_series(A: FloatArray, B: FloatArray, C: FloatArray, z: FloatArray
                   ) -> FloatArray:
    """Gauss's series for 2F1(A, B; C; z), 0 <= z < 1, elementwise. ValueError when an
    element has not converged after :data:`_SERIES_MAX_TERMS` terms."""
    total = np.ones_like(z)
    term = np.ones_like(z)
    active = np.ones(z.shape, dtype=bool)
    for n in range(_SERIES_MAX_TERMS):
        idx = np.flatnonzero(active)
        ratio = (A[idx] + n) * (B[idx] + n) / ((C[idx] + n) * (n + 1)) * z[idx]
        with np.errstate(over="ignore", invalid="ignore"):  # inf: refused by the caller
            term[idx] *= ratio
            total[idx] += term[idx]
            active[idx[_tail_done(term[idx], ratio, z[idx], total[idx])]] = False
        if not active.any():
            return total
    raise ValueError("hypergeometric series did not converge")


def _log_hyp2f1_series(A: FloatArray, B: FloatArray, C: FloatArray, z: FloatArray
                       ) -> FloatArray:
    """``log 2F1(A, B; C; z)`` for A, B, C > 0 and 0 <= z < 1, where every term of the
    series is positive: summed in log space, so a sum beyond the float range (a frequent
    buyer's ``b + x``) stays exact. ValueError as :func:`_hyp2f1_series`."""
    log_term = np.zeros_like(z)
    peak = np.zeros_like(z)  # the largest log term so far; the sum is kept relative to it
    scaled = np.ones_like(z)  # sum of exp(log_term - peak)
    log_z = np.log(np.where(z > 0, z, 1.0))
    active = z > 0
    for n in range(_SERIES_MAX_TERMS):
        idx = np.flatnonzero(active)
        if not len(idx):
            return np.asarray(peak + np.log(scaled), dtype=np.float64)
        ratio = (A[idx] + n) * (B[idx] + n) / ((C[idx] + n) * (n + 1)) * z[idx]
        log_term[idx] += (np.log(A[idx] + n) + np.log(B[idx] + n) - np.log(C[idx] + n)
                          - math.log(n + 1) + log_z[idx])
        up = log_term[idx] > peak[idx]
        scaled[idx] = np.where(up, scaled[idx] * np.exp(peak[idx] - log_term[idx]) + 1,
                               scaled[idx] + np.exp(log_term[idx] - peak[idx]))
        peak[idx] = np.where(up, log_term[idx], peak[idx])
        relative = np.exp(log_term[idx] - peak[idx])
        active[idx[_tail_done(relative, ratio, z[idx], scaled[idx])]] = False
    raise ValueError("hypergeometric series did not converge")


def _scipy_or_series(A: FloatArray, B: FloatArray, C: FloatArray, z: FloatArray,
                     from_scipy: Callable[[FloatArray], FloatArray],
                     series: Callable[[FloatArray, FloatArray, FloatArray, FloatArray],
                                      FloatArray]) -> FloatArray:
    """``from_scipy(hyp2f1(...))`` below :data:`_SERIES_FROM_C`, ``series`` above it or
    where that is not finite."""
    found = np.full_like(z, np.nan)
    easy = C < _SERIES_FROM_C
    if easy.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            found[easy] = from_scipy(hyp2f1(A[easy], B[easy], C[easy], z[easy]))
    rest = ~np.isfinite(found)
    if rest.any():
        found[rest] = series(A[rest], B[rest], C[rest], z[rest])
    return found


def _log_hyp2f1(A: FloatArray, B: FloatArray, C: FloatArray, z: FloatArray) -> FloatArray:
    """``log 2F1`` of positive parameters (:func:`_log_hyp2f1_series` past scipy)."""
    return _scipy_or_series(A, B, C, z, np.log, _log_hyp2f1_series)


def _hyp2f1(A: FloatArray, B: FloatArray, C: FloatArray, z: FloatArray) -> FloatArray:
    """2F1 of any parameters (:func:`_hyp2f1_series` past scipy)."""
    return _scipy_or_series(A, B, C, z, np.asarray, _hyp2f1_series)


# ---------------------------------------------------------------------------- BG/NBD


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters; ``alpha`` is in the data's time unit."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


def _bgnbd_ll(r: float, alpha: float, a: float, b: float, x: FloatArray, tx: FloatArray,
              T: FloatArray) -> FloatArray:
    """Per-customer log-likelihood, eq. 6 of Fader, Hardie & Lee (2005)."""
    common = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
              + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x))
    survived = -(r + x) * np.log(alpha + T)
    dropped = np.full_like(x, -np.inf)
    rep = x > 0
    dropped[rep] = (np.log(a) - np.log(b + x[rep] - 1)
                    - (r + x[rep]) * np.log(alpha + tx[rep]))
    return np.asarray(common + np.logaddexp(survived, dropped), dtype=np.float64)


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike) -> BgNbd:
    """Fit BG/NBD by maximum likelihood. Raises ValueError on invalid or too thin data
    (fewer than 2 customers, no repeat purchase, no customer with ``T > 0``) or when the
    fit does not converge."""
    x, tx, age = _rfm(frequency, recency, T)
    if len(x) < 2 or not np.any(x > 0) or not np.any(age > 0):
        raise ValueError("too few data to fit BG/NBD: need customers with repeat purchases")
    scale = 10.0 / float(age.max())  # time rescaled to [0, 10] for conditioning
    xs, txs, ts = x, tx * scale, age * scale

    def natural(theta: FloatArray) -> FloatArray:
        # theta: log r, log mean rate (r / alpha), log(a / b), log(a + b). Fitted this
        # way, a Gamma or Beta narrowing to a point (r and alpha, or a and b, growing
        # together) moves one parameter, its concentration, to its edge.
        r, mean = np.exp(theta[0]), np.exp(theta[1])
        size = np.exp(theta[3])
        return np.array([r, r / mean, size * expit(theta[2]), size * expit(-theta[2])])

    def nll(theta: FloatArray) -> float:
        r, alpha, a, b = natural(theta)
        value = -float(np.sum(_bgnbd_ll(r, alpha, a, b, xs, txs, ts)))
        return value if math.isfinite(value) else 1e300

    r, alpha, a, b = natural(_fit(nll, np.zeros(4), "BG/NBD", "r, alpha, a, b", natural,
                                  concentrations=(0, 3)))
    alpha /= scale
    ll = float(np.sum(_bgnbd_ll(r, alpha, a, b, x, tx, age)))
    return BgNbd(r=float(r), alpha=float(alpha), a=float(a), b=float(b),
                 log_likelihood=ll, customers=len(x))


def probability_alive(m: BgNbd, frequency: npt.ArrayLike, recency: npt.ArrayLike,
                      T: npt.ArrayLike) -> FloatArray:
    """``P(alive | x, t_x, T) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) /
    (alpha + t_x)) ** (r + x))``."""
    x, tx, age = _rfm(frequency, recency, T)
    log_odds = np.full_like(x, -np.inf)
    rep = x > 0
    log_odds[rep] = (np.log(m.a) - np.log(m.b + x[rep] - 1)
                     + (m.r + x[rep]) * (np.log(m.alpha + age[rep])
                                         - np.log(m.alpha + tx[rep])))
    return np.asarray(expit(-log_odds), dtype=np.float64)


def expected_purchases(m: BgNbd, t: npt.ArrayLike, frequency: npt.ArrayLike,
                       recency: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
    """``E[Y(t) | x, t_x, T]``: expected purchases in the next ``t`` time units (eq. 10).

    Computed as ``P(alive) * (a + b + x - 1) / (a - 1) * (1 - (1 - z) ** (r + x) *
    2F1(r + x, b + x; a + b + x - 1; z))`` with ``z = t / (alpha + T + t)``, or with the
    equal ``(1 - z) ** (a - 1) * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z)`` (Euler's
    transformation), whichever converges sooner for the customer. Undefined at exactly
    ``a = 1``. ValueError when a series does not converge or the result overflows
    (extreme parameters)."""
    x, tx, age = _rfm(frequency, recency, T)
    horizon = _arr(t, "t")
    if np.any(horizon < 0):
        raise ValueError("t must be >= 0")
    horizon, x, tx, age = np.broadcast_arrays(horizon, x, tx, age)
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    z = horizon / (alpha + age + horizon)
    c = a + b + x - 1
    # The bracket is 1 - (1 - z) ** (r + x) * 2F1(r + x, b + x; c; z) (eq. 10 as printed),
    # = 1 - (1 - z) ** (a - 1) * 2F1(a + b - 1 - r, a - 1; c; z) (Euler's transformation).
    # Each element takes the form whose series starts falling sooner (the smaller product
    # of its first two parameters): the printed one when a and b are large (a fit with
    # no spread in the dropout probability), Euler's for frequent buyers.
    printed = (r + x) * (b + x) < abs(a + b - 1 - r) * abs(a - 1)
    bracket = np.empty_like(z)
    if printed.any():
        # In log space: (1 - z) ** (r + x) underflows and the 2F1 overflows for large x.
        bracket[printed] = -np.expm1((r + x[printed]) * np.log1p(-z[printed]) + _log_hyp2f1(
            r + x[printed], b + x[printed], c[printed], z[printed]))
    euler = ~printed
    if euler.any():
        ze = z[euler]
        bracket[euler] = 1 - np.exp((a - 1) * np.log1p(-ze)) * _hyp2f1(
            np.full_like(ze, a + b - 1 - r), np.full_like(ze, a - 1), c[euler], ze)
    fresh = c / (a - 1) * bracket
    found = probability_alive(m, x, tx, age) * fresh
    if not np.all(np.isfinite(found)):
        # Extreme parameters overflow the terms: no value rather than inf (estimate
        # then falls back to the historical value and says why).
        raise ValueError("expected purchases overflow for these parameters")
    return np.asarray(np.maximum(found, 0.0), dtype=np.float64)


# ----------------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters; ``v`` is in the data's money unit."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int


def _gg_ll(p: float, q: float, v: float, x: FloatArray, mean: FloatArray) -> FloatArray:
    """Per-customer log-density of the mean ``mean`` of ``x`` transactions."""
    px = p * x
    return np.asarray(gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                      + (px - 1) * np.log(mean) + px * np.log(x)
                      - (px + q) * np.log(v + x * mean), dtype=np.float64)


def _repeaters(frequency: npt.ArrayLike,
               monetary_value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, mean = np.broadcast_arrays(_arr(frequency, "frequency"),
                                  _arr(monetary_value, "monetary_value"))
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be whole numbers >= 0")
    rep = x > 0
    if np.any(mean[rep] <= 0):
        raise ValueError("monetary_value must be > 0 for customers with frequency > 0")
    return x[rep].astype(np.float64), mean[rep].astype(np.float64)


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> GammaGamma:
    """Fit Gamma-Gamma by maximum likelihood on the customers with ``frequency > 0``.
    Raises ValueError with fewer than 2 such customers or when the fit does not
    converge."""
    x, mean = _repeaters(frequency, monetary_value)
    if len(x) < 2:
        raise ValueError("too few data to fit Gamma-Gamma: need repeat customers")
    scale = 1.0 / float(np.mean(mean))  # money rescaled to a mean of 1

    def natural(theta: FloatArray) -> FloatArray:
        # theta: log p, log q, log(q / v) (the mean of nu): see fit_bgnbd.
        q = np.exp(theta[1])
        return np.array([np.exp(theta[0]), q, q / np.exp(theta[2])])

    def nll(theta: FloatArray) -> float:
        p, q, v = natural(theta)
        value = -float(np.sum(_gg_ll(p, q, v, x, mean * scale)))
        return value if math.isfinite(value) else 1e300

    p, q, v = natural(_fit(nll, np.zeros(3), "Gamma-Gamma", "p, q, v", natural,
                           concentrations=(1,)))
    v /= scale
    return GammaGamma(p=float(p), q=float(q), v=float(v),
                      log_likelihood=float(np.sum(_gg_ll(p, q, v, x, mean))),
                      customers=len(x))


def expected_spend(m: GammaGamma, frequency: npt.ArrayLike,
                   monetary_value: npt.ArrayLike) -> FloatArray:
    """Conditional expected average transaction value ``p (v + x m) / (p x + q - 1)``
    (``m`` ignored and the population mean ``p v / (q - 1)`` for ``x = 0``). Raises
    ValueError where that is undefined (``p x + q <= 1``)."""
    x, mean = np.broadcast_arrays(_arr(frequency, "frequency"),
                                  _arr(monetary_value, "monetary_value"))
    mean = np.where(x > 0, mean, 0.0)
    denominator = m.p * x + m.q - 1
    if np.any(denominator <= 0):
        raise ValueError(f"Gamma-Gamma expected spend undefined: q = {m.q:.4g} <= 1 "
                         f"gives no finite mean transaction value")
    return np.asarray(m.p * (m.v + x * mean) / denominator, dtype=np.float64)


# ------------------------------------------------------------------------------- CLV


def _step_ends(horizon: float, step: float) -> FloatArray:
    if not (horizon > 0 and step > 0):
        raise ValueError("horizon and step must be > 0")
    count = math.ceil(horizon / step - 1e-9)
    return np.minimum(np.arange(1, count + 1, dtype=np.float64) * step, horizon)


def clv(bg: BgNbd, gg: GammaGamma, frequency: npt.ArrayLike, recency: npt.ArrayLike,
        T: npt.ArrayLike, monetary_value: npt.ArrayLike, *, horizon: float,
        step: float = 1.0, discount_rate: float = 0.0) -> FloatArray:
    """Expected discounted value per customer over ``horizon`` time units:
    ``sum_k (E[Y(t_k)] - E[Y(t_{k-1})]) * expected_spend / (1 + discount_rate) ** k``
    with ``t_k = min(k * step, horizon)``; ``discount_rate`` is per step."""
    if discount_rate <= -1:
        raise ValueError("discount_rate must be > -1")
    x, tx, age = _rfm(frequency, recency, T)
    spend = expected_spend(gg, x, monetary_value)
    if discount_rate == 0:
        # Undiscounted, the steps' differences add up to the whole horizon's purchases:
        # one evaluation instead of one per step.
        return np.asarray(expected_purchases(bg, horizon, x, tx, age) * spend,
                          dtype=np.float64)
    total = np.zeros_like(x)
    before = np.zeros_like(x)
    for k, end in enumerate(_step_ends(horizon, step), start=1):
        now = expected_purchases(bg, end, x, tx, age)
        total += (now - before) * spend / (1 + discount_rate) ** k
        before = now
    return total


def historical_clv(frequency: npt.ArrayLike, T: npt.ArrayLike,
                   average_value: npt.ArrayLike, *, horizon: float, step: float = 1.0,
                   discount_rate: float = 0.0, min_tenure: float = 0.0) -> FloatArray:
    """The fallback: ``average_value * frequency / T * horizon`` per customer.

    ``average_value`` is the mean net value of all the customer's purchases (first one
    included); the observed purchase rate is repeat purchases per time unit since the
    first purchase, ``frequency / T`` (0 when ``T = 0``). The first purchase is not
    counted in the rate: it starts the observation, and counting it would give
    yesterday's one-time buyer a rate of one purchase a day. With a discount rate, the
    rate's value in each step is discounted like in :func:`clv`:
    ``sum_k average_value * rate * (t_k - t_{k-1}) / (1 + discount_rate) ** k``.
    ``min_tenure`` (time units): a customer observed for less is judged as if observed
    that long, ``frequency / max(T, min_tenure)``, so that two orders in a customer's
    first week do not become a purchase every few days for the whole horizon."""
    if discount_rate <= -1:
        raise ValueError("discount_rate must be > -1")
    x, age, value = np.broadcast_arrays(_arr(frequency, "frequency"), _arr(T, "T"),
                                        _arr(average_value, "average_value"))
    age = np.where(age > 0, np.maximum(age, min_tenure), age)
    rate = np.divide(x, age, out=np.zeros_like(x, dtype=np.float64), where=age > 0)
    ends = _step_ends(horizon, step)
    lengths = np.diff(ends, prepend=0.0)
    factor = float(np.sum(lengths / (1 + discount_rate) ** np.arange(1, len(ends) + 1)))
    return np.asarray(value * rate * factor, dtype=np.float64)


# --------------------------------------------------------------------- from orders


@dataclass(frozen=True, eq=False)
class CustomerSummary:
    """Per-customer model inputs, one row per customer (sorted by user id); time in
    units of ``unit_days`` days."""

    user_ids: tuple[str, ...]
    frequency: FloatArray  # purchase days minus one
    recency: FloatArray  # first to last purchase day
    T: FloatArray  # first purchase day to the day of ``now``
    monetary_value: FloatArray  # mean value of the repeat purchases (0 without any)
    average_value: FloatArray  # mean value of all purchases, the first included
    unit_days: float


def summarize(orders: Iterable[tuple[str | None, float, float]], *, now: float,
              unit_days: float = 7) -> CustomerSummary:
    """Per-customer frequency, recency, T and values from ``(user_id, time, net_value)``.

    ``time`` and ``now`` are epoch seconds; ``net_value`` is after refunds. Orders without
    a user id, after ``now``, or with a net value <= 0 (fully refunded) are not
    purchases. A customer's purchases are their distinct UTC days with a purchase; a
    day's value is the sum of its orders. ``frequency`` = days - 1; ``recency`` = last
    day - first day; ``T`` = day of ``now`` - first day; the two in days / ``unit_days``.
    A one-order customer has frequency 0, recency 0 and monetary value 0."""
    if unit_days <= 0:
        raise ValueError("unit_days must be > 0")
    days: dict[str, dict[int, float]] = {}
    for user_id, time, value in orders:
        if not user_id or time > now or not value > 0:
            continue
        per_day = days.setdefault(user_id, {})
        day = math.floor(time / DAY_S)
        per_day[day] = per_day.get(day, 0.0) + float(value)
    today = math.floor(now / DAY_S)
    users = tuple(sorted(days))
    n = len(users)
    frequency, recency, age, monetary, average = (np.zeros(n) for _ in range(5))
    for i, user in enumerate(users):
        ordered = sorted(days[user].items())
        first, last = ordered[0][0], ordered[-1][0]
        values = [v for _, v in ordered]
        frequency[i] = len(ordered) - 1
        recency[i] = (last - first) / unit_days
        age[i] = (today - first) / unit_days
        monetary[i] = sum(values[1:]) / (len(values) - 1) if len(values) > 1 else 0.0
        average[i] = sum(values) / len(values)
    return CustomerSummary(user_ids=users, frequency=frequency, recency=recency, T=age,
                           monetary_value=monetary, average_value=average,
                           unit_days=unit_days)


# ---------------------------------------------------------------------------- choose

Method = Literal["bgnbd+gamma_gamma", "historical"]


@dataclass(frozen=True, eq=False)
class Estimate:
    """Expected value per customer over ``horizon`` time units, and how it was made."""

    method: Method
    reason: str
    user_ids: tuple[str, ...]
    value: FloatArray
    horizon: float
    unit_days: float
    repeat_customers: int
    bgnbd: BgNbd | None
    gamma_gamma: GammaGamma | None


def estimate(summary: CustomerSummary, *, horizon: float, step: float = 1.0,
             discount_rate: float = 0.0, min_repeat_customers: int = 100) -> Estimate:
    """Model-based CLV when there are at least ``min_repeat_customers`` customers with
    ``frequency > 0`` and both fits converge (and give a finite expected spend), else
    :func:`historical_clv`; ``reason`` says why."""
    s = summary
    repeaters = int(np.count_nonzero(s.frequency > 0))

    def fallback(reason: str) -> Estimate:
        # A customer younger than a quarter of the horizon is judged over that quarter.
        value = historical_clv(s.frequency, s.T, s.average_value, horizon=horizon,
                               step=step, discount_rate=discount_rate,
                               min_tenure=horizon / 4)
        return Estimate(method="historical", reason=reason, user_ids=s.user_ids, value=value,
                        horizon=horizon, unit_days=s.unit_days, repeat_customers=repeaters,
                        bgnbd=None, gamma_gamma=None)

    if repeaters < min_repeat_customers:
        return fallback(f"only {repeaters} repeat customers, fewer than the "
                        f"{min_repeat_customers} the models need")
    try:
        bg = fit_bgnbd(s.frequency, s.recency, s.T)
    except ValueError as e:
        return fallback(str(e))
    try:
        gg = fit_gamma_gamma(s.frequency, s.monetary_value)
        expected_spend(gg, s.frequency, s.monetary_value)
    except ValueError as e:
        return fallback(str(e))
    try:
        value = clv(bg, gg, s.frequency, s.recency, s.T, s.monetary_value, horizon=horizon,
                    step=step, discount_rate=discount_rate)
    except ValueError as e:
        return fallback(f"CLV: {e}")
    return Estimate(method="bgnbd+gamma_gamma",
                    reason=f"{repeaters} repeat customers (at least {min_repeat_customers}) "
                           f"and both fits converged",
                    user_ids=s.user_ids, value=value, horizon=horizon, unit_days=s.unit_days,
                    repeat_customers=repeaters, bgnbd=bg, gamma_gamma=gg)
