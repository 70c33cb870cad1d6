// The page for people: choose or drop a photo, POST it to /classify and /explain, show the answer, the top three
// classes and the heat map, and (when the service stores feedback) post the category the person picks to /feedback.
"use strict";

const api = (route) => new URL(`../${route}`, window.location.href);
let current = 0; // the latest photo chosen; answers for an earlier one are dropped

function verdict(answer) {
  const [first, second] = Object.keys(answer.probabilities);
  if (answer.decision === "unknown") return "This doesn't look like kitchenware";
  if (answer.decision === "unsure") return `Not sure \u2014 ${first} or ${second}?`;
  return `Looks like a ${answer.label}`;
}

function showBars(probabilities) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, probability] of Object.entries(probabilities).slice(0, 3)) {
    const percent = Math.round(probability * 100);
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = `${percent}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.textContent = `${percent}%`;
    item.append(label, track, value);
    bars.append(item);
  }
}

async function showHeatmap(file, answer, ticket) {
  const form = new FormData();
  form.append("image", file);
  form.append("label", answer.label);
  const figure = $("heatmap").closest("figure");
  const response = await fetch(api("explain"), { method: "POST", body: form });
  if (ticket !== current) return;
  if (!response.ok) {
    figure.hidden = false;
    $("heatmap").hidden = true;
    $("heatmap").removeAttribute("src");
    $("heatmap-caption").textContent = `No heat map: ${await problem(response)}`;
    return;
  }
  const picture = URL.createObjectURL(await response.blob());
  $("heatmap").src = picture;
  $("heatmap").hidden = false;
  $("heatmap").alt = `Heat map over your photo: the brighter, the more the model saw a ${answer.label} there`;
  $("heatmap-caption").textContent = `Where the model looked for "${answer.label}" (bright: strong evidence)`;
  figure.hidden = false;
}

function showFeedback(answer) {
  const box = $("feedback");
  box.hidden = !answer.photo_id; // storage off (or failing): nothing to correct
  if (box.hidden) return;
  $("feedback-status").textContent = "";
  const choices = $("choices");
  choices.replaceChildren();
  const offer = (text, label, primary = false) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.className = primary ? "primary" : "";
    button.addEventListener("click", () => sendChoice(answer, label));
    choices.append(button);
  };
  // The answer the page gave comes first as the primary button: one click when the model was right.
  if (answer.decision === "confident") offer(`Yes, it's a ${answer.label}`, answer.label, true);
  if (answer.decision === "unknown") offer("Right, none of these", "other", true);
  for (const name of Object.keys(answer.probabilities)) {
    if (answer.decision !== "confident" || name !== answer.label) offer(`It's a ${name}`, name);
  }
  if (answer.decision !== "unknown") offer("None of these", "other");
}

async function sendChoice(answer, label) {
  // The answer's short-lived feedback token lets this page label this one photo; the page never holds an API key.
  const status = $("feedback-status");
  status.textContent = "Saving\u2026";
  try {
    const response = await fetch(api("feedback"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ photo_id: answer.photo_id, label, token: answer.feedback_token }),
    });
    if (response.ok) status.textContent = `Thanks, saved: ${label === "other" ? "none of these" : label}.`;
    else if (response.status === 403) status.textContent = "Not saved: this answer is too old. Choose the photo again.";
    else status.textContent = `Not saved: ${await problem(response)}`;
  } catch (error) {
    status.textContent = `Not saved: the service could not be reached (${error.message}). Try again.`;
  }
}

async function classify(file) {
  const ticket = ++current;
  $("answer").hidden = true;
  say("Looking at your photo\u2026");
  $("preview").src = URL.createObjectURL(file);
  const form = new FormData();
  form.append("image", file);
  let response;
  try {
    response = await fetch(api("classify"), { method: "POST", body: form });
  } catch (error) {
    say(`The service could not be reached (${error.message}). Check that it is running and try again.`, true);
    return;
  }
  if (ticket !== current) return;
  if (!response.ok) {
    say(`That photo could not be classified: ${await problem(response)}`, true);
    return;
  }
  const answer = await response.json();
  say("");
  $("verdict").textContent = verdict(answer);
  showBars(answer.probabilities);
  showFeedback(answer);
  $("heatmap").closest("figure").hidden = true;
  $("answer").hidden = false;
  await showHeatmap(file, answer, ticket);
}

function setUp() {
  const input = $("photo");
  const drop = $("drop");
  input.addEventListener("change", () => input.files.length && classify(input.files[0]));
  for (const event of ["dragenter", "dragover"]) {
    drop.addEventListener(event, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const event of ["dragleave", "drop"]) {
    drop.addEventListener(event, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0]);
  });
}

setUp();
