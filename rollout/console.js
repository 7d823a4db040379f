// The console's script: it polls the admin API, renders the plan, the
// decisions, the charts (inline SVG) and the hosts, and sends commands.
// Every value from the API reaches the page as text (textContent, append
// of strings, setAttribute of SVG geometry): nothing is parsed as HTML.
'use strict';
(function () {
  const page = document.body.dataset.page;
  const release = document.body.dataset.release || '';
  if (page === 'releases') return; // a server-rendered list: nothing to poll
  const SVG = 'http://www.w3.org/2000/svg';
  const POLL_TIMEOUT = '1s'; // a long poll answers at a change or after this
  const RETRY_MS = 1000;
  let rev = 0;
  let updates = 0;
  let last = null;

  function el(tag, cls, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function $(id) { return document.getElementById(id); }
  function phaseName(p) { return p || 'pending'; }
  function ts(s) {
    if (!s || s.startsWith('0001-')) return '';
    return new Date(s).toISOString().slice(11, 23);
  }
  function dur(sec) {
    if (sec < 1) return Math.round(sec * 1000) + 'ms';
    if (sec < 120) return (Math.round(sec * 10) / 10) + 's';
    const m = Math.floor(sec / 60);
    return m + 'm' + Math.round(sec - m * 60) + 's';
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function tick(now) {
    updates++;
    document.body.dataset.updates = String(updates);
    $('updated').textContent = ts(now);
  }
  function setConn(text, ok) {
    const c = $('conn');
    c.textContent = text;
    c.className = ok ? 'ok' : 'down';
  }
  async function errorOf(res) {
    try {
      const b = await res.json();
      if (b && b.error) return b.error;
    } catch (e) { /* not JSON: the status says it */ }
    return res.status + ' ' + res.statusText;
  }

  // ---- rollout page -------------------------------------------------

  const COMMANDS = [
    ['promote', 'Promote', 'ends the wait of the current step (a pause, a bake window, an inconclusive analysis): the rollout moves on to what follows.'],
    ['promote-full', 'Promote full', 'skips every remaining pause and analysis; bake windows and ramps jump to their end. Upgrades, weights, migrations and hooks still run.'],
    ['pause', 'Pause', 'stops the rollout before its next step or unit (a ramp percentage, a batch); the unit running now finishes.'],
    ['resume', 'Resume', 'continues the paused rollout from where it stopped.'],
    ['abort', 'Abort', 'stops the rollout and rolls back every reversible completed step, in reverse order: traffic goes back to the stable version.'],
    ['retry', 'Retry', 'starts the rolled-back rollout again from the first step after its last point of no return (or retries a failed rollback).'],
  ];

  // The buttons are made once and updated in place: a button replaced
  // under the pointer between press and release would lose the click.
  function renderActions(v) {
    const box = $('actions');
    for (const [cmd, label] of COMMANDS) {
      let b = $('cmd-' + cmd);
      if (!b) {
        b = el('button', null, label);
        b.type = 'button';
        b.id = 'cmd-' + cmd;
        b.addEventListener('click', function () { ask(cmd); });
        box.append(el('div', 'cmd', b, el('span', 'why')));
      }
      const why = v ? (v.refusals || {})[cmd] || '' : 'no rollout';
      b.disabled = !!why;
      b.title = why;
      const w = b.parentElement.querySelector('.why');
      if (w.textContent !== why) w.textContent = why;
    }
  }

  let pending = null;
  function ask(cmd) {
    const c = COMMANDS.find(function (x) { return x[0] === cmd; });
    let what = c[1] + ' ' + c[2];
    if (cmd === 'promote' && last) {
      const s = last.steps[last.current];
      if (s) what = c[1] + ' ends the wait of step ' + s.name + ' (' + s.kind + '): the rollout moves on to what follows.';
    }
    pending = cmd;
    $('confirm-title').textContent = c[1] + ' rollout ' + (last ? last.id : '') + '?';
    $('confirm-text').textContent = what;
    $('confirm-reason-row').hidden = cmd !== 'abort';
    $('confirm-reason').value = '';
    $('confirm-ok').textContent = c[1];
    $('confirm').returnValue = '';
    $('confirm').showModal();
  }

  async function send(cmd) {
    const res$ = $('result');
    res$.className = '';
    res$.textContent = cmd + ': sending…';
    const init = { method: 'POST', headers: { 'Content-Type': 'application/json' }, cache: 'no-store' };
    if (cmd === 'abort') init.body = JSON.stringify({ reason: $('confirm-reason').value.trim() || 'aborted from the console' });
    try {
      const res = await fetch('/api/' + cmd, init);
      if (res.ok) {
        const v = await res.json();
        res$.className = 'accepted';
        res$.textContent = cmd + ': accepted';
        render(v);
      } else {
        res$.className = 'refused';
        res$.textContent = cmd + ' refused: ' + await errorOf(res);
      }
    } catch (e) {
      res$.className = 'refused';
      res$.textContent = cmd + ' not sent: ' + e.message;
    }
  }

  function stepCard(s, i, v) {
    const li = el('li', 'step status-' + s.status + (i === v.current ? ' current' : ''));
    li.dataset.step = s.name;
    li.append(el('span', 'name', s.name), ' ', el('span', 'kind', s.kind + (s.irreversible ? ', irreversible' : '')));
    let st = s.status + (s.waiting ? ' (waiting)' : '');
    if (i === v.current && v.paused) st += ' (paused)';
    li.append(el('span', 'status', st));
    if (s.startedAt) li.append(el('span', 'dur', 'ran ' + dur(s.durationSeconds)));
    if (s.units > 0) {
      const p = el('progress');
      p.max = s.units;
      p.value = s.unitsDone || 0;
      li.append(el('span', 'progress', p, (s.unitsDone || 0) + ' of ' + s.units + ' ' + s.unit + (s.units > 1 ? 's' : '')));
    }
    if (s.percentages && s.percentages.length) {
      const m = el('span', 'marks');
      s.percentages.forEach(function (pc, k) {
        if (k) m.append(' → ');
        m.append(el('span', k < (s.unitsDone || 0) ? 'on' : '', pc + '%'));
      });
      li.append(m);
    }
    if (s.waitLeftSeconds > 0) li.append(el('span', 'wait', (s.kind === 'blue-green' ? 'bake' : 'wait') + ' ' + dur(s.waitLeftSeconds) + ' left'));
    if (s.backfill) {
      const b = s.backfill;
      const p = el('progress');
      p.max = 1;
      p.value = b.fraction || 0;
      let t = b.rows + ' rows' + (b.total ? ' of ' + b.total : '') + ' (' + Math.round((b.fraction || 0) * 100) + '%)';
      if (b.etaSeconds) t += ', ETA ' + dur(b.etaSeconds);
      li.append(el('span', 'progress', p, 'backfill ' + t));
    }
    li.append(el('span', 'desc', s.description));
    if (s.error) li.append(el('span', 'error', 'error: ' + s.error));
    return li;
  }

  function allDecisions(v) {
    const out = (v.decisions || []).map(function (d) { return { step: '', d: d }; });
    for (const s of v.steps) for (const d of s.decisions || []) out.push({ step: s.name, d: d });
    out.sort(function (a, b) { return Date.parse(a.d.at) - Date.parse(b.d.at); });
    return out;
  }

  function render(v) {
    last = v;
    rev = v.revision;
    document.title = 'rollout ' + v.id;
    $('title').replaceChildren('rollout ', el('code', null, v.id));
    const sum = $('summary');
    sum.replaceChildren(el('span', 'phase phase-' + phaseName(v.phase), phaseName(v.phase)));
    if (v.paused) sum.append(' ', el('span', 'badge', 'paused'));
    if (v.abortRequested && (v.phase === 'running' || !v.phase)) sum.append(' ', el('span', 'badge', 'abort requested'));
    sum.append(' · run ' + v.run + (v.version ? ' · version ' + v.version : ''));
    if (v.release && v.release.version) sum.append(' · release ' + v.release.version);
    if (v.reason) sum.append(el('span', 'reason', ' · reason: ' + v.reason));
    tick(v.now);
    if (page !== 'rollout') return;
    renderActions(v);
    $('plan').replaceChildren(...v.steps.map(function (s, i) { return stepCard(s, i, v); }));
    const ds = allDecisions(v);
    $('decisions').tBodies[0].replaceChildren(...ds.slice().reverse().map(function (x) {
      const d = x.d;
      const text = d.reason + (d.measurement ? ' [' + figures(d.measurement) + ']' : '');
      return el('tr', null, el('td', null, ts(d.at)), el('td', null, x.step), el('td', null, text));
    }));
    charts(v, ds);
  }

  function pct(x) { return (Math.round(x * 10000) / 100) + '%'; }
  function ms(sec) { return (Math.round(sec * 100000) / 100) + 'ms'; }
  function figures(m) {
    return 'canary ' + pct(m.canary.errorRate) + ' errors, p99 ' + ms(m.canary.p99Seconds) +
      '; stable ' + pct(m.stable.errorRate) + ' errors, p99 ' + ms(m.stable.p99Seconds);
  }

  // ---- charts -------------------------------------------------------

  const W = 640, H = 220, L = 56, R = 150, T = 28, B = 30;
  const STYLES = [
    { dash: '', marker: 'circle', width: 2 },
    { dash: '6 4', marker: 'square', width: 2 },
    { dash: '2 3', marker: 'triangle', width: 1.5 },
    { dash: '8 3 2 3', marker: 'diamond', width: 1.5 },
  ];

  function marker(g, kind, x, y, title) {
    let m;
    if (kind === 'circle') m = svg('circle', { cx: x, cy: y, r: 3.5, fill: '#222' });
    else if (kind === 'square') m = svg('rect', { x: x - 3.5, y: y - 3.5, width: 7, height: 7, fill: '#fff', stroke: '#222' });
    else if (kind === 'triangle') m = svg('path', { d: 'M' + x + ' ' + (y - 4) + 'l4 7h-8z', fill: '#fff', stroke: '#222' });
    else m = svg('path', { d: 'M' + x + ' ' + (y - 4) + 'l4 4-4 4-4-4z', fill: '#222' });
    m.append(svg('title', {}, title));
    g.append(m);
  }

  // chart draws series [{label, points: [{t, y}], step}] against time,
  // with marks [{t, label, cls, title}] as vertical lines: each series is
  // told apart by its dash, its marker and its label, not by colour.
  function chart(id, series, marks, fmt, empty) {
    const c = $(id);
    c.replaceChildren();
    const pts = series.flatMap(function (s) { return s.points; });
    if (!pts.length) {
      c.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, empty));
      return;
    }
    const times = pts.map(function (p) { return p.t; }).concat(marks.map(function (m) { return m.t; }),
      series.filter(function (s) { return s.until && s.points.length; }).map(function (s) { return s.until; }));
    let t0 = Math.min(...times), t1 = Math.max(...times);
    if (t1 - t0 < 1000) { t0 -= 500; t1 += 500; }
    let ymax = Math.max(...pts.map(function (p) { return p.y; }));
    ymax = ymax > 0 ? ymax * 1.15 : 1;
    const x = function (t) { return L + (t - t0) / (t1 - t0) * (W - L - R); };
    const y = function (v) { return H - B - v / ymax * (H - T - B); };
    for (const f of [0, 0.5, 1]) {
      const yy = y(ymax * f);
      c.append(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: f ? 'grid' : 'axis' }));
      c.append(svg('text', { x: L - 4, y: yy + 4, 'text-anchor': 'end' }, fmt(ymax * f)));
    }
    c.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
    c.append(svg('text', { x: L, y: H - 8 }, new Date(t0).toISOString().slice(11, 19)));
    c.append(svg('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, new Date(t1).toISOString().slice(11, 19) + ' UTC'));
    // A mark's label goes on the first of three rows where it does not
    // run into the previous one; with no room it keeps its line and its
    // title (shown on hover), and the table below lists every decision.
    const rowEnd = [-1e9, -1e9, -1e9];
    marks.forEach(function (m) {
      const xx = x(m.t);
      const g = svg('g', { class: 'decision' });
      g.append(svg('line', { x1: xx, x2: xx, y1: T - 4, y2: H - B, class: 'mark ' + (m.cls || '') }));
      const row = rowEnd.findIndex(function (end) { return xx > end + 4; });
      if (row >= 0) {
        g.append(svg('text', { x: xx + 2, y: T - 20 + row * 9, class: 'mark-label' }, m.label));
        rowEnd[row] = xx + 2 + m.label.length * 5.5;
      }
      g.append(svg('title', {}, m.title));
      c.append(g);
    });
    // End labels are pushed apart so that two series ending together
    // stay readable.
    const ends = series.map(function (s, k) {
      return s.points.length ? { k: k, y: y(s.points[s.points.length - 1].y) + 4 } : null;
    }).filter(Boolean).sort(function (a, b) { return a.y - b.y; });
    const labelY = {};
    ends.forEach(function (e, j) {
      if (j && e.y < ends[j - 1].y + 11) e.y = ends[j - 1].y + 11;
      labelY[e.k] = e.y;
    });
    series.forEach(function (s, k) {
      if (!s.points.length) return;
      const st = STYLES[k % STYLES.length];
      let d = '';
      s.points.forEach(function (p, j) {
        if (j && s.step) d += 'H' + x(p.t).toFixed(1);
        d += (j ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.y).toFixed(1);
      });
      if (s.step && s.until) d += 'H' + x(s.until).toFixed(1);
      const g = svg('g', { class: 'series', 'data-label': s.label });
      g.append(svg('path', { d: d, fill: 'none', stroke: '#222', 'stroke-width': st.width, 'stroke-dasharray': st.dash }));
      for (const p of s.points) marker(g, st.marker, x(p.t), y(p.y), s.label + ' ' + fmt(p.y));
      const lp = s.points[s.points.length - 1];
      const name = s.label.length > 18 ? s.label.slice(0, 17) + '…' : s.label;
      g.append(svg('text', { x: W - R + 6, y: labelY[k] }, name + ' ' + fmt(lp.y)));
      c.append(g);
    });
  }

  function charts(v, all) {
    const now = Date.parse(v.now);
    // The marker of dropped decisions (MaxDecisions) has no time.
    const ds = all.filter(function (x) { return Date.parse(x.d.at) > 0; });
    const m = ds.filter(function (x) { return x.d.measurement; });
    const pt = function (f) { return m.map(function (x) { return { t: Date.parse(x.d.at), y: f(x.d.measurement) }; }); };
    const marks = ds.filter(function (x) { return x.d.verdict || (!x.step && x.d.at); }).map(function (x) {
      const d = x.d;
      const label = d.verdict || d.reason.split(':')[0].replace(/ by operator.*$/, '').replace(/ \(.*\)$/, '').slice(0, 24);
      return { t: Date.parse(d.at), label: label, cls: d.verdict ? 'mark-' + d.verdict : '', title: (x.step ? x.step + ': ' : '') + d.reason };
    });
    chart('chart-errors', [
      { label: 'canary', points: pt(function (q) { return q.canary.errorRate; }) },
      { label: 'stable', points: pt(function (q) { return q.stable.errorRate; }) },
    ], marks, pct, 'no measurement yet: the analyzer reports none, or no analysis ran');
    chart('chart-latency', [
      { label: 'canary p99', points: pt(function (q) { return q.canary.p99Seconds; }) },
      { label: 'stable p99', points: pt(function (q) { return q.stable.p99Seconds; }) },
      { label: 'canary p50', points: pt(function (q) { return q.canary.p50Seconds; }) },
      { label: 'stable p50', points: pt(function (q) { return q.stable.p50Seconds; }) },
    ], marks, ms, 'no measurement yet');
    const ramps = [];
    const weight = { label: 'canary weight', step: true, until: now, points: [] };
    for (const s of v.steps) {
      const r = { label: 'flag ' + (s.flag || s.name), step: true, until: now, points: [] };
      for (const d of s.decisions || []) {
        if (!(Date.parse(d.at) > 0)) continue;
        if (d.percent !== undefined) r.points.push({ t: Date.parse(d.at), y: d.percent });
        if (d.weight !== undefined) weight.points.push({ t: Date.parse(d.at), y: d.weight / 100 });
      }
      if (r.points.length) ramps.push(r);
    }
    weight.points.sort(function (a, b) { return a.t - b.t; });
    if (weight.points.length) ramps.push(weight);
    chart('chart-ramp', ramps, marks, function (p) { return (Math.round(p * 100) / 100) + '%'; }, 'no flag ramp or canary weight set yet');
  }

  // ---- fleet page -----------------------------------------------------

  function renderFleet(f) {
    $('fleet-error').textContent = f.error || '';
    $('hosts').tBodies[0].replaceChildren(...(f.hosts || []).map(function (h) {
      return el('tr', h.stale ? 'stale' : null,
        el('td', null, h.name + (h.self ? ' (this process)' : '')),
        el('td', null, h.version || ''),
        el('td', null, (h.state || '') + (h.stale ? ' (stale)' : '')),
        el('td', null, h.weight !== undefined ? (h.weight / 100) + '% (' + h.weight + ' bp)' : ''),
        el('td', null, h.flagVersion || ''),
        el('td', null, ts(h.seenAt)));
    }));
  }

  // ---- polling ------------------------------------------------------

  async function pollStatus() {
    for (;;) {
      try {
        const url = release ? '/api/releases/' + encodeURIComponent(release)
          : rev ? '/api/status?wait=' + rev + '&timeout=' + POLL_TIMEOUT : '/api/status';
        const res = await fetch(url, { cache: 'no-store' });
        if (res.ok) {
          render(await res.json());
          if (release) { // a past release does not move: one read
            setConn('stored state of a past release', true);
            return;
          }
          setConn('live', true);
        } else {
          setConn(await errorOf(res), false);
          await sleep(RETRY_MS);
        }
      } catch (e) {
        setConn('disconnected (' + e.message + '), retrying', false);
        await sleep(RETRY_MS);
      }
    }
  }

  async function pollFleet() {
    for (;;) {
      try {
        const res = await fetch('/api/fleet', { cache: 'no-store' });
        if (res.ok) {
          const f = await res.json();
          renderFleet(f);
          if (!last) tick(f.now);
        } else {
          $('fleet-error').textContent = await errorOf(res);
        }
      } catch (e) {
        $('fleet-error').textContent = 'disconnected (' + e.message + '), retrying';
      }
      await sleep(RETRY_MS);
    }
  }

  if (page === 'rollout') {
    renderActions(null);
    $('confirm').addEventListener('close', function () {
      const cmd = pending;
      pending = null;
      if ($('confirm').returnValue === 'ok' && cmd) send(cmd);
    });
  } else {
    pollFleet();
  }
  pollStatus();
})();
