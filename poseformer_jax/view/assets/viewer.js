// The pose viewer's page logic (poseformer_jax.view). Reads the JSON in #pose-data, draws
// it with three.js (the global THREE of three.min.js) and the 2D panel with a canvas.
// Coordinates arrive in viewer space: metres, x right, y up, z towards the original camera.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('pose-data').textContent);
  const $ = (id) => document.getElementById(id);
  const J = 17;

  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  const floats = (b64) => new Float32Array(bytes(b64).buffer);

  const tracks = data.tracks.map((t) => ({
    id: t.id, start: t.start, count: t.count, trail: t.trail,
    poses: floats(t.poses), kps: t.kps ? floats(t.kps) : null,
    filled: t.filled ? bytes(t.filled) : null,
  }));
  const n = data.count, fps = data.fps;
  const state = { frame: -1, pos: 0, playing: true, speed: 1, last: null, dirty: true };
  const viewer = { ready: false, firstFrameMs: null, frames: n, fps: fps };
  window.poseViewer = viewer;

  // --- 3D scene ---------------------------------------------------------------------------
  const box3d = $('view3d');
  let three = null;
  try {
    three = buildScene();
  } catch (err) {
    const msg = $('message');
    msg.hidden = false;
    msg.textContent = 'The 3D view needs WebGL, which this browser does not offer (' +
        (err && err.message ? err.message : err) + '). The 2D view and the controls work.';
  }

  function buildScene() {
    const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    box3d.prepend(renderer.domElement);
    const scene = new THREE.Scene();
    scene.background = new THREE.Color(0xffffff);
    scene.add(new THREE.AmbientLight(0xffffff, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(1, 3, 2);
    scene.add(sun);

    const sc = data.scene, c = new THREE.Vector3(...sc.centre);
    const gridSize = Math.max(2, 2 * Math.ceil(sc.radius));
    const grid = new THREE.GridHelper(gridSize, gridSize * 2, 0x9a9a9a, 0xd0d0d0);
    grid.position.set(c.x, sc.ground, c.z);
    scene.add(grid);

    const camera = new THREE.PerspectiveCamera(40, 1, 0.02, 200);
    const dist = 1.05 * sc.radius / Math.sin((40 / 2) * Math.PI / 180);
    const az = 20 * Math.PI / 180, el = 15 * Math.PI / 180;
    camera.position.set(c.x + dist * Math.sin(az) * Math.cos(el), c.y + dist * Math.sin(el),
                        c.z + dist * Math.cos(az) * Math.cos(el));
    const controls = new THREE.OrbitControls(camera, renderer.domElement);
    controls.target.copy(c);
    controls.update();
    controls.saveState();
    controls.addEventListener('change', () => { state.dirty = true; });

    const bone = new THREE.CylinderGeometry(0.022, 0.022, 1, 10, 1);
    const ball = new THREE.SphereGeometry(0.032, 12, 8);
    const skeletons = tracks.map((t) => addSkeleton(scene, t, bone, ball, sc.ground));
    return { renderer, scene, camera, controls, skeletons };
  }

  function addSkeleton(scene, t, bone, ball, ground) {
    const material = new THREE.MeshLambertMaterial({ color: 0xffffff });
    const bones = new THREE.InstancedMesh(bone, material, data.bones.length);
    const joints = new THREE.InstancedMesh(ball, material, J);
    const colour = new THREE.Color();
    data.bones.forEach((b, k) => bones.setColorAt(k, colour.set(data.boneColours[k])));
    for (let j = 0; j < J; j++) joints.setColorAt(j, colour.set(data.jointColours[j]));
    scene.add(bones, joints);
    const s = { bones, joints, trail: null, label: null };
    if (t.trail) {
      const path = new Float32Array(3 * t.count);
      for (let k = 0; k < t.count; k++) {
        path[3 * k] = t.poses[k * J * 3];
        path[3 * k + 1] = ground + 0.003;
        path[3 * k + 2] = t.poses[k * J * 3 + 2];
      }
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute('position', new THREE.BufferAttribute(path, 3));
      const faint = new THREE.LineBasicMaterial({ color: 0x7a5cc7, transparent: true, opacity: 0.3 });
      const whole = new THREE.Line(geometry, faint);
      const done = new THREE.Line(geometry.clone(), new THREE.LineBasicMaterial({ color: 0x5a3cb0 }));
      scene.add(whole, done);
      s.trail = done;
    }
    if (t.id !== null) {
      s.label = document.createElement('div');
      s.label.textContent = 'id ' + t.id;
      $('labels').append(s.label);
    }
    return s;
  }

  const m4 = () => new THREE.Matrix4();
  const tmp = three && { m: m4(), a: new THREE.Vector3(), b: new THREE.Vector3(),
    d: new THREE.Vector3(), q: new THREE.Quaternion(), s: new THREE.Vector3(),
    up: new THREE.Vector3(0, 1, 0) };

  function placeSkeleton(s, t, k) {
    const p = t.poses, o = k * J * 3;
    data.bones.forEach(([pa, ch], i) => {
      tmp.a.set(p[o + 3 * pa], p[o + 3 * pa + 1], p[o + 3 * pa + 2]);
      tmp.b.set(p[o + 3 * ch], p[o + 3 * ch + 1], p[o + 3 * ch + 2]);
      tmp.d.subVectors(tmp.b, tmp.a);
      const len = Math.max(tmp.d.length(), 1e-6);
      tmp.q.setFromUnitVectors(tmp.up, tmp.d.divideScalar(len));
      tmp.s.set(1, len, 1);
      tmp.m.compose(tmp.a.add(tmp.b).multiplyScalar(0.5), tmp.q, tmp.s);
      s.bones.setMatrixAt(i, tmp.m);
    });
    tmp.q.identity();
    tmp.s.set(1, 1, 1);
    for (let j = 0; j < J; j++) {
      tmp.a.set(p[o + 3 * j], p[o + 3 * j + 1], p[o + 3 * j + 2]);
      s.joints.setMatrixAt(j, tmp.m.compose(tmp.a, tmp.q, tmp.s));
    }
    s.bones.instanceMatrix.needsUpdate = true;
    s.joints.instanceMatrix.needsUpdate = true;
    s.bones.computeBoundingSphere();
    s.joints.computeBoundingSphere();
    if (s.trail) s.trail.geometry.setDrawRange(0, k + 1);
  }

  function placeLabels() {
    const { renderer, camera, skeletons } = three;
    const w = renderer.domElement.clientWidth, h = renderer.domElement.clientHeight;
    skeletons.forEach((s, i) => {
      if (!s.label) return;
      const t = tracks[i], k = state.frame - t.start;
      const on = k >= 0 && k < t.count;
      if (on) {
        const o = (k * J + 10) * 3;  // the head
        tmp.a.set(t.poses[o], t.poses[o + 1] + 0.15, t.poses[o + 2]).project(camera);
        s.label.style.left = ((tmp.a.x + 1) / 2 * w) + 'px';
        s.label.style.top = ((1 - tmp.a.y) / 2 * h) + 'px';
      }
      s.label.hidden = !on || tmp.a.z > 1;
    });
  }

  // --- 2D panel -----------------------------------------------------------------------------
  const canvas2d = $('view2d'), ctx = canvas2d.getContext('2d');
  const [x0, y0, x1, y1] = data.view2d;
  const images = data.video ? data.video.images.map(() => null) : [];
  canvas2d.hidden = !data.video && !tracks.some((t) => t.kps);  // nothing to show there

  function image(i) {
    if (!data.video) return null;
    const k = Math.min(images.length - 1, Math.floor(i / data.video.stride));
    if (!images[k]) {
      images[k] = new Image();
      images[k].onload = () => { if (state.frame >= 0) draw2d(); };
      images[k].src = 'data:image/jpeg;base64,' + data.video.images[k];
    }
    return images[k].complete ? images[k] : null;
  }

  function draw2d() {
    if (canvas2d.hidden) return;
    const w = canvas2d.width, h = canvas2d.height;
    const sc = Math.min(w / (x1 - x0), h / (y1 - y0));  // one scale: no distortion
    const ox = (w - sc * (x1 - x0)) / 2 - x0 * sc, oy = (h - sc * (y1 - y0)) / 2 - y0 * sc;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#ebebeb';
    ctx.fillRect(0, 0, w, h);
    const img = image(state.frame);
    if (img && img.naturalWidth) {
      ctx.drawImage(img, ox, oy, data.imageSize[0] * sc, data.imageSize[1] * sc);
    }
    const r = Math.max(3, 0.011 * w);
    ctx.lineCap = 'round';
    tracks.forEach((t) => {
      const k = state.frame - t.start;
      if (!t.kps || k < 0 || k >= t.count) return;
      const px = (j) => [ox + t.kps[(k * J + j) * 2] * sc, oy + t.kps[(k * J + j) * 2 + 1] * sc];
      ctx.lineWidth = Math.max(2.5, 0.011 * w);
      data.bones.forEach(([a, b], i) => {
        const [ax, ay] = px(a), [bx, by] = px(b);
        if (Number.isNaN(ax + ay + bx + by)) return;  // a joint never seen
        ctx.strokeStyle = data.boneColours[i];
        ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke();
      });
      ctx.lineWidth = 1.5;
      for (let j = 0; j < J; j++) {
        const [x, y] = px(j), hollow = t.filled && t.filled[k * J + j];
        if (Number.isNaN(x + y)) continue;
        ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI);
        ctx.fillStyle = hollow ? '#ffffff' : data.jointColours[j];
        ctx.strokeStyle = hollow ? data.jointColours[j] : '#ffffff';
        ctx.fill(); ctx.stroke();
      }
      if (t.id !== null) {
        const [hx, hy] = px(10);
        ctx.font = Math.round(Math.max(11, 0.03 * w)) + 'px system-ui, sans-serif';
        ctx.fillStyle = '#222';
        ctx.fillText('id ' + t.id, hx + 2 * r, hy - 2 * r);
      }
    });
  }

  // --- frames, playback, controls -----------------------------------------------------------
  const slider = $('slider'), clock = $('clock'), playButton = $('play');
  slider.max = String(n - 1);
  $('info').textContent = data.info;
  $('notes').textContent = data.notes;
  const fmt = (s) => s.toFixed(2) + ' s';

  function showFrame(i) {
    state.frame = i;
    slider.value = String(i);
    clock.textContent = 'frame ' + (data.firstFrame + i) + '  \u00b7  ' +
        fmt((data.firstFrame + i) / fps) + ' / ' + fmt((data.firstFrame + n - 1) / fps) +
        (data.fpsKnown ? '' : ' (at 25 fps: rate unknown)');
    if (three) {
      three.skeletons.forEach((s, k) => {
        const t = tracks[k], row = i - t.start, on = row >= 0 && row < t.count;
        s.bones.visible = s.joints.visible = on;
        if (s.trail) s.trail.visible = on;
        if (on) placeSkeleton(s, t, row);
      });
    }
    draw2d();
    state.dirty = true;
  }

  function setPlaying(on) {
    state.playing = on;
    state.last = null;
    playButton.textContent = on ? 'pause' : 'play';
  }

  function seek(i) {
    setPlaying(false);
    state.pos = Math.max(0, Math.min(n - 1, i));
    showFrame(state.pos);
  }

  playButton.addEventListener('click', () => setPlaying(!state.playing));
  slider.addEventListener('input', () => seek(parseInt(slider.value, 10)));
  $('speed').addEventListener('change', (e) => { state.speed = parseFloat(e.target.value); });
  $('reset').addEventListener('click', () => { if (three) three.controls.reset(); state.dirty = true; });
  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'SELECT' || e.target.tagName === 'INPUT') return;
    if (e.key === ' ') { setPlaying(!state.playing); e.preventDefault(); }
    if (e.key === 'ArrowLeft') seek(state.frame - 1);
    if (e.key === 'ArrowRight') seek(state.frame + 1);
  });

  function resize() {
    if (three) {
      const w = Math.max(1, box3d.clientWidth), h = Math.max(1, box3d.clientHeight);
      three.renderer.setSize(w, h, true);
      three.camera.aspect = w / h;
      three.camera.updateProjectionMatrix();
    }
    if (canvas2d.hidden) { state.dirty = true; return; }
    const ratio = window.devicePixelRatio || 1, cw = canvas2d.clientWidth || 240;
    const ch = Math.min(cw * (y1 - y0) / (x1 - x0), 0.7 * window.innerHeight);
    canvas2d.style.height = ch + 'px';
    canvas2d.width = Math.round(cw * ratio);
    canvas2d.height = Math.round(ch * ratio);
    if (state.frame >= 0) draw2d();
    state.dirty = true;
  }
  new ResizeObserver(resize).observe(box3d);
  window.addEventListener('resize', resize);
  resize();
  showFrame(0);

  function tick(now) {
    if (state.playing && n > 1) {
      if (state.last !== null) {
        state.pos = (state.pos + (now - state.last) / 1000 * fps * state.speed) % n;
      }
      state.last = now;
      const f = Math.floor(state.pos);
      if (f !== state.frame) showFrame(f);
    }
    if (state.dirty) {
      if (three) {
        three.renderer.render(three.scene, three.camera);
        placeLabels();
      }
      state.dirty = false;
      if (!viewer.ready) {
        viewer.firstFrameMs = performance.now();
        viewer.ready = true;
        document.body.dataset.ready = '1';
      }
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);

  // For scripts and tests: the shown frame, seeking, playback and the camera.
  Object.assign(viewer, {
    frame: () => state.frame,
    playing: () => state.playing,
    play: () => setPlaying(true),
    pause: () => setPlaying(false),
    seek: seek,
    webgl: () => three !== null,
    camera: () => {
      if (!three) return null;
      const { camera, controls, renderer } = three, rect = renderer.domElement.getBoundingClientRect();
      camera.updateMatrixWorld();
      return {
        view: camera.matrixWorldInverse.elements.slice(),
        projection: camera.projectionMatrix.elements.slice(),
        position: camera.position.toArray(), target: controls.target.toArray(),
        rect: [rect.left, rect.top, rect.width, rect.height],
      };
    },
  });
})();
