// The review room's page: reads /api/state, long-polls /api/version, posts /api/pick.
// Every text from the storyboard (ids, prompts) goes in with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let current = { version: -1 };
let videos = new Map(); // url -> <video>, kept across renders so a player never reloads for nothing

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function seconds(value) {
  return value === null || value === undefined ? "?" : `${Number(value).toFixed(2)} s`;
}

function video(url) {
  let player = videos.get(url);
  if (!player) {
    player = el("video", { src: url, controls: true, preload: "metadata", muted: true, playsinline: true });
    player.muted = true;
  }
  return player;
}

function renderFilm(state) {
  const film = $("film");
  const info = $("film-info");
  if (!state.film) {
    info.textContent = "not built yet";
    return;
  }
  if (film.dataset.sha !== state.film.sha) {
    film.dataset.sha = state.film.sha;
    film.dataset.version = String(Number(film.dataset.version || "0") + 1);
    film.src = state.film.url;
  }
  info.textContent = `${seconds(state.film.duration)} · ${state.board.output} · sha ${state.film.sha.slice(0, 12)}`;
}

function renderStatus(state) {
  const status = $("status");
  const s = state.status || {};
  status.textContent = `${s.building ? "building…" : s.message || ""} · provider ${state.provider || "board's own"}` +
    ` · version ${state.version}`;
  status.classList.toggle("building", Boolean(s.building));
  const error = $("error");
  error.hidden = !s.error;
  error.textContent = s.error || "";
}

function renderPlan(followUp, state) {
  const plan = $("plan");
  if (!followUp) {
    plan.hidden = true;
    return;
  }
  plan.hidden = false;
  const done = state && !state.status.building && !state.status.queued.length && state.builds > followUp.after_build;
  const head = `Picked candidate ${followUp.pick} of ${followUp.shot}. ${done ? "Rebuilt:" : "What follows:"}`;
  plan.replaceChildren(el("strong", { text: head }));
  plan.classList.toggle("done", Boolean(done));
  const list = el("ul");
  for (const run of followUp.runs) list.append(el("li", { text: `${run.shot}: ${run.status} (${run.reason})` }));
  if (!followUp.runs.length) list.append(el("li", { text: "no shot to generate: every shot is cached" }));
  list.append(el("li", { text: `film ${followUp.film}${followUp.film_reason ? ` (${followUp.film_reason})` : ""}` }));
  plan.append(list);
}

function continuityText(before, after) {
  const known = [before, after].filter((v) => v !== null && v !== undefined);
  if (!known.length) return null;
  const parts = [];
  if (before !== null && before !== undefined) parts.push(`← ${before.toFixed(2)}`);
  if (after !== null && after !== undefined) parts.push(`→ ${after.toFixed(2)}`);
  return el("span", { className: `continuity ${Math.min(...known) >= 0.95 ? "good" : "weak"}`, text: `continuity ${parts.join(" ")}`,
                      title: "likeness (0..1) of its first frame to the previous clip's last frame (←), and of its last frame to the next clip's first frame (→)" });
}

function renderCandidate(shot, c) {
  const figure = el("figure", { className: `candidate${c.picked ? " picked" : ""}`, "data-shot": shot.id,
                                title: c.created ? `created ${c.created} · key ${c.key.slice(0, 12)}` : null,
                                "data-number": c.number, "data-picked": c.picked ? "true" : "false" });
  figure.append(c.built ? video(c.url) : el("div", { className: "placeholder", text: "not generated yet" }));
  const button = el("button", { type: "button", "data-pick": `${shot.id}:${c.number}`, disabled: c.picked,
                                text: c.picked ? "Picked" : c.built ? "Pick" : "Pick (generates it)" });
  button.addEventListener("click", () => pick(shot.id, c.number, button));
  const cost = c.cost_text || (c.built ? "cost not recorded" : null);
  figure.append(el("figcaption", {},
    el("span", { className: "name", text: `Candidate ${c.number}` }),
    c.picked ? el("span", { className: "badge", text: "in the film" }) : null,
    c.built ? el("span", { text: seconds(c.duration) }) : null,
    cost ? el("span", { text: cost }) : null,
    continuityText(c.continuity, c.continuity_next),
    button));
  return figure;
}

function renderShots(state) {
  const next = new Map();
  const sections = state.shots.map((shot) => {
    const title = `${shot.number ? `${shot.number}. ` : ""}${shot.id}`;
    const s = shot.settings;
    const settings = [`${s.provider} ${s.model}`, `${s.duration} s`, s.resolution, s.aspect_ratio,
                      s.seed === null ? "no seed" : `seed ${s.seed}`, s.audio ? "audio" : "silent",
                      s.take > 1 ? `take ${s.take}` : null, s.continues ? `continues ${s.continues}` : null,
                      s.extends ? `extends ${s.extends}` : null].filter(Boolean).join(" · ");
    const row = el("div", { className: "candidates" }, ...shot.candidates.map((c) => renderCandidate(shot, c)));
    for (const player of row.querySelectorAll("video")) next.set(player.getAttribute("src"), player);
    return el("section", { className: "shot", id: `shot-${shot.id}`, "data-shot": shot.id },
      el("div", { className: "shot-head" }, el("h2", { text: title }),
         el("span", { className: "takes", text: `${shot.takes} take${shot.takes > 1 ? "s" : ""}, pick ${shot.pick}${shot.number ? "" : " · not in the film"}` })),
      el("p", { className: "prompt", text: shot.prompt }),
      shot.negative_prompt ? el("p", { className: "settings", text: `avoid: ${shot.negative_prompt}` }) : null,
      el("p", { className: "settings", text: settings }),
      row);
  });
  $("shots").replaceChildren(...sections);
  videos = next;
}

function render(state) {
  current = state;
  document.title = `${state.board ? state.board.title : "storyboard"} · review room`;
  if (state.board) $("title").textContent = `${state.board.title} · review room`;
  renderStatus(state);
  renderPlan(state.follow_up, state);
  if (state.shots) {
    renderFilm(state);
    renderShots(state);
  }
  document.body.dataset.version = String(state.version);
}

async function load() {
  const response = await fetch("/api/state", { cache: "no-store" });
  render(await response.json());
}

async function pick(shot, number, button) {
  button.disabled = true;
  button.textContent = "Picking…";
  try {
    const response = await fetch("/api/pick", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ shot, number }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    renderPlan({ ...answer, pick: number });
  } catch (err) {
    $("error").hidden = false;
    $("error").textContent = `pick failed: ${err.message}`;
    button.disabled = false;
    button.textContent = "Pick";
  }
}

async function follow() {
  for (;;) {
    try {
      const response = await fetch(`/api/version?after=${current.version}`, { cache: "no-store" });
      const { version } = await response.json();
      if (version !== current.version) await load();
    } catch (err) {
      $("status").textContent = "the review room is not answering; retrying…";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

load().then(follow, follow);
