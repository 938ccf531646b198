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
    if (job.state === "done" || job.state === "failed") {
      bar.value = bar.max;
      showResult(job, document.getElementById("job-result"));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

document.addEventListener("DOMContentLoaded", () => { setUpDrop(); followJob(); });
