// Times in the viewer's zone. The server writes every time in UTC inside
// <time datetime="...">, which stays as it is without JavaScript; this script
// shows `time.local` in the browser's time zone, turns `time.ago` into a live
// "3m 4s ago" (the local time as its title), and counts up the duration of a
// running build (`.running-for[data-since]`), and reloads a page that asks for it
// (`<body data-refresh="5">`). Loaded from a file: pages carry no inline script.
(function () {
  function human(ms) {
    ms = Math.max(0, ms);
    if (ms < 1000) return ms + "ms";
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }
  var local = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  function each(selector, f) {
    var found = document.querySelectorAll(selector);
    for (var i = 0; i < found.length; i++) f(found[i]);
  }
  function tick() {
    var now = Date.now();
    each("time.ago", function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) return;
      t.textContent = human(now - at) + " ago";
    });
    each(".running-for[data-since]", function (d) {
      var since = Date.parse(d.dataset.since);
      if (!isNaN(since)) d.textContent = human(now - since);
    });
  }
  each("time.local", function (t) {
    var at = Date.parse(t.getAttribute("datetime"));
    if (!isNaN(at)) { t.title = t.textContent; t.textContent = local.format(at); }
  });
  each("time.ago", function (t) {
    var at = Date.parse(t.getAttribute("datetime"));
    if (!isNaN(at)) t.title = local.format(at);
  });
  tick();
  setInterval(tick, 1000);
  // A page of live state (the queue) asks to be shown afresh every few seconds.
  var refresh = parseInt(document.body.dataset.refresh, 10);
  if (refresh > 0) setTimeout(function () { window.location.reload(); }, refresh * 1000);
})();
