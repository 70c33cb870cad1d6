// What both pages share: the element lookup, the status line, and the reason an error answer gives.
"use strict";

const $ = (id) => document.getElementById(id);

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function problem(response) {
  // The service's errors are JSON {"error": "..."}; anything else (a proxy's page) is named by its status.
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (ignored) { /* not JSON */ }
  return `the service answered ${response.status} ${response.statusText}`;
}
