// iseg-bench demo page: plain JavaScript, no framework, no network beyond this server.
// The server owns the model and the recording; this page keeps each image's clicks and
// masks (as run lengths) so that going back to an image shows it as it was left.
"use strict";

(() => {
  const OBJECT_RGB = [30, 144, 255];
  const POSITIVE_COLOR = "#16a34a";
  const NEGATIVE_COLOR = "#dc2626";
  const CURVE_W = 260;
  const CURVE_H = 180;

  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const overlay = document.createElement("canvas");
  const octx = overlay.getContext("2d");

  const state = {
    info: null,
    item: 0,
    instance: 0,
    entry: null, // GET api/items/{item}
    image: null,
    views: new Map(), // "item/instance" -> clicks, masks, IoUs, latencies, timing
    negative: false,
    opacity: 0.5,
    hidden: false,
    busy: false,
    loadToken: 0,
  };

  // ---- server -----------------------------------------------------------------------------

  async function api(path, body) {
    const options =
      body === undefined
        ? {}
        : {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(body),
          };
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return data;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`the image ${url} did not load`));
      img.src = url;
    });
  }

  // ---- state helpers ----------------------------------------------------------------------

  function viewKey() {
    return `${state.item}/${state.instance}`;
  }

  function view() {
    const key = viewKey();
    let v = state.views.get(key);
    if (!v) {
      v = { clicks: [], counts: [], ious: [], latencies: [], shownAt: null, lastAt: null };
      state.views.set(key, v);
    }
    return v;
  }

  function currentInstance() {
    return state.entry ? state.entry.instances[state.instance] : null;
  }

  function instanceBody() {
    return {
      item: state.item,
      instance: state.instance,
      sample_id: currentInstance().sample_id,
    };
  }

  function setBusy(busy) {
    state.busy = busy;
    document.body.classList.toggle("busy", busy);
    document.body.dataset.busy = busy ? "1" : "0";
    updateButtons();
  }

  function showStatus(message, isError) {
    const el = $("status");
    el.textContent = message || "";
    el.classList.toggle("error", Boolean(isError));
  }

  // ---- drawing ----------------------------------------------------------------------------

  function rebuildOverlay() {
    const v = view();
    octx.clearRect(0, 0, overlay.width, overlay.height);
    if (!v.counts.length) return;
    const counts = v.counts[v.counts.length - 1];
    const img = octx.createImageData(overlay.width, overlay.height);
    const data = img.data;
    let pos = 0;
    let inside = false;
    for (const run of counts) {
      if (inside) {
        for (let i = pos * 4, end = (pos + run) * 4; i < end; i += 4) {
          data[i] = OBJECT_RGB[0];
          data[i + 1] = OBJECT_RGB[1];
          data[i + 2] = OBJECT_RGB[2];
          data[i + 3] = 255;
        }
      }
      pos += run;
      inside = !inside;
    }
    octx.putImageData(img, 0, 0);
  }

  function fit() {
    if (!state.image) return;
    const stage = $("stage");
    const width = Math.max(stage.clientWidth - 16, 50);
    const height = Math.max(stage.clientHeight - 16, 50);
    const scale = Math.min(width / canvas.width, height / canvas.height);
    canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
    canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
  }

  function draw() {
    if (!state.image) return;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(state.image, 0, 0);
    if (!state.hidden && state.opacity > 0) {
      ctx.globalAlpha = state.opacity;
      ctx.drawImage(overlay, 0, 0);
      ctx.globalAlpha = 1;
    }
    const shown = canvas.getBoundingClientRect().width || canvas.width;
    const pixelsPerCss = canvas.width / shown;
    const radius = 5 * pixelsPerCss;
    for (const click of view().clicks) {
      ctx.beginPath();
      ctx.arc(click.x + 0.5, click.y + 0.5, radius, 0, 2 * Math.PI);
      ctx.fillStyle = click.positive ? POSITIVE_COLOR : NEGATIVE_COLOR;
      ctx.fill();
      ctx.lineWidth = 1.5 * pixelsPerCss;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
  }

  function drawCurve() {
    const c = $("curve");
    const dpr = window.devicePixelRatio || 1;
    c.width = CURVE_W * dpr;
    c.height = CURVE_H * dpr;
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, CURVE_W, CURVE_H);
    const left = 34;
    const right = 8;
    const top = 8;
    const bottom = 22;
    const w = CURVE_W - left - right;
    const h = CURVE_H - top - bottom;
    const ious = view().ious;
    const n = Math.max(20, ious.length);
    const xOf = (k) => left + ((k - 1) / (n - 1)) * w;
    const yOf = (v) => top + (1 - v) * h;
    g.font = "10px system-ui, sans-serif";
    g.fillStyle = "#5b6477";
    g.strokeStyle = "#d5d9e2";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    // The NoC thresholds 0.85 and 0.9 dashed; 0.85 unlabelled (too close to 0.9 to read).
    for (const v of [0, 0.5, 0.85, 0.9, 1]) {
      g.setLineDash(v === 0.85 || v === 0.9 ? [3, 3] : []);
      g.beginPath();
      g.moveTo(left, yOf(v));
      g.lineTo(left + w, yOf(v));
      g.stroke();
      if (v !== 0.85) g.fillText(String(v), left - 4, yOf(v));
    }
    g.setLineDash([]);
    g.textAlign = "center";
    g.textBaseline = "top";
    const step = n <= 20 ? 5 : Math.ceil(n / 4 / 5) * 5;
    for (let k = 1; k <= n; k += k === 1 ? step - 1 : step) {
      g.fillText(String(k), xOf(k), top + h + 4);
    }
    g.strokeStyle = "#9aa3b5";
    g.strokeRect(left, top, w, h);
    if (!state.entry || !state.entry.has_gt) {
      g.fillText("no ground truth", left + w / 2, top + h / 2 - 6);
      return;
    }
    g.strokeStyle = "#1f5fbf";
    g.fillStyle = "#1f5fbf";
    g.lineWidth = 2;
    g.beginPath();
    let started = false;
    ious.forEach((v, i) => {
      if (v === null) return;
      if (started) g.lineTo(xOf(i + 1), yOf(v));
      else g.moveTo(xOf(i + 1), yOf(v));
      started = true;
    });
    g.stroke();
    ious.forEach((v, i) => {
      if (v === null) return;
      g.beginPath();
      g.arc(xOf(i + 1), yOf(v), 2.5, 0, 2 * Math.PI);
      g.fill();
    });
  }

  function updateButtons() {
    const v = state.image ? view() : { clicks: [] };
    const count = state.info ? state.info.entries : 0;
    const lastInstance = state.entry ? state.entry.instances.length - 1 : 0;
    $("undo").disabled = state.busy || !v.clicks.length;
    $("reset").disabled = state.busy || !v.clicks.length;
    $("prev").disabled = state.busy || (state.item === 0 && state.instance === 0);
    $("next").disabled =
      state.busy || (state.item >= count - 1 && state.instance >= lastInstance);
  }

  function updatePanel() {
    const v = view();
    const n = v.clicks.length;
    document.body.dataset.clicks = String(n);
    $("clicks").textContent = String(n);
    const iouEl = $("iou");
    const iou = n ? v.ious[n - 1] : null;
    if (!state.entry || !state.entry.has_gt) {
      iouEl.textContent = "no ground truth";
      iouEl.dataset.iou = "";
    } else if (iou === null || iou === undefined) {
      iouEl.textContent = "\u2013";
      iouEl.dataset.iou = "";
    } else {
      iouEl.textContent = iou.toFixed(4);
      iouEl.dataset.iou = String(iou);
    }
    $("latency").textContent = n ? `${(v.latencies[n - 1] * 1000).toFixed(0)} ms` : "\u2013";
    const inst = currentInstance();
    if (inst) {
      $("sample").textContent = `${state.entry.dataset} / ${inst.sample_id}  (${inst.width}\u00d7${inst.height})`;
      const count = state.info.entries;
      const of = state.entry.instances.length > 1 ? ` #${state.instance + 1}` : "";
      $("position").textContent = `${state.item + 1}${of} / ${count}`;
    }
    drawCurve();
    updateButtons();
  }

  // ---- actions ----------------------------------------------------------------------------

  async function showInstance(item, instance) {
    const token = ++state.loadToken;
    document.body.dataset.ready = "0";
    setBusy(true);
    showStatus("loading\u2026");
    try {
      if (!state.entry || state.entry.item !== item) {
        state.entry = null;
        state.entry = await api(`api/items/${item}`);
      }
      if (token !== state.loadToken) return;
      const index = instance < 0 ? state.entry.instances.length - 1 : instance;
      const img = await loadImage(`api/items/${item}/${index}/image`);
      if (token !== state.loadToken) return;
      state.item = item;
      state.instance = index;
      state.image = img;
      canvas.width = overlay.width = img.naturalWidth;
      canvas.height = overlay.height = img.naturalHeight;
      // dt_s counts from the last action on this image or from when it was (re)shown.
      const v = view();
      v.shownAt = performance.now();
      v.lastAt = null;
      rebuildOverlay();
      fit();
      draw();
      updatePanel();
      showStatus("");
      document.body.dataset.ready = "1";
    } catch (err) {
      if (token === state.loadToken) {
        state.item = item;
        state.instance = 0;
        showStatus(err.message, true);
      }
    } finally {
      if (token === state.loadToken) setBusy(false);
    }
  }

  async function addClick(click) {
    const v = view();
    const now = performance.now();
    const since = v.lastAt !== null ? v.lastAt : v.shownAt;
    const dt = since === null ? null : Math.round(now - since) / 1000;
    const key = viewKey();
    setBusy(true);
    showStatus("");
    try {
      const r = await api("api/predict", {
        ...instanceBody(),
        clicks: [...v.clicks, click],
        dt_s: dt,
      });
      v.clicks.push(click);
      v.counts.push(r.mask.counts);
      v.ious.push(r.iou);
      v.latencies.push(r.model_s);
      v.lastAt = now;
      if (key === viewKey()) {
        rebuildOverlay();
        draw();
        updatePanel();
      }
    } catch (err) {
      showStatus(err.message, true);
    } finally {
      setBusy(false);
    }
  }

  async function cut(event, left) {
    const v = view();
    if (state.busy || !state.image || !v.clicks.length) return;
    setBusy(true);
    showStatus("");
    try {
      await api("api/event", { ...instanceBody(), event, n_clicks: left });
      for (const list of [v.clicks, v.counts, v.ious, v.latencies]) list.length = left;
      v.lastAt = performance.now();
      rebuildOverlay();
      draw();
      updatePanel();
    } catch (err) {
      showStatus(err.message, true);
    } finally {
      setBusy(false);
    }
  }

  const undo = () => cut("undo", Math.max(view().clicks.length - 1, 0));
  const reset = () => cut("reset", 0);

  function next() {
    if (state.busy || !state.info) return;
    const instances = state.entry ? state.entry.instances.length : 0;
    if (state.instance + 1 < instances) {
      showInstance(state.item, state.instance + 1);
    } else if (state.item + 1 < state.info.entries) {
      showInstance(state.item + 1, 0);
    }
  }

  function previous() {
    if (state.busy) return;
    if (state.entry && state.instance > 0) showInstance(state.item, state.instance - 1);
    else if (state.item > 0) showInstance(state.item - 1, -1);
  }

  function setNegative(negative) {
    state.negative = negative;
    const button = $("mode");
    button.setAttribute("aria-pressed", negative ? "true" : "false");
    button.innerHTML = `Left click: <b>${negative ? "background" : "object"}</b>`;
  }

  function setOpacity(value) {
    state.opacity = Math.min(1, Math.max(0, Math.round(value * 20) / 20));
    $("opacity").value = String(state.opacity);
    $("opacity-value").textContent = `${Math.round(state.opacity * 100)}%`;
    draw();
  }

  // ---- events -----------------------------------------------------------------------------

  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 && e.button !== 2) return;
    e.preventDefault();
    if (state.busy || !state.image || document.body.dataset.ready !== "1") return;
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor(((e.clientX - rect.left) * canvas.width) / rect.width);
    const y = Math.floor(((e.clientY - rect.top) * canvas.height) / rect.height);
    if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
    addClick({ y, x, positive: e.button === 2 ? false : !state.negative });
  });

  $("undo").addEventListener("click", undo);
  $("reset").addEventListener("click", reset);
  $("next").addEventListener("click", next);
  $("prev").addEventListener("click", previous);
  $("mode").addEventListener("click", () => setNegative(!state.negative));
  $("opacity").addEventListener("input", (e) => setOpacity(Number(e.target.value)));
  window.addEventListener("resize", () => {
    fit();
    draw();
  });

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.metaKey) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (e.ctrlKey && key !== "z") return; // leave the browser's own shortcuts alone
    if (e.target instanceof HTMLInputElement && key.startsWith("Arrow")) return;
    const actions = {
      z: undo,
      Backspace: undo,
      r: reset,
      n: next,
      ArrowRight: next,
      p: previous,
      ArrowLeft: previous,
      t: () => setNegative(!state.negative),
      "[": () => setOpacity(state.opacity - 0.1),
      "]": () => setOpacity(state.opacity + 0.1),
      m: () => {
        state.hidden = !state.hidden;
        draw();
      },
    };
    const action = actions[key];
    if (!action) return;
    e.preventDefault();
    action();
  });

  async function main() {
    setOpacity(state.opacity);
    try {
      state.info = await api("api/info");
    } catch (err) {
      showStatus(`the server did not answer: ${err.message}`, true);
      return;
    }
    $("model").textContent = `model: ${state.info.model}`;
    $("recording").textContent = state.info.recording
      ? `\u25cf recording to ${state.info.recording}`
      : "not recording";
    await showInstance(0, 0);
  }

  main();
})();
