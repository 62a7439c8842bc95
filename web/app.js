// The page: load the exported model, decode what the user types, draw the cross-attention.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";
import {
  characters, decodeBytes, encodeSource, greedy, modelInput, shown, unseenCharacters, validUtf8,
} from "./tiny.js";

globalThis.ort = ort;
ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a static host lacks

const $ = (id) => document.getElementById(id);
const page = {
  manifest: null, sessions: null, steps: [], src: [], outIds: [], runs: 0,
  current: Promise.resolve(),
};

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showNote(message) {
  $("note").textContent = message;
  $("note").hidden = !message;
}

function setState(state) {
  document.body.dataset.state = state;
}

const isCount = (x, lo, hi) => Number.isInteger(x) && x >= lo && x <= hi;

/** The fields of model.json the page relies on, each checked: an error names the first bad one. */
function checkManifest(m) {
  if (m === null || typeof m !== "object" || Array.isArray(m)) {
    throw new Error("model.json: not a JSON object");
  }
  const format = m.input_format;
  const ids = m.special_ids;
  const checks = {
    format: m.format === "transformer_tiny.web/1",
    task: typeof m.task === "string",
    task_description: typeof m.task_description === "string",
    alphabet: typeof m.alphabet === "string",
    n_layers: isCount(m.n_layers, 1, 64),
    n_heads: isCount(m.n_heads, 1, 256),
    head_size: isCount(m.head_size, 1, 4096),
    end_heads: Array.isArray(m.end_heads) && m.end_heads.every((h) => isCount(h, 0, m.n_heads - 1)),
    training_lengths: m.training_lengths === null || (Array.isArray(m.training_lengths) &&
      m.training_lengths.length === 2 && m.training_lengths.every((n) => isCount(n, 0, 1 << 16))),
    max_positions: isCount(m.max_positions, 3, 65536),
    max_input_bytes: isCount(m.max_input_bytes, 1, m.max_positions - 2),
    output_room: m.output_room !== null && typeof m.output_room === "object" &&
      isCount(m.output_room.per_token, 0, 64) && isCount(m.output_room.plus, 0, 65536),
    special_ids: ids !== null && typeof ids === "object" &&
      ["pad", "bos", "eos"].every((k) => isCount(ids[k], 256, 258)) &&
      new Set([ids.pad, ids.bos, ids.eos]).size === 3,
    input_format: format === null ||
      (typeof format === "object" && format.kind === "add" && isCount(format.width, 1, 4096)),
    output_format: m.output_format === null || m.output_format === "strip_zeros",
  };
  const bad = Object.keys(checks).find((key) => !checks[key]);
  if (bad) throw new Error(`model.json: ${bad} is missing or invalid`);
}

async function loadModel(folder) {
  const base = new URL(folder.replace(/\/?$/, "/"), location.href);
  if (base.origin !== location.origin) throw new Error("the model folder must be on this site");
  const response = await fetch(new URL("model.json", base));
  if (!response.ok) throw new Error(`no model.json in ${folder}/ (HTTP ${response.status})`);
  const manifest = await response.json();
  checkManifest(manifest);
  const options = { executionProviders: ["wasm"] };
  const [encoder, decoder] = await Promise.all([
    ort.InferenceSession.create(new URL("encoder.onnx", base).href, options),
    ort.InferenceSession.create(new URL("decoder_step.onnx", base).href, options),
  ]);
  // the graphs must be the ones model.json describes: one cache input per decoder layer
  const layers = decoder.inputNames.filter((name) => /^past_k_\d+$/.test(name)).length;
  if (layers !== manifest.n_layers) {
    throw new Error(`model.json: n_layers is ${manifest.n_layers}, the graphs have ${layers}`);
  }
  // and each cache is (B, nh, T, hs) with the heads model.json gives
  const cache = decoder.inputMetadata.find((x) => x.name === "past_k_0");
  const [, nh, , hs] = cache && cache.shape ? cache.shape : [];
  for (const [key, size] of [["n_heads", nh], ["head_size", hs]]) {
    if (Number.isInteger(size) && size !== manifest[key]) {
      throw new Error(`model.json: ${key} is ${manifest[key]}, the graphs have ${size}`);
    }
  }
  return { manifest, sessions: { encoder, decoder } };
}

