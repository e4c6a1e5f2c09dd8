// Volley's dashboard: draws each page from the JSON API and redraws it every 2 s.
// Whatever the fleet stored (job names, ids, error texts) is written as text nodes only:
// nothing here assigns HTML, so stored text can never become markup or script.
"use strict";

const REFRESH_MS = 2000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "href") node.setAttribute("href", v);
    else node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.error || `${path}: HTTP ${reply.status}`);
  return body;
}

const fmt = {
  int: (n) => (n === null || n === undefined ? "?" : Number(n).toLocaleString("en-US")),
  rate: (r) => (r === null || r === undefined ? "-" : `${Number(r).toFixed(1)}/s`),
  ms: (m) => (m === null || m === undefined ? "-" : `${Math.round(m)} ms`),
  time: (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "-"),
  secs(s) {
    if (s === null || s === undefined) return "-";
    s = Math.round(s);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  },
};

function percent(job) {
  if (!job.total) return job.terminal ? 100 : 0;
  return Math.min(100, (100 * job.done) / job.total);
}

function bar(job) {
  const p = percent(job);
  // Through the CSSOM: the content security policy refuses style attributes.
  const fill = el("span", {});
  fill.style.width = `${p.toFixed(1)}%`;
  return el("span", { class: "bar", title: `${p.toFixed(1)}%` }, fill);
}

function eta(job) {
  if (job.terminal) return "ended";
  if (job.paused) return "paused";
  if (job.stalled_secs !== null && job.stalled_secs !== undefined) return `stalled ${fmt.secs(job.stalled_secs)}`;
  return fmt.secs(job.eta_secs);
}

// A header row; the columns named in `numeric` are right-aligned like their figures.
function headRow(names, numeric) {
  return el("tr", {}, ...names.map((h) => el("th", numeric.includes(h) ? { class: "num" } : {}, h)));
}

function jobLink(job) {
  return el("a", { href: `/jobs/${encodeURIComponent(job.job)}` }, job.job);
}

