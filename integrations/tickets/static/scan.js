// The gate scanner: reads ticket codes (camera, photo or typed), asks POST /v1/tickets/scan,
// and shows the answer full screen. The key lives in localStorage and goes only in the
// Authorization header. Each scan gets a fresh nonce; retrying a failed call reuses it, so
// the server answers a retry with the first answer instead of counting a second scan.
// Everything shown comes from the API and is set with textContent.
"use strict";

(function () {
  const STORE = { key: "qrsvc.gate.key", event: "qrsvc.gate.event", gate: "qrsvc.gate.name", device: "qrsvc.gate.device" };
  const RETRY_DELAYS_MS = [0, 1000, 3000]; // automatic attempts of one scan, all with the same nonce
  const SAME_CODE_PAUSE_MS = 5000; // the camera keeps seeing a ticket after its verdict
  const FRAME_INTERVAL_MS = 150;

  const $ = (id) => document.getElementById(id);
  let detector = null; // BarcodeDetector, where the browser has one
  let stream = null;
  let busy = false;
  let pending = null; // {token, nonce} of the scan whose answer we still need
  let lastCode = { token: "", at: 0 };
  let verdictTimer = null;
  const canvas = document.createElement("canvas");

  function stored(name) {
    try {
      return window.localStorage.getItem(STORE[name]) || "";
    } catch (error) {
      return "";
    }
  }

  function store(name, value) {
    if (value) {
      window.localStorage.setItem(STORE[name], value);
    } else {
      window.localStorage.removeItem(STORE[name]);
    }
  }

  // Random hex from getRandomValues: crypto.randomUUID needs a secure context, a gate may not have one.
  function randomHex(bytes) {
    const values = new Uint8Array(bytes);
    window.crypto.getRandomValues(values);
    return Array.from(values, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function deviceId() {
    let device = stored("device");
    if (!device) {
      device = "web-" + randomHex(8);
      store("device", device);
    }
    return device;
  }

  function setMessage(element, text, kind) {
    element.textContent = text || "";
    element.className = "message" + (kind ? " " + kind : "");
  }

  async function errorBody(response) {
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") {
        return body;
      }
    } catch (error) {
      // not our JSON
    }
    return { error: "http_" + response.status, message: "The server answered " + response.status + "." };
  }

  function api(path, options) {
    const key = stored("key");
    return fetch(path, Object.assign({ credentials: "omit" }, options, {
      headers: Object.assign({ Authorization: "Bearer " + key }, (options && options.headers) || {}),
    }));
  }

  // ---------------------------------------------------------------- set-up: key, event, gate

  function eventLabel(event) {
    const starts = new Date(event.starts_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    return event.name + (event.venue ? " · " + event.venue : "") + " · " + starts;
  }

  function showContext() {
    const select = $("event");
    const option = select.selectedOptions[0];
    const parts = [];
    if (option && option.value) {
      parts.push(option.dataset.name);
    }
    if ($("gate-name").value.trim()) {
      parts.push($("gate-name").value.trim());
    }
    $("context").textContent = parts.length ? parts.join(" · ") : "not set up";
    const ready = Boolean(stored("key") && select.value);
    document.body.classList.toggle("ready", ready);
    return ready;
  }

  async function loadEvents(key) {
    let response;
    try {
      response = await fetch("/v1/events", { headers: { Authorization: "Bearer " + key }, credentials: "omit" });
    } catch (error) {
      setMessage($("setup-message"), "The event list could not be fetched: " + error.message, "bad");
      return false;
    }
    if (!response.ok) {
      setMessage($("setup-message"), (await errorBody(response)).message, "bad");
      return false;
    }
    const body = await response.json();
    const select = $("event");
    const options = body.events.map((event) => {
      const option = document.createElement("option");
      option.value = event.id;
      option.textContent = eventLabel(event);
      option.dataset.name = event.name;
      return option;
    });
    if (!options.length) {
      const none = document.createElement("option");
      none.value = "";
      none.textContent = "No events open for scanning";
      options.push(none);
    }
    select.replaceChildren(...options);
    select.disabled = !body.events.length;
    const remembered = stored("event");
    if (body.events.some((event) => event.id === remembered)) {
      select.value = remembered;
    }
    store("event", select.value);
    setMessage($("setup-message"), body.events.length ? "" : "This key sees no event that is open for scanning.", "");
    return true;
  }

  function showKeyState() {
    const key = stored("key");
    $("key-form").hidden = Boolean(key);
    $("key-status").hidden = !key;
    $("key-summary").textContent = key ? "Key " + key.split("_").slice(0, 2).join("_") + "… in use" : "";
  }

  async function useKey() {
    const key = $("gate-key").value.trim();
    if (!key) {
      setMessage($("setup-message"), "Paste the gate key first.", "bad");
      return;
    }
    if (await loadEvents(key)) {
      store("key", key);
      $("gate-key").value = "";
      showKeyState();
      showContext();
    }
  }

  function forgetKey() {
    store("key", "");
    store("event", "");
    const select = $("event");
    const placeholder = document.createElement("option");
    placeholder.value = "";
    placeholder.textContent = "Use a key to list events";
    select.replaceChildren(placeholder);
    select.disabled = true;
    showKeyState();
    showContext();
  }

  // ---------------------------------------------------------------- the verdict

  function headline(result) {
    return result === "admitted" ? "ADMIT" : result.replace(/_/g, " ").toUpperCase();
  }

  function when(iso) {
    return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
  }

  function showVerdict(admit, result, who, detail) {
    const verdict = $("verdict");
    $("verdict-headline").textContent = headline(result);
    $("verdict-who").textContent = who || "";
    $("verdict-detail").textContent = detail || "";
    verdict.className = "verdict " + (admit ? "admit" : "refuse");
    verdict.dataset.result = result;
    verdict.hidden = false;
    window.clearTimeout(verdictTimer);
    verdictTimer = window.setTimeout(hideVerdict, admit ? 2500 : 6000);
  }

  function hideVerdict() {
    window.clearTimeout(verdictTimer);
    $("verdict").hidden = true;
  }

  function showAnswer(answer) {
    const ticket = answer.ticket;
    let who = "";
    if (ticket) {
      who = ticket.holder_name;
      if (ticket.seat) {
        who += " · seat " + ticket.seat;
      }
      if (ticket.tier) {
        who += " · " + ticket.tier;
      }
    }
    let detail = "";
    if (answer.result === "already_used" && answer.first_used_at) {
      detail = "First used " + when(answer.first_used_at) + (answer.first_gate ? " at " + answer.first_gate : "");
    } else if (answer.result === "wrong_event" && ticket) {
      const option = Array.from($("event").options).find((o) => o.value === ticket.event_id);
      detail = "This ticket is for " + (option ? option.dataset.name : "event " + ticket.event_id);
    }
    showVerdict(answer.admit, answer.result, who, detail);
  }

  // ---------------------------------------------------------------- asking the server

  function sleep(ms) {
    return new Promise((resolve) => window.setTimeout(resolve, ms));
  }

  function scanBody(scan) {
    const body = { token: scan.token, nonce: scan.nonce, device: deviceId(), direction: "entry" };
    if ($("event").value) {
      body.event_id = $("event").value;
    }
    if ($("gate-name").value.trim()) {
      body.gate = $("gate-name").value.trim();
    }
    return body;
  }

  // One scan, tried until the server decides; every attempt carries the scan's own nonce.
  async function send(scan) {
    busy = true;
    $("retry").hidden = true;
    let failure = "";
    for (const delay of RETRY_DELAYS_MS) {
      if (delay) {
        setMessage($("status"), failure + " Trying again…", "warn");
        await sleep(delay);
      }
      let response;
      try {
        response = await api("/v1/tickets/scan", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(scanBody(scan)),
        });
      } catch (error) {
        failure = "No answer from the server.";
        continue;
      }
      if (response.status >= 500 || response.status === 429) {
        failure = (await errorBody(response)).message;
        continue;
      }
      pending = null;
      busy = false;
      setMessage($("status"), "", "");
      if (response.ok) {
        showAnswer(await response.json());
      } else {
        const error = await errorBody(response);
        showVerdict(false, error.error, "", error.message);
      }
      return;
    }
    busy = false;
    setMessage($("status"), failure + " The scan is kept: Retry sends it again.", "bad");
    $("retry").hidden = false;
  }

  function submitToken(token) {
    token = token.trim();
    if (!token || busy) {
      return;
    }
    if (!showContext()) {
      setMessage($("status"), "Set up the gate first: a gate key and an event.", "bad");
      $("setup").hidden = false;
      return;
    }
    lastCode = { token: token, at: Date.now() };
    pending = { token: token, nonce: randomHex(16) };
    send(pending);
  }

  // ---------------------------------------------------------------- reading codes

  async function makeDetector() {
    if (!("BarcodeDetector" in window)) {
      return null;
    }
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      return formats.includes("qr_code") ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    } catch (error) {
      return null;
    }
  }

  // The text of the first QR code in `source` (a video, image or bitmap), or "".
  async function readCode(source, width, height, thorough) {
    if (detector) {
      try {
        const found = await detector.detect(source);
        if (found.length) {
          return found[0].rawValue;
        }
        if (!thorough) {
          return "";
        }
      } catch (error) {
        // fall through to jsQR
      }
    }
    if (typeof window.jsQR !== "function") {
      return "";
    }
    const scale = Math.min(1, 1280 / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const code = window.jsQR(pixels.data, pixels.width, pixels.height, {
      inversionAttempts: thorough ? "attemptBoth" : "dontInvert",
    });
    return code ? code.data : "";
  }

  async function watchCamera() {
    const video = $("camera");
    while (stream) {
      if (!busy && $("verdict").hidden && video.readyState >= 2) {
        const token = await readCode(video, video.videoWidth, video.videoHeight, false);
        const repeat = token === lastCode.token && Date.now() - lastCode.at < SAME_CODE_PAUSE_MS;
        if (token && !repeat) {
          submitToken(token);
        } else if (token) {
          lastCode.at = Date.now();
        }
      }
      await sleep(FRAME_INTERVAL_MS);
    }
  }

  async function startCamera() {
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
      $("camera").srcObject = null;
      $("start-camera").textContent = "Start camera";
      $("camera-state").textContent = "Camera off";
      $("camera-state").hidden = false;
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      $("camera-state").textContent = "No camera here (it needs HTTPS or localhost): use a photo or type the code.";
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      $("camera-state").textContent = "The camera could not start: " + error.message;
      return;
    }
    const video = $("camera");
    video.srcObject = stream;
    await video.play();
    $("camera-state").hidden = true;
    $("start-camera").textContent = "Stop camera";
    watchCamera();
  }

  async function readPhoto(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (error) {
      setMessage($("status"), "That file is not an image this browser can read.", "bad");
      return;
    }
    const token = await readCode(bitmap, bitmap.width, bitmap.height, true);
    bitmap.close();
    if (!token) {
      setMessage($("status"), "No QR code found in that photo.", "bad");
      return;
    }
    submitToken(token);
  }

  // ---------------------------------------------------------------- wiring

  $("save-key").addEventListener("click", useKey);
  $("gate-key").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      useKey();
    }
  });
  $("forget-key").addEventListener("click", forgetKey);
  $("event").addEventListener("change", () => {
    store("event", $("event").value);
    showContext();
  });
  $("gate-name").addEventListener("input", () => {
    store("gate", $("gate-name").value.trim());
    showContext();
  });
  $("toggle-setup").addEventListener("click", () => {
    $("setup").hidden = !$("setup").hidden;
  });
  $("done").addEventListener("click", () => {
    if (showContext()) {
      $("setup").hidden = true;
      setMessage($("setup-message"), "", "");
    } else {
      setMessage($("setup-message"), "A gate key and an event are needed first.", "bad");
    }
  });
  $("start-camera").addEventListener("click", startCamera);
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    $("photo").value = ""; // the same photo may be chosen again
    if (file) {
      readPhoto(file);
    }
  });
  $("manual").addEventListener("submit", (event) => {
    event.preventDefault();
    submitToken($("token").value);
    $("token").value = "";
  });
  $("retry").addEventListener("click", () => {
    if (pending && !busy) {
      send(pending);
    }
  });
  $("verdict").addEventListener("click", hideVerdict);

  $("gate-name").value = stored("gate");
  showKeyState();
  makeDetector().then((found) => {
    detector = found;
  });
  if (stored("key")) {
    loadEvents(stored("key")).then(() => {
      if (showContext()) {
        $("setup").hidden = true;
      }
    });
  } else {
    showContext();
  }
})();
