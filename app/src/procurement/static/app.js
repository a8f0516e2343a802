// Small progressive enhancements; the pages work without JavaScript.
(function () {
  "use strict";
  // Show timestamps in the reader's time zone.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) { el.textContent = when.toLocaleString(); }
  });
  // Refresh the figures page every minute so a wall display stays current.
  if (document.body.dataset.autorefresh) {
    setTimeout(function () { window.location.reload(); }, 60000);
  }
})();
