"""Lifetime value models against the published CDNOW estimates, and the order summary and
fallback against hand-computed values (docs/kpis.md, "Lifetime value")."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.special import hyp2f1
from scipy.stats import beta as beta_dist

from shopwatch.analytics.ltv import (
    BgNbd,
    CustomerSummary,
    clv,
    estimate,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    historical_clv,
    probability_alive,
    summarize,
)


def dataset(name: str) -> Path:
    # Found without importing lifetimes (its import pulls autograd in).
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "datasets" / name


@pytest.fixture(scope="module")
def cdnow() -> np.ndarray:
    """2,357 CDNOW customers: frequency, recency, T in weeks."""
    return np.genfromtxt(dataset("cdnow_customers_summary.csv"), delimiter=",", names=True)


@pytest.fixture(scope="module")
def cdnow_money() -> np.ndarray:
    """The same customers with zbar, the mean value of their repeat transactions."""
    return np.genfromtxt(dataset("cdnow_customers_summary_with_transactions.csv"),
                         delimiter=",", names=True)


@pytest.fixture(scope="module")
def bg(cdnow: np.ndarray) -> BgNbd:
    return fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def close(found: float, published: float, tolerance: float = 0.02) -> bool:
    return abs(found - published) <= tolerance * abs(published)


# -------------------------------------------------------------- published estimates


def test_bgnbd_reproduces_fader_hardie_lee_2005(bg: BgNbd) -> None:
    assert bg.customers == 2357
    for found, published in ((bg.r, 0.243), (bg.alpha, 4.414), (bg.a, 0.793),
                              (bg.b, 2.426)):
        assert close(found, published), (found, published)
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_reproduces_fader_hardie_2013(cdnow_money: np.ndarray) -> None:
    gg = fit_gamma_gamma(cdnow_money["x"], cdnow_money["zbar"])
    assert gg.customers == 946
    for found, published in ((gg.p, 6.25), (gg.q, 3.74), (gg.v, 15.44)):
        assert close(found, published), (found, published)
    # The population mean transaction value p v / (q - 1) and a repeat buyer's value
    # shrunk from their own mean toward it.
    population = expected_spend(gg, 0, 0.0)[0]
    assert population == pytest.approx(gg.p * gg.v / (gg.q - 1))
    assert population < expected_spend(gg, 2, 100.0)[0] < 100.0


def test_conditional_expectation_worked_example(bg: BgNbd) -> None:
    # Fader, Hardie & Lee (2005), section 5: customer 1 of CDNOW over the next 39 weeks.
    found = expected_purchases(bg, 39, 2, 30.43, 38.86)[0]
    assert found == pytest.approx(1.226, abs=0.002)


def test_expected_purchases_matches_equation_10_as_printed(bg: BgNbd,
                                                            cdnow: np.ndarray) -> None:
    """The module computes eq. 10 after Euler's transformation; the printed form gives
    the same numbers for every CDNOW customer."""
    x, tx, T = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    t = 39.0
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    printed = ((a + b + x - 1) / (a - 1)
               * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
                  * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
               / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x)))
    np.testing.assert_allclose(expected_purchases(bg, t, x, tx, T), printed, rtol=1e-9)


@pytest.mark.parametrize(("r", "alpha", "a", "b", "x", "tx", "T", "t"), [
    (0.5, 3.0, 2.5, 4.0, 3, 20.0, 20.5, 52.0),
    (0.5, 3.0, 2.5, 4.0, 60, 20.0, 20.5, 10.0),
    (0.5, 3.0, 2.5, 4.0, 400, 20.0, 20.5, 1000.0),
    (0.3, 4.0, 0.8, 2.4, 150, 30.0, 38.0, 300.0),
    (1.0, 1.0, 2.0, 1.0, 102, 0.0, 0.125, 11.0),  # scipy's hyp2f1 gives nan here
    # A fit with no spread in the dropout probability (the demo's 28 days): a and b in
    # the millions, where Euler's form needs millions of terms and eq. 10 as printed few.
    (1.48, 3.10, 1.16e6, 3.21e6, 0, 0.0, 0.57, 52.0),
    (1.48, 3.10, 1.16e6, 3.21e6, 3, 3.0, 4.0, 52.0),
    (1.48, 3.10, 1.16e6, 3.21e6, 600, 150.0, 160.0, 52.0),
    (0.5, 0.5, 8e5, 2e6, 2, 1.0, 1.0, 500.0),  # z = 0.998
])
def test_expected_purchases_of_frequent_buyers_by_integration(
        r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float,
        t: float) -> None:
    """Where scipy's hyp2f1 fails (large c, z near 1) the module sums the series itself;
    check it against the model's definition integrated numerically: alive, a customer
    buys (1 - (alpha' / (alpha' + p t)) ** r') / p times in t, averaged over the
    posterior p ~ Beta(a, b + x), with r' = r + x and alpha' = alpha + T."""
    m = BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=0.0, customers=0)
    r1, alpha1 = m.r + x, m.alpha + T
    posterior = beta_dist(m.a, m.b + x)

    def integrand(p: float) -> float:
        return float((1 - (alpha1 / (alpha1 + p * t)) ** r1) / p * posterior.pdf(p))

    # All but 1e-16 of the posterior's mass, split at its mean (a narrow peak when a and
    # b are large).
    fresh = quad(integrand, posterior.ppf(1e-16), posterior.isf(1e-16),
                 points=[posterior.mean()], limit=200, epsabs=0, epsrel=1e-11)[0]
    found = expected_purchases(m, t, x, tx, T)[0]
    assert found == pytest.approx(probability_alive(m, x, tx, T)[0] * fresh, rel=1e-8)


# ---------------------------------------------------------------- model behaviour


def test_probability_alive(bg: BgNbd) -> None:
    assert probability_alive(bg, [0, 0], [0, 0], [1.0, 50.0]).tolist() == [1.0, 1.0]
    # Same purchases, a longer silence since the last one: less likely alive.
    recency = np.linspace(38.86, 1.0, 30)
    alive = probability_alive(bg, 2, recency, 38.86)
    assert np.all((alive > 0) & (alive <= 1))
    assert np.all(np.diff(alive) < 0)
    # A purchase on the last day: alive with the probability 1 / (1 + a / (b + x - 1)).
    assert probability_alive(bg, 3, 10.0, 10.0)[0] == pytest.approx(1 / (1 + bg.a / (bg.b + 2)))


def test_clv_sums_discounted_steps(bg: BgNbd, cdnow_money: np.ndarray) -> None:
    gg = fit_gamma_gamma(cdnow_money["x"], cdnow_money["zbar"])
    rows = cdnow_money[:20]
    args = (rows["x"], rows["t_x"], rows["T"], rows["zbar"])
    one_step = clv(bg, gg, *args, horizon=52, step=52)
    expected = (expected_purchases(bg, 52, rows["x"], rows["t_x"], rows["T"])
                * expected_spend(gg, rows["x"], rows["zbar"]))
    np.testing.assert_allclose(one_step, expected, rtol=1e-12)
    # Undiscounted, the steps add up to the whole horizon (the last step is 52 - 50):
    # computed as one step, and the stepped sum tends to it as the rate goes to 0.
    np.testing.assert_allclose(clv(bg, gg, *args, horizon=52, step=5), expected, rtol=1e-12)
    np.testing.assert_allclose(clv(bg, gg, *args, horizon=52, step=5, discount_rate=1e-12),
                               expected, rtol=1e-9)
    discounted = clv(bg, gg, *args, horizon=52, step=4, discount_rate=0.01)
    assert np.all(discounted < expected) and np.all(discounted > expected / 1.01 ** 13)


@settings(max_examples=300, deadline=None)
@given(r=st.floats(0.05, 5), alpha=st.floats(0.5, 50),
       a=st.floats(0.1, 5).filter(lambda a: abs(a - 1) > 0.01), b=st.floats(0.1, 10),
       x=st.integers(0, 150), T=st.floats(0.1, 200), share=st.floats(0, 1),
       t1=st.floats(0, 300), dt=st.floats(0.01, 300))
def test_expected_purchases_non_negative_and_increasing(
        r: float, alpha: float, a: float, b: float, x: int, T: float, share: float,
        t1: float, dt: float) -> None:
    m = BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=0.0, customers=0)
    tx = share * T if x > 0 else 0.0
    try:
        low, high = expected_purchases(m, [t1, t1 + dt], x, tx, T)
    except ValueError:  # extreme parameters: refused (estimate then falls back), fine
        reject()
    assert np.isfinite(low) and np.isfinite(high)
    assert 0 <= low <= high * (1 + 1e-9) + 1e-12


def test_fits_refuse_thin_data() -> None:
    with pytest.raises(ValueError, match="too few data"):
        fit_bgnbd([0, 0, 0], [0, 0, 0], [5, 6, 7])
    with pytest.raises(ValueError, match="too few data"):
        fit_gamma_gamma([0, 3], [0.0, 20.0])
    with pytest.raises(ValueError, match="recency"):
        fit_bgnbd([1, 2], [3, 9], [2, 10])


# --------------------------------------------------------------- orders and fallback

NOW = datetime(2026, 3, 31, 12, tzinfo=UTC).timestamp()


def at(day: int, hour: int = 9) -> float:
    return datetime(2026, 3, day, hour, tzinfo=UTC).timestamp()


ORDERS: list[tuple[str | None, float, float]] = [
    ("alice", at(3, 10), 40.0),
    ("alice", at(3, 18), 10.0),  # same day: one purchase of 50
    ("alice", at(10), 30.0),  # 45, of which 15 refunded
    ("alice", at(17), 0.0),  # fully refunded: not a purchase
    ("alice", at(24), 20.0),
    ("bob", at(29, 23), 60.0),  # the only order
    ("bob", NOW + 86_400, 99.0),  # after now: ignored
    ("carol", at(5), 0.0),  # only a fully refunded order: not a customer
    (None, at(6), 25.0),  # guest checkout: no customer to attach it to
    ("dave", at(1), 0.0),  # refunded first order: dave's first purchase is on the 20th
    ("dave", at(20), 10.0),
]


def test_summarize_by_hand() -> None:
    s = summarize(ORDERS, now=NOW, unit_days=7)
    assert s.user_ids == ("alice", "bob", "dave")
    # alice: purchase days 3 (50), 10 (30), 24 (20); observed until the 31st.
    assert s.frequency.tolist() == [2, 0, 0]
    assert s.recency.tolist() == pytest.approx([21 / 7, 0, 0])
    assert s.T.tolist() == pytest.approx([28 / 7, 2 / 7, 11 / 7])
    assert s.monetary_value.tolist() == pytest.approx([25.0, 0, 0])
    assert s.average_value.tolist() == pytest.approx([100 / 3, 60.0, 10.0])
    days = summarize(ORDERS, now=NOW, unit_days=1)
    assert days.recency.tolist() == [21, 0, 0] and days.T.tolist() == [28, 2, 11]


def test_historical_clv_by_hand() -> None:
    s = summarize(ORDERS, now=NOW, unit_days=7)
    # alice: 100/3 per purchase x 2 repeat purchases in 4 weeks x 52 weeks.
    found = historical_clv(s.frequency, s.T, s.average_value, horizon=52)
    assert found.tolist() == pytest.approx([100 / 3 * 2 / 4 * 52, 0, 0])
    assert historical_clv(2, 0.0, 10.0, horizon=52).tolist() == [0.0]
    discounted = historical_clv(2, 4, 30.0, horizon=2, step=1, discount_rate=0.1)
    assert discounted.tolist() == pytest.approx([15 / 1.1 + 15 / 1.1**2])
    # Two repeat purchases in a first week: judged over 13 weeks, not projected weekly.
    young = historical_clv([2, 2], [1.0, 26.0], [50.0, 50.0], horizon=52, min_tenure=13)
    assert young.tolist() == pytest.approx([50 * 2 / 13 * 52, 50 * 2 / 26 * 52])
    assert estimate(summarize([("eve", NOW - 86_400 * 6, 40.0), ("eve", NOW - 86_400 * 3, 40.0),
                               ("eve", NOW - 86_400, 40.0)], now=NOW, unit_days=7),
                    horizon=52).value.tolist() == pytest.approx([40 * 2 / 13 * 52])


def test_estimate_falls_back_on_thin_data() -> None:
    s = summarize(ORDERS, now=NOW, unit_days=7)
    found = estimate(s, horizon=52)
    assert found.method == "historical"
    assert found.reason == "only 1 repeat customers, fewer than the 100 the models need"
    assert found.repeat_customers == 1 and found.bgnbd is None
    # alice's 4 weeks count as 13 (a quarter of the horizon).
    assert found.value.tolist() == pytest.approx([100 / 3 * 2 / 13 * 52, 0, 0])
    # Enough customers by the threshold, too few for the fits: still historical, saying
    # which fit failed.
    forced = estimate(s, horizon=52, min_repeat_customers=1)
    assert forced.method == "historical"
    assert forced.reason.startswith(("too few data to fit", "BG/NBD fit"))


def test_estimate_falls_back_when_the_fit_diverges() -> None:
    """200 identical customers (5 repeat purchases of 20 each in 10 weeks, the last one
    today). BG/NBD's fit is loose (one purchase rate for all, no sign of dropout) but
    predicts the observed rate, 0.5 a week; every repeat purchase being worth exactly
    20 sends Gamma-Gamma's p to the edge of its range, so the estimate falls back."""
    n = 200
    loose = fit_bgnbd(np.full(n, 5.0), np.full(n, 10.0), np.full(n, 10.0))
    assert expected_purchases(loose, 52, 5, 10.0, 10.0)[0] == pytest.approx(26, rel=0.01)
    s = CustomerSummary(user_ids=tuple(map(str, range(n))), frequency=np.full(n, 5.0),
                        recency=np.full(n, 10.0), T=np.full(n, 10.0),
                        monetary_value=np.full(n, 20.0), average_value=np.full(n, 20.0),
                        unit_days=7)
    found = estimate(s, horizon=52)
    assert found.method == "historical"
    assert found.reason.startswith("Gamma-Gamma fit diverged")
    assert found.value.tolist() == pytest.approx([20 * 5 / 13 * 52] * n)  # 10 weeks -> 13