function describe(m) {
  const lengths = m.training_lengths;  // null for a model trained on files of pairs
  const trained = lengths ? `; trained on inputs of ${lengths[0]}-${lengths[1]} characters` : "";
  const size = m.alphabet_size ? ` (${m.alphabet_size.toLocaleString("en")} characters)` : "";
  const takes = m.input_format ? `two numbers of at most ${m.input_format.width} digits`
    : `up to ${m.max_input_bytes.toLocaleString("en")} bytes`;
  $("model-info").textContent = `task ${m.task}: ${m.task_description}. Alphabet: ` +
    `${m.alphabet}${size}${trained}; takes ${takes}. Checkpoint: ${m.checkpoint}`;
  $("task").textContent = m.task;
  $("alphabet").textContent = m.alphabet;
  const layer = $("layer");
  const head = $("head");
  layer.replaceChildren(...Array.from({ length: m.n_layers }, (_, i) => new Option(`layer ${i}`, i)));
  head.replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => new Option(
    `head ${h}` + (m.end_heads.includes(h) ? " (counts from the end)" : " (counts from the start)"), h)));
  layer.value = String(m.n_layers - 1);
  head.value = String(m.end_heads.length ? m.end_heads[0] : 0);
}

/** The cross-attention of the chosen layer and head, by output and input character. */
function matrix() {
  const layer = Number($("layer").value);
  const head = Number($("head").value);
  const S = page.src.length;
  const inputs = characters(page.src.slice(1, -1));
  const outputs = characters(page.outIds);
  const rows = outputs.map((c) => {
    const weights = page.steps[c.start].attention[layer];
    return inputs.map((x) => {
      let sum = 0;
      for (let b = 0; b < x.length; b++) sum += weights[head * S + 1 + x.start + b];
      return sum;
    });
  });
  return { inputs, outputs, rows };
}

/** A character as the picture labels it: a space, a tab or a line break as its Unicode
 * control picture (␣, ␉, ␊; DEL ␡), which a font draws, unlike the character itself; another
 * control or format character (U+0085, U+200B, U+FEFF, a bidirectional override) as ▯. */
function label(text) {
  if (text === " ") return "␣";
  const code = text.codePointAt(0);
  if (code < 0x20) return String.fromCodePoint(0x2400 + code);
  if (code === 0x7f) return "␡";
  return /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]$/u.test(text) ? "▯" : text;
}

function draw() {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  if (!page.steps.length || !page.outIds.length) {
    canvas.width = canvas.height = 0;
    return;
  }
  const { inputs, outputs, rows } = matrix();
  if (!inputs.length) {  // an empty input: no column to draw
    canvas.width = canvas.height = 0;
    return;
  }
  // cells of 1-22 pixels: a 4,096-character input still fits a canvas the browser draws
  const cell = Math.max(1, Math.min(22, Math.floor(720 / Math.max(inputs.length, outputs.length))));
  const margin = cell >= 12 ? 28 : 4;
  canvas.width = margin + cell * inputs.length;
  canvas.height = margin + cell * outputs.length;
  Object.assign(canvas.dataset, { rows: outputs.length, cols: inputs.length, cell, margin });
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  // one pixel per weight, then scaled up without smoothing: fast at any size
  const pixels = new ImageData(inputs.length, outputs.length);
  rows.forEach((row, r) => row.forEach((w, c) => {
    const v = Math.round(255 * Math.min(1, Math.max(0, w)));
    pixels.data.set([v, Math.round(v * 0.8), Math.round(90 + 0.4 * (255 - v)), 255],
                    4 * (r * inputs.length + c));
  }));
  const small = document.createElement("canvas");
  [small.width, small.height] = [inputs.length, outputs.length];
  small.getContext("2d").putImageData(pixels, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, margin, margin, cell * inputs.length, cell * outputs.length);
  if (margin > 4) {
    ctx.fillStyle = "#222";
    ctx.font = `${Math.min(14, cell - 4)}px monospace`;
    ctx.textAlign = "center";
    inputs.forEach((x, c) => ctx.fillText(label(x.text), margin + (c + 0.5) * cell, margin - 8));
    ctx.textAlign = "right";
    outputs.forEach((x, r) => ctx.fillText(label(x.text), margin - 6, margin + (r + 0.7) * cell));
  }
}

