// Live updates without a reload: every element with a data-live attribute subscribes to the
// server-sent events at that URL and replaces its content with each fragment the server sends.
// What the person was doing survives the swap: ticked checkboxes, opened details and the focused
// control.
"use strict";

for (const region of document.querySelectorAll("[data-live]")) {
  const source = new EventSource(region.dataset.live);
  source.addEventListener("fragment", (message) => {
    const ticked = new Set(
      Array.from(region.querySelectorAll("input[type=checkbox]:checked"), (box) => box.value),
    );
    const open = new Set(Array.from(region.querySelectorAll("details[open]"), (item) => item.id));
    const focused = region.contains(document.activeElement) ? document.activeElement.id : "";
    region.innerHTML = message.data;
    for (const item of region.querySelectorAll("details")) {
      item.open = open.has(item.id);
    }
    for (const box of region.querySelectorAll("input[type=checkbox]")) {
      box.checked = ticked.has(box.value);
    }
    if (focused && document.getElementById(focused)) {
      document.getElementById(focused).focus();
    }
    region.dataset.updated = String(Date.now());
  });
  // The session ended (signed out elsewhere, key revoked): show the sign-in page.
  source.addEventListener("signed-out", () => {
    source.close();
    window.location.reload();
  });
}
