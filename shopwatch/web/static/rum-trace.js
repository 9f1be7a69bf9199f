/*! Shopwatch RUM tracing add-on (Apache-2.0). Loaded by rum.js with data-traceparent="on"; docs/rum.md */
// Gives same-origin fetch and XHR calls a W3C traceparent header and reports each call
// (path, status, duration, trace id) to rum.js as an `api` record of the current page
// view. Other origins are never touched: no third party sees the header, and no CORS
// preflight is caused. Kept apart from rum.js so that shops without tracing do not
// download it (rum.js has a 3 KB budget).
(function (w, d, P) {
  var me = d.currentScript, F = w.fetch, n = 0;
  if (!(w.crypto && crypto.getRandomValues && me) || w.shopwatchTrace) return;
  // Loaded twice (two tags): wrap once.
  w.shopwatchTrace = 1;
  var tag = d.querySelector('script[data-traceparent]');
  // The beacon endpoint: rum.js posts there (fetch when sendBeacon fails) and that call
  // must not report itself, or every flush would queue another record.
  var ep = tag && tag.dataset.endpoint;
  var beacon = ep ? new URL(ep, location.href) : new URL('/api/v1/rum', me.src);
  beacon = beacon.origin + beacon.pathname;

  function hex(len) {
    var a = crypto.getRandomValues(new Uint8Array(len)), s = '', j;
    for (j = 0; j < len; j++) s += (a[j] + 256).toString(16).slice(1);
    // All zeros is the invalid id of the spec.
    return /[^0]/.test(s) ? s : hex(len);
  }
  // The path of a same-origin URL other than the beacon's; undefined otherwise.
  function own(u) {
    try { u = new URL(u, location.href) } catch (e) { return }
    if (u.origin == location.origin && u.origin + u.pathname != beacon) return u.pathname;
  }
  function header(t) { return '00-' + t + '-' + hex(8) + '-01' }
  function report(path, t, rt, status, t0) {
    // At most 100 per page load: a polling page must not flood the queue.
    if (n++ < 100 && w.shopwatch) {
      w.shopwatch('api', { k: 'api', ru: path, tid: t, rt: rt, st: status,
        dur: Math.round(P.now() - t0) });
    }
  }

  if (F) w.fetch = function (input, init) {
    var isReq = typeof Request == 'function' && input instanceof Request;
    var path = own(isReq ? input.url : String(input)), t, t0 = P.now(), h, res;
    if (path) {
      // init.headers replaces a Request's own headers (as fetch does), so start from
      // whichever fetch would send.
      h = new Headers(init && init.headers || isReq && input.headers || void 0);
      if (!h.has('traceparent')) {
        h.set('traceparent', header(t = hex(16)));
        init = Object.assign({}, init, { headers: h });
      }
    }
    res = F.call(w, input, init);
    if (t) {
      res.then(function (r) { report(path, t, 'fetch', r.status, t0) },
        function () { report(path, t, 'fetch', 0, t0) });
    }
    return res;
  };

  var X = w.XMLHttpRequest && XMLHttpRequest.prototype;
  if (!X) return;
  var open = X.open, send = X.send, set = X.setRequestHeader;
  X.open = function (method, u) {
    this.swPath = own(u); this.swHas = 0;
    return open.apply(this, arguments);
  };
  X.setRequestHeader = function (name) {
    if (/^traceparent$/i.test(name)) this.swHas = 1;
    return set.apply(this, arguments);
  };
  X.send = function () {
    var x = this, path = x.swPath, t, t0 = P.now();
    if (path && !x.swHas) {
      set.call(x, 'traceparent', header(t = hex(16)));
      x.addEventListener('loadend', function () { report(path, t, 'xhr', x.status, t0) });
    }
    return send.apply(x, arguments);
  };
})(window, document, performance);