const pages = {
  async jobs(root) {
    const params = new URLSearchParams(location.search);
    const state = params.get("state") || "";
    const jobs = await api(`/api/jobs${state ? `?state=${encodeURIComponent(state)}` : ""}`);
    const filter = el("select", { id: "state-filter" });
    for (const name of ["", "publishing", "running", "completed", "completed_with_failures", "failed", "cancelled", "input_error"]) {
      const option = el("option", { value: name }, name || "every state");
      if (name === state) option.selected = true;
      filter.append(option);
    }
    filter.addEventListener("change", () => {
      const q = filter.value ? `?state=${encodeURIComponent(filter.value)}` : "";
      history.replaceState(null, "", `/${q}`);
      refresh();
    });
    const head = headRow(["Job", "Name", "State", "Progress", "Done", "Total", "OK", "Failed", "Records/s", "ETA", "Started", "Finished"],
      ["Done", "Total", "OK", "Failed", "Records/s"]);
    const rows = jobs.map((j) =>
      el("tr", { class: `state-${j.state}`, "data-job": j.job },
        el("td", {}, jobLink(j)),
        el("td", { class: "name" }, j.name),
        el("td", { class: "state" }, j.paused ? `${j.state} (paused)` : j.state),
        el("td", {}, bar(j), ` ${percent(j).toFixed(1)}%`),
        el("td", { class: "num done" }, fmt.int(j.done)),
        el("td", { class: "num" }, fmt.int(j.total)),
        el("td", { class: "num" }, fmt.int(j.ok)),
        el("td", { class: "num" }, fmt.int(j.failed)),
        el("td", { class: "num" }, fmt.rate(j.terminal ? j.rate : j.rate_10s)),
        el("td", {}, eta(j)),
        el("td", {}, fmt.time(j.created_ms)),
        el("td", {}, fmt.time(j.finished_ms))));
    root.replaceChildren(
      el("h1", {}, "Jobs"),
      el("p", {}, el("label", { for: "state-filter" }, "State"), filter, ` ${jobs.length} job(s)`),
      jobs.length ? el("table", { id: "jobs" }, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", {}, "No jobs."));
  },

  async job(root, id) {
    let live = document.getElementById("job-live");
    if (!live) {
      live = el("div", { id: "job-live" });
      root.replaceChildren(live, actionsPanel(id));
    }
    const [j, series, spec] = await Promise.all([
      api(`/api/jobs/${encodeURIComponent(id)}`),
      api(`/api/jobs/${encodeURIComponent(id)}/series`),
      api(`/api/jobs/${encodeURIComponent(id)}/spec`),
    ]);
    const facts = [
      ["State", j.paused ? `${j.state} (paused)` : j.state],
      ["Progress", [bar(j), ` ${fmt.int(j.done)} / ${fmt.int(j.total)} (${percent(j).toFixed(1)}%)`]],
      ["OK / failed / cancelled", `${fmt.int(j.ok)} / ${fmt.int(j.failed)} / ${fmt.int(j.cancelled)}`],
      ["Retries", fmt.int(j.retries)],
      ["Records/s", `${fmt.rate(j.rate_10s)} (10 s), ${fmt.rate(j.rate_1m)} (1 min), ${fmt.rate(j.rate)} overall`],
      ["ETA", eta(j)],
      ["Latency", `p50 ${fmt.ms(j.p50_ms)}, p95 ${fmt.ms(j.p95_ms)}, p99 ${fmt.ms(j.p99_ms)}`],
      ["Workers", j.live_workers === undefined ? "-" : `${j.live_workers} live`],
      ["Host", j.host ? `${j.host.host}: breaker ${j.host.breaker}` : "-"],
      ["Limits", limits(j.controls)],
      ["Started", fmt.time(j.created_ms)],
      ["Finished", fmt.time(j.finished_ms)],
      ["Input", j.input],
    ];
    const dl = el("dl", { class: `facts state-${j.state}`, id: "facts" });
    for (const [k, v] of facts) dl.append(el("dt", {}, k), el("dd", {}, ...(Array.isArray(v) ? v : [v])));
    const counts = (title, map) => {
      const entries = Object.entries(map || {});
      if (!entries.length) return null;
      return el("div", {}, el("h2", {}, title),
        el("table", { class: "counts" }, el("tbody", {}, ...entries.map(([k, n]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, fmt.int(n)))))));
    };
    const parts = [el("h1", {}, `Job ${j.job}`), el("p", { class: "name" }, j.name), dl,
      el("h2", {}, "Throughput"), chart(series),
      counts("Statuses", j.by_status), counts("Error kinds", j.by_error),
      j.error ? el("p", { class: "error" }, j.error) : null,
      el("h2", {}, "Spec"), el("pre", { id: "spec" }, spec.spec)];
    live.replaceChildren(...parts.filter(Boolean));
    const panel = document.getElementById("job-actions");
    const retriable = j.terminal && j.failed + j.cancelled > 0;
    if (panel) {
      panel.hidden = state.info.read_only || (j.terminal && !retriable);
      document.getElementById("run-actions").hidden = j.terminal;
      document.getElementById("retry-actions").hidden = !retriable;
    }
  },

  async workers(root) {
    const beats = await api("/api/workers");
    const head = headRow(["Worker", "State", "In flight", "Records held", "Chunks held", "Records done", "Last beat"],
      ["In flight", "Records held", "Chunks held", "Records done"]);
    const rows = beats.map((b) => el("tr", {},
      el("td", {}, b.id), el("td", {}, b.state), el("td", { class: "num" }, fmt.int(b.in_flight)),
      el("td", { class: "num" }, fmt.int(b.records_held)), el("td", { class: "num" }, fmt.int(b.chunks_held)),
      el("td", { class: "num" }, fmt.int(b.records_done)), el("td", {}, fmt.time(b.at_ms))));
    root.replaceChildren(el("h1", {}, "Workers"),
      beats.length ? el("table", { id: "workers" }, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", {}, "No workers seen lately."));
  },

  async hosts(root) {
    let live = document.getElementById("hosts-live");
    if (!live) {
      live = el("div", { id: "hosts-live" });
      root.replaceChildren(live, hostLimitForm());
    }
    const hosts = await api("/api/hosts");
    const head = headRow(["Host", "Breaker", "Fleet limit", "Paused", "Last error"], []);
    const rows = hosts.map((h) => el("tr", {},
      el("td", {}, h.host), el("td", {}, h.breaker),
      el("td", {}, h.limit ? `${h.limit.rate}/s (burst ${h.limit.burst})` : "-"),
      el("td", {}, h.paused_secs ? `${fmt.secs(h.paused_secs)} left` : "-"),
      el("td", {}, h.last_error || "-")));
    live.replaceChildren(el("h1", {}, "Hosts"),
      hosts.length ? el("table", { id: "hosts" }, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", {}, "No host limits, pauses or breakers."));
    const form = document.getElementById("host-limit-form");
    if (form) form.hidden = state.info.read_only;
  },

  async dead(root) {
    const letters = await api("/api/dead?limit=50");
    const head = headRow(["Message", "Reason", "Job", "Chunk", "Records", "Bytes", "Start of the body"], ["Chunk", "Records", "Bytes"]);
    const rows = letters.map((d) => el("tr", {},
      el("td", {}, d.message_id || "-"), el("td", {}, d.reason),
      el("td", {}, d.job ? jobLink({ job: d.job }) : "-"), el("td", { class: "num" }, d.chunk ?? "-"),
      el("td", { class: "num" }, d.records ?? "-"), el("td", { class: "num" }, fmt.int(d.bytes)),
      el("td", { class: "preview" }, d.preview)));
    root.replaceChildren(el("h1", {}, "Dead letters"),
      el("p", {}, "Read without consuming them (the first 50). Send them back with volley dead --requeue."),
      letters.length ? el("table", { id: "dead" }, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", {}, "The dead-letter queue is empty."));
  },
};

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

// Records/s and errors/s over the job's life: per minute, or per second while the job is
// younger than five minutes (the per-second ring covers the last two).
function chart(series) {
  const perSecond = series.minutes.length < 5;
  const points = (perSecond ? series.seconds : series.minutes).map(([t, done, failed]) => {
    const span = perSecond ? 1 : 60;
    return [t, done / span, failed / span];
  });
  const width = 720, height = 180, pad = 36;
  const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", id: "throughput-chart" });
  box.append(svg("rect", { x: 0, y: 0, width, height, class: "chart-bg" }));
  if (points.length < 2) {
    const t = svg("text", { x: pad, y: height / 2, class: "chart-label" });
    t.textContent = "Not enough commits yet to draw the throughput.";
    box.append(t);
    return box;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const top = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => pad + ((width - 2 * pad) * (t - t0)) / Math.max(1, t1 - t0);
  const y = (v) => height - pad + 10 - ((height - 2 * pad) * v) / top;
  const line = (i, cls) => svg("polyline", { class: cls, points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[i]).toFixed(1)}`).join(" ") });
  box.append(svg("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), class: "chart-axis" }));
  box.append(line(1, "chart-done"), line(2, "chart-failed"));
  const label = (text, lx, ly, cls) => {
    const t = svg("text", { x: lx, y: ly, class: cls || "chart-label" });
    t.textContent = text;
    return t;
  };
  box.append(label(`${top.toFixed(1)} records/s`, pad, 14),
    label(`${fmt.time(t0)} → ${fmt.time(t1)} (per ${perSecond ? "second" : "minute"})`, pad, height - 4),
    label("records/s", width - pad - 150, 14, "chart-label chart-done-label"),
    label("errors/s", width - pad - 60, 14, "chart-label chart-failed-label"));
  return box;
}

// What /api/info said: read-only, signed in.
const state = { info: { read_only: true, signed_in: false } };

function limits(c) {
  if (!c) return "-";
  const rate = c.rate ? `rate ${c.rate}/s` : "the spec's rate";
  const conc = c.concurrency ? `${c.concurrency} per worker` : "the spec's concurrency";
  return c.cancel_ms ? `cancelled at ${fmt.time(c.cancel_ms)}` : `${rate}, ${conc}${c.paused_ms ? `, paused since ${fmt.time(c.paused_ms)}` : ""}`;
}

async function post(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const answer = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(answer.error || `HTTP ${reply.status}`);
  return answer;
}

// The job's buttons and limit form: drawn once, so the refreshes never reset what is typed.
function actionsPanel(id) {
  const result = el("p", { id: "action-result", role: "status" });
  const run = async (what, body) => {
    try {
      const answer = await post(`/api/jobs/${encodeURIComponent(id)}/${what}`, body);
      result.textContent = what === "retry"
        ? `retry: ${fmt.int(answer.records)} records sent again in ${fmt.int(answer.chunks)} chunks; the job is ${answer.state}`
        : `${answer.action}: done (${limits(answer.controls)})`;
      result.className = "ok";
    } catch (e) {
      result.textContent = `${what} refused: ${e.message}`;
      result.className = "error";
    }
    refresh();
  };
  const button = (label, what, ask) => {
    const b = el("button", { type: "button", id: `${what}-button` }, label);
    b.addEventListener("click", () => {
      if (ask && !window.confirm(ask)) return;
      run(what);
    });
    return b;
  };
  const rate = el("input", { id: "limit-rate", type: "number", min: "0.1", step: "any", placeholder: "requests/s" });
  const conc = el("input", { id: "limit-concurrency", type: "number", min: "1", step: "1", placeholder: "per worker" });
  const apply = el("button", { type: "submit", id: "limit-button" }, "Apply limits");
  const clear = el("button", { type: "button", id: "limit-clear" }, "Back to the spec's");
  const form = el("form", { id: "limit-form" }, el("label", { for: "limit-rate" }, "Rate"), rate,
    el("label", { for: "limit-concurrency" }, "Concurrency"), conc, apply, clear);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    if (rate.value) body.rate = Number(rate.value);
    if (conc.value) body.concurrency = Number(conc.value);
    run("limit", body);
  });
  clear.addEventListener("click", () => run("limit", { clear: true }));
  const only = el("input", { id: "retry-only", type: "text", placeholder: "all, or e.g. status=503,timeout" });
  const retry = el("button", { type: "button", id: "retry-button" }, "Retry failed records");
  retry.addEventListener("click", () => {
    if (!window.confirm(`Send job ${id}'s failed${only.value ? ` (${only.value})` : " and cancelled"} records again?`)) return;
    run("retry", only.value ? { only: only.value } : {});
  });
  const running = el("div", { id: "run-actions" },
    el("p", {}, button("Pause", "pause"), " ", button("Resume", "resume"), " ",
      button("Cancel job", "cancel", `Cancel job ${id}? Its unsent records end cancelled (volley retry sends them later).`)),
    form);
  const ended = el("div", { id: "retry-actions" }, el("label", { for: "retry-only" }, "Only"), only, retry);
  return el("section", { id: "job-actions", hidden: "" }, el("h2", {}, "Actions"), running, ended, result);
}

// Set or remove a host's fleet-wide limit (drawn once, like the job's actions).
function hostLimitForm() {
  const host = el("input", { id: "host-url", type: "url", placeholder: "https://api.example.com" });
  const rate = el("input", { id: "host-rate", type: "number", min: "0.1", step: "any", placeholder: "requests/s" });
  const burst = el("input", { id: "host-burst", type: "number", min: "1", step: "1", placeholder: "burst" });
  const result = el("p", { id: "host-result", role: "status" });
  const send = async (body) => {
    try {
      const answer = await post("/api/hosts/limit", body);
      result.textContent = answer.limit ? `${answer.host}: ${answer.limit.rate}/s (burst ${answer.limit.burst})` : `${answer.host}: limit removed`;
      result.className = "ok";
    } catch (e) {
      result.textContent = `refused: ${e.message}`;
      result.className = "error";
    }
    refresh();
  };
  const remove = el("button", { type: "button", id: "host-unlimit" }, "Remove the limit");
  remove.addEventListener("click", () => send({ host: host.value }));
  const form = el("form", { id: "host-limit-form", hidden: "" }, el("h2", {}, "Fleet limit of a host"),
    el("label", { for: "host-url" }, "Host"), host, el("label", { for: "host-rate" }, "Rate"), rate,
    el("label", { for: "host-burst" }, "Burst"), burst, el("button", { type: "submit" }, "Set"), " ", remove, result);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { host: host.value, rate: Number(rate.value) };
    if (burst.value) body.burst = Number(burst.value);
    send(body);
  });
  return form;
}

function signInBar(info) {
  const mode = document.getElementById("mode");
  if (info.read_only) {
    mode.replaceChildren("Read-only: no token is configured, so this dashboard shows the fleet and changes nothing.");
    return;
  }
  if (info.signed_in) {
    const out = el("form", { method: "post", action: "/logout", class: "inline" }, el("button", { type: "submit" }, "Sign out"));
    mode.replaceChildren("Signed in: actions are allowed. ", out);
    mode.className = "mode signed-in";
    return;
  }
  const failed = new URLSearchParams(location.search).get("signin") === "failed";
  const form = el("form", { method: "post", action: "/login", class: "inline", id: "signin" },
    el("label", { for: "token" }, "Token"), el("input", { id: "token", name: "token", type: "password", autocomplete: "current-password" }),
    el("button", { type: "submit" }, "Sign in"));
  mode.replaceChildren(failed ? "That token is wrong. " : "Viewing only: sign in with the dashboard's token to act. ", form);
}

function route() {
  const path = location.pathname;
  const job = path.match(/^\/jobs\/([^/]+)$/);
  if (job) return ["job", decodeURIComponent(job[1])];
  if (path === "/workers") return ["workers"];
  if (path === "/hosts") return ["hosts"];
  if (path === "/dead") return ["dead"];
  return ["jobs"];
}

async function refresh() {
  const [page, arg] = route();
  const error = document.getElementById("error");
  try {
    await pages[page](document.getElementById("app"), arg);
    error.hidden = true;
    document.getElementById("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (e) {
    error.textContent = `Cannot read the fleet: ${e.message}`;
    error.hidden = false;
  }
}

async function start() {
  try {
    const info = await api("/api/info");
    state.info = info;
    document.getElementById("namespace").textContent = `namespace ${info.namespace} · v${info.version}`;
    signInBar(info);
  } catch (e) {
    document.getElementById("mode").textContent = `Cannot read the dashboard's settings: ${e.message}`;
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
