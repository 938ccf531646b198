// Drop-to-search on the search page, and progress for running jobs. Everything works without it except these.
"use strict";

function setUpDrop() {
  const form = document.getElementById("upload");
  const input = document.getElementById("image");
  if (!form || !input) return;
  input.addEventListener("change", () => { if (input.files.length) form.submit(); });
  for (const name of ["dragenter", "dragover"]) {
    form.addEventListener(name, (e) => { e.preventDefault(); form.classList.add("over"); });
  }
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("over");
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; form.submit(); }
  });
}

// Paste a picture anywhere on the search page to search with it.
function setUpPaste() {
  const form = document.getElementById("upload");
  const input = document.getElementById("image");
  if (!form || !input) return;
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])].filter((f) => f.type.startsWith("image/"));
    if (!files.length) return;
    e.preventDefault();
    const chosen = new DataTransfer();
    chosen.items.add(files[0]);
    input.files = chosen.files;
    form.submit();
  });
}

// The pictures of every grid on the page, in order (endless scroll adds to them).
function gridCells() { return [...document.querySelectorAll(".grid .cell[data-id]")]; }

function text(tag, content) { const el = document.createElement(tag); el.textContent = content; return el; }

function showResult(job, box) {
  box.replaceChildren();
  if (job.state === "failed") { box.append(text("p", "Failed: " + job.error.message)); return; }
  const r = job.result;
  if (job.kind === "duplicates") { window.location.href = "/duplicates?job=" + encodeURIComponent(job.id); return; }
  if (job.kind === "undo") {
    const back = r.files.filter((f) => !f.problem).length;
    box.append(text("p", `Put back ${back} of ${r.files.length} file(s) of run ${r.run_id}.`));
    for (const f of r.files.filter((f) => f.problem)) box.append(text("p", `Not put back: ${f.path}: ${f.problem}`));
  } else {
    box.append(text("p", `Moved ${r.moves.length} file(s) as run ${r.run_id}` +
      (r.failed.length ? `; ${r.failed.length} could not be moved.` : ".") + " The Clean page can undo it."));
    const list = document.createElement("ul");
    for (const m of r.moves.slice(0, 200)) list.append(text("li", `${m.path} → ${m.destination}`));
    for (const f of r.failed) list.append(text("li", `not moved: ${f.path}: ${f.reason}`));
    box.append(list);
  }
}

async function followJob() {
  const box = document.getElementById("job");
  if (!box) return;
  const bar = document.getElementById("progress");
  const state = document.getElementById("job-state");
  for (;;) {
    const response = await fetch("/api/jobs/" + encodeURIComponent(box.dataset.id));
    const job = await response.json();
    if (!response.ok) { state.textContent = job.error.message; return; }
    bar.max = job.total || 1;
    bar.value = job.done;
    state.textContent = `${job.state}: ${job.done} of ${job.total || "?"}`;
    box.dataset.state = job.state;
    if (job.kind === "duplicates" && job.found && job.state === "running") {
      const result = document.getElementById("job-result");
      const link = text("a", `Review the ${job.found} group(s) found so far`);
      link.href = "/duplicates?job=" + encodeURIComponent(job.id);
      link.id = "review-so-far";
      result.replaceChildren(link);
    }
    if (job.state === "done" || job.state === "failed") {
      bar.value = bar.max;
      showResult(job, document.getElementById("job-result"));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// On a page of duplicate groups: one button ticks every group shown (a page at a time, never all of them).
function setUpTickPage() {
  const button = document.getElementById("tick-page");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    for (const box of document.querySelectorAll("#review input.tick")) box.checked = true;
  });
}

// The compact header on a phone: the pages sit behind one button.
function setUpMenu() {
  document.documentElement.classList.add("js");
  const button = document.querySelector("button.menu");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const open = button.closest("header").classList.toggle("open");
    button.setAttribute("aria-expanded", String(open));
  });
}

