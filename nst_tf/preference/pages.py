"""The HTML pages of ``nst-prefer``, one per kind of question (vanilla JavaScript, no build).

* ``PAIR_PAGE``: two stylizations side by side; ←/→ choose, ``t`` tie, ``s`` skip, ``z`` undo.
* ``GRID_PAGE``: four stylizations in a 2×2 grid as large as the window allows; ``1``–``4`` (or a
  click on an image) choose, ``n`` none, ``s`` skip, ``z`` undo. Votes stay disabled until all
  four images are loaded; the best mix so far is shown with its largest weights, each with a
  thumbnail of its style alone.

Both send a fresh vote id with each answer and reuse it on a retry, so an answer counts once.

Example:
    >>> sorted(PAGES)
    ['grid4', 'pair']
"""

_ANSWERING = """
const annotator = new URLSearchParams(location.search).get("annotator") || "anonymous";
let current = null, ready = false, busy = false;
function setReady(value) { ready = value; buttons.forEach(b => b.disabled = !value); }
function load(src) {
  return new Promise((resolve, reject) => {
    const img = new Image(); img.onload = () => resolve(src); img.onerror = reject; img.src = src;
  });
}
async function post(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body || {})});
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.status);
  return data;
}
async function vote(choice) {
  if (!ready || busy) return;
  busy = true; setReady(false);
  const body = {[ID_FIELD]: current, choice: choice, annotator: annotator,
                client_id: (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()))};
  document.getElementById("status").textContent = "";
  try {
    let state;
    for (let attempt = 0; ; attempt++) {       // retries reuse the vote id: counted once
      try { state = await post("/api/vote", body); break; }
      catch (e) { if (attempt >= 2 || !(e instanceof TypeError)) throw e; }
    }
    await show(state);
  } catch (e) {
    document.getElementById("status").textContent = "error: " + e.message;
    setReady(true);
  } finally { busy = false; }
}
async function undo() {
  if (busy) return;
  busy = true;
  try { await show(await post("/api/undo")); }
  catch (e) { document.getElementById("status").textContent = e.message; }
  finally { busy = false; }
}
document.getElementById("undo").onclick = undo;
document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const action = Object.assign({z: undo}, KEYS)[e.key];
  if (action) { e.preventDefault(); action(); }
});
fetch("/api/state").then(r => r.json()).then(show);
</script>
</body></html>
"""


