// The app shell's service worker: precache every built file at install, answer the app's own
// GETs from the cache first (so the app opens with no network), and never touch the node's
// requests (they go to another origin and are the SDK's business).
const SHELL = __SHELL__;
const CACHE = `todo-shell-${__VERSION__}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  // A navigation (any query string, e.g. ?node=) gets the shell's page. Vary is ignored: the
  // preview server varies on Origin, which a module script's request carries and the
  // precaching request did not.
  const navigate = event.request.mode === "navigate";
  event.respondWith(
    caches
      .match(navigate ? "/" : event.request, { ignoreSearch: navigate, ignoreVary: true })
      .then((hit) => hit ?? fetch(event.request)),
  );
});
