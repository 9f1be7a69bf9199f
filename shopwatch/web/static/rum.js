/*! Shopwatch RUM (Apache-2.0). Beacon format and metric definitions: docs/rum.md */
(function (w, d, P) {
  var me = d.currentScript, cfg = me ? me.dataset : {}, H = 'hidden';
  var pending = w.shopwatch && w.shopwatch.q || [], gpc = navigator.globalPrivacyControl === true;
  // ok: true sends, null buffers until consent, false drops all.
  var ok = cfg.consent == 'required' ? null : true;
  var SS; try { SS = w.sessionStorage; SS.getItem('x') } catch (e) { SS = 0 }
  var url = (cfg.endpoint || (me ? new URL(me.src).origin : '') + '/api/v1/rum') +
    '?key=' + encodeURIComponent(cfg.key || '');
  function rnd() { return Math.random().toString(36).slice(2) + Date.now().toString(36) }
  var sid = cfg.sessionId || !gpc && SS && SS.getItem('sw_sid') || rnd();
  if (SS && !gpc) SS.setItem('sw_sid', sid);
  var h = 0x811c9dc5, i;
  for (i = 0; i < sid.length; i++) h = Math.imul(h ^ sid.charCodeAt(i) & 255, 16777619) >>> 0;
  var sampled = h / 4294967296 < (cfg.sample || 1);
  var uid, q = [], timer, seen = {}, nErr = 0, shown = d.visibilityState != H;
  var firstHidden = shown ? 1 / 0 : 0, visSince = P.now(), vis = 0;
  var view = { pv: rnd(), url: location.href }, hard = view;
  var nav = P.getEntriesByType('navigation')[0] || {}, act = nav.activationStart || 0;
  var fcp, lcp, lcpEl, cls = 0, clsEl, win = 0, winMax = 0, winEl, first = 0, last = 0;
  var inp = [], n = 0;

  function pos(x) { return x >= 0 ? Math.round(x) : void 0 }
  function sel(e) {
    function one(e) {
      var c = typeof e.className == 'string' && e.className.trim().split(/\s+/)[0];
      return e.localName + (e.id ? '#' + e.id : c ? '.' + c : '');
    }
    if (!e || e.nodeType != 1) return;
    var p = e.parentElement;
    return ((p && p != d.body && !e.id ? one(p) + '>' : '') + one(e)).slice(0, 256);
  }
  function push(r, perf) {
    if (ok === false || perf && !sampled || q.length > 200) return;
    r.t = Date.now(); r.pv = r.pv || view.pv; r.url = r.url || view.url;
    q.push(r);
    if (q.length >= 30) flush(); else timer = timer || setTimeout(flush, 5000);
  }
  function flush() {
    clearTimeout(timer); timer = 0;
    while (ok && q.length) {
      var c = navigator.connection, b = JSON.stringify({
        v: 1, sid: sid, uid: uid, vw: w.innerWidth, vh: w.innerHeight,
        ect: c && c.effectiveType, r: q.splice(0, 30)
      });
      if (!(navigator.sendBeacon && navigator.sendBeacon(url, b)))
        fetch(url, { method: 'POST', body: b, keepalive: true }).catch(function () {});
    }
  }
  function obs(type, fn, o) {
    try {
      var po = new PerformanceObserver(function (l) { l.getEntries().forEach(fn) });
      po.observe(o || { type: type, buffered: true });
      return po;
    } catch (e) {}
  }
  function start() {
    var r = { k: 'view', spa: view != hard, ref: view == hard && d.referrer || null };
    if (view == hard) {
      r.dns = pos(nav.domainLookupEnd - nav.domainLookupStart);
      r.tcp = pos(nav.connectEnd - nav.connectStart);
      r.tls = nav.secureConnectionStart > 0 ? pos(nav.connectEnd - nav.secureConnectionStart) : 0;
      r.ttfb = pos(nav.responseStart - act);
      r.di = pos(nav.domInteractive - act);
      r.load = pos(nav.loadEventEnd - act);
      (nav.serverTiming || []).forEach(function (e) { e.name == 'traceparent' && (r.tp = e.description) });
    }
    push(r, 1);
  }
  // Vitals belong to the loaded page (as in web-vitals); route changes get visible time.
  function report() {
    if (shown) vis += P.now() - visSince;
    visSince = P.now();
    if (view != hard) push({ k: 'vitals', vis: pos(vis) }, 1);
    inp.sort(function (a, b) { return b.d - a.d });
    var x = inp[Math.min(inp.length - 1, (P.interactionCount || n) / 50 | 0)] || {};
    push({ k: 'vitals', pv: hard.pv, url: hard.url, vis: view == hard ? pos(vis) : void 0,
      fcp: fcp, lcp: lcp, lcpEl: lcpEl, cls: Math.round(cls * 1e4) / 1e4, clsEl: clsEl,
      inp: x.d, inpEl: x.el }, 1);
  }

  obs('paint', function (e) {
    if (e.name == 'first-contentful-paint' && e.startTime < firstHidden) fcp = pos(e.startTime - act);
  });
  function onLcp(e) {
    if (e.startTime < firstHidden) { lcp = pos(e.startTime - act); lcpEl = sel(e.element) }
  }
  var lcpObs = obs('largest-contentful-paint', onLcp);
  function lcpStop() {
    if (lcpObs) { lcpObs.takeRecords().forEach(onLcp); lcpObs.disconnect(); lcpObs = 0 }
  }
  addEventListener('keydown', lcpStop, true);
  addEventListener('click', lcpStop, true);
  obs('layout-shift', function (e) {
    if (e.hadRecentInput) return;
    if (win && e.startTime - last < 1000 && e.startTime - first < 5000) win += e.value;
    else { win = e.value; first = e.startTime; winMax = 0 }
    last = e.startTime;
    var s = e.sources && e.sources[0];
    if (e.value > winMax && s) { winMax = e.value; winEl = sel(s.node) }
    if (win > cls) { cls = win; clsEl = winEl }
  });
  function onEvent(e) {
    var id = e.interactionId, x = seen[id];
    if (!id) return;
    if (!x) { n++; inp.push(x = seen[id] = { d: 0 }) }
    if (e.duration > x.d) { x.d = e.duration; x.el = sel(e.target) }
  }
  obs('event', onEvent, { type: 'event', buffered: true, durationThreshold: 40 });
  obs('first-input', onEvent);
  obs('resource', function (e) {
    var fail = e.responseStatus >= 400;
    if (e.name.indexOf(url.split('?')[0]) && (fail || e.duration > 1000) && !seen[e.name]) {
      seen[e.name] = 1;
      push({ k: 'resource', ru: e.name, rt: e.initiatorType, dur: pos(e.duration), fail: fail }, 1);
    }
  });

  addEventListener('error', function (e) {
    var t = e.target, u = t && (t.currentSrc || t.src || t.href);
    if (t && t != w && t.localName) {
      if (u && !seen[u]) { seen[u] = 1; push({ k: 'resource', ru: u, rt: t.localName, fail: true }, 1) }
    } else if (nErr++ < 20) {
      push({ k: 'error', msg: e.message || '', stack: e.error && e.error.stack, src: e.filename,
        line: e.lineno, col: e.colno }, 1);
    }
  }, true);
  addEventListener('unhandledrejection', function (e) {
    var r = e.reason || {};
    if (nErr++ < 20) push({ k: 'error', type: 'rejection', msg: String(r.message || r), stack: r.stack }, 1);
  });
  addEventListener('visibilitychange', function () {
    if (d.visibilityState == H) {
      lcpStop(); report(); shown = false; firstHidden = Math.min(firstHidden, P.now()); flush();
    } else { shown = true; visSince = P.now() }
  }, true);
  addEventListener('pagehide', flush);

  function route() {
    if (location.href != view.url) { report(); vis = 0; view = { pv: rnd(), url: location.href }; start() }
  }
  var ps = history.pushState;
  history.pushState = function () { ps.apply(this, arguments); route() };
  addEventListener('popstate', route);

  w.shopwatch = function (cmd, a, b) {
    if (cmd == 'event') push({ k: 'event', n: a, p: b });
    else if (cmd == 'api') push(a, 1);
    else if (cmd == 'identify') uid = gpc || a == null ? uid : String(a);
    else if (cmd == 'survey' && cfg.survey) w.shopwatch.s = a, d.head.appendChild(d.createElement('script')).src = new URL('rum-survey.js', me.src);
    else if (cmd == 'consent') {
      ok = !!a;
      if (ok) flush(); else { q = []; if (SS) SS.removeItem('sw_sid') }
    }
  };
  if (cfg.traceparent == 'on') d.head.appendChild(d.createElement('script')).src = new URL('rum-trace.js', me.src);
  for (i = 0; i < pending.length; i++) w.shopwatch.apply(w, pending[i]);
  function go() { setTimeout(start) }
  if (d.readyState == 'complete') go(); else addEventListener('load', go);
})(window, document, performance);
