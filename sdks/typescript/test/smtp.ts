// A minimal SMTP server on loopback that keeps the plain-text bodies it receives (enough for
// Python's smtplib without TLS or AUTH), so tests can read the links a node mails.
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";

export interface Mail {
  to: string;
  text: string;
}

export class Mailbox {
  readonly received: Mail[] = [];
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      let buffer = "";
      let inData = false;
      let to = "";
      socket.write("220 test ESMTP\r\n");
      socket.on("data", (chunk) => {
        buffer += chunk.toString("latin1");
        for (;;) {
          if (inData) {
            const end = buffer.indexOf("\r\n.\r\n");
            if (end < 0) return;
            this.received.push({ to, text: decodeQuotedPrintable(buffer.slice(0, end)) });
            buffer = buffer.slice(end + 5);
            inData = false;
            socket.write("250 OK\r\n");
            continue;
          }
          const line = buffer.indexOf("\r\n");
          if (line < 0) return;
          const command = buffer.slice(0, line);
          buffer = buffer.slice(line + 2);
          const verb = command.slice(0, 4).toUpperCase();
          if (verb === "RCPT") to = /<([^>]*)>/.exec(command)?.[1] ?? "";
          if (verb === "DATA") {
            inData = true;
            socket.write("354 go ahead\r\n");
          } else if (verb === "QUIT") {
            socket.end("221 bye\r\n");
          } else {
            socket.write("250 OK\r\n");
          }
        }
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  /** The `[smtp]` table of a node that mails here. */
  config(): string {
    return `\n[smtp]\nhost = "127.0.0.1"\nport = ${this.port}\nsecurity = "none"\nfrom_address = "accounts@example.com"\nbase_url = "https://app.example/account"\n`;
  }

  /** The token of the `count`-th mail to `address`, once it arrived. */
  async token(address: string, count = 1): Promise<string> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const mails = this.received.filter((mail) => mail.to === address);
      if (mails.length >= count) {
        const found = /token=([A-Za-z0-9_-]+)/.exec(mails[count - 1]?.text ?? "");
        if (!found?.[1]) throw new Error(`no token in the mail to ${address}`);
        return found[1];
      }
      if (Date.now() > deadline) throw new Error(`no mail ${count} to ${address}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function decodeQuotedPrintable(text: string): string {
  return text.replace(/=\r\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}
