// stylegan3d viewer page: sections of linked NiiVue viewers (multiplanar + 3D render).
// Data: <script id="sg3d-data"> (volumes as base64 NIfTI, sections, slots, options).
// Status: <pre id="status"> gets JSON {state, section, option, panels: [{slot, name, mm, vox, value}]}
// once the volumes are loaded. URL hash: #section=N&option=K&mm=x,y,z
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("sg3d-data").textContent);
  const statusEl = document.getElementById("status");
  const mainEl = document.getElementById("main");
  const tabsEl = document.getElementById("tabs");
  let live = [];          // [{nv, canvas, slot, readout, cache: Map, current}]
  let current = { section: -1, option: 0 };
  let busy = Promise.resolve();

  function setStatus(obj) {
    statusEl.dataset.state = obj.state;
    statusEl.textContent = JSON.stringify(obj);
  }

  function hashParams() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if (k) out[decodeURIComponent(k)] = decodeURIComponent(v || "");
    }
    return out;
  }

  // Voxel index [i, j, k] of world point mm in the file's own voxel order (inverse of the header affine),
  // as nibabel would give it: round(inv(affine) @ [x, y, z, 1]).
  function nativeVoxel(a, mm) {
    const m = [[a[0][0], a[0][1], a[0][2]], [a[1][0], a[1][1], a[1][2]], [a[2][0], a[2][1], a[2][2]]];
    const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
      m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    const inv = [
      [m[1][1] * m[2][2] - m[1][2] * m[2][1], m[0][2] * m[2][1] - m[0][1] * m[2][2], m[0][1] * m[1][2] - m[0][2] * m[1][1]],
      [m[1][2] * m[2][0] - m[1][0] * m[2][2], m[0][0] * m[2][2] - m[0][2] * m[2][0], m[0][2] * m[1][0] - m[0][0] * m[1][2]],
      [m[1][0] * m[2][1] - m[1][1] * m[2][0], m[0][1] * m[2][0] - m[0][0] * m[2][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]],
    ];
    const d = [mm[0] - a[0][3], mm[1] - a[1][3], mm[2] - a[2][3]];
    return inv.map((row) => Math.round((row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) / det) + 0);
  }

  function fmt(x, d) { return Number(x).toFixed(d); }

  // Where the crosshair of one viewer is: world mm (RAS), voxel of its volume, value there.
  function probe(entry) {
    const nv = entry.nv;
    if (!nv.volumes.length) return null;
    const vol = nv.volumes[0];
    const mm = nv.frac2mm(nv.scene.crosshairPos, 0, true);
    const rasVox = vol.mm2vox(mm);  // NiiVue's index in its RAS-reoriented copy of the volume
    const value = vol.getValue(rasVox[0], rasVox[1], rasVox[2], vol.frame4D || 0);
    // The file's own voxel index of that same voxel: from its centre, so a crosshair exactly between two
    // voxels cannot round one way for the value and the other way for the index.
    const centre = vol.vox2mm([rasVox[0], rasVox[1], rasVox[2]], vol.matRAS);
    return {
      slot: entry.slot, name: vol.name,
      mm: [mm[0], mm[1], mm[2]].map(Number), vox: nativeVoxel(vol.hdr.affine, centre), value: Number(value),
    };
  }

  function showReadout(entry) {
    const p = probe(entry);
    if (!p) return;
    const d = DATA.volumes[entry.current];
    const inside = p.vox.every((v, i) => v >= 0 && v < d.shape[i]);
    entry.readout.textContent =
      "x " + fmt(p.mm[0], 1) + "  y " + fmt(p.mm[1], 1) + "  z " + fmt(p.mm[2], 1) + " mm (RAS)\n" +
      (inside ? "voxel [" + p.vox.join(", ") + "]  value " + fmt(p.value, 4) : "outside the volume");
  }

  function report(state, extra) {
    const panels = live.map(probe).filter(Boolean);
    setStatus(Object.assign({ state: state, section: current.section, option: current.option, panels: panels }, extra || {}));
  }

  async function image(entry, index) {
    if (!entry.cache.has(index)) {
      const d = DATA.volumes[index];
      const img = await niivue.NVImage.loadFromBase64({
        base64: d.b64, name: d.name.replace(/\.nii(\.gz)?$/i, "") + ".nii.gz", colormap: d.colormap,
        cal_min: d.cal[0], cal_max: d.cal[1], trustCalMinMax: false,
      });
      entry.cache.set(index, img);
    }
    return entry.cache.get(index);
  }

  async function setOption(k) {
    const sec = DATA.sections[current.section];
    k = Math.max(0, Math.min(sec.options.length - 1, k | 0));
    const opt = sec.options[k];
    for (let s = 0; s < live.length; s++) {
      const entry = live[s];
      const index = opt.vols[s];
      if (entry.current === index) continue;
      const img = await image(entry, index);
      const old = entry.nv.volumes.slice();
      entry.nv.addVolume(img);
      for (const v of old) entry.nv.removeVolume(v);
      entry.current = index;
      const vname = DATA.volumes[index].name;
      entry.title.textContent = vname === sec.slots[s] ? vname : sec.slots[s] + ": " + vname;
    }
    current.option = k;
    for (const b of mainEl.querySelectorAll(".ctl button")) b.classList.toggle("on", Number(b.dataset.k) === k);
    const slider = mainEl.querySelector(".ctl input[type=range]");
    if (slider) { slider.value = String(k); slider.nextSibling.textContent = " " + opt.label; }
    for (const e of live) { e.nv.drawScene(); showReadout(e); }
  }

  function dispose() {
    for (const e of live) {
      const ext = e.nv.gl && e.nv.gl.getExtension("WEBGL_lose_context");
      if (ext) ext.loseContext();
    }
    live = [];
    mainEl.textContent = "";
  }

  function control(sec) {
    const box = document.createElement("div");
    box.className = "ctl";
    const pick = (k) => { busy = busy.then(() => setOption(k)).then(() => report("loaded")); };
    if (sec.control === "slider") {
      const input = document.createElement("input");
      input.type = "range"; input.min = "0"; input.max = String(sec.options.length - 1); input.step = "1";
      input.addEventListener("input", () => pick(Number(input.value)));
      box.append(input, document.createTextNode(""));
    } else if (sec.control === "grid") {
      const table = document.createElement("table");
      sec.options.forEach((opt, k) => {
        const r = opt.row || 0, c = opt.col || 0;
        while (table.rows.length <= r) table.insertRow();
        const row = table.rows[r];
        while (row.cells.length <= c) row.insertCell();
        const b = document.createElement("button");
        b.textContent = opt.label; b.dataset.k = String(k);
        b.addEventListener("click", () => pick(k));
        row.cells[c].append(b);
      });
      box.append(table);
    }
    return box;
  }

  async function showSection(si, k, mm) {
    dispose();
    current = { section: si, option: 0 };
    for (const b of tabsEl.children) b.classList.toggle("on", Number(b.dataset.i) === si);
    const sec = DATA.sections[si];
    const h = document.createElement("h2");
    h.textContent = sec.title;
    mainEl.append(h);
    if (sec.note) {
      const p = document.createElement("p"); p.className = "note"; p.textContent = sec.note; mainEl.append(p);
    }
    if (sec.control !== "none") mainEl.append(control(sec));
    const panels = document.createElement("div");
    panels.className = "panels";
    mainEl.append(panels);
    for (let s = 0; s < sec.slots.length; s++) {
      const div = document.createElement("div"); div.className = "panel";
      const title = document.createElement("div"); title.className = "ptitle"; title.textContent = sec.slots[s];
      const box = document.createElement("div"); box.className = "cv";
      const canvas = document.createElement("canvas");
      box.append(canvas);
      const readout = document.createElement("div"); readout.className = "readout";
      div.append(title, box, readout);
      panels.append(div);
      const nv = new niivue.Niivue({
        backColor: [0, 0, 0, 1], show3Dcrosshair: true, crosshairColor: [1, 0.25, 0.25, 0.9], crosshairWidth: 0.25,
        multiplanarShowRender: niivue.SHOW_RENDER.ALWAYS, multiplanarLayout: niivue.MULTIPLANAR_TYPE.GRID,
        dragAndDropEnabled: false, isColorbar: false, loadingText: "loading...",
      });
      await nv.attachToCanvas(canvas);
      nv.setSliceType(nv.sliceTypeMultiplanar);
      const entry = { nv: nv, canvas: canvas, slot: s, title: title, readout: readout, cache: new Map(), current: -1 };
      nv.onLocationChange = () => showReadout(entry);
      live.push(entry);
    }
    await setOption(k || 0);
    for (const e of live) {
      const others = live.filter((o) => o !== e).map((o) => o.nv);
      if (others.length) e.nv.broadcastTo(others, { "2d": true, "3d": true });
    }
    if (mm) {
      for (const e of live) e.nv.scene.crosshairPos = e.nv.mm2frac(mm);
    }
    for (const e of live) { e.nv.drawScene(); showReadout(e); }
  }

  function start() {
    DATA.sections.forEach((sec, i) => {
      const b = document.createElement("button");
      b.textContent = sec.title; b.dataset.i = String(i);
      b.addEventListener("click", () => {
        busy = busy.then(() => showSection(i, 0, null)).then(() => report("loaded"), fail);
      });
      tabsEl.append(b);
    });
    if (DATA.sections.length < 2) tabsEl.style.display = "none";
    const q = hashParams();
    const si = Math.max(0, Math.min(DATA.sections.length - 1, Number(q.section || 0) | 0));
    const mm = q.mm ? q.mm.split(",").map(Number) : null;
    busy = showSection(si, Number(q.option || 0), mm && mm.length === 3 && mm.every(Number.isFinite) ? mm : null)
      .then(() => report("loaded"), fail);
  }

  function fail(err) {
    setStatus({ state: "error", error: String(err && err.stack ? err.stack : err) });
  }

  try { start(); } catch (err) { fail(err); }
})();