def test_gamma_gamma_refuses_values_without_spread() -> None:
    """Every repeat purchase worth exactly 20: a transaction value's Gamma shape p has no
    finite estimate (it runs to the edge with q), and the fit says so."""
    with pytest.raises(ValueError, match=r"Gamma-Gamma fit diverged: .*p, q, v = "):
        fit_gamma_gamma(np.full(200, 5.0), np.full(200, 20.0))


def simulate_bgnbd(seed: int, n: int, r: float, alpha: float, p: float, T: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T of ``n`` customers drawn from BG/NBD with a dropout
    probability ``p`` common to all (no Beta spread), observed for ``T``."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(r, 1 / alpha, n)
    x, tx = np.zeros(n), np.zeros(n)
    for i, rate in enumerate(rates):
        when = rng.exponential(1 / rate)
        while when <= T:
            x[i] += 1
            tx[i] = when
            if rng.random() < p:
                break
            when += rng.exponential(1 / rate)
    return x, tx, np.full(n, T)


def test_a_common_dropout_probability_fits_and_predicts() -> None:
    """Customers who all drop out with the same probability: the likelihood rises as a
    and b grow together (the Beta narrows to a point), so the fit ends on that ridge with
    a and b in the hundreds of thousands. That limit is a sound model (the dropout
    probability a / (a + b) for everyone) and predicts in closed form, E[Y(t)] =
    P(alive) (1 - (alpha' / (alpha' + p t)) ** r') / p; the fit is kept, not refused as
    diverged, and its predictions match the closed form."""
    x, tx, T = simulate_bgnbd(0, 2000, r=2.0, alpha=4.0, p=0.25, T=20.0)
    m = fit_bgnbd(x, tx, T)
    assert m.a > 1e5 and m.b > 1e5
    p = m.a / (m.a + m.b)
    assert p == pytest.approx(0.25, abs=0.02) and m.r == pytest.approx(2.0, rel=0.1)
    found = expected_purchases(m, 52, x, tx, T)
    limit = (probability_alive(m, x, tx, T)
             * (1 - ((m.alpha + T) / (m.alpha + T + p * 52)) ** (m.r + x)) / p)
    np.testing.assert_allclose(found, limit, rtol=1e-3)
    spend = np.random.default_rng(1).gamma(4.0, 5.0, len(x))
    s = CustomerSummary(user_ids=tuple(map(str, range(len(x)))), frequency=x, recency=tx,
                        T=T, monetary_value=np.where(x > 0, spend, 0.0),
                        average_value=spend, unit_days=7)
    assert estimate(s, horizon=52).method == "bgnbd+gamma_gamma"


def test_estimate_uses_the_models_on_cdnow(cdnow_money: np.ndarray) -> None:
    rows = cdnow_money
    s = CustomerSummary(user_ids=tuple(str(int(i)) for i in rows["ID"]),
                        frequency=rows["x"], recency=rows["t_x"], T=rows["T"],
                        monetary_value=rows["zbar"], average_value=rows["zbar"],
                        unit_days=7)
    found = estimate(s, horizon=52, step=4, discount_rate=0.01)
    assert found.method == "bgnbd+gamma_gamma"
    assert found.reason == "946 repeat customers (at least 100) and both fits converged"
    assert found.bgnbd is not None and found.gamma_gamma is not None
    np.testing.assert_allclose(
        found.value, clv(found.bgnbd, found.gamma_gamma, rows["x"], rows["t_x"], rows["T"],
                         rows["zbar"], horizon=52, step=4, discount_rate=0.01))
    assert np.all(found.value > 0)
