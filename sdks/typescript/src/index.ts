/** Breakwater's TypeScript SDK: an offline-first local store that syncs in the background (docs/sdk-js.md). */

export { Auth, MfaRequired, pkcePair } from "./auth.js";
export type { Account, AccountExport, OidcStart, Session } from "./auth.js";
export { externalToken } from "./external-token.js";
export type { TokenCallback } from "./external-token.js";
export { Client } from "./client.js";
export type { ClientOptions } from "./client.js";
export { Collection } from "./collection.js";
export type { QueryOptions } from "./collection.js";
export type { Json, JsonObject } from "./document.js";
export { BreakwaterError, ClientClosed, CursorExpired, EndpointUnavailable, ValidationError } from "./errors.js";
export type { Problem } from "./errors.js";
export type { ClientEvents, Status } from "./events.js";
export type { Document } from "./local-store.js";
export type { Limits } from "./mutation.js";
export type { HeadersProvider } from "./node-api.js";
export type { OutboxEntry, Rejection } from "./outbox.js";
export type { Operator, Scalar, Where, WhereClause } from "./query.js";
export type { TransportName, WebSocketConstructor } from "./realtime/transport.js";
export type { TraceparentSource } from "./trace-context.js";
export type { StorageAdapter, Table, Write } from "./storage/adapter.js";
export { IndexedDbStorage } from "./storage/indexeddb.js";
export { BrowserTabs } from "./storage/tabs.js";
export type { Channel, TabNotice, Tabs } from "./storage/tabs.js";
export { MemoryStorage } from "./storage/memory.js";
export { SqlStorage } from "./storage/sql.js";
export type { SqlDatabase, SqlStatement } from "./storage/sql.js";
