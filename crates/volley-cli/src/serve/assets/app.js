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
    const head = headRow(["Job", "State", "Progress", "Done", "Total", "OK", "Failed", "Records/s", "ETA", "Started", "Finished"],
      ["Done", "Total", "OK", "Failed", "Records/s"]);
    const rows = jobs.map((j) =>
      el("tr", { class: `state-${j.state}`, "data-job": j.job },
        el("td", {}, jobLink(j)),
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
    const j = await api(`/api/jobs/${encodeURIComponent(id)}`);
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
    const parts = [el("h1", {}, `Job ${j.job}`), dl, counts("Statuses", j.by_status), counts("Error kinds", j.by_error),
      j.error ? el("p", { class: "error" }, j.error) : null];
    root.replaceChildren(...parts.filter(Boolean));
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
    const hosts = await api("/api/hosts");
    const head = headRow(["Host", "Breaker", "Fleet limit", "Paused", "Last error"], []);
    const rows = hosts.map((h) => el("tr", {},
      el("td", {}, h.host), el("td", {}, h.breaker),
      el("td", {}, h.limit ? `${h.limit.rate}/s (burst ${h.limit.burst})` : "-"),
      el("td", {}, h.paused_secs ? `${fmt.secs(h.paused_secs)} left` : "-"),
      el("td", {}, h.last_error || "-")));
    root.replaceChildren(el("h1", {}, "Hosts"),
      hosts.length ? el("table", { id: "hosts" }, el("thead", {}, head), el("tbody", {}, ...rows)) : el("p", {}, "No host limits, pauses or breakers."));
  },
};

function route() {
  const path = location.pathname;
  const job = path.match(/^\/jobs\/([^/]+)$/);
  if (job) return ["job", decodeURIComponent(job[1])];
  if (path === "/workers") return ["workers"];
  if (path === "/hosts") return ["hosts"];
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
    document.getElementById("namespace").textContent = `namespace ${info.namespace} · v${info.version}`;
    document.getElementById("mode").textContent = info.read_only
      ? "Read-only: no token is configured, so this dashboard shows the fleet and changes nothing."
      : "";
  } catch (e) {
    document.getElementById("mode").textContent = `Cannot read the dashboard's settings: ${e.message}`;
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
