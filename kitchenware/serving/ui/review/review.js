// The review page: the queue of stored photos most worth a label (GET /review/queue), each photo in turn
// (GET /review/photo/{id}), one key a label (POST /review/label): 1-n for the model's classes in their order, 0 for
// "none of these", arrow keys to move. Every call sends the API key the reviewer typed, kept in this tab only.
"use strict";

const api = (route) => new URL(`../../review/${route}`, window.location.href);
const KEY = "kitchenware-api-key";
const queue = { classNames: [], other: "other", photos: [], at: 0, labels: {} };
let shown = 0; // the photo whose picture is loading; a late picture of an earlier one is dropped

async function call(route, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  const response = await fetch(api(route), { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(KEY); // a wrong key, or none on the server: ask again, saying why
    $("key-form").hidden = false;
  }
  return response;
}

function keyName(label) {
  return label === queue.other ? "none of these" : label;
}

function showKeys() {
  const keys = $("keys");
  keys.replaceChildren();
  const offer = (key, label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    const kbd = document.createElement("kbd");
    kbd.textContent = key;
    button.append(kbd, ` ${keyName(label)}`);
    button.setAttribute("aria-keyshortcuts", key);
    button.addEventListener("click", () => choose(label));
    keys.append(button);
  };
  queue.classNames.forEach((name, index) => offer(String(index + 1), name));
  offer("0", queue.other);
}

async function show(at) {
  queue.at = Math.max(0, Math.min(at, queue.photos.length - 1));
  const photo = queue.photos[queue.at];
  const ticket = ++shown;
  $("position").textContent = `Photo ${queue.at + 1} of ${queue.photos.length}`;
  const confidence = Math.round(photo.confidence * 100);
  $("answer").textContent = `The model said: ${photo.decision}, ${photo.label} (${confidence}%)`;
  $("why").textContent = `Why it is here: ${photo.reason}`;
  const chosen = queue.labels[photo.photo_id];
  $("saved").textContent = chosen ? `Labelled: ${keyName(chosen)}.` : "";
  $("saved").classList.remove("error");
  for (const button of $("keys").children) button.classList.toggle("chosen", button.dataset.label === chosen);
  $("photo").alt = `Stored photo ${queue.at + 1}, answered ${photo.label}`;
  const response = await call(`photo/${photo.photo_id}`);
  if (ticket !== shown) return;
  if (!response.ok) {
    $("photo").removeAttribute("src");
    $("saved").textContent = `No picture: ${await problem(response)}`;
    return;
  }
  $("photo").src = URL.createObjectURL(await response.blob());
}

async function choose(label) {
  const photo = queue.photos[queue.at];
  if (!photo) return;
  queue.labels[photo.photo_id] = label; // shown at once; a refusal below says so and takes it back
  const place = queue.at;
  if (queue.at < queue.photos.length - 1) show(queue.at + 1);
  const response = await call("label", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ photo_id: photo.photo_id, label }),
  });
  const saved = $("saved");
  if (response.ok) {
    if (queue.at === place) saved.textContent = `Labelled: ${keyName(label)}.`;
    say(`Saved photo ${place + 1}: ${keyName(label)}.`);
    return;
  }
  delete queue.labels[photo.photo_id];
  say(`Photo ${place + 1} not saved: ${await problem(response)}`, true);
}

async function open() {
  say("Reading the queue\u2026");
  let response;
  try {
    response = await call("queue?limit=100");
  } catch (error) {
    say(`The service could not be reached (${error.message}). Check that it is running and try again.`, true);
    return;
  }
  if (!response.ok) {
    say(`The queue could not be read: ${await problem(response)}`, true);
    return;
  }
  const body = await response.json();
  Object.assign(queue, { classNames: body.class_names, other: body.other, photos: body.photos, at: 0, labels: {} });
  $("key-form").hidden = true;
  if (!queue.photos.length) {
    say("No photo waits for a label: every stored photo has a choice.");
    return;
  }
  say("");
  showKeys();
  $("review").hidden = false;
  await show(0);
}

function onKey(event) {
  if ($("review").hidden || event.target.tagName === "INPUT" || event.altKey || event.ctrlKey || event.metaKey) return;
  const number = Number.parseInt(event.key, 10);
  if (event.key === "ArrowRight" || event.key === "ArrowDown") show(queue.at + 1);
  else if (event.key === "ArrowLeft" || event.key === "ArrowUp") show(queue.at - 1);
  else if (event.key === "0") choose(queue.other);
  else if (number >= 1 && number <= queue.classNames.length) choose(queue.classNames[number - 1]);
  else return;
  event.preventDefault();
}

function setUp() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    $("key").value = "";
    open();
  });
  $("previous").addEventListener("click", () => show(queue.at - 1));
  $("next").addEventListener("click", () => show(queue.at + 1));
  document.addEventListener("keydown", onKey);
  if (sessionStorage.getItem(KEY)) open();
}

setUp();
