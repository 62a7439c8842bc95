// The model's arithmetic outside the graphs, exactly as the Python package does it:
// the byte tokenizer, the character positions of cached decoding, the task formats,
// and the greedy loop over the exported encoder and decoder-step graphs.

/** Bytes of the character that an id starts (positions.utf8_length): 1 for ASCII, special ids
 * and bytes never valid in UTF-8, 2-4 for lead bytes, 0 for continuation bytes. */
export function utf8Length(id) {
  if (id < 0x80) return 1;
  if (id < 0xc0) return 0;
  if (id < 0xe0) return 2;
  if (id < 0xf0) return 3;
  if (id < 0xf8) return 4;
  return 1;
}

/** Where cached decoding stands (positions.CharState): the character index and byte offset of
 * the last token fed, and the bytes its character still expects. After BOS: character 0. */
export function startState() {
  return { char: 0, offset: 0, remaining: 0 };
}

/** The state after feeding one more token (CharState.advance). */
export function advance(state, token) {
  const length = utf8Length(token);
  if (length === 0 && state.remaining > 0) {
    return { char: state.char, offset: state.offset + 1, remaining: state.remaining - 1 };
  }
  return { char: state.char + 1, offset: 0, remaining: Math.max(length - 1, 0) };
}

/** Character index and byte offset of the token the next step predicts (CharState.predicted). */
export function predicted(state) {
  return state.remaining > 0 ? [state.char, state.offset + 1] : [state.char + 1, 0];
}

/** add's input format (arithmetic.pad_numbers): "95+7", "95 + 7" -> "00095+00007" (width 5). */
export function padNumbers(text, width) {
  const parts = text.split("+").map((p) => p.replace(/^ +| +$/g, ""));
  const digits = /^[0-9]+$/;
  if (parts.length !== 2 || !digits.test(parts[0]) || !digits.test(parts[1])) {
    throw new Error(`task add: expected digits+digits, got ${JSON.stringify(text)}`);
  }
  const [a, b] = parts.map((p) => p.replace(/^0+/, ""));
  if (Math.max(a.length, b.length) > width) {
    throw new Error(`task add: this model adds numbers of at most ${width} digits`);
  }
  return `${a.padStart(width, "0")}+${b.padStart(width, "0")}`;
}

/** add's output format (tasks.strip_zeros): "000102" -> "102". */
export function stripZeros(answer) {
  return /^[0-9]+$/.test(answer) ? answer.replace(/^0+/, "") || "0" : answer;
}

/** The text the model reads for what a user typed (the task's input format applied). */
export function modelInput(manifest, text) {
  const format = manifest.input_format;
  return format && format.kind === "add" ? padNumbers(text, format.width) : text;
}

/** The answer shown for the model's output (the task's output format applied). */
export function shown(manifest, output) {
  return manifest.output_format === "strip_zeros" ? stripZeros(output) : output;
}

/** Source ids BOS x EOS of a text; an error if it is longer than the model takes. */
export function encodeSource(manifest, text) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > manifest.max_input_bytes) {
    throw new Error(`input too long: ${bytes.length} bytes, this model supports at most ` +
      `${manifest.max_input_bytes}`);
  }
  const ids = manifest.special_ids;
  return [ids.bos, ...bytes, ids.eos];
}

/** The characters of ``text`` (each once, in order) holding a byte no training input held, as
 * tasks.unseen_characters finds them; none if model.json does not say which bytes it saw. */
export function unseenCharacters(manifest, text) {
  if (!Array.isArray(manifest.seen_bytes)) return [];
  const seen = new Set(manifest.seen_bytes);
  const encoder = new TextEncoder();
  return [...new Set(text)].filter((c) => !encoder.encode(c).every((b) => seen.has(b)));
}

/** Whether output bytes are valid UTF-8 (else they are shown with U+FFFD). */
export function validUtf8(ids) {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(ids.filter((id) => id < 256)));
    return true;
  } catch {
    return false;
  }
}

/** Output bytes as text: invalid UTF-8 shown with U+FFFD. */
export function decodeBytes(ids) {
  // ignoreBOM: a leading U+FEFF is part of the answer, as Python's decode keeps it
  return new TextDecoder("utf-8", { ignoreBOM: true })
    .decode(Uint8Array.from(ids.filter((id) => id < 256)));
}

function int64(values, dims) {
  return new globalThis.ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), dims);
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Greedy decoding with the KV cache, one step per call of the decoder-step graph, as
 * onnx_decoding.onnx_greedy does for one row. Calls onStep({ids, attention}) after every step;
 * attention[layer] is a Float32Array (n_heads x S) of that step. Returns the ids before EOS. */
export async function greedy(sessions, manifest, src, onStep) {
  const { n_layers: n, n_heads: nh, head_size: hs } = manifest;
  const S = src.length;
  const room = Math.min(manifest.output_room.per_token * S + manifest.output_room.plus,
    manifest.max_positions - 1);
  const memory = await sessions.encoder.run({ src: int64(src, [1, S]) });
  let past = {};
  for (let i = 0; i < n; i++) {
    for (const kv of ["k", "v"]) {
      past[`past_${kv}_${i}`] = new globalThis.ort.Tensor("float32", new Float32Array(0),
        [1, nh, 0, hs]);
    }
  }
  const ids = [];
  let state = startState();
  let token = manifest.special_ids.bos;
  for (let step = 0; step < room; step++) {
    const [char, offset] = predicted(state);
    const feed = { token: int64([token], [1, 1]), char: int64([char], [1, 1]),
      offset: int64([offset], [1, 1]), src_mask: memory.src_mask, ...past };
    for (let i = 0; i < n; i++) {
      feed[`cross_k_${i}`] = memory[`cross_k_${i}`];
      feed[`cross_v_${i}`] = memory[`cross_v_${i}`];
    }
    const out = await sessions.decoder.run(feed);
    const next = argmax(out.logits.data);
    past = {};
    for (let i = 0; i < n; i++) {
      past[`past_k_${i}`] = out[`present_k_${i}`];
      past[`past_v_${i}`] = out[`present_v_${i}`];
    }
    const attention = Array.from({ length: n }, (_, i) => out[`attn_${i}`].data);
    if (next === manifest.special_ids.eos) {
      await onStep({ ids, attention, ended: true });
      return { ids, ended: true };
    }
    ids.push(next);
    await onStep({ ids, attention, ended: false });
    state = advance(state, next);
    token = next;
  }
  return { ids, ended: false };
}

/** Characters of a byte sequence: [{text, start, length}] with start/length in bytes. */
export function characters(bytes) {
  const out = [];
  let i = 0;
  while (i < bytes.length) {
    const size = Math.max(1, utf8Length(bytes[i]));
    const length = Math.min(size, bytes.length - i);
    out.push({ text: decodeBytes(bytes.slice(i, i + length)), start: i, length });
    i += length;
  }
  return out;
}
