/*! Shopwatch RUM survey add-on (Apache-2.0). Loaded by rum.js on shopwatch('survey', ...) when its tag has data-survey; docs/feedback.md */
// A post-purchase NPS (0-10) or CSAT (1-5) question with a comment box, shown when the
// shop calls shopwatch('survey', {transaction_id: 'T-1001'}) on its confirmation page.
// The answer goes out as a `survey_response` event through rum.js's own queue, so it
// uses the snippet's endpoint, public key, session, identified user and consent; the
// public key stays write-only. Shown at most once per order (localStorage), answered
// or not. Kept apart from rum.js: only pages that ask for a survey download it.
(function (w, d) {
  var me = d.currentScript, rum = w.shopwatch, LS;
  if (!me || !rum || rum.svy) return;
  var tag = d.querySelector('script[data-survey]'), cfg = tag ? tag.dataset : {};
  try { LS = w.localStorage; LS.getItem('x') } catch (e) { LS = 0 }
  var SCALES = {
    nps: { from: 0, to: 10, q: 'How likely are you to recommend us to a friend or colleague?',
      low: 'Not at all likely', high: 'Extremely likely' },
    csat: { from: 1, to: 5, q: 'How satisfied are you with your order?',
      low: 'Very dissatisfied', high: 'Very satisfied' }
  };
  var CSS = ':host{all:initial}' +
    '.b{position:fixed;right:16px;bottom:16px;z-index:2147483000;max-width:min(420px,calc(100vw - 32px));' +
    'background:#fff;color:#1c2430;border:1px solid #c8d1dc;border-radius:10px;box-shadow:0 6px 24px rgba(0,0,0,.18);' +
    'padding:16px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}' +
    'h2{font-size:15px;margin:0 28px 10px 0}' +
    '.s{display:flex;flex-wrap:wrap;gap:4px}' +
    '.s button{min-width:34px;min-height:34px;border:1px solid #8c959f;border-radius:6px;background:#f6f8fa;color:inherit;font:inherit;cursor:pointer}' +
    '.s button[aria-checked=true]{background:#1f6feb;border-color:#1f6feb;color:#fff}' +
    '.l{display:flex;justify-content:space-between;font-size:12px;color:#5b6675;margin:4px 0 10px}' +
    'label{display:block;font-size:13px;margin-bottom:4px}' +
    'textarea{box-sizing:border-box;width:100%;min-height:60px;font:inherit;border:1px solid #8c959f;border-radius:6px;padding:6px}' +
    '.a{display:flex;gap:8px;justify-content:flex-end;margin-top:10px}' +
    '.a button{font:inherit;padding:6px 14px;border-radius:6px;border:1px solid #8c959f;background:#fff;color:inherit;cursor:pointer}' +
    '.a .p{background:#1f6feb;border-color:#1f6feb;color:#fff}.a .p:disabled{opacity:.5;cursor:default}' +
    '.x{position:absolute;top:8px;right:8px;border:0;background:none;font-size:20px;line-height:1;cursor:pointer;color:#5b6675}' +
    'button:focus-visible,textarea:focus-visible{outline:2px solid #1f6feb;outline-offset:2px}';

  function el(parent, name, attrs, text) {
    var e = d.createElement(name), k;
    for (k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function show(o) {
    o = o || {};
    var kind = String(o.survey || cfg.survey || '').toLowerCase(), sc = SCALES[kind];
    var tid = o.transaction_id != null ? String(o.transaction_id) : '';
    var key = 'sw_survey:' + kind + ':' + (tid || location.pathname);
    if (!sc || !d.body || d.getElementById('sw-survey')) return;
    if (LS) { if (LS.getItem(key)) return; LS.setItem(key, String(Date.now())) }
    var before = d.activeElement, score = null, host = el(d.body, 'div', { id: 'sw-survey' });
    var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
    el(root, 'style', {}, CSS);
    var q = o.question || cfg.surveyQuestion || sc.q;
    var box = el(root, 'div', { 'class': 'b', role: 'dialog', 'aria-labelledby': 'swq', 'aria-modal': 'false' });
    var close = el(box, 'button', { 'class': 'x', type: 'button', 'aria-label': o.dismiss || 'Close' }, '\u00d7');
    el(box, 'h2', { id: 'swq' }, q);
    var group = el(box, 'div', { 'class': 's', role: 'radiogroup', 'aria-labelledby': 'swq' });
    var buttons = [], i;
    for (i = sc.from; i <= sc.to; i++) {
      buttons.push(el(group, 'button', { type: 'button', role: 'radio', 'aria-checked': 'false',
        'data-score': i, 'aria-label': i + (i == sc.from ? ' (' + sc.low + ')' : i == sc.to ? ' (' + sc.high + ')' : '') }, i));
    }
    var legend = el(box, 'div', { 'class': 'l', 'aria-hidden': 'true' });
    el(legend, 'span', {}, sc.from + ': ' + (o.low || sc.low));
    el(legend, 'span', {}, sc.to + ': ' + (o.high || sc.high));
    el(box, 'label', { 'for': 'swc' }, o.comment || 'Anything you would like to tell us? (optional)');
    var text = el(box, 'textarea', { id: 'swc', maxlength: '1000', rows: '3' });
    var actions = el(box, 'div', { 'class': 'a' });
    var skip = el(actions, 'button', { type: 'button' }, o.dismiss || 'No thanks');
    var send = el(actions, 'button', { type: 'button', 'class': 'p', disabled: '' }, o.send || 'Send');

    function pick(b) {
      score = +b.getAttribute('data-score');
      buttons.forEach(function (x) {
        x.setAttribute('aria-checked', x == b); x.tabIndex = x == b ? 0 : -1;
      });
      send.disabled = false;
    }
    function done() {
      host.remove();
      if (before && before.focus) before.focus();
    }
    buttons.forEach(function (b, n) {
      b.tabIndex = n ? -1 : 0;
      b.addEventListener('click', function () { pick(b) });
      // Arrow keys move within the scale, as in a radio group.
      b.addEventListener('keydown', function (e) {
        var m = e.key == 'ArrowRight' || e.key == 'ArrowDown' ? 1 : e.key == 'ArrowLeft' || e.key == 'ArrowUp' ? -1 : 0;
        if (!m) return;
        e.preventDefault();
        var t = buttons[(n + m + buttons.length) % buttons.length];
        pick(t); t.focus();
      });
    });
    box.addEventListener('keydown', function (e) { if (e.key == 'Escape') done() });
    close.addEventListener('click', done);
    skip.addEventListener('click', done);
    send.addEventListener('click', function () {
      if (score == null) return;
      var p = { survey: kind, score: score, question: q };
      var c = text.value.trim();
      if (c) p.comment = c.slice(0, 1000);
      if (tid) p.transaction_id = tid;
      w.shopwatch('event', 'survey_response', p);
      box.textContent = '';
      el(box, 'p', { role: 'status' }, o.thanks || 'Thank you for your feedback!');
      setTimeout(done, 2500);
    });
    buttons[0].focus();
  }

  // rum.js loads this file on the first shopwatch('survey', o) call and keeps o in
  // shopwatch.s; later calls come straight here.
  w.shopwatch = function (cmd, a) {
    if (cmd == 'survey') show(a);
    else return rum.apply(this, arguments);
  };
  w.shopwatch.svy = 1;
  if (rum.s) show(rum.s);
})(window, document);