class Superseded extends Error {}

/** Decode the input box for run ``id``; a newer run stops it at its next step. */
async function decode(id) {
  const text = $("input").value;
  showError("");
  showNote("");
  setState("running");
  page.steps = [];
  page.outIds = [];
  $("output").textContent = "";
  delete $("output").dataset.ids;
  $("time").textContent = "";
  let input;  // what the model reads: the task's input format applied (add's padding)
  try {
    input = modelInput(page.manifest, text);
    page.src = encodeSource(page.manifest, input);
  } catch (e) {
    showError(e.message);
    draw();
    setState("error");
    return;
  }
  const unseen = unseenCharacters(page.manifest, input);
  showNote([
    /\p{Cs}/u.test(text) ? "Holds a lone surrogate, which is no character: the page reads " +
      "it as U+FFFD." : "",  // (a pair of surrogates is one character to a /u expression)
    // a model of pairs read from files (no training lengths) never trains on an empty input
    text === "" && page.manifest.training_lengths === null ?
      "An empty input: this model never saw an empty input in training." : "",
    unseen.length ? "Holds characters this model never saw in training: " +
      `${unseen.map((c) => JSON.stringify(c)).join(", ")}; its answer is a guess.` : "",
  ].filter(Boolean).join(" "));
  const t0 = performance.now();
  let result;
  try {
    result = await greedy(page.sessions, page.manifest, page.src, async (step) => {
      if (id !== page.runs) throw new Superseded();
      page.steps.push(step);
      page.outIds = step.ids.slice();
      $("output").textContent = shown(page.manifest, decodeBytes(page.outIds));
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page show it
    });
  } catch (e) {
    if (e instanceof Superseded) return;
    throw e;
  }
  const ms = performance.now() - t0;
  page.outIds = result.ids;
  $("output").textContent = shown(page.manifest, decodeBytes(result.ids));
  $("output").dataset.ids = result.ids.join(",");
  const tokens = result.ids.length === 1 ? "1 token" : `${result.ids.length} tokens`;
  $("time").textContent = `${tokens} in ${ms.toFixed(0)} ms` +
    (result.ended ? "" : " (the output hit its length limit before its end)") +
    (validUtf8(result.ids) ? "" : " (not valid UTF-8: shown with U+FFFD)");
  draw();
  setState("done");
}

/** Run the model on the input box, after the run in progress (if any) has stopped. */
async function run() {
  if (!page.manifest) return;
  const id = ++page.runs;
  await page.current.catch(() => {});
  if (id !== page.runs) return; // an even newer run came while this one waited
  page.current = decode(id);
  await page.current;
}

async function main() {
  // Attached first: before the model is ready (or if it fails to load) Run does nothing,
  // rather than submitting the form and reloading the page.
  $("form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  // The input is a text area, so that it takes line breaks (Shift+Enter); Enter runs.
  // (keyCode 229: the Enter that confirms an input method's candidate, in browsers that end
  // the composition before they send it.)
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      run();
    }
  });
  const params = new URLSearchParams(location.search);
  const folder = params.get("model") || "model";
  $("model-folder").value = folder;
  setState("loading");
  try {
    Object.assign(page, await loadModel(folder));
  } catch (e) {
    const dir = folder.replace(/\/+$/, "");  // the page's folders are under web/
    const hint = dir === "model" ? "python scripts/export.py --web web/model (or run make web)"
      : `python scripts/export.py --checkpoint RUN --web web/${dir}`;
    showError(`Could not load the model from ${dir}/: ${e.message}. Export one with ${hint}.`);
    setState("error");
    return;
  }
  describe(page.manifest);
  const input = $("input");
  if (page.manifest.example && input.value === input.defaultValue) {
    input.value = page.manifest.example; // an input the task takes (add's digits+digits)
  }
  $("layer").addEventListener("change", draw);
  $("head").addEventListener("change", draw);
  setState("ready");
  await run();
}

window.addEventListener("error", (e) => showError(`Error: ${e.message}`));
window.addEventListener("unhandledrejection", (e) => {
  showError(`Error: ${e.reason && e.reason.message ? e.reason.message : e.reason}`);
  setState("error");
});
main();
