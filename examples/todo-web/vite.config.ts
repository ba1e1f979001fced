// The service worker (public/sw.js) precaches the app shell; this plugin writes the list of
// built files into it, so a new build's worker replaces the old cache.
import { readFileSync } from "node:fs";
import { defineConfig } from "vite";
import type { Plugin } from "vite";

function appShell(): Plugin {
  return {
    name: "app-shell",
    apply: "build",
    generateBundle(_options, bundle) {
      const files = ["/", ...Object.keys(bundle).map((name) => `/${name}`), "/manifest.webmanifest", "/icon.svg"];
      const version = files.join("|");
      const source = readFileSync(new URL("./src/sw.js", import.meta.url), "utf-8")
        .replace("__SHELL__", JSON.stringify(files))
        .replace("__VERSION__", JSON.stringify(String(hash(version))));
      this.emitFile({ type: "asset", fileName: "sw.js", source });
    },
  };
}

/** A small stable hash of the file list (FNV-1a): the cache's name changes with the build. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export default defineConfig({ plugins: [appShell()], build: { target: "es2022" } });
