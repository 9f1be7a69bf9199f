/* Shopwatch dashboard: controls, panels filled from the JSON API, charts, sortable tables.
 * Every figure on a page is fetched here from /api/v1/…; the server renders none. */
(function () {
  "use strict";
  const body = document.body;
  const KEPT = ["project", "range", "from", "to", "compare"];
  const page = new URLSearchParams(location.search);

  // --- formatting -------------------------------------------------------------------------
  const locale = navigator.language || "en";
  const fmtInt = new Intl.NumberFormat(locale, {maximumFractionDigits: 0});
  const fmtDec = new Intl.NumberFormat(locale, {maximumFractionDigits: 2});
  function fmtMoney(value, currency) {
    try {
      return new Intl.NumberFormat(locale, {style: "currency", currency: currency}).format(value);
    } catch (e) { return fmtDec.format(value) + " " + currency; }
  }
  function fmtPct(ratio) {
    return new Intl.NumberFormat(locale, {style: "percent", maximumFractionDigits: 1}).format(ratio);
  }
  function fmtTime(iso) {
    return new Date(iso).toLocaleString(locale, {timeZone: body.dataset.timezone || "UTC",
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"});
  }
  function text(el, value) { if (el) el.textContent = value; }
  function delta(now, before, invert) {
    if (now == null || before == null) return null;
    if (before === 0) return now === 0 ? {label: "no change", cls: ""} : {label: "new", cls: "up"};
    const change = (now - before) / Math.abs(before);
    const good = invert ? change < 0 : change > 0;
    return {label: (change > 0 ? "+" : "") + fmtPct(change), cls: change === 0 ? "" : (good ? "up" : "down")};
  }

  // --- controls -----------------------------------------------------------------------------
  const controls = document.getElementById("controls");
  if (controls) {
    controls.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () {
        if (el.id === "range-select" && el.value === "custom") {
          controls.querySelector(".custom-range").hidden = false;
          return;
        }
        if (el.id === "range-select") {
          controls.querySelectorAll(".custom-range input").forEach(function (i) { i.disabled = true; });
        }
        controls.submit();
      });
    });
    const compare = document.getElementById("compare");
    if (compare) compare.addEventListener("change", function () {
      controls.querySelector("input[name=compare]").value = compare.checked ? "1" : "0";
      controls.submit();
    });
    const refresh = document.getElementById("refresh-select");
    if (refresh) {
      refresh.value = localStorage.getItem("shopwatch.refresh") || "0";
      refresh.addEventListener("change", function () {
        localStorage.setItem("shopwatch.refresh", refresh.value);
        schedule();
      });
    }
  }
  let timer = null;
  function schedule() {
    if (timer) clearInterval(timer);
    const el = document.getElementById("refresh-select");
    const seconds = el ? Number(el.value) : 0;
    if (seconds > 0) timer = setInterval(loadPanels, seconds * 1000);
  }

  // --- panels ---------------------------------------------------------------------------------
  function apiUrl(base) {
    const url = new URL(base, location.origin);
    KEPT.forEach(function (k) { if (page.get(k) && k !== "compare") url.searchParams.set(k, page.get(k)); });
    // Page-specific parameters (the funnel's form) go to its API call as they are.
    ["steps", "within", "by"].forEach(function (k) { if (page.get(k)) url.searchParams.set(k, page.get(k)); });
    if (!url.searchParams.get("by") && body.dataset.by && url.pathname === "/api/v1/acquisition") url.searchParams.set("by", body.dataset.by);
    if (url.pathname === "/api/v1/kpis" && page.get("compare") !== "0") url.searchParams.set("compare", "true");
    if (url.pathname === "/api/v1/timeseries" && !url.searchParams.get("interval")) {
      const r = page.get("range") || "24h";
      url.searchParams.set("interval", r === "1h" ? "minute" : (r === "30d" || r === "custom") ? "day" : "hour");
    }
    if (!url.searchParams.get("project") && body.dataset.project) url.searchParams.set("project", body.dataset.project);
    return url;
  }
  const renderers = {};
  function loadPanels() {
    document.querySelectorAll("[data-panel]").forEach(loadPanel);
  }
  function loadPanel(panel) {
    const render = renderers[panel.dataset.panel];
    if (!render) return;
    panel.setAttribute("aria-busy", "true");
    fetch(apiUrl(panel.dataset.api), {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
          return data;
        });
      })
      .then(function (data) {
        render(panel, data);
        const err = panel.querySelector(".panel-error"); if (err) err.remove();
        text(document.getElementById("updated"), "Updated " + new Date().toLocaleTimeString(locale));
      })
      .catch(function (e) {
        let err = panel.querySelector(".panel-error");
        if (!err) { err = document.createElement("div"); err.className = "error-box panel-error"; panel.prepend(err); }
        err.textContent = "Could not load these figures: " + e.message;
      })
      .finally(function () { panel.setAttribute("aria-busy", "false"); });
  }

  // --- charts (uPlot) ---------------------------------------------------------------------
  const charts = new WeakMap();
  function chartWidth(el) { return Math.max(120, el.clientWidth || el.parentElement.clientWidth - 32); }
  function sparkline(el, xs, ys, prev) {
    if (!window.uPlot || !el) return;
    const old = charts.get(el); if (old) old.destroy();
    el.textContent = "";
    const series = [{}, {stroke: "#1f6feb", width: 1.5, fill: "rgba(31,111,235,0.08)", spanGaps: false}];
    const data = [xs, ys];
    if (prev) { series.push({stroke: "#9aa5b1", width: 1, dash: [4, 3]}); data.push(prev); }
    const plot = new uPlot({width: chartWidth(el), height: 40, legend: {show: false},
      cursor: {show: false}, select: {show: false}, scales: {x: {time: true}},
      axes: [{show: false}, {show: false}], series: series}, data, el);
    charts.set(el, plot);
  }
  // span: [from, to] in epoch seconds, the x axis's extent (else the data's: a single point
  // would be stretched over years); height in pixels, 260 unless given; axisFmt formats
  // the y axis's ticks (whole numbers unless given: a ratio's 0.5 would read 1).
  function timeseries(el, xs, lines, span, height, axisFmt) {
    if (!window.uPlot || !el) return;
    const old = charts.get(el); if (old) old.destroy();
    el.textContent = "";
    const series = [{}].concat(lines.map(function (l) {
      return {label: l.label, stroke: l.color, width: l.dash ? 1.25 : 2, dash: l.dash,
              value: l.value || function (u, v) { return v == null ? "–" : fmtInt.format(v); }};
    }));
    const scales = span ? {x: {time: true, range: function () { return span; }}} : undefined;
    const plot = new uPlot({width: chartWidth(el), height: height || 260, series: series, scales: scales,
      // Wide enough for "1,000,000": uPlot's default cuts off the leading digits.
      axes: [{}, {size: 64, values: function (u, vals) { return vals.map(function (v) { return (axisFmt || fmtInt.format)(v); }); }}]},
      [xs].concat(lines.map(function (l) { return l.values; })), el);
    charts.set(el, plot);
  }
  window.addEventListener("resize", function () {
    document.querySelectorAll(".spark, .chart").forEach(function (el) {
      const plot = charts.get(el); if (plot) plot.setSize({width: chartWidth(el), height: plot.height});
    });
  });
  function secondsOf(isoList) { return isoList.map(function (t) { return Date.parse(t) / 1000; }); }
  function steps(fromIso, stepSeconds, n) {
    const start = Date.parse(fromIso) / 1000, out = [];
    for (let i = 0; i < n; i++) out.push(start + i * stepSeconds);
    return out;
  }
  const RANGE_LABELS = {"1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days",
                        "30d": "last 30 days", "custom": "selected period"};

  // --- overview -------------------------------------------------------------------------------
  renderers.overview = function (panel, d) {
    const currency = d.currency || body.dataset.currency;
    const compare = page.get("compare") !== "0";
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    panel.querySelectorAll("[data-kpi]").forEach(function (card) {
      const k = d[card.dataset.kpi];
      const value = card.querySelector(".kpi-value"), sub = card.querySelector(".kpi-sub");
      const spark = card.querySelector(".spark");
      if (!k) return;
      if (k.status === "not_built") {
        value.textContent = "Not built yet"; value.classList.add("na");
        sub.textContent = k.message + " Fills from: " + k.fills_from + ".";
        return;
      }
      if (k.status === "none") {  // nothing to judge yet: say how to start
        value.textContent = "–"; value.classList.add("na"); sub.textContent = k.message;
        return;
      }
      value.classList.remove("na");
      const key = card.dataset.kpi;
      let shown, subText = "", change = null;
      if (key === "revenue_today") {
        shown = fmtMoney(k.value, currency);
        change = delta(k.value, k.previous);
        subText = "same day last week " + fmtMoney(k.previous, currency);
        const others = Object.keys(k.other_currencies || {});
        if (others.length) subText += " · not converted: " + others.map(function (c) { return fmtMoney(k.other_currencies[c], c); }).join(", ");
      } else if (key === "orders_today") {
        shown = fmtInt.format(k.value);
        change = delta(k.value, k.previous);
        subText = "same day last week " + fmtInt.format(k.previous);
      } else if (key === "availability") {
        shown = fmtPct(k.value);
        subText = fmtInt.format(k.up) + " of " + fmtInt.format(k.judged) + " monitors up"
          + (k.down.length ? " · down: " + k.down.join(", ") : "")
          + (k.degraded.length ? " · degraded: " + k.degraded.join(", ") : "");
      } else if (key === "open_alerts") {
        shown = fmtInt.format(k.value);
        subText = k.firing.length ? "firing: " + k.firing.join(", ") : "none firing";
        if (k.pending.length) subText += " · pending: " + k.pending.join(", ");
      } else if (key === "security_findings") {
        shown = fmtInt.format(k.value);
        subText = k.value ? fmtInt.format(k.critical) + " critical · latest: " + k.latest[0].title
          : "no open finding";
        card.classList.toggle("alarm", k.critical > 0);
      } else if (key === "conversion_rate") {
        shown = k.value == null ? "–" : fmtPct(k.value);
        if (compare) change = delta(k.value, k.previous);
        subText = fmtInt.format(k.converted_sessions) + " of " + fmtInt.format(k.sessions) + " sessions"
          + (compare && k.previous != null ? " · before " + fmtPct(k.previous) : "");
      } else {
        shown = fmtInt.format(k.value);
        subText = "sessions with an event in the last 5 minutes";
      }
      value.textContent = shown;
      sub.textContent = "";
      if (change) {
        const span = document.createElement("span");
        span.className = "delta " + change.cls; span.textContent = change.label + " ";
        sub.appendChild(span);
      }
      sub.appendChild(document.createTextNode(subText));
      if (k.series) {
        let xs;
        if (key.endsWith("_today")) xs = d.today.hours ? secondsOf(d.today.hours) : steps(d.today.from, 3600, k.series.length);
        else if (key === "active_sessions") xs = steps(k.series_from, k.series_step_seconds, k.series.length);
        else xs = secondsOf(d.buckets);
        sparkline(spark, xs, k.series, compare && k.previous_series ? k.previous_series : null);
      }
    });
    const t = d.traffic;
    if (t) {
      const totals = panel.querySelector("[data-traffic-totals]");
      totals.textContent = "";
      [["Events", t.events, t.previous_events], ["Sessions", t.sessions, t.previous_sessions]].forEach(function (row) {
        const span = document.createElement("span");
        const b = document.createElement("b"); b.textContent = fmtInt.format(row[1]);
        span.append(row[0] + " ", b);
        if (compare) span.append(" (previous period " + fmtInt.format(row[2]) + ")");
        totals.appendChild(span);
      });
      const lines = [{label: "Events", color: "#1f6feb", values: t.series.events},
                     {label: "Sessions", color: "#1a7f37", values: t.series.sessions}];
      if (compare) {
        lines.push({label: "Events, previous period", color: "#9aa5b1", dash: [5, 4], values: t.series.previous_events});
        lines.push({label: "Sessions, previous period", color: "#b7d9c0", dash: [5, 4], values: t.series.previous_sessions});
      }
      timeseries(panel.querySelector("[data-chart=traffic]"), secondsOf(d.buckets), lines);
    }
  };

  // --- live events ------------------------------------------------------------------------
  function cell(tr, value, opts) {
    const td = document.createElement("td");
    td.textContent = value == null ? "" : value;
    if (opts && opts.num) td.className = "num";
    if (opts && opts.sort != null) td.dataset.value = opts.sort;
    tr.appendChild(td);
  }
  renderers.events = function (panel, d) {
    const tbody = panel.querySelector("table.data tbody");
    tbody.textContent = "";
    d.events.forEach(function (e) {
      const tr = document.createElement("tr");
      const p = e.params || {}, dev = e.device || {};
      cell(tr, fmtTime(e.received_at), {sort: e.received_at});
      cell(tr, e.name);
      cell(tr, e.page);
      cell(tr, e.session_id);
      cell(tr, typeof p.value === "number" ? fmtMoney(p.value, p.currency || body.dataset.currency) : "",
           {num: true, sort: typeof p.value === "number" ? p.value : ""});
      cell(tr, dev.country);
      cell(tr, [dev.category, dev.browser].filter(Boolean).join(" · "));
      tbody.appendChild(tr);
    });
    panel.querySelector(".empty").hidden = d.events.length > 0;
  };

  // --- data already sent (sections not built yet) -----------------------------------------
  renderers["event-counts"] = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    const tbody = panel.querySelector("table.data tbody");
    tbody.textContent = "";
    d.counts.forEach(function (c) {
      const tr = document.createElement("tr");
      cell(tr, c.name);
      cell(tr, fmtInt.format(c.events), {num: true, sort: c.events});
      cell(tr, fmtInt.format(c.previous), {num: true, sort: c.previous});
      cell(tr, c.last_received ? fmtTime(c.last_received) : "never", {sort: c.last_received || ""});
      tbody.appendChild(tr);
    });
  };

  // --- KPI pages --------------------------------------------------------------------------
  function fmtSeconds(s) {
    if (s == null) return "–";
    if (s < 60) return fmtDec.format(s) + " s";
    if (s < 3600) {  // whole seconds first, so that 179.6 s reads 3 min 0 s, not 2 min 60 s
      const whole = Math.round(s);
      return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
    }
    return fmtDec.format(s / 3600) + " h";
  }
  function fmtAs(kind, value, currency) {
    if (value == null) return "–";
    if (kind === "money") return fmtMoney(value, currency);
    if (kind === "pct") return fmtPct(value);
    if (kind === "seconds") return fmtSeconds(value);
    if (kind === "dec") return fmtDec.format(value);
    return fmtInt.format(value);
  }
  const LOWER_IS_BETTER = {bounce_rate: 1, cart_abandonment_rate: 1, checkout_abandonment_rate: 1,
                           abandoned_cart_value: 1, refunds: 1, refund_count: 1, cancellations: 1,
                           cancellation_count: 1};
  renderers.kpis = function (panel, d) {
    panel.querySelectorAll("[data-k]").forEach(function (card) {
      const key = card.dataset.k, kind = card.dataset.f;
      card.querySelector(".kpi-value").textContent = fmtAs(kind, d[key], d.currency);
      const sub = card.querySelector(".kpi-sub");
      sub.textContent = "";
      if (d.previous) {
        const change = delta(d[key], d.previous[key], LOWER_IS_BETTER[key]);
        if (change) {
          const span = document.createElement("span");
          span.className = "delta " + change.cls; span.textContent = change.label + " ";
          sub.appendChild(span);
        }
        sub.appendChild(document.createTextNode("previous period " + fmtAs(kind, d.previous[key], d.currency)));
      }
    });
    const note = panel.querySelector("[data-unconverted]");
    const others = Object.keys(d.unconverted || {});
    note.hidden = others.length === 0;
    note.textContent = others.length ? "Not in revenue (no documented rate): " + others.map(function (c) { return fmtDec.format(d.unconverted[c]) + " " + c; }).join(", ") : "";
  };

  // --- funnel -------------------------------------------------------------------------------
  let funnelChart = null;
  renderers.funnel = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    const el = panel.querySelector("[data-chart=funnel]");
    if (window.echarts && el) {
      if (!funnelChart) funnelChart = window.echarts.init(el, null, {renderer: "canvas"});
      const series = [{name: "This period", type: "bar", data: d.steps.map(function (s) { return s.count; }),
                       itemStyle: {color: "#1f6feb"}, label: {show: true, position: "right"}}];
      if (d.previous && page.get("compare") !== "0") {
        series.push({name: "Previous period", type: "bar", data: d.previous.map(function (s) { return s.count; }),
                     itemStyle: {color: "#c9d1d9"}});
      }
      funnelChart.setOption({animation: false, tooltip: {trigger: "axis"}, legend: {top: 0},
        grid: {left: 140, right: 60, top: 30, bottom: 10},
        xAxis: {type: "value"}, yAxis: {type: "category", inverse: true, data: d.steps.map(function (s) { return s.name; })},
        series: series}, true);
    }
    const tbody = panel.querySelector("[data-steps]");
    tbody.textContent = "";
    d.steps.forEach(function (s, i) {
      const tr = document.createElement("tr");
      cell(tr, (i + 1) + ". " + s.name);
      cell(tr, fmtInt.format(s.count), {num: true});
      cell(tr, s.conversion == null ? "–" : fmtPct(s.conversion), {num: true});
      cell(tr, i === 0 || s.drop_off == null ? "" : fmtPct(s.drop_off) + " (" + fmtInt.format(s.dropped) + ")", {num: true});
      cell(tr, fmtSeconds(s.median_seconds), {num: true});
      cell(tr, d.previous ? fmtInt.format(d.previous[i].count) : "", {num: true});
      const td = document.createElement("td");
      if (i < d.steps.length - 1 && s.count > d.steps[i + 1].count) {
        const b = document.createElement("button");
        b.className = "link"; b.type = "button"; b.textContent = "list sessions";
        b.addEventListener("click", function () { showDropped(panel, i + 1, s.name); });
        td.appendChild(b);
      }
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
    const box = panel.querySelector("[data-breakdown]");
    box.hidden = !d.breakdown;
    if (d.breakdown) {
      box.querySelector("[data-by]").textContent = d.breakdown.by.replace("_", " ");
      const thead = box.querySelector("thead"), body2 = box.querySelector("tbody");
      thead.textContent = ""; body2.textContent = "";
      const hr = document.createElement("tr");
      const first = document.createElement("th"); first.textContent = d.breakdown.by.replace("_", " "); hr.appendChild(first);
      d.steps.forEach(function (s) { const th = document.createElement("th"); th.className = "num"; th.dataset.type = "number"; th.textContent = s.name; hr.appendChild(th); });
      const conv = document.createElement("th"); conv.className = "num"; conv.dataset.type = "number"; conv.textContent = "conversion"; hr.appendChild(conv);
      thead.appendChild(hr);
      d.breakdown.rows.forEach(function (r) {
        const tr = document.createElement("tr");
        cell(tr, r.value);
        r.steps.forEach(function (s) { cell(tr, fmtInt.format(s.count), {num: true, sort: s.count}); });
        const last = r.steps[r.steps.length - 1].conversion;
        cell(tr, last == null ? "–" : fmtPct(last), {num: true, sort: last == null ? "" : last});
        body2.appendChild(tr);
      });
    }
  };
  function fetchJson(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json(); });
  }
  function showDropped(panel, step, name) {
    const box = panel.querySelector("[data-dropped]");
    const url = apiUrl("/api/v1/funnel/dropped"); url.searchParams.set("step", step);
    fetchJson(url).then(function (d) {
      box.hidden = false;
      box.querySelector("[data-dropped-step]").textContent = name;
      const tbody = box.querySelector("tbody"); tbody.textContent = "";
      d.sessions.forEach(function (s) {
        const tr = document.createElement("tr");
        cell(tr, fmtTime(s.reached_at), {sort: s.reached_at});
        const td = document.createElement("td");
        const b = document.createElement("button"); b.className = "link"; b.type = "button";
        b.textContent = s.session; b.addEventListener("click", function () { showSession(panel, s.session); });
        td.appendChild(b); tr.appendChild(td);
        cell(tr, s.device); cell(tr, s.country); cell(tr, s.source); cell(tr, s.landing_page);
        tbody.appendChild(tr);
      });
    });
  }
  function showSession(panel, key) {
    const box = panel.querySelector("[data-session]");
    const url = apiUrl("/api/v1/session-events"); url.searchParams.set("session", key);
    fetchJson(url).then(function (d) {
      box.hidden = false;
      box.querySelector("[data-session-key]").textContent = key;
      const tbody = box.querySelector("tbody"); tbody.textContent = "";
      d.events.forEach(function (e) {
        const tr = document.createElement("tr");
        cell(tr, fmtTime(e.ts)); cell(tr, e.name); cell(tr, e.page);
        cell(tr, e.value == null ? "" : fmtMoney(e.value, e.currency || body.dataset.currency), {num: true});
        tbody.appendChild(tr);
      });
      box.scrollIntoView({block: "nearest"});
    });
  }

  // --- KPI time series --------------------------------------------------------------------
  renderers.timeseries = function (panel, d) {
    const metric = panel.dataset.metric;
    const money = metric === "revenue" || metric === "aov";
    const fmt = function (v) { return v == null ? "–" : (money ? fmtMoney(v, d.currency) : fmtInt.format(v)); };
    const pick = function (rows) { return rows.map(function (r) { return r[metric]; }); };
    const el = panel.querySelector("[data-chart=timeseries]");
    if (!window.uPlot || !el) return;
    const old = charts.get(el); if (old) old.destroy();
    el.textContent = "";
    const lines = [{label: "This period", stroke: "#1f6feb", width: 2, value: function (u, v) { return fmt(v); }}];
    const data = [secondsOf(d.buckets), pick(d.current)];
    if (page.get("compare") !== "0") {
      lines.push({label: "Previous period", stroke: "#9aa5b1", dash: [5, 4], value: function (u, v) { return fmt(v); }});
      lines.push({label: "Same period last week", stroke: "#d29922", dash: [2, 3], value: function (u, v) { return fmt(v); }});
      data.push(pick(d.previous), pick(d.last_week));
    }
    const plot = new uPlot({width: chartWidth(el), height: 240, series: [{}].concat(lines),
      axes: [{}, {size: 80, values: function (u, vals) { return vals.map(fmt); }}]}, data, el);
    charts.set(el, plot);
  };

  // --- carts --------------------------------------------------------------------------------
  renderers.carts = function (panel, d) {
    const left = panel.querySelector("[data-left] tbody"); left.textContent = "";
    d.abandoned_items.forEach(function (i) {
      const tr = document.createElement("tr");
      cell(tr, i.item_name || i.item_id); cell(tr, i.category);
      cell(tr, fmtInt.format(i.carts), {num: true, sort: i.carts});
      cell(tr, fmtInt.format(i.units), {num: true, sort: i.units});
      cell(tr, i.value == null ? "–" : fmtMoney(i.value, d.currency), {num: true, sort: i.value == null ? "" : i.value});
      left.appendChild(tr);
    });
    [["[data-exits] tbody", d.last_steps, "step"], ["[data-pages] tbody", d.last_pages, "page"]].forEach(function (spec) {
      const tbody = panel.querySelector(spec[0]); tbody.textContent = "";
      spec[1].slice(0, 10).forEach(function (r) {
        const tr = document.createElement("tr");
        cell(tr, r[spec[2]]); cell(tr, fmtInt.format(r.carts), {num: true, sort: r.carts});
        tbody.appendChild(tr);
      });
    });
  };

  // --- products -----------------------------------------------------------------------------
  renderers.products = function (panel, d) {
    const tbody = panel.querySelector("table.data tbody");
    tbody.textContent = "";
    d.rows.forEach(function (r) {
      const tr = document.createElement("tr");
      if (d.by === "product") { cell(tr, r.name || r.product); cell(tr, r.category); }
      else cell(tr, r.category);
      cell(tr, fmtInt.format(r.views), {num: true, sort: r.views});
      cell(tr, fmtInt.format(r.adds), {num: true, sort: r.adds});
      cell(tr, fmtInt.format(r.units), {num: true, sort: r.units});
      cell(tr, r.view_to_purchase == null ? "–" : fmtPct(r.view_to_purchase), {num: true, sort: r.view_to_purchase == null ? "" : r.view_to_purchase});
      cell(tr, fmtMoney(r.revenue, d.currency), {num: true, sort: r.revenue});
      tbody.appendChild(tr);
    });
  };

  // --- acquisition --------------------------------------------------------------------------
  renderers.acquisition = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    // table.data: the chart's legend is a table too, and comes first.
    const tbody = panel.querySelector("table.data tbody"), tfoot = panel.querySelector("table.data tfoot");
    tbody.textContent = ""; tfoot.textContent = "";
    const total = d.total.sessions;
    function row(label, r, into) {
      const tr = document.createElement("tr");
      cell(tr, label);
      cell(tr, fmtInt.format(r.sessions), {num: true, sort: r.sessions});
      cell(tr, total ? fmtPct(r.sessions / total) : "–", {num: true, sort: r.sessions});
      cell(tr, fmtInt.format(r.converted_sessions), {num: true, sort: r.converted_sessions});
      cell(tr, r.conversion_rate == null ? "–" : fmtPct(r.conversion_rate), {num: true, sort: r.conversion_rate == null ? "" : r.conversion_rate});
      cell(tr, fmtInt.format(r.orders), {num: true, sort: r.orders});
      cell(tr, fmtMoney(r.revenue, d.currency), {num: true, sort: r.revenue});
      if (withCost) {
        cell(tr, r.cost == null ? "–" : fmtMoney(r.cost, d.currency), {num: true, sort: r.cost == null ? "" : r.cost});
        cell(tr, r.cost_per_order == null ? "–" : fmtMoney(r.cost_per_order, d.currency), {num: true, sort: r.cost_per_order == null ? "" : r.cost_per_order});
        cell(tr, r.roas == null ? "–" : fmtDec.format(r.roas) + "×", {num: true, sort: r.roas == null ? "" : r.roas});
      }
      into.appendChild(tr);
    }
    const withCost = d.total.cost != null && (d.by === "campaign" || d.by === "source");
    panel.querySelectorAll("[data-cost]").forEach(function (th) { th.hidden = !withCost; });
    const wasted = panel.querySelector("[data-wasted]");
    wasted.hidden = d.total.cost == null;
    if (d.total.cost != null) {
      wasted.textContent = "Spend " + fmtMoney(d.total.cost, d.currency) + ", ROAS " +
        (d.total.roas == null ? "–" : fmtDec.format(d.total.roas) + "×") + ", cost per order " +
        (d.total.cost_per_order == null ? "–" : fmtMoney(d.total.cost_per_order, d.currency)) +
        ". Wasted spend (campaigns without an order in this period): " + fmtMoney(d.total.wasted_spend, d.currency) + ".";
    }
    d.rows.forEach(function (r) { row(r[d.by], r, tbody); });
    row("Total", d.total, tfoot);
    const el = panel.querySelector("[data-chart=acquisition]");
    if (window.uPlot && el && d.rows.length) {
      const old = charts.get(el); if (old) old.destroy();
      el.textContent = "";
      const top = d.rows.slice(0, 12);
      const xs = top.map(function (_, i) { return i; });
      const bars = window.uPlot.paths.bars({size: [0.6, 60]});
      const plot = new uPlot({width: chartWidth(el), height: 220, legend: {show: true},
        scales: {x: {time: false, range: [-0.5, top.length - 0.5]}},
        axes: [{values: function (u, vals) { return vals.map(function (v) { return top[v] ? String(top[v][d.by]).slice(0, 18) : ""; }); }},
               {size: 64, values: function (u, vals) { return vals.map(function (v) { return fmtInt.format(v); }); }}],
        series: [{}, {label: "Sessions", stroke: "#1f6feb", fill: "rgba(31,111,235,0.35)", paths: bars,
                      value: function (u, v) { return v == null ? "–" : fmtInt.format(v); }}]},
        [xs, top.map(function (r) { return r.sessions; })], el);
      charts.set(el, plot);
    }
  };
  document.querySelectorAll("[data-run-monitor]").forEach(function (button) {
    button.addEventListener("click", function () {
      const out = document.querySelector("[data-run-result]");
      const headers = JSON.parse(body.getAttribute("hx-headers") || "{}");
      const url = apiUrl("/api/v1/monitors/" + encodeURIComponent(button.dataset.runMonitor) + "/run");
      out.textContent = "running…";
      fetch(url, {method: "POST", headers: headers, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (d.error) { out.textContent = d.error.message; return; }
          out.textContent = (d.ok ? "passed" : "failed") + " (" + fmtInt.format(d.duration_ms) + " ms)" + (d.ok ? "" : ": " + d.failure);
          out.className = d.ok ? "rating-good" : "rating-poor";
        });
    });
  });
  const upload = document.querySelector("form[data-spend-upload]");
  if (upload) upload.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const file = upload.querySelector("input[type=file]").files[0];
    const out = upload.querySelector("[data-spend-result]");
    if (!file) return;
    const headers = JSON.parse(body.getAttribute("hx-headers") || "{}");
    headers["Content-Type"] = "text/csv";
    const url = apiUrl("/api/v1/spend");
    fetch(url, {method: "POST", body: file, headers: headers, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.error) { out.textContent = d.error.message; return; }
        out.textContent = d.accepted + " rows saved" + (d.rejected.length ? "; refused: " +
          d.rejected.map(function (e) { return "line " + e.line + ": " + e.error; }).join("; ") : ".");
        loadPanels();
      });
  });
  document.querySelectorAll("a[data-export]").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      const panel = document.querySelector("[data-panel][data-api]");
      if (!panel) return;
      const url = apiUrl(panel.dataset.api);
      url.searchParams.set("format", a.dataset.export);
      a.href = url.toString();
    });
  });

  // --- real users ---------------------------------------------------------------------------
  const RATING_LABELS = {"good": "good", "needs-improvement": "needs improvement", "poor": "poor"};
  function fmtVital(metric, value) {
    if (value == null) return "–";
    if (metric === "cls") return fmtDec.format(value);
    return value >= 1000 ? fmtDec.format(value / 1000) + " s" : fmtInt.format(value) + " ms";
  }
  function vitalCell(tr, metric, m) {
    cell(tr, fmtVital(metric, m && m.p75), {num: true, sort: m && m.p75 != null ? m.p75 : ""});
    const td = tr.lastChild;
    if (m && m.rating) { td.classList.add("rating-" + m.rating); td.title = RATING_LABELS[m.rating]; }
  }
  function linkCell(tr, label, href) {
    const td = document.createElement("td"), a = document.createElement("a");
    a.textContent = label; a.href = href; td.appendChild(a); tr.appendChild(td);
  }
  function journeyHref(session) {
    const url = new URL("/behaviour/session-journeys", location.origin);
    ["project", "range", "from", "to"].forEach(function (k) { if (page.get(k)) url.searchParams.set(k, page.get(k)); });
    url.searchParams.set("session", session);
    return url.pathname + url.search;
  }
  function fillEmpty(panel, table, n) {
    const empty = table.parentElement.querySelector(".empty");
    if (empty) empty.hidden = n > 0;
  }
  renderers.vitals = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    panel.querySelectorAll("[data-vital]").forEach(function (card) {
      const key = card.dataset.vital, m = d.total.metrics[key], t = d.thresholds[key];
      const value = card.querySelector(".kpi-value");
      value.textContent = fmtVital(key, m.p75);
      value.className = "kpi-value" + (m.rating ? " rating-" + m.rating : " na");
      const n = m.n || 1, bar = card.querySelector(".dist");
      bar.querySelector(".good").style.width = (100 * m.good / n) + "%";
      bar.querySelector(".ni").style.width = (100 * m.needs_improvement / n) + "%";
      bar.querySelector(".poor").style.width = (100 * m.poor / n) + "%";
      bar.title = m.n ? fmtPct(m.good / n) + " good · " + fmtPct(m.needs_improvement / n) + " needs improvement · " + fmtPct(m.poor / n) + " poor" : "";
      text(card.querySelector(".kpi-sub"), (m.rating ? RATING_LABELS[m.rating] + " · " : "") + fmtInt.format(m.n) + " page views · good ≤ " + fmtVital(key, t.good) + ", poor > " + fmtVital(key, t.poor));
    });
    text(panel.querySelector("[data-views]"), fmtInt.format(d.total.views) + " page views" + (d.page ? " of " + d.page : "") + " in the " + (RANGE_LABELS[d.range.label] || d.range.label) + ".");
    const bt = panel.querySelector("[data-breakdown]"), tbody = bt.querySelector("tbody");
    tbody.textContent = "";
    d.breakdown.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, r.key == null ? "(unknown)" : r.key);
      cell(tr, fmtInt.format(r.views), {num: true, sort: r.views});
      ["lcp", "inp", "cls", "fcp", "ttfb"].forEach(function (k) { vitalCell(tr, k, r.metrics[k]); });
      tbody.appendChild(tr);
    });
    fillEmpty(panel, bt, d.breakdown.length);
    const slow = panel.querySelector("[data-slowest] tbody"); slow.textContent = "";
    d.slowest_pages.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, r.page); cell(tr, fmtInt.format(r.views), {num: true, sort: r.views});
      vitalCell(tr, "lcp", {p75: r.lcp_p75, rating: r.lcp_rating});
      cell(tr, fmtVital("load", r.load_p75), {num: true, sort: r.load_p75 == null ? "" : r.load_p75});
      cell(tr, fmtVital("ttfb", r.ttfb_p75), {num: true, sort: r.ttfb_p75 == null ? "" : r.ttfb_p75});
      slow.appendChild(tr);
    });
    const resTable = panel.querySelector("[data-resources]"), res = resTable.querySelector("tbody");
    res.textContent = "";
    fillEmpty(panel, resTable, d.slow_resources.length);
    d.slow_resources.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, r.url); cell(tr, r.type); cell(tr, fmtInt.format(r.count), {num: true, sort: r.count});
      cell(tr, fmtVital("dur", r.duration_p75), {num: true, sort: r.duration_p75});
      res.appendChild(tr);
    });
    const xs = secondsOf(d.trend.map(function (t) { return t.t; }));
    const line = function (k) { return d.trend.map(function (t) { return t.metrics[k].p75; }); };
    timeseries(panel.querySelector("[data-chart=vitals]"), xs, [
      {label: "LCP p75 (ms)", color: "#1f6feb", values: line("lcp")},
      {label: "INP p75 (ms)", color: "#8250df", values: line("inp")},
      {label: "FCP p75 (ms)", color: "#1a7f37", values: line("fcp")},
      {label: "TTFB p75 (ms)", color: "#9a6700", values: line("ttfb")}]);
  };
  renderers.errors = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    const table = panel.querySelector("[data-groups]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.groups.forEach(function (g) {
      const tr = document.createElement("tr");
      const td = document.createElement("td"), b = document.createElement("button");
      b.type = "button"; b.className = "linklike";
      b.textContent = (g.type === "rejection" ? "Unhandled rejection: " : "") + g.message;
      b.addEventListener("click", function () { showGroup(panel, g); });
      td.appendChild(b);
      if (g.source) { const src = document.createElement("div"); src.className = "hint"; src.textContent = g.source + (g.line ? ":" + g.line : ""); td.appendChild(src); }
      tr.appendChild(td);
      cell(tr, fmtInt.format(g.count), {num: true, sort: g.count});
      cell(tr, fmtInt.format(g.views), {num: true, sort: g.views});
      cell(tr, fmtInt.format(g.sessions), {num: true, sort: g.sessions});
      cell(tr, g.pages.join(", ")); cell(tr, g.browsers.join(", "));
      cell(tr, fmtTime(g.first_seen), {sort: g.first_seen}); cell(tr, fmtTime(g.last_seen), {sort: g.last_seen});
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.groups.length);
    const xs = secondsOf(d.trend.map(function (t) { return t.t; }));
    timeseries(panel.querySelector("[data-chart=errors]"), xs, [
      {label: "Errors", color: "#cf222e", values: d.trend.map(function (t) { return t.errors; })},
      {label: "Sessions with errors", color: "#9a6700", values: d.trend.map(function (t) { return t.sessions; })}]);
  };
  function showGroup(panel, g) {
    const box = panel.querySelector("[data-group]");
    const url = apiUrl("/api/v1/errors"); url.searchParams.set("fingerprint", g.fingerprint);
    fetchJson(url).then(function (d) {
      box.hidden = false;
      text(box.querySelector("[data-group-title]"), g.message);
      text(box.querySelector("[data-group-stack]"), g.stack || "(no stack trace)");
      const tbody = box.querySelector("tbody"); tbody.textContent = "";
      (d.sessions || []).forEach(function (s) {
        const tr = document.createElement("tr");
        linkCell(tr, s.session_id, journeyHref(s.session_id));
        cell(tr, fmtTime(s.last_seen)); cell(tr, fmtInt.format(s.count), {num: true});
        cell(tr, s.page); cell(tr, s.browser);
        tbody.appendChild(tr);
      });
      box.scrollIntoView({block: "nearest"});
    });
  }
  renderers.failed = function (panel, d) {
    const table = panel.querySelector("[data-failed]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.failed_hosts.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, r.host || "(same page)"); cell(tr, r.types);
      cell(tr, fmtInt.format(r.failures), {num: true, sort: r.failures});
      cell(tr, fmtInt.format(r.views), {num: true, sort: r.views});
      cell(tr, fmtInt.format(r.sessions), {num: true, sort: r.sessions});
      cell(tr, fmtTime(r.last_seen), {sort: r.last_seen}); cell(tr, r.urls.join("\n"));
      tr.lastChild.className = "urls";
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.failed_hosts.length);
  };
  renderers["rum-sessions"] = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    const table = panel.querySelector("[data-sessions]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.sessions.forEach(function (s) {
      const tr = document.createElement("tr");
      linkCell(tr, s.session_id, journeyHref(s.session_id));
      cell(tr, fmtTime(s.last), {sort: s.last}); cell(tr, s.landing_page);
      cell(tr, fmtInt.format(s.page_views), {num: true, sort: s.page_views});
      cell(tr, fmtInt.format(s.events), {num: true, sort: s.events});
      cell(tr, fmtInt.format(s.orders), {num: true, sort: s.orders});
      cell(tr, fmtInt.format(s.errors), {num: true, sort: s.errors});
      if (s.errors) tr.lastChild.classList.add("rating-poor");
      cell(tr, s.device); cell(tr, s.browser);
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.sessions.length);
  };
  function describeStep(s) {
    if (s.type === "page_view") {
      if (s.source === "server") return "Page view (server) " + (s.page || "");
      const timing = s.ttfb_ms != null ? " · TTFB " + fmtVital("ttfb", s.ttfb_ms) + (s.load_ms ? " · load " + fmtVital("load", s.load_ms) : "") : "";
      return (s.spa ? "Route change " : "Page view ") + (s.page || "") + timing;
    }
    if (s.type === "vitals") {
      return "Web Vitals: " + ["lcp", "inp", "cls", "fcp"].filter(function (k) { return s[k] != null; })
        .map(function (k) { return k.toUpperCase() + " " + fmtVital(k, s[k]) + " (" + ratingLabel(s.ratings[k]) + ")"; }).join(" · ");
    }
    if (s.type === "error") return (s.error_type === "rejection" ? "Unhandled rejection: " : "Error: ") + s.message + (s.source ? " — " + s.source + (s.line ? ":" + s.line : "") : "");
    if (s.type === "resource") return (s.failed ? "Failed to load " : "Slow resource ") + s.url + (s.duration_ms ? " (" + fmtVital("dur", s.duration_ms) + ")" : "");
    if (s.type === "api") return (s.failed ? "Failed API call " : "API call ") + s.url + (s.duration_ms != null ? " (" + fmtVital("dur", s.duration_ms) + ")" : "");
    return s.name + (s.value != null ? " · " + fmtMoney(s.value, s.currency || body.dataset.currency) : "") + (s.page ? " on " + s.page : "");
  }
  function plural(n, word) { return fmtInt.format(n) + " " + word + (n === 1 ? "" : "s"); }
  function ratingLabel(r) { return RATING_LABELS[r] || r; }
  renderers.journey = function (panel, d) {
    text(panel.querySelector("[data-journey-summary]"), fmtTime(d.first) + " – " + fmtTime(d.last) + " · " +
      [d.device, d.browser].filter(Boolean).join(", ") + (d.user_id ? " · user " + d.user_id : "") + " · " +
      plural(d.page_views, "page view") + ", " + plural(d.events, "event") + ", " + plural(d.errors, "error"));
    const list = panel.querySelector("[data-steps]"); list.textContent = "";
    d.steps.forEach(function (s) {
      const li = document.createElement("li"), time = document.createElement("time");
      li.className = "step-" + s.type + ((s.type === "resource" || s.type === "api") && s.failed ? " step-error" : "");
      time.textContent = fmtTime(s.t); time.dateTime = s.t;
      li.appendChild(time); li.appendChild(document.createTextNode(" " + describeStep(s)));
      // The backend trace that served this page view or API call (docs/rum.md).
      if (s.trace_id) {
        const a = document.createElement("a"); a.className = "trace-link"; a.dataset.traceId = s.trace_id;
        a.href = backendHref({trace: s.trace_id}); a.textContent = "backend trace";
        li.appendChild(document.createTextNode(" · ")); li.appendChild(a);
      }
      list.appendChild(li);
    });
  };

  // --- uptime ---------------------------------------------------------------------------------
  const STATUS_CLASS = {up: "rating-good", down: "rating-poor", degraded: "rating-needs-improvement", unknown: "", paused: ""};
  function pctOrDash(v) { return v == null ? "–" : fmtPct(v); }
  // Where a monitor runs from several locations: one badge each, with its latest run.
  function locationBadges(m) {
    const list = document.createElement("div"); list.className = "locs";
    m.locations.forEach(function (l) {
      const badge = document.createElement("span");
      const state = l.ok == null ? "none" : l.stale ? "stale" : l.ok ? "up" : "down";
      badge.className = "loc loc-" + state; badge.dataset.location = l.name;
      badge.textContent = l.name + (state === "up" ? " ✓" : state === "down" ? " ✗" : state === "stale" ? " (stale)" : "");
      badge.title = l.ok == null ? l.name + ": no run yet" : l.name + ": " + (l.ok ? "passed" : "failed") + " at " + fmtTime(l.at)
        + (l.stale ? " (stale: not counted)" : "") + (l.failure ? " — " + l.failure : "");
      list.appendChild(badge);
    });
    return list;
  }
  renderers.probes = function (panel, d) {
    const table = panel.querySelector("[data-probes]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    text(panel.querySelector("[data-server-location]"), d.server_location);
    d.probes.forEach(function (p) {
      const tr = document.createElement("tr");
      cell(tr, p.location);
      const seen = p.last_seen_at ? Date.parse(p.last_seen_at) : null;
      cell(tr, seen == null ? "never" : fmtTime(p.last_seen_at));
      if (seen == null || Date.now() - seen > 120000) tr.lastChild.classList.add("rating-poor");
      cell(tr, p.monitors.length ? p.monitors.map(function (m) { return m.name; }).join(", ") : "none");
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.probes.length);
  };
  renderers.monitors = function (panel, d) {
    const table = panel.querySelector("[data-monitors]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.monitors.forEach(function (m) {
      const tr = document.createElement("tr");
      const url = new URL(location.href); url.searchParams.set("monitor", m.name);
      linkCell(tr, m.name, url.pathname + url.search);
      const hint = document.createElement("div"); hint.className = "hint";
      hint.textContent = m.kind + " · " + m.target + " · every " + fmtInt.format(m.interval_s) + " s" + (m.push_url ? " · ping " + m.push_url : "");
      tr.lastChild.appendChild(hint);
      cell(tr, m.status); if (STATUS_CLASS[m.status]) tr.lastChild.classList.add(STATUS_CLASS[m.status]);
      if (m.locations && m.locations.length > 1) tr.lastChild.appendChild(locationBadges(m));
      cell(tr, m.last ? fmtTime(m.last.at) + (m.last.failure ? " — " + m.last.failure : "") : "never");
      if (m.certificate) {
        const cert = document.createElement("div"), days = m.certificate.days_left;
        cert.className = days < 14 ? "rating-poor" : days < 30 ? "rating-needs-improvement" : "hint";
        cert.textContent = days < 0 ? "certificate expired" : "certificate expires in " + fmtInt.format(Math.floor(days)) + " days";
        tr.lastChild.appendChild(cert);
      }
      ["24h", "30d", "90d"].forEach(function (k) {
        const v = m.availability[k];
        cell(tr, pctOrDash(v), {num: true, sort: v == null ? "" : v});
      });
      cell(tr, m.p95_ms == null ? "–" : fmtInt.format(m.p95_ms) + " ms", {num: true, sort: m.p95_ms == null ? "" : m.p95_ms});
      const td = document.createElement("td"), bars = document.createElement("div");
      bars.className = "bars";
      m.bars.forEach(function (b) {
        const span = document.createElement("span");
        span.className = b.availability == null ? "none" : b.availability >= 0.999 ? "up" : b.availability >= 0.95 ? "partial" : "down";
        span.title = b.date + ": " + (b.availability == null ? "no runs" : fmtPct(b.availability) + " of " + b.runs + " runs");
        bars.appendChild(span);
      });
      td.appendChild(bars); tr.appendChild(td);
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.monitors.length);
  };
  renderers.monitor = function (panel, d) {
    text(panel.querySelector("[data-monitor-summary]"), (RANGE_LABELS[d.range.label] || d.range.label) + " · " +
      plural(d.runs, "run") + " · availability " + pctOrDash(d.availability));
    const names = Object.keys(d.locations), lines = [], colors = ["#1f6feb", "#8250df", "#1a7f37", "#9a6700"];
    const first = names.length ? d.locations[names[0]] : [];
    names.forEach(function (loc, i) {
      const pts = d.locations[loc], byT = {};
      pts.forEach(function (p) { byT[p.t] = p; });
      ["p50_ms", "p95_ms"].forEach(function (k, j) {
        lines.push({label: loc + " " + k.replace("_ms", "") + " (ms)", color: colors[i % colors.length], dash: j ? [4, 3] : undefined,
                    values: first.map(function (p) { return byT[p.t] ? byT[p.t][k] : null; })});
      });
    });
    timeseries(panel.querySelector("[data-chart=monitor]"), secondsOf(first.map(function (p) { return p.t; })), lines,
               secondsOf([d.range.from, d.range.to]));
    const inc = panel.querySelector("[data-incidents] tbody"); inc.textContent = "";
    d.incidents.forEach(function (i) {
      const tr = document.createElement("tr");
      cell(tr, i.location); cell(tr, fmtTime(i.started)); cell(tr, i.ended ? fmtTime(i.ended) : "ongoing");
      cell(tr, fmtInt.format(i.failures), {num: true}); cell(tr, i.reason);
      inc.appendChild(tr);
    });
    const runs = panel.querySelector("[data-runs] tbody"); runs.textContent = "";
    d.latest.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, fmtTime(r.at)); cell(tr, r.location);
      cell(tr, r.ok ? "passed" + (r.status ? " (" + r.status + ")" : "") : "failed" + (r.failure ? ": " + r.failure : ""));
      tr.lastChild.classList.add(r.ok ? "rating-good" : "rating-poor");
      if (r.steps && (r.steps.length > 1 || r.steps.some(function (s) { return s.details && (s.details.pages || s.details.screenshot); }))) {
        tr.lastChild.appendChild(runSteps(d.name, r.steps));
      }
      cell(tr, fmtInt.format(r.duration_ms) + " ms", {num: true});
      runs.appendChild(tr);
    });
  };
  // A flow's steps, folded under its run: timings, each page's Web Vitals, console errors,
  // failed requests and, for a failed browser step, its screenshot and HTML.
  function runSteps(monitor, steps) {
    const box = document.createElement("details"), summary = document.createElement("summary");
    box.className = "run-steps";
    summary.textContent = plural(steps.length, "step");
    box.appendChild(summary);
    const list = document.createElement("ol");
    steps.forEach(function (s) {
      const li = document.createElement("li"), head = document.createElement("div");
      head.className = s.ok ? "rating-good" : "rating-poor";
      head.textContent = s.name + " — " + (s.method ? s.method + " " : "") + (s.url || "") +
        (s.status ? " → " + s.status : "") + " · " + fmtInt.format(s.duration_ms) + " ms" +
        (s.failures && s.failures.length ? " · " + s.failures.join("; ") : "");
      li.appendChild(head);
      const det = s.details || {};
      (det.pages || []).forEach(function (p) {
        const line = document.createElement("div"), parts = [];
        [["ttfb_ms", "TTFB"], ["fcp_ms", "FCP"], ["lcp_ms", "LCP"], ["inp_ms", "INP"]].forEach(function (k) {
          if (p[k[0]] != null) parts.push(k[1] + " " + fmtInt.format(p[k[0]]) + " ms");
        });
        if (p.cls != null) parts.push("CLS " + p.cls.toFixed(3));
        line.className = "hint"; line.textContent = p.url + ": " + parts.join(" · ");
        li.appendChild(line);
      });
      [["console_errors", "console error"], ["failed_requests", "failed request"]].forEach(function (k) {
        (det[k[0]] || []).forEach(function (msg) {
          const line = document.createElement("div"); line.className = "hint"; line.textContent = k[1] + ": " + msg;
          li.appendChild(line);
        });
      });
      [["screenshot", "screenshot"], ["html", "page HTML"]].forEach(function (k) {
        if (!det[k[0]]) return;
        const a = document.createElement("a");
        a.href = apiUrl("/api/v1/monitors/" + encodeURIComponent(monitor) + "/artifacts/" + encodeURIComponent(det[k[0]]));
        a.target = "_blank"; a.rel = "noopener"; a.textContent = k[1];
        li.appendChild(a); li.appendChild(document.createTextNode(" "));
      });
      list.appendChild(li);
    });
    box.appendChild(list);
    return box;
  }

  // --- checks: flows step by step --------------------------------------------------------------
  const FLOW_KINDS = {api_flow: "API flow", browser_flow: "browser flow"};
  const FLOW_STATUS = {passed: "rating-good", failed: "rating-poor"};
  const STEP_COLORS = ["#1f6feb", "#8250df", "#1a7f37", "#9a6700", "#cf222e", "#0a7ea4", "#bf3989", "#57606a"];
  function fmtMs(v) { return v == null ? "–" : fmtVital("dur", v); }
  function artifactUrl(monitor, file) {
    return apiUrl("/api/v1/monitors/" + encodeURIComponent(monitor) + "/artifacts/" + encodeURIComponent(file)).toString();
  }
  function uptimeHref(monitor) {
    const url = new URL("/reliability/uptime", location.origin);
    ["project", "range", "from", "to"].forEach(function (k) { if (page.get(k)) url.searchParams.set(k, page.get(k)); });
    if (!url.searchParams.get("project") && body.dataset.project) url.searchParams.set("project", body.dataset.project);
    url.searchParams.set("monitor", monitor);
    return url.pathname + url.search;
  }
  renderers.checks = function (panel, d) {
    const list = panel.querySelector("[data-flows]"), template = document.querySelector("template[data-flow-template]");
    // Cards are rebuilt on every refresh: let go of the old charts (uPlot listens on window).
    list.querySelectorAll(".chart").forEach(function (el) { const plot = charts.get(el); if (plot) plot.destroy(); });
    list.textContent = "";
    panel.querySelector("[data-flows-empty]").hidden = d.flows.length > 0;
    const failing = d.flows.filter(function (f) { return f.status === "failed"; }).length;
    text(panel.querySelector("[data-flows-summary]"), d.flows.length ? plural(d.flows.length, "flow") + " · " +
      (failing ? fmtInt.format(failing) + " failing now" : "none failing now") + " · figures over the " +
      (RANGE_LABELS[d.range.label] || d.range.label) : "");
    const span = secondsOf([d.range.from, d.range.to]);
    d.flows.forEach(function (f) {
      const card = template.content.firstElementChild.cloneNode(true);
      const browser = f.kind === "browser_flow";
      card.dataset.flow = f.name;
      list.appendChild(card);  // before the chart: uPlot sizes it from its width
      text(card.querySelector("[data-flow-name]"), f.name);
      text(card.querySelector("[data-flow-kind]"), (FLOW_KINDS[f.kind] || f.kind) + (f.device && f.device !== "desktop" ? " · " + f.device : ""));
      const status = card.querySelector("[data-flow-status]");
      status.textContent = f.status === "passed" ? "✓ passing" : f.status === "failed" ? "✗ failing" : f.status === "paused" ? "paused" : "not run yet";
      if (FLOW_STATUS[f.status]) status.classList.add(FLOW_STATUS[f.status]);
      card.querySelector("[data-flow-uptime]").href = uptimeHref(f.name);
      const fact = function (k) { return card.querySelector("[data-fact=" + k + "]"); };
      text(fact("pass_rate"), pctOrDash(f.pass_rate));
      if (f.pass_rate != null) fact("pass_rate").classList.add(f.pass_rate >= 0.99 ? "rating-good" : f.pass_rate >= 0.9 ? "rating-needs-improvement" : "rating-poor");
      text(fact("runs"), fmtInt.format(f.runs));
      if (f.maintenance_runs) {
        const more = document.createElement("span"); more.className = "hint";
        more.textContent = " +" + fmtInt.format(f.maintenance_runs) + " in maintenance, not counted";
        fact("runs").appendChild(more);
      }
      text(fact("p50_ms"), fmtMs(f.p50_ms));
      text(fact("p95_ms"), fmtMs(f.p95_ms));
      const last = fact("last");
      if (f.last) {
        last.textContent = (f.last.ok ? "passed " : "failed ") + fmtIn(Date.parse(f.last.at) - Date.now()) + " · " + f.last.location + " · " + fmtMs(f.last.duration_ms);
        last.title = fmtTime(f.last.at) + (f.last.failure ? " — " + f.last.failure : "");
        last.classList.add(f.last.ok ? "rating-good" : "rating-poor");
      } else {
        last.textContent = "never"; last.classList.add("muted");
      }
      const table = card.querySelector("[data-flow-steps]"), tbody = table.querySelector("tbody");
      if (!browser) table.querySelectorAll("th[data-browser]").forEach(function (th) { th.remove(); });
      f.steps.forEach(function (s) {
        const tr = document.createElement("tr");
        tr.dataset.step = s.name;
        cell(tr, fmtInt.format(s.index + 1), {num: true});
        cell(tr, s.name);
        tr.lastChild.className = "step";
        cell(tr, fmtInt.format(s.runs), {num: true});
        if (s.skipped) {
          const hint = document.createElement("div"); hint.className = "hint";
          hint.textContent = fmtInt.format(s.skipped) + " skipped";
          hint.title = "not run: an earlier step failed";
          tr.lastChild.appendChild(hint);
        }
        cell(tr, s.failures ? fmtInt.format(s.failures) + " (" + fmtPct(s.failure_rate) + ")" : s.runs ? "0" : "–", {num: true});
        if (s.failures) tr.lastChild.classList.add("rating-poor");
        cell(tr, fmtMs(s.p50_ms), {num: true});
        cell(tr, fmtMs(s.p95_ms), {num: true});
        cell(tr, s.top_failure ? s.top_failure.reason : "");
        tr.lastChild.className = "reason";
        if (s.top_failure && s.top_failure.count < s.failures) {
          const n = document.createElement("span"); n.className = "hint";
          n.textContent = " · " + fmtInt.format(s.top_failure.count) + " of " + fmtInt.format(s.failures);
          tr.lastChild.appendChild(n);
        }
        if (browser) {
          [["lcp_p75_ms", "lcp_rating", "lcp"], ["ttfb_p75_ms", "ttfb_rating", "ttfb"], ["cls_max", "cls_rating", "cls"]].forEach(function (k) {
            vitalCell(tr, k[2], {p75: s[k[0]], rating: s[k[1]]});
          });
          cell(tr, fmtInt.format(s.console_errors), {num: true});
          if (s.console_errors) tr.lastChild.classList.add("rating-poor");
          cell(tr, fmtInt.format(s.failed_requests), {num: true});
          if (s.failed_requests) tr.lastChild.classList.add("rating-poor");
        }
        tbody.appendChild(tr);
      });
      const chart = card.querySelector("[data-chart=flow]");
      card.querySelector("[data-flow-nochart]").hidden = f.series.t.length > 0;
      chart.hidden = f.series.t.length === 0;
      if (f.series.t.length) {
        timeseries(chart, secondsOf(f.series.t), f.series.steps.map(function (s, i) {
          return {label: s.name, color: STEP_COLORS[i % STEP_COLORS.length], values: s.p50_ms,
                  value: function (u, v) { return fmtMs(v); }};
        }), span, 200);
      }
      const fail = f.latest_failure, box = card.querySelector("[data-failure]");
      card.querySelector("[data-flow-nofailure]").hidden = !!fail;
      box.hidden = !fail;
      if (!fail) return;
      const at = box.querySelector("[data-failure-at]");
      at.textContent = fmtTime(fail.at); at.dateTime = fail.at;
      text(box.querySelector("[data-failure-where]"), "from " + fail.location + " · " + fmtMs(fail.duration_ms) +
        (fail.attempts > 1 ? " · after " + plural(fail.attempts, "attempt") : ""));
      text(box.querySelector("[data-failure-step]"), fail.step);
      text(box.querySelector("[data-failure-reason]"), fail.reason);
      text(box.querySelector("[data-failure-url]"), fail.url || "");
      const notes = box.querySelector("[data-failure-notes]");
      [["console_errors", "console error"], ["failed_requests", "failed request"]].forEach(function (k) {
        fail[k[0]].forEach(function (msg) {
          const li = document.createElement("li"); li.textContent = k[1] + ": " + msg;
          notes.appendChild(li);
        });
      });
      const files = box.querySelector("[data-failure-artifacts]");
      if (fail.screenshot) {
        const a = document.createElement("a"), img = document.createElement("img");
        a.href = artifactUrl(f.name, fail.screenshot); a.target = "_blank"; a.rel = "noopener";
        a.className = "shot"; a.title = "Open the full-page screenshot";
        img.src = a.href; img.alt = "Screenshot of the page when step " + fail.step + " failed";
        // Only the newest files of a monitor are kept: an older failure's may be gone.
        img.addEventListener("error", function () {
          a.replaceWith(Object.assign(document.createElement("span"), {className: "muted", textContent: "The screenshot is no longer kept."}));
        });
        a.appendChild(img); files.appendChild(a);
      }
      if (fail.html) {
        const a = document.createElement("a");
        a.href = artifactUrl(f.name, fail.html); a.target = "_blank"; a.rel = "noopener";
        a.textContent = "Page HTML at the failure";
        files.appendChild(a);
      }
    });
  };

  // --- maintenance windows (times in UTC: a window repeats every 24 h or 7 days exactly) --------
  const EVERY_WORDS = {day: "daily", week: "weekly"};
  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function utcClock(ms) { const d = new Date(ms); return pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes()); }
  function utcDay(ms) {
    const d = new Date(ms), opts = {timeZone: "UTC", day: "numeric", month: "short"};
    if (d.getUTCFullYear() !== new Date().getUTCFullYear()) opts.year = "numeric";
    return d.toLocaleDateString(locale, opts);
  }
  function utcWeekday(ms) { return new Date(ms).toLocaleDateString(locale, {timeZone: "UTC", weekday: "short"}); }
  function fmtLength(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.round(s % 3600 / 60);
    return [d ? d + " d" : "", h ? h + " h" : "", m ? m + " min" : ""].filter(Boolean).join(" ") || fmtInt.format(s) + " s";
  }
  function fmtIn(ms) {
    const rel = new Intl.RelativeTimeFormat(locale, {numeric: "auto"}), s = ms / 1000;
    if (Math.abs(s) < 3600) return rel.format(Math.round(s / 60), "minute");
    if (Math.abs(s) < 2 * 86400) return rel.format(Math.round(s / 3600), "hour");
    return rel.format(Math.round(s / 86400), "day");
  }
  function windowSchedule(w) {
    const start = Date.parse(w.starts_at), end = start + w.duration_s * 1000;
    const sameDay = new Date(start).getUTCDate() === new Date(end).getUTCDate() && w.duration_s < 86400;
    if (!w.every) {
      return "once, " + utcDay(start) + " " + utcClock(start) + (sameDay ? "–" : " – " + utcDay(end) + " ") + utcClock(end) + " UTC";
    }
    if (w.every === "week") {
      return "weekly on " + utcWeekday(start) + " " + utcClock(start) + (sameDay ? "–" : " – " + utcWeekday(end) + " ") + utcClock(end) + " UTC";
    }
    return "daily " + utcClock(start) + "–" + utcClock(end) + " UTC";
  }
  // The occurrence open now or next ([from, to) in ms), as Window.occurrences computes it.
  function windowNext(w, now) {
    const start = Date.parse(w.starts_at), length = w.duration_s * 1000;
    const period = {day: 86400000, week: 604800000}[w.every] || 0;
    let first = start;
    if (period && first + length <= now) first += (Math.floor((now - first - length) / period) + 1) * period;
    return first + length <= now ? null : {from: first, to: first + length};
  }
  renderers.maintenance = function (panel, d) {
    const table = panel.querySelector("[data-windows]"), tbody = table.querySelector("tbody");
    const now = Date.now(), canEdit = panel.hasAttribute("data-can-edit");
    tbody.textContent = "";
    // Open ones first, then by their next occurrence; ended ones last.
    const rows = d.windows.map(function (w) { return {w: w, next: windowNext(w, now)}; });
    rows.sort(function (a, b) { return (a.next ? a.next.from : Infinity) - (b.next ? b.next.from : Infinity); });
    rows.forEach(function (item) {
      const w = item.w, next = item.next, tr = document.createElement("tr");
      tr.dataset.window = w.id;
      cell(tr, w.note || "Maintenance");
      const hint = document.createElement("div"); hint.className = "hint";
      hint.textContent = "all monitors · lasts " + fmtLength(w.duration_s);
      tr.lastChild.appendChild(hint);
      cell(tr, windowSchedule(w));
      const td = document.createElement("td");
      if (!next) {
        td.className = "muted"; td.textContent = "ended " + utcDay(Date.parse(w.starts_at) + w.duration_s * 1000);
      } else if (next.from <= now) {
        const badge = document.createElement("span"); badge.className = "pill warn"; badge.textContent = "in progress";
        const until = document.createElement("span"); until.className = "nowrap";
        until.textContent = "until " + utcClock(next.to) + " UTC";
        td.appendChild(badge); td.appendChild(document.createTextNode(" ")); td.appendChild(until);
        const when = document.createElement("div"); when.className = "hint"; when.textContent = "ends " + fmtIn(next.to - now);
        td.appendChild(when);
      } else {
        td.textContent = utcDay(next.from) + " " + utcClock(next.from) + " UTC"; td.className = "nowrap";
        const when = document.createElement("div"); when.className = "hint"; when.textContent = fmtIn(next.from - now);
        td.appendChild(when);
      }
      tr.appendChild(td);
      if (canEdit) {
        const actions = document.createElement("td"), remove = document.createElement("button");
        actions.className = "num";
        remove.type = "button"; remove.className = "button small danger"; remove.textContent = "Remove";
        remove.addEventListener("click", function () { removeWindow(w, remove); });
        actions.appendChild(remove); tr.appendChild(actions);
      }
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.windows.length);
  };
  function csrfHeaders() { return JSON.parse(body.getAttribute("hx-headers") || "{}"); }
  function apiError(r) {  // the message of a Shopwatch error answer, or the status
    return r.json().catch(function () { return {}; }).then(function (d) {
      return (d.error && d.error.message) || ("HTTP " + r.status);
    });
  }
  const mwForm = document.querySelector("form[data-maintenance-form]");
  const mwError = document.querySelector("[data-maintenance-error]");
  function showWindowError(field, message) {
    const slot = field && mwForm.querySelector("[data-field-error=" + field + "]");
    if (slot) {
      slot.textContent = message;
      mwForm.elements[field].setAttribute("aria-invalid", "true");
    } else {
      mwError.textContent = message; mwError.hidden = false;
    }
  }
  function removeWindow(w, button) {
    const label = (w.note ? "“" + w.note + "” " : "") + "(" + windowSchedule(w) + ")";
    if (!window.confirm("Remove the maintenance window " + label + "? Runs during its past occurrences count in availability again.")) return;
    button.disabled = true;
    const url = apiUrl("/api/v1/maintenance/" + encodeURIComponent(w.id));
    fetch(url, {method: "DELETE", headers: csrfHeaders(), credentials: "same-origin"})
      .then(function (r) {
        if (r.ok) { loadPanels(); return; }
        return apiError(r).then(function (message) {
          button.disabled = false;
          if (mwError) { mwError.textContent = message; mwError.hidden = false; }
        });
      });
  }
  if (mwForm) {
    mwForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      mwError.hidden = true; mwError.textContent = "";
      mwForm.querySelectorAll("[data-field-error]").forEach(function (el) { el.textContent = ""; });
      mwForm.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      const f = mwForm.elements;
      const utc = function (v) { return v.length === 16 ? v + ":00Z" : v + "Z"; };  // datetime-local, read as UTC
      const byEnd = f.ends_at.value !== "";
      let duration = f.duration.value.trim();
      if (byEnd && duration) return showWindowError("duration", "give a duration or an end, not both");
      if (!byEnd && !duration) return showWindowError("duration", "how long: e.g. 30m, 1h, 2d (or give an end)");
      if (byEnd) {
        const seconds = (Date.parse(utc(f.ends_at.value)) - Date.parse(utc(f.starts_at.value))) / 1000;
        if (!(seconds > 0)) return showWindowError("ends_at", "the end is not after the start");
        duration = seconds + "s";
      }
      const payload = {starts_at: utc(f.starts_at.value), duration: duration, every: f.every.value, note: f.note.value.trim()};
      const headers = csrfHeaders(); headers["Content-Type"] = "application/json";
      const button = mwForm.querySelector("button[type=submit]");
      button.disabled = true;
      fetch(apiUrl("/api/v1/maintenance"), {method: "POST", headers: headers, body: JSON.stringify(payload), credentials: "same-origin"})
        .then(function (r) {
          if (r.ok) { mwForm.reset(); loadPanels(); return; }
          return apiError(r).then(function (message) {
            // "field: reason" names what to fix; the API's duration is the end when one was given.
            const m = /^(starts_at|duration|every|note): ([\s\S]*)$/.exec(message);
            if (!m) return showWindowError(null, message);
            showWindowError(m[1] === "duration" && byEnd ? "ends_at" : m[1], m[2]);
          });
        })
        .catch(function (e) { showWindowError(null, "Could not save the window: " + e.message); })
        .finally(function () { button.disabled = false; });
    });
  }

  // --- alerts: firing and pending, rules, resolved; channels and deliveries ------------------
  const SEVERITY_ORDER = {critical: 0, warning: 1, info: 2};
  const ALERT_STATE_CLASS = {firing: "rating-poor", pending: "rating-needs-improvement", ok: "rating-good", disabled: "muted"};
  function fmtAlertValue(v, unit, currency) {
    if (v == null) return "–";
    if (unit === "ratio") return fmtPct(v);
    if (unit === "change") return fmtPct(v) + " change";
    if (unit === "burn") return fmtDec.format(v) + "× burn rate";
    if (unit === "ms") return fmtVital("dur", v);
    if (unit === "money") return fmtMoney(v, currency);
    if (unit === "flag") return v >= 1 ? "down" : "up";
    return fmtDec.format(v);
  }
  function severityBadge(severity) {
    const b = document.createElement("span");
    b.className = "sev sev-" + severity; b.textContent = severity;
    return b;
  }
  function fmtUtc(iso) { const ms = Date.parse(iso); return utcDay(ms) + " " + utcClock(ms) + " UTC"; }
  function timeCell(tr, iso, relative) {
    const td = document.createElement("td");
    td.className = "nowrap";
    if (!iso) { td.textContent = "–"; tr.appendChild(td); return; }
    const t = document.createElement("time"); t.dateTime = iso; t.textContent = fmtUtc(iso);
    td.appendChild(t); td.dataset.value = iso;
    if (relative) {
      const hint = document.createElement("div"); hint.className = "hint";
      hint.textContent = fmtIn(Date.parse(iso) - Date.now());
      td.appendChild(hint);
    }
    tr.appendChild(td);
  }
  function ackCell(tr, a) {
    const td = document.createElement("td");
    if (a.acknowledged_at) {
      td.textContent = "by " + a.acknowledged_by;
      const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = fmtUtc(a.acknowledged_at);
      td.appendChild(hint);
    } else td.textContent = "–";
    tr.appendChild(td);
    return td;
  }
  renderers.alerts = function (panel, d) {
    const canAck = panel.hasAttribute("data-can-ack");
    const open = d.alerts.filter(function (a) { return a.phase === "firing" || a.phase === "pending"; });
    const resolved = d.alerts.filter(function (a) { return a.phase === "resolved"; });
    open.sort(function (a, b) {
      return (a.phase === b.phase ? 0 : a.phase === "firing" ? -1 : 1) ||
        (SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]) || a.since.localeCompare(b.since);
    });
    const firing = open.filter(function (a) { return a.phase === "firing"; }).length;
    text(panel.querySelector("[data-open-summary]"), open.length ? fmtInt.format(firing) + " firing · " + fmtInt.format(open.length - firing) + " pending" : "");
    const table = panel.querySelector("[data-open]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    open.forEach(function (a) {
      const tr = document.createElement("tr");
      tr.dataset.alert = a.id; tr.className = "alert-" + a.phase;
      const sev = document.createElement("td"); sev.appendChild(severityBadge(a.severity)); tr.appendChild(sev);
      cell(tr, a.rule);
      const phase = document.createElement("div");
      phase.className = ALERT_STATE_CLASS[a.phase]; phase.textContent = a.phase === "firing" ? "firing" : "pending (not notified yet)";
      tr.lastChild.appendChild(phase);
      if (!a.rule_exists) {
        const gone = document.createElement("div"); gone.className = "hint"; gone.textContent = "the rule no longer exists";
        tr.lastChild.appendChild(gone);
      }
      timeCell(tr, a.phase === "firing" && a.fired_at ? a.fired_at : a.since, true);
      if (a.phase === "firing" && a.fired_at && a.fired_at !== a.since) {
        const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = "breaching since " + fmtUtc(a.since);
        tr.lastChild.appendChild(hint);
      }
      cell(tr, fmtAlertValue(a.last_value, a.unit, d.currency), {num: true});
      tr.lastChild.classList.add(ALERT_STATE_CLASS[a.phase]);
      if (a.worst != null && a.worst !== a.last_value) {
        const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = "worst " + fmtAlertValue(a.worst, a.unit, d.currency);
        tr.lastChild.appendChild(hint);
      }
      if (a.threshold != null) {
        const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = a.op + " " + fmtAlertValue(a.threshold, a.unit, d.currency);
        tr.lastChild.appendChild(hint);
      }
      cell(tr, a.condition || "");
      const td = ackCell(tr, a);
      if (canAck && a.phase === "firing" && !a.acknowledged_at) {
        td.textContent = "";
        const b = document.createElement("button");
        b.type = "button"; b.className = "button small"; b.textContent = "Acknowledge";
        b.title = "Stop the reminders of this alert (it still resolves)";
        b.addEventListener("click", function () { acknowledge(panel, a, b); });
        td.appendChild(b);
      }
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, open.length);

    const rules = panel.querySelector("[data-rules]"), rbody = rules.querySelector("tbody");
    rbody.textContent = "";
    d.rules.forEach(function (r) {
      const tr = document.createElement("tr");
      tr.dataset.rule = r.name;
      cell(tr, r.name);
      cell(tr, r.state === "ok" ? "ok" : r.state);
      tr.lastChild.classList.add(ALERT_STATE_CLASS[r.state] || "");
      if (r.last_value != null) {
        const hint = document.createElement("div"); hint.className = "hint";
        hint.textContent = "now " + fmtAlertValue(r.last_value, r.unit, d.currency);
        tr.lastChild.appendChild(hint);
      }
      cell(tr, r.kind.replace("_", " "));
      cell(tr, r.condition);
      cell(tr, r.for === "0s" ? "at once" : r.for);
      if (r.renotify !== "0s") {
        const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = "reminds every " + r.renotify;
        tr.lastChild.appendChild(hint);
      }
      cell(tr, r.channels.length ? r.channels.join(", ") : "none");
      if (!r.channels.length) tr.lastChild.classList.add("muted");
      const sev = document.createElement("td"); sev.appendChild(severityBadge(r.severity)); tr.appendChild(sev);
      rbody.appendChild(tr);
    });
    fillEmpty(panel, rules, d.rules.length);

    const past = panel.querySelector("[data-resolved]"), pbody = past.querySelector("tbody");
    pbody.textContent = "";
    resolved.forEach(function (a) {
      const tr = document.createElement("tr");
      tr.dataset.alert = a.id;
      cell(tr, a.rule);
      if (a.condition) { const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = a.condition; tr.lastChild.appendChild(hint); }
      const sev = document.createElement("td"); sev.appendChild(severityBadge(a.severity)); tr.appendChild(sev);
      timeCell(tr, a.since); timeCell(tr, a.resolved_at);
      cell(tr, fmtLength(Math.max(60, a.duration_s)), {num: true, sort: a.duration_s});
      cell(tr, fmtAlertValue(a.worst, a.unit, d.currency), {num: true, sort: a.worst == null ? "" : a.worst});
      ackCell(tr, a);
      pbody.appendChild(tr);
    });
    fillEmpty(panel, past, resolved.length);
  };
  function acknowledge(panel, a, button) {
    const box = panel.querySelector("[data-ack-error]");
    box.hidden = true;
    button.disabled = true;
    fetch(apiUrl("/api/v1/alerts/" + encodeURIComponent(a.id) + "/acknowledge"), {method: "POST", headers: csrfHeaders(), credentials: "same-origin"})
      .then(function (r) {
        if (r.ok) { loadPanels(); return; }
        return apiError(r).then(function (message) {
          button.disabled = false;
          box.textContent = "Could not acknowledge " + a.rule + ": " + message; box.hidden = false;
        });
      })
      .catch(function (e) { button.disabled = false; box.textContent = e.message; box.hidden = false; });
  }
  function channelTarget(c) {
    const cfg = c.config || {};
    if (c.kind === "webhook") return cfg.url || "";
    if (c.kind === "email") return (cfg.to || []).join(", ");
    if (c.kind === "apprise") return (cfg.urls || []).join("\n");
    return "";
  }
  // --- incidents: list with MTTD/MTTR trend; one incident's impact and timeline ---------------
  function incidentLink(id) {
    const url = new URL("/alerts/incidents", location.origin);
    if (page.get("project")) url.searchParams.set("project", page.get("project"));
    url.searchParams.set("id", id);
    return url.pathname + url.search;
  }
  function statusBadge(status) {
    const b = document.createElement("span");
    b.className = "badge " + (status === "open" ? "rating-poor" : "rating-good");
    b.textContent = status === "open" ? "open" : "resolved";
    return b;
  }
  function fmtLost(v, fmt) { return v == null ? "–" : fmt(v); }
  renderers.incidents = function (panel, d) {
    const t = d.totals, currency = d.currency;
    const card = function (key) { return panel.querySelector("[data-total=" + key + "]"); };
    text(card("incidents").querySelector(".kpi-value"), fmtInt.format(t.incidents));
    const open = d.incidents.filter(function (i) { return i.status === "open"; }).length;
    text(card("incidents").querySelector(".kpi-sub"), open ? open + " open now" : "none open");
    text(card("mttd").querySelector(".kpi-value"), t.mttd_s == null ? "–" : fmtLength(t.mttd_s));
    text(card("mttd").querySelector(".kpi-sub"), "first breach to first alert fired");
    text(card("mttr").querySelector(".kpi-value"), t.mttr_s == null ? "–" : fmtLength(t.mttr_s));
    text(card("mttr").querySelector(".kpi-sub"), "first breach to the last alert resolved");
    text(card("lost").querySelector(".kpi-value"), fmtMoney(t.lost_revenue, currency));
    text(card("lost").querySelector(".kpi-sub"), fmtDec.format(t.lost_orders) + " orders" + (t.wasted_spend ? " · " + fmtMoney(t.wasted_spend, currency) + " ad spend wasted" : ""));
    const el = panel.querySelector("[data-chart=incident-trend]");
    const xs = d.trend.map(function (w) { return Date.parse(w.week) / 1000; });
    const minutes = function (k) { return d.trend.map(function (w) { return w[k] == null ? null : w[k] / 60; }); };
    timeseries(el, xs, [
      {label: "MTTD (min)", color: "#b58900", values: minutes("mttd_s"), value: function (u, v) { return v == null ? "–" : fmtDec.format(v); }},
      {label: "MTTR (min)", color: "#d1242f", values: minutes("mttr_s"), value: function (u, v) { return v == null ? "–" : fmtDec.format(v); }},
      {label: "incidents", color: "#1f6feb", dash: [4, 3], values: d.trend.map(function (w) { return w.incidents; })}
    ], null, 220);
    const table = panel.querySelector("[data-incidents]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.incidents.forEach(function (i) {
      const tr = document.createElement("tr");
      tr.dataset.incident = i.id;
      const td = document.createElement("td"), a = document.createElement("a");
      a.href = incidentLink(i.id); a.textContent = "#" + i.id + " " + i.title;
      td.appendChild(a); tr.appendChild(td);
      const sev = document.createElement("td"); sev.appendChild(severityBadge(i.severity)); tr.appendChild(sev);
      const st = document.createElement("td"); st.appendChild(statusBadge(i.status)); tr.appendChild(st);
      timeCell(tr, i.started_at);
      cell(tr, fmtLength(i.mttd_s), {num: true, sort: i.mttd_s});
      cell(tr, i.mttr_s == null ? "ongoing" : fmtLength(i.mttr_s), {num: true, sort: i.mttr_s == null ? "" : i.mttr_s});
      cell(tr, i.status === "open" ? "see incident" : fmtLost(i.lost_orders, function (v) { return fmtDec.format(v); }), {num: true, sort: i.lost_orders == null ? "" : i.lost_orders});
      cell(tr, i.status === "open" ? "see incident" : fmtLost(i.lost_revenue, function (v) { return fmtMoney(v, currency); }), {num: true, sort: i.lost_revenue == null ? "" : i.lost_revenue});
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.incidents.length);
  };
  const timelineCharts = {};
  function timelineChart(el, key, tl, lines) {
    if (!window.echarts || !el) return;
    if (!timelineCharts[key]) timelineCharts[key] = window.echarts.init(el, null, {renderer: "canvas"});
    const ms = function (s) { return s * 1000; };
    const band = [[{xAxis: ms(tl.incident_start)}, {xAxis: ms(tl.incident_end != null ? tl.incident_end : tl.end)}]];
    const series = lines.map(function (l, n) {
      return {name: l.label, type: "line", showSymbol: false, connectNulls: false, yAxisIndex: l.axis || 0,
        lineStyle: {width: l.dash ? 1.5 : 2, type: l.dash ? "dashed" : "solid"}, color: l.color,
        data: tl.buckets.map(function (b, i) { return [ms(b), l.values[i]]; }),
        markArea: n === 0 ? {silent: true, itemStyle: {color: "rgba(209,36,47,0.08)"}, data: band} : undefined,
        markLine: n === 0 ? {silent: true, symbol: "none", lineStyle: {color: "#d1242f", type: "dashed"}, label: {formatter: "fired"}, data: [{xAxis: ms(tl.detected_at)}]} : undefined};
    });
    const axes = [{type: "value", min: 0}];
    if (lines.some(function (l) { return l.axis === 1; })) axes.push({type: "value", min: 0, splitLine: {show: false}});
    timelineCharts[key].setOption({animation: false, tooltip: {trigger: "axis"}, legend: {top: 0},
      grid: {left: 56, right: 56, top: 36, bottom: 28}, xAxis: {type: "time"}, yAxis: axes, series: series}, true);
  }
  window.addEventListener("resize", function () { Object.values(timelineCharts).forEach(function (c) { c.resize(); }); });
  renderers.incident = function (panel, d) {
    const i = d.incident, currency = d.currency, imp = d.impact;
    text(panel.querySelector("[data-incident-title]"), "#" + i.id + " " + i.title);
    const badges = panel.querySelector("[data-incident-badges]");
    badges.textContent = ""; badges.appendChild(severityBadge(i.severity)); badges.appendChild(document.createTextNode(" ")); badges.appendChild(statusBadge(i.status));
    const facts = panel.querySelector("[data-incident-facts]");
    facts.textContent = "";
    [["First breach", fmtUtc(i.started_at)], ["Fired", fmtUtc(i.detected_at)],
     ["Resolved", i.resolved_at ? fmtUtc(i.resolved_at) : "not yet"],
     ["Alerts", fmtInt.format(d.alerts.length)]].forEach(function (f) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = f[0]; dd.textContent = f[1]; facts.appendChild(dt); facts.appendChild(dd);
    });
    const card = function (key) { return panel.querySelector("[data-impact=" + key + "]"); };
    const live = i.impact_estimated_live ? " (so far)" : "";
    const range = function (loss, fmt) { return loss.low == null ? "no range: fewer than 2 full weeks of history" : "likely " + fmt(loss.low) + " to " + fmt(loss.high); };
    if (imp) {
      const money = function (v) { return fmtMoney(v, currency); }, count = function (v) { return fmtDec.format(v); };
      text(card("orders").querySelector(".kpi-value"), count(imp.orders.lost) + live);
      text(card("orders").querySelector(".kpi-sub"), count(imp.orders.observed) + " of " + count(imp.orders.expected) + " expected · " + range(imp.orders, count) + (imp.buckets_without_baseline ? " · " + imp.buckets_without_baseline + " of " + imp.buckets + " periods without history left out" : ""));
      text(card("revenue").querySelector(".kpi-value"), money(imp.revenue.lost) + live);
      text(card("revenue").querySelector(".kpi-sub"), money(imp.revenue.observed) + " of " + money(imp.revenue.expected) + " expected · " + range(imp.revenue, money));
      text(card("spend").querySelector(".kpi-value"), imp.wasted_spend == null ? "–" : money(imp.wasted_spend));
      text(card("spend").querySelector(".kpi-sub"), imp.spend == null ? "No marketing spend uploaded for these days (Marketing → Spend)." : money(imp.spend) + " spent during the incident");
    }
    text(card("times").querySelector(".kpi-value"), fmtLength(i.mttd_s) + " · " + (i.mttr_s == null ? "ongoing" : fmtLength(i.mttr_s)));
    text(card("times").querySelector(".kpi-sub"), "from the first breaching evaluation");
    const tl = d.timeline, s = tl.series;
    timelineChart(panel.querySelector("[data-timeline=technical]"), "technical", tl, [
      {label: s.failed_checks.label, color: "#d1242f", values: s.failed_checks.values},
      {label: s.js_errors.label, color: "#b58900", values: s.js_errors.values},
      {label: s.backend_errors.label, color: "#bc4c00", values: s.backend_errors.values},
      {label: s.lcp_p75.label, color: "#6f42c1", values: s.lcp_p75.values, axis: 1},
      {label: s.backend_p95_ms.label, color: "#0a7f8a", values: s.backend_p95_ms.values, axis: 1}]);
    timelineChart(panel.querySelector("[data-timeline=business]"), "business", tl, [
      {label: s.sessions.label, color: "#1f6feb", values: s.sessions.values},
      {label: s.add_to_cart.label, color: "#0a7f5a", values: s.add_to_cart.values},
      {label: s.begin_checkout.label, color: "#b58900", values: s.begin_checkout.values},
      {label: s.orders.label, color: "#d1242f", values: s.orders.values},
      {label: "expected orders", color: "#d1242f", dash: true, values: s.orders.expected},
      {label: s.revenue.label + " (" + currency + ")", color: "#6f42c1", values: s.revenue.values, axis: 1}]);
    const sentTable = panel.querySelector("[data-incident-notifications]"), sent = sentTable.querySelector("tbody");
    sent.textContent = "";
    d.notifications.forEach(function (n) {
      const tr = document.createElement("tr");
      timeCell(tr, n.created_at); cell(tr, n.channel || "(removed)"); cell(tr, n.event); cell(tr, n.title);
      cell(tr, n.status + (n.attempts > 1 ? " after " + n.attempts + " attempts" : ""));
      if (n.status === "failed") tr.lastChild.classList.add("rating-poor");
      sent.appendChild(tr);
    });
    fillEmpty(panel, sentTable, d.notifications.length);
    const tbody = panel.querySelector("[data-incident-alerts] tbody");
    tbody.textContent = "";
    d.alerts.forEach(function (a) {
      const tr = document.createElement("tr");
      cell(tr, a.rule);
      if (a.condition) { const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = a.condition; tr.lastChild.appendChild(hint); }
      const sev = document.createElement("td"); sev.appendChild(severityBadge(a.severity)); tr.appendChild(sev);
      cell(tr, a.phase); if (ALERT_STATE_CLASS[a.phase]) tr.lastChild.classList.add(ALERT_STATE_CLASS[a.phase]);
      timeCell(tr, a.since); timeCell(tr, a.fired_at); timeCell(tr, a.resolved_at);
      cell(tr, fmtAlertValue(a.worst, a.unit, currency), {num: true});
      tbody.appendChild(tr);
    });
  };

  // --- silences --------------------------------------------------------------------------------
  renderers.silences = function (panel, d) {
    const canEdit = panel.hasAttribute("data-can-edit");
    const table = panel.querySelector("[data-silences]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.silences.forEach(function (s) {
      const tr = document.createElement("tr");
      tr.dataset.silence = s.id;
      cell(tr, s.matcher);
      cell(tr, s.state); tr.lastChild.classList.add(s.state === "active" ? "rating-needs-improvement" : "muted");
      timeCell(tr, s.starts_at); timeCell(tr, s.ends_at, s.state !== "expired");
      cell(tr, s.comment); cell(tr, s.created_by);
      if (canEdit) {
        const td = document.createElement("td"); td.className = "num";
        if (s.state !== "expired") {
          const b = document.createElement("button");
          b.type = "button"; b.className = "button small"; b.textContent = "End now";
          b.addEventListener("click", function () {
            b.disabled = true;
            fetch(apiUrl("/api/v1/silences/" + encodeURIComponent(s.id)), {method: "DELETE", headers: csrfHeaders(), credentials: "same-origin"})
              .then(function (r) { if (r.ok) loadPanels(); else apiError(r).then(function (m) { b.disabled = false; window.alert(m); }); });
          });
          td.appendChild(b);
        }
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.silences.length);
  };
  const silenceForm = document.querySelector("form[data-silence-form]");
  if (silenceForm) {
    const alertsPanel = document.querySelector("[data-panel=alerts]");
    const list = document.getElementById("silence-rules");
    if (alertsPanel && list) {  // offer the rules' names
      fetch(apiUrl("/api/v1/alerts?state=open&limit=1"), {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : {rules: []}; })
        .then(function (d) { d.rules.forEach(function (r) { const o = document.createElement("option"); o.value = r.name; list.appendChild(o); }); });
    }
    const errorBox = document.querySelector("[data-silence-error]");
    silenceForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      errorBox.hidden = true;
      silenceForm.querySelectorAll("[data-field-error]").forEach(function (el) { el.textContent = ""; });
      const f = silenceForm.elements;
      const payload = {matcher: f.matcher.value.trim(), duration: f.duration.value.trim(), comment: f.comment.value.trim()};
      const headers = csrfHeaders(); headers["Content-Type"] = "application/json";
      const button = silenceForm.querySelector("button[type=submit]");
      button.disabled = true;
      fetch(apiUrl("/api/v1/silences"), {method: "POST", headers: headers, body: JSON.stringify(payload), credentials: "same-origin"})
        .then(function (r) {
          if (r.ok) { silenceForm.reset(); loadPanels(); return; }
          return apiError(r).then(function (message) {
            const m = /^(matcher|duration|ends_at|comment): ([\s\S]*)$/.exec(message);
            const slot = m && silenceForm.querySelector("[data-field-error=" + (m[1] === "ends_at" ? "duration" : m[1]) + "]");
            if (slot) slot.textContent = m[2]; else { errorBox.textContent = message; errorBox.hidden = false; }
          });
        })
        .catch(function (e) { errorBox.textContent = "Could not add the silence: " + e.message; errorBox.hidden = false; })
        .finally(function () { button.disabled = false; });
    });
  }

  renderers.channels = function (panel, d) {
    const table = panel.querySelector("[data-channels]"), tbody = table.querySelector("tbody");
    const canTest = panel.hasAttribute("data-can-test");
    tbody.textContent = "";
    d.channels.forEach(function (c) {
      const tr = document.createElement("tr");
      tr.dataset.channel = c.name;
      cell(tr, c.name);
      if (!c.enabled) { const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = "disabled"; tr.lastChild.appendChild(hint); }
      cell(tr, c.kind);
      cell(tr, channelTarget(c)); tr.lastChild.className = "urls";
      if (canTest) {
        const td = document.createElement("td"), b = document.createElement("button"), out = document.createElement("span");
        td.className = "channel-test";
        b.type = "button"; b.className = "button small"; b.textContent = "Send test";
        out.className = "test-result"; out.setAttribute("aria-live", "polite"); out.dataset.testResult = "";
        b.addEventListener("click", function () { testChannel(c, b, out); });
        td.appendChild(b); td.appendChild(out); tr.appendChild(td);
      }
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.channels.length);
  };
  function testChannel(c, button, out) {
    button.disabled = true;
    out.className = "test-result muted"; out.textContent = "sending…";
    fetch(apiUrl("/api/v1/channels/" + encodeURIComponent(c.id) + "/test"), {method: "POST", headers: csrfHeaders(), credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) return apiError(r).then(function (message) { return {ok: false, error: message}; });
        return r.json();
      })
      .then(function (d) {
        out.className = "test-result " + (d.ok ? "rating-good" : "rating-poor");
        out.textContent = d.ok ? "✓ sent" : "✗ " + (d.error || "failed");
        const history = document.querySelector("[data-panel=deliveries]");
        if (history) loadPanel(history);
      })
      .catch(function (e) { out.className = "test-result rating-poor"; out.textContent = "✗ " + e.message; })
      .finally(function () { button.disabled = false; });
  }
  const DELIVERY_CLASS = {sent: "rating-good", failed: "rating-poor", pending: "rating-needs-improvement", sending: "rating-needs-improvement"};
  renderers.deliveries = function (panel, d) {
    const table = panel.querySelector("[data-deliveries]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.deliveries.forEach(function (x) {
      const tr = document.createElement("tr");
      tr.dataset.delivery = x.id;
      timeCell(tr, x.sent_at || x.created_at);
      cell(tr, x.channel || "#" + x.channel_id);
      cell(tr, x.event || "");
      cell(tr, x.alert ? x.alert.replace(/#\d+$/, "") : "");
      cell(tr, x.status); tr.lastChild.classList.add(DELIVERY_CLASS[x.status] || "");
      if (x.next_attempt_at) {
        const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = "next try " + fmtIn(Date.parse(x.next_attempt_at) - Date.now());
        tr.lastChild.appendChild(hint);
      }
      cell(tr, fmtInt.format(x.attempts), {num: true});
      cell(tr, x.last_error || ""); tr.lastChild.className = "reason";
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.deliveries.length);
  };

  // --- SLOs: the error budget left, its trend over the window, burn rates per tier ---------
  const BUDGET_CLASS = {healthy: "rating-good", low: "rating-needs-improvement", exhausted: "rating-poor", no_data: "muted"};
  const BUDGET_COLOR = {healthy: "#1a7f37", low: "#9a6700", exhausted: "#cf222e", no_data: "#8c959f"};
  const BUDGET_LABELS = {healthy: "budget healthy", low: "budget low", exhausted: "budget exhausted", no_data: "no traffic"};
  const SLI_LABELS = {availability: "availability", checkout: "checkout success", payment: "payment success", latency: "latency"};
  const fmtFine = new Intl.NumberFormat(locale, {style: "percent", maximumFractionDigits: 3});
  function fmtBurn(v) { return v == null ? "–" : fmtDec.format(v) + "×"; }
  function sloFilter(s) {
    return Object.keys(s.filter).sort().map(function (k) {
      const v = s.filter[k];
      return k + "=" + (Array.isArray(v) ? v.join(", ") : v);
    }).join(" · ");
  }
  function budgetChart(el, s) {
    if (!window.uPlot || !el) return;
    const old = charts.get(el); if (old) old.destroy();
    el.textContent = "";
    const xs = secondsOf(s.trend.points.map(function (p) { return p.t; }));
    const ys = s.trend.points.map(function (p) { return p.remaining == null ? null : p.remaining * 100; });
    const color = BUDGET_COLOR[s.budget_state] || "#1f6feb";
    const pct = function (v) { return v == null ? "–" : fmtDec.format(v) + " %"; };
    const plot = new uPlot({width: chartWidth(el), height: 200,
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [Math.min(0, min == null ? 0 : min), Math.max(100, max == null ? 100 : max)]; }}},
      // A few isolated points (a young objective) draw no line: show them as dots.
      series: [{}, {label: "Budget left", stroke: color, width: 2, fill: color + "1a", value: function (u, v) { return pct(v); },
                    points: {show: ys.filter(function (v) { return v != null; }).length < 10, size: 6, fill: color}}],
      axes: [{}, {size: 64, values: function (u, vals) { return vals.map(pct); }}]}, [xs, ys], el);
    charts.set(el, plot);
  }
  renderers.slos = function (panel, d) {
    const list = panel.querySelector("[data-slos]"), template = document.querySelector("template[data-slo-template]");
    // Cards are rebuilt on every refresh: let go of the old charts (uPlot listens on window).
    list.querySelectorAll(".chart").forEach(function (el) { const plot = charts.get(el); if (plot) plot.destroy(); });
    list.textContent = "";
    panel.querySelector("[data-slos-empty]").hidden = d.slos.length > 0;
    const burning = d.slos.filter(function (s) { return s.firing.length; }).length;
    const spent = d.slos.filter(function (s) { return s.budget_state === "exhausted"; }).length;
    text(panel.querySelector("[data-slos-summary]"), d.slos.length ? plural(d.slos.length, "objective") + " · " +
      (burning ? fmtInt.format(burning) + " burning too fast now" : "none burning too fast now") +
      (spent ? " · " + fmtInt.format(spent) + " out of budget" : "") : "");
    // What needs attention first: burning, then the least budget left; no traffic last.
    const RANK = {exhausted: 0, low: 1, healthy: 2, no_data: 3};
    d.slos.slice().sort(function (a, b) {
      return (b.firing.length ? 1 : 0) - (a.firing.length ? 1 : 0) || RANK[a.budget_state] - RANK[b.budget_state] ||
        (a.budget && b.budget ? a.budget.remaining - b.budget.remaining : 0) || a.name.localeCompare(b.name);
    }).forEach(function (s) {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.slo = s.name;
      list.appendChild(card);  // before the chart: uPlot sizes it from its width
      text(card.querySelector("[data-slo-name]"), s.name);
      text(card.querySelector("[data-slo-sli]"), SLI_LABELS[s.sli] || s.sli);
      const state = card.querySelector("[data-slo-state]");
      if (s.firing.length) {
        state.textContent = "burning: " + s.firing.join(", "); state.classList.add("rating-poor");
      } else {
        state.textContent = BUDGET_LABELS[s.budget_state] || s.budget_state;
        state.classList.add(BUDGET_CLASS[s.budget_state] || "muted");
      }
      if (!s.enabled) state.textContent += " · alerts disabled";
      const filter = sloFilter(s);
      text(card.querySelector("[data-slo-objective]"), fmtFine.format(s.target) + " over " + s.window + " · " + s.description + (filter ? " · " + filter : ""));
      const remaining = card.querySelector("[data-slo-remaining]");
      remaining.textContent = s.budget ? fmtPct(s.budget.remaining) : "–";
      remaining.classList.add(BUDGET_CLASS[s.budget_state] || "muted");
      text(card.querySelector("[data-slo-consumed]"), s.budget ?
        fmtDec.format(s.budget.consumed) + " bad of " + fmtDec.format(s.budget.allowed) + " allowed over " + s.window :
        "no traffic over the window yet");
      const fact = function (k) { return card.querySelector("[data-fact=" + k + "]"); };
      text(fact("value"), s.value == null ? "–" : fmtFine.format(s.value));
      if (s.value != null) fact("value").classList.add(s.value >= s.target ? "rating-good" : "rating-poor");
      text(fact("target"), fmtFine.format(s.target));
      text(fact("counts"), fmtInt.format(s.good) + " / " + fmtInt.format(s.total));
      const chart = card.querySelector("[data-chart=budget]");
      const drawn = s.trend.points.some(function (p) { return p.remaining != null; });
      card.querySelector("[data-slo-nochart]").hidden = drawn;
      chart.hidden = !drawn;
      text(card.querySelector("[data-slo-trend-hint]"), "each point: the " + s.window + " window ending there, every " + fmtLength(s.trend.step_s));
      if (drawn) budgetChart(chart, s);
      const tbody = card.querySelector("[data-slo-tiers] tbody");
      s.tiers.forEach(function (t) {
        const tr = document.createElement("tr");
        tr.dataset.tier = t.name;
        const hinted = function (value, hintText, hot) {
          cell(tr, value, {num: true});
          if (hot) tr.lastChild.classList.add("rating-poor");
          const hint = document.createElement("div"); hint.className = "hint"; hint.textContent = hintText;
          tr.lastChild.appendChild(hint);
        };
        cell(tr, t.name);
        const sev = document.createElement("div"); sev.className = "hint"; sev.textContent = t.severity;
        tr.lastChild.appendChild(sev);
        cell(tr, "≥ " + fmtBurn(t.threshold), {num: true});
        hinted(fmtBurn(t.long_burn), "over " + t.long_window, t.long_burn != null && t.long_burn >= t.threshold);
        hinted(fmtBurn(t.short_burn), "over " + t.short_window, t.short_burn != null && t.short_burn >= t.threshold);
        const phase = t.alert ? t.alert.phase : null;
        cell(tr, t.firing ? "firing" : phase ? phase : "ok");
        tr.lastChild.classList.add(t.firing || phase === "firing" ? "rating-poor" : phase === "pending" ? "rating-needs-improvement" : "rating-good");
        if (phase && !t.firing) {
          const hint = document.createElement("div"); hint.className = "hint";
          hint.textContent = "alert " + phase + " since " + fmtUtc(t.alert.since);
          tr.lastChild.appendChild(hint);
        }
        tbody.appendChild(tr);
      });
      if (!s.tiers.length) card.querySelector("[data-slo-tiers]").hidden = true;
    });
  };

  // --- reports: previews of each audience's latest report, schedules -----------------------
  // The preview is the downloadable HTML itself (static SVG, no script) in a sandboxed
  // frame: srcdoc, since this server's pages refuse to be framed by URL.
  document.querySelectorAll("[data-report-frame]").forEach(function (frame) {
    const box = frame.closest("[data-report]"), status = box.querySelector("[data-report-status]");
    fetch(box.dataset.api + "&format=html", {credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) return apiError(r).then(function (m) { throw new Error(m); });
        return r.text();
      })
      .then(function (html) { frame.srcdoc = html; status.textContent = ""; })
      .catch(function (e) { status.className = "error-box small"; status.textContent = "Could not make the report: " + e.message; });
  });
  const AUDIENCE_LABEL = {technical: "technical", business: "business"};
  function fmtLocal(iso) {  // schedules run on the project's clock: show it
    return new Date(iso).toLocaleString(locale, {timeZone: body.dataset.timezone || "UTC",
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit"});
  }
  renderers["report-schedules"] = function (panel, d) {
    const table = panel.querySelector("[data-schedules]"), tbody = table.querySelector("tbody");
    const canEdit = panel.hasAttribute("data-can-edit");
    panel.querySelector("[data-smtp-missing]").hidden = d.smtp;
    panel.querySelector("[data-sending-off]").hidden = d.sending;
    const form = document.querySelector("form[data-schedule-form]");
    if (form) form.hidden = !d.smtp;
    tbody.textContent = "";
    d.schedules.forEach(function (s) {
      const tr = document.createElement("tr");
      tr.dataset.schedule = s.id;
      cell(tr, s.name);
      cell(tr, AUDIENCE_LABEL[s.audience] + (s.enabled ? "" : " (paused)"));
      cell(tr, (s.period === "weekly" ? "Mondays at " : "daily at ") + pad2(s.hour) + ":00 " + s.timezone);
      cell(tr, s.recipients.join(", "));
      const last = document.createElement("td");
      last.textContent = s.last_sent_for ? s.last_sent_for + (s.last_sent_at ? " (" + fmtLocal(s.last_sent_at) + ")" : "") : "never";
      if (s.last_error) {
        const err = document.createElement("div"); err.className = "hint rating-poor"; err.textContent = s.last_error;
        last.appendChild(err);
      }
      tr.appendChild(last);
      cell(tr, s.due ? s.due + ": due now" : s.next ? s.next.period + ", " + fmtLocal(s.next.at) : "paused");
      if (canEdit) {
        const actions = document.createElement("td"); actions.className = "actions";
        const remove = document.createElement("button");
        remove.type = "button"; remove.className = "button small danger"; remove.textContent = "Remove";
        remove.addEventListener("click", function () { removeSchedule(s, remove); });
        actions.appendChild(remove); tr.appendChild(actions);
      }
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.schedules.length);
  };
  const scheduleError = document.querySelector("[data-schedule-error]");
  function showScheduleError(message) { scheduleError.textContent = message; scheduleError.hidden = false; }
  function removeSchedule(s, button) {
    if (!window.confirm("Remove the report schedule “" + s.name + "”? Its recipients get no more reports.")) return;
    button.disabled = true;
    fetch(apiUrl("/api/v1/report-schedules/" + encodeURIComponent(s.id)), {method: "DELETE", headers: csrfHeaders(), credentials: "same-origin"})
      .then(function (r) {
        if (r.ok) { loadPanels(); return; }
        return apiError(r).then(function (m) { button.disabled = false; showScheduleError(m); });
      });
  }
  const scheduleForm = document.querySelector("form[data-schedule-form]");
  if (scheduleForm) {
    scheduleForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      scheduleError.hidden = true;
      scheduleForm.querySelectorAll("[data-field-error]").forEach(function (el) { el.textContent = ""; });
      scheduleForm.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      const f = scheduleForm.elements;
      const payload = {name: f.name.value.trim(), audience: f.audience.value, period: f.period.value,
        hour: Number(f.hour.value), recipients: f.recipients.value.split(/[,;\s]+/).filter(Boolean)};
      const headers = csrfHeaders(); headers["Content-Type"] = "application/json";
      const button = scheduleForm.querySelector("button[type=submit]");
      button.disabled = true;
      fetch(apiUrl("/api/v1/report-schedules"), {method: "POST", headers: headers, body: JSON.stringify(payload), credentials: "same-origin"})
        .then(function (r) {
          if (r.ok) { scheduleForm.reset(); loadPanels(); return; }
          return apiError(r).then(function (message) {
            // "recipients[1]: ..." names the field to fix.
            const m = /^(name|audience|period|hour|recipients)(\[\d+\])?: ([\s\S]*)$/.exec(message);
            if (!m) return showScheduleError(message);
            scheduleForm.querySelector("[data-field-error=" + m[1] + "]").textContent = (m[2] ? "address " + (Number(m[2].slice(1, -1)) + 1) + ": " : "") + m[3];
            f[m[1]].setAttribute("aria-invalid", "true");
          });
        })
        .catch(function (e) { showScheduleError("Could not save the schedule: " + e.message); })
        .finally(function () { button.disabled = false; });
    });
  }

  // --- backend: services, endpoints, dependencies, errors, one trace's waterfall ---------
  function fmtMs(v) {
    if (v == null) return "–";
    if (v >= 1000) return fmtDec.format(v / 1000) + " s";
    return (v < 10 ? fmtDec.format(v) : fmtInt.format(v)) + " ms";
  }
  function numCell(tr, label, value) { cell(tr, label, {num: true, sort: value == null ? "" : value}); }
  // This page with the period and project kept, and `extra` (a trace, a service) set.
  function backendHref(extra) {
    const url = new URL("/reliability/backend", location.origin);
    ["project", "range", "from", "to"].forEach(function (k) { if (page.get(k)) url.searchParams.set(k, page.get(k)); });
    Object.keys(extra).forEach(function (k) { url.searchParams.set(k, extra[k]); });
    return url.pathname + url.search;
  }
  function figureCells(tr, r) {
    numCell(tr, r.error_rate == null ? "–" : fmtPct(r.error_rate), r.error_rate);
    if (r.error_rate) tr.lastChild.classList.add("rating-poor");
    numCell(tr, fmtMs(r.p50), r.p50); numCell(tr, fmtMs(r.p95), r.p95); numCell(tr, fmtMs(r.p99), r.p99);
  }
  const serviceSelect = document.querySelector("[data-service-select]");
  if (serviceSelect) serviceSelect.addEventListener("change", function () { serviceSelect.form.submit(); });
  renderers.backend = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    if (serviceSelect) {
      const chosen = d.service || "";
      while (serviceSelect.options.length > 1) serviceSelect.remove(1);
      const names = d.services.map(function (s) { return s.service; });
      if (chosen && names.indexOf(chosen) < 0) names.unshift(chosen);  // filtered to one without spans now
      names.forEach(function (n) { serviceSelect.add(new Option(n, n, false, n === chosen)); });
    }
    // Without any span, only how to send them: empty charts and tables would add nothing.
    const none = d.services.length === 0;
    panel.querySelector("[data-backend-empty]").hidden = !none;
    panel.querySelector("[data-backend-figures]").hidden = none;
    document.querySelectorAll("[data-backend-more]").forEach(function (el) { el.hidden = none; });
    const t = d.totals;
    const card = function (k) { return panel.querySelector("[data-backend-card=" + k + "]"); };
    text(card("throughput").querySelector(".kpi-value"), t.throughput == null ? "–" : fmtDec.format(t.throughput) + " /min");
    text(card("throughput").querySelector(".kpi-sub"), fmtInt.format(t.requests) + " requests" + (d.service ? " to " + d.service : ""));
    const rate = card("error_rate").querySelector(".kpi-value");
    rate.textContent = t.error_rate == null ? "–" : fmtPct(t.error_rate);
    rate.classList.toggle("rating-poor", !!t.error_rate);
    text(card("error_rate").querySelector(".kpi-sub"), fmtInt.format(t.errors) + " of " + fmtInt.format(t.requests) + " requests in error");
    text(card("p95").querySelector(".kpi-value"), fmtMs(t.p95));
    text(card("p95").querySelector(".kpi-sub"), "p50 " + fmtMs(t.p50) + " · p99 " + fmtMs(t.p99));
    const xs = secondsOf(d.series.map(function (b) { return b.t; }));
    const span = [Date.parse(d.range.from) / 1000, Date.parse(d.range.to) / 1000];
    const pick = function (k, scale) { return d.series.map(function (b) { return b[k] == null ? null : b[k] * (scale || 1); }); };
    const ms = function (u, v) { return fmtMs(v); };
    timeseries(panel.querySelector("[data-chart=backend-latency]"), xs, [
      {label: "p50", color: "#1a7f37", values: pick("p50"), value: ms},
      {label: "p95", color: "#1f6feb", values: pick("p95"), value: ms},
      {label: "p99", color: "#8250df", values: pick("p99"), value: ms}], span, 260, fmtMs);
    timeseries(panel.querySelector("[data-chart=backend-errors]"), xs, [
      {label: "error rate (%)", color: "#cf222e", values: pick("error_rate", 100),
       value: function (u, v) { return v == null ? "–" : fmtDec.format(v) + " %"; }}],
      span, 200, function (v) { return fmtDec.format(v) + " %"; });
    timeseries(panel.querySelector("[data-chart=backend-throughput]"), xs, [
      {label: "requests per minute", color: "#1f6feb", values: pick("throughput"),
       value: function (u, v) { return v == null ? "–" : fmtDec.format(v); }}],
      span, 200, fmtDec.format);
    const st = panel.querySelector("[data-services] tbody"); st.textContent = "";
    d.services.forEach(function (s) {
      const tr = document.createElement("tr");
      linkCell(tr, s.service, backendHref({service: s.service}));
      numCell(tr, fmtInt.format(s.spans), s.spans); numCell(tr, fmtInt.format(s.requests), s.requests);
      numCell(tr, s.throughput == null ? "–" : fmtDec.format(s.throughput), s.throughput);
      figureCells(tr, s);
      st.appendChild(tr);
    });
    const et = panel.querySelector("[data-endpoints]"), eb = et.querySelector("tbody"); eb.textContent = "";
    d.endpoints.forEach(function (e) {
      const tr = document.createElement("tr");
      cell(tr, e.endpoint); cell(tr, e.service);
      numCell(tr, fmtInt.format(e.requests), e.requests);
      numCell(tr, e.throughput == null ? "–" : fmtDec.format(e.throughput), e.throughput);
      figureCells(tr, e);
      eb.appendChild(tr);
    });
    fillEmpty(panel, et, d.endpoints.length);
    text(panel.querySelector("[data-slowest-hint]"), "by p95, among endpoints with at least " + fmtInt.format(d.min_calls) + " requests");
    const slt = panel.querySelector("[data-slowest]"), sb = slt.querySelector("tbody"); sb.textContent = "";
    d.slowest.forEach(function (e) {
      const tr = document.createElement("tr");
      cell(tr, e.endpoint); cell(tr, e.service);
      numCell(tr, fmtInt.format(e.requests), e.requests);
      numCell(tr, fmtMs(e.p95), e.p95); numCell(tr, fmtMs(e.p99), e.p99);
      numCell(tr, e.error_rate == null ? "–" : fmtPct(e.error_rate), e.error_rate);
      sb.appendChild(tr);
    });
    fillEmpty(panel, slt, d.slowest.length);
  };
  renderers["backend-dependencies"] = function (panel, d) {
    const table = panel.querySelector("[data-dependencies]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    // Bars are scaled to 100 %, or to the largest share when parallel calls pass it.
    const top = Math.max(1, Math.max.apply(null, d.dependencies.map(function (r) { return r.share || 0; }).concat([0])));
    d.dependencies.forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, r.name);
      cell(tr, r.type === "database" ? "database" : "outgoing call");
      cell(tr, r.services.join(", "));
      numCell(tr, fmtInt.format(r.calls), r.calls);
      numCell(tr, r.error_rate == null ? "–" : fmtPct(r.error_rate), r.error_rate);
      if (r.error_rate) tr.lastChild.classList.add("rating-poor");
      numCell(tr, fmtMs(r.p50), r.p50); numCell(tr, fmtMs(r.p95), r.p95);
      const td = document.createElement("td"); td.className = "num share";
      td.dataset.value = r.share == null ? "" : r.share;
      if (r.share == null) td.textContent = "–";
      else {
        const bar = document.createElement("span"), fill = document.createElement("span");
        bar.className = "share-bar"; fill.style.width = (100 * r.share / top) + "%";
        bar.appendChild(fill); td.appendChild(bar); td.appendChild(document.createTextNode(fmtPct(r.share)));
        td.title = fmtMs(r.total_ms) + " of " + fmtMs(r.traces_ms) + " in the requests it ran in";
      }
      tr.appendChild(td);
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.dependencies.length);
  };
  renderers["backend-errors"] = function (panel, d) {
    const table = panel.querySelector("[data-backend-errors]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    d.groups.forEach(function (g) {
      const tr = document.createElement("tr");
      const td = document.createElement("td"), b = document.createElement("button");
      b.type = "button"; b.className = "linklike";
      b.textContent = g.type + (g.message ? ": " + g.message : "");
      b.addEventListener("click", function () {
        const box = panel.querySelector("[data-backend-error]");
        box.hidden = false;
        text(box.querySelector("[data-backend-error-title]"), g.type + ": " + (g.example_message || "(no message)"));
        text(box.querySelector("[data-backend-error-stack]"), g.stacktrace || "(no stack trace)");
        box.scrollIntoView({block: "nearest"});
      });
      td.appendChild(b);
      if (g.example_message && g.example_message !== g.message) {
        const ex = document.createElement("div"); ex.className = "hint"; ex.textContent = "latest: " + g.example_message; td.appendChild(ex);
      }
      tr.appendChild(td);
      cell(tr, g.service);
      numCell(tr, fmtInt.format(g.count), g.count); numCell(tr, fmtInt.format(g.traces), g.traces);
      cell(tr, g.endpoints.map(function (e) { return e.endpoint; }).join("\n"));
      tr.lastChild.className = "endpoints";
      cell(tr, fmtTime(g.first_seen), {sort: g.first_seen}); cell(tr, fmtTime(g.last_seen), {sort: g.last_seen});
      linkCell(tr, "trace", backendHref({trace: g.example_trace_id}));
      tr.lastChild.firstChild.dataset.traceLink = g.example_trace_id;
      tbody.appendChild(tr);
    });
    fillEmpty(panel, table, d.groups.length);
  };
  const SERVICE_COLORS = ["#1f6feb", "#8250df", "#1a7f37", "#bc4c00", "#bf3989", "#0a7f8a", "#6e7781"];
  renderers.trace = function (panel, d) {
    const colors = {};
    d.services.forEach(function (s, i) { colors[s] = SERVICE_COLORS[i % SERVICE_COLORS.length]; });
    text(panel.querySelector("[data-trace-title]"), d.root.endpoint + " · " + d.root.service);
    text(panel.querySelector("[data-trace-summary]"), fmtTime(d.start) + " · " + fmtMs(d.duration_ms) + " · " +
      plural(d.span_count, "span") + " · " + d.services.join(", ") + (d.errors ? " · " + plural(d.errors, "span") + " in error" : "") +
      (d.truncated ? " · only the first " + fmtInt.format(d.span_count) + " spans" : ""));
    traceBrowser(panel, d);
    const total = Math.max(d.duration_ms, 0.001);
    const box = panel.querySelector("[data-waterfall]");
    box.textContent = "";
    const row = function (cls) {
      const r = document.createElement("div"), name = document.createElement("div"), track = document.createElement("div"), lane = document.createElement("div");
      r.className = "wf-row " + (cls || ""); name.className = "wf-name"; track.className = "wf-track"; lane.className = "wf-lane";
      track.appendChild(lane); r.appendChild(name); r.appendChild(track);
      return {row: r, name: name, lane: lane};
    };
    const head = row("wf-head");
    head.name.textContent = "Span (service)";
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      const tick = document.createElement("span"); tick.className = "wf-tick" + (f === 1 ? " wf-tick-end" : "");
      if (f === 1) tick.style.right = "0"; else tick.style.left = (100 * f) + "%";
      tick.textContent = fmtMs(total * f); head.lane.appendChild(tick);
    });
    box.appendChild(head.row);
    d.spans.forEach(function (s) {
      const r = row(s.error ? "wf-error" : "");
      r.row.setAttribute("role", "listitem"); r.row.dataset.spanId = s.span_id;
      r.name.style.paddingLeft = (8 + 16 * s.depth) + "px";
      const b = document.createElement("button"); b.type = "button"; b.className = "linklike"; b.textContent = s.name;
      const svc = document.createElement("span"); svc.className = "wf-svc"; svc.textContent = s.service;
      r.name.appendChild(b); r.name.appendChild(svc);
      r.name.title = s.name + " (" + s.service + ", " + s.kind + ")";
      const left = 100 * s.offset_ms / total, width = Math.max(100 * s.duration_ms / total, 0.3);
      const bar = document.createElement("span"); bar.className = "wf-bar";
      bar.style.left = Math.min(left, 99.7) + "%"; bar.style.width = Math.min(width, 100 - Math.min(left, 99.7)) + "%";
      bar.style.background = colors[s.service];
      const dur = document.createElement("span"); dur.className = "wf-dur"; dur.textContent = fmtMs(s.duration_ms);
      // The label goes after the bar; before it when the bar ends near the right edge; inside
      // it when the bar spans nearly the whole trace (outside, it would cover the names).
      if (left + width <= 80) dur.style.left = (left + width) + "%";
      else if (left >= 12) dur.style.right = (100 - left) + "%";
      else { dur.classList.add("wf-dur-in"); dur.style.right = Math.max(0, 100 - left - width) + "%"; }
      r.lane.appendChild(bar); r.lane.appendChild(dur);
      r.row.addEventListener("click", function () { showSpan(panel, s, r.row); });
      box.appendChild(r.row);
    });
  };
  // The browser side of a trace: the page views and API calls it served, their sessions.
  function traceBrowser(panel, d) {
    const box = panel.querySelector("[data-trace-browser]");
    if (!box) return;
    const views = d.page_views || [], sessions = d.sessions || [];
    box.hidden = !views.length && !sessions.length;
    const list = box.querySelector("[data-trace-sessions]"); list.textContent = sessions.length ? "" : "none";
    sessions.forEach(function (id, i) {
      const a = document.createElement("a"); a.href = journeyHref(id); a.textContent = id;
      if (i) list.appendChild(document.createTextNode(", "));
      list.appendChild(a);
    });
    const table = box.querySelector("[data-trace-views]"), tbody = table.querySelector("tbody");
    tbody.textContent = ""; table.hidden = !views.length;
    views.forEach(function (v) {
      const tr = document.createElement("tr");
      cell(tr, fmtTime(v.t));
      cell(tr, v.kind === "view" ? "Page view" : (v.failed ? "Failed API call " : "API call ") + (v.url || ""));
      cell(tr, v.page || "–");
      if (v.session_id) linkCell(tr, v.session_id, journeyHref(v.session_id)); else cell(tr, "–");
      cell(tr, [v.device, v.browser].filter(Boolean).join(", ") || "–");
      numCell(tr, fmtMs(v.kind === "view" ? v.ttfb_ms : v.duration_ms), v.kind === "view" ? v.ttfb_ms : v.duration_ms);
      numCell(tr, fmtMs(v.lcp_ms), v.lcp_ms);
      tbody.appendChild(tr);
    });
  }
  function showSpan(panel, s, rowEl) {
    panel.querySelectorAll(".wf-row.selected").forEach(function (el) { el.classList.remove("selected"); });
    rowEl.classList.add("selected");
    const box = panel.querySelector("[data-span-detail]");
    box.hidden = false;
    text(box.querySelector("[data-span-title]"), s.name);
    const facts = box.querySelector("[data-span-facts]"); facts.textContent = "";
    const add = function (label, value) {
      if (value == null || value === "") return;
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = label; dd.textContent = value; facts.appendChild(dt); facts.appendChild(dd);
    };
    add("Service", s.service); add("Kind", s.kind);
    add("Status", s.status + (s.status_message ? ": " + s.status_message : ""));
    add("Start", fmtTime(s.start) + " (+" + fmtMs(s.offset_ms) + ")"); add("Duration", fmtMs(s.duration_ms));
    add("HTTP", [s.http_method, s.http_route, s.http_status].filter(function (v) { return v != null; }).join(" "));
    add("Database", [s.db_system, s.db_operation].filter(Boolean).join(" "));
    add("Peer", [s.server_address, s.peer_service].filter(Boolean).join(" · "));
    add("Span id", s.span_id + (s.parent_span_id ? " (parent " + s.parent_span_id + ")" : ""));
    if (s.session_id) {
      const dt = document.createElement("dt"), dd = document.createElement("dd"), a = document.createElement("a");
      dt.textContent = "Session"; a.href = journeyHref(s.session_id); a.textContent = s.session_id;
      dd.appendChild(a); facts.appendChild(dt); facts.appendChild(dd);
    }
    const exc = box.querySelector("[data-span-exceptions]"); exc.textContent = "";
    // The exception events, else the first exception's columns (an SDK that sent no events).
    const list = s.exceptions && s.exceptions.length ? s.exceptions
      : (s.exception_type || s.exception_message ? [{type: s.exception_type, message: s.exception_message}] : []);
    list.forEach(function (x) {
      const div = document.createElement("div"); div.className = "exception";
      const h = document.createElement("strong"); h.className = "rating-poor"; h.textContent = (x.type || "Exception") + (x.message ? ": " + x.message : "");
      div.appendChild(h);
      if (x.stacktrace) { const pre = document.createElement("pre"); pre.className = "stack"; pre.textContent = x.stacktrace; div.appendChild(pre); }
      exc.appendChild(div);
    });
    const tbody = box.querySelector("[data-span-attributes] tbody"); tbody.textContent = "";
    const show = function (prefix, attrs) {
      Object.keys(attrs || {}).sort().forEach(function (k) {
        const tr = document.createElement("tr"), v = attrs[k];
        cell(tr, prefix + k); cell(tr, typeof v === "string" ? v : JSON.stringify(v));
        tbody.appendChild(tr);
      });
    };
    show("", s.attributes); show("resource: ", s.resource);
    box.querySelector("[data-span-attributes]").hidden = tbody.rows.length === 0;
    box.scrollIntoView({block: "nearest"});
  }

  // --- security: findings, sign-ins, declined payments, account changes, sign-ups ----------
  // (GET /api/v1/security and /api/v1/security/findings; the findings routes may be
  // missing on an older server: a 404 there is said plainly, not shown as an error.)
  const SEC_KINDS = {credential_stuffing: "Credential stuffing", brute_force: "Brute force",
                     card_testing: "Card testing", account_takeover: "Account takeover"};
  const SEC_STATUS = {open: "open", acknowledged: "acknowledged", false_positive: "false positive", resolved: "resolved"};
  const SEC_STATUS_CLASS = {open: "rating-poor", acknowledged: "rating-needs-improvement", false_positive: "muted", resolved: "rating-good"};
  const SEC_CHANGE_KINDS = [["email", "e-mail", "#cf222e"], ["address", "address", "#bc4c00"], ["phone", "phone", "#8250df"],
                            ["name", "name", "#1f6feb"], ["other", "other fields", "#9aa5b1"], ["password_changed", "password changed", "#1a7f37"]];
  const SEC_EVIDENCE = ["accounts", "networks", "user_agents", "sessions", "cards", "counts", "event_ids", "peak"];
  const secCharts = {};
  let secRendered = false;
  function secKind(kind) { return SEC_KINDS[kind] || String(kind || "").replace(/_/g, " "); }
  function secStatusBadge(status) {
    const b = document.createElement("span");
    b.className = "badge " + (SEC_STATUS_CLASS[status] || "");
    b.textContent = SEC_STATUS[status] || status;
    return b;
  }
  function secRate(v) { return v == null ? "–" : fmtPct(v); }
  function secHref(extra) {
    const url = new URL("/security", location.origin);
    ["project", "range", "from", "to"].forEach(function (k) { if (page.get(k)) url.searchParams.set(k, page.get(k)); });
    Object.keys(extra).forEach(function (k) { url.searchParams.set(k, extra[k]); });
    return url.pathname + url.search;
  }
  // Fetch JSON; resolves null on 404 (route or finding missing), rejects on other errors.
  function secFetch(url, options) {
    return fetch(url, Object.assign({headers: {"Accept": "application/json"}, credentials: "same-origin"}, options || {}))
      .then(function (r) {
        if (r.status === 404) return null;
        if (!r.ok) return apiError(r).then(function (m) { throw new Error(m); });
        return r.json();
      });
  }
  function secPanelError(panel, message) {
    let err = panel.querySelector(".panel-error");
    if (!message) { if (err) err.remove(); return; }
    if (!err) { err = document.createElement("div"); err.className = "error-box panel-error"; panel.prepend(err); }
    err.textContent = message;
  }
  // Rows into a table's tbody; its .empty sibling shows when there are none.
  function secRows(root, key, rows, fill) {
    const table = root.querySelector("[data-sec-table=" + key + "]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    rows.forEach(function (r) { const tr = document.createElement("tr"); fill(tr, r); tbody.appendChild(tr); });
    fillEmpty(root, table, rows.length);
  }
  function secNum(tr, v) { cell(tr, fmtInt.format(v), {num: true, sort: v}); }
  function secRateCell(tr, v) {
    cell(tr, secRate(v), {num: true, sort: v == null ? "" : v});
    if (v != null && v >= 0.5) tr.lastChild.classList.add("rating-poor");
  }
  function secText(tr, value, cls) {
    cell(tr, value == null ? "–" : value);
    if (cls) tr.lastChild.className = cls;
  }
  // A bar chart per bucket (stacked when asked) with an optional rate line on a right axis.
  function secChart(el, key, series, bars, rate, stacked) {
    if (!window.echarts || !el) return;
    if (!secCharts[key]) secCharts[key] = window.echarts.init(el, null, {renderer: "canvas"});
    const xs = series.map(function (p) { return Date.parse(p.t); });
    const out = bars.map(function (b) {
      return {name: b.label, type: "bar", stack: stacked ? "all" : undefined, color: b.color, barMaxWidth: 18,
              data: series.map(function (p, i) { return [xs[i], b.value(p)]; })};
    });
    const axes = [{type: "value", min: 0, minInterval: 1}];
    if (rate) {
      out.push({name: rate.label, type: "line", yAxisIndex: 1, showSymbol: true, symbolSize: 4, connectNulls: false, color: rate.color,
                data: series.map(function (p, i) { return [xs[i], p[rate.key] == null ? null : 100 * p[rate.key]]; })});
      axes.push({type: "value", min: 0, max: 100, splitLine: {show: false}, axisLabel: {formatter: "{value} %"}});
    }
    secCharts[key].setOption({animation: false, legend: {top: 0},
      tooltip: {trigger: "axis", valueFormatter: function (v) { return v == null ? "–" : fmtDec.format(v); }},
      grid: {left: 48, right: rate ? 56 : 16, top: 36, bottom: 28}, xAxis: {type: "time"}, yAxis: axes, series: out}, true);
    secCharts[key].resize();
  }
  window.addEventListener("resize", function () { Object.values(secCharts).forEach(function (c) { c.resize(); }); });
  function secBlock(panel, key, has) {
    const block = panel.querySelector("[data-sec-block=" + key + "]");
    block.querySelector("[data-sec-empty]").hidden = has;
    block.querySelector("[data-sec-body]").hidden = !has;
    return block;
  }
  renderers.security = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    panel.querySelectorAll("[data-sec-cap]").forEach(function (el) { el.textContent = "top " + d.limit; });
    const t = d.totals, L = d.logins, P = d.payments, C = d.account_changes, S = d.sign_ups;
    const card = function (k) { return panel.querySelector("[data-sec-card=" + k + "]"); };
    text(card("logins").querySelector(".kpi-value"), fmtInt.format(t.attempts));
    text(card("logins").querySelector(".kpi-sub"), fmtInt.format(t.logins) + " succeeded · " + fmtInt.format(t.failed) + " failed");
    const fr = card("failure_rate").querySelector(".kpi-value");
    fr.textContent = secRate(t.failure_rate); fr.classList.toggle("rating-poor", t.failure_rate != null && t.failure_rate >= 0.2);
    text(card("failure_rate").querySelector(".kpi-sub"), t.attempts ? fmtInt.format(L.totals.accounts_failed) + " accounts and " + fmtInt.format(L.totals.networks_failed) + " networks with failures" : "no sign-in attempts");
    const dr = card("declined_rate").querySelector(".kpi-value");
    dr.textContent = secRate(t.declined_rate); dr.classList.toggle("rating-poor", t.declined_rate != null && t.declined_rate >= 0.2);
    text(card("declined_rate").querySelector(".kpi-sub"), fmtInt.format(t.declined) + " declined · " + fmtInt.format(t.purchases) + " orders · " + fmtInt.format(P.cards.distinct) + " cards");
    text(card("account_changes").querySelector(".kpi-value"), fmtInt.format(t.account_changes));
    text(card("account_changes").querySelector(".kpi-sub"), fmtInt.format(C.totals.by_field.email) + " e-mail · " + fmtInt.format(C.totals.password_changed) + " password");
    text(card("sign_ups").querySelector(".kpi-value"), fmtInt.format(t.sign_ups));
    text(card("sign_ups").querySelector(".kpi-sub"), S.networks.length ? "most from " + S.networks[0].net_prefix + " (" + secRate(S.networks[0].share) + ")" : "");

    // Sign-ins
    const lb = secBlock(panel, "logins", L.totals.attempts > 0);
    if (L.totals.attempts > 0) {
      secChart(lb.querySelector("[data-sec-chart=logins]"), "logins", L.series, [
        {label: "succeeded", color: "#1a7f37", value: function (p) { return p.logins; }},
        {label: "failed", color: "#cf222e", value: function (p) { return p.failed; }}],
        {label: "failure rate (%)", key: "failure_rate", color: "#9a6700"}, true);
    }
    secRows(lb, "networks", L.networks, function (tr, r) {
      secText(tr, r.net_prefix, "mono"); secNum(tr, r.failures); secNum(tr, r.successes); secRateCell(tr, r.failure_rate);
      secNum(tr, r.accounts); secNum(tr, r.accounts_failed); secNum(tr, r.user_agents); timeCell(tr, r.last_seen);
    });
    secRows(lb, "accounts_per_network", L.accounts_per_network, function (tr, r) {
      secText(tr, r.net_prefix, "mono"); secNum(tr, r.accounts); secNum(tr, r.accounts_succeeded); secNum(tr, r.accounts_failed);
      secRateCell(tr, r.failure_rate);
    });
    secRows(lb, "user_agents", L.user_agents, function (tr, r) {
      secText(tr, (r.browser || "unknown") + (r.category === "bot" ? " (automation)" : ""));
      if (r.category === "bot") tr.lastChild.classList.add("rating-poor");
      secText(tr, r.user_agent == null ? "(none sent)" : r.user_agent, "ua");
      secNum(tr, r.failures); secNum(tr, r.successes); secRateCell(tr, r.failure_rate); secNum(tr, r.accounts); secNum(tr, r.networks);
    });
    secRows(lb, "accounts", L.accounts, function (tr, r) {
      secText(tr, r.user_id, "mono"); secNum(tr, r.failures); secNum(tr, r.successes); secNum(tr, r.networks); timeCell(tr, r.last_seen);
    });

    // Declined payments
    const pb = secBlock(panel, "payments", P.totals.declined + P.totals.purchases > 0);
    if (P.totals.declined + P.totals.purchases > 0) {
      secChart(pb.querySelector("[data-sec-chart=payments]"), "payments", P.series, [
        {label: "orders", color: "#1f6feb", value: function (p) { return p.purchases; }},
        {label: "declined", color: "#cf222e", value: function (p) { return p.declined; }}],
        {label: "declined rate (%)", key: "declined_rate", color: "#9a6700"}, false);
    }
    const byKey = function (key) {
      return function (tr, r) {
        secText(tr, r[key] == null ? "(not sent)" : r[key]); secNum(tr, r.declined); secNum(tr, r.purchases); secRateCell(tr, r.declined_rate);
      };
    };
    secRows(pb, "by_method", P.by_method, byKey("payment_method"));
    secRows(pb, "by_gateway", P.by_gateway, byKey("gateway"));
    secRows(pb, "reasons", P.reasons, function (tr, r) {
      secText(tr, r.reason == null ? "(not sent)" : r.reason); secNum(tr, r.count); cell(tr, secRate(r.share), {num: true, sort: r.share});
    });
    text(pb.querySelector("[data-sec-cards]"), fmtInt.format(P.cards.distinct) + " distinct (fingerprint, else BIN)" + (P.cards.without_card ? " · " + fmtInt.format(P.cards.without_card) + " declines name no card" : "") + " · top " + d.limit);
    secRows(pb, "cards", P.cards.top, function (tr, r) {
      secText(tr, r.kind === "bin" ? "BIN " + r.card : r.card + (r.card_bin ? " (BIN " + r.card_bin + ")" : ""), "mono");
      secNum(tr, r.declines); secNum(tr, r.accounts); secNum(tr, r.networks); secText(tr, r.reasons.join(", ")); timeCell(tr, r.last_seen);
    });

    // Account changes
    const cb = secBlock(panel, "account_changes", C.totals.changes > 0);
    if (C.totals.changes > 0) {
      secChart(cb.querySelector("[data-sec-chart=account_changes]"), "account_changes", C.series,
        SEC_CHANGE_KINDS.map(function (k) { return {label: k[1], color: k[2], value: function (p) { return p[k[0]]; }}; }), null, true);
    }
    secRows(cb, "latest", C.latest, function (tr, r) {
      timeCell(tr, r.ts); secText(tr, r.name === "password_changed" ? "password changed" : "profile updated");
      secText(tr, r.user_id, "mono"); secText(tr, r.fields.length ? r.fields.join(", ") : (r.name === "password_changed" ? "password" : "(not sent)"));
      if (r.kinds.indexOf("email") >= 0 || r.name === "password_changed") tr.lastChild.classList.add("rating-needs-improvement");
      secText(tr, r.net_prefix, "mono"); secText(tr, r.user_agent, "ua"); secText(tr, r.country);
    });

    // Sign-ups
    const sb = secBlock(panel, "sign_ups", S.totals.sign_ups > 0);
    if (S.totals.sign_ups > 0) {
      const colors = ["#1f6feb", "#cf222e", "#8250df", "#bc4c00", "#1a7f37"];
      const bars = S.series_networks.map(function (net, i) {
        return {label: net, color: colors[i % colors.length], value: function (p) { return p.networks[net]; }};
      });
      bars.push({label: S.series_networks.length ? "other or no network" : "sign-ups", color: "#9aa5b1", value: function (p) {
        return p.sign_ups - Object.values(p.networks).reduce(function (a, b) { return a + b; }, 0);
      }});
      secChart(sb.querySelector("[data-sec-chart=sign_ups]"), "sign_ups", S.series, bars, null, true);
    }
    secRows(sb, "sign_up_networks", S.networks, function (tr, r) {
      secText(tr, r.net_prefix, "mono"); secNum(tr, r.sign_ups); cell(tr, secRate(r.share), {num: true, sort: r.share});
      secNum(tr, r.accounts); secNum(tr, r.user_agents);
    });
    if (secRendered) loadFindings();  // a refresh: the findings too (the first load is below)
    secRendered = true;
  };

  // The findings list (this page without ?finding=) and the open-findings card.
  const findingsPanel = document.querySelector("[data-panel=security-findings]");
  const findingsStatus = findingsPanel && findingsPanel.querySelector("[data-findings-status]");
  if (findingsStatus) findingsStatus.addEventListener("change", function () { loadFindings(); });
  if (findingsPanel) loadFindings();
  function loadFindings() {
    if (!findingsPanel) return;
    const url = apiUrl(findingsPanel.dataset.api);
    url.searchParams.set("status", findingsStatus.value);
    findingsPanel.setAttribute("aria-busy", "true");
    secFetch(url)
      .then(function (d) { secPanelError(findingsPanel, null); renderFindings(d); })
      .catch(function (e) { secPanelError(findingsPanel, "Could not load the findings: " + e.message); })
      .finally(function () { findingsPanel.setAttribute("aria-busy", "false"); });
  }
  function renderFindings(d) {
    const card = document.querySelector("[data-sec-card=findings]");
    const table = findingsPanel.querySelector("[data-findings]"), tbody = table.querySelector("tbody");
    const empty = findingsPanel.querySelector("[data-findings-empty]");
    tbody.textContent = "";
    if (!d) {  // no findings route on this server
      table.hidden = true; empty.hidden = false;
      empty.textContent = "Findings are not available on this server yet: the detectors that raise them (credential stuffing, brute force, card testing, account takeover) are not running.";
      text(findingsPanel.querySelector("[data-findings-counts]"), "");
      if (card) { text(card.querySelector(".kpi-value"), "–"); text(card.querySelector(".kpi-sub"), "findings not available"); }
      return;
    }
    const counts = d.counts || {};
    text(findingsPanel.querySelector("[data-findings-counts]"), Object.keys(SEC_STATUS).map(function (s) {
      return fmtInt.format(counts[s] || 0) + " " + SEC_STATUS[s];
    }).join(" · "));
    if (card) {
      const v = card.querySelector(".kpi-value");
      v.textContent = fmtInt.format(counts.open || 0); v.classList.toggle("rating-poor", (counts.open || 0) > 0);
      text(card.querySelector(".kpi-sub"), fmtInt.format(counts.acknowledged || 0) + " acknowledged");
    }
    d.findings.forEach(function (f) {
      const tr = document.createElement("tr");
      tr.dataset.finding = f.id;
      const sev = document.createElement("td"); sev.appendChild(severityBadge(f.severity)); sev.dataset.value = SEVERITY_ORDER[f.severity]; tr.appendChild(sev);
      cell(tr, f.kind_title || secKind(f.kind));
      linkCell(tr, f.title, secHref({finding: f.id}));
      secText(tr, f.subject, "mono");
      timeCell(tr, f.first_seen); timeCell(tr, f.last_seen);
      const st = document.createElement("td"); st.appendChild(secStatusBadge(f.status)); tr.appendChild(st);
      tr.addEventListener("click", function (ev) { if (!ev.target.closest("a")) location.href = secHref({finding: f.id}); });
      tbody.appendChild(tr);
    });
    table.hidden = d.findings.length === 0; empty.hidden = d.findings.length > 0;
    const chosen = findingsStatus.value;
    empty.textContent = chosen === "open" ? "No open findings. The detectors read login_failed, login, payment_declined, profile_updated and password_changed events with the shopper's ip (docs/events.md); what they raise shows here."
      : "No findings " + (chosen === "all" ? "yet" : "with status " + (SEC_STATUS[chosen] || chosen)) + ".";
  }

  // One finding (?finding=N): status, evidence, events; admins change its status.
  const findingPanel = document.querySelector("[data-panel=security-finding]");
  function loadFinding() {
    findingPanel.setAttribute("aria-busy", "true");
    secFetch(apiUrl(findingPanel.dataset.api))
      .then(function (d) { secPanelError(findingPanel, null); renderFinding(d); })
      .catch(function (e) { secPanelError(findingPanel, "Could not load this finding: " + e.message); })
      .finally(function () { findingPanel.setAttribute("aria-busy", "false"); });
  }
  function secFact(dl, label, value) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = label;
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value == null || value === "" ? "–" : value;
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function secList(items, href) {
    const box = document.createElement("div"); box.className = "sec-list";
    if (!items || !items.length) { box.textContent = "–"; return box; }
    items.slice(0, 50).forEach(function (x) {
      const el = href ? document.createElement("a") : document.createElement("code");
      el.textContent = x; if (href) el.href = href(x);
      box.appendChild(el);
    });
    if (items.length > 50) { const more = document.createElement("span"); more.className = "hint"; more.textContent = "and " + fmtInt.format(items.length - 50) + " more"; box.appendChild(more); }
    return box;
  }
  function secParams(e) {
    let p = e.params;
    if (typeof p === "string") { try { p = JSON.parse(p); } catch (x) { p = {}; } }
    if (!p || typeof p !== "object") p = {};
    const out = [];
    ["reason", "method", "payment_method", "gateway", "card_bin", "card_fingerprint"].forEach(function (k) { if (p[k] != null) out.push(k + ": " + p[k]); });
    if (Array.isArray(p.fields)) out.push("fields: " + p.fields.join(", "));
    const value = e.value != null ? e.value : p.value, currency = e.currency || p.currency;
    if (value != null) out.push("value: " + (currency ? fmtMoney(value, currency) : fmtDec.format(value)));
    return out.join(" · ");
  }
  function renderFinding(d) {
    const body = findingPanel.querySelector("[data-finding-body]"), missing = findingPanel.querySelector("[data-finding-missing]");
    if (!d) {
      body.hidden = true; missing.hidden = false;
      missing.textContent = "No such finding in this project (or findings are not available on this server yet).";
      return;
    }
    const f = d.finding;
    body.hidden = false; missing.hidden = true;
    text(findingPanel.querySelector("[data-finding-title]"), "#" + f.id + " " + f.title);
    const badges = findingPanel.querySelector("[data-finding-badges]");
    badges.textContent = ""; badges.appendChild(severityBadge(f.severity)); badges.appendChild(document.createTextNode(" ")); badges.appendChild(secStatusBadge(f.status));
    findingPanel.querySelectorAll("[data-set-status]").forEach(function (b) {
      const to = b.dataset.setStatus;
      b.hidden = to === "open" ? f.status === "open" : f.status === to;
      b.disabled = false;
    });
    const facts = findingPanel.querySelector("[data-finding-facts]"); facts.textContent = "";
    secFact(facts, "Kind", f.kind_title || secKind(f.kind)); secFact(facts, "Rule", f.rule); secFact(facts, "Subject", f.subject);
    secFact(facts, "First seen", f.first_seen ? fmtUtc(f.first_seen) : null); secFact(facts, "Last seen", f.last_seen ? fmtUtc(f.last_seen) : null);
    secFact(facts, "Raised", f.created_at ? fmtUtc(f.created_at) : null); secFact(facts, "Updated", f.updated_at ? fmtUtc(f.updated_at) : null);
    if (f.status_at) secFact(facts, "Status set", (SEC_STATUS[f.status] || f.status) + " by " + (f.status_by || "?") + ", " + fmtUtc(f.status_at));
    const ev = f.evidence || {}, dl = findingPanel.querySelector("[data-finding-evidence]"); dl.textContent = "";
    secFact(dl, "Accounts (" + fmtInt.format((ev.accounts || []).length) + ")", secList(ev.accounts));
    secFact(dl, "Networks (" + fmtInt.format((ev.networks || []).length) + ")", secList(ev.networks));
    secFact(dl, "User agents (" + fmtInt.format((ev.user_agents || []).length) + ")", secList(ev.user_agents));
    secFact(dl, "Sessions (" + fmtInt.format((ev.sessions || []).length) + ")", secList(ev.sessions, journeyHref));
    if (ev.cards != null) secFact(dl, "Cards", fmtInt.format(ev.cards));
    const counts = ev.counts || {};
    secFact(dl, "Events", Object.keys(counts).length ? Object.keys(counts).map(function (k) { return k + ": " + fmtInt.format(counts[k]); }).join(" · ") : null);
    // Whatever else the detector recorded (its window, thresholds...).
    Object.keys(ev).filter(function (k) { return SEC_EVIDENCE.indexOf(k) < 0; }).sort().forEach(function (k) {
      const v = ev[k];
      secFact(dl, k.replace(/_/g, " "), typeof v === "number" ? fmtDec.format(v) : (Array.isArray(v) ? secList(v.map(String)) : (typeof v === "string" ? v : JSON.stringify(v))));
    });
    const table = findingPanel.querySelector("[data-finding-events]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    (d.events || []).forEach(function (e) {
      const tr = document.createElement("tr");
      timeCell(tr, e.ts); secText(tr, e.name);
      if (e.name === "login_failed" || e.name === "payment_declined") tr.lastChild.classList.add("rating-poor");
      secText(tr, e.user_id, "mono"); secText(tr, e.net_prefix, "mono"); secText(tr, e.user_agent, "ua"); secText(tr, e.country);
      secText(tr, secParams(e));
      tbody.appendChild(tr);
    });
    fillEmpty(findingPanel, table, (d.events || []).length);
    table.hidden = !(d.events || []).length;
  }
  if (findingPanel) {
    findingPanel.querySelectorAll("[data-set-status]").forEach(function (b) {
      b.addEventListener("click", function () {
        const box = findingPanel.querySelector("[data-finding-error]");
        box.hidden = true;
        findingPanel.querySelectorAll("[data-set-status]").forEach(function (x) { x.disabled = true; });
        const headers = Object.assign({"Content-Type": "application/json", "Accept": "application/json"}, csrfHeaders());
        fetch(apiUrl(findingPanel.dataset.api), {method: "POST", headers: headers, credentials: "same-origin",
                                                 body: JSON.stringify({status: b.dataset.setStatus})})
          .then(function (r) {
            if (r.ok) { loadFinding(); return; }
            return apiError(r).then(function (message) { throw new Error(message); });
          })
          .catch(function (e) {
            findingPanel.querySelectorAll("[data-set-status]").forEach(function (x) { x.disabled = false; });
            box.textContent = "Could not change the status: " + e.message; box.hidden = false;
          });
      });
    });
    loadFinding();
  }
  // --- end of security ----------------------------------------------------------------------

  // --- customers: KPIs, cohorts, segments, lifetime value, acquisition cost, the list ------
  // (GET /api/v1/customers and /api/v1/customers/list; docs/customers.md)
  const CUST_SEGMENTS = {champions: "Champions", loyal: "Loyal", "new": "New", at_risk: "At risk", hibernating: "Hibernating / lost"};
  const CUST_SEGMENT_CLASS = {champions: "rating-good", loyal: "rating-good", at_risk: "rating-poor", hibernating: "muted"};
  function custMoney(v, currency) { return v == null ? "–" : fmtMoney(v, currency); }
  function custPct(v) { return v == null ? "–" : fmtPct(v); }
  function custMonthLabel(ym) {
    const parts = ym.split("-");
    return new Date(Date.UTC(Number(parts[0]), Number(parts[1]) - 1, 1)).toLocaleDateString(locale, {timeZone: "UTC", month: "short", year: "numeric"});
  }
  function custBlock(panel, key, has) {
    const block = panel.querySelector("[data-cust-block=" + key + "]");
    block.querySelector("[data-cust-empty]").hidden = has;
    block.querySelector("[data-cust-body]").hidden = !has;
    return block;
  }
  function custRows(root, key, rows, fill) {
    const tbody = root.querySelector("[data-cust-table=" + key + "] tbody");
    tbody.textContent = "";
    rows.forEach(function (r) { const tr = document.createElement("tr"); fill(tr, r); tbody.appendChild(tr); });
  }
  function custCard(panel, key, value, sub) {
    const card = panel.querySelector("[data-cust-card=" + key + "]");
    text(card.querySelector(".kpi-value"), value);
    text(card.querySelector(".kpi-sub"), sub);
    return card;
  }
  renderers.customers = function (panel, d) {
    const cur = d.currency || body.dataset.currency, k = d.kpis, L = d.ltv, C = d.cac;
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    custCard(panel, "customers", fmtInt.format(k.customers), fmtInt.format(k.orders) + " orders · " + custMoney(k.net_revenue, cur) + " net"
      + (k.orders_without_user ? " · " + fmtInt.format(k.orders_without_user) + " orders without user_id" : ""));
    custCard(panel, "new_customers", fmtInt.format(k.new_customers), fmtInt.format(k.returning_customers) + " returning");
    custCard(panel, "repeat_purchase_rate", custPct(k.repeat_purchase_rate), fmtInt.format(k.repeat_customers) + " of " + fmtInt.format(k.customers_to_date) + " customers to date");
    const churn = custCard(panel, "churn_rate", custPct(k.churn_rate), k.churn_eligible
      ? fmtInt.format(k.churned) + " of " + fmtInt.format(k.churn_eligible) + " without an order in " + fmtInt.format(k.churn_days) + " days"
      : "no customer older than " + fmtInt.format(k.churn_days) + " days");
    churn.querySelector(".kpi-value").classList.toggle("rating-poor", k.churn_rate != null && k.churn_rate >= 0.5);
    custCard(panel, "ltv", custMoney(L.average_predicted_ltv, cur), L.customers ? (L.method === "historical" ? "historical rate" : "BG/NBD + Gamma-Gamma") : "");
    custCard(panel, "cac", custMoney(C.total.cac, cur), C.total.spend ? custMoney(C.total.spend, cur) + " for " + fmtInt.format(C.total.new_customers) + " new customers"
      + (C.total.ltv_cac != null ? " · LTV:CAC " + fmtDec.format(C.total.ltv_cac) : "") : "no spend uploaded for these months");
    panel.querySelector("[data-cust-none]").hidden = k.customers_to_date > 0;

    // Cohorts: a heat table, one row per first-order month, a column per month after it.
    // Months before the first cohort with customers are left out (a young shop's table
    // would be mostly empty rows and columns); the table says from when it starts.
    const firstCohort = d.cohorts.rows.findIndex(function (r) { return r.customers > 0; });
    const cohortRows = firstCohort < 0 ? [] : d.cohorts.rows.slice(firstCohort);
    const offsets = Math.max(1, cohortRows.length - 1);
    const cb = custBlock(panel, "cohorts", cohortRows.length > 0);
    const table = cb.querySelector("[data-cust-table=cohorts]");
    const head = table.querySelector("thead"), tb = table.querySelector("tbody");
    head.textContent = ""; tb.textContent = "";
    const since = cb.querySelector("[data-cust-since]");
    since.hidden = firstCohort <= 0;
    if (firstCohort > 0) since.textContent = "No first order in the " + firstCohort + " month" + (firstCohort > 1 ? "s" : "") + " before " + custMonthLabel(cohortRows[0].month) + ".";
    const hr = document.createElement("tr");
    ["First order", "Customers"].forEach(function (h, i) { const th = document.createElement("th"); th.textContent = h; if (i) th.className = "num"; hr.appendChild(th); });
    for (let m = 1; m <= offsets; m++) { const th = document.createElement("th"); th.className = "num"; th.textContent = "+" + m; hr.appendChild(th); }
    head.appendChild(hr);
    cohortRows.slice().reverse().forEach(function (r) {
      const tr = document.createElement("tr");
      cell(tr, custMonthLabel(r.month)); cell(tr, fmtInt.format(r.customers), {num: true});
      for (let m = 0; m < offsets; m++) {
        const v = r.retention[m], td = document.createElement("td");
        td.className = "num heat";
        if (v != null) {
          td.textContent = fmtPct(v);
          td.style.background = "rgba(31,111,235," + (0.08 + 0.72 * Math.min(1, v)).toFixed(3) + ")";
          if (v >= 0.5) td.style.color = "#fff";
        } else if (m < r.retention.length || r.customers === 0) { td.textContent = "–"; td.classList.add("muted"); }
        tr.appendChild(td);
      }
      tb.appendChild(tr);
    });

    // Segments
    const sb = custBlock(panel, "segments", k.customers_to_date > 0);
    custRows(sb, "segments", d.segments, function (tr, r) {
      cell(tr, r.label); if (CUST_SEGMENT_CLASS[r.segment]) tr.lastChild.className = CUST_SEGMENT_CLASS[r.segment];
      cell(tr, fmtInt.format(r.customers), {num: true, sort: r.customers}); cell(tr, custPct(r.share), {num: true, sort: r.share == null ? "" : r.share});
      cell(tr, custMoney(r.net_revenue, cur), {num: true, sort: r.net_revenue}); cell(tr, custPct(r.revenue_share), {num: true, sort: r.revenue_share == null ? "" : r.revenue_share});
      cell(tr, r.avg_health == null ? "–" : fmtDec.format(r.avg_health), {num: true, sort: r.avg_health == null ? "" : r.avg_health});
    });
    text(sb.querySelector("[data-cust-weights]"), Object.keys(d.weights).filter(function (w) { return d.weights[w] > 0; }).map(function (w) { return w + " " + fmtDec.format(d.weights[w]); }).join(", "));

    // Lifetime value
    const lb = custBlock(panel, "ltv", L.customers > 0);
    const dl = lb.querySelector("[data-cust-ltv]"); dl.textContent = "";
    [["Average predicted LTV", custMoney(L.average_predicted_ltv, cur)],
     ["Method", L.method === "historical" ? "historical (observed purchase rate × average order value)" : "BG/NBD + Gamma-Gamma"],
     ["Why", L.reason || "–"],
     ["Average probability alive", L.average_probability_alive == null ? "– (the BG/NBD model gives it)" : fmtPct(L.average_probability_alive)],
     ["Average net revenue to date", custMoney(L.average_historical_value, cur)],
     ["Customers valued", fmtInt.format(L.customers)]].forEach(function (f) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = f[0]; dd.textContent = f[1]; dl.appendChild(dt); dl.appendChild(dd);
    });

    // Acquisition cost
    const ab = custBlock(panel, "cac", C.by_month.length > 0);
    text(ab.querySelector("[data-cust-cac-months]"), custMonthLabel(C.from_month) + " – " + custMonthLabel(C.to_month) + "; spend ÷ new customers per channel");
    custRows(ab, "cac_channels", C.by_channel.concat(C.by_channel.length > 1 ? [C.total] : []), function (tr, r) {
      cell(tr, r.channel === "(all)" ? "all channels" : r.channel); if (r.channel === "(all)") tr.classList.add("total");
      cell(tr, fmtInt.format(r.new_customers), {num: true, sort: r.new_customers}); cell(tr, custMoney(r.spend, cur), {num: true, sort: r.spend});
      cell(tr, custMoney(r.cac, cur), {num: true, sort: r.cac == null ? "" : r.cac}); cell(tr, custMoney(r.avg_ltv, cur), {num: true, sort: r.avg_ltv == null ? "" : r.avg_ltv});
      cell(tr, r.ltv_cac == null ? "–" : fmtDec.format(r.ltv_cac), {num: true, sort: r.ltv_cac == null ? "" : r.ltv_cac});
      if (r.ltv_cac != null && r.ltv_cac < 1) tr.lastChild.classList.add("rating-poor");
      cell(tr, r.payback_month == null ? (r.cac == null ? "–" : "not yet") : (r.payback_month === 0 ? "first month" : "month +" + r.payback_month), {num: true, sort: r.payback_month == null ? "" : r.payback_month});
    });
    custRows(ab, "cac_months", C.by_month, function (tr, r) {
      cell(tr, custMonthLabel(r.month), {sort: r.month}); cell(tr, r.channel);
      cell(tr, fmtInt.format(r.new_customers), {num: true, sort: r.new_customers}); cell(tr, custMoney(r.spend, cur), {num: true, sort: r.spend});
      cell(tr, custMoney(r.cac, cur), {num: true, sort: r.cac == null ? "" : r.cac});
    });
  };

  // The list: its segment, sort and page go into the panel's API address.
  const custList = document.querySelector("[data-panel=customer-list]");
  let custOffset = 0;
  function custReload() {
    const url = new URL(custList.dataset.api, location.origin);
    url.searchParams.set("segment", custList.querySelector("[data-cust-segment]").value);
    url.searchParams.set("sort", custList.querySelector("[data-cust-sort]").value);
    url.searchParams.set("offset", String(custOffset));
    custList.dataset.api = url.pathname + url.search;
    loadPanel(custList);
  }
  if (custList) {
    custList.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", function () { custOffset = 0; custReload(); }); });
    custList.querySelector("[data-cust-prev]").addEventListener("click", function () { custOffset = Math.max(0, custOffset - 25); custReload(); });
    custList.querySelector("[data-cust-next]").addEventListener("click", function () { custOffset += 25; custReload(); });
  }
  renderers["customer-list"] = function (panel, d) {
    const cur = d.currency || body.dataset.currency;
    const table = panel.querySelector("[data-cust-table=list]");
    custRows(panel, "list", d.rows, function (tr, r) {
      cell(tr, r.user_id); tr.lastChild.className = "mono";
      cell(tr, CUST_SEGMENTS[r.segment] || r.segment); if (CUST_SEGMENT_CLASS[r.segment]) tr.lastChild.classList.add(CUST_SEGMENT_CLASS[r.segment]);
      cell(tr, fmtDec.format(r.health), {num: true, sort: r.health});
      timeCell(tr, r.first_order); timeCell(tr, r.last_order);
      cell(tr, fmtInt.format(r.orders), {num: true, sort: r.orders});
      cell(tr, custMoney(r.net_revenue, cur), {num: true, sort: r.net_revenue}); cell(tr, custMoney(r.aov, cur), {num: true, sort: r.aov});
      cell(tr, fmtDec.format(r.frequency), {num: true, sort: r.frequency});
      cell(tr, custMoney(r.predicted_ltv, cur), {num: true, sort: r.predicted_ltv == null ? "" : r.predicted_ltv});
      cell(tr, custPct(r.probability_alive), {num: true, sort: r.probability_alive == null ? "" : r.probability_alive});
      cell(tr, r.source);
    });
    fillEmpty(panel, table, d.rows.length);
    const shown = d.rows.length ? (d.offset + 1) + "–" + (d.offset + d.rows.length) + " of " + fmtInt.format(d.total) : "0 of " + fmtInt.format(d.total);
    text(panel.querySelector("[data-cust-page]"), shown);
    text(panel.querySelector("[data-cust-list-count]"), fmtInt.format(d.total) + (d.segment ? " in " + (CUST_SEGMENTS[d.segment] || d.segment) : "") + " · as of " + fmtUtc(d.as_of));
    panel.querySelector("[data-cust-prev]").disabled = d.offset === 0;
    panel.querySelector("[data-cust-next]").disabled = d.offset + d.rows.length >= d.total;
  };
  // --- end of customers ---------------------------------------------------------------------

  // --- feedback: NPS and CSAT, trend, segments, comments with their links -------------------
  // (GET /api/v1/feedback and /api/v1/feedback/comments; docs/feedback.md)
  const fbCharts = {};
  function fbScore(v) { return v == null ? "–" : fmtDec.format(Math.round(v * 10) / 10); }
  function fbClass(kind, v) {
    if (v == null) return "na";
    if (kind === "nps") return v >= 30 ? "rating-good" : v >= 0 ? "rating-needs-improvement" : "rating-poor";
    return v >= 80 ? "rating-good" : v >= 60 ? "rating-needs-improvement" : "rating-poor";
  }
  function fbChart(el, key, series, scoreKey, countKey, color, min) {
    if (!window.echarts || !el) return;
    if (!fbCharts[key]) fbCharts[key] = window.echarts.init(el, null, {renderer: "canvas"});
    const xs = series.map(function (p) { return Date.parse(p.t); });
    fbCharts[key].setOption({animation: false, legend: {top: 0},
      tooltip: {trigger: "axis", valueFormatter: function (v) { return v == null ? "–" : fmtDec.format(v); }},
      grid: {left: 48, right: 48, top: 36, bottom: 28}, xAxis: {type: "time"},
      yAxis: [{type: "value", min: min, max: 100}, {type: "value", min: 0, minInterval: 1, splitLine: {show: false}}],
      series: [
        {name: "answers", type: "bar", yAxisIndex: 1, color: "#c8d1dc", barMaxWidth: 18,
         data: series.map(function (p, i) { return [xs[i], p[countKey]]; })},
        {name: key.toUpperCase(), type: "line", color: color, showSymbol: true, symbolSize: 5, connectNulls: false,
         data: series.map(function (p, i) { return [xs[i], p[scoreKey] == null ? null : Math.round(p[scoreKey] * 10) / 10]; })}]}, true);
    fbCharts[key].resize();
  }
  window.addEventListener("resize", function () { Object.values(fbCharts).forEach(function (c) { c.resize(); }); });
  renderers.feedback = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    panel.querySelectorAll("[data-fb-interval]").forEach(function (el) { el.textContent = "per " + d.interval.label; });
    const t = d.totals, card = function (k) { return panel.querySelector("[data-fb-card=" + k + "]"); };
    const nps = card("nps").querySelector(".kpi-value");
    nps.textContent = fbScore(t.nps.score); nps.className = "kpi-value " + fbClass("nps", t.nps.score);
    text(card("nps").querySelector(".kpi-sub"), fmtInt.format(t.nps.promoters) + " promoters · " + fmtInt.format(t.nps.passives) + " passives · " + fmtInt.format(t.nps.detractors) + " detractors");
    const csat = card("csat").querySelector(".kpi-value");
    csat.textContent = t.csat.score == null ? "–" : fbScore(t.csat.score) + " %"; csat.className = "kpi-value " + fbClass("csat", t.csat.score);
    text(card("csat").querySelector(".kpi-sub"), fmtInt.format(t.csat.satisfied) + " of " + fmtInt.format(t.csat.responses) + " satisfied (4–5)");
    text(card("responses").querySelector(".kpi-value"), fmtInt.format(t.responses));
    text(card("responses").querySelector(".kpi-sub"), fmtInt.format(t.customers) + " customers · " + fmtInt.format(t.comments) + " comments");
    const prob = card("problems").querySelector(".kpi-value");
    prob.textContent = fmtInt.format(t.unhappy_with_problems); prob.classList.toggle("rating-poor", t.unhappy_with_problems > 0);
    text(card("problems").querySelector(".kpi-sub"), "of " + fmtInt.format(t.unhappy) + " unhappy · " + fmtInt.format(t.unhappy_with_errors) + " JS errors · " + fmtInt.format(t.unhappy_in_incidents) + " incidents");
    panel.querySelector("[data-fb-empty]").hidden = t.responses > 0;
    panel.querySelector("[data-fb-body]").hidden = t.responses === 0;
    if (t.responses === 0) return;
    fbChart(panel.querySelector("[data-fb-chart=nps]"), "nps", d.series, "nps", "nps_responses", "#1f6feb", -100);
    fbChart(panel.querySelector("[data-fb-chart=csat]"), "csat", d.series, "csat", "csat_responses", "#1a7f37", 0);
    Object.keys(d.segments).forEach(function (key) {
      const table = panel.querySelector("[data-fb-segment=" + key + "]");
      if (!table) return;
      const tbody = table.querySelector("tbody"); tbody.textContent = "";
      d.segments[key].forEach(function (r) {
        const tr = document.createElement("tr");
        cell(tr, r.value == null ? (key === "channel" ? "(direct or untagged)" : key === "payment_method" ? "(no order)" : "(unknown)") : r.value);
        cell(tr, fmtInt.format(r.responses), {num: true, sort: r.responses});
        cell(tr, fbScore(r.nps.score), {num: true, sort: r.nps.score == null ? "" : r.nps.score}); tr.lastChild.classList.add(fbClass("nps", r.nps.score));
        cell(tr, fmtInt.format(r.nps.responses), {num: true, sort: r.nps.responses});
        cell(tr, r.csat.score == null ? "–" : fbScore(r.csat.score) + " %", {num: true, sort: r.csat.score == null ? "" : r.csat.score}); tr.lastChild.classList.add(fbClass("csat", r.csat.score));
        cell(tr, fmtInt.format(r.csat.responses), {num: true, sort: r.csat.responses});
        tbody.appendChild(tr);
      });
      fillEmpty(panel, table, d.segments[key].length);
    });
    const sb = panel.querySelector("[data-fb-surveys] tbody"); sb.textContent = "";
    d.surveys.forEach(function (s) {
      const tr = document.createElement("tr");
      cell(tr, s.survey == null ? "(not sent)" : s.survey); cell(tr, fmtInt.format(s.responses), {num: true, sort: s.responses});
      cell(tr, s.mean_score == null ? "–" : fmtDec.format(s.mean_score), {num: true, sort: s.mean_score == null ? "" : s.mean_score});
      sb.appendChild(tr);
    });
  };
  function fbLinks(label, items) {
    const row = document.createElement("div"); row.className = "fb-links";
    const b = document.createElement("span"); b.className = "fb-label"; b.textContent = label; row.appendChild(b);
    items.forEach(function (it) {
      const el = document.createElement(it.href ? "a" : "span");
      if (it.href) el.href = it.href;
      el.textContent = it.text; if (it.cls) el.className = it.cls; if (it.title) el.title = it.title;
      row.appendChild(el);
    });
    return row;
  }
  renderers["feedback-comments"] = function (panel, d) {
    const list = panel.querySelector("[data-fb-comments]"); list.textContent = "";
    text(panel.querySelector("[data-fb-count]"), d.total ? fmtInt.format(d.total) + " comment" + (d.total === 1 ? "" : "s") + (d.q ? " containing “" + d.q + "”" : "") +
      (d.total > d.comments.length ? " · " + fmtInt.format(d.offset + 1) + "–" + fmtInt.format(d.offset + d.comments.length) + " shown" : "") : "");
    panel.querySelector("[data-fb-comments-empty]").hidden = d.comments.length > 0;
    d.comments.forEach(function (c) {
      const li = document.createElement("li"); li.className = "fb-comment " + (c.category || "");
      li.dataset.responseId = c.id;
      const head = document.createElement("div"); head.className = "fb-head";
      const score = document.createElement("span");
      score.className = "badge " + ({promoter: "rating-good", satisfied: "rating-good", passive: "rating-needs-improvement", detractor: "rating-poor", not_satisfied: "rating-poor"}[c.category] || "");
      score.textContent = (c.survey || "survey").toUpperCase() + " " + (c.score == null ? "–" : fmtInt.format(c.score));
      head.appendChild(score);
      const meta = document.createElement("span"); meta.className = "hint";
      meta.textContent = fmtUtc(c.ts) + " · " + (c.user_id || "anonymous") + [c.device, c.country, c.channel && "via " + c.channel].filter(Boolean).map(function (x) { return " · " + x; }).join("");
      head.appendChild(meta); li.appendChild(head);
      if (c.question) { const q = document.createElement("div"); q.className = "hint"; q.textContent = c.question; li.appendChild(q); }
      const bq = document.createElement("blockquote"); bq.textContent = c.comment; li.appendChild(bq);
      if (c.orders.length) li.appendChild(fbLinks("Orders", c.orders.map(function (o) {
        return {text: (o.transaction_id || "order") + (o.value != null ? " (" + (o.currency ? fmtMoney(o.value, o.currency) : fmtDec.format(o.value)) + (o.payment_method ? ", " + o.payment_method : "") + ")" : ""),
                href: o.session_id ? journeyHref(o.session_id) : null, cls: o.about ? "fb-about" : "", title: (o.about ? "the order this answer is about · " : "") + fmtUtc(o.ts)};
      })));
      if (c.sessions.length) li.appendChild(fbLinks("Sessions", c.sessions.map(function (s) {
        return {text: s.session_id + (s.errors ? " (" + s.errors + " error" + (s.errors === 1 ? "" : "s") + ")" : ""), href: journeyHref(s.session_id), cls: s.errors ? "fb-bad" : "", title: fmtUtc(s.start) + " – " + fmtUtc(s.end)};
      })));
      if (c.errors.count) li.appendChild(fbLinks("JS errors", c.errors.top.map(function (e) {
        return {text: (e.type && e.type !== "error" ? e.type + ": " : "") + (e.message || "(no message)") + " ×" + e.count, href: journeyHref(e.session_id), cls: "fb-bad", title: (e.page || "") + " · last " + fmtUtc(e.last_seen)};
      })));
      if (c.incidents.length) li.appendChild(fbLinks("Incidents", c.incidents.map(function (i) {
        return {text: "#" + i.id + " " + i.title + " (" + i.status + ")", href: incidentLink(i.id), cls: "fb-bad"};
      })));
      list.appendChild(li);
    });
    const nav = panel.querySelector("[data-fb-pages]"); nav.textContent = "";
    const pageLink = function (offset, label) {
      const url = new URL(location.href); url.searchParams.set("offset", offset);
      const a = document.createElement("a"); a.href = url.pathname + url.search; a.textContent = label; a.className = "button small"; nav.appendChild(a);
    };
    if (d.offset > 0) pageLink(Math.max(0, d.offset - d.limit), "← Newer");
    if (d.offset + d.comments.length < d.total) pageLink(d.offset + d.limit, "Older →");
  };
  // --- end of feedback ----------------------------------------------------------------------

  // --- service desk: KPI cards, today live, per day, by channel, reason and agent ----------
  // (GET /api/v1/service-desk; definitions in docs/kpis.md, "Service desk")
  const sdCharts = {};
  const SD_CHANNEL_COLORS = {phone: "#1f6feb", chat: "#8250df", email: "#bc4c00", other: "#9aa5b1"};
  function sdRate(v) { return v == null ? "–" : fmtPct(v); }
  function sdChart(el, key, option) {
    if (!window.echarts || !el) return;
    if (!sdCharts[key]) sdCharts[key] = window.echarts.init(el, null, {renderer: "canvas"});
    sdCharts[key].setOption(Object.assign({animation: false, legend: {top: 0},
      tooltip: {trigger: "axis", valueFormatter: function (v) { return v == null ? "–" : fmtDec.format(v); }}}, option), true);
    sdCharts[key].resize();
  }
  window.addEventListener("resize", function () { Object.values(sdCharts).forEach(function (c) { c.resize(); }); });
  function sdBlock(panel, key, has) {
    const block = panel.querySelector("[data-sd-block=" + key + "]");
    block.querySelector("[data-sd-empty]").hidden = has;
    block.querySelector("[data-sd-body]").hidden = !has;
    return block;
  }
  function sdRows(root, key, rows, fill) {
    const table = root.querySelector("[data-sd-table=" + key + "]"), tbody = table.querySelector("tbody");
    tbody.textContent = "";
    rows.forEach(function (r) { const tr = document.createElement("tr"); fill(tr, r); tbody.appendChild(tr); });
    const empty = table.parentElement.querySelector(".empty");
    if (empty) empty.hidden = rows.length > 0;
  }
  function sdLevelCell(tr, v, target) {
    cell(tr, sdRate(v), {num: true, sort: v == null ? "" : v});
    if (v != null) tr.lastChild.classList.add(v >= target ? "rating-good" : "rating-poor");
  }
  function sdSecs(tr, v) { cell(tr, fmtSeconds(v), {num: true, sort: v == null ? "" : v}); }
  function sdPct(v) { return v == null ? null : 100 * v; }
  renderers["service-desk"] = function (panel, d) {
    panel.querySelectorAll("[data-range-label]").forEach(function (el) { el.textContent = RANGE_LABELS[d.range.label] || d.range.label; });
    text(panel.querySelector("[data-sd-cap]"), "top " + d.limit + " each");
    text(panel.querySelector("[data-sd-threshold]"), "within " + fmtDec.format(d.threshold_s) + " s");
    const t = d.totals, target = d.target;
    const card = function (k) { return panel.querySelector("[data-sd-card=" + k + "]"); };
    const set = function (k, value, sub) { text(card(k).querySelector(".kpi-value"), value); text(card(k).querySelector(".kpi-sub"), sub); };
    set("contacts", fmtInt.format(t.contacts), fmtInt.format(t.answered) + " answered · " + fmtInt.format(t.abandoned) + " abandoned");
    set("service_level", sdRate(t.service_level), "target " + fmtPct(target) + " · " + fmtInt.format(t.answered_in_time) + " in time · " + fmtInt.format(t.short_abandons) + " short abandons left out");
    const sl = card("service_level").querySelector(".kpi-value");
    sl.classList.toggle("rating-good", t.meets_target === true); sl.classList.toggle("rating-poor", t.meets_target === false);
    set("asa_s", fmtSeconds(t.asa_s), fmtInt.format(t.queued_answered) + " phone and chat contacts answered");
    set("abandonment_rate", sdRate(t.abandonment_rate), fmtInt.format(t.abandoned) + " abandoned, " + fmtInt.format(t.short_abandons) + " within " + fmtDec.format(d.threshold_s) + " s");
    set("aht_s", fmtSeconds(t.aht_s), t.handled ? "talk " + fmtSeconds(t.avg_talk_s) + " · hold " + fmtSeconds(t.avg_hold_s) + " · after " + fmtSeconds(t.avg_acw_s) : "no handled contact");
    set("fcr_rate", sdRate(t.fcr_rate), fmtInt.format(t.fcr_reported) + " contacts report it");
    set("contacts_per_100_orders", t.contacts_per_100_orders == null ? "–" : fmtDec.format(t.contacts_per_100_orders), fmtInt.format(t.orders) + " orders");

    // Today, live
    const today = d.today;
    const tb = sdBlock(panel, "today", today.totals.contacts > 0);
    text(tb.querySelector("[data-sd-today]"), today.date + " (" + today.timezone + ") per 15 minutes · service level " + sdRate(today.totals.service_level) + " against " + fmtPct(target));
    if (today.totals.contacts > 0) {
      const xs = today.intervals.map(function (p) { return Date.parse(p.t); });
      sdChart(tb.querySelector("[data-sd-chart=today]"), "today", {
        grid: {left: 48, right: 56, top: 36, bottom: 28}, xAxis: {type: "time"},
        yAxis: [{type: "value", min: 0, minInterval: 1}, {type: "value", min: 0, max: 100, splitLine: {show: false}, axisLabel: {formatter: "{value} %"}}],
        series: [
          {name: "answered", type: "bar", stack: "c", color: "#1a7f37", barMaxWidth: 14, data: today.intervals.map(function (p, i) { return [xs[i], p.answered]; })},
          {name: "abandoned", type: "bar", stack: "c", color: "#cf222e", barMaxWidth: 14, data: today.intervals.map(function (p, i) { return [xs[i], p.abandoned]; })},
          {name: "service level (%)", type: "line", yAxisIndex: 1, color: "#9a6700", connectNulls: false, symbolSize: 4,
           data: today.intervals.map(function (p, i) { return [xs[i], sdPct(p.service_level)]; }),
           markLine: {silent: true, symbol: "none", lineStyle: {type: "dashed", color: "#57606a"}, label: {formatter: "target"}, data: [{yAxis: 100 * target}]}}]});
    }

    // Per day
    const db = sdBlock(panel, "days", t.contacts > 0);
    if (t.contacts > 0) {
      const days = d.days.map(function (r) { return r.day; });
      sdChart(db.querySelector("[data-sd-chart=days]"), "days", {
        grid: {left: 48, right: 56, top: 36, bottom: 28}, xAxis: {type: "category", data: days},
        yAxis: [{type: "value", min: 0, minInterval: 1}, {type: "value", min: 0, max: 100, splitLine: {show: false}, axisLabel: {formatter: "{value} %"}}],
        series: [
          {name: "answered", type: "bar", stack: "c", color: "#1a7f37", barMaxWidth: 24, data: d.days.map(function (r) { return r.answered; })},
          {name: "abandoned", type: "bar", stack: "c", color: "#cf222e", barMaxWidth: 24, data: d.days.map(function (r) { return r.abandoned; })},
          {name: "other contacts", type: "bar", stack: "c", color: "#9aa5b1", barMaxWidth: 24, data: d.days.map(function (r) { return r.contacts - r.answered - r.abandoned; })},
          {name: "service level (%)", type: "line", yAxisIndex: 1, color: "#9a6700", connectNulls: false, data: d.days.map(function (r) { return sdPct(r.service_level); }),
           markLine: {silent: true, symbol: "none", lineStyle: {type: "dashed", color: "#57606a"}, label: {formatter: "target"}, data: [{yAxis: 100 * target}]}}]});
    }
    sdRows(db, "days", d.days, function (tr, r) {
      cell(tr, r.day, {sort: r.day}); cell(tr, fmtInt.format(r.contacts), {num: true, sort: r.contacts});
      cell(tr, fmtInt.format(r.answered), {num: true, sort: r.answered}); cell(tr, fmtInt.format(r.abandoned), {num: true, sort: r.abandoned});
      sdLevelCell(tr, r.service_level, target); sdSecs(tr, r.asa_s);
      cell(tr, sdRate(r.abandonment_rate), {num: true, sort: r.abandonment_rate == null ? "" : r.abandonment_rate});
      sdSecs(tr, r.aht_s); cell(tr, sdRate(r.fcr_rate), {num: true, sort: r.fcr_rate == null ? "" : r.fcr_rate});
    });

    // Breakdowns
    const bb = sdBlock(panel, "breakdowns", t.contacts > 0);
    if (t.contacts > 0) {
      sdChart(bb.querySelector("[data-sd-chart=channels]"), "channels", {
        tooltip: {trigger: "item"},
        series: [{name: "contacts", type: "pie", radius: ["40%", "70%"], top: 24,
                  data: d.by_channel.map(function (r) { return {name: r.channel, value: r.contacts, itemStyle: {color: SD_CHANNEL_COLORS[r.channel] || "#9aa5b1"}}; })}]});
    }
    const label = function (v) { return v == null ? "(not sent)" : v; };
    sdRows(bb, "by_channel", d.by_channel, function (tr, r) {
      cell(tr, r.channel); cell(tr, fmtInt.format(r.contacts), {num: true, sort: r.contacts});
      sdLevelCell(tr, r.service_level, target); sdSecs(tr, r.asa_s);
      cell(tr, sdRate(r.abandonment_rate), {num: true, sort: r.abandonment_rate == null ? "" : r.abandonment_rate});
      sdSecs(tr, r.aht_s); cell(tr, sdRate(r.fcr_rate), {num: true, sort: r.fcr_rate == null ? "" : r.fcr_rate});
    });
    sdRows(bb, "by_reason", d.by_reason, function (tr, r) {
      cell(tr, label(r.reason)); cell(tr, fmtInt.format(r.contacts), {num: true, sort: r.contacts});
      sdLevelCell(tr, r.service_level, target); sdSecs(tr, r.aht_s);
      cell(tr, sdRate(r.fcr_rate), {num: true, sort: r.fcr_rate == null ? "" : r.fcr_rate});
    });
    sdRows(bb, "by_agent", d.by_agent, function (tr, r) {
      cell(tr, label(r.agent)); cell(tr, fmtInt.format(r.contacts), {num: true, sort: r.contacts});
      cell(tr, fmtInt.format(r.answered), {num: true, sort: r.answered}); sdSecs(tr, r.asa_s); sdSecs(tr, r.aht_s);
      cell(tr, sdRate(r.fcr_rate), {num: true, sort: r.fcr_rate == null ? "" : r.fcr_rate});
    });
  };
  // --- end of service desk ------------------------------------------------------------------

  // --- sortable tables --------------------------------------------------------------------
  document.addEventListener("click", function (ev) {
    const th = ev.target.closest("table.sortable th");
    if (!th) return;
    const table = th.closest("table"), tbody = table.querySelector("tbody");
    const index = Array.prototype.indexOf.call(th.parentElement.children, th);
    const asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const numeric = th.dataset.type === "number";
    const rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      const ca = a.cells[index], cb = b.cells[index];
      let va = ca.dataset.value != null ? ca.dataset.value : ca.textContent;
      let vb = cb.dataset.value != null ? cb.dataset.value : cb.textContent;
      if (numeric) { va = va === "" ? -Infinity : Number(va); vb = vb === "" ? -Infinity : Number(vb); }
      const cmp = numeric ? va - vb : String(va).localeCompare(String(vb), locale, {numeric: true});
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  });

  // Plain forms that need a second thought (htmx forms use hx-confirm instead).
  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  });

  loadPanels();
  schedule();
})();
