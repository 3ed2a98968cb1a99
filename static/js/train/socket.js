// One training run over WebSocket /api/train (see docs/api.md, "Train mode"). The server computes
// everything; this only sends commands and hands each message to `onMessage`.

export class TrainSocket {
  constructor({ onMessage, onClose }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.ws = null;
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  start(startMessage) {
    this.close();
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/train`);
    this.ws = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify(startMessage)));
    ws.addEventListener("message", (e) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (e) => {
      if (this.ws === ws) {
        this.ws = null;
        this.onClose(e.code, e.reason);
      }
    });
  }

  send(msg) {
    if (this.open) this.ws.send(JSON.stringify(msg));
  }

  close() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }
}
