// The generator page: a live preview from /v1/qr/preview (no key, nothing stored), downloads in
// every format, and with a key (kept in localStorage, sent only as Authorization: Bearer)
// stored codes from POST /v1/qr/generate and the history from GET /v1/qr.
// Text from the API is only ever set with textContent.
"use strict";

(function () {
  const KEY_STORE = "qrsvc.apiKey";
  const PREVIEW_MAX_SIZE = 1024; // the preview is shown at 320 px; downloads get the size asked
  const DEBOUNCE_MS = 250;
  const MAX_URL = 4000; // servers refuse longer request lines (gunicorn: 4094 bytes)

  const $ = (id) => document.getElementById(id);
  const shownFormats = document.body.dataset.shownFormats.split(" ");
  const fields = ["data", "format", "size", "error_correction", "foreground", "background", "quiet_zone"];

  let previewUrl = null;
  let previewAbort = null;
  let previewTimer = null;
  let optionsOk = false;

  function storedKey() {
    try {
      return window.localStorage.getItem(KEY_STORE) || "";
    } catch (error) {
      return "";
    }
  }

  function authHeaders(key) {
    return { Authorization: "Bearer " + key };
  }

  // The form as API options; `size` may be replaced (the preview draws at most 1024 px).
  function currentOptions() {
    const options = {};
    for (const name of fields) {
      options[name] = $(name).value;
    }
    if ($("transparent").checked) {
      options.background = "transparent";
    }
    if ($("allow_low_contrast").checked) {
      options.allow_low_contrast = "true";
    }
    return options;
  }

  function setMessage(element, text, kind) {
    element.textContent = text || "";
    element.className = "message" + (kind ? " " + kind : "");
  }

  // The §4 error body's sentence, or a plain description when the answer is not ours.
  async function errorMessage(response) {
    let text = "The server answered " + response.status + ".";
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") {
        text = body.message;
      }
    } catch (error) {
      // not JSON: keep the status line
    }
    if (response.status === 429 && response.headers.get("Retry-After")) {
      text += " (try again in " + response.headers.get("Retry-After") + " s)";
    }
    return text;
  }

  function verdictFor(ratio, allowLow) {
    const shown = ratio.toFixed(1) + ":1";
    if (ratio >= 7) {
      return ["Contrast " + shown + " — excellent: scanners read this reliably.", "good"];
    }
    if (ratio >= 4.5) {
      return ["Contrast " + shown + " — good: scanners read this.", "good"];
    }
    if (ratio >= 3) {
      return ["Contrast " + shown + " — enough, but darker modules scan more reliably.", "warn"];
    }
    return [
      "Contrast " + shown + " — below 3:1; many scanners will fail" + (allowLow ? " (drawn because you asked)." : "."),
      "bad",
    ];
  }

  function setDownloadsEnabled(enabled) {
    for (const button of document.querySelectorAll("button.download")) {
      button.disabled = !enabled;
    }
  }

  function schedulePreview() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(updatePreview, DEBOUNCE_MS);
  }

  async function updatePreview() {
    const options = currentOptions();
    const verdict = $("verdict");
    if (options.data === "") {
      optionsOk = false;
      setDownloadsEnabled(false);
      $("preview").classList.add("stale");
      setMessage(verdict, "Type something to encode.", "");
      verdict.className = "verdict";
      return;
    }
    const shownFormat = shownFormats.includes(options.format) ? options.format : "png";
    const size = Number(options.size);
    let note = shownFormat === options.format ? "" : "Preview shown as PNG; downloads are " + options.format.toUpperCase() + ".";
    if (Number.isInteger(size) && size > PREVIEW_MAX_SIZE && size <= Number($("size").max)) {
      options.size = String(PREVIEW_MAX_SIZE);
      note = (note ? note + " " : "") + "Preview drawn at " + PREVIEW_MAX_SIZE + " px; downloads at " + size + " px.";
    }
    options.format = shownFormat;
    const address = "/v1/qr/preview?" + new URLSearchParams(options);
    if (address.length > MAX_URL) {
      // The keyless preview travels in the address; a key's POST carries any length.
      optionsOk = Boolean(storedKey());
      setDownloadsEnabled(optionsOk);
      $("preview").classList.add("stale");
      verdict.textContent =
        "Too long to preview without a key (" + options.data.length + " characters)." +
        (optionsOk ? " Downloads are drawn with your key." : " Use an API key to draw it.");
      verdict.className = "verdict warn";
      verdict.dataset.state = "too-long";
      return;
    }
    if (previewAbort) {
      previewAbort.abort();
    }
    previewAbort = new AbortController();
    const mine = previewAbort; // a newer preview replaces this one; its late answers are dropped
    let response;
    try {
      response = await fetch(address, {
        signal: previewAbort.signal,
        credentials: "omit",
      });
    } catch (error) {
      if (error.name === "AbortError") {
        return;
      }
      optionsOk = false;
      setDownloadsEnabled(false);
      verdict.textContent = "The preview could not be fetched: " + error.message;
      verdict.className = "verdict bad";
      return;
    }
    if (!response.ok) {
      const message = await errorMessage(response);
      if (mine !== previewAbort) {
        return;
      }
      optionsOk = false;
      setDownloadsEnabled(false);
      $("preview").classList.add("stale");
      verdict.textContent = "Refused: " + message;
      verdict.className = "verdict bad";
      verdict.dataset.state = "refused";
      return;
    }
    let blob;
    try {
      blob = await response.blob();
    } catch (error) {
      return; // aborted by a newer preview while the body was still arriving
    }
    if (mine !== previewAbort) {
      return;
    }
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
    }
    previewUrl = URL.createObjectURL(blob);
    const image = $("preview");
    image.src = previewUrl;
    image.classList.remove("stale");
    image.dataset.drawn = options.data; // which text the picture holds (tests wait on it)
    $("preview-note").textContent = note;
    const [text, kind] = verdictFor(Number(response.headers.get("X-QR-Contrast")), $("allow_low_contrast").checked);
    verdict.textContent = text;
    verdict.className = "verdict " + kind;
    verdict.dataset.state = "ready";
    optionsOk = true;
    setDownloadsEnabled(true);
  }

  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function download(button) {
    const format = button.dataset.format;
    const message = $("download-message");
    const options = currentOptions();
    options.format = format;
    const key = storedKey();
    let response;
    button.disabled = true;
    setMessage(message, "Drawing " + format.toUpperCase() + "…", "");
    try {
      if (key) {
        const body = Object.assign({}, options, {
          size: Number(options.size),
          quiet_zone: Number(options.quiet_zone),
          allow_low_contrast: options.allow_low_contrast === "true",
        });
        response = await fetch("/v1/qr/generate", {
          method: "POST",
          headers: Object.assign({ "Content-Type": "application/json", Accept: "image/*" }, authHeaders(key)),
          body: JSON.stringify(body),
          credentials: "omit",
        });
      } else {
        options.download = "true";
        response = await fetch("/v1/qr/preview?" + new URLSearchParams(options), { credentials: "omit" });
      }
    } catch (error) {
      setMessage(message, "The download failed: " + error.message, "bad");
      button.disabled = !optionsOk;
      return;
    }
    button.disabled = !optionsOk;
    if (!response.ok) {
      setMessage(message, await errorMessage(response), "bad");
      return;
    }
    const id = response.headers.get("X-QR-Id");
    saveBlob(await response.blob(), (id || "qr-code") + "." + button.dataset.extension);
    if (id) {
      setMessage(message, "Saved " + format.toUpperCase() + " as stored code " + id + ".", "good");
      loadHistory();
    } else {
      setMessage(message, "Saved " + format.toUpperCase() + " (not stored: no API key).", "good");
    }
  }

  // ---------------------------------------------------------------- the key and the history

  function showKey(summary) {
    const key = storedKey();
    $("key-form").hidden = Boolean(key);
    $("key-status").hidden = !key;
    $("history").hidden = !key;
    if (key) {
      $("key-summary").textContent = summary || "Key " + key.split("_").slice(0, 2).join("_") + "… in use.";
    }
  }

  async function useKey() {
    const key = $("api-key").value.trim();
    const message = $("key-message");
    if (!key) {
      setMessage(message, "Paste a key first.", "bad");
      return;
    }
    let response;
    try {
      response = await fetch("/v1/account/usage", { headers: authHeaders(key), credentials: "omit" });
    } catch (error) {
      setMessage(message, "The key could not be checked: " + error.message, "bad");
      return;
    }
    if (!response.ok) {
      setMessage(message, await errorMessage(response), "bad");
      return;
    }
    const usage = await response.json();
    window.localStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    setMessage(message, "", "");
    showKey(
      "Key " + key.split("_").slice(0, 2).join("_") + "… · plan " + usage.plan + " · " +
        usage.usage.codes_this_month + " codes this month"
    );
    loadHistory();
  }

  function forgetKey() {
    window.localStorage.removeItem(KEY_STORE);
    $("history-list").replaceChildren();
    showKey();
  }

  async function loadHistory() {
    const key = storedKey();
    const message = $("history-message");
    if (!key) {
      return;
    }
    let response;
    try {
      response = await fetch("/v1/qr?limit=12", { headers: authHeaders(key), credentials: "omit" });
    } catch (error) {
      setMessage(message, "The history could not be fetched: " + error.message, "bad");
      return;
    }
    if (!response.ok) {
      setMessage(message, await errorMessage(response), "bad");
      return;
    }
    const body = await response.json();
    const template = $("history-item");
    const items = body.items.map((code) => {
      const item = template.content.firstElementChild.cloneNode(true);
      const link = item.querySelector("a.thumb");
      link.href = code.image_url;
      const thumb = item.querySelector("img");
      thumb.src = code.image_url.replace(/\.[a-z]+$/, ".png") + "?size=128"; // a PDF cannot be an <img>
      thumb.alt = "Code " + code.id;
      item.querySelector(".data").textContent = code.data;
      item.querySelector(".meta").textContent =
        code.format.toUpperCase() + " · " + code.size + " px · " + code.error_correction + " · " +
        new Date(code.created_at).toLocaleString();
      item.dataset.id = code.id;
      return item;
    });
    $("history-list").replaceChildren(...items);
    setMessage(message, items.length ? "" : "No codes yet: a download with your key stores one.", "");
  }

  // ---------------------------------------------------------------- wiring

  for (const name of fields) {
    $(name).addEventListener("input", schedulePreview);
  }
  $("transparent").addEventListener("change", schedulePreview);
  $("allow_low_contrast").addEventListener("change", schedulePreview);
  for (const button of document.querySelectorAll("button.download")) {
    button.addEventListener("click", () => download(button));
  }
  $("save-key").addEventListener("click", useKey);
  $("api-key").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      useKey();
    }
  });
  $("forget-key").addEventListener("click", forgetKey);
  $("refresh-history").addEventListener("click", loadHistory);
  $("options").addEventListener("submit", (event) => event.preventDefault());

  showKey();
  loadHistory();
  updatePreview();
})();