// A full-screen viewer over any grid of pictures: previous and next in the list shown, zoom to the original
// and pan, keys (left/right, Esc, i for details, z to zoom), and swipes on a phone. Without JavaScript each
// picture links to its own page instead.
function setUpViewer() {
  if (!gridCells().length) return;
  const box = document.createElement("div");
  box.id = "viewer";
  box.hidden = true;
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", "Picture viewer");
  box.innerHTML = `<div class="stage"><img alt=""></div>
    <div class="bar"><button type="button" data-do="prev" aria-label="Previous (left arrow)">←</button>
    <span class="where"></span>
    <button type="button" data-do="next" aria-label="Next (right arrow)">→</button>
    <button type="button" data-do="zoom" aria-label="Zoom to the original (z)">Zoom</button>
    <button type="button" data-do="info" aria-label="Details (i)">Details</button>
    <a class="open" href="#">Page</a>
    <button type="button" data-do="close" aria-label="Close (Esc)">✕</button></div>
    <aside class="info" hidden></aside>`;
  document.body.append(box);
  const img = box.querySelector(".stage img");
  const stage = box.querySelector(".stage");
  const info = box.querySelector("aside.info");
  let at = -1;
  let opener = null;

  function show(k) {
    const list = gridCells();
    if (!list.length) return;
    at = (k + list.length) % list.length;
    const cell = list[at];
    const id = cell.dataset.id;
    box.classList.remove("zoomed");
    img.src = `/api/images/${id}/preview`;
    img.alt = cell.querySelector("img") ? cell.querySelector("img").alt : "";
    box.querySelector(".where").textContent = `${at + 1} of ${list.length}`;
    box.querySelector("a.open").href = `/images/${id}`;
    box.dataset.id = id;
    if (!info.hidden) details();
  }
  function open(k) { opener = document.activeElement; box.hidden = false; document.body.classList.add("viewing"); show(k); box.querySelector("[data-do=next]").focus(); }
  function close() { box.hidden = true; document.body.classList.remove("viewing"); img.src = ""; if (opener) opener.focus(); }
  function zoom() {
    const id = box.dataset.id;
    if (box.classList.toggle("zoomed")) { img.src = `/api/images/${id}/file`; } else { img.src = `/api/images/${id}/preview`; }
  }
  async function details() {
    info.replaceChildren(text("p", "…"));
    const response = await fetch(`/api/images/${box.dataset.id}`);
    const d = await response.json();
    if (!response.ok) { info.replaceChildren(text("p", d.error.message)); return; }
    const list = document.createElement("dl");
    const add = (term, value) => { if (value === null || value === undefined || value === "") return; list.append(text("dt", term), text("dd", value)); };
    add("File", d.path);
    add("Taken", d.taken_at ? d.taken_at + (d.taken_source === "file" ? " (file time)" : "") : "");
    add("Place", d.place || "");
    add("Camera", d.camera || "");
    add("Size", d.size ? `${(d.size / 1e6).toFixed(1)} MB` : "");
    if (d.category) add("Category", d.category + (d.category_probs ? " (" + Object.entries(d.category_probs).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${k} ${Math.round(v * 100)}%`).join(", ") + ")" : ""));
    add("Tags", (d.tags || []).map((t) => t.tag).join(", "));
    const more = document.createElement("a");
    more.href = `/search?id=${d.id}`;
    more.textContent = "More like this";
    const near = document.createElement("div");
    near.className = "neighbours";
    info.replaceChildren(list, text("h3", "Nearest"), near, more);
    const found = await fetch(`/api/query?id=${d.id}&k=6&exclude_self=true`);
    if (!found.ok) return;
    for (const hit of await found.json()) {
      const link = document.createElement("a");
      link.href = `/images/${hit.id}`;
      link.title = `${hit.path} (${hit.score.toFixed(3)})`;
      const thumb = document.createElement("img");
      thumb.src = `/api/images/${hit.id}/thumbnail`;
      thumb.alt = hit.path.split("/").pop();
      link.append(thumb);
      near.append(link);
    }
  }
  function toggleInfo() { info.hidden = !info.hidden; if (!info.hidden) details(); }

  document.addEventListener("click", (e) => {
    const link = e.target.closest(".grid .cell[data-id] > a");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || document.body.classList.contains("selecting")) return;
    e.preventDefault();
    open(gridCells().indexOf(link.closest(".cell")));
  });
  box.addEventListener("click", (e) => {
    const action = e.target.closest("[data-do]");
    if (!action) return;
    ({ prev: () => show(at - 1), next: () => show(at + 1), zoom, info: toggleInfo, close })[action.dataset.do]();
  });
  document.addEventListener("keydown", (e) => {
    if (box.hidden) return;
    const act = { ArrowLeft: () => show(at - 1), ArrowRight: () => show(at + 1), Escape: close, i: toggleInfo, z: zoom }[e.key];
    if (act) { e.preventDefault(); act(); }
  });
  let touchX = null;
  stage.addEventListener("touchstart", (e) => { touchX = e.touches.length === 1 ? e.touches[0].clientX : null; }, { passive: true });
  stage.addEventListener("touchend", (e) => {
    if (touchX === null || box.classList.contains("zoomed")) return;
    const dx = e.changedTouches[0].clientX - touchX;
    if (Math.abs(dx) > 50) show(dx < 0 ? at + 1 : at - 1);
    touchX = null;
  });
}

// Selecting pictures in a grid: a Select button (or shift- or ctrl-click) starts it; a click (or Space on a
// focused picture) picks one, shift-click a range; Esc clears. The bar at the bottom acts on what is picked,
// showing its plan before anything moves.
function setUpSelection() {
  const form = document.getElementById("selection");
  const grid = document.querySelector(".grid");
  if (!form || !grid) return;
  const picked = new Set();
  let last = null;
  const start = document.createElement("button");
  start.type = "button";
  start.id = "select";
  start.className = "quiet";
  start.textContent = "Select";
  (document.getElementById("timeline") || grid).before(start);

  function refresh() {
    for (const cell of gridCells()) {
      const on = picked.has(cell.dataset.id);
      cell.classList.toggle("selected", on);
      cell.setAttribute("aria-selected", String(on));
    }
    document.getElementById("selected-count").textContent = String(picked.size);
    form.hidden = !document.body.classList.contains("selecting");
    start.textContent = document.body.classList.contains("selecting") ? "Done selecting" : "Select";
  }
  function pick(cell, range) {
    const list = gridCells();
    if (range && last !== null) {
      const [a, b] = [list.indexOf(last), list.indexOf(cell)].sort((x, y) => x - y);
      for (const c of list.slice(a, b + 1)) picked.add(c.dataset.id);
    } else if (picked.has(cell.dataset.id)) {
      picked.delete(cell.dataset.id);
    } else {
      picked.add(cell.dataset.id);
    }
    last = cell;
    refresh();
  }
  function stop() { picked.clear(); last = null; document.body.classList.remove("selecting"); refresh(); }
  start.addEventListener("click", () => {
    if (document.body.classList.contains("selecting")) { stop(); } else { document.body.classList.add("selecting"); refresh(); }
  });
  document.addEventListener("click", (e) => {
    const link = e.target.closest(".grid .cell[data-id] > a");
    if (!link) return;
    if (!(document.body.classList.contains("selecting") || e.shiftKey || e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    document.body.classList.add("selecting");
    pick(link.closest(".cell"), e.shiftKey);
  });
  document.addEventListener("keydown", (e) => {
    const viewer = document.getElementById("viewer");
    if (viewer && !viewer.hidden) return;
    const link = document.activeElement && document.activeElement.closest && document.activeElement.closest(".grid .cell[data-id] > a");
    if (e.key === " " && link && document.body.classList.contains("selecting")) { e.preventDefault(); pick(link.closest(".cell"), e.shiftKey); }
    if (e.key === "Escape" && document.body.classList.contains("selecting")) stop();
  });
  form.addEventListener("submit", (e) => {
    if (!picked.size) { e.preventDefault(); return; }
    for (const old of form.querySelectorAll("input[name=id]")) old.remove();
    for (const id of picked) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "id"; input.value = id;
      form.append(input);
    }
  });
  document.getElementById("more-like-these").addEventListener("click", () => {
    if (picked.size) window.location.href = "/search?ids=" + [...picked].join(",");
  });
  document.getElementById("clear-selection").addEventListener("click", stop);
}

// Endless scroll on the library: the next page's pictures are fetched as the end comes into view, and a month
// that goes on across pages stays one section. The pager links still work without JavaScript.
function setUpEndlessScroll() {
  const timeline = document.getElementById("timeline");
  if (!timeline || !("IntersectionObserver" in window)) return;
  const pager = document.querySelector("nav.pager");
  if (pager) pager.hidden = true;
  let busy = false;
  const watcher = new IntersectionObserver(async (entries) => {
    const next = timeline.querySelector("a.next-part");
    if (busy || !next || !entries.some((e) => e.isIntersecting)) return;
    busy = true;
    const response = await fetch(next.href);
    const part = document.createElement("div");
    part.innerHTML = await response.text();
    next.remove();
    for (const section of part.querySelectorAll("section.month")) {
      const sections = timeline.querySelectorAll("section.month");
      const last = sections[sections.length - 1];
      if (last && last.dataset.month === section.dataset.month) {
        last.querySelector(".grid").append(...section.querySelectorAll(".grid > .cell"));
      } else {
        timeline.append(section);
      }
    }
    const more = part.querySelector("a.next-part");
    if (more) { timeline.append(more); watcher.observe(more); }
    busy = false;
  }, { rootMargin: "800px" });
  const first = timeline.querySelector("a.next-part");
  if (first) { first.hidden = false; watcher.observe(first); }
}

// The word boxes suggest words the search understands (tags, categories, places) as you type. A term may be
// several words ("golden retriever"), so the last one, two and three words typed are each completed.
function setUpWordSuggestions() {
  const list = document.getElementById("word-suggestions");
  if (!list) return;
  let asked = "";
  for (const box of document.querySelectorAll("input[name=q]")) {
    box.setAttribute("list", "word-suggestions");
    box.addEventListener("input", async () => {
      const typed = box.value.trim();
      const words = typed.split(/\s+/);
      if ((words[words.length - 1] || "").length < 2 || typed === asked) return;
      asked = typed;
      const tails = [1, 2, 3].filter((n) => n <= words.length).map((n) => words.length - n);
      const answers = await Promise.all(tails.map(async (at) => {
        const response = await fetch("/api/words?prefix=" + encodeURIComponent(words.slice(at).join(" ")));
        return response.ok ? { head: words.slice(0, at).join(" "), found: await response.json() } : null;
      }));
      if (asked !== typed) return;
      const values = new Set();
      for (const answer of answers.reverse()) {  // the longest completed tail first
        for (const w of answer ? answer.found : []) values.add(answer.head ? `${answer.head} ${w}` : w);
      }
      list.replaceChildren(...[...values].slice(0, 20).map((value) => {
        const option = document.createElement("option");
        option.value = value;
        return option;
      }));
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpWordSuggestions();
  setUpMenu(); setUpDrop(); setUpPaste(); setUpTickPage(); setUpSelection(); setUpViewer(); setUpEndlessScroll();
  followJob();
});
