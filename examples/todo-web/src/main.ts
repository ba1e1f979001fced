// The todo list: every read and write goes to the device's IndexedDB through the SDK, which
// syncs with the node whenever it can. Nothing here waits for the network.
import { Client, IndexedDbStorage } from "@breakwater/client";
import type { Document, Status } from "@breakwater/client";

/** The node: `?node=URL`, else VITE_BREAKWATER_URL at build time, else a local node. */
const NODE =
  new URLSearchParams(location.search).get("node") ?? import.meta.env.VITE_BREAKWATER_URL ?? "http://127.0.0.1:8080";

const statusLine = document.querySelector<HTMLParagraphElement>("#status")!;
const list = document.querySelector<HTMLUListElement>("#todos")!;
const form = document.querySelector<HTMLFormElement>("#add")!;
const titleInput = document.querySelector<HTMLInputElement>("#title")!;

if (import.meta.env.PROD && "serviceWorker" in navigator) {
  // The worker keeps the app shell, so the app opens with no network (see public/sw.js).
  void navigator.serviceWorker.register("/sw.js");
}

/** `following`: another tab of the app syncs, this one shows its changes live. */
function showStatus(status: Status | null, leading: boolean): void {
  const state = navigator.onLine ? (status?.state ?? (leading ? "starting" : "following")) : "offline";
  statusLine.dataset["state"] = state;
  statusLine.dataset["pending"] = String(status?.pending ?? 0);
  const pending = status && status.pending > 0 ? ` · ${status.pending} to sync` : "";
  statusLine.textContent = `${state}${pending}`;
}

function todoItem(todos: ReturnType<Client["collection"]>, doc: Document): HTMLLIElement {
  const item = document.createElement("li");
  item.dataset["id"] = doc.id;
  item.classList.toggle("done", doc.data["done"] === true);
  item.classList.toggle("pending", doc.pending);
  const done = document.createElement("input");
  done.type = "checkbox";
  done.checked = doc.data["done"] === true;
  done.addEventListener("change", () => void todos.patch(doc.id, { done: done.checked }));
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = String(doc.data["title"] ?? "");
  const edit = document.createElement("button");
  edit.textContent = "Edit";
  edit.className = "edit";
  edit.addEventListener("click", () => {
    const editor = document.createElement("form");
    editor.className = "editor";
    const field = document.createElement("input");
    field.name = "title";
    field.value = title.textContent ?? "";
    editor.append(field);
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      if (field.value.trim()) void todos.patch(doc.id, { title: field.value.trim() });
    });
    title.replaceWith(editor);
    field.focus();
  });
  const remove = document.createElement("button");
  remove.textContent = "Delete";
  remove.addEventListener("click", () => void todos.delete(doc.id));
  item.append(done, title, edit, remove);
  return item;
}

async function signIn(client: Client): Promise<void> {
  if (client.auth.session !== null || !navigator.onLine) return;
  try {
    await client.auth.signInAnonymously(); // kept in IndexedDB across reloads
  } catch (error) {
    console.warn("sign-in failed; retrying when online", error);
  }
}

async function main(): Promise<void> {
  // Every tab of the app opens the same database: one of them syncs, the others follow it live.
  const storage = await IndexedDbStorage.open("todos");
  const client = await Client.open({ endpoints: [NODE], storage });
  const todos = client.collection("todos");
  let last: Status | null = null;
  client.on("status", (status) => showStatus((last = status), client.leading));
  client.on("rejected", (rejection) => console.warn("refused by the node", rejection.mutationId, rejection.problem));
  addEventListener("online", () => {
    showStatus(last, client.leading);
    void signIn(client); // the SDK itself syncs when the browser is back online
  });
  addEventListener("offline", () => showStatus(last, client.leading));
  showStatus(null, client.leading);
  await signIn(client);
  todos.watch({ orderBy: "created" }, (docs) => {
    list.replaceChildren(...docs.map((doc) => todoItem(todos, doc)));
    document.body.dataset["ready"] = "true";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = titleInput.value.trim();
    if (!title) return;
    titleInput.value = "";
    void todos.set(crypto.randomUUID(), { title, done: false, created: Date.now() });
  });
}

void main();
