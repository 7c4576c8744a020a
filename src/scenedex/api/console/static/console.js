// scenedex admin console: refresh the parts of a page marked data-live-url while they say
// data-active="true" (a job is queued or running), by fetching their HTML again.
(function () {
  "use strict";
  var INTERVAL_MS = 1500;

  function poll(container) {
    var content = container.querySelector(".live-content");
    if (!content || content.getAttribute("data-active") !== "true") {
      return;
    }
    fetch(container.getAttribute("data-live-url"), {
      headers: { "X-Console-Poll": "1" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/admin/sign-in?reason=" + encodeURIComponent("your session ended"));
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          container.innerHTML = html;
        }
      })
      .catch(function () { /* a missed poll: try again next time */ })
      .finally(function () {
        window.setTimeout(function () { poll(container); }, INTERVAL_MS);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(function (container) {
      window.setTimeout(function () { poll(container); }, INTERVAL_MS);
    });
  });
})();