PAIR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nst-prefer: which do you like?</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5em; background: #f6f6f4; color: #222; }
 .pair { display: flex; gap: 1.5em; }
 .side { flex: 1; text-align: center; }
 .side img { max-width: 100%; max-height: 70vh; border: 1px solid #ccc; background: #ddd; }
 button { font-size: 1em; padding: .5em 1em; margin: .3em; }
 button:disabled { opacity: .4; }
 #best img { max-width: 160px; border: 1px solid #ccc; }
 .hint { color: #666; font-size: .9em; }
</style></head>
<body>
<h2>Which stylization do you prefer?</h2>
<div class="pair">
 <div class="side"><img id="left" alt="left"><br>
  <button id="choose-left" disabled>&larr; Left</button></div>
 <div class="side"><img id="right" alt="right"><br>
  <button id="choose-right" disabled>Right &rarr;</button></div>
</div>
<p><button id="tie" disabled>Tie (t)</button> <button id="skip" disabled>Skip (s)</button>
 <button id="undo">Undo (z)</button>
 <span class="hint">Keys: &larr; / &rarr; choose, t tie, s skip, z undo.</span></p>
<p>Comparisons: <b id="count">0</b> <span id="status"></span></p>
<div id="best"><h3>Best mix so far</h3><img id="best-image" alt="best mix">
 <div id="best-weights"></div></div>
<script>
const ID_FIELD = "pair_id";
const buttons = ["choose-left", "choose-right", "tie", "skip"].map(id => document.getElementById(id));
async function show(state) {
  setReady(false);
  document.getElementById("count").textContent = state.count;
  const left = "/image/" + state.pair.left + ".png", right = "/image/" + state.pair.right + ".png";
  current = state.pair.id;
  await Promise.all([load(left), load(right)]);     // both decoded before they are shown
  if (current !== state.pair.id) return;
  document.getElementById("left").src = left;
  document.getElementById("right").src = right;
  document.body.dataset.pair = state.pair.id;
  setReady(true);
  document.getElementById("best-image").src = "/image/" + state.best.image + ".png";
  document.getElementById("best-weights").textContent =
    state.best.weights.map(w => "style " + w.style + ": " + w.weight).join(", ");
}
document.getElementById("choose-left").onclick = () => vote("left");
document.getElementById("choose-right").onclick = () => vote("right");
document.getElementById("tie").onclick = () => vote("tie");
document.getElementById("skip").onclick = () => vote("skip");
const KEYS = {ArrowLeft: () => vote("left"), ArrowRight: () => vote("right"),
              t: () => vote("tie"), s: () => vote("skip")};
""" + _ANSWERING


GRID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nst-prefer: which do you like best?</title>
<style>
 * { box-sizing: border-box; }
 html, body { height: 100%; margin: 0; }
 body { font-family: system-ui, sans-serif; background: #f6f6f4; color: #222; display: flex; }
 main { flex: 1; display: flex; flex-direction: column; padding: .6em; min-width: 0; }
 header { display: flex; align-items: baseline; gap: 1em; flex-wrap: wrap; }
 header h2 { margin: 0 0 .3em 0; font-size: 1.2em; }
 .hint { color: #666; font-size: .9em; }
 .grid { flex: 1; display: grid; grid-template-columns: 1fr 1fr; grid-template-rows: 1fr 1fr;
         gap: .5em; min-height: 0; }
 .cell { position: relative; border: 3px solid transparent; background: #ddd; padding: 0;
         cursor: pointer; min-height: 0; overflow: hidden; border-radius: 4px; }
 .cell:hover:not(:disabled) { border-color: #3a7; }
 .cell:disabled { cursor: default; }
 .cell img { width: 100%; height: 100%; object-fit: contain; display: block; }
 .badge { position: absolute; top: .3em; left: .3em; background: rgba(0,0,0,.65); color: #fff;
          font-weight: bold; border-radius: 50%; width: 1.8em; height: 1.8em; line-height: 1.8em; }
 footer { padding-top: .4em; }
 button.action { font-size: 1em; padding: .4em .9em; margin-right: .3em; }
 button:disabled { opacity: .45; }
 aside { width: 230px; padding: .6em; border-left: 1px solid #ccc; overflow-y: auto; }
 aside h3 { margin: .2em 0 .4em 0; font-size: 1em; }
 #best-image { width: 100%; border: 1px solid #ccc; background: #ddd; }
 .weight { display: flex; align-items: center; gap: .5em; margin: .3em 0; font-size: .9em; }
 .weight img { width: 56px; height: 56px; object-fit: cover; border: 1px solid #ccc; }
</style></head>
<body>
<main>
 <header><h2>Which one do you like best?</h2>
  <span class="hint">Keys: 1&ndash;4 or click to choose, n none, s skip, z undo.</span>
  <span>Answers: <b id="count">0</b> <span id="status"></span></span></header>
 <div class="grid">
  <button class="cell" id="choose-0" disabled><img id="option-0" alt="option 1"><span class="badge">1</span></button>
  <button class="cell" id="choose-1" disabled><img id="option-1" alt="option 2"><span class="badge">2</span></button>
  <button class="cell" id="choose-2" disabled><img id="option-2" alt="option 3"><span class="badge">3</span></button>
  <button class="cell" id="choose-3" disabled><img id="option-3" alt="option 4"><span class="badge">4</span></button>
 </div>
 <footer><button class="action" id="none" disabled>None of these (n)</button>
  <button class="action" id="skip" disabled>Skip (s)</button>
  <button class="action" id="undo">Undo (z)</button></footer>
</main>
<aside id="best"><h3>Best mix so far</h3><img id="best-image" alt="best mix">
 <div id="best-weights"></div></aside>
<script>
const ID_FIELD = "question_id";
const buttons = ["choose-0", "choose-1", "choose-2", "choose-3", "none", "skip"]
  .map(id => document.getElementById(id));
const url = key => "/image/" + key + ".png";
function showBest(best) {
  document.getElementById("best-image").src = url(best.image);
  const list = document.getElementById("best-weights");
  list.replaceChildren(...best.weights.map(w => {
    const row = document.createElement("div"); row.className = "weight";
    const img = document.createElement("img"); img.src = url(w.image);
    img.alt = img.title = "style " + w.style;
    const text = document.createElement("span");
    text.textContent = "style " + w.style + ": " + Math.round(w.weight * 100) + "%";
    row.append(img, text); return row;
  }));
}
async function show(state) {
  setReady(false);
  document.getElementById("count").textContent = state.count;
  const sources = state.question.options.map(url);
  current = state.question.id;
  await Promise.all(sources.map(load));      // all four decoded before they are shown
  if (current !== state.question.id) return;
  sources.forEach((src, i) => document.getElementById("option-" + i).src = src);
  document.body.dataset.question = state.question.id;
  setReady(true);
  showBest(state.best);
}
[0, 1, 2, 3].forEach(i => document.getElementById("choose-" + i).onclick = () => vote(i));
document.getElementById("none").onclick = () => vote("none");
document.getElementById("skip").onclick = () => vote("skip");
const KEYS = {"1": () => vote(0), "2": () => vote(1), "3": () => vote(2), "4": () => vote(3),
              n: () => vote("none"), s: () => vote("skip")};
""" + _ANSWERING


PAGES = {"pair": PAIR_PAGE, "grid4": GRID_PAGE}
